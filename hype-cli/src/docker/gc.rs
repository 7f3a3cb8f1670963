//! `hype gc --docker`: the containers and transient volumes of owners that
//! no longer run, found and removed as the Docker runner does on connect
//! (`hype_runtime::__tools::reap`).

use bollard::Docker;
use hype_runtime::__tools::reap::{self, LeftoverKind};

use crate::report::Report;

/// Removes (or, dry, lists) what dead owners left on the engine.
pub async fn collect(docker: &Docker, report: &mut Report) {
    let leftovers = match reap::find_dead(docker).await {
        Ok(leftovers) => leftovers,
        Err(err) => return report.failed(&err.to_string()),
    };
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
