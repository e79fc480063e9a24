//! Configuration, read once from `CDE_*` environment variables.

use std::path::PathBuf;

use serde::Deserialize;

use crate::error::{Error, Result};
use crate::model::{Limits, LimitsOverride, Manifest};

/// Every field has its default in [`Config::default`]; the environment overrides any.
#[derive(Clone, Deserialize)]
#[serde(default)]
pub struct Config {
    /// `CDE_DATA_DIR`: database, run directories. Default: the user's data folder + `cde`.
    pub data_dir: PathBuf,
    /// `CDE_EXECUTABLE`: the static cde executable mounted into every run's container as
    /// its entrypoint (`cde container-api`); default: the one running.
    pub executable: Option<PathBuf>,
    /// `CDE_STOP_GRACE_SECS`: time between SIGTERM and SIGKILL when stopping a container.
    pub stop_grace_secs: u64,
    /// `CDE_RUN_LEASE_SECS`: a run whose executor has not renewed its lease for this long
    /// is adopted by a server (its executor is taken to be dead).
    pub run_lease_secs: u64,
    /// `CDE_DATABASE_URL`: a PostgreSQL (or SQLite) URL; default: `cde.db` in the data directory.
    pub database_url: Option<String>,
    /// `CDE_MAX_CONCURRENT_RUNS`: runs the server executes at once; more wait in FIFO order.
    pub max_concurrent_runs: usize,
    /// `CDE_DEFAULT_TIMEOUT_SECS`, `CDE_DEFAULT_MEMORY_MB`, `CDE_DEFAULT_CPUS`,
    /// `CDE_DEFAULT_PIDS`: limits of a run unless its connector or the request says otherwise.
    pub default_timeout_secs: u64,
    pub default_memory_mb: u64,
    pub default_cpus: f64,
    pub default_pids: i64,
    /// `CDE_DEFAULT_DISK_MB`: disk a run may fill (run directory plus its container's
    /// writable layer) unless its connector or the request says otherwise.
    pub default_disk_mb: u64,
    /// `CDE_RUN_NETWORK`: the network cde creates for runs whose manifest says
    /// `network: isolated` (a bridge on which runs cannot reach each other).
    pub run_network: String,
    /// `CDE_HEALTH_CHECK_TIMEOUT_SECS`: the registration health check must exit 0 within this.
    pub health_check_timeout_secs: u64,
    /// `CDE_LISTEN`: where `cde server` serves the management API.
    pub listen: String,
    /// `CDE_API_TOKEN`: the bearer token of the management API. When unset, the server
    /// creates one in `<data dir>/api-token` and clients read it from there.
    pub api_token: Option<String>,
    /// `CDE_SERVER`: the URL of a `cde server`; when set, the CLI talks to it instead of
    /// running connectors itself.
    pub server: Option<String>,
    /// `CDE_SWEEP_INTERVAL_SECS`: how often the server removes containers no active run owns.
    pub sweep_interval_secs: u64,
    /// `CDE_SECRET_KEY`: the key (64 hex digits, or base64 of 32 bytes) password values are
    /// encrypted with in the store. When unset, `<data dir>/secret.key`, created on first use.
    pub secret_key: Option<String>,
    /// `CDE_RETAIN_RUNS_DAYS`: a finished run's directory and logs are removed this many
    /// days after it ended (0: no age limit).
    pub retain_runs_days: u64,
    /// `CDE_RETAIN_RUNS`: per connector, only the newest this many finished runs keep their
    /// directories and logs (0: no count limit).
    pub retain_runs: u64,
    /// `CDE_RETAIN_DATASETS_DAYS`: dataset versions older than this are removed (0: no age
    /// limit), except a dataset's latest version and export-delta baselines.
    pub retain_datasets_days: u64,
    /// `CDE_RETAIN_DATASET_VERSIONS`: per dataset, only the newest this many versions are
    /// kept (0: no count limit), and export-delta baselines.
    pub retain_dataset_versions: u64,
    /// `CDE_GC_INTERVAL_SECS`: how often the server applies the retention limits (0: never).
    pub gc_interval_secs: u64,
    /// `CDE_PUBLIC_URL`: the server's address as webhook senders reach it, for the URLs
    /// listeners are listed with; default: `http://` and `CDE_LISTEN`.
    pub public_url: Option<String>,
    /// `CDE_LISTENER_LOG_LIMIT_MB`: the most a listener keeps unconsumed unless it says
    /// otherwise (`log_limit_mb`); past it, deliveries are answered 429.
    pub listener_log_limit_mb: u64,
    /// `CDE_HOOK_MAX_BODY_KB`: the largest webhook delivery body taken (413 past it).
    pub hook_max_body_kb: u64,
    /// Not read from the environment: the conformance kit (`cde test`) sets it for its
    /// `bad-request` check, and every run's Container API then answers writes with 400.
    #[serde(skip)]
    pub reject_writes: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            data_dir: dirs::data_dir()
                .map(|dir| dir.join("cde"))
                .unwrap_or_else(|| PathBuf::from(".cde")),
            executable: None,
            stop_grace_secs: 10,
            run_lease_secs: 30,
            database_url: None,
            max_concurrent_runs: 4,
            default_timeout_secs: 3600,
            default_memory_mb: 1024,
            default_cpus: 1.0,
            default_pids: 512,
            default_disk_mb: crate::model::limits::default_disk_mb(),
            run_network: "cde-runs".into(),
            health_check_timeout_secs: 5,
            listen: "127.0.0.1:8780".into(),
            api_token: None,
            server: None,
            sweep_interval_secs: 60,
            secret_key: None,
            retain_runs_days: 30,
            retain_runs: 100,
            retain_datasets_days: 30,
            retain_dataset_versions: 10,
            gc_interval_secs: 3600,
            public_url: None,
            listener_log_limit_mb: 1024,
            hook_max_body_kb: 1024,
            reject_writes: false,
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

