use std::rc::Rc;

#[hype::remote]
async fn hold(n: u32) -> u32 {
    let shared = Rc::new(n);
    tokio::task::yield_now().await;
    *shared
}

fn main() {}
