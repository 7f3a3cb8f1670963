//! Who a call's pod is: its service account, whether it gets an API
//! token, and the labels and annotations users add to hype's own.
//! Kubernetes only: the Docker and local runners ignore these options
//! (with a debug log naming each).

use std::collections::BTreeMap;

use super::RunEnvironment;

/// The label and annotation keys that are hype's: `hype.dev/…` and
/// `app.kubernetes.io/managed-by`. A user's label or annotation may not
/// set them (`hype gc` and the watch find pods by them).
pub(crate) fn is_hype_key(key: &str) -> bool {
    key.starts_with("hype.dev/") || key == "app.kubernetes.io/managed-by"
}

impl RunEnvironment {
    /// Runs the call's pod as Kubernetes service account `name`
    /// (`serviceAccountName`): with GKE Workload Identity, the Google
    /// service account it is bound to is what the call acts as. Its API
    /// token is then mounted as Kubernetes does by default, unless
    /// [`RunEnvironment::with_service_account_token`] says otherwise.
    /// Kubernetes only.
    pub fn with_service_account(self, name: impl Into<String>) -> Self {
        let name = name.into();
        self.with(|s| s.service_account = Some(name))
    }

    /// Whether the pod gets a Kubernetes API token
    /// (`automountServiceAccountToken`). Default: no token when no service
    /// account is named (here or in a base pod), since a call needs no API
    /// access; the cluster's default otherwise. Kubernetes only.
    pub fn with_service_account_token(self, mount: bool) -> Self {
        self.with(|s| s.service_account_token = Some(mount))
    }

    /// Adds labels to the call's pod, each `(key, value)` pair of
    /// `labels` (a later value of a key replaces the earlier one; they win
    /// over a base pod's). hype's own labels (`hype.dev/…`,
    /// `app.kubernetes.io/managed-by`) cannot be set: validation refuses
    /// them, naming the key, as it refuses keys and values Kubernetes
    /// would. Kubernetes only.
    ///
    /// ```
    /// # use hype_runtime::RunEnvironment;
    /// let env = RunEnvironment::new("img").with_labels([("team", "data"), ("cost-center", "42")]);
    /// assert_eq!(env.labels()["team"], "data");
    /// ```
    pub fn with_labels<K, V>(self, labels: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let labels: Vec<(String, String)> = labels
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.with(|s| s.labels.extend(labels))
    }

    /// Adds annotations to the call's pod, as
    /// [`RunEnvironment::with_labels`] adds labels: keys as label keys,
    /// values free text, all of them at most 256 KiB. hype's own keys are
    /// refused. Kubernetes only.
    pub fn with_annotations<K, V>(self, annotations: impl IntoIterator<Item = (K, V)>) -> Self
    where
        K: Into<String>,
        V: Into<String>,
    {
        let annotations: Vec<(String, String)> = annotations
            .into_iter()
            .map(|(k, v)| (k.into(), v.into()))
            .collect();
        self.with(|s| s.annotations.extend(annotations))
    }

    /// The service account, if one is named.
    pub fn service_account(&self) -> Option<&str> {
        self.inner.service_account.as_deref()
    }

    /// Whether the pod gets an API token, if set.
    pub fn service_account_token(&self) -> Option<bool> {
        self.inner.service_account_token
    }

    /// The labels added to the pod.
    pub fn labels(&self) -> &BTreeMap<String, String> {
        &self.inner.labels
    }

    /// The annotations added to the pod.
    pub fn annotations(&self) -> &BTreeMap<String, String> {
        &self.inner.annotations
    }
}
