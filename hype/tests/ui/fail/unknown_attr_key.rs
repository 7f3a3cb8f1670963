#[hype::remote(nme = "jobs::word_count")]
fn word_count(text: String) -> usize {
    text.len()
}

fn main() {}
