//! Retention (`cde gc`, and the server every `CDE_GC_INTERVAL_SECS`): removes the
//! directories and log lines of finished runs, the work directories of ended pipeline
//! runs and dataset versions, beyond the configured age or count.
//!
//! Never removed: an active run's directory, a run that is a step of a pipeline run still
//! going, a dataset's latest version, and a version an export delta compares against.
//! Files go first, then rows, so a row never names a file already gone for good; a
//! removal that fails leaves its rows and is tried again at the next pass.

use std::path::{Component, Path};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::error::{Error, Result};
use crate::store::{ExpiredRun, Keep};
use crate::Cde;

/// A dataset version retention removes.
#[derive(Debug, Clone, Serialize)]
pub struct ExpiredVersion {
    pub name: String,
    pub version: i64,
    pub path: String,
    pub created_at: DateTime<Utc>,
}

/// What a pass removed (or, in a dry run, would remove), and what it could not.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GcReport {
    pub dry_run: bool,
    pub runs: Vec<ExpiredRun>,
    pub pipeline_runs: Vec<String>,
    pub dataset_versions: Vec<ExpiredVersion>,
    pub errors: Vec<String>,
}

impl GcReport {
    pub fn is_empty(&self) -> bool {
        self.runs.is_empty() && self.pipeline_runs.is_empty() && self.dataset_versions.is_empty()
    }

    /// One line per removed item and a total.
    pub fn describe(&self) -> String {
        let mut text = String::new();
        for run in &self.runs {
            text += &format!(
                "run {} ({}, ended {}): {} and its logs\n",
                run.id,
                run.connector_code,
                run.ended_at.format("%Y-%m-%d %H:%M"),
                run.run_dir
            );
        }
        for id in &self.pipeline_runs {
            text += &format!("pipeline run {id}: its work directory\n");
        }
        for version in &self.dataset_versions {
            text += &format!(
                "dataset {} version {} ({}): {}\n",
                version.name,
                version.version,
                version.created_at.format("%Y-%m-%d %H:%M"),
                version.path
            );
        }
        for error in &self.errors {
            text += &format!("not removed: {error}\n");
        }
        text += &format!(
            "{} {} run(s), {} pipeline run work dir(s), {} dataset version(s)\n",
            if self.dry_run {
                "would remove"
            } else {
                "removed"
            },
            self.runs.len(),
            self.pipeline_runs.len(),
            self.dataset_versions.len()
        );
        text
    }
}

fn keep(newest: u64, days: u64) -> Keep {
    Keep {
        newest,
        since: (days > 0).then(|| Utc::now() - chrono::Duration::days(days as i64)),
    }
}

/// Removes `path`, which must be a direct child of `parent` named `name`, without
/// following symbolic links: a link is removed itself, and `remove_dir_all` unlinks the
/// links inside a directory instead of following them. Missing is fine.
fn remove_child(parent: &Path, name: &str, path: &Path) -> std::io::Result<()> {
    let expected = parent.join(name);
    let climbs = |p: &Path| p.components().any(|c| c == Component::ParentDir);
    if name.is_empty() || name == "." || name.contains('/') || path != expected || climbs(path) {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("{} is not in {}", path.display(), parent.display()),
        ));
    }
    let removed = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => std::fs::remove_dir_all(path),
        Ok(_) => std::fs::remove_file(path),
        Err(e) => Err(e),
    };
    match removed {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

impl Cde {
    /// Applies the retention limits; with `dry_run`, only reports what would go.
    pub async fn collect_garbage(&self, dry_run: bool) -> Result<GcReport> {
        let config = &self.config;
        let mut report = GcReport {
            dry_run,
            ..GcReport::default()
        };
        let run_keep = keep(config.retain_runs, config.retain_runs_days);
        // Run directories are recorded canonical (see `Cde::prepare`).
        let runs_dir = config.runs_dir();
        let runs_dir = runs_dir
            .canonicalize()
            .map_err(Error::file("resolving", &runs_dir))?;
        for run in self.store.expired_runs(run_keep).await? {
            if !dry_run {
                let removed = remove_child(&runs_dir, &run.id, Path::new(&run.run_dir))
                    .map_err(|e| format!("run {} directory {}: {e}", run.id, run.run_dir));
                match removed {
                    Ok(()) => self.store.prune_run(&run.id).await?,
                    Err(e) => {
                        report.errors.push(e);
                        continue;
                    }
                }
            }
            report.runs.push(run);
        }

        let pipeline_runs_dir = config.pipeline_runs_dir();
        for id in self.store.expired_pipeline_runs(run_keep).await? {
            if !dry_run {
                let work = pipeline_runs_dir.join(&id);
                match remove_child(&pipeline_runs_dir, &id, &work) {
                    Ok(()) => self.store.prune_pipeline_run(&id).await?,
                    Err(e) => {
                        report.errors.push(format!(
                            "pipeline run {id} work directory {}: {e}",
                            work.display()
                        ));
                        continue;
                    }
                }
            }
            report.pipeline_runs.push(id);
        }

        let dataset_keep = keep(config.retain_dataset_versions, config.retain_datasets_days);
        let datasets_dir = config.datasets_dir();
        for dataset in self.store.expired_datasets(dataset_keep).await? {
            if !dry_run {
                let path = Path::new(&dataset.path);
                let (parent, name) = (
                    path.parent().unwrap_or(Path::new("")),
                    path.file_name().unwrap_or_default().to_string_lossy(),
                );
                let inside = parent.starts_with(&datasets_dir)
                    && parent
                        .components()
                        .all(|c| !matches!(c, Component::ParentDir));
                let removed = if inside {
                    remove_child(parent, &name, path)
                } else {
                    Err(std::io::Error::new(
                        std::io::ErrorKind::InvalidInput,
                        format!("not in {}", datasets_dir.display()),
                    ))
                };
                if let Err(e) = removed {
                    report.errors.push(format!(
                        "dataset {} version {} file {}: {e}",
                        dataset.name, dataset.version, dataset.path
                    ));
                    continue;
                }
                if !self
                    .store
                    .delete_dataset_version(&dataset.name, dataset.version)
                    .await?
                {
                    continue;
                }
            }
            report.dataset_versions.push(ExpiredVersion {
                name: dataset.name,
                version: dataset.version,
                path: dataset.path,
                created_at: dataset.created_at,
            });
        }
        Ok(report)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_direct_child_is_removed_and_links_are_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let runs = dir.path().join("runs");
        let outside = dir.path().join("outside");
        std::fs::create_dir_all(runs.join("r1/work")).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("keep"), "x").unwrap();
        std::os::unix::fs::symlink(&outside, runs.join("r1/work/link")).unwrap();
        std::os::unix::fs::symlink(&outside, runs.join("r2")).unwrap();

        assert!(remove_child(&runs, "r1", &dir.path().join("outside")).is_err());
        assert!(remove_child(&runs, "..", &runs.join("..")).is_err());
        remove_child(&runs, "r1", &runs.join("r1")).unwrap();
        remove_child(&runs, "r2", &runs.join("r2")).unwrap();
        remove_child(&runs, "r3", &runs.join("r3")).unwrap();
        assert!(!runs.join("r1").exists());
        assert!(std::fs::symlink_metadata(runs.join("r2")).is_err());
        assert_eq!(std::fs::read_to_string(outside.join("keep")).unwrap(), "x");
    }
}
