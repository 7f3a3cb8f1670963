#[hype::remote(nme = "jobs::word_count")]
fn word_count<T>(text: &str, (a, b): (u8, u8), extra: impl Into<String>) -> &str {
    let _ = (a, b, extra.into());
    text
}

fn main() {}
