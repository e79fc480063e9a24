//! cde: registers connector images and runs them, each run in a pod with its own
//! Container API.

pub mod config;
pub mod demo;
pub mod error;
pub mod manifest;
pub mod pod;
pub mod run;
pub mod runtime;
pub mod settings;
pub mod sidecar;
pub mod store;

use std::path::Path;

use tokio::sync::OnceCell;

pub use config::Config;
pub use error::{Error, Result};
use manifest::Manifest;
use runtime::Runtime;
use store::Store;

/// The orchestrator: configuration, store and (connected on first use) the Docker engine.
pub struct Cde {
    pub config: Config,
    pub store: Store,
    runtime: OnceCell<Runtime>,
}

/// The outcome of registering a manifest.
pub struct Registration {
    pub manifest: Manifest,
    pub version: i64,
    /// False when the manifest equals the latest registered version.
    pub created: bool,
}

impl Cde {
    pub async fn open(config: Config) -> Result<Self> {
        let store = Store::open(&config.database_path()).await?;
        Ok(Self {
            config,
            store,
            runtime: OnceCell::new(),
        })
    }

    pub async fn runtime(&self) -> Result<&Runtime> {
        self.runtime.get_or_try_init(Runtime::connect).await
    }

    pub async fn register(&self, path: &Path) -> Result<Registration> {
        let manifest = Manifest::load(path)?;
        let (version, created) = self.store.register(&manifest).await?;
        Ok(Registration {
            manifest,
            version,
            created,
        })
    }
}
