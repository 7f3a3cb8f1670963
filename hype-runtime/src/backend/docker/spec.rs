//! The container a call runs in, built from its job and environment. No
//! engine calls here (only a look at the secrets directory), so the mapping
//! is unit-tested.
//!
//! | environment | container |
//! |---|---|
//! | image | `Image`; the image's `ENTRYPOINT` must be `hype-run` |
//! | the call | `Cmd = [<call>]` (after the cluster's command prefix, if any) |
//! | env vars | `Env`, plus `HYPE_EXECUTION_ID` and `HYPE_TERMINATION_MESSAGE_PATH`, which win |
//! | secret `NAME` at `PATH` | read-only bind mount of `<secrets dir>/NAME` at `PATH` |
//! | volume mount | named Docker volume at the mount path, read-only if asked |
//! | `cpu` limit (else request) | `NanoCpus` |
//! | `memory` limit (else request) | `Memory`, and `MemorySwap` equal to it (no swap, as on Kubernetes) |
//! | staging directory | bind mount at the same path, so staged URIs stay valid |
//! | termination message | bind mount of a per-call host directory at [`TERMINATION_DIR`] |
//! | the shipped executable (when the submitter ships one) | read-only bind mount at [`SHIPPED_EXECUTABLE`], which is the `Entrypoint`; `Cmd = [<call>]` |
//! | the image's name | `HYPE_IMAGE`, for errors the executable reports |
//! | user ([`RunEnvironment::with_run_as_user`]) | `User: "uid:uid"`; default `65532:65532`, or `0:0` when a volume is mounted read-write and no user is set (see below) |
//! | — | `SecurityOpt: ["no-new-privileges"]`, `CapDrop: ["ALL"]` |
//! | read-only root ([`RunEnvironment::with_read_only_root`], default on) | `ReadonlyRootfs`, and a tmpfs at `/tmp` (where the launcher's cache is) |
//!
//! Docker creates named volumes owned by root, mode 0755, and has no
//! `fsGroup` to give them to the call's group: a call that mounts a
//! volume read-write runs as root (still without capabilities and
//! privilege escalation) unless the environment names its user.
//!
//! Labels: `app.kubernetes.io/managed-by=hype`, `hype.dev/session`,
//! `hype.dev/function` (the last path segment, label-safe),
//! `hype.dev/function-id` and `hype.dev/execution-id`, as on the pods, and
//! `hype.dev/owner` (this process, [`Owner::current`]), which transient
//! volumes carry too: the next submitter and `hype gc --docker` remove
//! what a dead owner left ([`super::reap`]).

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountTypeEnum};

use crate::backend::Job;
use crate::backend::labels::{
    self, LABEL_EXECUTION_ID, LABEL_FUNCTION, LABEL_FUNCTION_ID, LABEL_LIFETIME, LABEL_OWNER,
    LABEL_SIZE, LABEL_STORAGE_CLASS, label_value,
};
use crate::environment::quantity;
use crate::environment::{DEFAULT_RUN_AS_USER, RunEnvironment, VolumeLifetime, VolumeRequest};
use crate::error::Error;
use crate::owner::Owner;

/// Where the per-call termination directory is mounted in the container.
pub const TERMINATION_DIR: &str = "/run/hype";
/// Where a shipped executable is mounted in the container, and run as its
/// entrypoint: argv\[0\]'s basename is `hype-run`, so the program dispatches.
pub const SHIPPED_EXECUTABLE: &str = "/run/hype-bin/hype-run";

/// The writable directory of a read-only root filesystem.
pub const TMP_DIR: &str = "/tmp";

/// The tmpfs at [`TMP_DIR`]: like a host's `/tmp` (sticky, world-writable),
/// and executables may run from it (the launcher's cache is there).
const TMPFS_OPTIONS: &str = "rw,exec,nosuid,nodev,mode=1777";

/// The termination message's file name in that directory.
pub const TERMINATION_FILE: &str = "termination-log";

