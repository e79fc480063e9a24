//! Event triggers: a pipeline run started when its listeners receive events, at most once
//! per `debounce_secs`, never two of one pipeline at once.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::time::Instant;

use crate::Cde;

/// How often triggers are looked at without a wake-up: a run that ended while events were
/// waiting is followed by the next one this soon.
const TICK: Duration = Duration::from_millis(500);

impl Cde {
    /// Starts runs of pipelines with `trigger.on_events` whose listeners received events
    /// past what their last run read. Runs forever.
    pub async fn run_event_triggers(self: Arc<Self>) {
        let mut started: HashMap<String, Instant> = HashMap::new();
        let mut wake = Instant::now() + TICK;
        loop {
            tokio::select! {
                _ = self.hooks.arrived.notified() => {}
                _ = tokio::time::sleep_until(wake) => {}
            }
            wake = Instant::now() + TICK;
            let pipelines = match self.store.pipelines().await {
                Ok(pipelines) => pipelines,
                Err(e) => {
                    tracing::warn!("reading pipelines: {e}");
                    continue;
                }
            };
            for pipeline in pipelines {
                let Some(trigger) = pipeline.trigger.filter(|t| t.on_events) else {
                    continue;
                };
                match self.has_new_events(&pipeline).await {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        tracing::warn!(pipeline = %pipeline.name, "event trigger: {e}");
                        continue;
                    }
                }
                let due = started
                    .get(&pipeline.name)
                    .map(|at| *at + Duration::from_secs(trigger.debounce_secs));
                if let Some(due) = due.filter(|due| *due > Instant::now()) {
                    wake = wake.min(due);
                    continue;
                }
                match self.begin_pipeline_run(&pipeline.name, "events").await {
                    Ok(run) => {
                        started.insert(pipeline.name.clone(), Instant::now());
                        let cde = self.clone();
                        tokio::spawn(async move {
                            if let Err(e) = cde.execute_pipeline_run(run).await {
                                tracing::error!(pipeline = %pipeline.name, "run on events: {e}");
                            }
                        });
                    }
                    // Already running: looked at again when it may have ended.
                    Err(e) => {
                        tracing::debug!(pipeline = %pipeline.name, "run on events waits: {e}")
                    }
                }
            }
        }
    }
}
