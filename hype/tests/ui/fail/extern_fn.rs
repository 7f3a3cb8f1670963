#[hype::remote]
extern "C" fn read(n: u64) -> u64 {
    n
}

fn main() {}
