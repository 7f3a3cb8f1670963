#[hype::remote(gpu = "nvidia-l4:17")]
fn embed(batch: Vec<String>) -> usize {
    batch.len()
}

fn main() {}
