//! The run queue: queued runs executed oldest first under the concurrency limit, each
//! once it is due (a retry after its backoff).

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;
use crate::model::{Run, RunStatus};
use crate::Cde;

/// How often the queue is looked at even when nothing woke the scheduler (runs queued by
/// another process).
const QUEUE_POLL: Duration = Duration::from_secs(1);

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

    /// The oldest queued run that is due (a retry waits out its backoff first), claimed
    /// for this process.
    async fn next_queued(&self) -> Result<Option<Run>> {
        let now = chrono::Utc::now();
        for run in self.store.runs_in(&[RunStatus::Queued]).await? {
            if !run.is_due(now) {
                continue;
            }
            if let Some(run) = self.claim(run).await? {
                return Ok(Some(run));
            }
        }
        Ok(None)
    }
}
