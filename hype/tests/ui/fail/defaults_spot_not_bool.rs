#[hype::remote(spot = "yes")]
fn embed(batch: Vec<String>) -> usize {
    batch.len()
}

fn main() {}
