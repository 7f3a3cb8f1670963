//! The crash runbook's files (README, "After a crash") stay true:
//! `docs/gc-cronjob.yaml` is a ServiceAccount, a RoleBinding to the
//! `hype-operator` Role of `docs/rbac.yaml` and a CronJob running, as that
//! ServiceAccount, a command line `hype` accepts; and
//! `docs/staging-lifecycle.json` deletes only what `hype gc --staging`
//! would (blobs and outcome objects).

use clap::Parser as _;
use hype_cli::cli::Cli;
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::rbac::v1::RoleBinding;

const CRONJOB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/gc-cronjob.yaml");
const LIFECYCLE: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../docs/staging-lifecycle.json"
);

#[test]
fn the_gc_cronjob_runs_hype_gc_as_the_operator_role() {
    let text = std::fs::read_to_string(CRONJOB).expect("docs/gc-cronjob.yaml");
    let documents: Vec<serde_yaml_ng::Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|document| k8s_openapi::serde::Deserialize::deserialize(document).expect("YAML"))
        .collect();
    let kinds: Vec<&str> = documents
        .iter()
        .map(|d| d["kind"].as_str().expect("a kind"))
        .collect();
    assert_eq!(kinds, ["ServiceAccount", "RoleBinding", "CronJob"]);
    for document in &documents {
        assert!(
            document["metadata"]["namespace"].is_null(),
            "no namespace: it applies with `kubectl apply -n`"
        );
    }
    // Typed: apiVersion, kind and every field's type are checked.
    let account: ServiceAccount = serde_yaml_ng::from_value(documents[0].clone()).unwrap();
    let binding: RoleBinding = serde_yaml_ng::from_value(documents[1].clone()).unwrap();
    let cronjob: CronJob = serde_yaml_ng::from_value(documents[2].clone()).unwrap();
    let account = account.metadata.name.expect("a name");

    assert_eq!(
        (
            binding.role_ref.kind.as_str(),
            binding.role_ref.name.as_str()
        ),
        ("Role", "hype-operator")
    );
    // The Role exists in docs/rbac.yaml with what gc needs (the CLI tests
    // check every request of `hype gc` against it).
    let role = hype_tests::rbac::granted("hype-operator");
    for (group, resource) in [
        ("coordination.k8s.io", "leases"),
        ("", "pods"),
        ("", "persistentvolumeclaims"),
    ] {
        for verb in ["list", "delete"] {
            let rule = (group.to_owned(), resource.to_owned(), verb.to_owned());
            assert!(role.contains(&rule), "hype-operator lacks {rule:?}");
        }
    }
    let subjects = binding.subjects.expect("subjects");
    assert!(
        subjects
            .iter()
            .any(|s| s.kind == "ServiceAccount" && s.name == account && s.namespace.is_none()),
        "the binding names ServiceAccount {account} of its own namespace: {subjects:?}"
    );

    let spec = cronjob.spec;
    assert_eq!(spec.concurrency_policy.as_deref(), Some("Forbid"));
    let pod = spec
        .job_template
        .spec
        .expect("job spec")
        .template
        .spec
        .expect("pod spec");
    assert_eq!(pod.service_account_name.as_deref(), Some(account.as_str()));
    let [container] = pod.containers.as_slice() else {
        panic!("one container: {:?}", pod.containers);
    };
    assert!(
        container.command.is_none(),
        "the image's entrypoint is hype"
    );
    // Kubernetes expands $(POD_NAMESPACE) from the container's env.
    let env = container.env.as_deref().unwrap_or_default();
    let namespace_from = env
        .iter()
        .find(|v| v.name == "POD_NAMESPACE")
        .and_then(|v| v.value_from.as_ref()?.field_ref.as_ref())
        .map(|f| f.field_path.as_str());
    assert_eq!(namespace_from, Some("metadata.namespace"));
    let args: Vec<String> = container
        .args
        .clone()
        .expect("args")
        .into_iter()
        .map(|a| a.replace("$(POD_NAMESPACE)", "batch"))
        .collect();
    assert_eq!(args[..2], ["gc", "--kube"], "{args:?}");
    Cli::try_parse_from(std::iter::once("hype".to_owned()).chain(args.iter().cloned()))
        .unwrap_or_else(|err| panic!("hype refuses {args:?}: {err}"));
}

#[test]
fn the_lifecycle_rule_deletes_only_staged_blobs_and_outcomes() {
    let text = std::fs::read_to_string(LIFECYCLE).expect("docs/staging-lifecycle.json");
    let config: serde_json::Value = serde_json::from_str(&text).expect("JSON");
    let rules = config["lifecycle"]["rule"]
        .as_array()
        .expect("lifecycle.rule");
    let mut prefixes = Vec::new();
    for rule in rules {
        assert_eq!(rule["action"]["type"], "Delete", "{rule}");
        let age = rule["condition"]["age"].as_u64().expect("an age in days");
        assert!(age >= 1, "{rule}");
        let only = rule["condition"]["matchesPrefix"]
            .as_array()
            .expect("a rule limited by prefix: the bucket may hold other things");
        for prefix in only {
            prefixes.push(prefix.as_str().expect("a string").to_owned());
        }
    }
    prefixes.sort();
    // The layout of a staging location (`gs://bucket/hype` here):
    // hype_runtime's `listing`, which `hype gc --staging` removes from.
    assert_eq!(prefixes, ["hype/blobs/", "hype/outcomes/"]);
}
