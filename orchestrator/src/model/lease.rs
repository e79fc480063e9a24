//! Leases: a process's hold on a started run or pipeline run.

use std::time::Duration;

use chrono::{DateTime, Utc};

/// A process's hold on a started run, valid until `until`.
#[derive(Debug, Clone)]
pub struct Lease {
    pub owner: String,
    pub until: DateTime<Utc>,
}

impl Lease {
    /// `owner`'s lease from now for `duration`.
    pub fn from_now(owner: &str, duration: Duration) -> Self {
        Self {
            owner: owner.to_owned(),
            until: Utc::now() + duration,
        }
    }
}

/// What a lease is held on.
#[derive(Debug, Clone, Copy)]
pub enum Leased {
    Run,
    PipelineRun,
}
