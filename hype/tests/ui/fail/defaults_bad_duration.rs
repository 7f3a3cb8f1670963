#[hype::remote(timeout = "10min")]
fn embed(batch: Vec<String>) -> usize {
    batch.len()
}

fn main() {}
