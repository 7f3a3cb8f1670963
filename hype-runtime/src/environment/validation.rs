//! [`RunEnvironment::validate`]: what every runner needs of an environment,
//! checked before anything starts, every problem reported at once.

use std::path::Path;
use std::time::Duration;

use super::identity::is_hype_key;
use super::scheduling::MAX_GPUS;
use super::{RunEnvironment, quantity};
use crate::error::Error;

impl RunEnvironment {
    /// Checks what every runner needs: valid env var names, secret and
    /// volume names, absolute and distinct mount paths, resource amounts
    /// that are quantities (`750m`, `2Gi`), not negative and no request
    /// above its limit, a non-zero timeout, and the pod options as
    /// Kubernetes checks them (GPU counts from 1 to 16, label keys and
    /// values, no label or annotation of hype's own, DNS names), and the
    /// [`Workers`](super::Workers) settings. Reports
    /// every problem at once.
    pub fn validate(&self) -> Result<(), Error> {
        let mut problems = Vec::new();
        for (key, value) in &self.inner.env {
            if key.is_empty() || key.contains('=') || key.contains('\0') {
                problems.push(format!(
                    "env var name {key:?} is invalid: it must be non-empty without '=' or NUL"
                ));
            }
            if value.contains('\0') {
                problems.push(format!("env var {key} contains a NUL byte"));
            }
        }
        let mut paths: Vec<&Path> = Vec::new();
        for secret in &self.inner.secrets {
            if let Err(why) = check_dns_subdomain(secret.name()) {
                problems.push(format!("secret name {:?} {why}", secret.name()));
            }
            paths.push(secret.mount_path());
        }
        for mount in &self.inner.mounts {
            if let Err(why) = check_dns_subdomain(mount.volume().name()) {
                problems.push(format!("volume name {:?} {why}", mount.volume().name()));
            }
            paths.push(mount.mount_path());
        }
        let mut seen = std::collections::BTreeSet::new();
        for path in paths {
            if !path.is_absolute() {
                problems.push(format!("mount path {} is not absolute", path.display()));
            }
            if !seen.insert(path) {
                problems.push(format!(
                    "mount path {} is used more than once",
                    path.display()
                ));
            }
        }
        for (kind, amounts) in [
            ("request", &self.inner.requests),
            ("limit", &self.inner.limits),
        ] {
            for (resource, amount) in amounts {
                match quantity::parse(amount) {
                    Err(why) => problems.push(format!("{kind} of {resource}: {why}")),
                    Ok(q) if q.is_negative() => problems.push(format!(
                        "{kind} of {resource} is {amount:?}, which is negative"
                    )),
                    Ok(_) => {}
                }
            }
        }
        for (resource, request) in &self.inner.requests {
            if let (Some(limit), Ok(r)) =
                (self.inner.limits.get(resource), quantity::parse(request))
                && let Ok(l) = quantity::parse(limit)
                && r > l
            {
                problems.push(format!(
                    "the request of {resource} ({request}) is more than its limit ({limit})"
                ));
            }
        }
        if self.inner.timeout == Some(Duration::ZERO) {
            problems.push("timeout is zero".to_owned());
        }
        self.check_pod_options(&mut problems);
        if let Some(workers) = &self.inner.workers {
            workers.problems(&mut problems);
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidEnvironment { problems })
        }
    }
}

