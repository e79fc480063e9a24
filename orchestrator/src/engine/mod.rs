//! The container engine, as the orchestrator needs it: a trait, so that the run lifecycle's
//! decisions can be tested against a fake, and its Docker implementation.

pub mod container;
pub mod docker;
pub mod fake;

use std::collections::HashMap;

use async_trait::async_trait;
use bollard::models::ContainerCreateBody;
use futures_util::stream::BoxStream;

use crate::error::Result;

pub use docker::Docker;

/// Every container and network cde creates carries this label.
pub const MANAGED_BY: &str = "cde.managed-by";
pub const MANAGED_BY_VALUE: &str = "cde";

/// How a container ended, as `inspect` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Exit {
    pub code: i64,
    pub oom_killed: bool,
}

/// A container as listed.
#[derive(Debug, Clone)]
pub struct Container {
    pub id: String,
    pub labels: HashMap<String, String>,
    /// Unix seconds.
    pub created: i64,
}

/// One chunk of a container's output.
#[derive(Debug, Clone)]
pub enum Output {
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

#[async_trait]
pub trait Engine: Send + Sync {
    async fn image_exists(&self, image: &str) -> Result<bool>;

    /// Imports `image` (`name:tag`) with no files at all, as `docker import` of an empty
    /// archive would, labelled with `labels`.
    async fn import_empty_image(&self, image: &str, labels: &[(&str, &str)]) -> Result<()>;

    /// Creates a container named `name`, not yet started; its ID.
    async fn create(&self, name: &str, body: ContainerCreateBody) -> Result<String>;

    async fn start(&self, id: &str) -> Result<()>;

    /// Output from the container's start, following until it stops; with `timestamps`,
    /// every frame starts with the engine's RFC 3339 time and a space.
    fn follow(&self, id: &str, timestamps: bool) -> BoxStream<'static, Result<Output>>;

    /// Waits until the container is not running, then reads its exit code and OOM flag;
    /// `None` when the container is gone or being removed.
    async fn wait(&self, id: &str) -> Result<Option<Exit>>;

    /// SIGTERM, then SIGKILL after `grace_secs`; a stopped or missing container is fine.
    async fn stop(&self, id: &str, grace_secs: u64) -> Result<()>;

    /// Removes the container whatever its state; a missing one is fine.
    async fn remove(&self, id: &str) -> Result<()>;

    /// The last `lines` lines of the container's output, joined by ` | `.
    async fn output_tail(&self, id: &str, lines: usize) -> Result<String>;

    async fn exists(&self, id: &str) -> Result<bool>;

    /// Whether the container was ever started (it may have exited since); false when gone.
    async fn has_started(&self, id: &str) -> Result<bool>;

    /// Bytes the container has written to its writable layer; `None` when it is gone.
    async fn writable_layer_bytes(&self, id: &str) -> Result<Option<u64>>;

    /// All containers (running or not) carrying `label` (`key` or `key=value`).
    async fn containers_labelled(&self, label: &str) -> Result<Vec<Container>>;

    /// Whether a network of that name (or ID) exists.
    async fn network_exists(&self, name: &str) -> Result<bool>;

    /// The ID of cde's own bridge network `name`, on which containers cannot reach each
    /// other, created on first use.
    async fn ensure_isolated_network(&self, name: &str) -> Result<String>;

    /// Removes every network named `name`; none is fine.
    async fn remove_networks_named(&self, name: &str) -> Result<()>;
}
