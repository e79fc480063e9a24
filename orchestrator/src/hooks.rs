//! The listeners a server receives events for, at `/hooks/{pipeline}/{listener}`: their
//! declarations and secrets (kept in memory until the pipeline is saved again or a secret
//! changes), their event logs (each opened once per process), deliveries in, and what a
//! pipeline run reads out.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::error::{Error, Object, Result};
use crate::event_log::{Appended, EventLog};
use crate::inbox::{key, Declared, Inbox};
use crate::model::{Listener, ListenerRead, ListenerStatus, Pipeline, PipelineRun, Source};
use crate::Cde;
use axum::body::Body;
use axum::http::HeaderMap;
use chacha20poly1305::aead::rand_core::RngCore;
use chacha20poly1305::aead::OsRng;

/// Events read from a log per call while a run reads its listener.
const READ_BATCH: usize = 1000;

/// 32 random bytes, hex.
fn generate_secret() -> String {
    let mut bytes = [0u8; 32];
    OsRng.fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// `****` and the last four characters of a secret long enough to keep most of it hidden.
fn masked(secret: &str) -> String {
    if secret.chars().count() < 16 {
        return "****".to_owned();
    }
    let tail: String = secret
        .chars()
        .rev()
        .take(4)
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("****{tail}")
}

/// The listener `name` of `pipeline`, or not found.
fn declared_in<'p>(pipeline: &'p Pipeline, name: &str) -> Result<&'p Listener> {
    pipeline
        .listeners
        .iter()
        .find(|l| l.name == name)
        .ok_or_else(|| Error::not_found(Object::Listener, format!("{}/{name}", pipeline.name)))
}

impl Pipeline {
    /// Checks the listeners and the listener sources: names unique and kebab-case,
    /// locators and id paths JSONPath, every listener source declared.
    pub(crate) fn check_listeners(&self) -> std::result::Result<(), String> {
        let mut seen = std::collections::HashSet::new();
        for (i, listener) in self.listeners.iter().enumerate() {
            let at = |message: String| format!("listeners[{i}] ({}): {message}", listener.name);
            if !crate::manifest::is_kebab_case(&listener.name) {
                return Err(at("the name must be kebab-case".into()));
            }
            if !seen.insert(listener.name.as_str()) {
                return Err(at("a listener of that name is declared before".into()));
            }
            crate::listener::check(listener).map_err(at)?;
        }
        for (i, source) in self.sources.iter().enumerate() {
            if let Source::Listener(source) = source {
                if !seen.contains(source.listener.as_str()) {
                    return Err(format!(
                        "sources[{i}]: no listener {:?} is declared in listeners",
                        source.listener
                    ));
                }
            }
        }
        if self.trigger.is_some_and(|t| t.on_events)
            && !self
                .sources
                .iter()
                .any(|s| matches!(s, Source::Listener(_)))
        {
            return Err("trigger: on_events needs a listener among the sources".into());
        }
        Ok(())
    }
}

impl Cde {
    /// `pipeline` with the records locator of each listener described by a hub
    /// document's `preDefinedEventListeners` filled in from it.
    pub(crate) async fn resolve_listeners(&self, pipeline: &Pipeline) -> Result<Pipeline> {
        let mut resolved = pipeline.clone();
        for (i, listener) in resolved.listeners.iter_mut().enumerate() {
            let Some(code) = listener.connector.clone() else {
                continue;
            };
            let at = |message: String| {
                Error::InvalidConfig(format!("listeners[{i}] ({}): {message}", listener.name))
            };
            let manifest = self
                .store
                .connector(&code)
                .await
                .map_err(|e| at(e.to_string()))?
                .manifest;
            let definition = crate::http::definition(&manifest)
                .map_err(&at)?
                .filter(|d| d.dialect == http_connector::Dialect::Cdp)
                .ok_or_else(|| {
                    at(format!(
                        "{code} is not an HTTP connector from a CDP hub document"
                    ))
                })?;
            let described = http_connector::CdpDocument::new(&definition.spec)
                .and_then(|doc| doc.event_listeners())
                .map_err(|e| at(format!("{code}: {e}")))?;
            let entry = match &listener.webhook {
                Some(wanted) => described
                    .iter()
                    .find(|l| &l.webhook_path == wanted || &l.name == wanted),
                None if described.len() == 1 => described.first(),
                None => None,
            };
            let names: Vec<_> = described.iter().map(|l| l.webhook_path.as_str()).collect();
            let entry = entry.ok_or_else(|| {
                at(format!(
                    "webhook: name one of the preDefinedEventListeners of {code}: {names:?}"
                ))
            })?;
            if listener.records_locator != "$" && listener.records_locator != entry.records_locator
            {
                return Err(at(format!(
                    "records_locator: {code}'s document says {:?}; leave it out",
                    entry.records_locator
                )));
            }
            listener.records_locator = entry.records_locator.clone();
            listener.webhook = Some(entry.webhook_path.clone());
        }
        Ok(resolved)
    }

