//! Thin wrappers over parsers that are not public, for the fuzz targets in
//! `fuzz/` (cargo-fuzz). Not part of the API: hidden from the docs and free
//! to change with any release. Each wrapper returns plain text or numbers,
//! so a fuzz target can check that what was parsed writes back to text
//! that parses to the same thing.

use crate::environment::quantity;

/// Parses a resource quantity (`750m`, `512Mi`, `1e3`) and writes its exact
/// value in one canonical form (`750m` is `75e-2`), which parses to the
/// same value and is its own canonical form. The error is the parser's.
pub fn quantity(text: &str) -> Result<String, String> {
    Ok(quantity::parse(text)?.canonical())
}

/// Compares two quantities exactly (`1000m` equals `1`, `1Gi` is more than
/// `1G`), as the request-below-limit check does.
pub fn quantity_cmp(a: &str, b: &str) -> Result<std::cmp::Ordering, String> {
    Ok(quantity::parse(a)?.cmp(&quantity::parse(b)?))
}

/// A cpu quantity as the Docker engine's `NanoCpus` (rounded to the
/// nearest; at least one).
pub fn nano_cpus(text: &str) -> Result<i64, String> {
    quantity::nano_cpus(text)
}

/// A memory quantity in bytes (rounded up; at least one).
pub fn memory_bytes(text: &str) -> Result<i64, String> {
    quantity::memory_bytes(text)
}

/// The content address of a blob with digest `sha256_hex` under staging
/// location `location` (`<location>/blobs/sha256/<hex>`).
pub fn blob_uri(location: &str, sha256_hex: &str) -> String {
    crate::staging::blob_uri(location, sha256_hex)
}

/// The digest a content-addressed URI names, if it is one (64 hex digits
/// after the last `/blobs/sha256/`).
pub fn digest_in_uri(uri: &str) -> Option<&str> {
    crate::staging::digest_in_uri(uri)
}

/// Parses and checks a base pod as [`crate::RunEnvironment::from_yaml`]'s
/// file is checked before a call runs, and writes the parsed pod back as
/// YAML, which parses to the same pod.
#[cfg(feature = "kubernetes")]
pub fn base_pod(yaml: &str) -> Result<String, String> {
    let pod = crate::backend::kubernetes::pod::parse_base_pod(yaml, "fuzz.yaml")
        .map_err(|e| e.to_string())?;
    serde_yaml_ng::to_string(&pod).map_err(|e| format!("cannot write the pod back: {e}"))
}

/// The pod of a call (as JSON) whose environment is read from the base pod
/// file `path` by [`crate::RunEnvironment::from_yaml`], with an image, a
/// cpu request and an env var added: the merge the Kubernetes runner does.
#[cfg(feature = "kubernetes")]
pub fn pod_with_base(path: &std::path::Path) -> Result<String, String> {
    use crate::backend::kubernetes::pod::{PodRequest, build};
    let env = crate::RunEnvironment::from_yaml(path)
        .map_err(|e| e.to_string())?
        .with_image("img")
        .with_request("cpu", "500m")
        .with_env("RUST_LOG", "info");
    let request = PodRequest {
        name: "hype-fuzz-1",
        function: "fuzz::f",
        session: "fuzzsession",
        call: "inline:SFlQQwE=",
        env: &env,
        arch: Some(crate::backend::Arch::X86_64),
        marker: "fuzzsession-0",
        owner: None,
    };
    let pod = build(&request).map_err(|e| e.to_string())?;
    serde_json::to_string(&pod).map_err(|e| format!("cannot write the pod: {e}"))
}
