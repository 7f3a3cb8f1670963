#[hype::remote(crate = "::hype", name = "jobs::a", crate = "::hype")]
fn a() {}

fn main() {}
