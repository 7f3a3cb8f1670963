//! `mut` arguments: the binding stays mutable in the body only.
#![deny(warnings)]

#[hype::remote]
fn push_twice(mut items: Vec<u32>, item: u32) -> Vec<u32> {
    items.push(item);
    items.push(item);
    items
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let call = push_twice(vec![1], 2);
    let PushTwiceArgs { items, item } = call.into_args();
    assert_eq!((items.clone(), item), (vec![1], 2));
    assert_eq!(
        push_twice(items, item).run_here().await.unwrap(),
        vec![1, 2, 2]
    );
}
