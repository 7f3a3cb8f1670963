//! A plain `fn`: calling it builds a `Call`, which runs after a round trip.
#![deny(warnings)]

use hype::RemoteFn;

/// Counts the words of a text.
#[hype::remote]
pub fn word_count(text: String) -> usize {
    text.split_whitespace().count()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let call: hype::Call<WordCountArgs> = word_count("a b c".to_owned());
    assert_eq!(call.id(), concat!(module_path!(), "::word_count"));
    assert_eq!(call.args().text, "a b c");
    assert_eq!(call.run_here().await.unwrap(), 3);

    assert_eq!(WordCountArgs::ID, concat!(module_path!(), "::word_count"));
    assert_eq!(
        WordCountArgs::SIGNATURE,
        hype::wire::fnv1a64(b"hype-sig-v2(text:String)->usize")
    );
    let registry = hype::__private::Registry::global().unwrap();
    let registration = registry.get(WordCountArgs::ID).unwrap();
    assert_eq!(registration.signature(), WordCountArgs::SIGNATURE);
}
