//! Pipeline schedules: a run started at each occurrence, never two of one pipeline at once.

use std::sync::Arc;

use chrono::Utc;

use crate::pipeline::parse_schedule;
use crate::Cde;

impl Cde {
    /// Starts due pipeline schedules, never two runs of one pipeline at once. Runs forever.
    pub async fn run_schedules(self: Arc<Self>) {
        let mut checked = Utc::now();
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(500)).await;
            let now = Utc::now();
            let pipelines = match self.store.pipelines().await {
                Ok(pipelines) => pipelines,
                Err(e) => {
                    tracing::warn!("reading pipelines: {e}");
                    continue;
                }
            };
            for pipeline in pipelines {
                let Some(schedule) = pipeline
                    .schedule
                    .as_deref()
                    .and_then(|s| parse_schedule(s).ok())
                else {
                    continue;
                };
                if schedule.after(&checked).next().is_none_or(|due| due > now) {
                    continue;
                }
                match self.begin_pipeline_run(&pipeline.name, "schedule").await {
                    Ok(run) => {
                        let cde = self.clone();
                        tokio::spawn(async move {
                            if let Err(e) = cde.execute_pipeline_run(run).await {
                                tracing::error!(pipeline = %pipeline.name, "scheduled run: {e}");
                            }
                        });
                    }
                    Err(e) => tracing::info!(pipeline = %pipeline.name, "schedule skipped: {e}"),
                }
            }
            checked = now;
        }
    }
}
