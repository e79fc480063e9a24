//! Retention applied periodically (see [`crate::retention`]).

use std::sync::Arc;
use std::time::Duration;

use crate::Cde;

impl Cde {
    /// Collects garbage every `gc_interval_secs` (never when 0). Runs forever.
    pub async fn collect_garbage_periodically(self: Arc<Self>) {
        if self.config.gc_interval_secs == 0 {
            return;
        }
        let mut interval = tokio::time::interval(Duration::from_secs(self.config.gc_interval_secs));
        loop {
            interval.tick().await;
            match self.collect_garbage(false).await {
                Ok(report) => {
                    for error in &report.errors {
                        tracing::warn!("retention: {error}");
                    }
                    if !report.is_empty() {
                        tracing::info!(
                            runs = report.runs.len(),
                            pipeline_runs = report.pipeline_runs.len(),
                            dataset_versions = report.dataset_versions.len(),
                            "retention removed expired runs and dataset versions"
                        );
                    }
                }
                Err(e) => tracing::warn!("retention: {e}"),
            }
        }
    }
}
