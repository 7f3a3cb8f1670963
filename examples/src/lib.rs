//! Examples of hype live in this package's examples; this library holds
//! what they share and what their tests check.

use hype::{RunEnvironment, Secret};

/// Where the GKE example mounts a key secret.
pub const KEY_DIR: &str = "/etc/gcloud";

/// The pod's Google credentials in the GKE example (`examples/gke.rs`).
///
/// With `key_secret` (`HYPE_GCP_KEY_SECRET`), the Kubernetes secret of that
/// name, which holds a service account key `key.json`, is mounted at
/// [`KEY_DIR`] and `GOOGLE_APPLICATION_CREDENTIALS` points at it. Without
/// it nothing is mounted: the pod's Application Default Credentials come
/// from the metadata server (Workload Identity, or the node's service
/// account). A secret mounted unconditionally would fail every call on a
/// Workload Identity cluster, where no such secret exists, with
/// `hype::Error::ContainerConfig`.
pub fn pod_credentials(env: RunEnvironment, key_secret: Option<&str>) -> RunEnvironment {
    match key_secret.map(str::trim).filter(|s| !s.is_empty()) {
        Some(secret) => env.with_secret(Secret::new(secret, KEY_DIR)).with_env(
            "GOOGLE_APPLICATION_CREDENTIALS",
            format!("{KEY_DIR}/key.json"),
        ),
        None => env,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_key_secret_nothing_is_mounted() {
        for unset in [None, Some(""), Some("  ")] {
            let env = pod_credentials(RunEnvironment::new("img"), unset);
            assert!(env.secrets().is_empty(), "{unset:?}");
            assert!(env.env_vars().is_empty(), "{unset:?}");
        }
    }

    #[test]
    fn a_key_secret_is_mounted_and_named_by_the_credentials_variable() {
        let env = pod_credentials(RunEnvironment::new("img"), Some("gcp-key"));
        let secrets = env.secrets();
        assert_eq!(secrets.len(), 1);
        assert_eq!(secrets[0].name(), "gcp-key");
        assert_eq!(secrets[0].mount_path(), std::path::Path::new(KEY_DIR));
        assert_eq!(
            env.env_vars(),
            [(
                "GOOGLE_APPLICATION_CREDENTIALS".to_owned(),
                "/etc/gcloud/key.json".to_owned()
            )]
        );
    }
}
