//! `ContainerEngineCluster` against the GKE test double
//! (`hype_tests::gke_server`): the cluster lookup in zones and regions,
//! its error cases, the Kubernetes client it builds (TLS with the
//! cluster's CA, a bearer token on every request, refreshed before it
//! expires), and Application Default Credentials that are not there.

use std::time::{Duration, Instant};

use hype::{Error, Submitter};
use hype_tests::backends::ContainerEngineCluster;
use hype_tests::gke_server::{ClusterAnswer, GkeServer};

const PROJECT: &str = "hype-test-project";

fn cluster(server: &GkeServer, location: &str, name: &str) -> ContainerEngineCluster {
    ContainerEngineCluster::new(PROJECT, location, name)
        .api_endpoint(server.api_endpoint())
        .credentials(server.credentials())
}

#[tokio::test]
async fn zonal_and_regional_clusters_are_found_and_reached_over_tls() {
    let server = GkeServer::start(Duration::from_secs(3600)).await;
    server.set_cluster(PROJECT, "europe-west1-b", "zonal", ClusterAnswer::Running);
    server.set_cluster(PROJECT, "europe-west1", "regional", ClusterAnswer::Running);
    for (location, name) in [("europe-west1-b", "zonal"), ("europe-west1", "regional")] {
        let gke = cluster(&server, location, name);
        let endpoint = gke.endpoint().await.unwrap();
        assert_eq!(endpoint.url, format!("https://{}", server.kube_endpoint()));
        assert_eq!(endpoint.status, "RUNNING");
        assert_eq!(endpoint.ca_certificates.len(), 1);

        // The client trusts the cluster's CA (and only it) and sends a token.
        let client = gke.client().await.unwrap();
        let version = client.apiserver_version().await.unwrap();
        assert_eq!(version.git_version, "v1.33.1-gke.1");
    }
    let api = server.api_requests();
    assert!(api.iter().any(
        |s| s.path == "/v1/projects/hype-test-project/locations/europe-west1/clusters/regional"
    ));
    assert!(api.iter().all(|s| s.valid), "{api:?}");
    let kube = server.kube_requests();
    assert_eq!(kube.len(), 2);
    assert!(
        kube.iter().all(|s| s.valid && s.path == "/version"),
        "{kube:?}"
    );
}

/// A server whose certificate another CA signed is refused: the client
/// trusts the cluster's CA only.
#[tokio::test]
async fn a_server_the_cluster_ca_did_not_sign_is_refused() {
    let server = GkeServer::start(Duration::from_secs(3600)).await;
    server.set_cluster(
        PROJECT,
        "europe-west1-b",
        "spoofed",
        ClusterAnswer::ForeignCa,
    );
    let client = cluster(&server, "europe-west1-b", "spoofed")
        .client()
        .await
        .unwrap();
    let err = client.apiserver_version().await.unwrap_err();
    let text = format!("{err:?}");
    assert!(text.contains("InvalidCertificate"), "{text}");
    assert!(server.kube_requests().is_empty());
}

#[tokio::test]
async fn a_missing_cluster_is_not_found() {
    let server = GkeServer::start(Duration::from_secs(3600)).await;
    let err = cluster(&server, "us-central1-a", "nope")
        .endpoint()
        .await
        .unwrap_err();
    let text = err.to_string();
    // A missing cluster is refused for good: not retried.
    assert!(matches!(err, Error::Rejected { code: 404, .. }), "{err:?}");
    assert_eq!(err.kind(), hype::ErrorKind::Other);
    assert!(text.contains("not found"), "{text}");
    assert!(
        text.contains("projects/hype-test-project/locations/us-central1-a/clusters/nope"),
        "{text}"
    );
    assert!(text.contains("gcloud container clusters list"), "{text}");

    // The same error through Submitter::new, as a user meets it.
    let dir = tempfile::tempdir().unwrap();
    let staging = format!("file://{}", dir.path().display());
    let err = Submitter::new(staging, cluster(&server, "us-central1-a", "nope"))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("not found"), "{err}");
}

#[tokio::test]
async fn permission_denied_and_a_disabled_api_are_told_apart() {
    let server = GkeServer::start(Duration::from_secs(3600)).await;
    server.set_cluster(
        PROJECT,
        "europe-west1-b",
        "locked",
        ClusterAnswer::PermissionDenied,
    );
    server.set_cluster(PROJECT, "europe-west1-b", "off", ClusterAnswer::ApiDisabled);

    let text = cluster(&server, "europe-west1-b", "locked")
        .endpoint()
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("permission denied"), "{text}");
    assert!(text.contains("container.clusters.get"), "{text}");
    assert!(text.contains("credentials given in code"), "{text}");

    let text = cluster(&server, "europe-west1-b", "off")
        .endpoint()
        .await
        .unwrap_err()
        .to_string();
    assert!(text.contains("Kubernetes Engine API is disabled"), "{text}");
    assert!(
        text.contains(
            "gcloud services enable container.googleapis.com --project hype-test-project"
        ),
        "{text}"
    );
}

#[tokio::test]
async fn a_provisioning_cluster_has_no_endpoint_yet() {
    let server = GkeServer::start(Duration::from_secs(3600)).await;
    server.set_cluster(PROJECT, "europe-west1", "new", ClusterAnswer::Provisioning);
    let text = cluster(&server, "europe-west1", "new")
        .endpoint()
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("no endpoint yet (status PROVISIONING)"),
        "{text}"
    );
}

#[tokio::test]
async fn an_unreachable_api_fails_in_seconds() {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = GkeServer::start(Duration::from_secs(3600)).await;
    let start = Instant::now();
    let err = ContainerEngineCluster::new(PROJECT, "europe-west1", "c")
        .api_endpoint(format!("http://127.0.0.1:{port}"))
        .credentials(server.credentials())
        .endpoint()
        .await
        .unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    assert!(err.to_string().contains("cannot connect"), "{err}");
}

