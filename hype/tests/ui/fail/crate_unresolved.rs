// The path given is the one the generated code uses; one it cannot
// resolve is reported on the string.
#[hype::main(crate = "nowhere::hype")]
fn main() {}
