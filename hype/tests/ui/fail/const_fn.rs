#[hype::remote]
const fn answer() -> u64 {
    42
}

fn main() {}
