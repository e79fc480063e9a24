//! Leases on started runs. The process executing a run renews its lease while it works;
//! another process (a restarted server, or a server beside an embedded `cde run` on the
//! same data) adopts the run only once the lease has lapsed, that is once its holder died.

use std::sync::Arc;
use std::time::Duration;

use crate::error::Result;

use crate::model::{Lease, Leased, RunStatus};
use crate::Cde;

/// Renews a lease in the background until dropped.
pub(crate) struct Renewal(tokio::task::AbortHandle);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Cde {
    fn lease_duration(&self) -> Duration {
        Duration::from_secs(self.config.run_lease_secs.max(1))
    }

    /// A fresh lease of this process.
    pub(crate) fn lease(&self) -> Lease {
        Lease::from_now(&self.lease_owner, self.lease_duration())
    }

    /// Keeps this process's lease on run `run_id` until the returned guard is dropped.
    pub(crate) fn keep_lease(&self, run_id: &str) -> Renewal {
        self.keep_lease_on(Leased::Run, run_id)
    }

    /// Keeps this process's lease on `id` until the returned guard is dropped.
    pub(crate) fn keep_lease_on(&self, on: Leased, run_id: &str) -> Renewal {
        let store = self.store.clone();
        let (owner, run_id) = (self.lease_owner.clone(), run_id.to_owned());
        let duration = self.lease_duration();
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(duration / 3);
            loop {
                tick.tick().await;
                let lease = Lease::from_now(&owner, duration);
                match store.renew_lease(on, &run_id, &lease).await {
                    Ok(true) => {}
                    // Ended, or taken over after this process stalled past its lease.
                    Ok(false) => return,
                    Err(e) => tracing::warn!(run = %run_id, "renewing the run's lease: {e}"),
                }
            }
        });
        Renewal(task.abort_handle())
    }

    /// Adopts the started runs whose lease has lapsed: each is followed to its end in
    /// the background. Pipeline runs whose lease lapsed end as failed. Returns how many
    /// runs were adopted.
    pub async fn adopt_orphans(self: &Arc<Self>) -> Result<usize> {
        let interrupted = self.store.fail_interrupted_pipeline_runs().await?;
        if interrupted > 0 {
            tracing::warn!(
                "{interrupted} pipeline run(s) were interrupted: the process running them stopped"
            );
        }
        let mut adopted = 0;
        for run in self.store.runs_in(&RunStatus::ACTIVE).await? {
            if !self.store.take_over(&run.id, &self.lease()).await? {
                continue;
            }
            adopted += 1;
            let cde = self.clone();
            tokio::spawn(async move {
                let id = run.id.clone();
                match cde.resume(run).await {
                    Ok(run) => {
                        tracing::info!(run = %id, status = %run.status, "adopted run ended")
                    }
                    Err(e) => tracing::error!(run = %id, "following the adopted run failed: {e}"),
                }
            });
        }
        Ok(adopted)
    }

    /// Looks for orphaned runs twice per lease period. Runs forever.
    pub async fn adopt_periodically(self: Arc<Self>) {
        let mut every = tokio::time::interval(self.lease_duration() / 2);
        loop {
            every.tick().await;
            match self.adopt_orphans().await {
                Ok(0) => {}
                Ok(n) => tracing::warn!("adopted {n} run(s) whose executor is gone"),
                Err(e) => tracing::warn!("looking for orphaned runs: {e}"),
            }
        }
    }
}