    /// Gives every listener of `pipeline` a secret if it has none, and forgets what was
    /// kept of its listeners; after the pipeline is saved.
    pub(crate) async fn prepare_listeners(&self, pipeline: &Pipeline) -> Result<()> {
        for listener in &pipeline.listeners {
            self.store
                .save_listener_secret(&pipeline.name, &listener.name, &generate_secret(), false)
                .await?;
        }
        self.hooks.forget(&pipeline.name);
        let inboxes = self.hooks.inboxes.lock().await;
        for listener in &pipeline.listeners {
            if let Some(inbox) = inboxes.get(&key(&pipeline.name, &listener.name)) {
                inbox.log.set_limit(self.log_limit(listener));
            }
        }
        Ok(())
    }

    fn log_limit(&self, listener: &Listener) -> u64 {
        listener
            .log_limit_mb
            .unwrap_or(self.config.listener_log_limit_mb)
            .saturating_mul(1 << 20)
    }

    fn event_log_path(&self, pipeline: &str, listener: &str) -> PathBuf {
        self.config
            .listeners_dir()
            .join(pipeline)
            .join(format!("{listener}.log"))
    }

    async fn declared(&self, pipeline: &str, name: &str) -> Result<Arc<Declared>> {
        let key = key(pipeline, name);
        if let Some(found) = self.hooks.declared.lock().expect("not poisoned").get(&key) {
            return Ok(found.clone());
        }
        let definition = self.store.pipeline(pipeline).await?;
        let listener = declared_in(&definition, name)?.clone();
        let secret = self
            .store
            .listener_secret(pipeline, name)
            .await?
            .ok_or_else(|| Error::not_found(Object::Listener, format!("{pipeline}/{name}")))?;
        let declared = Arc::new(Declared {
            listener,
            secret,
            triggers: definition.trigger.is_some_and(|t| t.on_events),
        });
        self.hooks
            .declared
            .lock()
            .expect("not poisoned")
            .insert(key, declared.clone());
        Ok(declared)
    }

    /// The listener's event log, opened on first use from where its pipeline's last
    /// successful run stopped reading.
    pub(crate) async fn inbox(&self, pipeline: &str, listener: &Listener) -> Result<Arc<Inbox>> {
        let mut inboxes = self.hooks.inboxes.lock().await;
        let key = key(pipeline, &listener.name);
        if let Some(inbox) = inboxes.get(&key) {
            return Ok(inbox.clone());
        }
        let (start, consumed) = self.store.listener_offset(pipeline, &listener.name).await?;
        let path = self.event_log_path(pipeline, &listener.name);
        crate::private::create_dir(path.parent().expect("in a directory"))?;
        let log = EventLog::open(&path, self.log_limit(listener), start)
            .map_err(Error::event_log(&listener.name))?;
        let inbox = Arc::new(Inbox {
            log,
            consumed_at_open: consumed,
            rejected: AtomicU64::new(0),
        });
        inboxes.insert(key, inbox.clone());
        Ok(inbox)
    }

    /// Takes a delivery to listener `name` of `pipeline`: checks its sender and body and
    /// appends its events durably. Nothing is written unless all of it is.
    pub async fn deliver(
        &self,
        pipeline: &str,
        name: &str,
        headers: &HeaderMap,
        query_token: Option<&str>,
        body: Body,
    ) -> Result<Appended> {
        let declared = self.declared(pipeline, name).await?;
        let inbox = self.inbox(pipeline, &declared.listener).await?;
        let outcome = async {
            let events = self.receive(&declared, headers, query_token, body).await?;
            inbox
                .log
                .append(events)
                .await
                .map_err(Error::event_log(name))
        }
        .await;
        match &outcome {
            Ok(appended) if appended.written > 0 && declared.triggers => {
                self.hooks.arrived.notify_one()
            }
            Ok(_) => {}
            Err(e) if e.code() == crate::error::ErrorCode::Internal => {}
            Err(_) => {
                inbox.rejected.fetch_add(1, Ordering::Relaxed);
            }
        }
        outcome
    }