    pub fn secret_key_path(&self) -> PathBuf {
        self.data_dir.join("secret.key")
    }

    pub fn pipeline_runs_dir(&self) -> PathBuf {
        self.data_dir.join("pipeline-runs")
    }

    pub fn datasets_dir(&self) -> PathBuf {
        self.data_dir.join("datasets")
    }

    /// Where listeners' event logs are, one directory per pipeline.
    pub fn listeners_dir(&self) -> PathBuf {
        self.data_dir.join("listeners")
    }

    /// The base of the URLs webhook senders post to.
    pub fn public_url(&self) -> String {
        let url = match &self.public_url {
            Some(url) => url.clone(),
            None => format!("http://{}", self.listen),
        };
        url.trim_end_matches('/').to_owned()
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

    /// The limits of a run of `manifest`: these defaults, overridden by the manifest's,
    /// overridden by those `given` with the run; `Err` naming a limit out of range.
    pub fn limits_for(
        &self,
        manifest: &Manifest,
        given: &LimitsOverride,
    ) -> Result<Limits, String> {
        let limits = self.default_limits().with(&manifest.limits).with(given);
        limits.validate()?;
        Ok(limits)
    }

    /// The resolved configuration, one `CDE_NAME=value` per line, secrets masked.
    pub fn describe(&self) -> String {
        let optional = |v: &Option<String>| v.clone().unwrap_or_else(|| "(unset)".into());
        let secret = |v: &Option<String>| {
            v.as_ref()
                .map_or("(unset)", |_| crate::options::MASK)
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
                "CDE_SECRET_KEY",
                self.secret_key.as_ref().map_or_else(
                    || format!("(unset: {})", self.secret_key_path().display()),
                    |_| crate::options::MASK.to_owned(),
                ),
            ),
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
            ("CDE_RETAIN_RUNS_DAYS", self.retain_runs_days.to_string()),
            ("CDE_RETAIN_RUNS", self.retain_runs.to_string()),
            (
                "CDE_RETAIN_DATASETS_DAYS",
                self.retain_datasets_days.to_string(),
            ),
            (
                "CDE_RETAIN_DATASET_VERSIONS",
                self.retain_dataset_versions.to_string(),
            ),
            ("CDE_GC_INTERVAL_SECS", self.gc_interval_secs.to_string()),
            ("CDE_PUBLIC_URL", self.public_url()),
            (
                "CDE_LISTENER_LOG_LIMIT_MB",
                self.listener_log_limit_mb.to_string(),
            ),
            ("CDE_HOOK_MAX_BODY_KB", self.hook_max_body_kb.to_string()),
            (
                "CDE_EXECUTABLE",
                optional(&self.executable.as_ref().map(|p| p.display().to_string())),
            ),
        ]
        .iter()
        .map(|(name, value)| format!("{name}={value}\n"))
        .collect()
    }
}

