#[hype::remote]
fn configure(name: String, #[cfg(unix)] extra: u32) -> usize {
    name.len() + extra as usize
}

fn main() {}
