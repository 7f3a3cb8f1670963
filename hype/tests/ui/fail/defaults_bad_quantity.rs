#[hype::remote(cpu = "2", memory = "4GB")]
fn embed(batch: Vec<String>) -> usize {
    batch.len()
}

fn main() {}
