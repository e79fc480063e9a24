//! Runs whose executor died: adopted once their lease lapsed (see [`crate::lease`]).

use std::sync::Arc;

use crate::error::Result;
use crate::model::RunStatus;
use crate::Cde;

impl Cde {
    /// At start: adopts the runs whose executor is gone and fails the pipeline runs
    /// whose executor is gone (see [`crate::lease`]). Returns how many runs were adopted.
    pub async fn recover(self: &Arc<Self>) -> Result<usize> {
        self.adopt_orphans().await
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
