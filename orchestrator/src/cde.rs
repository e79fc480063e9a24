//! The orchestrator itself: its configuration, store and engine, shared by every part.

use std::sync::Arc;

use tokio::sync::{Notify, OnceCell, Semaphore};

use crate::config::Config;
use crate::engine::{Docker, Engine};
use crate::error::Result;
use crate::store::Store;
use crate::{private, secret};

/// The orchestrator: configuration, store and (connected on first use) the container engine.
pub struct Cde {
    pub config: Config,
    pub store: Store,
    engine: OnceCell<Arc<dyn Engine>>,
    /// The cde executable installed for containers to mount, once known (`executable.rs`).
    pub(crate) executable: OnceCell<std::path::PathBuf>,
    /// `max_concurrent_runs` permits, taken by queued runs and pipeline steps alike.
    pub(crate) run_slots: Arc<Semaphore>,
    /// Identifies this process in the leases of the runs it executes.
    pub(crate) lease_owner: String,
    /// Wakes the scheduler when a run is queued.
    pub(crate) queue_changed: Notify,
    /// The webhook listeners served, with their event logs.
    pub(crate) hooks: crate::inbox::Hooks,
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
            engine: OnceCell::new(),
            executable: OnceCell::new(),
            run_slots,
            lease_owner: uuid::Uuid::new_v4().to_string(),
            queue_changed: Notify::new(),
            hooks: Default::default(),
        })
    }

    /// [`open`](Self::open) with an engine of the caller's (a fake one, in tests).
    pub async fn with_engine(config: Config, engine: Arc<dyn Engine>) -> Result<Self> {
        let cde = Self::open(config).await?;
        let _ = cde.engine.set(engine);
        Ok(cde)
    }

    /// The container engine: the local Docker engine, connected on first use and checked:
    /// reachable and new enough (see [`Docker::connect`]), and able to mount the data
    /// directory (see [`Cde::check_mountable`]).
    pub async fn engine(&self) -> Result<&dyn Engine> {
        let engine = self
            .engine
            .get_or_try_init(|| async {
                let docker = Docker::connect().await?;
                self.check_mountable(&docker).await?;
                Ok::<_, crate::Error>(Arc::new(docker) as Arc<dyn Engine>)
            })
            .await?;
        Ok(engine.as_ref())
    }

    /// Connects the engine now: what needs it checks this before creating anything, so
    /// that an engine that cannot be reached, is too old or cannot mount the data
    /// directory stops it with nothing half-made.
    pub async fn check_engine(&self) -> Result<()> {
        self.engine().await.map(|_| ())
    }
}