impl RunEnvironment {
    /// The pod-only options: GPU counts, label keys and values (node
    /// selectors, labels, GPU models), taint keys, annotation keys and
    /// size, names of the service account and priority class.
    fn check_pod_options(&self, problems: &mut Vec<String>) {
        let s = &self.inner;
        if let Some(gpu) = &s.gpu {
            if !(1..=MAX_GPUS).contains(&gpu.count()) {
                problems.push(format!(
                    "GPU count {} is refused: ask for 1 to {MAX_GPUS} GPUs",
                    gpu.count()
                ));
            }
            if let Some(model) = gpu.model_name()
                && let Err(why) = check_label_value(model)
            {
                problems.push(format!("GPU model {model:?} {why}"));
            }
        }
        for (key, value) in &s.node_selector {
            label_problems("node selector", key, value, problems);
        }
        for toleration in &s.tolerations {
            if let Err(why) = check_label_key(toleration.key()) {
                problems.push(format!("toleration key {:?} {why}", toleration.key()));
            }
            if let Some(value) = toleration.value()
                && let Err(why) = check_label_value(value)
            {
                problems.push(format!(
                    "toleration value {value:?} of {} {why}",
                    toleration.key()
                ));
            }
        }
        for (key, value) in &s.labels {
            label_problems("label", key, value, problems);
            if is_hype_key(key) {
                problems.push(format!(
                    "label {key} is hype's own and cannot be set: use a key outside hype.dev/"
                ));
            }
        }
        let mut size = 0;
        for (key, value) in &s.annotations {
            size += key.len() + value.len();
            if let Err(why) = check_label_key(key) {
                problems.push(format!("annotation key {key:?} {why}"));
            }
            if is_hype_key(key) {
                problems.push(format!(
                    "annotation {key} is hype's own and cannot be set: use a key outside hype.dev/"
                ));
            }
        }
        if size > MAX_ANNOTATIONS_BYTES {
            problems.push(format!(
                "annotations total {size} bytes, more than Kubernetes' {MAX_ANNOTATIONS_BYTES} (256 KiB)"
            ));
        }
        for (what, name) in [
            ("service account", &s.service_account),
            ("priority class", &s.priority_class),
        ] {
            if let Some(name) = name
                && let Err(why) = check_dns_subdomain(name)
            {
                problems.push(format!("{what} name {name:?} {why}"));
            }
        }
    }
}

/// The most bytes a pod's annotations (keys and values) may have.
const MAX_ANNOTATIONS_BYTES: usize = 256 * 1024;

fn label_problems(what: &str, key: &str, value: &str, problems: &mut Vec<String>) {
    if let Err(why) = check_label_key(key) {
        problems.push(format!("{what} key {key:?} {why}"));
    }
    if let Err(why) = check_label_value(value) {
        problems.push(format!("{what} value {value:?} of {key} {why}"));
    }
}

/// Whether `name` is a qualified name's name part: 1 to 63 of
/// `[A-Za-z0-9._-]`, starting and ending with a letter or digit.
fn is_label_name(name: &str) -> bool {
    let bytes = name.as_bytes();
    !name.is_empty()
        && name.len() <= 63
        && bytes
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && bytes[0].is_ascii_alphanumeric()
        && bytes[bytes.len() - 1].is_ascii_alphanumeric()
}

/// Checks a label (or annotation, or taint) key as Kubernetes does: an
/// optional DNS subdomain prefix and `/`, then a name of 1 to 63
/// characters.
pub(super) fn check_label_key(key: &str) -> Result<(), &'static str> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key),
    };
    if let Some(prefix) = prefix
        && check_dns_subdomain(prefix).is_err()
    {
        return Err(
            "is not a valid Kubernetes label key: its prefix before '/' must be a DNS subdomain (lowercase letters, digits, '-' and '.')",
        );
    }
    if !is_label_name(name) {
        return Err(
            "is not a valid Kubernetes label key: the name must be 1 to 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit, after an optional DNS prefix and '/'",
        );
    }
    Ok(())
}

/// Checks a label value as Kubernetes does: empty, or a name of at most 63
/// characters.
pub(super) fn check_label_value(value: &str) -> Result<(), &'static str> {
    if value.is_empty() || is_label_name(value) {
        Ok(())
    } else {
        Err(
            "is not a valid Kubernetes label value: at most 63 letters, digits, '-', '_' or '.', starting and ending with a letter or digit",
        )
    }
}

