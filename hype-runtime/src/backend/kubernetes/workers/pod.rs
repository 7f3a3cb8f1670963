//! The pod of a warm worker: the environment's call pod ([`pod::build`]:
//! same image, resources, secrets, volumes, base pod, labels, Lease
//! ownerReference and arch selector), with `hype-run --worker …` as the
//! container's args, an attachable stdin (`stdin: true`, `stdinOnce:
//! false`, no TTY), no deadline (a worker outlives each call's timeout),
//! and the label [`LABEL_ROLE`]` = worker`. Also the pool key: a hash of
//! that spec, plus the shipped executable's SHA-256.

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;

use super::super::pod::{self, CONTAINER};
use crate::backend::Job;
use crate::environment::RunEnvironment;
use crate::error::Error;

/// The label that tells a worker pod from a call's pod, and its value on
/// worker pods.
pub use crate::backend::labels::{LABEL_ROLE, ROLE_WORKER};
/// The function label (and ID annotation) of worker pods.
const WORKER_FUNCTION: &str = "hype::worker";
/// How much longer than the submitter's idle time a worker waits on its
/// own: the submitter shuts idle workers down first, so a call is never
/// sent to a worker that is about to exit by itself.
pub(super) const SELF_EXIT_MARGIN: Duration = Duration::from_secs(30);

/// The worker pod `name` for calls like `job` in `env`. `idle_for` is
/// what the worker is told (`--idle-for`).
pub(super) fn build(
    name: &str,
    session: &str,
    job: &Job,
    env: &RunEnvironment,
    owner: Option<&OwnerReference>,
    idle_for: Duration,
) -> Result<Pod, Error> {
    let mut args = vec![
        "--worker".to_owned(),
        "--idle-for".to_owned(),
        idle_for.as_secs().max(1).to_string(),
    ];
    if let Some(blob) = job.executable.as_ref().and_then(|e| e.blob.as_ref()) {
        args.extend([
            "--executable-uri".to_owned(),
            blob.uri.clone(),
            "--executable-sha256".to_owned(),
            blob.sha256.clone(),
            "--executable-len".to_owned(),
            blob.len.to_string(),
        ]);
    }
    let marker = format!("{session}-{}", crate::ids::random_suffix(16));
    let mut pod = pod::build(&pod::PodRequest {
        name,
        function: WORKER_FUNCTION,
        session,
        call: "",
        env,
        arch: job.executable.as_ref().map(|e| e.arch),
        marker: &marker,
        owner,
    })?;
    pod.metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(LABEL_ROLE.to_owned(), ROLE_WORKER.to_owned());
    let Some(spec) = pod.spec.as_mut() else {
        return Err(internal("the built pod has no spec"));
    };
    spec.active_deadline_seconds = None;
    let Some(container) = spec.containers.iter_mut().find(|c| c.name == CONTAINER) else {
        return Err(internal("the built pod has no hype-run container"));
    };
    container.args = Some(args);
    container.stdin = Some(true);
    container.stdin_once = Some(false);
    container.tty = Some(false);
    Ok(pod)
}

fn internal(message: &str) -> Error {
    Error::Config {
        message: format!("cannot build a worker pod: {message}"),
    }
}

/// The key of the workers calls like `job` in `env` may share: a hash of
/// the worker pod built for them (without what differs per worker), and
/// the shipped executable's SHA-256. Calls of another environment or
/// another build never share a worker.
pub(super) fn key(session: &str, job: &Job, env: &RunEnvironment) -> Result<String, Error> {
    let mut pod = build("hype-worker", session, job, env, None, Duration::ZERO)?;
    if let Some(annotations) = pod.metadata.annotations.as_mut() {
        annotations.remove(pod::ANNOTATION_MARKER);
    }
    let text = serde_json::to_string(&pod).map_err(|err| internal(&err.to_string()))?;
    let digest = job
        .executable
        .as_ref()
        .and_then(|e| e.blob.as_ref())
        .map_or("baked", |blob| blob.sha256.as_str());
    Ok(format!(
        "{:016x}-{digest}",
        crate::wire::fnv1a64(text.as_bytes())
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::{Arch, JobExecutable};
    use crate::wire::BlobRef;

    fn job(sha: &str) -> Job {
        let mut job = Job::new("tests::f", "hype-f-1", "inline:AA".to_owned());
        job.executable = Some(JobExecutable {
            path: "/bin/app".into(),
            arch: Arch::X86_64,
            blob: Some(BlobRef::new("file:///s/blobs/sha256/x", 10, sha)),
        });
        job
    }

    #[test]
    fn a_worker_pod_is_the_call_pod_with_an_attachable_worker() {
        let env = RunEnvironment::new("img:1").with_cpu("1");
        let pod = build(
            "w-1",
            "sess",
            &job("ab"),
            &env,
            None,
            Duration::from_secs(90),
        )
        .unwrap();
        let labels = pod.metadata.labels.as_ref().unwrap();
        assert_eq!(labels[LABEL_ROLE], ROLE_WORKER);
        assert_eq!(labels["hype.dev/session"], "sess");
        let spec = pod.spec.unwrap();
        assert_eq!(spec.active_deadline_seconds, None);
        assert_eq!(spec.node_selector.unwrap()["kubernetes.io/arch"], "amd64");
        let c = &spec.containers[0];
        assert_eq!(c.image.as_deref(), Some("img:1"));
        assert_eq!(
            (c.stdin, c.stdin_once, c.tty),
            (Some(true), Some(false), Some(false))
        );
        assert_eq!(
            c.args.as_ref().unwrap(),
            &[
                "--worker",
                "--idle-for",
                "90",
                "--executable-uri",
                "file:///s/blobs/sha256/x",
                "--executable-sha256",
                "ab",
                "--executable-len",
                "10"
            ]
        );
    }

    #[test]
    fn keys_differ_by_environment_and_build_only() {
        let env = RunEnvironment::new("img:1");
        let a = key("s", &job("ab"), &env).unwrap();
        assert_eq!(a, key("s", &job("ab"), &env).unwrap(), "stable");
        assert_ne!(a, key("s", &job("cd"), &env).unwrap(), "another build");
        let other = env.clone().with_env("X", "1");
        assert_ne!(a, key("s", &job("ab"), &other).unwrap(), "another env");
    }
}
