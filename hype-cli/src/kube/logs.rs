//! `hype logs --kube`: the log of the pod named by an execution ID, from
//! its `hype-run` container; followed until the pod ends with `-f`.

use futures::{AsyncBufReadExt as _, StreamExt as _};
use hype_runtime::__tools::labels::{LABEL_MANAGED_BY, MANAGED_BY};
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, LogParams};

use super::bounded;

/// The container hype runs a call in.
pub use hype_runtime::__tools::CONTAINER;

/// Prints the log of pod `execution_id` in `namespace` to stdout, after
/// checking that it is hype's. Without `follow` the read is bounded by
/// [`super::CALL_BOUND`]; with it, it lasts as long as the container runs.
pub async fn print(
    client: &kube::Client,
    namespace: &str,
    execution_id: &str,
    follow: bool,
) -> Result<(), String> {
    let pods: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let what = format!("read pod {execution_id} in namespace {namespace}");
    let Some(pod) = bounded(&what, pods.get_opt(execution_id)).await? else {
        return Err(format!(
            "no pod {execution_id} in namespace {namespace} (`hype ps` lists the executions; --namespace picks another namespace)"
        ));
    };
    let managed = pod
        .metadata
        .labels
        .as_ref()
        .and_then(|labels| labels.get(LABEL_MANAGED_BY))
        .is_some_and(|v| v == MANAGED_BY);
    if !managed {
        return Err(format!(
            "pod {execution_id} in namespace {namespace} is not hype's (no label {LABEL_MANAGED_BY}={MANAGED_BY})"
        ));
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
