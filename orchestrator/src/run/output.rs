//! A run's output (or feedback) records, read a page at a time: a successful run's
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
        let run = self.store.run(id).await?;
        // A successful run's validated output, else what the run wrote (so far), opened as
        // the hostile file it may be.
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
        let (records, more) = tokio::task::spawn_blocking(move || {
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
            read_records(file, offset, limit)
        })
        .await
        .map_err(|e| crate::Error::Other(format!("reading the output of a run: {e}")))??;
        Ok(OutputPage {
            next_offset: more.then_some(offset + records.len()),
            records,
            offset,
        })
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
/// A last line without its newline is still being written and does not count yet.
fn read_records(
    file: Option<std::fs::File>,
    offset: usize,
    limit: usize,
) -> crate::Result<(Vec<serde_json::Value>, bool)> {
    let Some(file) = file else {
        return Ok((vec![], false));
    };
    let mut reader = std::io::BufReader::new(file);
    let mut line = String::new();
    let mut next_line = |line: &mut String| -> crate::Result<bool> {
        line.clear();
        reader
            .read_line(line)
            .map_err(|e| crate::Error::RunOutput(format!("reading: {e}")))?;
        Ok(line.ends_with('\n'))
    };
    for _ in 0..offset {
        if !next_line(&mut line)? {
            return Ok((vec![], false));
        }
    }
    let mut records = Vec::with_capacity(limit);
    while records.len() < limit && next_line(&mut line)? {
        let number = offset + records.len() + 1;
        records.push(
            serde_json::from_str(&line)
                .map_err(|e| crate::Error::RunOutput(format!("line {number} is not JSON: {e}")))?,
        );
    }
    let more = records.len() == limit && next_line(&mut line)?;
    Ok((records, more))
}
