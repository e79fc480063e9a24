//! What `cde server` does besides answering requests, a loop per file: the run queue, the
//! adoption of runs whose executor died, the container sweeper, pipeline schedules, event
//! triggers and retention.

mod adoption;
mod cron;
mod events;
mod gc;
mod queue;
mod sweep;

use std::sync::Arc;

use futures_util::future::BoxFuture;
use futures_util::FutureExt;

use crate::Cde;

/// The background loops a server can run beside its API.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Loop {
    /// Executes queued runs.
    Schedule,
    /// Removes containers no run owns.
    Sweep,
    /// Adopts runs whose owner's lease expired.
    Adopt,
    /// Starts pipelines on their schedules.
    PipelineSchedules,
    /// Starts pipelines when their listeners receive events.
    EventTriggers,
    /// Applies the retention limits.
    CollectGarbage,
}

impl Loop {
    /// Everything `cde server` runs.
    pub const ALL: [Loop; 6] = [
        Loop::Schedule,
        Loop::Sweep,
        Loop::Adopt,
        Loop::PipelineSchedules,
        Loop::EventTriggers,
        Loop::CollectGarbage,
    ];

    /// The loop, running until dropped.
    pub fn run(self, cde: Arc<Cde>) -> BoxFuture<'static, ()> {
        match self {
            Loop::Schedule => cde.schedule().boxed(),
            Loop::Sweep => cde.sweep_periodically().boxed(),
            Loop::Adopt => cde.adopt_periodically().boxed(),
            Loop::PipelineSchedules => cde.run_schedules().boxed(),
            Loop::EventTriggers => cde.run_event_triggers().boxed(),
            Loop::CollectGarbage => cde.collect_garbage_periodically().boxed(),
        }
    }
}
