#[hype::remote(name = 42)]
fn a() {}

#[hype::remote(name)]
fn b() {}

#[hype::remote(name("jobs::c"))]
fn c() {}

fn main() {}
