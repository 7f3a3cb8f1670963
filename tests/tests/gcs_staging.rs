//! GCS staging against fake-gcs-server (started per test on a free
//! loopback port, killed at the end): blobs, dedupe, corruption, missing
//! objects and buckets, a resumable upload, bounded failures, and calls
//! through the local runner whose arguments and results are staged in the
//! bucket and read by `hype-run` in the worker.
//!
//! Without the emulator these tests skip loudly; `HYPE_REQUIRE_GCS=1`
//! makes that a failure (`.ci/run` sets it).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use hype::{ByteBuf, Error, LocalCluster, RunEnvironment, Staging, Submitter};
use hype_tests::backends::GcsStaging;
use hype_tests::gcs_server::GcsServer;

const BUCKET: &str = "hype-staging";

macro_rules! emulator {
    ($test:expr) => {
        match GcsServer::start($test) {
            Some(server) => server,
            None => return,
        }
    };
}

fn bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| seed.wrapping_add((i % 251) as u8))
        .collect()
}

#[tokio::test]
async fn blobs_round_trip_and_are_uploaded_once() {
    let server = emulator!("blobs_round_trip_and_are_uploaded_once");
    server.create_bucket(BUCKET).await;
    let store = server.staging(&format!("gs://{BUCKET}/runs/a"));
    assert_eq!(store.location(), "gs://hype-staging/runs/a");

    let payload = bytes(300_000, 7);
    let blob = store.put_blob(payload.clone()).await.unwrap();
    assert_eq!(blob.len, payload.len() as u64);
    assert_eq!(
        blob.uri,
        format!("gs://{BUCKET}/runs/a/blobs/sha256/{}", blob.sha256)
    );
    let name = format!("runs/a/blobs/sha256/{}", blob.sha256);
    let first = server
        .generation(BUCKET, &name)
        .await
        .expect("blob written");

    // Staging the same bytes again, from this store and from a fresh one,
    // writes nothing: the object keeps its generation.
    assert_eq!(store.put_blob(payload.clone()).await.unwrap(), blob);
    let other = server.staging(&format!("gs://{BUCKET}/runs/a"));
    assert_eq!(other.put_blob(payload.clone()).await.unwrap(), blob);
    assert_eq!(
        server.generation(BUCKET, &name).await.as_deref(),
        Some(first.as_str()),
        "a second stage of the same blob uploaded it again"
    );
    assert_eq!(server.list(BUCKET, "runs/a/").await, vec![name]);

    assert_eq!(store.get_blob(&blob).await.unwrap(), payload);
    assert_eq!(other.get_blob(&blob).await.unwrap(), payload);
}

#[tokio::test]
async fn corruption_behind_hypes_back_is_detected() {
    let server = emulator!("corruption_behind_hypes_back_is_detected");
    server.create_bucket(BUCKET).await;
    let store = server.staging(&format!("gs://{BUCKET}"));
    let payload = bytes(100_000, 1);
    let blob = store.put_blob(payload.clone()).await.unwrap();
    let name = format!("blobs/sha256/{}", blob.sha256);

    // Same length, one byte changed.
    let mut flipped = payload.clone();
    flipped[50_000] ^= 0xff;
    server.put_raw(BUCKET, &name, flipped).await;
    match store.get_blob(&blob).await {
        Err(Error::DigestMismatch {
            uri,
            expected,
            actual,
            expected_len,
            actual_len,
            ..
        }) => {
            assert_eq!(uri, blob.uri);
            assert_eq!(expected, blob.sha256);
            assert_ne!(actual, blob.sha256);
            assert_eq!((expected_len, actual_len), (100_000, 100_000));
        }
        other => panic!("expected a digest mismatch, got {other:?}"),
    }

    // Longer than the blob: refused before it is all read.
    server.put_raw(BUCKET, &name, bytes(200_000, 1)).await;
    let err = store.get_blob(&blob).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::DigestMismatch {
                actual_len: 200_000,
                ..
            }
        ),
        "{err:?}"
    );

    // Staging the bytes again replaces the corrupt object.
    assert_eq!(store.put_blob(payload.clone()).await.unwrap(), blob);
    assert_eq!(store.get_blob(&blob).await.unwrap(), payload);
}

