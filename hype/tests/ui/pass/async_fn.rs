//! An `async fn`: the body is awaited where the call runs.
#![deny(warnings)]

use hype::RemoteFn;

/// Joins the words after yielding once.
#[hype::remote]
async fn join_words(words: Vec<String>, separator: char) -> String {
    tokio::task::yield_now().await;
    let separator = separator.to_string();
    words.join(&separator)
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let call = join_words(vec!["a".into(), "b".into()], '-');
    assert!(matches!(
        call.into_args().invoke(),
        hype::__private::Invoke::Pending(_)
    ));
    let joined = join_words(vec!["a".into(), "b".into()], '-')
        .run_here()
        .await
        .unwrap();
    assert_eq!(joined, "a-b");
    assert_eq!(
        JoinWordsArgs::SIGNATURE,
        hype::wire::fnv1a64(b"hype-sig-v2(words:Vec<String>,separator:char)->String")
    );
}
