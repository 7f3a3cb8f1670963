#[hype::remote]
fn add((a, b): (u32, u32)) -> u32 {
    a + b
}

#[hype::remote]
fn ignore(_: u32, ref text: String) -> usize {
    text.len()
}

fn main() {}