/// Checks a Kubernetes object name (DNS-1123 subdomain): what secrets and
/// claims must be called on a cluster, so a name that works locally also
/// works there.
pub(super) fn check_dns_subdomain(name: &str) -> Result<(), &'static str> {
    if name.is_empty() || name.len() > 253 {
        return Err("must be 1 to 253 characters");
    }
    let ok_chars = name
        .bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.');
    let ok_ends = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !ok_chars || !ok_ends(name.as_bytes()[0]) || !ok_ends(name.as_bytes()[name.len() - 1]) {
        return Err(
            "is not a valid Kubernetes name: use lowercase letters, digits, '-' and '.', starting and ending with a letter or digit",
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::environment::{Secret, VolumeRequest};

    #[test]
    fn validate_reports_every_problem() {
        let env = RunEnvironment::local()
            .with_env("A=B", "x")
            .with_secret(Secret::new("Bad_Name", "relative/path"))
            .with_mount(VolumeRequest::persistent("ok", "c", "1Gi").mount_read_only("/data"))
            .with_mount(VolumeRequest::persistent("ok2", "c", "1Gi").mount_read_only("/data"))
            .with_timeout(Duration::ZERO);
        let Err(Error::InvalidEnvironment { problems }) = env.validate() else {
            panic!("expected InvalidEnvironment");
        };
        assert_eq!(problems.len(), 5, "{problems:#?}");
        assert!(problems[0].contains("A=B"));
        assert!(problems.iter().any(|p| p.contains("Bad_Name")));
        assert!(problems.iter().any(|p| p.contains("not absolute")));
        assert!(problems.iter().any(|p| p.contains("more than once")));
        assert!(problems.iter().any(|p| p.contains("timeout")));
        assert!(RunEnvironment::local().validate().is_ok());
    }

    #[test]
    fn validate_checks_resource_quantities() {
        let env = RunEnvironment::local()
            .with_request("cpu", "lots")
            .with_limit("memory", "-1Gi")
            .with_request("ephemeral-storage", "2Gi")
            .with_limit("ephemeral-storage", "1Gi");
        let Err(Error::InvalidEnvironment { problems }) = env.validate() else {
            panic!("expected InvalidEnvironment");
        };
        assert_eq!(problems.len(), 3, "{problems:#?}");
        assert!(
            problems
                .iter()
                .any(|p| p.contains("request of cpu") && p.contains("\"lots\""))
        );
        assert!(
            problems
                .iter()
                .any(|p| p.contains("limit of memory") && p.contains("negative"))
        );
        assert!(problems.iter().any(|p| p.contains("more than its limit")));
        let fine = RunEnvironment::local()
            .with_request("cpu", "750m")
            .with_limit("cpu", "1")
            .with_limit("memory", "512Mi");
        assert!(fine.validate().is_ok());
    }

    #[test]
    fn a_request_may_equal_its_limit() {
        let env = RunEnvironment::local()
            .with_request("memory", "1Gi")
            .with_limit("memory", "1024Mi")
            .with_request("cpu", "1")
            .with_limit("cpu", "1000m");
        assert!(env.validate().is_ok(), "{:?}", env.validate());
    }

    fn problems_of(env: &RunEnvironment) -> Vec<String> {
        match env.validate() {
            Ok(()) => Vec::new(),
            Err(Error::InvalidEnvironment { problems }) => problems,
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn gpu_counts_are_1_to_16() {
        use crate::environment::Gpu;
        for count in [1, 16] {
            let env = RunEnvironment::local().with_gpu(Gpu::nvidia(count).model("nvidia-l4"));
            assert_eq!(problems_of(&env), Vec::<String>::new());
        }
        for count in [0, 17] {
            let problems = problems_of(&RunEnvironment::local().with_gpu(Gpu::nvidia(count)));
            assert_eq!(problems.len(), 1, "{problems:#?}");
            assert!(
                problems[0].contains(&format!("GPU count {count} is refused")),
                "{problems:#?}"
            );
        }
        let problems =
            problems_of(&RunEnvironment::local().with_gpu(Gpu::nvidia(1).model("NVIDIA L4")));
        assert!(
            problems[0].contains("GPU model \"NVIDIA L4\""),
            "{problems:#?}"
        );
    }

    #[test]
    fn label_keys_and_values_are_checked_as_kubernetes_does() {
        let long_name = "a".repeat(63);
        let long_key = format!("{}/{long_name}", "p".repeat(253));
        for key in [
            "a",
            "A_b.c-9",
            "example.com/x",
            long_name.as_str(),
            &long_key,
        ] {
            assert_eq!(check_label_key(key), Ok(()), "{key}");
        }
        let too_long = "a".repeat(64);
        for key in [
            "", "/a", "a/", "-a", "a_", "Ex.com/a", "a/b/c", &too_long, "a b",
        ] {
            assert!(check_label_key(key).is_err(), "{key:?}");
        }
        for value in ["", "a", "v1.2_3-x", long_name.as_str()] {
            assert_eq!(check_label_value(value), Ok(()), "{value}");
        }
        for value in ["-a", "a.", "a/b", "a b", &too_long, "caf\u{e9}"] {
            assert!(check_label_value(value).is_err(), "{value:?}");
        }
    }

    #[test]
    fn pod_options_are_validated_every_problem_named() {
        use crate::environment::{TaintEffect, Toleration};
        let env = RunEnvironment::local()
            .with_node_selector("pool", "bad value")
            .with_node_selector("bad key!", "x")
            .with_toleration(Toleration::exists("-bad", TaintEffect::NoSchedule))
            .with_toleration(Toleration::equal("k", "v", TaintEffect::NoSchedule))
            .with_labels([("hype.dev/session", "mine"), ("team", "data")])
            .with_labels([("app.kubernetes.io/managed-by", "me")])
            .with_annotations([("hype.dev/function-id", "x"), ("note", "any text at all")])
            .with_service_account("Not_A_Name")
            .with_priority_class("UPPER");
        let problems = problems_of(&env);
        for expected in [
            "node selector value \"bad value\" of pool",
            "node selector key \"bad key!\"",
            "toleration key \"-bad\"",
            "label hype.dev/session is hype's own",
            "label app.kubernetes.io/managed-by is hype's own",
            "annotation hype.dev/function-id is hype's own",
            "service account name \"Not_A_Name\"",
            "priority class name \"UPPER\"",
        ] {
            assert!(
                problems.iter().any(|p| p.contains(expected)),
                "{expected}: {problems:#?}"
            );
        }
        assert_eq!(problems.len(), 8, "{problems:#?}");

        let big = RunEnvironment::local().with_annotations([("big", "x".repeat(256 * 1024))]);
        let problems = problems_of(&big);
        assert!(problems[0].contains("256 KiB"), "{problems:#?}");
        let fine = RunEnvironment::local()
            .with_annotations([("example.com/note", "Any text: \u{e9}, spaces, /")])
            .with_toleration(Toleration::no_execute_for(
                "node.kubernetes.io/unreachable",
                30,
            ))
            .with_service_account("reader")
            .with_priority_class("batch-low");
        assert_eq!(problems_of(&fine), Vec::<String>::new());
    }

    #[test]
    fn kubernetes_names_are_dns_subdomains() {
        let longest = "a".repeat(253);
        for name in [
            "a",
            "0",
            "data",
            "a.b",
            "a-b",
            "my-vol.v1",
            "9-x.y-0",
            &longest,
        ] {
            assert_eq!(check_dns_subdomain(name), Ok(()), "{name}");
        }
        let too_long = "a".repeat(254);
        for name in ["", &too_long] {
            assert_eq!(
                check_dns_subdomain(name),
                Err("must be 1 to 253 characters"),
                "{name}"
            );
        }
        for name in [
            "a_b",
            "a b",
            "A",
            "aB",
            "-a",
            "a-",
            ".a",
            "a.",
            "-",
            ".",
            "a/b",
            "caf\u{e9}",
        ] {
            let why = check_dns_subdomain(name).unwrap_err();
            assert!(why.contains("not a valid Kubernetes name"), "{name}: {why}");
        }
        // Through validate: an empty volume name is reported, not a panic.
        let env = RunEnvironment::local()
            .with_mount(VolumeRequest::persistent("", "c", "1Gi").mount_read_only("/data"));
        let Err(Error::InvalidEnvironment { problems }) = env.validate() else {
            panic!("expected InvalidEnvironment");
        };
        assert_eq!(problems.len(), 1, "{problems:#?}");
        assert!(problems[0].contains("must be 1 to 253"), "{problems:#?}");
    }
}
