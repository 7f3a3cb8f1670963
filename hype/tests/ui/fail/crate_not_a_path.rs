#[hype::remote(crate = "not a path!")]
fn a() {}

#[hype::remote(crate = "")]
fn b() {}

#[hype::main(crate = "not a path!")]
fn main() {}