/// A shipped executable goes through files on both sides: staged from a
/// file (once), fetched into a file, verified on the way.
#[tokio::test]
async fn executables_are_staged_from_and_fetched_to_files() {
    let server = emulator!("executables_are_staged_from_and_fetched_to_files");
    server.create_bucket(BUCKET).await;
    let store = server.staging(&format!("gs://{BUCKET}/exe"));
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("app");
    let payload = bytes(700_000, 3);
    std::fs::write(&source, &payload).unwrap();
    let digest = hype_runtime::__tools::hash_file(&source).unwrap();
    let blob = store.put_file(&source, &digest).await.unwrap();
    assert_eq!(
        (blob.len, blob.sha256.as_str()),
        (digest.len, digest.sha256.as_str())
    );
    let name = format!("exe/blobs/sha256/{}", blob.sha256);
    let generation = server.generation(BUCKET, &name).await.expect("staged");
    assert_eq!(store.put_file(&source, &digest).await.unwrap(), blob);
    assert_eq!(
        server.generation(BUCKET, &name).await.as_deref(),
        Some(generation.as_str()),
        "staged twice"
    );

    let dest = dir.path().join("fetched");
    store.get_blob_to_file(&blob, &dest).await.unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), payload);

    let mut flipped = payload.clone();
    flipped[1] ^= 1;
    server.put_raw(BUCKET, &name, flipped).await;
    let err = store.get_blob_to_file(&blob, &dest).await.unwrap_err();
    assert!(matches!(err, Error::DigestMismatch { .. }), "{err:?}");
    server.put_raw(BUCKET, &name, bytes(800_000, 3)).await;
    let err = store.get_blob_to_file(&blob, &dest).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::DigestMismatch {
                actual_len: 800_000,
                ..
            }
        ),
        "{err:?}"
    );
}

#[tokio::test]
async fn missing_objects_are_typed() {
    let server = emulator!("missing_objects_are_typed");
    server.create_bucket(BUCKET).await;
    let store = server.staging(&format!("gs://{BUCKET}/p"));
    let blob = store.put_blob(bytes(1000, 3)).await.unwrap();
    server
        .delete(BUCKET, &format!("p/blobs/sha256/{}", blob.sha256))
        .await;
    let err = store.get_blob(&blob).await.unwrap_err();
    assert!(
        matches!(&err, Error::StagedObjectMissing { uri, .. } if *uri == blob.uri),
        "{err:?}"
    );
    let err = store
        .get_object(&format!("gs://{BUCKET}/p/outcomes/nobody"))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::StagedObjectMissing { .. }), "{err:?}");
}

#[tokio::test]
async fn a_missing_bucket_is_named() {
    let server = emulator!("a_missing_bucket_is_named");
    let store = server.staging("gs://no-such-bucket/hype");
    let err = store.put_blob(bytes(10, 0)).await.unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Staging { .. }), "{err:?}");
    assert!(
        text.contains("bucket no-such-bucket does not exist"),
        "{text}"
    );
    let blob = hype::wire::BlobRef::new("gs://no-such-bucket/hype/blobs/sha256/00", 1, "00");
    let text = store.get_blob(&blob).await.unwrap_err().to_string();
    assert!(
        text.contains("bucket no-such-bucket does not exist"),
        "{text}"
    );
    let text = store
        .put_outcome("hype-x-1", vec![1, 2, 3])
        .await
        .unwrap_err()
        .to_string();
    assert!(
        text.contains("bucket no-such-bucket does not exist"),
        "{text}"
    );
}

