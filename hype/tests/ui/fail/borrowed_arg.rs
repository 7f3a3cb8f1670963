use std::borrow::Cow;

#[hype::remote]
fn word_count(text: &str) -> usize {
    text.len()
}

#[hype::remote]
fn count_all(words: Vec<Cow<'static, str>>) -> usize {
    words.len()
}

fn main() {}
