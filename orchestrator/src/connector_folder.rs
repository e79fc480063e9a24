//! A connector's source folder as its author works on it (`cde dev`, `cde test`): its
//! manifest and its image, built with `docker build` (or the author's own command), so
//! that the engine's layer cache rebuilds only what an edit changed.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use crate::error::{Error, Result};
use crate::model::Manifest;

/// The names a folder's manifest is looked for under, in this order.
const MANIFEST_NAMES: [&str; 4] = ["manifest.yaml", "manifest.yml", "manifest.json", "cde.yaml"];

/// The label of images `cde dev` and `cde test` build.
pub const DEV_LABEL: &str = "cde.dev=true";

pub struct ConnectorFolder {
    pub dir: PathBuf,
    /// The manifest file: given, or found in `dir`.
    pub manifest: PathBuf,
}

/// How the image is made.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// A shell command run instead of `docker build` (from the current directory); it must
    /// tag the manifest's image.
    pub command: Option<String>,
    /// `NAME=VALUE` build arguments of `docker build` (e.g. `BASE_IMAGE=...`).
    pub args: Vec<String>,
}

impl ConnectorFolder {
    /// The folder `dir` with its manifest: `manifest` (relative to the current directory)
    /// or the first of [`MANIFEST_NAMES`] in `dir`.
    pub fn open(dir: &Path, manifest: Option<&Path>) -> Result<Self> {
        if !dir.is_dir() {
            return Err(Error::InvalidConfig(format!(
                "{} is not a folder (a connector folder holds its Dockerfile and manifest)",
                dir.display()
            )));
        }
        let manifest = match manifest {
            Some(path) => path.to_path_buf(),
            None => MANIFEST_NAMES
                .iter()
                .map(|name| dir.join(name))
                .find(|path| path.is_file())
                .ok_or_else(|| {
                    Error::InvalidConfig(format!(
                        "{} has no manifest ({}); name one with --manifest",
                        dir.display(),
                        MANIFEST_NAMES.join(", ")
                    ))
                })?,
        };
        Ok(Self {
            dir: dir.to_path_buf(),
            manifest,
        })
    }

    pub fn load_manifest(&self) -> Result<Manifest> {
        Manifest::load(&self.manifest)
    }

    /// Builds the manifest's image; the builder's output goes to standard error. A
    /// declarative HTTP connector has none to build (it runs in cde's empty image), unless
    /// `--build` says otherwise.
    pub async fn build(&self, manifest: &Manifest, build: &Build) -> Result<()> {
        if manifest.http.is_some() && build.command.is_none() {
            return Ok(());
        }
        let mut command = match &build.command {
            Some(line) => {
                let mut command = tokio::process::Command::new("sh");
                command.arg("-c").arg(line);
                command
            }
            None => {
                if !self.dir.join("Dockerfile").is_file() {
                    return Err(Error::InvalidConfig(format!(
                        "{} has no Dockerfile; give the command that builds {} with --build",
                        self.dir.display(),
                        manifest.image
                    )));
                }
                let mut command = tokio::process::Command::new("docker");
                command
                    .arg("build")
                    .args(["--label", DEV_LABEL, "--tag", &manifest.image])
                    // Labels are inherited: a connector built on a local stand-in of a base
                    // image must not pass for one (cleanup keeps base images).
                    .args(["--label", "cde.base=false"]);
                for arg in &build.args {
                    command.args(["--build-arg", arg]);
                }
                command.arg(&self.dir);
                command
            }
        };
        let what = match &build.command {
            Some(line) => format!("`{line}`"),
            None => format!("docker build of {}", self.dir.display()),
        };
        let status = command
            .stdin(Stdio::null())
            .stdout(Stdio::inherit())
            .stderr(Stdio::inherit())
            .status()
            .await
            .map_err(|e| {
                Error::Other(format!("building {}: running {what}: {e}", manifest.image))
            })?;
        if !status.success() {
            return Err(Error::InvalidConfig(format!(
                "building {}: {what} failed ({status})",
                manifest.image
            )));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_manifest_is_found_or_named() {
        let dir = tempfile::tempdir().unwrap();
        let error = ConnectorFolder::open(dir.path(), None).err().unwrap();
        assert!(error.to_string().contains("has no manifest"), "{error}");
        std::fs::write(dir.path().join("manifest.yml"), "code: x").unwrap();
        let folder = ConnectorFolder::open(dir.path(), None).unwrap();
        assert_eq!(folder.manifest, dir.path().join("manifest.yml"));
        let other = dir.path().join("other.yaml");
        let folder = ConnectorFolder::open(dir.path(), Some(&other)).unwrap();
        assert_eq!(folder.manifest, other);
        let error = ConnectorFolder::open(&other, None).err().unwrap();
        assert!(error.to_string().contains("is not a folder"), "{error}");
    }

    #[tokio::test]
    async fn a_folder_without_a_dockerfile_needs_a_build_command_unless_it_is_http() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../sample-connectors/http");
        let folder =
            ConnectorFolder::open(&root, Some(&root.join("mailchimp-members.yaml"))).unwrap();
        let http = folder.load_manifest().unwrap();
        folder.build(&http, &Build::default()).await.unwrap();
        let mut image = http.clone();
        image.http = None;
        let error = folder.build(&image, &Build::default()).await.unwrap_err();
        assert!(error.to_string().contains("has no Dockerfile"), "{error}");
    }
}