    /// What [`Cde::deliver`] does but append: the delivery's events, checked. For the
    /// benchmark's baseline.
    pub async fn check_delivery(
        &self,
        pipeline: &str,
        name: &str,
        headers: &HeaderMap,
        query_token: Option<&str>,
        body: Body,
    ) -> Result<Vec<crate::event_log::Event>> {
        let declared = self.declared(pipeline, name).await?;
        self.inbox(pipeline, &declared.listener).await?;
        self.receive(&declared, headers, query_token, body).await
    }

    async fn receive(
        &self,
        declared: &Declared,
        headers: &HeaderMap,
        query_token: Option<&str>,
        body: Body,
    ) -> Result<Vec<crate::event_log::Event>> {
        let listener = &declared.listener;
        let limit_kb = self.config.hook_max_body_kb;
        let body = axum::body::to_bytes(body, (limit_kb as usize).saturating_mul(1024))
            .await
            .map_err(|_| Error::DeliveryTooLarge {
                listener: listener.name.clone(),
                limit_kb,
            })?;
        crate::listener::authenticate(listener, &declared.secret, headers, query_token, &body)?;
        Ok(crate::listener::events(listener, headers, &body)?)
    }

    /// The listeners of `pipeline`, with their URLs, masked secrets and counts.
    pub async fn listeners(&self, pipeline: &str) -> Result<Vec<ListenerStatus>> {
        let definition = self.store.pipeline(pipeline).await?;
        let mut statuses = Vec::new();
        for listener in &definition.listeners {
            statuses.push(self.listener_status(pipeline, listener).await?);
        }
        Ok(statuses)
    }

    /// The listeners of every pipeline.
    pub async fn all_listeners(&self) -> Result<Vec<ListenerStatus>> {
        let mut statuses = Vec::new();
        for pipeline in self.store.pipelines().await? {
            for listener in &pipeline.listeners {
                statuses.push(self.listener_status(&pipeline.name, listener).await?);
            }
        }
        Ok(statuses)
    }

    async fn listener_status(&self, pipeline: &str, listener: &Listener) -> Result<ListenerStatus> {
        let inbox = self.inbox(pipeline, listener).await?;
        let secret = self
            .store
            .listener_secret(pipeline, &listener.name)
            .await?
            .unwrap_or_default();
        // Counted from the store's offset, which a run's success moves, so that what is
        // consumed and what is pending agree whenever they are looked at.
        let (start, consumed) = self.store.listener_offset(pipeline, &listener.name).await?;
        let counters = inbox.log.counters();
        let received = inbox.consumed_at_open + counters.frames.load(Ordering::Acquire);
        let pending = received.saturating_sub(consumed);
        let oldest = inbox
            .log
            .appended_at(start)
            .map_err(Error::event_log(&listener.name))?;
        let now = chrono::Utc::now().timestamp_millis();
        Ok(ListenerStatus {
            pipeline: pipeline.to_owned(),
            name: listener.name.clone(),
            url: format!(
                "{}/hooks/{pipeline}/{}",
                self.config.public_url(),
                listener.name
            ),
            auth: listener.auth.clone(),
            secret: masked(&secret),
            records_locator: listener.records_locator.clone(),
            received,
            deduplicated: counters.duplicates.load(Ordering::Relaxed),
            rejected: inbox.rejected.load(Ordering::Relaxed),
            consumed,
            pending,
            syncs: counters.syncs.load(Ordering::Relaxed),
            oldest_pending_secs: oldest.map(|at| (now - at).max(0) as f64 / 1000.0),
            pending_bytes: inbox.log.durable_end().saturating_sub(start),
            limit_bytes: counters.limit.load(Ordering::Acquire),
        })
    }

