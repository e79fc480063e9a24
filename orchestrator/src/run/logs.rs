//! A run's log: the engine's STDOUT and STDERR, the Container API's `logs.jsonl` and cde's
//! own notes, masked and stored as they arrive.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};
use container_api::mask::Masker;
use container_api::{LogLine, LogSource};
use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use tokio::sync::watch;

use crate::engine::container::LineSplitter;
use crate::engine::Output;
use crate::error::{Error, Result};
use crate::model::Run;
use crate::{rundir, Cde};

/// Passes the connector's STDOUT (`info`) and STDERR (`error`) lines, stamped with the
/// engine's timestamps, to the run's log; lines at or before `after` are skipped.
pub(super) async fn record_output(
    mut output: BoxStream<'static, Result<Output>>,
    lines: EngineLines,
    after: Option<DateTime<Utc>>,
) -> Result<()> {
    let write = |source: LogSource, at: DateTime<Utc>, message: String| {
        // The store keeps microseconds; compare at that precision.
        let at = at.trunc_subsecs(6);
        if after.is_some_and(|after| at <= after) {
            return;
        }
        let level = if source == LogSource::Stderr {
            "error"
        } else {
            "info"
        };
        lines.push(LogLine {
            at,
            source,
            level: level.to_owned(),
            message,
            context: None,
        });
    };
    let (mut stdout, mut stderr) = (LineSplitter::default(), LineSplitter::default());
    let mut last_at = Utc::now();
    while let Some(chunk) = output.next().await {
        let (source, splitter, bytes) = match chunk? {
            Output::Stdout(bytes) => (LogSource::Stdout, &mut stdout, bytes),
            Output::Stderr(bytes) => (LogSource::Stderr, &mut stderr, bytes),
        };
        let (at, text) = split_timestamp(&bytes);
        last_at = at.unwrap_or(last_at);
        for line in splitter.push(text) {
            write(source, last_at, line);
        }
    }
    for (source, splitter) in [(LogSource::Stdout, stdout), (LogSource::Stderr, stderr)] {
        if let Some(line) = splitter.finish() {
            write(source, last_at, line);
        }
    }
    Ok(())
}

/// Splits the engine's `2026-01-02T03:04:05.123456789Z ` prefix off a log frame.
fn split_timestamp(frame: &[u8]) -> (Option<DateTime<Utc>>, &[u8]) {
    let Some(space) = frame.iter().position(|&b| b == b' ') else {
        return (None, frame);
    };
    match std::str::from_utf8(&frame[..space])
        .ok()
        .and_then(|ts| DateTime::parse_from_rfc3339(ts).ok())
    {
        Some(at) => (Some(at.with_timezone(&Utc)), &frame[space + 1..]),
        None => (None, frame),
    }
}

/// Lines cde itself produced for a run (the engine's STDOUT and STDERR, its own notes),
/// waiting for the [`LogPump`] to store them.
#[derive(Clone, Default)]
pub(super) struct EngineLines(Arc<Mutex<Vec<LogLine>>>);

impl EngineLines {
    pub(super) fn push(&self, line: LogLine) {
        self.0.lock().expect("not poisoned").push(line);
    }

    fn take(&self) -> Vec<LogLine> {
        std::mem::take(&mut *self.0.lock().expect("not poisoned"))
    }
}

/// Stores a run's log lines as they arrive: those the Container API appended to the
/// run's `logs.jsonl` (which the connector can write too, so each is checked and counts
/// as an API line whatever it claims) and those cde got from the engine. Secret option
/// values are masked. The position in the file is kept in the store, never in the run
/// directory.
pub(super) struct LogPump {
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<()>>,
    pub(super) lines: EngineLines,
}

const LOG_POLL: Duration = Duration::from_millis(200);
/// The most of `logs.jsonl` read in one round; a longer line is skipped.
const LOG_CHUNK: u64 = 16 << 20;

impl LogPump {
    pub(super) fn start(cde: &Cde, run: &Run) -> Self {
        let (stop, mut stopped) = watch::channel(false);
        let lines = EngineLines::default();
        let mut reader = ApiLogReader {
            run_dir: PathBuf::from(&run.run_dir),
            skipping: false,
            refused: false,
        };
        let store = cde.store.clone();
        let run_id = run.id.clone();
        let masker = Masker::new(run.secrets());
        let pumped = lines.clone();
        let task = tokio::spawn(async move {
            let mut offset = store.log_offset(&run_id).await?;
            let mut seq = store.next_log_seq(&run_id).await?;
            loop {
                let last_round = *stopped.borrow();
                let (mut batch, new_offset) = match reader.read(offset) {
                    Ok(read) => read,
                    Err(e) => {
                        let note = format!("the run's logs.jsonl is no longer read: {e}");
                        tracing::warn!(run = %run_id, "{note}");
                        reader.refused = true;
                        (
                            vec![LogLine::now(LogSource::Cde, "warning", note, None)],
                            offset,
                        )
                    }
                };
                batch.extend(pumped.take());
                batch.sort_by_key(|line| line.at);
                let batch: Vec<_> = batch.into_iter().map(|l| redact(l, &masker)).collect();
                if !batch.is_empty() || new_offset != offset {
                    store.append_logs(&run_id, seq, &batch, new_offset).await?;
                    seq += batch.len() as i64;
                    offset = new_offset;
                }
                if last_round {
                    return Ok(());
                }
                let _ = tokio::time::timeout(LOG_POLL, stopped.changed()).await;
            }
        });
        Self { stop, task, lines }
    }

