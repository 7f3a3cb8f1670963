//! The attribute's defaults reach the function's `RemoteFn::DEFAULTS` and
//! its registration, which `hype-run --list` prints.
#![deny(warnings)]

use std::time::Duration;

use hype::RemoteFn;

#[hype::remote(cpu = "2", memory = "4Gi", gpu = "nvidia-l4:1", timeout = "10m", retries = 2, spot)]
fn embed(batch: Vec<String>) -> Vec<Vec<f32>> {
    batch.iter().map(|_| vec![0.0]).collect()
}

#[hype::remote(name = "jobs::small", timeout = "500ms", gpu = "2", spot = false)]
fn small() {}

#[hype::remote]
fn plain() {}

fn main() {
    let defaults = EmbedArgs::DEFAULTS;
    assert_eq!(defaults.cpu_amount(), Some("2"));
    assert_eq!(defaults.memory_amount(), Some("4Gi"));
    let gpu = defaults.gpu_request().unwrap();
    assert_eq!((gpu.count(), gpu.model_name()), (1, Some("nvidia-l4")));
    assert_eq!(defaults.timeout(), Some(Duration::from_secs(600)));
    assert_eq!(defaults.retry_count(), Some(2));
    assert_eq!(defaults.is_spot(), Some(true));
    assert!(PlainArgs::DEFAULTS.is_empty());

    let registry = hype::__private::Registry::global().unwrap();
    let embed_fn = registry.get(EmbedArgs::ID).unwrap();
    assert_eq!(
        embed_fn.defaults().to_string(),
        "cpu=2 memory=4Gi gpu=nvidia-l4:1 timeout=10m retries=2 spot=true"
    );
    let small_fn = registry.get("jobs::small").unwrap();
    assert_eq!(small_fn.defaults().to_string(), "gpu=2 timeout=500ms spot=false");
    assert!(registry.get(PlainArgs::ID).unwrap().defaults().is_empty());
    let _ = (embed(Vec::new()), small(), plain());
}
