#[hype::main(interrupts = "no")]
fn main() {}
