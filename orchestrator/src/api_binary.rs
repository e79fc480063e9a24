//! The static `container-api` binary that every run's container gets mounted as its
//! entrypoint. It is installed into `<data dir>/bin/` under its content hash, so the
//! engine can mount it by host path and a rebuilt binary never changes a running one.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};

const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";

/// The installed binary, building it from the source tree first when no
/// `CDE_CONTAINER_API_BINARY` is given.
pub fn ensure(config: &Config) -> Result<PathBuf> {
    let source = match &config.container_api_binary {
        Some(path) => path.clone(),
        None => build_static_binary()?,
    };
    install(&source, &config.data_dir.join("bin"))
}

fn install(source: &Path, bin_dir: &Path) -> Result<PathBuf> {
    let bytes = std::fs::read(source).map_err(|e| {
        Error::ApiBinary(format!(
            "cannot read the container-api binary {}: {e}",
            source.display()
        ))
    })?;
    let hash = format!("{:x}", Sha256::digest(&bytes));
    let installed = bin_dir.join(format!("container-api-{}", &hash[..16]));
    if installed.exists() {
        return Ok(installed);
    }
    let installing = Error::file("installing the container-api binary as", &installed);
    std::fs::create_dir_all(bin_dir)
        .and_then(|_| tempfile::NamedTempFile::new_in(bin_dir))
        .and_then(|partial| {
            std::fs::write(partial.path(), &bytes)?;
            std::fs::set_permissions(partial.path(), std::fs::Permissions::from_mode(0o755))?;
            partial.persist(&installed).map_err(|e| e.error)
        })
        .map_err(installing)?;
    Ok(installed)
}

/// The workspace this binary was built from, if it is still there.
pub fn source_root() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent()?;
    root.join("container-api/Cargo.toml")
        .exists()
        .then(|| root.to_path_buf())
}

/// Builds the Container API as a static binary from the source tree (a no-op when fresh).
fn build_static_binary() -> Result<PathBuf> {
    let root = source_root().ok_or_else(|| {
        Error::ApiBinary(
            "set CDE_CONTAINER_API_BINARY to a static container-api binary (there is no source \
             tree to build one from)"
                .into(),
        )
    })?;
    // A target dir of its own: different RUSTFLAGS must not invalidate the main build,
    // and its lock is free while `cargo test` holds the main one.
    let target_dir = root.join("target/container-api-static");
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(&root)
        .args(["build", "--quiet", "--release", "-p", "container-api"])
        .args(["--target", STATIC_TARGET, "--target-dir"])
        .arg(&target_dir)
        .env("RUSTFLAGS", "-C target-feature=+crt-static")
        .env_remove("CARGO_ENCODED_RUSTFLAGS")
        .env_remove("CARGO_TARGET_DIR")
        .env_remove("CARGO_BUILD_TARGET")
        .output()
        .map_err(|e| Error::ApiBinary(format!("cannot run cargo to build container-api: {e}")))?;
    if !output.status.success() {
        return Err(Error::ApiBinary(format!(
            "building the static container-api binary failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(target_dir.join(STATIC_TARGET).join("release/container-api"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn installs_once_per_content() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("container-api");
        std::fs::write(&source, b"binary one").unwrap();
        let bin = dir.path().join("bin");
        let first = super::install(&source, &bin).unwrap();
        assert_eq!(super::install(&source, &bin).unwrap(), first);
        assert_eq!(std::fs::read(&first).unwrap(), b"binary one");
        use std::os::unix::fs::PermissionsExt;
        assert_eq!(
            std::fs::metadata(&first).unwrap().permissions().mode() & 0o777,
            0o755
        );
        std::fs::write(&source, b"binary two").unwrap();
        let second = super::install(&source, &bin).unwrap();
        assert_ne!(second, first);
        assert_eq!(std::fs::read_dir(&bin).unwrap().count(), 2);
    }
}
