//! The Docker runner removes what dead owners left when a submitter
//! connects (`hype_runtime::__tools::reap`, which `hype gc
//! --docker` shares): a container and a transient volume of a dead owner
//! go; a live owner's stay. Skips loudly without an engine unless
//! `HYPE_REQUIRE_DOCKER=1`.

use std::collections::HashMap;
use std::path::Path;
use std::time::SystemTime;

use bollard::models::{ContainerCreateBody, VolumeCreateOptions};
use bollard::query_parameters::{
    CreateContainerOptions, InspectContainerOptions, RemoveContainerOptions, RemoveVolumeOptions,
};
use hype_runtime::__tools::Owner;
use hype_runtime::{DockerCluster, Submitter};
use hype_tests::docker_image;

#[tokio::test]
async fn connecting_removes_dead_owners_containers_and_transient_volumes() {
    let Some(docker) = docker_image::engine_or_skip("the Docker runner's reaping").await else {
        return;
    };
    let image = docker_image::worker_image(&docker, Path::new(env!("CARGO_BIN_EXE_hype")))
        .await
        .expect("build the test image");
    let tag = format!(
        "{}{:x}",
        std::process::id(),
        SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .unwrap()
            .subsec_nanos()
    );
    let dead = format!(
        "{}.1.00000000@{}",
        std::process::id(),
        Owner::current().host()
    );
    let alive = Owner::current().to_string();
    let labels = |owner: &str, extra: &[(&str, &str)]| -> HashMap<String, String> {
        [
            ("app.kubernetes.io/managed-by", "hype"),
            ("hype.dev/session", tag.as_str()),
            ("hype.dev/owner", owner),
        ]
        .iter()
        .chain(extra)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
    };
    let (dead_c, live_c) = (
        format!("hype-reap-dead-{tag}"),
        format!("hype-reap-live-{tag}"),
    );
    let (dead_v, live_v) = (
        format!("hype-reap-dead-{tag}"),
        format!("hype-reap-live-{tag}"),
    );
    for (name, owner) in [(&dead_c, &dead), (&live_c, &alive)] {
        let body = ContainerCreateBody {
            image: Some(image.clone()),
            labels: Some(labels(owner, &[])),
            ..Default::default()
        };
        let options = CreateContainerOptions {
            name: Some(name.clone()),
            ..Default::default()
        };
        docker
            .create_container(Some(options), body)
            .await
            .expect("create a container");
    }
    for (name, owner) in [(&dead_v, &dead), (&live_v, &alive)] {
        docker
            .create_volume(VolumeCreateOptions {
                name: Some(name.clone()),
                labels: Some(labels(owner, &[("hype.dev/lifetime", "transient")])),
                ..Default::default()
            })
            .await
            .expect("create a volume");
    }

    let dir = tempfile::tempdir().unwrap();
    let submitter = Submitter::builder(DockerCluster::new())
        .staging(format!("file://{}", dir.path().display()))
        // No calls run here: the test harness needs not be shippable.
        .ship_executable(false)
        .build()
        .await
        .expect("a submitter on the engine");
    let exists = |name: String| {
        let docker = docker.clone();
        async move {
            docker
                .inspect_container(&name, None::<InspectContainerOptions>)
                .await
                .is_ok()
        }
    };
    assert!(
        !exists(dead_c.clone()).await,
        "a dead owner's container is left"
    );
    assert!(
        exists(live_c.clone()).await,
        "a live owner's container went"
    );
    assert!(
        docker.inspect_volume(&dead_v).await.is_err(),
        "a dead owner's volume is left"
    );
    assert!(
        docker.inspect_volume(&live_v).await.is_ok(),
        "a live owner's volume went"
    );
    submitter.close().await.expect("close");

    let options = RemoveContainerOptions {
        force: true,
        ..Default::default()
    };
    let _ = docker.remove_container(&live_c, Some(options)).await;
    let _ = docker
        .remove_volume(&live_v, None::<RemoveVolumeOptions>)
        .await;
}
