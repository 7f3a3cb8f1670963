//! Pod Security admission, as the API server enforces it on a namespace
//! labelled `pod-security.kubernetes.io/enforce: baseline` or `restricted`
//! (any `enforce-version`: the double checks the latest rules).
//!
//! Written from the Kubernetes documentation's "Pod Security Standards"
//! (kubernetes.io/docs/concepts/security/pod-security-standards), not
//! from hype's code. Each control checks every container and init
//! container:
//!
//! - **Baseline**: no host namespaces (`hostNetwork`, `hostPID`,
//!   `hostIPC`); no `privileged`; added capabilities only from the
//!   baseline set (`AUDIT_WRITE`, `CHOWN`, `DAC_OVERRIDE`, `FOWNER`,
//!   `FSETID`, `KILL`, `MKNOD`, `NET_BIND_SERVICE`, `SETFCAP`, `SETGID`,
//!   `SETPCAP`, `SETUID`, `SYS_CHROOT`); no `hostPath` volumes; no
//!   `hostPort`s; `procMount` `Default`; seccomp not `Unconfined`; only the
//!   safe sysctls.
//! - **Restricted**, on top: volumes only of the types `configMap`, `csi`,
//!   `downwardAPI`, `emptyDir`, `ephemeral`, `persistentVolumeClaim`,
//!   `projected`, `secret`; `allowPrivilegeEscalation: false`;
//!   `runAsNonRoot: true` (pod or every container); no `runAsUser: 0`;
//!   seccomp `RuntimeDefault` or `Localhost` (pod or every container);
//!   capabilities dropping `ALL` and adding at most `NET_BIND_SERVICE`.
//!
//! A refusal is 403 `Forbidden`, worded as the API server words it:
//! `pods "x" is forbidden: violates PodSecurity "restricted:latest":
//! runAsNonRoot != true (pod or container "hype-run" must set
//! securityContext.runAsNonRoot=true), …`. Not modelled: AppArmor and
//! SELinux options, Windows pods, `warn` and `audit` modes, exemptions.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Volume};

/// The namespace label naming the level enforced.
pub(crate) const ENFORCE: &str = "pod-security.kubernetes.io/enforce";

/// The namespace label naming the version of the level enforced.
pub(crate) const ENFORCE_VERSION: &str = "pod-security.kubernetes.io/enforce-version";

/// The level a namespace enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Level {
    Baseline,
    Restricted,
}

/// What a namespace labelled `labels` refuses of `pod`: the API server's
/// message, or `None` when it admits it.
pub(crate) fn refusal(labels: &BTreeMap<String, String>, pod: &Pod) -> Option<String> {
    let level = match labels.get(ENFORCE).map(String::as_str) {
        Some("baseline") => Level::Baseline,
        Some("restricted") => Level::Restricted,
        _ => return None,
    };
    let version = labels.get(ENFORCE_VERSION).map_or("latest", String::as_str);
    let spec = pod.spec.as_ref()?;
    let violations = violations(level, spec);
    if violations.is_empty() {
        return None;
    }
    let name = pod.metadata.name.as_deref().unwrap_or_default();
    let level = match level {
        Level::Baseline => "baseline",
        Level::Restricted => "restricted",
    };
    Some(format!(
        "pods \"{name}\" is forbidden: violates PodSecurity \"{level}:{version}\": {}",
        violations.join(", ")
    ))
}

/// The capabilities the baseline level lets a container add.
const BASELINE_CAPABILITIES: &[&str] = &[
    "AUDIT_WRITE",
    "CHOWN",
    "DAC_OVERRIDE",
    "FOWNER",
    "FSETID",
    "KILL",
    "MKNOD",
    "NET_BIND_SERVICE",
    "SETFCAP",
    "SETGID",
    "SETPCAP",
    "SETUID",
    "SYS_CHROOT",
];