    /// Stores what is left and ends.
    pub(super) async fn stop(self) -> Result<()> {
        let _ = self.stop.send(true);
        self.task
            .await
            .map_err(|e| Error::Other(format!("storing the log of a run: {e}")))?
    }
}

/// Reads the complete lines of a run's `logs.jsonl` after an offset.
struct ApiLogReader {
    run_dir: PathBuf,
    /// Inside a line too long to keep.
    skipping: bool,
    /// The file could not be opened safely (the connector replaced it); not read again.
    refused: bool,
}

impl ApiLogReader {
    /// The valid API lines after `offset`, and the offset after the last complete line.
    fn read(&mut self, offset: u64) -> Result<(Vec<LogLine>, u64)> {
        use std::io::{Read, Seek};
        if self.refused {
            return Ok((vec![], offset));
        }
        let path = self.run_dir.join(container_api::LOG_FILE);
        let Some(mut file) = rundir::open(&self.run_dir, container_api::LOG_FILE, u64::MAX)? else {
            return Ok((vec![], offset));
        };
        let mut bytes = Vec::new();
        file.seek(std::io::SeekFrom::Start(offset))
            .and_then(|_| file.take(LOG_CHUNK).read_to_end(&mut bytes))
            .map_err(Error::file("reading", &path))?;
        let mut notes = vec![];
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
            if bytes.len() as u64 == LOG_CHUNK {
                // One line longer than a chunk: skip it to its end.
                self.skipping = true;
                return Ok((vec![], offset + LOG_CHUNK));
            }
            return Ok((vec![], offset));
        };
        let mut complete = &bytes[..end];
        if std::mem::take(&mut self.skipping) {
            let first_end = complete.iter().position(|&b| b == b'\n');
            complete = first_end.map_or(&[][..], |at| &complete[at + 1..]);
            notes.push("a line of logs.jsonl longer than 16 MiB was skipped".to_owned());
        }
        let (mut lines, mut invalid) = (vec![], 0);
        for text in complete.split(|&b| b == b'\n').filter(|t| !t.is_empty()) {
            match api_line(text) {
                Some(line) => lines.push(line),
                None => invalid += 1,
            }
        }
        if invalid > 0 {
            notes.push(format!(
                "{invalid} line(s) in logs.jsonl were not lines of the Container API and were skipped"
            ));
        }
        lines.extend(
            notes
                .into_iter()
                .map(|note| LogLine::now(LogSource::Cde, "warning", note, None)),
        );
        Ok((lines, offset + end as u64 + 1))
    }
}

/// A line of `logs.jsonl` as an API line: whatever source it claims, only the Container
/// API writes that file, and anything else there was written around it.
fn api_line(text: &[u8]) -> Option<LogLine> {
    let mut line: LogLine = serde_json::from_slice(text).ok()?;
    if !container_api::LOG_LEVELS.contains(&line.level.as_str()) {
        return None;
    }
    line.source = LogSource::Api;
    Some(line)
}

/// Masks secret values once more on cde's side: the Container API masked them already,
/// unless the connector wrote around it.
fn redact(mut line: LogLine, masker: &Masker) -> LogLine {
    if let std::borrow::Cow::Owned(masked) = masker.mask(&line.message) {
        line.message = masked;
    }
    if let Some(context) = &mut line.context {
        masker.mask_value(context);
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn engine_timestamps_are_split_off() {
        let (at, text) = split_timestamp(b"2026-11-23T03:29:27.301234567Z hello world\n");
        assert_eq!(
            at.unwrap().to_rfc3339(),
            "2026-11-23T03:29:27.301234567+00:00"
        );
        assert_eq!(text, b"hello world\n");
        assert_eq!(split_timestamp(b"no stamp here").1, b"no stamp here");
    }

    #[test]
    fn secrets_are_masked_in_messages_and_context() {
        let line = LogLine::now(
            LogSource::Api,
            "info",
            "token s3cret used",
            Some(serde_json::json!({"t": "s3cret"})),
        );
        let line = redact(line, &Masker::new(["s3cret".to_owned()]));
        assert_eq!(line.message, "token ******** used");
        assert_eq!(line.context.unwrap()["t"], "********");
    }
}
