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
