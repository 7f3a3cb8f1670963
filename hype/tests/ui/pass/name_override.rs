//! `name = "…"` replaces the module-path ID.
#![deny(warnings)]

use hype::RemoteFn;

#[hype::remote(name = "jobs::word_count")]
fn word_count(text: String) -> usize {
    text.split_whitespace().count()
}

#[hype::remote(name = "jobs::r#type")]
fn r#type(r#in: String) -> String {
    r#in
}

fn main() {
    assert_eq!(WordCountArgs::ID, "jobs::word_count");
    assert_eq!(word_count(String::new()).id(), "jobs::word_count");
    assert_eq!(TypeArgs::ID, "jobs::r#type");
    assert_eq!(r#type("x".into()).into_args().r#in, "x");
    let registry = hype::__private::Registry::global().unwrap();
    assert!(registry.get("jobs::word_count").is_some());
    assert!(registry.get("jobs::r#type").is_some());
}
