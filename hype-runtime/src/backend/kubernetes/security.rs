//! The security context of a call's pod: by default it passes the
//! `restricted` Pod Security Standard, and a base pod or an option relaxes
//! any part of it on purpose.
//!
//! | field | where | hype's default |
//! |---|---|---|
//! | `runAsUser`, `runAsGroup`, `fsGroup` | pod | [`DEFAULT_RUN_AS_USER`] (65532) each |
//! | `runAsNonRoot` | pod | `true`, unless the user is 0 |
//! | `seccompProfile` | pod | `type: RuntimeDefault` |
//! | `allowPrivilegeEscalation` | `hype-run` | `false`, unless privileged or adding `SYS_ADMIN` (the API server refuses both with `false`) |
//! | `capabilities.drop` | `hype-run` | `[ALL]` (a base pod's `add` stays) |
//! | `readOnlyRootFilesystem` | `hype-run` | `true`, with an `emptyDir` at `/tmp` |
//!
//! The rule, field by field: a field the base pod sets, in the pod's
//! `securityContext` or in its `hype-run` container's, is kept as it is
//! and hype's default for it is left out; an option
//! ([`RunEnvironment::with_run_as_user`],
//! [`RunEnvironment::with_read_only_root`]) wins over both, set on the
//! container. `runAsGroup` and `fsGroup` come with hype's own user only:
//! a base pod that names its user names its groups too.
//!
//! Why `fsGroup`: the kubelet makes `emptyDir` and claim volumes writable
//! by that group, so a call running as 65532 can write a claim formatted
//! root-owned. Why `runAsGroup`: without it the process's group is the
//! image's (often 0, root's).
//!
//! The launcher's cache (`HYPE_CACHE_DIR`, by default `$TMPDIR/hype-cache`,
//! so `/tmp/hype-cache`) lives in the `/tmp` volume: it is not a volume of
//! its own, because the launcher refuses a cache directory its group or
//! others may write, and an `emptyDir` is created mode 0777. A
//! `HYPE_CACHE_DIR` or `TMPDIR` outside `/tmp` needs a writable volume
//! there (a base pod's `emptyDir`) or [`RunEnvironment::with_read_only_root`]
//! `(false)`.

use k8s_openapi::api::core::v1::{
    Capabilities, Container, EmptyDirVolumeSource, PodSecurityContext, PodSpec, SeccompProfile,
    SecurityContext, Volume, VolumeMount,
};

use crate::environment::{DEFAULT_RUN_AS_USER, RunEnvironment};

/// The directory a read-only root filesystem keeps writable.
pub(crate) const TMP_DIR: &str = "/tmp";

/// The name of the `emptyDir` volume at [`TMP_DIR`].
pub(crate) const TMP_VOLUME: &str = "hype-tmp";

/// Sets hype's defaults on `spec` and its container `index` (`hype-run`)
/// where the base pod leaves them unset, and the environment's options
/// over both.
pub(crate) fn secure(spec: &mut PodSpec, index: usize, env: &RunEnvironment) {
    let pod = spec
        .security_context
        .get_or_insert_with(PodSecurityContext::default);
    let Some(container) = spec.containers.get_mut(index) else {
        return;
    };
    let own = container
        .security_context
        .get_or_insert_with(SecurityContext::default);

    if let Some(uid) = env.run_as_user() {
        own.run_as_user = Some(i64::from(uid));
        own.run_as_group = Some(i64::from(uid));
        if uid == 0 {
            // Asked for root: runAsNonRoot=true would stop the kubelet.
            own.run_as_non_root = None;
            pod.run_as_non_root = None;
        } else {
            pod.fs_group.get_or_insert(i64::from(uid));
        }
    } else if own.run_as_user.is_none() && pod.run_as_user.is_none() {
        let uid = i64::from(DEFAULT_RUN_AS_USER);
        pod.run_as_user = Some(uid);
        if own.run_as_group.is_none() && pod.run_as_group.is_none() {
            pod.run_as_group = Some(uid);
        }
        pod.fs_group.get_or_insert(uid);
    }
    let user = own.run_as_user.or(pod.run_as_user);
    if own.run_as_non_root.is_none() && pod.run_as_non_root.is_none() && user != Some(0) {
        pod.run_as_non_root = Some(true);
    }
    if own.seccomp_profile.is_none() && pod.seccomp_profile.is_none() {
        pod.seccomp_profile = Some(SeccompProfile {
            type_: "RuntimeDefault".to_owned(),
            localhost_profile: None,
        });
    }

    let capabilities = own.capabilities.get_or_insert_with(Capabilities::default);
    capabilities
        .drop
        .get_or_insert_with(|| vec!["ALL".to_owned()]);
    let adds_sys_admin = capabilities
        .add
        .iter()
        .flatten()
        .any(|c| c == "SYS_ADMIN" || c == "CAP_SYS_ADMIN");
    if own.allow_privilege_escalation.is_none() && own.privileged != Some(true) && !adds_sys_admin {
        own.allow_privilege_escalation = Some(false);
    }
    if let Some(read_only) = env.read_only_root() {
        own.read_only_root_filesystem = Some(read_only);
    }
    let read_only = *own.read_only_root_filesystem.get_or_insert(true);
    if read_only {
        writable_tmp(spec, index);
    }
    if spec
        .security_context
        .as_ref()
        .is_some_and(|c| *c == PodSecurityContext::default())
    {
        spec.security_context = None;
    }
}

