//! Configuration, read once from `CDE_*` environment variables.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `CDE_DATA_DIR`: database, run directories. Default: the user's data folder + `cde`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `CDE_SIDECAR_IMAGE`: a ready-made Container API image; built locally when unset.
    pub sidecar_image: Option<String>,
    /// `CDE_SIDECAR_BINARY`: a static `container-api` binary to build the sidecar image from.
    pub sidecar_binary: Option<PathBuf>,
    /// `CDE_SIDECAR_READY_TIMEOUT_SECS`: how long the sidecar may take to listen.
    #[serde(default = "default_sidecar_ready_timeout")]
    pub sidecar_ready_timeout_secs: u64,
    /// `CDE_STOP_GRACE_SECS`: time between SIGTERM and SIGKILL when stopping a container.
    #[serde(default = "default_stop_grace")]
    pub stop_grace_secs: u64,
}

fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|dir| dir.join("cde"))
        .unwrap_or_else(|| PathBuf::from(".cde"))
}

fn default_sidecar_ready_timeout() -> u64 {
    10
}

fn default_stop_grace() -> u64 {
    10
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            sidecar_image: None,
            sidecar_binary: None,
            sidecar_ready_timeout_secs: default_sidecar_ready_timeout(),
            stop_grace_secs: default_stop_grace(),
        }
    }
}

impl Config {
    pub fn from_env() -> Result<Self> {
        envy::prefixed("CDE_")
            .from_env()
            .map_err(|e| Error::Config(e.to_string()))
    }

    pub fn database_path(&self) -> PathBuf {
        self.data_dir.join("cde.db")
    }

    pub fn runs_dir(&self) -> PathBuf {
        self.data_dir.join("runs")
    }
}
