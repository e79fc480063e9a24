//! Leases on started runs. The process executing a run renews its lease while it works;
//! another process (a restarted server, or a server beside an embedded `cde run` on the
//! same data) adopts the run only once the lease has lapsed, that is once its holder died.

use std::time::Duration;

use crate::model::{Lease, Leased};
use crate::Cde;

/// Renews a lease in the background until dropped.
pub(crate) struct Renewal(tokio::task::AbortHandle);

impl Drop for Renewal {
    fn drop(&mut self) {
        self.0.abort();
    }
}

impl Cde {
    pub(crate) fn lease_duration(&self) -> Duration {
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
}
