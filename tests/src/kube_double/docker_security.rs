//! A pod's security context as the Docker executor applies it to a
//! container, as a container runtime would: the user and group
//! (`runAsUser`, `runAsGroup`; the container's over the pod's), the
//! supplementary groups (`fsGroup`, `supplementalGroups`),
//! `readOnlyRootFilesystem` (`ReadonlyRootfs`), `allowPrivilegeEscalation:
//! false` (`no-new-privileges`), `capabilities` (`CapDrop`, `CapAdd`) and
//! `privileged`. An `fsGroup` also owns the pod's claim directories (group
//! writable, set-group-ID), as the kubelet's volume ownership does.
//! Seccomp profiles and `runAsNonRoot` are not checked (the engine's default
//! seccomp profile applies).

use k8s_openapi::api::core::v1::{Container, PodSpec};

/// What the engine is told of one container's security context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct DockerSecurity {
    /// `uid[:gid]`, when the pod or container names a user.
    pub(crate) user: Option<String>,
    /// The uid and gid the container runs as, when named (for the files
    /// the kubelet makes for it: the termination message).
    pub(crate) ids: Option<(u32, Option<u32>)>,
    /// Supplementary groups.
    pub(crate) group_add: Vec<String>,
    /// The pod's `fsGroup`.
    pub(crate) fs_group: Option<u32>,
    pub(crate) read_only_root: bool,
    pub(crate) no_new_privileges: bool,
    pub(crate) cap_drop: Vec<String>,
    pub(crate) cap_add: Vec<String>,
    pub(crate) privileged: bool,
}

/// The security of container `c` of the pod `spec`.
pub(crate) fn of(spec: &PodSpec, c: &Container) -> DockerSecurity {
    let pod = spec.security_context.clone().unwrap_or_default();
    let own = c.security_context.clone().unwrap_or_default();
    let id = |v: Option<i64>| v.and_then(|v| u32::try_from(v).ok());
    let uid = id(own.run_as_user.or(pod.run_as_user));
    let gid = id(own.run_as_group.or(pod.run_as_group));
    let user = match (uid, gid) {
        (Some(uid), Some(gid)) => Some(format!("{uid}:{gid}")),
        (Some(uid), None) => Some(uid.to_string()),
        // A group alone: the image's user, in that group.
        (None, Some(gid)) => Some(format!("0:{gid}")),
        (None, None) => None,
    };
    let fs_group = id(pod.fs_group);
    let group_add = fs_group
        .into_iter()
        .chain(
            pod.supplemental_groups
                .iter()
                .flatten()
                .filter_map(|g| id(Some(*g))),
        )
        .map(|g| g.to_string())
        .collect();
    let capabilities = own.capabilities.unwrap_or_default();
    DockerSecurity {
        user,
        ids: uid.map(|uid| (uid, gid)),
        group_add,
        fs_group,
        read_only_root: own.read_only_root_filesystem == Some(true),
        no_new_privileges: own.allow_privilege_escalation == Some(false),
        cap_drop: capabilities.drop.unwrap_or_default(),
        cap_add: capabilities.add.unwrap_or_default(),
        privileged: own.privileged == Some(true),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn the_containers_settings_win_over_the_pods() {
        let spec: PodSpec = serde_json::from_value(json!({
            "securityContext": {"runAsUser": 65532, "runAsGroup": 65532, "fsGroup": 2000},
            "containers": [{"name": "a", "securityContext": {
                "runAsUser": 1000, "readOnlyRootFilesystem": true,
                "allowPrivilegeEscalation": false, "capabilities": {"drop": ["ALL"]}
            }}, {"name": "b"}]
        }))
        .unwrap();
        let a = of(&spec, &spec.containers[0]);
        assert_eq!(a.user.as_deref(), Some("1000:65532"));
        assert_eq!(a.ids, Some((1000, Some(65532))));
        assert_eq!(a.group_add, ["2000"]);
        assert!(a.read_only_root && a.no_new_privileges && !a.privileged);
        assert_eq!(a.cap_drop, ["ALL"]);
        let b = of(&spec, &spec.containers[1]);
        assert_eq!(b.user.as_deref(), Some("65532:65532"));
        assert!(!b.read_only_root && !b.no_new_privileges);
        assert_eq!(
            of(&PodSpec::default(), &Container::default()),
            DockerSecurity::default()
        );
    }
}
