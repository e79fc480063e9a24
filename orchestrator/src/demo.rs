//! `cde demo`: builds the sample Python connector, registers it and runs it.

use std::collections::BTreeMap;
use std::process::Command;

use crate::error::{Error, Result};
use crate::run::Run;
use crate::{sidecar, Cde};

pub const SAMPLE_CONNECTOR: &str = "sample-connectors/python";

/// Builds the sample connector's image (and a local base image when none can be pulled).
pub fn build_sample_image() -> Result<()> {
    let root = sidecar::source_root().ok_or_else(|| {
        Error::Config("the demo needs the cde source tree it was built from".into())
    })?;
    let status = Command::new("bash")
        .arg(root.join("sample-connectors/build.sh"))
        .arg(root.join(SAMPLE_CONNECTOR))
        .status()?;
    if !status.success() {
        return Err(Error::Config(format!(
            "sample-connectors/build.sh failed ({status})"
        )));
    }
    Ok(())
}

pub async fn run(cde: &Cde) -> Result<Run> {
    build_sample_image()?;
    let root = sidecar::source_root().expect("checked by build_sample_image");
    let registration = cde
        .register(&root.join(SAMPLE_CONNECTOR).join("manifest.yaml"))
        .await?;
    eprintln!(
        "registered {} version {}",
        registration.manifest.code, registration.version
    );
    let options = BTreeMap::from([("NAME".to_owned(), "demo".to_owned())]);
    cde.run(&registration.manifest.code, options).await
}
