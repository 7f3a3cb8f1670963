#[hype::remote(crate = 5)]
fn a() {}

#[hype::remote(crate = hype)]
fn b() {}

#[hype::main(crate = 5)]
fn main() {}
