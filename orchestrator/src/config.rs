//! Configuration, read once from `CDE_*` environment variables.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::limits::Limits;

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    /// `CDE_DATA_DIR`: database, run directories. Default: the user's data folder + `cde`.
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
    /// `CDE_CONTAINER_API_BINARY`: the static `container-api` binary mounted into every
    /// run's container; built from the source tree when unset.
    pub container_api_binary: Option<PathBuf>,
    /// `CDE_STOP_GRACE_SECS`: time between SIGTERM and SIGKILL when stopping a container.
    #[serde(default = "default_stop_grace")]
    pub stop_grace_secs: u64,
    /// `CDE_RUN_LEASE_SECS`: a run whose executor has not renewed its lease for this long
    /// is adopted by a server (its executor is taken to be dead).
    #[serde(default = "default_run_lease")]
    pub run_lease_secs: u64,
    /// `CDE_DATABASE_URL`: a PostgreSQL (or SQLite) URL; default: `cde.db` in the data directory.
    pub database_url: Option<String>,
    /// `CDE_MAX_CONCURRENT_RUNS`: runs the server executes at once; more wait in FIFO order.
    #[serde(default = "default_max_concurrent_runs")]
    pub max_concurrent_runs: usize,
    /// `CDE_DEFAULT_TIMEOUT_SECS`, `CDE_DEFAULT_MEMORY_MB`, `CDE_DEFAULT_CPUS`,
    /// `CDE_DEFAULT_PIDS`: limits of a run unless its connector or the request says otherwise.
    #[serde(default = "default_timeout")]
    pub default_timeout_secs: u64,
    #[serde(default = "default_memory")]
    pub default_memory_mb: u64,
    #[serde(default = "default_cpus")]
    pub default_cpus: f64,
    #[serde(default = "default_pids")]
    pub default_pids: i64,
    /// `CDE_DEFAULT_DISK_MB`: disk a run may fill (run directory plus its container's
    /// writable layer) unless its connector or the request says otherwise.
    #[serde(default = "crate::limits::default_disk_mb")]
    pub default_disk_mb: u64,
    /// `CDE_RUN_NETWORK`: the network cde creates for runs whose manifest says
    /// `network: isolated` (a bridge on which runs cannot reach each other).
    #[serde(default = "default_run_network")]
    pub run_network: String,
    /// `CDE_HEALTH_CHECK_TIMEOUT_SECS`: the registration health check must exit 0 within this.
    #[serde(default = "default_health_check_timeout")]
    pub health_check_timeout_secs: u64,
    /// `CDE_LISTEN`: where `cde server` serves the management API.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// `CDE_API_TOKEN`: the bearer token of the management API. When unset, the server
    /// creates one in `<data dir>/api-token` and clients read it from there.
    pub api_token: Option<String>,
    /// `CDE_SERVER`: the URL of a `cde server`; when set, the CLI talks to it instead of
    /// running connectors itself.
    pub server: Option<String>,
    /// `CDE_SWEEP_INTERVAL_SECS`: how often the server removes containers no active run owns.
    #[serde(default = "default_sweep_interval")]
    pub sweep_interval_secs: u64,
}

fn default_max_concurrent_runs() -> usize {
    4
}
fn default_timeout() -> u64 {
    3600
}
fn default_memory() -> u64 {
    1024
}
fn default_cpus() -> f64 {
    1.0
}
fn default_pids() -> i64 {
    512
}
fn default_run_network() -> String {
    "cde-runs".into()
}
fn default_health_check_timeout() -> u64 {
    5
}
fn default_listen() -> String {
    "127.0.0.1:8780".into()
}
fn default_sweep_interval() -> u64 {
    60
}

fn default_data_dir() -> PathBuf {
    dirs::data_dir()
        .map(|dir| dir.join("cde"))
        .unwrap_or_else(|| PathBuf::from(".cde"))
}

fn default_run_lease() -> u64 {
    30
}

fn default_stop_grace() -> u64 {
    10
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: default_data_dir(),
            container_api_binary: None,
            stop_grace_secs: default_stop_grace(),
            run_lease_secs: default_run_lease(),
            database_url: None,
            max_concurrent_runs: default_max_concurrent_runs(),
            default_timeout_secs: default_timeout(),
            default_memory_mb: default_memory(),
            default_cpus: default_cpus(),
            default_pids: default_pids(),
            default_disk_mb: crate::limits::default_disk_mb(),
            run_network: default_run_network(),
            health_check_timeout_secs: default_health_check_timeout(),
            listen: default_listen(),
            api_token: None,
            server: None,
            sweep_interval_secs: default_sweep_interval(),
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

    pub fn api_token_path(&self) -> PathBuf {
        self.data_dir.join("api-token")
    }

    pub fn default_limits(&self) -> Limits {
        Limits {
            timeout_secs: self.default_timeout_secs,
            memory_mb: self.default_memory_mb,
            cpus: self.default_cpus,
            pids: self.default_pids,
            disk_mb: self.default_disk_mb,
        }
    }

    /// The resolved configuration, one `CDE_NAME=value` per line, secrets masked.
    pub fn describe(&self) -> String {
        let optional = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        let secret = |v: &Option<String>| {
            v.as_ref()
                .map_or("(unset)", |_| crate::settings::MASK)
                .to_owned()
        };
        [
            ("CDE_DATA_DIR", self.data_dir.display().to_string()),
            (
                "CDE_DATABASE_URL",
                self.database_url.as_ref().map_or_else(
                    || format!("(unset: {})", self.database_path().display()),
                    |url| mask_password(url),
                ),
            ),
            ("CDE_LISTEN", self.listen.clone()),
            ("CDE_API_TOKEN", secret(&self.api_token)),
            (
                "CDE_MAX_CONCURRENT_RUNS",
                self.max_concurrent_runs.to_string(),
            ),
            (
                "CDE_DEFAULT_TIMEOUT_SECS",
                self.default_timeout_secs.to_string(),
            ),
            ("CDE_DEFAULT_MEMORY_MB", self.default_memory_mb.to_string()),
            ("CDE_DEFAULT_CPUS", self.default_cpus.to_string()),
            ("CDE_DEFAULT_PIDS", self.default_pids.to_string()),
            ("CDE_DEFAULT_DISK_MB", self.default_disk_mb.to_string()),
            ("CDE_RUN_NETWORK", self.run_network.clone()),
            ("CDE_STOP_GRACE_SECS", self.stop_grace_secs.to_string()),
            ("CDE_RUN_LEASE_SECS", self.run_lease_secs.to_string()),
            (
                "CDE_HEALTH_CHECK_TIMEOUT_SECS",
                self.health_check_timeout_secs.to_string(),
            ),
            (
                "CDE_SWEEP_INTERVAL_SECS",
                self.sweep_interval_secs.to_string(),
            ),
            (
                "CDE_CONTAINER_API_BINARY",
                optional(
                    &self
                        .container_api_binary
                        .as_ref()
                        .map(|p| p.display().to_string()),
                ),
            ),
        ]
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect()
    }
}

/// `postgres://user:secret@host/db` → `postgres://user:********@host/db`.
fn mask_password(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!(
                    "{}{user}:{}{}",
                    &url[..scheme + 3],
                    crate::settings::MASK,
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn database_passwords_are_masked() {
        assert_eq!(
            super::mask_password("postgres://cde:pw@db:5432/cde"),
            "postgres://cde:********@db:5432/cde"
        );
        assert_eq!(super::mask_password("sqlite://x.db"), "sqlite://x.db");
    }
}
