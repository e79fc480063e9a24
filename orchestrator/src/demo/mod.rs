//! `cde demo`'s connectors: the Python sample, built from the source tree when that is at
//! hand, and the built-in one, which needs no image build: the cde executable every run
//! mounts, in an empty image ([`connector`]).

pub mod connector;

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::error::{Error, Result};
use crate::model::Manifest;
use crate::Cde;

pub const SAMPLE_CONNECTOR: &str = "sample-connectors/python";

/// The built-in connector's manifest.
const BUILTIN_MANIFEST: &str = include_str!("manifest.yaml");

/// The workspace this cde was built from, if its sample connector's sources are still there.
pub fn source_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    root.join(SAMPLE_CONNECTOR)
        .join("Dockerfile")
        .is_file()
        .then(|| root.to_path_buf())
}

/// Builds the image of the connector folder `dir` (relative to the source tree) with
/// `sample-connectors/build.sh`, which reports its steps on standard error.
pub fn build_image(dir: &str) -> Result<()> {
    let root = source_root().ok_or_else(|| {
        Error::Config(format!(
            "building {dir} needs the cde source tree, which is not at {}",
            env!("CARGO_MANIFEST_DIR")
        ))
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

impl Cde {
    /// The built-in connector's manifest, its empty image imported on first use.
    pub async fn builtin_demo(&self) -> Result<Manifest> {
        let manifest =
            Manifest::parse(BUILTIN_MANIFEST, false).map_err(|message| Error::Manifest {
                path: "the built-in demo manifest".into(),
                message,
            })?;
        crate::executable::empty_image(self.engine().await?).await?;
        Ok(manifest)
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_builtin_manifest_is_valid() {
        let manifest = crate::model::Manifest::parse(super::BUILTIN_MANIFEST, false).unwrap();
        assert_eq!(manifest.command, crate::executable::IN_CONTAINER);
        assert_eq!(manifest.image, crate::executable::EMPTY_IMAGE);
    }
}
