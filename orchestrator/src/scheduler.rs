//! What `cde server` does besides answering requests: executes queued runs in FIFO order
//! under a concurrency limit, adopts runs a dead process left behind, and sweeps
//! containers that no active run owns.

use std::sync::Arc;
use std::time::Duration;

use crate::engine::container::{INSTANCE_LABEL, RUN_LABEL};
use crate::error::Result;

use crate::model::RunStatus;
use crate::Cde;

/// How often the queue is looked at even when nothing woke the scheduler (runs queued by
/// another process).
const QUEUE_POLL: Duration = Duration::from_secs(1);

/// How long past its time limit a health-check container may still be being removed.
const HEALTH_CHECK_SLACK_SECS: i64 = 60;

impl Cde {
    /// Executes queued runs, oldest first, at most `max_concurrent_runs` at once (pipeline
    /// steps included). Runs forever.
    pub async fn schedule(self: Arc<Self>) {
        loop {
            let slot = self
                .run_slots
                .clone()
                .acquire_owned()
                .await
                .expect("never closed");
            match self.next_queued().await {
                Ok(Some(run)) => {
                    let cde = self.clone();
                    tokio::spawn(async move {
                        let id = run.id.clone();
                        if let Err(e) = cde.execute(run).await {
                            tracing::error!(run = %id, "run could not be recorded: {e}");
                        }
                        drop(slot);
                    });
                }
                Ok(None) => {
                    drop(slot);
                    let _ = tokio::time::timeout(QUEUE_POLL, self.queue_changed.notified()).await;
                }
                Err(e) => {
                    drop(slot);
                    tracing::error!("reading the queue: {e}");
                    tokio::time::sleep(QUEUE_POLL).await;
                }
            }
        }
    }

    /// The oldest queued run, claimed for this process.
    async fn next_queued(&self) -> Result<Option<crate::model::Run>> {
        for run in self.store.runs_in(&[RunStatus::Queued]).await? {
            if let Some(run) = self.claim(run).await? {
                return Ok(Some(run));
            }
        }
        Ok(None)
    }

    /// At start: adopts the runs whose executor is gone and fails the pipeline runs
    /// whose executor is gone (see [`crate::lease`]). Returns how many runs were adopted.
    pub async fn recover(self: &Arc<Self>) -> Result<usize> {
        self.adopt_orphans().await
    }

    /// Removes this instance's containers whose run has ended or is unknown. Returns how many.
    pub async fn sweep(&self) -> Result<usize> {
        let engine = self.engine().await?;
        let mut removed = 0;
        let instance = format!("{INSTANCE_LABEL}={}", self.store.instance());
        for container in engine.containers_labelled(&instance).await? {
            let owned = match container.labels.get(RUN_LABEL) {
                Some(run_id) => match self.store.run(run_id).await {
                    Ok(run) => !run.status.is_finished(),
                    Err(crate::Error::NotFound {
                        object: crate::error::Object::Run,
                        ..
                    }) => false,
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
