pub struct Config {
    pub retries: u32,
}

#[hype::remote]
fn configure(name: String, config: Config) -> u32 {
    config.retries + name.len() as u32
}

fn main() {}
