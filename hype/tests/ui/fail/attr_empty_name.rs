#[hype::remote(name = "")]
fn a() {}

fn main() {}
