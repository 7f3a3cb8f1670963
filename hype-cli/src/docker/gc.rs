//! `hype gc --docker`: the containers and transient volumes of owners that
//! no longer run, found and removed as the Docker runner does on connect
//! (`hype_runtime::__tools::reap`).

use bollard::Docker;
use hype_runtime::__tools::labels::label_value;
use hype_runtime::__tools::reap::{self, LeftoverKind};

use crate::report::Report;

/// Removes (or, dry, lists) what dead owners left on the engine, of
/// `session` only if given; a session with nothing on the engine, dead or
/// alive, is a failure that says so.
pub async fn collect(docker: &Docker, session: Option<&str>, report: &mut Report) {
    let mut leftovers = match reap::find_dead(docker).await {
        Ok(leftovers) => leftovers,
        Err(err) => return report.failed(&err.to_string()),
    };
    if let Some(session) = session {
        let wanted = label_value(session);
        leftovers.retain(|l| l.session.as_deref() == Some(wanted.as_str()));
        if leftovers.is_empty() {
            match super::session_exists(docker, session).await {
                Ok(true) => {}
                Ok(false) => {
                    return report.failed(&format!(
                        "session {session} has no container or volume on the Docker engine (`hype ps --docker` lists the sessions that have containers)"
                    ));
                }
                Err(err) => return report.failed(&err),
            }
        }
    }
    for leftover in &leftovers {
        if !report.dry_run()
            && let Err(err) = reap::remove(docker, leftover).await
        {
            report.failed(&err.to_string());
            continue;
        }
        let kind = match leftover.kind {
            LeftoverKind::Container => "container",
            LeftoverKind::Volume => "volume",
        };
        report.removed(kind, &leftover.name, &leftover.reason());
    }
}
