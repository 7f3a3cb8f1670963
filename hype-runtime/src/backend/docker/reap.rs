//! What dead sessions left on a Docker engine: the containers and transient
//! volumes labelled `app.kubernetes.io/managed-by=hype` whose
//! `hype.dev/owner` ([`Owner`]) is `Liveness::Dead`, found and removed.
//! Never an object whose owner lives or cannot be told
//! (`Liveness::Unknown`: another host), nor one without an owner label
//! (persistent volumes, transient ones kept on exit, objects of older
//! versions), nor a persistent volume whatever its labels.
//!
//! Both the Docker runner (on connect, [`reap_quietly`]) and `hype gc
//! --docker` ([`find_dead`], then [`remove`] each) use this. Containers
//! come first in what [`find_dead`] gives, so that the volumes they mount
//! are free by the time they are removed.

use std::collections::HashMap;
use std::fmt;
use std::time::Duration;

use bollard::Docker;
use bollard::query_parameters::{
    ListContainersOptions, ListVolumesOptions, RemoveContainerOptions, RemoveVolumeOptions,
};

use super::engine::bounded;
use crate::backend::labels::{
    LABEL_LIFETIME, LABEL_MANAGED_BY, LABEL_OWNER, LABEL_SESSION, MANAGED_BY,
};
use crate::error::Error;
use crate::owner::{Liveness, Owner};

/// How long [`reap_quietly`] may take in all, on connect.
pub const REAP_BOUND: Duration = Duration::from_secs(30);

/// The kind of object a dead session left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LeftoverKind {
    /// A container (running, exited or only created).
    Container,
    /// A transient named volume.
    Volume,
}

impl fmt::Display for LeftoverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LeftoverKind::Container => "container",
            LeftoverKind::Volume => "volume",
        })
    }
}

/// One object a dead owner left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Leftover {
    /// Container or volume.
    pub kind: LeftoverKind,
    /// The container's name (its execution ID) or the volume's name.
    pub name: String,
    /// What the engine removes it by: the container's ID, the volume's name.
    pub id: String,
    /// Its session, when labelled.
    pub session: Option<String>,
    /// Its owner, as labelled.
    pub owner: String,
    /// The container's state (`running`, `exited`, …); `None` for volumes.
    pub state: Option<String>,
}

impl Leftover {
    /// Why it goes: `owner <owner> is gone (session <session>)`.
    pub fn reason(&self) -> String {
        match &self.session {
            Some(session) => format!("owner {} is gone (session {session})", self.owner),
            None => format!("owner {} is gone", self.owner),
        }
    }
}

/// The engine's label filter: hype's objects that name an owner.
fn owned_filter(extra: &[String]) -> HashMap<String, Vec<String>> {
    let mut terms = vec![
        format!("{LABEL_MANAGED_BY}={MANAGED_BY}"),
        LABEL_OWNER.to_owned(),
    ];
    terms.extend_from_slice(extra);
    HashMap::from([("label".to_owned(), terms)])
}

/// The owner an object's labels name, if it is hype's and that owner is
/// dead.
fn dead_owner(labels: &HashMap<String, String>) -> Option<String> {
    if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY) {
        return None;
    }
    let text = labels.get(LABEL_OWNER)?;
    let owner = Owner::parse(text)?;
    (owner.liveness() == Liveness::Dead).then(|| text.clone())
}

/// The containers, then the transient volumes, of dead owners on the
/// engine. Each engine call is bounded; a failure names what could not be
/// listed.
pub async fn find_dead(docker: &Docker) -> Result<Vec<Leftover>, Error> {
    let mut found = Vec::new();
    let options = ListContainersOptions {
        all: true,
        filters: Some(owned_filter(&[])),
        ..Default::default()
    };
    let containers = bounded(docker.list_containers(Some(options)))
        .await
        .map_err(|f| f.into_error("list hype's containers"))?;
    for container in containers {
        let labels = container.labels.unwrap_or_default();
        let (Some(owner), Some(id)) = (dead_owner(&labels), container.id) else {
            continue;
        };
        let name = container
            .names
            .and_then(|names| names.into_iter().next())
            .map(|name| name.trim_start_matches('/').to_owned())
            .unwrap_or_else(|| id.clone());
        found.push(Leftover {
            kind: LeftoverKind::Container,
            name,
            id,
            session: labels.get(LABEL_SESSION).cloned(),
            owner,
            state: container.state.map(|state| state.to_string()),
        });
    }
    let options = ListVolumesOptions {
        filters: Some(owned_filter(&[format!("{LABEL_LIFETIME}=transient")])),
    };
    let volumes = bounded(docker.list_volumes(Some(options)))
        .await
        .map_err(|f| f.into_error("list hype's volumes"))?;
    for volume in volumes.volumes.unwrap_or_default() {
        // Checked here too: a persistent volume is never collected.
        if volume.labels.get(LABEL_LIFETIME).map(String::as_str) != Some("transient") {
            continue;
        }
        let Some(owner) = dead_owner(&volume.labels) else {
            continue;
        };
        found.push(Leftover {
            kind: LeftoverKind::Volume,
            id: volume.name.clone(),
            name: volume.name,
            session: volume.labels.get(LABEL_SESSION).cloned(),
            owner,
            state: None,
        });
    }
    Ok(found)
}