    /// The secret of listener `name` of `pipeline`, in full.
    pub async fn listener_secret(&self, pipeline: &str, name: &str) -> Result<String> {
        let definition = self.store.pipeline(pipeline).await?;
        declared_in(&definition, name)?;
        self.store
            .listener_secret(pipeline, name)
            .await?
            .ok_or_else(|| Error::not_found(Object::Listener, format!("{pipeline}/{name}")))
    }

    /// Replaces the listener's secret with `given`, or a new random one; returns it.
    /// Deliveries signed with the old one are refused from now on.
    pub async fn rotate_listener_secret(
        &self,
        pipeline: &str,
        name: &str,
        given: Option<String>,
    ) -> Result<String> {
        let definition = self.store.pipeline(pipeline).await?;
        declared_in(&definition, name)?;
        let secret = match given {
            Some(given) if given.trim().is_empty() => {
                return Err(Error::InvalidConfig(format!(
                    "listener {name}: the secret must not be empty"
                )))
            }
            Some(given) => given,
            None => generate_secret(),
        };
        self.store
            .save_listener_secret(pipeline, name, &secret, true)
            .await?;
        self.hooks.forget(pipeline);
        Ok(secret)
    }

    /// Writes the events listener `name` received since the pipeline's last successful
    /// run to `out`, one row per line, and records the read with the run.
    pub(crate) async fn read_listener(
        &self,
        run: &PipelineRun,
        pipeline: &Pipeline,
        name: &str,
        out: &Path,
    ) -> Result<ListenerRead> {
        let listener = declared_in(pipeline, name)?;
        let inbox = self.inbox(&pipeline.name, listener).await?;
        let (start, _) = self.store.listener_offset(&pipeline.name, name).await?;
        // Catches up with a success whose consuming was cut short (the server stopped).
        inbox.log.consume(start).map_err(Error::event_log(name))?;
        let until = inbox.log.durable_end();
        let mut read = ListenerRead {
            listener: name.to_owned(),
            start,
            end: start,
            events: 0,
        };
        let failed = |source| Error::event_log(name)(source);
        let mut writer = BufWriter::new(crate::private::create_file(out)?);
        while read.end < until {
            let batch = inbox.log.read(read.end, READ_BATCH).map_err(failed)?;
            if batch.is_empty() {
                break;
            }
            for stored in batch.into_iter().take_while(|s| s.next <= until) {
                serde_json::to_writer(&mut writer, &stored.event)
                    .map_err(std::io::Error::from)
                    .and_then(|()| writer.write_all(b"\n"))
                    .map_err(Error::file("writing", out))?;
                read.end = stored.next;
                read.events += 1;
            }
        }
        writer.flush().map_err(Error::file("writing", out))?;
        self.store
            .save_listener_read(&run.id, &pipeline.name, &read)
            .await?;
        Ok(read)
    }

    /// After pipeline run `run` succeeded: what it read of its listeners is consumed.
    pub(crate) async fn consume_listener_reads(&self, run: &PipelineRun) -> Result<()> {
        let reads = self.store.listener_reads(&run.id).await?;
        if reads.is_empty() {
            return Ok(());
        }
        let pipeline = self.store.pipeline(&run.pipeline).await?;
        for read in reads {
            let listener = declared_in(&pipeline, &read.listener)?;
            let inbox = self.inbox(&run.pipeline, listener).await?;
            inbox
                .log
                .consume(read.end)
                .map_err(Error::event_log(&read.listener))?;
        }
        Ok(())
    }

    /// Whether a listener source of `pipeline` received events past what its last run
    /// read (whatever that run's outcome): what starts a run on events.
    pub(crate) async fn has_new_events(&self, pipeline: &Pipeline) -> Result<bool> {
        for source in &pipeline.sources {
            let Source::Listener(source) = source else {
                continue;
            };
            let listener = declared_in(pipeline, &source.listener)?;
            let inbox = self.inbox(&pipeline.name, listener).await?;
            let last_read = self
                .store
                .listener_last_read(&pipeline.name, &listener.name)
                .await?;
            if inbox.log.durable_end() > last_read {
                return Ok(true);
            }
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_random_and_masked_to_their_last_four() {
        let (a, b) = (generate_secret(), generate_secret());
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        assert_eq!(masked("whsec-0000abcd1234"), "****1234");
        assert_eq!(masked("short-1234"), "****");
    }
}