/// Everything a call's container is made from.
#[derive(Debug, Clone)]
pub struct ContainerRequest<'a> {
    /// The call.
    pub job: &'a Job,
    /// Its environment.
    pub env: &'a RunEnvironment,
    /// The submitter session.
    pub session: &'a str,
    /// The staging directory on the host (mounted at the same path).
    pub staging_dir: &'a Path,
    /// The call's termination directory on the host.
    pub termination_dir: &'a Path,
    /// Where secrets are: secret `NAME` is `secrets_dir/NAME`.
    pub secrets_dir: &'a Path,
    /// Arguments before the call in `Cmd` (empty: the image's entrypoint
    /// is `hype-run`).
    pub command_prefix: &'a [String],
}

/// A container ready to be created.
#[derive(Debug, Clone)]
pub struct ContainerPlan {
    /// The image, as the environment names it.
    pub image: String,
    /// The create request.
    pub body: ContainerCreateBody,
    /// The volumes the container mounts, once each.
    pub volumes: Vec<VolumeRequest>,
    /// The memory limit as written, for [`Error::OutOfMemory`].
    pub memory_limit: Option<String>,
}

/// The engine's label filter of a session's objects.
pub(crate) fn session_filter(session: &str) -> HashMap<String, Vec<String>> {
    HashMap::from([(
        "label".to_owned(),
        labels::session_selector_terms(session).to_vec(),
    )])
}

/// The labels of a volume hype creates: a transient one's session and
/// owner (none when it is kept on exit), a persistent one's neither.
pub(crate) fn volume_labels(volume: &VolumeRequest, session: &str) -> HashMap<String, String> {
    let transient = volume.lifetime() == VolumeLifetime::Transient;
    let mut labels: HashMap<String, String> = if transient {
        let mut labels: HashMap<String, String> = labels::session_labels(session);
        // One kept on exit outlives its owner on purpose: no owner, so
        // that no reaper takes it.
        if !volume.is_kept_on_exit() {
            labels.insert(LABEL_OWNER.to_owned(), Owner::current().to_string());
        }
        labels
    } else {
        labels::managed_labels()
    };
    labels.insert(
        LABEL_LIFETIME.to_owned(),
        if transient { "transient" } else { "persistent" }.to_owned(),
    );
    labels.insert(
        LABEL_STORAGE_CLASS.to_owned(),
        label_value(volume.storage_class()),
    );
    labels.insert(LABEL_SIZE.to_owned(), label_value(volume.size()));
    labels
}

/// The resource amount the container is limited to: the limit, else the
/// request (Docker has no separate request).
fn amount<'e>(env: &'e RunEnvironment, resource: &str) -> Option<&'e str> {
    env.limits()
        .get(resource)
        .or_else(|| env.requests().get(resource))
        .map(String::as_str)
}

