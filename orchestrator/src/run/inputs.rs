//! A run's directory and the input feeds put into it before the run is recorded.

use std::path::Path;

use crate::dataset;
use crate::delta::{self, DeltaCounts};
use crate::error::{Error, Result};
use crate::model::{ConnectorType, Manifest, RunInputs};

/// Creates the run directory. The container runs as whatever user its image says, and
/// the Container API in it writes the output, the log and the summary as that user.
pub(super) fn prepare_run_dir(run_dir: &Path) -> Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let shared =
        |path: &Path, mode| std::fs::set_permissions(path, PermissionsExt::from_mode(mode));
    for dir in ["input", "output", "work"] {
        let dir = run_dir.join(dir);
        std::fs::create_dir_all(&dir).map_err(Error::file("creating", &dir))?;
    }
    for dir in [
        run_dir.to_path_buf(),
        run_dir.join("output"),
        run_dir.join("work"),
    ] {
        shared(&dir, 0o777).map_err(Error::file("sharing", &dir))?;
    }
    let logs = run_dir.join(container_api::LOG_FILE);
    container_api::logs::open_log_file(&logs).map_err(Error::file("creating", &logs))?;
    shared(&logs, 0o666).map_err(Error::file("sharing", &logs))?;
    Ok(())
}

/// Puts the feeds a connector reads into its run's `input/` directory: `input.jsonl` for a
/// data service or export, plus `new`, `modified`, `unchanged` and `deleted` for an export
/// delta. Everything is checked before the run is recorded.
pub(super) fn prepare_inputs(
    manifest: &Manifest,
    input_dir: &Path,
    inputs: &RunInputs,
) -> Result<Option<DeltaCounts>> {
    let code = &manifest.code;
    let kind = manifest.kind;
    let input = match (&inputs.input, manifest.reads_input()) {
        (Some(_), false) => return Err(Error::InvalidConfig(format!("{code} is a {kind}: it reads no input"))),
        (None, true) => {
            return Err(Error::InvalidConfig(format!(
                "{code} is a {kind} and reads an input feed: give one (cde run --input FILE.jsonl) or run it in a pipeline"
            )))
        }
        (None, false) => return Ok(None),
        (Some(input), true) => input,
    };
    if inputs.previous.is_some() && manifest.kind != ConnectorType::ExportDelta {
        return Err(Error::InvalidConfig(format!(
            "{code} is a {kind}: only an export-delta takes a previous snapshot"
        )));
    }
    let (rows, columns) = dataset::scan(input)?;
    // An empty feed lacks no column: an export must cope with it (and may have to clear
    // its channel).
    if let Some(missing) = manifest
        .required_columns
        .iter()
        .find(|c| rows > 0 && !columns.contains(c))
    {
        return Err(Error::InvalidConfig(format!(
            "the input has no column {missing:?}, which {code} requires"
        )));
    }
    let feed = input_dir.join("input.jsonl");
    std::fs::copy(input, &feed).map_err(Error::file("copying the input to", &feed))?;
    let counts = match manifest.kind {
        ConnectorType::ExportDelta => Some(
            delta::compute(
                inputs.previous.as_deref(),
                &feed,
                manifest.delta_key(),
                input_dir,
            )
            .map_err(Error::from)?,
        ),
        _ => None,
    };
    // The connector runs as whatever user its image says, and reads these (copies of
    // read-only datasets) as that user; the data directory above keeps them private.
    let entries = std::fs::read_dir(input_dir).map_err(Error::file("listing", input_dir))?;
    for entry in entries {
        crate::private::chmod(
            &entry.map_err(Error::file("listing", input_dir))?.path(),
            0o644,
        )?;
    }
    crate::private::chmod(input_dir, 0o755)?;
    Ok(counts)
}