/// An `emptyDir` at [`TMP_DIR`] in container `index`, unless it mounts
/// something there already (a base pod's own choice).
fn writable_tmp(spec: &mut PodSpec, index: usize) {
    let Some(container) = spec.containers.get_mut(index) else {
        return;
    };
    if mounts_tmp(container) {
        return;
    }
    container
        .volume_mounts
        .get_or_insert_with(Vec::new)
        .push(VolumeMount {
            name: TMP_VOLUME.to_owned(),
            mount_path: TMP_DIR.to_owned(),
            ..VolumeMount::default()
        });
    let volumes = spec.volumes.get_or_insert_with(Vec::new);
    if !volumes.iter().any(|v| v.name == TMP_VOLUME) {
        volumes.push(Volume {
            name: TMP_VOLUME.to_owned(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        });
    }
}

fn mounts_tmp(container: &Container) -> bool {
    container
        .volume_mounts
        .iter()
        .flatten()
        .any(|m| m.mount_path.trim_end_matches('/') == TMP_DIR)
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::Pod;

    use super::super::pod::{PodRequest, build};
    use super::*;

    fn pod_of(env: &RunEnvironment) -> Pod {
        build(&PodRequest {
            name: "hype-f-1",
            function: "c::f",
            session: "s1",
            call: "inline:AA==",
            env,
            arch: None,
            marker: "m",
            owner: None,
        })
        .unwrap()
    }

    fn base(yaml: &str) -> (tempfile::TempDir, RunEnvironment) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("base.yaml");
        std::fs::write(&path, yaml).unwrap();
        let env = RunEnvironment::from_yaml(&path).unwrap().with_image("img");
        (dir, env)
    }

    fn contexts(pod: &Pod) -> (PodSecurityContext, SecurityContext, PodSpec) {
        let spec = pod.spec.clone().unwrap();
        (
            spec.security_context.clone().unwrap_or_default(),
            spec.containers[0].security_context.clone().unwrap(),
            spec,
        )
    }

    fn tmp_mounts(spec: &PodSpec) -> usize {
        spec.containers[0]
            .volume_mounts
            .iter()
            .flatten()
            .filter(|m| m.mount_path == TMP_DIR)
            .count()
    }

    #[test]
    fn by_default_the_pod_meets_the_restricted_standard() {
        let (pod, own, spec) = contexts(&pod_of(&RunEnvironment::new("img")));
        assert_eq!(pod.run_as_non_root, Some(true));
        assert_eq!(pod.run_as_user, Some(65532));
        assert_eq!(pod.run_as_group, Some(65532));
        assert_eq!(pod.fs_group, Some(65532));
        assert_eq!(pod.seccomp_profile.unwrap().type_, "RuntimeDefault");
        assert_eq!(own.allow_privilege_escalation, Some(false));
        assert_eq!(own.capabilities.unwrap().drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(own.read_only_root_filesystem, Some(true));
        assert_eq!(tmp_mounts(&spec), 1);
        let tmp = spec
            .volumes
            .iter()
            .flatten()
            .find(|v| v.name == TMP_VOLUME)
            .expect("the /tmp volume");
        assert!(tmp.empty_dir.is_some());
    }

    #[test]
    fn a_base_pods_fields_win_one_by_one() {
        let (_dir, env) = base(
            "spec:\n  securityContext:\n    runAsUser: 1000\n    seccompProfile:\n      type: Localhost\n      localhostProfile: p.json\n  containers:\n    - name: hype-run\n      securityContext:\n        readOnlyRootFilesystem: false\n        capabilities:\n          add: [NET_BIND_SERVICE]\n",
        );
        let (pod, own, spec) = contexts(&pod_of(&env));
        assert_eq!(pod.run_as_user, Some(1000), "the base pod's user");
        assert_eq!(
            (pod.run_as_group, pod.fs_group),
            (None, None),
            "no groups for a user the base pod chose"
        );
        assert_eq!(pod.run_as_non_root, Some(true), "still filled in");
        assert_eq!(pod.seccomp_profile.unwrap().type_, "Localhost");
        assert_eq!(own.read_only_root_filesystem, Some(false));
        assert_eq!(tmp_mounts(&spec), 0, "no /tmp volume for a writable root");
        let capabilities = own.capabilities.unwrap();
        assert_eq!(capabilities.add, Some(vec!["NET_BIND_SERVICE".to_owned()]));
        assert_eq!(capabilities.drop, Some(vec!["ALL".to_owned()]));
        assert_eq!(own.allow_privilege_escalation, Some(false));
    }

    #[test]
    fn root_privileged_and_sys_admin_are_left_as_the_base_pod_asks() {
        let (_dir, env) = base(
            "spec:\n  containers:\n    - name: hype-run\n      securityContext:\n        runAsUser: 0\n        privileged: true\n",
        );
        let (pod, own, _) = contexts(&pod_of(&env));
        assert_eq!(pod.run_as_non_root, None, "root is not made non-root");
        assert_eq!(pod.run_as_user, None, "the container's user stands");
        assert_eq!(own.run_as_user, Some(0));
        assert_eq!(own.privileged, Some(true));
        assert_eq!(
            own.allow_privilege_escalation, None,
            "the API server refuses privileged with allowPrivilegeEscalation=false"
        );
        let (_dir, env) = base(
            "spec:\n  containers:\n    - name: hype-run\n      securityContext:\n        capabilities:\n          add: [SYS_ADMIN]\n",
        );
        let (_, own, _) = contexts(&pod_of(&env));
        assert_eq!(own.allow_privilege_escalation, None);
    }

    #[test]
    fn the_options_win_over_the_base_pod() {
        let (_dir, env) = base(
            "spec:\n  securityContext:\n    runAsNonRoot: true\n  containers:\n    - name: hype-run\n      securityContext:\n        runAsUser: 1000\n        readOnlyRootFilesystem: true\n",
        );
        let (pod, own, spec) =
            contexts(&pod_of(&env.with_run_as_user(0).with_read_only_root(false)));
        assert_eq!((own.run_as_user, own.run_as_group), (Some(0), Some(0)));
        assert_eq!((pod.run_as_non_root, own.run_as_non_root), (None, None));
        assert_eq!(own.read_only_root_filesystem, Some(false));
        assert_eq!(tmp_mounts(&spec), 0);

        let (pod, own, _) = contexts(&pod_of(&RunEnvironment::new("img").with_run_as_user(1000)));
        assert_eq!(
            (own.run_as_user, own.run_as_group),
            (Some(1000), Some(1000))
        );
        assert_eq!(pod.run_as_user, None);
        assert_eq!(pod.fs_group, Some(1000));
        assert_eq!(pod.run_as_non_root, Some(true));
    }

    #[test]
    fn a_base_pods_own_tmp_mount_stays_the_only_one() {
        let (_dir, env) = base(
            "spec:\n  volumes:\n    - name: scratch\n      emptyDir:\n        medium: Memory\n  containers:\n    - name: hype-run\n      volumeMounts:\n        - name: scratch\n          mountPath: /tmp/\n",
        );
        let (_, _, spec) = contexts(&pod_of(&env));
        let mounts = spec.containers[0].volume_mounts.clone().unwrap();
        assert_eq!(mounts.len(), 1, "{mounts:?}");
        assert_eq!(mounts[0].name, "scratch");
        assert!(!spec.volumes.unwrap().iter().any(|v| v.name == TMP_VOLUME));
    }
}