/// Builds the container of a call; reports every problem at once as
/// [`Error::InvalidEnvironment`].
pub fn build(request: &ContainerRequest<'_>) -> Result<ContainerPlan, Error> {
    let ContainerRequest {
        job,
        env,
        session,
        staging_dir,
        termination_dir,
        secrets_dir,
        command_prefix,
    } = request;
    let mut problems = Vec::new();

    let image = match env.image() {
        Some(image) if !image.trim().is_empty() => image.to_owned(),
        _ => {
            problems.push(
                "the Docker runner needs an image: use RunEnvironment::new(\"my-env-image:tag\") (or .with_image(...)) with an image whose ENTRYPOINT is hype-run (see docker/README.md); RunEnvironment::local() has none".to_owned(),
            );
            String::new()
        }
    };

    let path_text = |path: &Path, what: &str, problems: &mut Vec<String>| -> String {
        match path.to_str() {
            Some(text) => text.to_owned(),
            None => {
                problems.push(format!("{what} {} is not UTF-8", path.display()));
                String::new()
            }
        }
    };

    let mut mounts = vec![
        Mount {
            typ: Some(MountTypeEnum::BIND),
            source: Some(path_text(
                staging_dir,
                "the staging directory",
                &mut problems,
            )),
            target: Some(path_text(
                staging_dir,
                "the staging directory",
                &mut problems,
            )),
            read_only: Some(false),
            ..Default::default()
        },
        Mount {
            typ: Some(MountTypeEnum::BIND),
            source: Some(path_text(
                termination_dir,
                "the termination directory",
                &mut problems,
            )),
            target: Some(TERMINATION_DIR.to_owned()),
            read_only: Some(false),
            ..Default::default()
        },
    ];
    if let Some(executable) = &job.executable {
        mounts.push(Mount {
            typ: Some(MountTypeEnum::BIND),
            source: Some(path_text(
                &executable.path,
                "the shipped executable",
                &mut problems,
            )),
            target: Some(SHIPPED_EXECUTABLE.to_owned()),
            read_only: Some(true),
            ..Default::default()
        });
    }
    for secret in env.secrets() {
        let dir = secrets_dir.join(secret.name());
        if !dir.is_dir() {
            problems.push(format!(
                "secret {} has no local directory {}: create it with one file per key, or point HYPE_LOCAL_SECRETS (or DockerCluster::secrets_dir) at a directory with one folder per secret",
                secret.name(),
                dir.display()
            ));
            continue;
        }
        mounts.push(Mount {
            typ: Some(MountTypeEnum::BIND),
            source: Some(path_text(&dir, "secret directory", &mut problems)),
            target: Some(path_text(secret.mount_path(), "mount path", &mut problems)),
            read_only: Some(true),
            ..Default::default()
        });
    }
    let mut volumes: BTreeMap<String, VolumeRequest> = BTreeMap::new();
    for mount in env.mounts() {
        volumes
            .entry(mount.volume().name().to_owned())
            .or_insert_with(|| mount.volume().clone());
        mounts.push(Mount {
            typ: Some(MountTypeEnum::VOLUME),
            source: Some(mount.volume().name().to_owned()),
            target: Some(path_text(mount.mount_path(), "mount path", &mut problems)),
            read_only: Some(mount.is_read_only()),
            ..Default::default()
        });
    }

    let nano_cpus = amount(env, "cpu").and_then(|cpu| {
        quantity::nano_cpus(cpu)
            .map_err(|err| problems.push(format!("cpu: {err}")))
            .ok()
    });
    let memory_limit = amount(env, "memory").map(str::to_owned);
    let memory = memory_limit.as_deref().and_then(|memory| {
        quantity::memory_bytes(memory)
            .map_err(|err| problems.push(format!("memory: {err}")))
            .ok()
    });
    for resource in env.limits().keys().chain(env.requests().keys()) {
        if resource != "cpu" && resource != "memory" {
            tracing::debug!(resource, "the Docker runner ignores this resource");
        }
    }
    if env.base_pod().is_some() {
        tracing::debug!("the Docker runner ignores the environment's base pod");
    }
    for option in env.pod_only_options() {
        tracing::debug!(
            option,
            "the Docker runner ignores this Kubernetes-only option"
        );
    }

    if !problems.is_empty() {
        return Err(Error::InvalidEnvironment { problems });
    }

    let termination_path = format!("{TERMINATION_DIR}/{TERMINATION_FILE}");
    let mut environment: Vec<String> = env
        .env_vars()
        .iter()
        .filter(|(key, _)| {
            key != "HYPE_EXECUTION_ID"
                && key != "HYPE_TERMINATION_MESSAGE_PATH"
                && key != "HYPE_IMAGE"
                && !job.env.iter().any(|(own, _)| own == key)
        })
        .chain(job.env.iter())
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    environment.push(format!("HYPE_EXECUTION_ID={}", job.execution_id));
    environment.push(format!("HYPE_TERMINATION_MESSAGE_PATH={termination_path}"));
    environment.push(format!("HYPE_IMAGE={image}"));

    let mut labels: HashMap<String, String> = labels::session_labels(session);
    let short_name = job.function.rsplit("::").next().unwrap_or(job.function);
    labels.insert(LABEL_FUNCTION.to_owned(), label_value(short_name));
    labels.insert(LABEL_FUNCTION_ID.to_owned(), job.function.to_owned());
    labels.insert(LABEL_EXECUTION_ID.to_owned(), job.execution_id.clone());
    labels.insert(LABEL_OWNER.to_owned(), Owner::current().to_string());

    // A shipped executable is the entrypoint itself: no prefix.
    let (entrypoint, mut cmd) = match &job.executable {
        Some(_) => (Some(vec![SHIPPED_EXECUTABLE.to_owned()]), Vec::new()),
        None => (None, command_prefix.to_vec()),
    };
    cmd.push(job.call.clone());

    let writes_a_volume = env.mounts().iter().any(|m| !m.is_read_only());
    let uid = env.run_as_user().unwrap_or(if writes_a_volume {
        0
    } else {
        DEFAULT_RUN_AS_USER
    });
    let read_only_root = env.read_only_root().unwrap_or(true);
    let body = ContainerCreateBody {
        image: Some(image.clone()),
        user: Some(format!("{uid}:{uid}")),
        entrypoint,
        cmd: Some(cmd),
        env: Some(environment),
        labels: Some(labels),
        hostname: Some(job.execution_id.clone()),
        attach_stdout: Some(false),
        attach_stderr: Some(false),
        tty: Some(false),
        open_stdin: Some(false),
        host_config: Some(HostConfig {
            mounts: Some(mounts),
            nano_cpus,
            memory,
            memory_swap: memory,
            auto_remove: Some(false),
            security_opt: Some(vec!["no-new-privileges".to_owned()]),
            cap_drop: Some(vec!["ALL".to_owned()]),
            readonly_rootfs: Some(read_only_root),
            tmpfs: read_only_root
                .then(|| HashMap::from([(TMP_DIR.to_owned(), TMPFS_OPTIONS.to_owned())])),
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(ContainerPlan {
        image,
        body,
        volumes: volumes.into_values().collect(),
        memory_limit,
    })
}

/// `image` with `:latest` when it names neither tag nor digest: pulling
/// an untagged name through the API would fetch every tag.
pub fn with_default_tag(image: &str) -> String {
    let last = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') || last.contains(':') {
        image.to_owned()
    } else {
        format!("{image}:latest")
    }
}

/// The host path of a `file://` staging location.
pub fn staging_dir(location: &str) -> Result<PathBuf, Error> {
    match location.strip_prefix("file://") {
        Some(path) if path.starts_with('/') => Ok(PathBuf::from(path)),
        _ => Err(Error::Config {
            message: format!(
                "the Docker runner bind-mounts the staging directory into its containers, so it needs local staging (file:///absolute/dir); {location} is not: use Submitter::new(\"file:///some/dir\", DockerCluster::new()) or HYPE_STAGING=file:///some/dir"
            ),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::labels::{LABEL_MANAGED_BY, LABEL_SESSION};
    use crate::environment::{Secret, VolumeRequest};

    fn job() -> Job {
        Job::new(
            "my_crate::jobs::word_count",
            "hype-word-count-abcd1234",
            "inline:AAAA".to_owned(),
        )
    }

    fn request<'a>(
        job: &'a Job,
        env: &'a RunEnvironment,
        secrets: &'a Path,
        prefix: &'a [String],
    ) -> ContainerRequest<'a> {
        ContainerRequest {
            job,
            env,
            session: "sess1",
            staging_dir: Path::new("/tmp/staging"),
            termination_dir: Path::new("/tmp/work/hype-word-count-abcd1234"),
            secrets_dir: secrets,
            command_prefix: prefix,
        }
    }

    #[test]
    fn the_container_carries_the_call_and_its_environment() {
        let secrets = tempfile::tempdir().unwrap();
        std::fs::create_dir(secrets.path().join("gcp-key")).unwrap();
        let data = VolumeRequest::persistent("data", "standard", "1Gi");
        let env = RunEnvironment::new("env:1")
            .with_env("GREETING", "hej")
            .with_env("HYPE_EXECUTION_ID", "spoofed")
            .with_secret(Secret::new("gcp-key", "/etc/gcloud"))
            .with_mount(data.mount_read_only("/data"))
            .with_mount(data.mount_read_write("/data-rw"))
            .with_request("cpu", "750m")
            .with_request("memory", "1Gi")
            .with_limit("memory", "512Mi");
        let job = job();
        let plan = build(&request(&job, &env, secrets.path(), &[])).unwrap();
        let body = &plan.body;
        assert_eq!(plan.image, "env:1");
        assert_eq!(body.cmd.as_deref(), Some(&["inline:AAAA".to_owned()][..]));
        let vars = body.env.as_ref().unwrap();
        assert!(vars.contains(&"GREETING=hej".to_owned()));
        assert!(vars.contains(&"HYPE_EXECUTION_ID=hype-word-count-abcd1234".to_owned()));
        assert!(!vars.iter().any(|v| v.contains("spoofed")), "{vars:?}");
        assert!(
            vars.contains(&"HYPE_TERMINATION_MESSAGE_PATH=/run/hype/termination-log".to_owned())
        );
        let labels = body.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_MANAGED_BY], "hype");
        assert_eq!(labels[LABEL_SESSION], "sess1");
        assert_eq!(labels[LABEL_FUNCTION], "word_count");
        assert_eq!(labels[LABEL_FUNCTION_ID], "my_crate::jobs::word_count");
        assert_eq!(labels[LABEL_EXECUTION_ID], "hype-word-count-abcd1234");
        assert_eq!(labels[LABEL_OWNER], Owner::current().to_string());
        let host = body.host_config.as_ref().unwrap();
        assert_eq!(host.nano_cpus, Some(750_000_000));
        assert_eq!(
            host.memory,
            Some(512 * 1024 * 1024),
            "the limit wins over the request"
        );
        assert_eq!(host.memory_swap, host.memory);
        assert_eq!(plan.memory_limit.as_deref(), Some("512Mi"));
        let mounts = host.mounts.as_ref().unwrap();
        let at = |target: &str| {
            mounts
                .iter()
                .find(|m| m.target.as_deref() == Some(target))
                .unwrap_or_else(|| panic!("no mount at {target}: {mounts:#?}"))
        };
        assert_eq!(at("/tmp/staging").source.as_deref(), Some("/tmp/staging"));
        assert_eq!(at("/tmp/staging").read_only, Some(false));
        assert_eq!(
            at(TERMINATION_DIR).source.as_deref(),
            Some("/tmp/work/hype-word-count-abcd1234")
        );
        let secret = at("/etc/gcloud");
        assert_eq!(secret.typ, Some(MountTypeEnum::BIND));
        assert_eq!(secret.read_only, Some(true));
        assert_eq!(
            secret.source.as_deref(),
            secrets.path().join("gcp-key").to_str()
        );
        assert_eq!(at("/data").typ, Some(MountTypeEnum::VOLUME));
        assert_eq!(at("/data").source.as_deref(), Some("data"));
        assert_eq!(at("/data").read_only, Some(true));
        assert_eq!(at("/data-rw").read_only, Some(false));
        assert_eq!(plan.volumes.len(), 1, "one volume, mounted twice");
    }

    #[test]
    fn a_shipped_executable_is_mounted_read_only_and_is_the_entrypoint() {
        let env = RunEnvironment::new("debian:12");
        let mut job = job();
        job.executable = Some(crate::backend::JobExecutable {
            path: PathBuf::from("/home/me/target/release/app"),
            arch: crate::backend::Arch::X86_64,
            blob: None,
        });
        let prefix = vec!["ignored".to_owned()];
        let plan = build(&request(&job, &env, Path::new("/nonexistent"), &prefix)).unwrap();
        let body = &plan.body;
        assert_eq!(
            body.entrypoint.as_deref(),
            Some(&[SHIPPED_EXECUTABLE.to_owned()][..])
        );
        assert!(SHIPPED_EXECUTABLE.ends_with("/hype-run"));
        assert_eq!(body.cmd.as_deref(), Some(&["inline:AAAA".to_owned()][..]));
        let mounts = body.host_config.as_ref().unwrap().mounts.as_ref().unwrap();
        let exe = mounts
            .iter()
            .find(|m| m.target.as_deref() == Some(SHIPPED_EXECUTABLE))
            .expect("the executable is mounted");
        assert_eq!(exe.source.as_deref(), Some("/home/me/target/release/app"));
        assert_eq!(exe.read_only, Some(true));
        let vars = body.env.as_ref().unwrap();
        assert!(
            vars.contains(&"HYPE_IMAGE=debian:12".to_owned()),
            "{vars:?}"
        );
        // Without one, the image's own entrypoint runs.
        let plan = build(&request(&self::job(), &env, Path::new("/nonexistent"), &[])).unwrap();
        assert_eq!(plan.body.entrypoint, None);
    }

    #[test]
    fn kubernetes_only_options_are_ignored_and_cpu_and_memory_apply() {
        use crate::environment::{Gpu, TaintEffect, Toleration};
        let env = RunEnvironment::new("env:1")
            .with_cpu("2")
            .with_memory("1Gi")
            .with_gpu(Gpu::nvidia(1).model("nvidia-l4"))
            .with_spot(true)
            .with_node_selector("pool", "batch")
            .with_toleration(Toleration::exists("k", TaintEffect::NoSchedule))
            .with_priority_class("low")
            .with_service_account("reader")
            .with_service_account_token(true)
            .with_labels([("team", "data")])
            .with_annotations([("note", "text")]);
        assert_eq!(env.pod_only_options().len(), 9);
        let job = job();
        let plan = build(&request(&job, &env, Path::new("/nonexistent"), &[])).unwrap();
        let host = plan.body.host_config.as_ref().unwrap();
        assert_eq!(host.nano_cpus, Some(2_000_000_000));
        assert_eq!(host.memory, Some(1 << 30));
    }

    #[test]
    fn calls_run_as_65532_without_privileges_on_a_read_only_root() {
        let job = job();
        let env = RunEnvironment::new("env:1");
        let plan = build(&request(&job, &env, Path::new("/nonexistent"), &[])).unwrap();
        assert_eq!(plan.body.user.as_deref(), Some("65532:65532"));
        let host = plan.body.host_config.as_ref().unwrap();
        assert_eq!(
            host.security_opt.as_deref(),
            Some(&["no-new-privileges".to_owned()][..])
        );
        assert_eq!(host.cap_drop.as_deref(), Some(&["ALL".to_owned()][..]));
        assert_eq!(host.readonly_rootfs, Some(true));
        assert_eq!(host.tmpfs.as_ref().unwrap()[TMP_DIR], TMPFS_OPTIONS);

        let relaxed = env.with_run_as_user(1000).with_read_only_root(false);
        let plan = build(&request(&job, &relaxed, Path::new("/nonexistent"), &[])).unwrap();
        assert_eq!(plan.body.user.as_deref(), Some("1000:1000"));
        let host = plan.body.host_config.as_ref().unwrap();
        assert_eq!(host.readonly_rootfs, Some(false));
        assert_eq!(host.tmpfs, None);
        assert_eq!(host.cap_drop.as_deref(), Some(&["ALL".to_owned()][..]));

        // Named volumes are root's: a writer runs as root unless told.
        let volume = VolumeRequest::new("standard", "1Gi");
        let writer = RunEnvironment::new("env:1").with_mount(volume.mount_read_write("/d"));
        let plan = build(&request(&job, &writer, Path::new("/nonexistent"), &[])).unwrap();
        assert_eq!(plan.body.user.as_deref(), Some("0:0"));
        let reader = RunEnvironment::new("env:1").with_mount(volume.mount_read_only("/d"));
        let plan = build(&request(&job, &reader, Path::new("/nonexistent"), &[])).unwrap();
        assert_eq!(plan.body.user.as_deref(), Some("65532:65532"));
        let named = writer.with_run_as_user(65532);
        let plan = build(&request(&job, &named, Path::new("/nonexistent"), &[])).unwrap();
        assert_eq!(plan.body.user.as_deref(), Some("65532:65532"));
    }

    #[test]
    fn requests_stand_in_for_missing_limits_and_the_prefix_comes_first() {
        let env = RunEnvironment::new("env:1").with_request("cpu", "2");
        let job = job();
        let prefix = vec!["hype-run".to_owned()];
        let plan = build(&request(&job, &env, Path::new("/nonexistent"), &prefix)).unwrap();
        let host = plan.body.host_config.as_ref().unwrap();
        assert_eq!(host.nano_cpus, Some(2_000_000_000));
        assert_eq!(host.memory, None);
        assert_eq!(
            plan.body.cmd.as_deref(),
            Some(&["hype-run".to_owned(), "inline:AAAA".to_owned()][..])
        );
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let env = RunEnvironment::local()
            .with_secret(Secret::new("missing", "/etc/missing"))
            .with_limit("cpu", "lots")
            .with_limit("memory", "2GB");
        let job = job();
        let Err(Error::InvalidEnvironment { problems }) =
            build(&request(&job, &env, Path::new("/nonexistent"), &[]))
        else {
            panic!("expected InvalidEnvironment");
        };
        assert_eq!(problems.len(), 4, "{problems:#?}");
        assert!(
            problems[0].contains("RunEnvironment::new"),
            "{}",
            problems[0]
        );
        assert!(problems.iter().any(|p| p.contains("secret missing")));
        assert!(problems.iter().any(|p| p.starts_with("cpu:")));
        assert!(problems.iter().any(|p| p.starts_with("memory:")));
    }

    #[test]
    fn transient_volumes_carry_their_owner_unless_kept_and_persistent_ones_none() {
        let scratch = VolumeRequest::new("standard", "1Gi");
        let transient = volume_labels(&scratch, "s1");
        assert_eq!(transient[LABEL_OWNER], Owner::current().to_string());
        let kept = volume_labels(&scratch.keep_on_exit(true), "s1");
        assert!(!kept.contains_key(LABEL_OWNER), "{kept:?}");
        assert_eq!(transient[LABEL_SESSION], "s1");
        assert_eq!(transient[LABEL_LIFETIME], "transient");
        let persistent = volume_labels(&VolumeRequest::persistent("data", "standard", "1Gi"), "s1");
        assert!(!persistent.contains_key(LABEL_OWNER), "{persistent:?}");
        assert!(!persistent.contains_key(LABEL_SESSION), "{persistent:?}");
        assert_eq!(persistent[LABEL_LIFETIME], "persistent");
    }

    #[test]
    fn labels_and_tags() {
        assert_eq!(
            label_value("hype_tests::math::add"),
            "hype_tests--math--add"
        );
        assert_eq!(label_value("::x::"), "x");
        assert_eq!(label_value(&"a".repeat(100)).len(), 63);
        assert_eq!(with_default_tag("env"), "env:latest");
        assert_eq!(
            with_default_tag("localhost:5000/env"),
            "localhost:5000/env:latest"
        );
        assert_eq!(with_default_tag("gcr.io/p/env:1"), "gcr.io/p/env:1");
        assert_eq!(with_default_tag("env@sha256:abc"), "env@sha256:abc");
        assert!(
            staging_dir("gs://bucket")
                .unwrap_err()
                .to_string()
                .contains("file:///")
        );
        assert_eq!(staging_dir("file:///s").unwrap(), PathBuf::from("/s"));
    }
}
