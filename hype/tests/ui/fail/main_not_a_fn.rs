#[hype::main]
struct Main;

fn main() {}