/// The sysctls the baseline level allows.
const SAFE_SYSCTLS: &[&str] = &[
    "kernel.shm_rmid_forced",
    "net.ipv4.ip_local_port_range",
    "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range",
    "net.ipv4.ip_local_reserved_ports",
    "net.ipv4.tcp_keepalive_time",
    "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
];

/// `container "a"` or `containers "a", "b"`.
fn containers_phrase(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("{n:?}")).collect();
    let noun = if names.len() == 1 {
        "container"
    } else {
        "containers"
    };
    format!("{noun} {}", quoted.join(", "))
}

/// Each violation as `reason (detail)`, in the order of the controls.
fn violations(level: Level, spec: &PodSpec) -> Vec<String> {
    let containers: Vec<&Container> = spec
        .init_containers
        .iter()
        .flatten()
        .chain(&spec.containers)
        .collect();
    let mut out = Vec::new();
    let mut failing = |reason: &str, detail: String| out.push(format!("{reason} ({detail})"));
    let with = |test: &dyn Fn(&Container) -> bool| -> Vec<&str> {
        containers
            .iter()
            .filter(|c| test(c))
            .map(|c| c.name.as_str())
            .collect()
    };
    let context = spec.security_context.clone().unwrap_or_default();

    // Baseline.
    let host: Vec<String> = [
        ("hostNetwork", spec.host_network),
        ("hostPID", spec.host_pid),
        ("hostIPC", spec.host_ipc),
    ]
    .into_iter()
    .filter(|(_, on)| *on == Some(true))
    .map(|(name, _)| format!("{name}=true"))
    .collect();
    if !host.is_empty() {
        failing("host namespaces", host.join(", "));
    }
    let privileged = with(&|c| {
        c.security_context
            .as_ref()
            .is_some_and(|s| s.privileged == Some(true))
    });
    if !privileged.is_empty() {
        failing(
            "privileged",
            format!(
                "{} must not set securityContext.privileged=true",
                containers_phrase(&privileged)
            ),
        );
    }
    let added = |c: &Container| -> Vec<String> {
        c.security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.add.clone())
            .unwrap_or_default()
    };
    let mut forbidden_adds: Vec<String> = Vec::new();
    let extra = with(&|c| {
        added(c)
            .iter()
            .any(|cap| !BASELINE_CAPABILITIES.contains(&cap.as_str()))
    });
    for c in &containers {
        for cap in added(c) {
            if !BASELINE_CAPABILITIES.contains(&cap.as_str()) && !forbidden_adds.contains(&cap) {
                forbidden_adds.push(cap);
            }
        }
    }
    if !extra.is_empty() {
        let caps: Vec<String> = forbidden_adds.iter().map(|c| format!("{c:?}")).collect();
        failing(
            "non-default capabilities",
            format!(
                "{} must not include {} in securityContext.capabilities.add",
                containers_phrase(&extra),
                caps.join(", ")
            ),
        );
    }
    let volumes: &[Volume] = spec.volumes.as_deref().unwrap_or_default();
    let host_paths: Vec<String> = volumes
        .iter()
        .filter(|v| v.host_path.is_some())
        .map(|v| format!("{:?}", v.name))
        .collect();
    if !host_paths.is_empty() {
        let noun = if host_paths.len() == 1 {
            "volume"
        } else {
            "volumes"
        };
        failing(
            "hostPath volumes",
            format!("{noun} {}", host_paths.join(", ")),
        );
    }
    let mut port_details = Vec::new();
    for c in &containers {
        let ports: Vec<String> = c
            .ports
            .iter()
            .flatten()
            .filter_map(|p| p.host_port.filter(|port| *port != 0))
            .map(|port| port.to_string())
            .collect();
        if !ports.is_empty() {
            let noun = if ports.len() == 1 {
                "hostPort"
            } else {
                "hostPorts"
            };
            port_details.push(format!(
                "container {:?} uses {noun} {}",
                c.name,
                ports.join(", ")
            ));
        }
    }
    if !port_details.is_empty() {
        failing("hostPort", port_details.join("; "));
    }
    let proc_mount = with(&|c| {
        c.security_context
            .as_ref()
            .and_then(|s| s.proc_mount.as_deref())
            .is_some_and(|m| m != "Default")
    });
    if !proc_mount.is_empty() {
        failing(
            "procMount",
            format!(
                "{} must not set securityContext.procMount to \"Unmasked\"",
                containers_phrase(&proc_mount)
            ),
        );
    }
    let pod_seccomp = context.seccomp_profile.as_ref().map(|p| p.type_.as_str());
    let container_seccomp = |c: &Container| -> Option<String> {
        c.security_context
            .as_ref()
            .and_then(|s| s.seccomp_profile.as_ref())
            .map(|p| p.type_.clone())
    };
    let unconfined = with(&|c| container_seccomp(c).as_deref() == Some("Unconfined"));
    if pod_seccomp == Some("Unconfined") || !unconfined.is_empty() {
        let mut who = Vec::new();
        if pod_seccomp == Some("Unconfined") {
            who.push("pod".to_owned());
        }
        if !unconfined.is_empty() {
            who.push(containers_phrase(&unconfined));
        }
        failing(
            "seccompProfile",
            format!(
                "{} must not set securityContext.seccompProfile.type to \"Unconfined\"",
                who.join(" and ")
            ),
        );
    }
    let sysctls: Vec<String> = context
        .sysctls
        .iter()
        .flatten()
        .filter(|s| !SAFE_SYSCTLS.contains(&s.name.as_str()))
        .map(|s| s.name.clone())
        .collect();
    if !sysctls.is_empty() {
        failing("forbidden sysctls", sysctls.join(", "));
    }
    if level == Level::Baseline {
        return out;
    }

    // Restricted.
    const ALLOWED_VOLUMES: &[&str] = &[
        "configMap",
        "csi",
        "downwardAPI",
        "emptyDir",
        "ephemeral",
        "persistentVolumeClaim",
        "projected",
        "secret",
    ];
    let restricted: Vec<String> = volumes
        .iter()
        .filter_map(|v| {
            let ty = volume_type(v)?;
            (!ALLOWED_VOLUMES.contains(&ty))
                .then(|| format!("volume {:?} uses restricted volume type {ty:?}", v.name))
        })
        .collect();
    if !restricted.is_empty() {
        failing("restricted volume types", restricted.join("; "));
    }
    let escalating = with(&|c| {
        c.security_context
            .as_ref()
            .and_then(|s| s.allow_privilege_escalation)
            != Some(false)
    });
    if !escalating.is_empty() {
        failing(
            "allowPrivilegeEscalation != false",
            format!(
                "{} must set securityContext.allowPrivilegeEscalation=false",
                containers_phrase(&escalating)
            ),
        );
    }
    let own_non_root = |c: &Container| c.security_context.as_ref().and_then(|s| s.run_as_non_root);
    let explicitly_root = with(&|c| own_non_root(c) == Some(false));
    if context.run_as_non_root == Some(false) || !explicitly_root.is_empty() {
        let mut who = Vec::new();
        if context.run_as_non_root == Some(false) {
            who.push("pod".to_owned());
        }
        if !explicitly_root.is_empty() {
            who.push(containers_phrase(&explicitly_root));
        }
        failing(
            "runAsNonRoot != true",
            format!(
                "{} must not set securityContext.runAsNonRoot=false",
                who.join(" and ")
            ),
        );
    } else if context.run_as_non_root != Some(true) {
        let unset = with(&|c| own_non_root(c).is_none());
        if !unset.is_empty() {
            failing(
                "runAsNonRoot != true",
                format!(
                    "pod or {} must set securityContext.runAsNonRoot=true",
                    containers_phrase(&unset)
                ),
            );
        }
    }
    let root_containers =
        with(&|c| c.security_context.as_ref().and_then(|s| s.run_as_user) == Some(0));
    if context.run_as_user == Some(0) || !root_containers.is_empty() {
        let mut who = Vec::new();
        if context.run_as_user == Some(0) {
            who.push("pod".to_owned());
        }
        if !root_containers.is_empty() {
            who.push(containers_phrase(&root_containers));
        }
        failing(
            "runAsUser=0",
            format!("{} must not set runAsUser=0", who.join(" and ")),
        );
    }
    let confined = |ty: Option<&str>| matches!(ty, Some("RuntimeDefault" | "Localhost"));
    let unconfined_or_unset = with(&|c| match container_seccomp(c) {
        Some(ty) => !confined(Some(&ty)),
        None => !confined(pod_seccomp),
    });
    if !unconfined_or_unset.is_empty() && unconfined.is_empty() && pod_seccomp != Some("Unconfined")
    {
        let who = if pod_seccomp.is_none() {
            format!("pod or {}", containers_phrase(&unconfined_or_unset))
        } else {
            containers_phrase(&unconfined_or_unset)
        };
        failing(
            "seccompProfile",
            format!(
                "{who} must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\""
            ),
        );
    }
    let not_dropping = with(&|c| {
        !c.security_context
            .as_ref()
            .and_then(|s| s.capabilities.as_ref())
            .and_then(|caps| caps.drop.as_ref())
            .is_some_and(|drop| drop.iter().any(|d| d == "ALL"))
    });
    let adding = with(&|c| added(c).iter().any(|cap| cap != "NET_BIND_SERVICE"));
    if !not_dropping.is_empty() || !adding.is_empty() {
        let mut details = Vec::new();
        if !not_dropping.is_empty() {
            details.push(format!(
                "{} must set securityContext.capabilities.drop=[\"ALL\"]",
                containers_phrase(&not_dropping)
            ));
        }
        if !adding.is_empty() {
            let mut caps: Vec<String> = Vec::new();
            for c in &containers {
                for cap in added(c) {
                    let quoted = format!("{cap:?}");
                    if cap != "NET_BIND_SERVICE" && !caps.contains(&quoted) {
                        caps.push(quoted);
                    }
                }
            }
            details.push(format!(
                "{} must not include {} in securityContext.capabilities.add",
                containers_phrase(&adding),
                caps.join(", ")
            ));
        }
        failing("unrestricted capabilities", details.join("; "));
    }
    out
}

