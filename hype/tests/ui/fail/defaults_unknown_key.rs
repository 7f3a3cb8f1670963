#[hype::remote(cpus = "2")]
fn embed(batch: Vec<String>) -> usize {
    batch.len()
}

fn main() {}