/// 20 MiB is above the client's 16 MiB resumable-upload threshold: the
/// upload goes through a resumable session, in one request (the harness
/// runs the emulator on port 80 so the session URL it returns works).
#[tokio::test]
async fn a_payload_above_the_resumable_threshold_round_trips() {
    let server = emulator!("a_payload_above_the_resumable_threshold_round_trips");
    if !server.resumable_uploads_work() {
        let message = "the emulator could not listen on port 80 (not root?), so resumable uploads cannot work against it";
        if std::env::var("HYPE_REQUIRE_GCS").is_ok_and(|v| v == "1") {
            panic!("{message}");
        }
        eprintln!(
            "\n*** SKIPPED a_payload_above_the_resumable_threshold_round_trips: {message} ***\n"
        );
        return;
    }
    server.create_bucket(BUCKET).await;
    let store = server.staging(&format!("gs://{BUCKET}/big"));
    let payload = bytes(20 * 1024 * 1024 + 3, 9);
    let start = Instant::now();
    let blob = store.put_blob(payload.clone()).await.unwrap();
    let back = store.get_blob(&blob).await.unwrap();
    assert!(back == payload, "the 20 MiB blob came back different");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
    let meta = server
        .object(BUCKET, &format!("big/blobs/sha256/{}", blob.sha256))
        .await
        .expect("the blob is there");
    assert_eq!(meta["size"].as_str(), Some("20971523"));
}

#[tokio::test]
async fn outcome_objects_are_per_execution_and_deletable() {
    let server = emulator!("outcome_objects_are_per_execution_and_deletable");
    server.create_bucket(BUCKET).await;
    let store = server.staging(&format!("gs://{BUCKET}/o"));
    let uri = store
        .put_outcome("hype-f-1", b"outcome".to_vec())
        .await
        .unwrap();
    assert_eq!(uri, format!("gs://{BUCKET}/o/outcomes/hype-f-1"));
    assert_eq!(store.get_object(&uri).await.unwrap(), b"outcome");
    store.delete_object(&uri).await.unwrap();
    store.delete_object(&uri).await.unwrap();
    assert!(server.list(BUCKET, "o/outcomes/").await.is_empty());
    assert!(matches!(
        store.get_object(&uri).await,
        Err(Error::StagedObjectMissing { .. })
    ));
    assert!(store.put_outcome("../escape", vec![]).await.is_err());
    assert!(store.put_outcome("a/b", vec![]).await.is_err());
}

/// A store nobody answers for fails in about a second (bounded retries),
/// and one that accepts connections and never answers fails at its
/// deadline: neither waits out the client's default five minutes.
#[tokio::test]
async fn a_broken_store_fails_in_seconds() {
    // Nothing listens: connection refused.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let store = GcsStaging::builder("gs://bucket-x")
        .endpoint(format!("http://127.0.0.1:{port}"))
        .anonymous(true)
        .build()
        .unwrap();
    let start = Instant::now();
    let err = store.put_blob(bytes(1000, 0)).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // A store out of reach is a loss of the data path, retried.
    assert!(matches!(err, Error::StagingUnavailable { .. }), "{err:?}");
    assert_eq!(err.kind(), hype::ErrorKind::Lost);
    assert!(err.to_string().contains("connect"), "{err}");
    let start = Instant::now();
    let blob = hype::wire::BlobRef::new("gs://bucket-x/blobs/sha256/00", 1, "00");
    let err = store.get_blob(&blob).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );
    // A store out of reach is a loss of the data path, retried.
    assert!(matches!(err, Error::StagingUnavailable { .. }), "{err:?}");
    assert_eq!(err.kind(), hype::ErrorKind::Lost);

    // Something listens and never answers.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let hold = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((stream, _)) = listener.accept().await {
            held.push(stream);
        }
    });
    let store = GcsStaging::builder("gs://bucket-x")
        .endpoint(format!("http://{address}"))
        .anonymous(true)
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    // The operation's deadline ends it, and names itself; the outer bound
    // only keeps a broken deadline from hanging the test.
    let err = tokio::time::timeout(Duration::from_secs(60), store.put_blob(bytes(1000, 0)))
        .await
        .expect("the store's 2 s deadline ends the call long before 60 s")
        .unwrap_err();
    // A store out of reach is a loss of the data path, retried.
    assert!(matches!(err, Error::StagingUnavailable { .. }), "{err:?}");
    assert_eq!(err.kind(), hype::ErrorKind::Lost);
    // 2 s plus 1000 bytes at the default minimum throughput.
    assert!(err.to_string().contains("within 2.00"), "{err}");
    hold.abort();
}

