#[hype::remote]
fn greeting() -> &'static str {
    "hello"
}

fn main() {}
