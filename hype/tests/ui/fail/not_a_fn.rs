#[hype::remote]
struct Job {
    text: String,
}

#[hype::remote]
impl Job {}

fn main() {}
