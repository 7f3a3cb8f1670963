//! `docs/rbac.yaml` as data, and the RBAC view of a request, for tests
//! that check a program's requests against the Roles hype documents.

use std::collections::BTreeSet;

/// An RBAC rule's parts: API group, resource, verb.
pub type Rule = (String, String, String);

/// (API group, resource, verb) of every rule of Role `role`.
pub fn granted(role: &str) -> BTreeSet<Rule> {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/rbac.yaml");
    let text = std::fs::read_to_string(path).expect("docs/rbac.yaml");
    let mut rules = BTreeSet::new();
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: serde_yaml_ng::Value =
            serde::Deserialize::deserialize(document).expect("rbac.yaml is YAML");
        if value["kind"].as_str() != Some("Role")
            || value["metadata"]["name"].as_str() != Some(role)
        {
            continue;
        }
        for rule in value["rules"].as_sequence().expect("rules") {
            let strings = |key: &str| -> Vec<String> {
                rule[key]
                    .as_sequence()
                    .expect("a list")
                    .iter()
                    .map(|v| v.as_str().expect("a string").to_owned())
                    .collect()
            };
            for group in strings("apiGroups") {
                for resource in strings("resources") {
                    for verb in strings("verbs") {
                        rules.insert((group.clone(), resource.clone(), verb));
                    }
                }
            }
        }
    }
    assert!(!rules.is_empty(), "no Role {role} in docs/rbac.yaml");
    rules
}

/// The (group, resource, verb) RBAC sees in one request of a test
/// double's [request log](crate::kube_double::KubeTestServer::request_log),
/// `None` for discovery.
pub fn request(method: &str, uri: &str) -> Option<Rule> {
    let (path, query) = uri.split_once('?').unwrap_or((uri, ""));
    let parts: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let (group, rest) = match parts.as_slice() {
        ["api", "v1", rest @ ..] => ("", rest),
        ["apis", group, _version, rest @ ..] => (*group, rest),
        _ => return None, // discovery, /version
    };
    let (resource, named) = match rest {
        ["namespaces", _, resource] => (resource.to_string(), false),
        ["namespaces", _, resource, _name] => (resource.to_string(), true),
        ["namespaces", _, resource, _name, sub] => (format!("{resource}/{sub}"), true),
        _ => return None,
    };
    let watch = query
        .split('&')
        .any(|p| p == "watch=true" || p == "watch=1");
    let verb = match (method, named) {
        ("GET", _) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => return None,
    };
    Some((group.to_owned(), resource, verb.to_owned()))
}

/// `docs/rbac.yaml` as `kubectl apply -n NAMESPACE -f docs/rbac.yaml`
/// creates it: each Role and RoleBinding, typed, in `namespace`.
#[derive(Debug)]
pub struct Applied {
    /// The namespace it was applied in.
    pub namespace: String,
    /// Its Roles.
    pub roles: Vec<k8s_openapi::api::rbac::v1::Role>,
    /// Its RoleBindings.
    pub bindings: Vec<k8s_openapi::api::rbac::v1::RoleBinding>,
}

/// Applies `docs/rbac.yaml` in `namespace` as kubectl does: a document
/// naming another namespace is refused (kubectl's "the namespace from the
/// provided object … does not match the namespace …"), the others are
/// created there.
pub fn apply_in(namespace: &str) -> Result<Applied, String> {
    use k8s_openapi::api::rbac::v1::{Role, RoleBinding};
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/rbac.yaml");
    let text = std::fs::read_to_string(path).expect("docs/rbac.yaml");
    let mut applied = Applied {
        namespace: namespace.to_owned(),
        roles: Vec::new(),
        bindings: Vec::new(),
    };
    for document in serde_yaml_ng::Deserializer::from_str(&text) {
        let value: serde_yaml_ng::Value =
            serde::Deserialize::deserialize(document).expect("rbac.yaml is YAML");
        if value.is_null() {
            continue;
        }
        if let Some(theirs) = value["metadata"]["namespace"].as_str()
            && theirs != namespace
        {
            return Err(format!(
                "the namespace from the provided object {theirs:?} does not match the namespace {namespace:?}"
            ));
        }
        match value["kind"].as_str() {
            Some("Role") => {
                let mut role: Role = serde_yaml_ng::from_value(value).expect("a Role");
                role.metadata.namespace = Some(namespace.to_owned());
                applied.roles.push(role);
            }
            Some("RoleBinding") => {
                let mut binding: RoleBinding =
                    serde_yaml_ng::from_value(value).expect("a RoleBinding");
                binding.metadata.namespace = Some(namespace.to_owned());
                applied.bindings.push(binding);
            }
            other => return Err(format!("unexpected kind {other:?} in docs/rbac.yaml")),
        }
    }
    Ok(applied)
}

impl Applied {
    /// What ServiceAccount `account` of namespace `account_namespace` may
    /// do in the namespace the file was applied in, as the RBAC authorizer
    /// decides (`appliesToUser` in Kubernetes'
    /// pkg/registry/rbac/validation/rule.go): a ServiceAccount subject
    /// without a namespace is one of the binding's own namespace.
    pub fn granted_to_service_account(
        &self,
        account_namespace: &str,
        account: &str,
    ) -> BTreeSet<Rule> {
        let mut rules = BTreeSet::new();
        for binding in &self.bindings {
            let binding_namespace = binding.metadata.namespace.as_deref().unwrap_or_default();
            let applies = binding.subjects.iter().flatten().any(|subject| {
                let namespace = subject
                    .namespace
                    .as_deref()
                    .filter(|n| !n.is_empty())
                    .unwrap_or(binding_namespace);
                subject.kind == "ServiceAccount"
                    && subject.name == account
                    && namespace == account_namespace
            });
            if !applies || binding.role_ref.kind != "Role" {
                continue;
            }
            let Some(role) = self.roles.iter().find(|r| {
                r.metadata.name.as_deref() == Some(binding.role_ref.name.as_str())
                    && r.metadata.namespace == binding.metadata.namespace
            }) else {
                continue;
            };
            for rule in role.rules.iter().flatten() {
                for group in rule.api_groups.iter().flatten() {
                    for resource in rule.resources.iter().flatten() {
                        for verb in &rule.verbs {
                            rules.insert((group.clone(), resource.clone(), verb.clone()));
                        }
                    }
                }
            }
        }
        rules
    }
}

/// The namespace a request of a test double's request log is in, if any.
pub fn request_namespace(uri: &str) -> Option<String> {
    let path = uri.split_once('?').map_or(uri, |(path, _)| path);
    let mut parts = path.trim_start_matches('/').split('/');
    parts
        .by_ref()
        .find(|part| *part == "namespaces")
        .and(parts.next())
        .map(str::to_owned)
}