/// A submitter staging in the emulator, running calls in the worker
/// binary (the local runner), whose `hype-run` reaches the emulator
/// through `STORAGE_EMULATOR_HOST`.
async fn submitter(server: &GcsServer, location: &str) -> (tempfile::TempDir, Submitter) {
    let dir = tempfile::tempdir().unwrap();
    let cluster = LocalCluster::new()
        .program(common::worker())
        .secrets_dir(dir.path().join("secrets"))
        .volumes_dir(dir.path().join("volumes"));
    // A GcsStaging built in code, given to the builder as it is.
    let submitter = Submitter::builder(cluster)
        .staging(server.staging(location))
        .build()
        .await
        .unwrap();
    (dir, submitter)
}

fn emulator_env(server: &GcsServer) -> RunEnvironment {
    RunEnvironment::local().with_env("STORAGE_EMULATOR_HOST", server.endpoint())
}

#[tokio::test]
async fn large_calls_through_the_local_runner_are_staged_in_the_bucket() {
    let server = emulator!("large_calls_through_the_local_runner_are_staged_in_the_bucket");
    server.create_bucket(BUCKET).await;
    let (_dir, submitter) = submitter(&server, &format!("gs://{BUCKET}/e2e")).await;
    let env = emulator_env(&server);

    // 1 MiB each way: both the arguments and the result are staged.
    let data = bytes(1024 * 1024, 5);
    let reversed = submitter
        .run(
            hype_tests::bytes::reverse(ByteBuf::from(data.clone())),
            &env,
        )
        .await
        .unwrap();
    let mut expected = data.clone();
    expected.reverse();
    assert!(reversed.into_vec() == expected, "wrong bytes came back");
    let blobs = server.list(BUCKET, "e2e/blobs/sha256/").await;
    assert_eq!(blobs.len(), 2, "arguments and result: {blobs:?}");

    // The same arguments again: staged once, no new blob.
    submitter
        .run(hype_tests::bytes::reverse(ByteBuf::from(data)), &env)
        .await
        .unwrap();
    assert_eq!(server.list(BUCKET, "e2e/blobs/sha256/").await, blobs);

    // A large result from small arguments.
    let made = submitter
        .run(hype_tests::bytes::make(200_000, 3), &env)
        .await
        .unwrap();
    assert_eq!(made.len(), 200_000);
    assert_eq!(server.list(BUCKET, "e2e/blobs/sha256/").await.len(), 3);

    // An outcome envelope too large for a termination message: staged as
    // an outcome object, read, and deleted.
    let err = submitter
        .run(hype_tests::failures::explode_at_length(10_000), &env)
        .await
        .unwrap_err();
    match err {
        Error::RemotePanic { message, .. } => assert_eq!(message.len(), 10_000),
        other => panic!("expected a panic, got {other:?}"),
    }
    assert!(server.list(BUCKET, "e2e/outcomes/").await.is_empty());
}

#[tokio::test]
async fn small_calls_touch_no_bucket() {
    let server = emulator!("small_calls_touch_no_bucket");
    // No bucket at all: a call that needed one would fail.
    let (_dir, submitter) = submitter(&server, "gs://bucket-that-is-not-there").await;
    let env = emulator_env(&server);
    let sum = submitter
        .run(hype_tests::math::add(40, 2), &env)
        .await
        .unwrap();
    assert_eq!(sum, 42);
    let count = submitter
        .run(hype_tests::math::word_count("a b c".into()), &env)
        .await
        .unwrap();
    assert_eq!(count, 3);
}

