//! `summary.json`, written into the run dir when the server shuts down.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

pub const SUMMARY_FILE: &str = "summary.json";

/// What a run produced through the API, e.g.
/// `{"files":{"feedback":{"rows":0,"columns":[]},"output":{"rows":3,"columns":["id","name"]}},
///   "columns":["id","name"],"logs":{"alert":0,...,"info":2,...}}`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// Every output type (`output`, `feedback`), written to or not.
    pub files: BTreeMap<String, FileSummary>,
    /// The column set of the product table: the columns of `output`.
    pub columns: Vec<String>,
    /// Lines logged through `POST /logs/{level}`, per level (every level, zeros included).
    pub logs: BTreeMap<String, u64>,
    /// What the conformance kit judges the connector by (see [`crate::diagnostics`]).
    #[serde(default)]
    pub diagnostics: crate::Diagnostics,
}

#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq)]
pub struct FileSummary {
    pub rows: u64,
    /// Sorted union of the (flattened) keys of all rows.
    pub columns: Vec<String>,
}

impl Summary {
    /// Writes `<run_dir>/summary.json` via a temp file and a rename, so readers
    /// never see a half-written summary. The temp file is created anew (whatever the
    /// connector left under its name is unlinked, never followed).
    pub fn write(&self, run_dir: &Path) -> io::Result<()> {
        let tmp = run_dir.join(format!("{SUMMARY_FILE}.tmp"));
        let mut attempts = 0;
        let mut file = loop {
            match std::fs::remove_file(&tmp) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
            match crate::nofollow::create_new(&tmp) {
                Ok(file) => break file,
                // Something was put there again in between.
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && attempts < 3 => attempts += 1,
                Err(e) => return Err(e),
            }
        };
        serde_json::to_writer_pretty(&mut file, self)?;
        file.write_all(b"\n")?;
        file.sync_all()?;
        std::fs::rename(&tmp, run_dir.join(SUMMARY_FILE))?;
        File::open(run_dir)?.sync_all()
    }

    pub fn read(run_dir: &Path) -> io::Result<Self> {
        let text = std::fs::read(run_dir.join(SUMMARY_FILE))?;
        Ok(serde_json::from_slice(&text)?)
    }
}
