//! Retries: the attempt queued after a run failed as transient (see
//! [`outcome::retries`](super::outcome::retries)), and executing a run's attempts to the
//! last in this process.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use chrono::{DateTime, Utc};

use super::inputs::prepare_run_dir;
use crate::error::{Error, Result};
use crate::model::{Run, RunStatus};
use crate::rundir::{self, OpenError};
use crate::Cde;

/// How often an attempt another process executes is looked at until it ends.
const FOLLOW_POLL: Duration = Duration::from_millis(500);

impl Cde {
    /// Executes a run claimed or started by this process, then each attempt queued after
    /// the one before failed as transient, once its backoff is over. Returns the last
    /// attempt.
    pub async fn execute_with_retries(&self, run: Run) -> Result<Run> {
        let mut ended = self.execute(run).await?;
        while let Some(next) = ended.next_attempt.clone() {
            ended = self.execute_attempt(&next).await?;
        }
        Ok(ended)
    }

    /// Waits until the queued attempt `id` is due, then executes it; when another process
    /// claimed it first (a server's queue) or it was cancelled, follows it to its end.
    async fn execute_attempt(&self, id: &str) -> Result<Run> {
        let queued = self.store.run(id).await?;
        if queued.status == RunStatus::Queued {
            if let Some(at) = queued.not_before {
                // The backoff itself, not a wait on a condition.
                tokio::time::sleep((at - Utc::now()).to_std().unwrap_or_default()).await;
            }
            if let Some(claimed) = self.claim(queued).await? {
                return self.execute(claimed).await;
            }
        }
        loop {
            let run = self.store.run(id).await?;
            if run.status.is_finished() {
                return Ok(run);
            }
            tokio::time::sleep(FOLLOW_POLL).await;
        }
    }

    /// Queues attempt `failed.attempt + 1` as run `id`, due at `not_before`: the failed
    /// attempt's connector version, option values (the unmasked ones it still holds in
    /// memory), limits, network, state key and retry policy, and a copy of its inputs.
    pub(super) async fn queue_next_attempt(
        &self,
        failed: &Run,
        id: String,
        not_before: DateTime<Utc>,
    ) -> Result<Run> {
        let run_dir = self.config.runs_dir().join(&id);
        let prepared = prepare_run_dir(&run_dir)
            .and_then(|()| copy_inputs(Path::new(&failed.run_dir), &run_dir))
            .and_then(|()| {
                run_dir
                    .canonicalize()
                    .map_err(Error::file("resolving", &run_dir))
            });
        let resolved = match prepared {
            Ok(resolved) => resolved,
            Err(e) => {
                remove_run_dir(&run_dir);
                return Err(e);
            }
        };
        let next = Run {
            id,
            status: RunStatus::Queued,
            reason: None,
            exit_code: None,
            run_dir: resolved.display().to_string(),
            output_rows: None,
            attempt: failed.attempt + 1,
            retry_of: Some(failed.first_attempt().to_owned()),
            next_attempt: None,
            not_before: Some(not_before),
            created_at: Utc::now(),
            started_at: None,
            running_at: None,
            finished_at: None,
            ..failed.clone()
        };
        if let Err(e) = self.store.insert_run(&next, None).await {
            remove_run_dir(&run_dir);
            return Err(e);
        }
        self.queue_changed.notify_one();
        Ok(next)
    }
}

fn remove_run_dir(run_dir: &Path) {
    if let Err(e) = std::fs::remove_dir_all(run_dir) {
        if e.kind() != std::io::ErrorKind::NotFound {
            tracing::warn!("removing {}: {e}", run_dir.display());
        }
    }
}

/// Copies the regular files of `from/input/` into `to/input/`: the feed, an export delta's
/// streams, the previous state, an HTTP connector's definition. They are cde's own
/// (the connector sees them read-only), but each is opened without following a link all
/// the same, and anything but a regular file is left out.
fn copy_inputs(from: &Path, to: &Path) -> Result<()> {
    let source = from.join("input");
    let target = to.join("input");
    let entries = match std::fs::read_dir(&source) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::file("listing", &source)(e)),
    };
    for entry in entries {
        let name = entry.map_err(Error::file("listing", &source))?.file_name();
        let Some(name) = name.to_str() else {
            tracing::warn!("not copying {:?} to the next attempt: not UTF-8", name);
            continue;
        };
        let relative = format!("input/{name}");
        let mut file = match rundir::open(from, &relative, u64::MAX) {
            Ok(Some(file)) => file,
            Ok(None) => continue,
            Err(OpenError::NotRegular(_)) => {
                tracing::warn!(
                    "not copying {} to the next attempt: not a regular file",
                    from.join(&relative).display()
                );
                continue;
            }
            Err(e) => return Err(Error::Other(format!("copying the inputs: {e}"))),
        };
        let path = target.join(name);
        let mut copy = crate::private::create_file(&path)?;
        std::io::copy(&mut file, &mut copy).map_err(Error::file("copying an input to", &path))?;
        copy.flush().map_err(Error::file("writing", &path))?;
        // Read by the connector as whatever user its image says (see `prepare_inputs`).
        crate::private::chmod(&path, 0o644)?;
    }
    crate::private::chmod(&target, 0o755)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inputs_are_copied_without_following_links() {
        let from = tempfile::tempdir().unwrap();
        let to = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(from.path().join("input/nested")).unwrap();
        std::fs::create_dir_all(to.path().join("input")).unwrap();
        std::fs::write(from.path().join("input/input.jsonl"), "{\"id\":\"1\"}\n").unwrap();
        std::fs::write(from.path().join("input/state.json"), "{\"n\":1}").unwrap();
        std::fs::write(outside.path().join("secret"), "host secret").unwrap();
        std::os::unix::fs::symlink(
            outside.path().join("secret"),
            from.path().join("input/new.jsonl"),
        )
        .unwrap();
        copy_inputs(from.path(), to.path()).unwrap();
        let mut names: Vec<String> = std::fs::read_dir(to.path().join("input"))
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["input.jsonl", "state.json"]);
        assert_eq!(
            std::fs::read_to_string(to.path().join("input/input.jsonl")).unwrap(),
            "{\"id\":\"1\"}\n"
        );
        assert_eq!(
            std::fs::read_to_string(to.path().join("input/state.json")).unwrap(),
            "{\"n\":1}"
        );
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(to.path().join("input/state.json"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);

        // A run without inputs (a data source) copies nothing.
        let empty = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(empty.path().join("input")).unwrap();
        let into = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(into.path().join("input")).unwrap();
        copy_inputs(empty.path(), into.path()).unwrap();
        assert_eq!(
            std::fs::read_dir(into.path().join("input"))
                .unwrap()
                .count(),
            0
        );
    }
}
