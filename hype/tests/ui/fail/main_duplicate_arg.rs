#[hype::main(interrupts = false, crate = "::hype", interrupts = true, crate = "::hype")]
fn main() {}
