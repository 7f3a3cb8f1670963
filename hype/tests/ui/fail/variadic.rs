#[hype::remote]
unsafe extern "C" fn sum(count: u32, ...) -> u32 {
    count
}

fn main() {}
