//! What a server keeps in memory of the webhook listeners it serves: each one's
//! declaration with its secret (until its pipeline changes), and its open event log with
//! the deliveries it refused. The operations on them are in `hooks`.

use std::collections::HashMap;
use std::sync::atomic::AtomicU64;
use std::sync::{Arc, Mutex};

use tokio::sync::Notify;

use crate::event_log::EventLog;
use crate::model::Listener;

/// A listener: its pipeline's name and its own.
pub(crate) type Key = (String, String);

/// What a `Cde` keeps of the listeners it serves.
#[derive(Default)]
pub struct Hooks {
    pub(crate) declared: Mutex<HashMap<Key, Arc<Declared>>>,
    pub(crate) inboxes: tokio::sync::Mutex<HashMap<Key, Arc<Inbox>>>,
    /// Woken when a listener of a pipeline with an event trigger appends events.
    pub(crate) arrived: Notify,
}

/// A listener as its pipeline declares it, with its secret.
pub(crate) struct Declared {
    pub(crate) listener: Listener,
    pub(crate) secret: String,
    pub(crate) triggers: bool,
}

/// A listener's open event log, and the deliveries it refused since it was opened.
pub(crate) struct Inbox {
    pub(crate) log: EventLog,
    /// The events successful runs had consumed when the log was opened: with the events
    /// the log holds from there, what the listener received in all.
    pub(crate) consumed_at_open: u64,
    pub(crate) rejected: AtomicU64,
}

impl Hooks {
    /// Drops what is kept of the listeners of `pipeline`, after it changed.
    pub(crate) fn forget(&self, pipeline: &str) {
        let mut declared = self.declared.lock().expect("not poisoned");
        declared.retain(|(of, _), _| of != pipeline);
    }
}

pub(crate) fn key(pipeline: &str, listener: &str) -> Key {
    (pipeline.to_owned(), listener.to_owned())
}
