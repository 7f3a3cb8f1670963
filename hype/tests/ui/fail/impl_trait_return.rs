#[hype::remote]
fn numbers(n: u64) -> impl Iterator<Item = u64> {
    0..n
}

fn main() {}