/// Removes one leftover: a container forcibly (it may still run), with its
/// anonymous volumes; a volume unless something still uses it. One that is
/// gone already is not an error.
pub async fn remove(docker: &Docker, leftover: &Leftover) -> Result<(), Error> {
    let result = match leftover.kind {
        LeftoverKind::Container => {
            let options = RemoveContainerOptions {
                force: true,
                v: true,
                link: false,
            };
            bounded(docker.remove_container(&leftover.id, Some(options))).await
        }
        LeftoverKind::Volume => {
            bounded(docker.remove_volume(&leftover.id, None::<RemoveVolumeOptions>)).await
        }
    };
    match result {
        Ok(()) => Ok(()),
        Err(failure) if failure.status() == Some(404) => Ok(()),
        Err(failure) if failure.status() == Some(409) => Err(Error::Cluster {
            operation: format!("remove {} {}", leftover.kind, leftover.name),
            message: format!(
                "{}; it is in use (a volume by a container), or its removal is already under way",
                failure.message()
            ),
            source: None,
        }),
        Err(failure) => {
            Err(failure.into_error(format!("remove {} {}", leftover.kind, leftover.name)))
        }
    }
}

/// Finds and removes what dead owners left, within [`REAP_BOUND`] in all.
/// Never fails: what cannot be listed or removed is a warning, and the
/// caller goes on.
pub async fn reap_quietly(docker: &Docker) {
    let work = async {
        let leftovers = match find_dead(docker).await {
            Ok(leftovers) => leftovers,
            Err(err) => {
                tracing::warn!(error = %err, "cannot look for what dead hype sessions left on the Docker engine; `hype gc --docker` removes it");
                return;
            }
        };
        for leftover in &leftovers {
            match remove(docker, leftover).await {
                Ok(()) => tracing::info!(
                    kind = %leftover.kind,
                    name = %leftover.name,
                    "removed what a dead session left: {}",
                    leftover.reason()
                ),
                Err(err) => tracing::warn!(
                    kind = %leftover.kind,
                    name = %leftover.name,
                    error = %err,
                    "cannot remove what a dead session left; `hype gc --docker` tries again"
                ),
            }
        }
    };
    if tokio::time::timeout(REAP_BOUND, work).await.is_err() {
        tracing::warn!(
            "removing what dead hype sessions left on the Docker engine took over {REAP_BOUND:?}; going on (`hype gc --docker` finishes it)"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> HashMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn only_hype_objects_of_dead_owners_are_taken() {
        let me = Owner::current();
        let dead = format!(
            "{}@{}",
            Owner::parse_tag(&format!("{}.1.00000000", me.pid()))
                .unwrap()
                .tag(),
            me.host()
        );
        let elsewhere = format!("{}@{}-elsewhere", me.tag(), me.host());
        let alive = me.to_string();
        let hype = |owner: &str| labels(&[(LABEL_MANAGED_BY, MANAGED_BY), (LABEL_OWNER, owner)]);
        assert_eq!(dead_owner(&hype(&dead)), Some(dead.clone()));
        assert_eq!(dead_owner(&hype(&alive)), None, "alive");
        assert_eq!(dead_owner(&hype(&elsewhere)), None, "unknown");
        assert_eq!(dead_owner(&hype("not an owner")), None, "unreadable");
        assert_eq!(dead_owner(&labels(&[(LABEL_MANAGED_BY, MANAGED_BY)])), None);
        assert_eq!(
            dead_owner(&labels(&[
                (LABEL_MANAGED_BY, "other"),
                (LABEL_OWNER, &dead)
            ])),
            None,
            "not hype's"
        );
    }
}
