//! Named Docker volumes for a call's volume requests: made sure of once
//! per runner (the engine's create is idempotent: an existing volume is
//! reused), transient ones recorded for removal when the submitter closes.

use std::sync::Arc;

use bollard::models::VolumeCreateOptions;

use super::engine::bounded;
use super::{Shared, spec};
use crate::environment::{VolumeLifetime, VolumeRequest};
use crate::error::Error;

impl Shared {
    /// Creates a volume once per runner (the engine's create is
    /// idempotent: an existing volume is reused), and records transient
    /// ones for removal.
    pub(super) async fn ensure_volume(&self, volume: &VolumeRequest) -> Result<(), Error> {
        let cell = {
            let mut volumes = self.volumes.lock().unwrap_or_else(|e| e.into_inner());
            Arc::clone(volumes.entry(volume.name().to_owned()).or_default())
        };
        cell.get_or_try_init(|| async {
            let options = VolumeCreateOptions {
                name: Some(volume.name().to_owned()),
                labels: Some(spec::volume_labels(volume, &self.session)),
                ..Default::default()
            };
            bounded(self.docker.create_volume(options))
                .await
                .map_err(|f| f.into_error(format!("create volume {}", volume.name())))?;
            tracing::debug!(volume = %volume.name(), lifetime = ?volume.lifetime(), "volume ready");
            if volume.lifetime() == VolumeLifetime::Transient
                && !volume.is_kept_on_exit()
                && !self.keep_volumes
            {
                self.transient
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(volume.name().to_owned());
            }
            Ok::<(), Error>(())
        })
        .await
        .map(|_| ())
    }
}
