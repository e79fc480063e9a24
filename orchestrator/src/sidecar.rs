//! The sidecar image: the Container API binary in a `FROM scratch` image, made locally
//! when missing so that no registry is needed.

use std::path::{Path, PathBuf};
use std::process::Command;

use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::error::{Error, Result};
use crate::runtime::Runtime;

const STATIC_TARGET: &str = "x86_64-unknown-linux-gnu";
const DOCKERFILE: &str =
    "FROM scratch\nCOPY container-api /container-api\nENTRYPOINT [\"/container-api\"]\n";

/// The image to start sidecars from, building it first if needed.
pub async fn ensure_image(config: &Config, runtime: &Runtime) -> Result<String> {
    if let Some(image) = &config.sidecar_image {
        return Ok(image.clone());
    }
    let binary = match &config.sidecar_binary {
        Some(path) => path.clone(),
        None => build_static_binary()?,
    };
    let bytes = std::fs::read(&binary).map_err(|e| {
        Error::SidecarImage(format!(
            "cannot read sidecar binary {}: {e}",
            binary.display()
        ))
    })?;
    // Tagging by content makes a rebuilt binary produce a new image and an unchanged one reuse it.
    let tag = format!(
        "cde-container-api:{}",
        &format!("{:x}", Sha256::digest(&bytes))[..16]
    );
    if !runtime.image_exists(&tag).await? {
        runtime
            .build_image(build_context(&bytes)?, &tag, "sidecar")
            .await
            .map_err(|e| Error::SidecarImage(format!("building {tag}: {e}")))?;
        // Images of earlier binaries are of no further use.
        runtime.remove_other_images("sidecar", &tag).await?;
    }
    Ok(tag)
}

fn build_context(binary: &[u8]) -> Result<Vec<u8>> {
    let mut tar = tar::Builder::new(Vec::new());
    for (name, mode, data) in [
        ("Dockerfile", 0o644, DOCKERFILE.as_bytes()),
        ("container-api", 0o755, binary),
    ] {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(mode);
        header.set_cksum();
        tar.append_data(&mut header, name, data)?;
    }
    Ok(tar.into_inner()?)
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
        Error::SidecarImage(
            "no sidecar image: set CDE_SIDECAR_IMAGE to an existing image, or CDE_SIDECAR_BINARY \
             to a static container-api binary"
                .into(),
        )
    })?;
    // A target dir of its own: different RUSTFLAGS must not invalidate the main build,
    // and its lock is free while `cargo test` holds the main one.
    let target_dir = root.join("target/sidecar");
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
        .map_err(|e| Error::SidecarImage(format!("cannot run cargo to build the sidecar: {e}")))?;
    if !output.status.success() {
        return Err(Error::SidecarImage(format!(
            "building the static container-api binary failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )));
    }
    Ok(target_dir.join(STATIC_TARGET).join("release/container-api"))
}
