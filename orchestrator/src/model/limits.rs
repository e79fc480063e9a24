//! Resource limits of a run: defaults from configuration, overridden by the connector's
//! manifest, overridden by the run request.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Every field optional: a layer that may override another.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsOverride {
    /// Seconds the connector may run before it is stopped (`timed_out`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<u64>,
    /// Memory limit in MiB; exceeding it ends the run `failed` with `out of memory`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_mb: Option<u64>,
    /// CPUs, fractions allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<f64>,
    /// Maximum number of processes and threads.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pids: Option<i64>,
    /// Disk the run may fill, in MiB: its run directory (without the input) plus its
    /// container's writable layer; exceeding it ends the run `failed` with
    /// `disk limit exceeded (N MiB)`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_mb: Option<u64>,
}

/// The limits a run gets.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Limits {
    pub timeout_secs: u64,
    pub memory_mb: u64,
    pub cpus: f64,
    pub pids: i64,
    /// Runs recorded before the disk limit existed get the built-in default.
    #[serde(default = "default_disk_mb")]
    pub disk_mb: u64,
}

/// The disk limit when the configuration does not set one (`CDE_DEFAULT_DISK_MB`).
pub fn default_disk_mb() -> u64 {
    10240
}

impl Limits {
    pub fn with(self, layer: &LimitsOverride) -> Self {
        Self {
            timeout_secs: layer.timeout_secs.unwrap_or(self.timeout_secs),
            memory_mb: layer.memory_mb.unwrap_or(self.memory_mb),
            cpus: layer.cpus.unwrap_or(self.cpus),
            pids: layer.pids.unwrap_or(self.pids),
            disk_mb: layer.disk_mb.unwrap_or(self.disk_mb),
        }
    }

    pub fn validate(&self) -> Result<(), String> {
        if self.timeout_secs == 0 {
            return Err("limits.timeout_secs: must be at least 1".into());
        }
        if self.memory_mb < 6 {
            return Err("limits.memory_mb: Docker needs at least 6 MiB".into());
        }
        if !(self.cpus > 0.0 && self.cpus <= 1024.0) {
            return Err("limits.cpus: must be above 0".into());
        }
        if self.pids < 1 {
            return Err("limits.pids: must be at least 1".into());
        }
        if self.disk_mb < 1 {
            return Err("limits.disk_mb: must be at least 1".into());
        }
        Ok(())
    }

    pub fn timeout(&self) -> Duration {
        Duration::from_secs(self.timeout_secs)
    }

    pub fn memory_bytes(&self) -> i64 {
        (self.memory_mb as i64).saturating_mul(1024 * 1024)
    }

    pub fn disk_bytes(&self) -> u64 {
        self.disk_mb.saturating_mul(1024 * 1024)
    }

    pub fn nano_cpus(&self) -> i64 {
        (self.cpus * 1e9) as i64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_override_in_order() {
        let defaults = Limits {
            timeout_secs: 3600,
            memory_mb: 1024,
            cpus: 1.0,
            pids: 256,
            disk_mb: 10240,
        };
        let connector = LimitsOverride {
            memory_mb: Some(512),
            cpus: Some(0.5),
            ..Default::default()
        };
        let run = LimitsOverride {
            timeout_secs: Some(5),
            memory_mb: Some(64),
            disk_mb: Some(64),
            ..Default::default()
        };
        let limits = defaults.with(&connector).with(&run);
        assert_eq!(
            limits,
            Limits {
                timeout_secs: 5,
                memory_mb: 64,
                cpus: 0.5,
                pids: 256,
                disk_mb: 64,
            }
        );
        assert_eq!(limits.memory_bytes(), 64 * 1024 * 1024);
        assert_eq!(limits.nano_cpus(), 500_000_000);
    }

    #[test]
    fn rejects_nonsense() {
        let ok = Limits {
            timeout_secs: 1,
            memory_mb: 6,
            cpus: 0.1,
            pids: 1,
            disk_mb: 1,
        };
        assert!(ok.validate().is_ok());
        assert!(Limits {
            timeout_secs: 0,
            ..ok
        }
        .validate()
        .unwrap_err()
        .starts_with("limits.timeout_secs"));
        assert!(Limits { memory_mb: 1, ..ok }.validate().is_err());
        assert!(Limits { cpus: 0.0, ..ok }.validate().is_err());
        assert!(Limits { pids: 0, ..ok }.validate().is_err());
        assert!(Limits { disk_mb: 0, ..ok }
            .validate()
            .unwrap_err()
            .starts_with("limits.disk_mb"));
    }

    #[test]
    fn runs_recorded_without_a_disk_limit_get_the_default() {
        let limits: Limits =
            serde_json::from_str(r#"{"timeout_secs":1,"memory_mb":6,"cpus":1.0,"pids":1}"#)
                .unwrap();
        assert_eq!(limits.disk_mb, default_disk_mb());
    }
}
