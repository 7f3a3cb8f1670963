//! gke: the seed's example on Google Kubernetes Engine, staging in Google
//! Cloud Storage — a function returning the environment variables of the
//! pod it runs in. Its pods run in the namespace `default`, as its
//! service account `default`.
//!
//! ```text
//! # 1. the generic env image, built once (no rebuild after code changes:
//! #    this program ships itself through the bucket), pushed to an
//! #    Artifact Registry repository the cluster can pull (docker/README.md):
//! #    docker build -f docker/Dockerfile -t europe-docker.pkg.dev/$PROJECT/hype/env-image:1 .
//! # 2. a bucket for staging, and pods that may read and write it: Workload
//! #    Identity (README, "Giving pods access to the bucket"), or a
//! #    Kubernetes secret holding a service account key `key.json`, named
//! #    by HYPE_GCP_KEY_SECRET (it is mounted only then);
//! # 3. Application Default Credentials on this machine
//! #    (`gcloud auth application-default login`):
//! HYPE_GCP_PROJECT=my-project HYPE_GKE_LOCATION=europe-west1-b \
//! HYPE_GKE_CLUSTER=my-cluster HYPE_STAGING=gs://my-staging-bucket/hype \
//! HYPE_IMAGE=europe-docker.pkg.dev/my-project/hype/env-image:1 \
//!     cargo run --example gke --features gke
//! ```
//!
//! With a key secret instead of Workload Identity, add
//! `HYPE_GCP_KEY_SECRET=gcp-key`.

use hype::{ContainerEngineCluster, RunEnvironment, Submitter};

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
    let image = setting(
        "HYPE_IMAGE",
        "the env image, e.g. europe-docker.pkg.dev/PROJECT/REPOSITORY/env-image:1",
    )?;
    let key_secret = std::env::var("HYPE_GCP_KEY_SECRET").ok();

    // A GKE cluster, staging in GCS (the seed's example).
    let cluster = ContainerEngineCluster::new(&project, &location, &cluster_name);
    let submitter = Submitter::new(&staging, cluster).await?;

    // The pod reads and writes the bucket with its own credentials
    // (spotify/hype#13): Workload Identity's, or a key mounted from the
    // secret HYPE_GCP_KEY_SECRET names, only when it names one.
    let env = hype_examples::pod_credentials(
        RunEnvironment::new(image).with_request("cpu", "750m"),
        key_secret.as_deref(),
    );

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
