//! cde: registers connector images and runs them, each run in a container where its own
//! Container API supervises the connector.

pub mod api;
pub mod api_binary;
pub mod cli;
pub mod config;
pub mod dataset;
pub mod delta;
pub mod demo;
pub mod disk;
pub mod document;
pub mod error;
pub mod lease;
pub mod limits;
pub mod manifest;
pub mod pipeline;
pub mod pod;
pub mod private;
pub mod registry;
pub mod retention;
pub mod run;
pub mod rundir;
pub mod runtime;
pub mod scheduler;
pub mod secret;
pub mod server;
pub mod settings;
pub mod store;

use std::sync::Arc;

use tokio::sync::{Notify, OnceCell, Semaphore};

pub use config::Config;
pub use error::{Error, Result};
use runtime::Runtime;
use store::Store;

/// The orchestrator: configuration, store and (connected on first use) the Docker engine.
pub struct Cde {
    pub config: Config,
    pub store: Store,
    runtime: OnceCell<Runtime>,
    /// The installed Container API binary, once known.
    api_binary: OnceCell<std::path::PathBuf>,
    /// `max_concurrent_runs` permits, taken by queued runs and pipeline steps alike.
    run_slots: Arc<Semaphore>,
    /// Identifies this process in the leases of the runs it executes.
    lease_owner: String,
    /// Wakes the scheduler when a run is queued.
    queue_changed: Notify,
}

impl Cde {
    pub async fn open(config: Config) -> Result<Self> {
        private::secure_data_dir(&config)?;
        let secrets =
            secret::Secrets::load(config.secret_key.as_deref(), &config.secret_key_path())?;
        let store = Store::open_with_secrets(
            config.database_url.as_deref(),
            &config.database_path(),
            secrets,
        )
        .await?;
        let run_slots = Arc::new(Semaphore::new(config.max_concurrent_runs.max(1)));
        Ok(Self {
            config,
            store,
            runtime: OnceCell::new(),
            api_binary: OnceCell::new(),
            run_slots,
            lease_owner: uuid::Uuid::new_v4().to_string(),
            queue_changed: Notify::new(),
        })
    }

    pub async fn runtime(&self) -> Result<&Runtime> {
        self.runtime.get_or_try_init(Runtime::connect).await
    }
}
