//! gke: the seed's example on Google Kubernetes Engine, staging in Google
//! Cloud Storage — a function returning the environment variables of the
//! pod it runs in.
//!
//! ```text
//! # 1. the generic env image, built once (no rebuild after code changes:
//! #    this program ships itself through the bucket), pushed to a registry
//! #    the cluster can pull (see docker/README.md):
//! #    docker build -f docker/Dockerfile -t gcr.io/$PROJECT/env-image .
//! # 2. a bucket for staging, and a Kubernetes secret `gcp-key` holding a
//! #    service account key `key.json` that may use it (or Workload
//! #    Identity: see the README, "Giving pods access to the bucket");
//! # 3. Application Default Credentials on this machine
//! #    (`gcloud auth application-default login`):
//! HYPE_GCP_PROJECT=my-project HYPE_GKE_LOCATION=europe-west1-b \
//! HYPE_GKE_CLUSTER=my-cluster HYPE_STAGING=gs://my-staging-bucket/hype \
//! HYPE_IMAGE=gcr.io/my-project/env-image \
//!     cargo run --example gke --features gke
//! ```

use hype::{ContainerEngineCluster, RunEnvironment, Secret, Submitter};

/// The environment variables of the pod the call runs in.
#[hype::remote]
async fn env_vars() -> Vec<String> {
    let mut vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    vars.sort();
    vars
}

fn setting(key: &str, what: &str) -> anyhow::Result<String> {
    std::env::var(key).map_err(|_| anyhow::anyhow!("set {key} to {what}"))
}

#[hype::main]
async fn main() -> anyhow::Result<()> {
    let project = setting("HYPE_GCP_PROJECT", "the Google Cloud project")?;
    let location = setting("HYPE_GKE_LOCATION", "the cluster's zone or region")?;
    let cluster_name = setting("HYPE_GKE_CLUSTER", "the GKE cluster's name")?;
    let staging = setting("HYPE_STAGING", "a gs://bucket/prefix the pods can use")?;
    let image =
        std::env::var("HYPE_IMAGE").unwrap_or_else(|_| format!("gcr.io/{project}/env-image"));

    // A GKE cluster, staging in GCS (the seed's example).
    let cluster = ContainerEngineCluster::new(&project, &location, &cluster_name);
    let submitter = Submitter::new(&staging, cluster).await?;

    // The pod reads and writes the bucket with the key mounted from the
    // `gcp-key` secret (spotify/hype#13: the pod has its own credentials).
    let env = RunEnvironment::new(image)
        .with_secret(Secret::new("gcp-key", "/etc/gcloud"))
        .with_env("GOOGLE_APPLICATION_CREDENTIALS", "/etc/gcloud/key.json")
        .with_request("cpu", "750m");

    let vars: Vec<String> = submitter.run(env_vars(), &env).await?;
    println!("env_vars: {} variables in the pod", vars.len());
    for var in &vars {
        println!("  {var}");
    }

    // The same call through the process-wide default submitter.
    Submitter::set_default(submitter.clone())?;
    let again = env_vars().run_on_cluster(&env).await?;
    println!("run_on_cluster: {} variables", again.len());

    submitter.close().await?;
    Ok(())
}