/// Never prints the API token, the secret key or the database password.
impl std::fmt::Debug for Config {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let masked = |v: &Option<String>| v.as_ref().map(|_| crate::options::MASK);
        f.debug_struct("Config")
            .field("data_dir", &self.data_dir)
            .field("executable", &self.executable)
            .field("stop_grace_secs", &self.stop_grace_secs)
            .field("run_lease_secs", &self.run_lease_secs)
            .field(
                "database_url",
                &self.database_url.as_deref().map(mask_password),
            )
            .field("max_concurrent_runs", &self.max_concurrent_runs)
            .field("default_timeout_secs", &self.default_timeout_secs)
            .field("default_memory_mb", &self.default_memory_mb)
            .field("default_cpus", &self.default_cpus)
            .field("default_pids", &self.default_pids)
            .field("health_check_timeout_secs", &self.health_check_timeout_secs)
            .field("listen", &self.listen)
            .field("api_token", &masked(&self.api_token))
            .field("server", &self.server)
            .field("sweep_interval_secs", &self.sweep_interval_secs)
            .field("secret_key", &masked(&self.secret_key))
            .field("retain_runs_days", &self.retain_runs_days)
            .field("retain_runs", &self.retain_runs)
            .field("retain_datasets_days", &self.retain_datasets_days)
            .field("retain_dataset_versions", &self.retain_dataset_versions)
            .field("gc_interval_secs", &self.gc_interval_secs)
            .field("public_url", &self.public_url)
            .field("listener_log_limit_mb", &self.listener_log_limit_mb)
            .field("hook_max_body_kb", &self.hook_max_body_kb)
            .finish()
    }
}

/// `postgres://user:secret@host/db?password=x` → `postgres://user:********@host/db?password=********`.
pub fn mask_password(url: &str) -> String {
    let mask = crate::options::MASK;
    let (base, query) = match url.split_once('?') {
        Some((base, query)) => (base, Some(query)),
        None => (url, None),
    };
    let mut masked = match (base.find("://"), base.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => match base[scheme + 3..at].split_once(':') {
            Some((user, _)) => format!("{}{user}:{mask}{}", &base[..scheme + 3], &base[at..]),
            None => base.to_owned(),
        },
        _ => base.to_owned(),
    };
    if let Some(query) = query {
        let parameters: Vec<String> = query
            .split('&')
            .map(|parameter| match parameter.split_once('=') {
                Some((name, _)) if name.to_ascii_lowercase().ends_with("password") => {
                    format!("{name}={mask}")
                }
                _ => parameter.to_owned(),
            })
            .collect();
        masked.push('?');
        masked.push_str(&parameters.join("&"));
    }
    masked
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_passwords_are_masked() {
        assert_eq!(
            mask_password("postgres://cde:pw@db:5432/cde"),
            "postgres://cde:********@db:5432/cde"
        );
        assert_eq!(mask_password("sqlite://x.db"), "sqlite://x.db");
        assert_eq!(
            mask_password("postgres://cde:p@w@db/cde?sslmode=require&password=pw2&sslpassword=pw3"),
            "postgres://cde:********@db/cde?sslmode=require&password=********&sslpassword=********"
        );
        assert_eq!(
            mask_password("postgres://db/cde?user=cde&Password=pw"),
            "postgres://db/cde?user=cde&Password=********"
        );
    }

    #[test]
    fn debug_and_describe_print_no_secret() {
        let config = Config {
            api_token: Some("tok-d3adbeef".into()),
            secret_key: Some("ab".repeat(32)),
            database_url: Some("postgres://cde:pw-s3cret@db/cde?password=pw-s3cret2".into()),
            ..Config::default()
        };
        for text in [
            format!("{config:?}"),
            format!("{config:#?}"),
            config.describe(),
        ] {
            for secret in ["tok-d3adbeef", &"ab".repeat(32), "pw-s3cret"] {
                assert!(!text.contains(secret), "{secret} in {text}");
            }
            assert!(text.contains("postgres://cde:********@db/cde"), "{text}");
        }
        assert!(format!("{config:?}").contains("retain_runs: 100"));
    }
}
