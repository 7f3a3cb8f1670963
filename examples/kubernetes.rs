//! kubernetes: the seed's example on any Kubernetes cluster — a function
//! returning the container's environment, then the volume flow (one
//! read-write writer, then 10 read-only readers in parallel).
//!
//! ```text
//! # 1. the generic env image, built once and pushed where the cluster
//! #    pulls from (see docker/README.md):
//! docker build -f docker/Dockerfile -t europe-docker.pkg.dev/my-project/hype/env-image:1 .
//! # 2. kubectl pointing at the cluster (the current context is used), and
//! #    a staging store the pods can read and write (this program ships
//! #    itself there; on GCS, the README's "Who needs what in Google Cloud"):
//! HYPE_IMAGE=europe-docker.pkg.dev/my-project/hype/env-image:1 HYPE_STAGING=gs://bucket/hype \
//! HYPE_STORAGE_CLASS=standard \
//!     cargo run --example kubernetes --features kubernetes,gcs
//! ```
//!
//! `HYPE_KUBE_CONTEXT` picks another kubeconfig context, `HYPE_NAMESPACE`
//! another namespace. Without `HYPE_STAGING`, staging is a local temporary
//! directory the pods cannot read: the program is then not shipped, and
//! the image must have it baked in (`docker/baked.Dockerfile`); the payloads
//! here are small enough to travel inline.

use hype::{KubeCluster, RunEnvironment, Submitter, VolumeRequest};

/// The environment variables of the container the call runs in.
#[hype::remote]
async fn container_env() -> Vec<String> {
    let mut vars: Vec<String> = std::env::vars().map(|(k, v)| format!("{k}={v}")).collect();
    vars.sort();
    vars
}

/// Writes a word to the volume mounted at /data.
#[hype::remote]
fn write_word(word: String) -> Result<(), String> {
    std::fs::write(hype::mount_path("/data/word"), word).map_err(|e| e.to_string())
}

/// Reads the word from the volume mounted at /data.
#[hype::remote]
fn read_word() -> Result<String, String> {
    std::fs::read_to_string(hype::mount_path("/data/word")).map_err(|e| e.to_string())
}

#[hype::main]
async fn main() -> anyhow::Result<()> {
    let image = std::env::var("HYPE_IMAGE").map_err(|_| {
        anyhow::anyhow!(
            "set HYPE_IMAGE to an env image the cluster can pull (see docker/README.md)"
        )
    })?;
    let storage_class =
        std::env::var("HYPE_STORAGE_CLASS").unwrap_or_else(|_| "standard".to_owned());
    let mut cluster = KubeCluster::new();
    if let Ok(context) = std::env::var("HYPE_KUBE_CONTEXT") {
        cluster = cluster.context(context);
    }
    if let Ok(namespace) = std::env::var("HYPE_NAMESPACE") {
        cluster = cluster.namespace(namespace);
    }
    let submitter = match std::env::var("HYPE_STAGING") {
        Ok(staging) => Submitter::new(staging, cluster).await?,
        Err(_) => {
            let staging = std::env::temp_dir().join("hype-example-staging");
            Submitter::builder(cluster)
                .staging(format!("file://{}", staging.display()))
                .ship_executable(false)
                .build()
                .await?
        }
    };

    let env = RunEnvironment::new(image).with_request("cpu", "100m");
    let vars = submitter.run(container_env(), &env).await?;
    println!("container environment:");
    for var in vars
        .iter()
        .filter(|v| v.starts_with("HYPE_") || v.starts_with("KUBERNETES_SERVICE_HOST"))
    {
        println!("  {var}");
    }

    let volume = VolumeRequest::new(storage_class, "1Gi");
    submitter
        .run(
            write_word("hello from the writer".into()),
            &env.clone().with_mount(volume.mount_read_write("/data")),
        )
        .await?
        .map_err(anyhow::Error::msg)?;
    let readers = env.with_mount(volume.mount_read_only("/data"));
    let words =
        futures::future::try_join_all((0..10).map(|_| submitter.run(read_word(), &readers)))
            .await?;
    for (i, word) in words.into_iter().enumerate() {
        println!("reader {i}: {}", word.map_err(anyhow::Error::msg)?);
    }
    submitter.close().await?;
    Ok(())
}
