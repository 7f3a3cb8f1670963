//! `hype gc --staging URI --older-than DURATION`: the blobs and outcome
//! objects of a staging store (`file://` or `gs://`) written longer ago
//! than DURATION before the command started
//! (`hype_runtime::__tools::listing`).

use std::time::{Duration, SystemTime};

use hype_runtime::__tools::listing::{self, StagedKind};
use k8s_openapi::jiff::Timestamp;

use crate::duration;
use crate::report::Report;

/// Removes (or, dry, lists) what is older than `older_than` in `uri`.
pub async fn collect(uri: &str, older_than: Duration, started: Timestamp, report: &mut Report) {
    let started = SystemTime::from(started);
    let objects = match listing::list(uri).await {
        Ok(objects) => objects,
        Err(err) => return report.failed(&format!("cannot list staging {uri}: {err}")),
    };
    for object in objects {
        let age = started.duration_since(object.modified).unwrap_or_default();
        if age <= older_than {
            continue;
        }
        if !report.dry_run()
            && let Err(err) = listing::remove(uri, &object.uri).await
        {
            report.failed(&format!("cannot remove {}: {err}", object.uri));
            continue;
        }
        let kind = match object.kind {
            StagedKind::Blob => "blob",
            StagedKind::Outcome => "outcome",
        };
        report.removed(
            kind,
            &object.uri,
            &format!(
                "written {} ago (older than {})",
                duration::format(age),
                duration::format(older_than)
            ),
        );
    }
}
