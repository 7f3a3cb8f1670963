#[hype::remote(gpu = "nvidia-l4")]
fn embed(batch: Vec<String>) -> usize {
    batch.len()
}

fn main() {}
