//! `cde demo`: the sample Python connector, built locally.

use std::process::Command;

use crate::api_binary;
use crate::error::{Error, Result};

pub const SAMPLE_CONNECTOR: &str = "sample-connectors/python";

/// Builds the sample connector's image (and a local base image when none can be pulled).
pub fn build_sample_image() -> Result<()> {
    build_image(SAMPLE_CONNECTOR)
}

/// Builds the image of the connector folder `dir` (relative to the source tree) with
/// `sample-connectors/build.sh`.
pub fn build_image(dir: &str) -> Result<()> {
    let root = api_binary::source_root().ok_or_else(|| {
        Error::Config("the demo needs the cde source tree it was built from".into())
    })?;
    let status = Command::new("bash")
        .arg(root.join("sample-connectors/build.sh"))
        .arg(root.join(dir))
        .status()
        .map_err(|e| Error::Other(format!("running sample-connectors/build.sh: {e}")))?;
    if !status.success() {
        return Err(Error::Config(format!(
            "sample-connectors/build.sh failed ({status})"
        )));
    }
    Ok(())
}
