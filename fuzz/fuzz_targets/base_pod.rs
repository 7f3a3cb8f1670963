//! Base pods (`RunEnvironment::from_yaml`'s YAML, checked and parsed as the
//! Kubernetes runner does): never a panic; a parsed pod written back as
//! YAML (`hype_runtime::__tools::fuzzing::base_pod`) parses again and writes the same
//! YAML, and a call's pod can be built on every accepted base pod.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use hype_runtime::__tools::fuzzing::{base_pod, pod_with_base};

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    let Ok(yaml) = std::str::from_utf8(data) else {
        return hype_fuzz::verdict(false);
    };
    let Ok(written) = base_pod(yaml) else {
        return hype_fuzz::verdict(false);
    };
    assert_eq!(
        base_pod(&written).as_ref(),
        Ok(&written),
        "a base pod written back as YAML is another pod"
    );
    // Base pods come from files: one per fuzzing process, rewritten each run.
    static FILE: OnceLock<PathBuf> = OnceLock::new();
    let path = FILE.get_or_init(|| {
        std::env::temp_dir().join(format!("hype-fuzz-base-pod-{}.yaml", std::process::id()))
    });
    std::fs::write(path, yaml).expect("write the base pod file");
    if let Err(err) = pod_with_base(path) {
        panic!("an accepted base pod makes no pod: {err}");
    }
    hype_fuzz::verdict(true);
});