/// Tokens that live 12 s: the Kubernetes client is used every second for
/// 15 s. google-cloud-auth refreshes a short-lived token 10 s after it was
/// issued, so the client moves to a new token before the first one
/// expires, and the server never sees an expired or missing one. On paused
/// tokio time (the client's refresh timers, the double's expiry and the
/// loop all read it), so the 15 s pass without being waited out.
#[tokio::test(start_paused = true)]
async fn the_token_is_refreshed_before_it_expires() {
    let lifetime = Duration::from_secs(12);
    let server = GkeServer::start(lifetime).await;
    server.set_cluster(
        PROJECT,
        "europe-west1-b",
        "long-lived",
        ClusterAnswer::Running,
    );
    let client = cluster(&server, "europe-west1-b", "long-lived")
        .client()
        .await
        .unwrap();
    let start = tokio::time::Instant::now();
    while start.elapsed() < lifetime + Duration::from_secs(3) {
        client.apiserver_version().await.unwrap();
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let seen = server.kube_requests();
    assert!(seen.len() >= 14, "{}", seen.len());
    assert!(
        seen.iter().all(|s| s.valid),
        "a request carried an expired or unknown token: {seen:?}"
    );
    let mut tokens: Vec<&str> = seen.iter().filter_map(|s| s.token.as_deref()).collect();
    tokens.dedup();
    assert!(tokens.len() >= 2, "the token never changed: {tokens:?}");
    // Requests after the first token's expiry used a newer one.
    let first = seen[0].token.clone();
    assert!(
        seen.iter()
            .filter(|s| s.at > seen[0].at + lifetime)
            .all(|s| s.token != first)
    );
}

/// Runs the child half of a test in a child process of this test binary,
/// with `env` set and `remove` unset: Application Default Credentials read
/// the process environment, which tests running in threads must not change.
fn in_child(test: &str, env: &[(&str, String)], remove: &[&str]) {
    let mut command = std::process::Command::new(std::env::current_exe().unwrap());
    command
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .env("HYPE_GKE_TEST_CHILD", "1");
    for (key, value) in env {
        command.env(key, value);
    }
    for key in remove {
        command.env_remove(key);
    }
    let output = command.output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains("1 passed"),
        "child {test} failed:\n{stdout}\n{stderr}"
    );
}

fn is_child() -> bool {
    std::env::var_os("HYPE_GKE_TEST_CHILD").is_some()
}

#[test]
fn no_credentials_says_where_it_looked() {
    let home = tempfile::tempdir().unwrap();
    in_child(
        "child_no_credentials",
        &[
            ("HOME", home.path().display().to_string()),
            ("GCE_METADATA_HOST", "127.0.0.1:1".to_owned()),
        ],
        &["GOOGLE_APPLICATION_CREDENTIALS"],
    );
    in_child(
        "child_missing_key_file",
        &[(
            "GOOGLE_APPLICATION_CREDENTIALS",
            "/nonexistent/hype/key.json".to_owned(),
        )],
        &[],
    );
}

#[tokio::test]
async fn child_no_credentials() {
    if !is_child() {
        return;
    }
    let start = Instant::now();
    let err = ContainerEngineCluster::new(PROJECT, "europe-west1", "c")
        .api_endpoint("http://127.0.0.1:1")
        .endpoint()
        .await
        .unwrap_err();
    let Error::CredentialsNotFound {
        purpose, looked, ..
    } = &err
    else {
        panic!("expected CredentialsNotFound, got {err:?}");
    };
    assert_eq!(
        purpose,
        "GKE cluster projects/hype-test-project/locations/europe-west1/clusters/c"
    );
    let text = err.to_string();
    assert_eq!(looked.len(), 3, "{looked:?}");
    assert!(
        text.contains("GOOGLE_APPLICATION_CREDENTIALS is not set"),
        "{text}"
    );
    assert!(
        text.contains(".config/gcloud/application_default_credentials.json does not exist"),
        "{text}"
    );
    assert!(
        text.contains("the metadata server (GCE_METADATA_HOST=127.0.0.1:1) gave no token"),
        "{text}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(20),
        "{:?}",
        start.elapsed()
    );
}

#[tokio::test]
async fn child_missing_key_file() {
    if !is_child() {
        return;
    }
    let err = ContainerEngineCluster::new(PROJECT, "europe-west1", "c")
        .api_endpoint("http://127.0.0.1:1")
        .endpoint()
        .await
        .unwrap_err();
    assert!(matches!(err, Error::CredentialsNotFound { .. }), "{err:?}");
    assert!(
        err.to_string().contains(
            "GOOGLE_APPLICATION_CREDENTIALS names /nonexistent/hype/key.json, which does not exist"
        ),
        "{err}"
    );
}

#[test]
fn hype_cluster_gke_needs_gs_staging() {
    in_child(
        "child_hype_cluster_gke_needs_gs_staging",
        &[
            ("HYPE_CLUSTER", "gke:p/europe-west1-b/c".to_owned()),
            ("HYPE_STAGING", "file:///tmp/hype-staging".to_owned()),
        ],
        &[],
    );
}

#[tokio::test]
async fn child_hype_cluster_gke_needs_gs_staging() {
    if !is_child() {
        return;
    }
    let err = Submitter::from_env().await.unwrap_err();
    assert!(matches!(err, Error::Config { .. }), "{err:?}");
    assert!(
        err.to_string().contains("needs HYPE_STAGING=gs://"),
        "{err}"
    );
}
