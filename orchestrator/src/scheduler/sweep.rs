//! The sweeper: containers of this instance that no active run owns are removed.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::container::{INSTANCE_LABEL, RUN_LABEL};
use crate::error::{ErrorCode, Result};
use crate::Cde;

/// How long past its time limit a health-check container may still be being removed.
const HEALTH_CHECK_SLACK_SECS: i64 = 60;

impl Cde {
    /// Removes this instance's containers whose run has ended or is unknown. Returns how many.
    pub async fn sweep(&self) -> Result<usize> {
        let engine = self.engine().await?;
        let mut removed = 0;
        let instance = format!("{INSTANCE_LABEL}={}", self.store.instance());
        for container in engine.containers_labelled(&instance).await? {
            let owned = match container.labels.get(RUN_LABEL) {
                Some(run_id) => match self.store.run(run_id).await {
                    Ok(run) => !run.status.is_finished(),
                    Err(e) if e.code() == ErrorCode::NotFound => false,
                    Err(e) => return Err(e),
                },
                // A health check removes itself; one older than its time limit was left
                // by a process that died while it ran.
                None => {
                    let age = chrono::Utc::now().timestamp() - container.created;
                    age <= self.config.health_check_timeout_secs as i64 + HEALTH_CHECK_SLACK_SECS
                }
            };
            if !owned {
                engine.remove(&container.id).await?;
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Sweeps every `sweep_interval_secs`. Runs forever.
    pub async fn sweep_periodically(self: Arc<Self>) {
        let mut every =
            tokio::time::interval(Duration::from_secs(self.config.sweep_interval_secs.max(1)));
        loop {
            every.tick().await;
            match self.sweep().await {
                Ok(0) => {}
                Ok(n) => tracing::info!("sweeper removed {n} container(s)"),
                Err(e) => tracing::warn!("sweeping: {e}"),
            }
        }
    }
}