/// The type of a volume, as the Pod Security Standards name it.
fn volume_type(v: &Volume) -> Option<&'static str> {
    let types: [(&'static str, bool); 14] = [
        ("configMap", v.config_map.is_some()),
        ("csi", v.csi.is_some()),
        ("downwardAPI", v.downward_api.is_some()),
        ("emptyDir", v.empty_dir.is_some()),
        ("ephemeral", v.ephemeral.is_some()),
        ("persistentVolumeClaim", v.persistent_volume_claim.is_some()),
        ("projected", v.projected.is_some()),
        ("secret", v.secret.is_some()),
        ("hostPath", v.host_path.is_some()),
        ("nfs", v.nfs.is_some()),
        ("gcePersistentDisk", v.gce_persistent_disk.is_some()),
        ("iscsi", v.iscsi.is_some()),
        ("gitRepo", v.git_repo.is_some()),
        ("image", v.image.is_some()),
    ];
    types.into_iter().find(|(_, set)| *set).map(|(ty, _)| ty)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn restricted() -> BTreeMap<String, String> {
        BTreeMap::from([(ENFORCE.to_owned(), "restricted".to_owned())])
    }

    fn pod(spec: serde_json::Value) -> Pod {
        serde_json::from_value(json!({"metadata": {"name": "p"}, "spec": spec})).unwrap()
    }

    fn good() -> serde_json::Value {
        json!({
            "securityContext": {"runAsNonRoot": true, "runAsUser": 65532, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{"name": "hype-run", "securityContext": {
                "allowPrivilegeEscalation": false,
                "capabilities": {"drop": ["ALL"], "add": ["NET_BIND_SERVICE"]}
            }}],
            "volumes": [{"name": "t", "emptyDir": {}}, {"name": "s", "secret": {"secretName": "x"}}]
        })
    }

    #[test]
    fn a_restricted_pod_is_admitted_and_only_where_enforced() {
        assert_eq!(refusal(&restricted(), &pod(good())), None);
        let bare = pod(json!({"containers": [{"name": "hype-run"}]}));
        assert_eq!(refusal(&BTreeMap::new(), &bare), None, "no label, no check");
        let baseline = BTreeMap::from([(ENFORCE.to_owned(), "baseline".to_owned())]);
        assert_eq!(refusal(&baseline, &bare), None, "a bare pod is baseline");
    }

    #[test]
    fn a_bare_pod_is_refused_with_every_restricted_control_named() {
        let bare = pod(json!({"containers": [{"name": "hype-run"}]}));
        let message = refusal(&restricted(), &bare).expect("refused");
        assert_eq!(
            message,
            "pods \"p\" is forbidden: violates PodSecurity \"restricted:latest\": \
             allowPrivilegeEscalation != false (container \"hype-run\" must set securityContext.allowPrivilegeEscalation=false), \
             runAsNonRoot != true (pod or container \"hype-run\" must set securityContext.runAsNonRoot=true), \
             seccompProfile (pod or container \"hype-run\" must set securityContext.seccompProfile.type to \"RuntimeDefault\" or \"Localhost\"), \
             unrestricted capabilities (container \"hype-run\" must set securityContext.capabilities.drop=[\"ALL\"])"
        );
    }

    #[test]
    fn root_privileged_and_host_access_are_refused() {
        let mut spec = good();
        spec["containers"][0]["securityContext"]["runAsUser"] = json!(0);
        spec["containers"][0]["securityContext"]["privileged"] = json!(true);
        spec["containers"][0]["securityContext"]["capabilities"]["add"] = json!(["SYS_ADMIN"]);
        spec["containers"][0]["ports"] = json!([{"containerPort": 80, "hostPort": 8080}]);
        spec["hostNetwork"] = json!(true);
        spec["volumes"] = json!([{"name": "h", "hostPath": {"path": "/"}}]);
        let versioned = BTreeMap::from([
            (ENFORCE.to_owned(), "restricted".to_owned()),
            (ENFORCE_VERSION.to_owned(), "v1.36".to_owned()),
        ]);
        let message = refusal(&versioned, &pod(spec)).expect("refused");
        for part in [
            "violates PodSecurity \"restricted:v1.36\"",
            "host namespaces (hostNetwork=true)",
            "privileged (container \"hype-run\" must not set securityContext.privileged=true)",
            "non-default capabilities (container \"hype-run\" must not include \"SYS_ADMIN\" in securityContext.capabilities.add)",
            "hostPath volumes (volume \"h\")",
            "hostPort (container \"hype-run\" uses hostPort 8080)",
            "restricted volume types (volume \"h\" uses restricted volume type \"hostPath\")",
            "runAsUser=0 (container \"hype-run\" must not set runAsUser=0)",
        ] {
            assert!(message.contains(part), "{part:?} not in {message}");
        }
    }

    #[test]
    fn explicit_opt_outs_are_named() {
        let mut spec = good();
        spec["securityContext"]["runAsNonRoot"] = json!(false);
        spec["securityContext"]["seccompProfile"]["type"] = json!("Unconfined");
        let message = refusal(&restricted(), &pod(spec)).expect("refused");
        assert!(
            message.contains(
                "runAsNonRoot != true (pod must not set securityContext.runAsNonRoot=false)"
            ),
            "{message}"
        );
        assert!(
            message.contains("seccompProfile (pod must not set securityContext.seccompProfile.type to \"Unconfined\")"),
            "{message}"
        );
        // A container's own settings stand in for the pod's.
        let own = pod(json!({"containers": [{"name": "a", "securityContext": {
            "runAsNonRoot": true, "allowPrivilegeEscalation": false,
            "seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"},
            "capabilities": {"drop": ["ALL"]}
        }}]}));
        assert_eq!(refusal(&restricted(), &own), None);
    }
}