/// `hype-run` in the worker with no emulator variable and no credentials
/// anywhere: the call fails, saying where hype looked.
#[tokio::test]
async fn a_pod_without_credentials_says_where_it_looked() {
    let server = emulator!("a_pod_without_credentials_says_where_it_looked");
    server.create_bucket(BUCKET).await;
    // The call's process must see no credentials whatever the caller's
    // environment holds: the worker runs through a launcher that unsets
    // GOOGLE_APPLICATION_CREDENTIALS (RunEnvironment can set variables,
    // not remove inherited ones).
    let dir = tempfile::tempdir().unwrap();
    let launcher = dir.path().join("worker-without-credentials");
    std::fs::write(
        &launcher,
        format!(
            "#!/bin/sh\nunset GOOGLE_APPLICATION_CREDENTIALS\nexec '{}' \"$@\"\n",
            common::worker().display()
        ),
    )
    .unwrap();
    {
        use std::os::unix::fs::PermissionsExt as _;
        std::fs::set_permissions(&launcher, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let submitter = Submitter::builder(
        LocalCluster::new()
            .program(&launcher)
            .secrets_dir(dir.path().join("secrets"))
            .volumes_dir(dir.path().join("volumes")),
    )
    .staging(server.staging(&format!("gs://{BUCKET}/nocreds")))
    .build()
    .await
    .unwrap();
    let home = dir.path().join("empty-home");
    std::fs::create_dir_all(&home).unwrap();
    let env = RunEnvironment::local()
        .with_env("HOME", home.display().to_string())
        .with_env("GCE_METADATA_HOST", "127.0.0.1:1")
        .with_timeout(Duration::from_secs(60));
    let start = Instant::now();
    let err = submitter
        .run(
            hype_tests::bytes::reverse(ByteBuf::from(bytes(100_000, 1))),
            &env,
        )
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(text.contains("no Google Cloud credentials found"), "{text}");
    assert!(
        text.contains("GOOGLE_APPLICATION_CREDENTIALS is not set"),
        "{text}"
    );
    assert!(
        text.contains("application_default_credentials.json"),
        "{text}"
    );
    assert!(text.contains("GCE_METADATA_HOST=127.0.0.1:1"), "{text}");
    assert!(
        start.elapsed() < Duration::from_secs(30),
        "{:?}",
        start.elapsed()
    );
}

/// The Kubernetes runner with GCS staging: pods of the Kubernetes API test
/// double (the worker as the image) read staged arguments from the
/// emulator and stage their large results there.
#[tokio::test]
async fn large_calls_through_kubernetes_pods_are_staged_in_the_bucket() {
    use hype_tests::backends::KubeCluster;
    use hype_tests::kube_double::KubeTestServer;

    let server = emulator!("large_calls_through_kubernetes_pods_are_staged_in_the_bucket");
    server.create_bucket(BUCKET).await;
    let kube = KubeTestServer::start(common::backend::worker_processes());
    let store: Arc<dyn Staging> = Arc::new(server.staging(&format!("gs://{BUCKET}/kube")));
    let submitter = Submitter::builder(KubeCluster::from_client(kube.client()))
        .staging(store)
        .ship_executable(false)
        .build()
        .await
        .unwrap();
    let env =
        RunEnvironment::new(hype_tests::IMAGE).with_env("STORAGE_EMULATOR_HOST", server.endpoint());

    let data = bytes(512 * 1024, 9);
    let call = submitter.run(
        hype_tests::bytes::reverse(ByteBuf::from(data.clone())),
        &env,
    );
    let reversed = tokio::time::timeout(Duration::from_secs(60), call)
        .await
        .expect("bounded")
        .unwrap();
    let mut expected = data;
    expected.reverse();
    assert!(reversed.into_vec() == expected, "wrong bytes came back");
    let blobs = server.list(BUCKET, "kube/blobs/sha256/").await;
    assert_eq!(blobs.len(), 2, "arguments and result staged: {blobs:?}");

    submitter.close().await.unwrap();
    assert!(kube.pods().is_empty(), "no pod remains");
    kube.shutdown().await;
}
