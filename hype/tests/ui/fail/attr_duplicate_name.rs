#[hype::remote(name = "jobs::a", name = "jobs::b")]
fn a() {}

fn main() {}
