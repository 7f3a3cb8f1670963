//! `hype logs --kube`: the log of the pod named by an execution ID, from
//! its `hype-run` container; followed until the pod ends with `-f`; or
//! those of every pod of a session.

use futures::{AsyncBufReadExt as _, StreamExt as _};
use hype_runtime::__tools::labels::{LABEL_MANAGED_BY, LABEL_SESSION, MANAGED_BY, label_value};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, ListParams, LogParams};

use super::{bounded, selector};

/// The container hype runs a call in.
pub use hype_runtime::__tools::CONTAINER;

/// Prints the log of pod `execution_id` in `namespace` to stdout, after
/// checking that it is hype's (and of `session`, if given). Without
/// `follow` the read is bounded by [`super::CALL_BOUND`]; with it, it
/// lasts as long as the container runs.
pub async fn print(
    client: &kube::Client,
    namespace: &str,
    execution_id: &str,
    session: Option<&str>,
    follow: bool,
) -> Result<(), String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!("read pod {execution_id} in namespace {namespace}");
    let Some(pod) = bounded(&what, pods.get_opt(execution_id)).await? else {
        return Err(format!(
            "no pod {execution_id} in namespace {namespace}: if it ran, its call has ended and its log went with the pod (`hype ps` lists the executions that still have one; --namespace picks another namespace)\n{}",
            crate::LOGS_GONE
        ));
    };
    let labels = pod.metadata.labels.as_ref();
    let label = |key: &str| labels.and_then(|labels| labels.get(key));
    if label(LABEL_MANAGED_BY).is_none_or(|v| v != MANAGED_BY) {
        return Err(format!(
            "pod {execution_id} in namespace {namespace} is not hype's (no label {LABEL_MANAGED_BY}={MANAGED_BY})"
        ));
    }
    if let Some(session) = session {
        let of = label(LABEL_SESSION).map_or("no session", String::as_str);
        if of != label_value(session) {
            return Err(format!(
                "pod {execution_id} in namespace {namespace} is of session {of}, not {session}"
            ));
        }
    }
    let params = LogParams {
        container: Some(CONTAINER.to_owned()),
        follow,
        ..Default::default()
    };
    let what = format!("read the log of pod {execution_id}");
    if !follow {
        let text = bounded(&what, pods.logs(execution_id, &params)).await?;
        print!("{text}");
        return Ok(());
    }
    let stream = bounded(&what, pods.log_stream(execution_id, &params)).await?;
    let mut lines = std::pin::pin!(stream.lines());
    while let Some(line) = lines.next().await {
        let line = line.map_err(|err| format!("the log of pod {execution_id} broke off: {err}"))?;
        println!("{line}");
    }
    Ok(())
}

/// Prints the log of every pod of `session` in `namespace`, oldest first,
/// each after a `==> <pod> <==` line. Gives how many it printed and what
/// failed; an error if the pods cannot be listed.
pub async fn session(
    client: &kube::Client,
    namespace: &str,
    session: &str,
) -> Result<(usize, Vec<String>), String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let list = bounded(
        &format!("list the pods of session {session} in namespace {namespace}"),
        pods.list(&ListParams::default().labels(&selector(Some(session)))),
    )
    .await?;
    let mut items = list.items;
    items.sort_by_key(|p| p.metadata.creation_timestamp.as_ref().map(|t| t.0));
    let (mut printed, mut errors) = (0, Vec::new());
    for pod in items {
        let Some(name) = pod.metadata.name else {
            continue;
        };
        println!("==> {name} <==");
        match print(client, namespace, &name, Some(session), false).await {
            Ok(()) => printed += 1,
            Err(err) => errors.push(err),
        }
    }
    Ok((printed, errors))
}
