//! [`RunEnvironment::validate`]: what every runner needs of an environment,
//! checked before anything starts, every problem reported at once.

use std::path::Path;
use std::time::Duration;

use super::{RunEnvironment, quantity};
use crate::error::Error;

impl RunEnvironment {
    /// Checks what every runner needs: valid env var names, secret and
    /// volume names, absolute and distinct mount paths, resource amounts
    /// that are quantities (`750m`, `2Gi`), not negative and no request
    /// above its limit, and a non-zero timeout. Reports every problem at
    /// once.
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
        if problems.is_empty() {
            Ok(())
        } else {
            Err(Error::InvalidEnvironment { problems })
        }
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
