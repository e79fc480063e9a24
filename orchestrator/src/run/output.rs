//! A run's output (or feedback) records, read a page at a time or whole: a successful run's
//! validated dataset, else what the run wrote so far, opened as the hostile file it may be.

use std::io::BufRead;

use crate::model::OutputPage;
use crate::{dataset, rundir, Cde};

impl Cde {
    /// A page of run `id`'s output (or feedback) records: `limit` after the first `offset`.
    pub async fn output_page(
        &self,
        id: &str,
        feedback: bool,
        offset: usize,
        limit: usize,
    ) -> crate::Result<OutputPage> {
        let (records, more) = self
            .read_output(id, feedback, move |file| read_records(file, offset, limit))
            .await?;
        Ok(OutputPage {
            next_offset: more.then_some(offset + records.len()),
            records,
            offset,
        })
    }

    /// Folds every record of run `id`'s output (or feedback) into `state` with `step`, the
    /// file read once, in order (a whole output, where paging would read it again and
    /// again from its start).
    pub async fn fold_output<S: Send + 'static>(
        &self,
        id: &str,
        feedback: bool,
        state: S,
        mut step: impl FnMut(S, serde_json::Value) -> S + Send + 'static,
    ) -> crate::Result<S> {
        self.read_output(id, feedback, move |file| {
            let mut state = state;
            if let Some(file) = file {
                for (i, line) in lines(file).enumerate() {
                    state = step(state, parse(&line?, i + 1)?);
                }
            }
            Ok(state)
        })
        .await
    }

    /// Runs `read` (off the async runtime) on run `id`'s output (or feedback): a successful
    /// run's validated dataset, else what the run wrote (so far), opened as the hostile file
    /// it may be; `None` when there is none.
    async fn read_output<T: Send + 'static>(
        &self,
        id: &str,
        feedback: bool,
        read: impl FnOnce(Option<std::fs::File>) -> crate::Result<T> + Send + 'static,
    ) -> crate::Result<T> {
        let run = self.store.run(id).await?;
        let (name, relative) = match feedback {
            false => (
                dataset::connector_dataset(&run.connector_code),
                rundir::OUTPUT,
            ),
            true => (
                dataset::connector_feedback_dataset(&run.connector_code),
                rundir::FEEDBACK,
            ),
        };
        let recorded = self.store.dataset_of_run(&name, &run.id).await?;
        tokio::task::spawn_blocking(move || {
            let file = match recorded {
                Some(dataset) => Some(
                    std::fs::File::open(dataset.path())
                        .map_err(crate::Error::file("opening", dataset.path()))?,
                ),
                None => rundir::open(
                    std::path::Path::new(&run.run_dir),
                    relative,
                    run.limits.disk_bytes(),
                )?,
            };
            read(file)
        })
        .await
        .map_err(|e| crate::Error::Other(format!("reading the output of a run: {e}")))?
    }
}

impl Cde {
    /// A page of version `version` of dataset `name`: `limit` records after the first
    /// `offset`.
    pub async fn dataset_page(
        &self,
        name: &str,
        version: i64,
        offset: usize,
        limit: usize,
    ) -> crate::Result<OutputPage> {
        let dataset = self.store.dataset_version(name, version).await?;
        let (records, more) = tokio::task::spawn_blocking(move || {
            let file = std::fs::File::open(dataset.path())
                .map_err(crate::Error::file("opening", dataset.path()))?;
            read_records(Some(file), offset, limit)
        })
        .await
        .map_err(|e| crate::Error::Other(format!("reading dataset {name}: {e}")))??;
        Ok(OutputPage {
            next_offset: more.then_some(offset + records.len()),
            records,
            offset,
        })
    }
}

/// Up to `limit` records after the first `offset` of a JSONL file, and whether more follow.
fn read_records(
    file: Option<std::fs::File>,
    offset: usize,
    limit: usize,
) -> crate::Result<(Vec<serde_json::Value>, bool)> {
    let Some(file) = file else {
        return Ok((vec![], false));
    };
    let mut lines = lines(file);
    for _ in 0..offset {
        if lines.next().transpose()?.is_none() {
            return Ok((vec![], false));
        }
    }
    let mut records = Vec::with_capacity(limit);
    while records.len() < limit {
        let Some(line) = lines.next().transpose()? else {
            break;
        };
        records.push(parse(&line, offset + records.len() + 1)?);
    }
    let more = records.len() == limit && lines.next().transpose()?.is_some();
    Ok((records, more))
}

/// The lines of a JSONL file, in order. A last line without its newline is still being
/// written and does not count yet.
fn lines(file: std::fs::File) -> impl Iterator<Item = crate::Result<String>> {
    let mut reader = std::io::BufReader::new(file);
    std::iter::from_fn(move || {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Err(e) => Some(Err(crate::Error::RunOutput(format!("reading: {e}")))),
            Ok(_) if !line.ends_with('\n') => None,
            Ok(_) => Some(Ok(line)),
        }
    })
}

/// Line `number` (from 1) as a record.
fn parse(line: &str, number: usize) -> crate::Result<serde_json::Value> {
    serde_json::from_str(line)
        .map_err(|e| crate::Error::RunOutput(format!("line {number} is not JSON: {e}")))
}
