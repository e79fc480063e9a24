//! A scripted engine for tests of the run lifecycle: containers are entries in a map, and
//! what a connector does (exit, be killed by the OOM killer, vanish, never end) is said in
//! advance. Nothing runs; time passes only as the caller's clock says.

use std::collections::HashMap;
use std::sync::Mutex;

use async_trait::async_trait;
use bollard::models::ContainerCreateBody;
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::Notify;

use super::{Container, Engine, Exit, Output};
use crate::error::{Error, Result};

/// What the connector in every container of a [`FakeEngine`] does once started.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Behaviour {
    /// Ends by itself with this exit.
    Exits(Exit),
    /// Runs until it is stopped, then exits with 143 (SIGTERM honoured).
    RunsUntilStopped,
    /// Its container is removed by someone else while it runs.
    Vanishes,
}

/// A call made to the engine, for tests to check what the lifecycle asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Create(String),
    Start(String),
    Stop { id: String, grace_secs: u64 },
    Remove(String),
}

#[derive(Debug)]
struct FakeContainer {
    labels: HashMap<String, String>,
    started: bool,
    stopped: bool,
}

pub struct FakeEngine {
    behaviour: Behaviour,
    images: Vec<String>,
    /// What the connector prints on STDOUT, one chunk.
    stdout: String,
    /// Writable-layer bytes reported for every container.
    layer_bytes: u64,
    state: Mutex<State>,
    stopped: Notify,
}

#[derive(Default)]
struct State {
    containers: HashMap<String, FakeContainer>,
    calls: Vec<Call>,
    created: usize,
}

impl FakeEngine {
    /// An engine that has `images` and whose connectors behave as `behaviour`.
    pub fn new(images: &[&str], behaviour: Behaviour) -> Self {
        Self {
            behaviour,
            images: images.iter().map(|i| i.to_string()).collect(),
            stdout: String::new(),
            layer_bytes: 0,
            state: Mutex::default(),
            stopped: Notify::new(),
        }
    }

    pub fn printing(mut self, stdout: &str) -> Self {
        self.stdout = stdout.to_owned();
        self
    }

    pub fn filling_layer(mut self, bytes: u64) -> Self {
        self.layer_bytes = bytes;
        self
    }

    pub fn calls(&self) -> Vec<Call> {
        self.lock().calls.clone()
    }

    pub fn container_count(&self) -> usize {
        self.lock().containers.len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().expect("not poisoned")
    }

    fn missing(op: &str, id: &str) -> Error {
        Error::Other(format!("{op} container {id}: no such container"))
    }
}

#[async_trait]
impl Engine for FakeEngine {
    async fn image_exists(&self, image: &str) -> Result<bool> {
        Ok(self.images.iter().any(|i| i == image))
    }

    async fn import_empty_image(&self, image: &str, _labels: &[(&str, &str)]) -> Result<()> {
        Err(Error::Other(format!(
            "the fake engine cannot import {image}"
        )))
    }

    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String> {
        let mut state = self.lock();
        state.created += 1;
        let id = format!("fake-{}-{name}", state.created);
        state.calls.push(Call::Create(id.clone()));
        let container = FakeContainer {
            labels: body.labels.unwrap_or_default(),
            started: false,
            stopped: false,
        };
        state.containers.insert(id.clone(), container);
        Ok(id)
    }

    async fn start(&self, id: &str) -> Result<()> {
        let mut state = self.lock();
        state.calls.push(Call::Start(id.to_owned()));
        let container = state
            .containers
            .get_mut(id)
            .ok_or_else(|| Self::missing("starting", id))?;
        container.started = true;
        if self.behaviour == Behaviour::Vanishes {
            state.containers.remove(id);
        }
        Ok(())
    }

    fn follow(&self, _id: &str, timestamps: bool) -> BoxStream<'static, Result<Output>> {
        // The engine sends a frame per line, each with its own timestamp.
        let frames: Vec<_> = self
            .stdout
            .lines()
            .map(|line| {
                let stamp = if timestamps {
                    format!("{} ", chrono::Utc::now().to_rfc3339())
                } else {
                    String::new()
                };
                Ok(Output::Stdout(format!("{stamp}{line}\n").into()))
            })
            .collect();
        futures_util::stream::iter(frames).boxed()
    }

    async fn wait(&self, id: &str) -> Result<Option<Exit>> {
        loop {
            let stopped = self.stopped.notified();
            {
                let state = self.lock();
                let Some(container) = state.containers.get(id) else {
                    return Ok(None);
                };
                match self.behaviour {
                    Behaviour::Exits(exit) => return Ok(Some(exit)),
                    Behaviour::Vanishes => return Ok(None),
                    Behaviour::RunsUntilStopped if container.stopped || !container.started => {
                        return Ok(Some(Exit {
                            code: 143,
                            oom_killed: false,
                        }));
                    }
                    Behaviour::RunsUntilStopped => {}
                }
            }
            stopped.await;
        }
    }

    async fn stop(&self, id: &str, grace_secs: u64) -> Result<()> {
        let mut state = self.lock();
        state.calls.push(Call::Stop {
            id: id.to_owned(),
            grace_secs,
        });
        if let Some(container) = state.containers.get_mut(id) {
            container.stopped = true;
        }
        self.stopped.notify_waiters();
        Ok(())
    }

    async fn remove(&self, id: &str) -> Result<()> {
        let mut state = self.lock();
        state.calls.push(Call::Remove(id.to_owned()));
        state.containers.remove(id);
        self.stopped.notify_waiters();
        Ok(())
    }

    async fn output_tail(&self, _id: &str, lines: usize) -> Result<String> {
        let tail: Vec<_> = self.stdout.lines().rev().take(lines).collect();
        Ok(tail.into_iter().rev().collect::<Vec<_>>().join(" | "))
    }

    async fn exists(&self, id: &str) -> Result<bool> {
        Ok(self.lock().containers.contains_key(id))
    }

    async fn has_started(&self, id: &str) -> Result<bool> {
        Ok(self.lock().containers.get(id).is_some_and(|c| c.started))
    }

    async fn writable_layer_bytes(&self, id: &str) -> Result<Option<u64>> {
        let exists = self.lock().containers.contains_key(id);
        Ok(exists.then_some(self.layer_bytes))
    }

    async fn containers_labelled(&self, label: &str) -> Result<Vec<Container>> {
        let (key, value) = match label.split_once('=') {
            Some((key, value)) => (key, Some(value)),
            None => (label, None),
        };
        let state = self.lock();
        Ok(state
            .containers
            .iter()
            .filter(|(_, c)| {
                c.labels
                    .get(key)
                    .is_some_and(|v| value.is_none_or(|value| v == value))
            })
            .map(|(id, c)| Container {
                id: id.clone(),
                labels: c.labels.clone(),
                created: 0,
            })
            .collect())
    }

    async fn network_exists(&self, _name: &str) -> Result<bool> {
        Ok(true)
    }

    async fn ensure_isolated_network(&self, name: &str) -> Result<String> {
        Ok(format!("fake-network-{name}"))
    }

    async fn remove_networks_named(&self, _name: &str) -> Result<()> {
        Ok(())
    }
}
