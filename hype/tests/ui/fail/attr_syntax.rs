#[hype::remote("jobs::a")]
fn a() {}

#[hype::main(interrupts = false crate = "::hype")]
fn main() {}
