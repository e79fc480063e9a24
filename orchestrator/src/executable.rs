//! The cde executable, which every run's container gets mounted as its entrypoint
//! (`cde container-api ...`). cde installs its own executable into `<data dir>/bin/` under
//! its content hash, so the engine can mount it by host path, and a newer cde never
//! changes the one a running container uses.

use std::collections::HashMap;
use std::io::Read;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{LazyLock, Mutex};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, Mount, MountType};
use sha2::{Digest, Sha256};

use crate::config::Config;
use crate::engine::{container, Engine};
use crate::error::{Error, Result};
use crate::Cde;

pub use crate::engine::container::EXECUTABLE_IN_CONTAINER as IN_CONTAINER;
/// An image with no files at all, for containers whose only program is the mounted cde.
pub const EMPTY_IMAGE: &str = "cde-empty:1";
/// What is read of an executable to tell whether it is static.
const HEAD_BYTES: usize = 64 * 1024;
/// How long the mount check's container may take.
const CHECK_TIMEOUT: Duration = Duration::from_secs(30);

/// The executable runs mount (`CDE_EXECUTABLE`, else the one running), installed into the
/// data directory.
pub fn installed(config: &Config) -> Result<PathBuf> {
    let source = match &config.executable {
        Some(path) => path.clone(),
        None => std::env::current_exe()
            .map_err(|e| Error::Executable(format!("cannot tell where cde runs from: {e}")))?,
    };
    let hash = checked_digest(&source)?;
    install(&source, &hash, &config.data_dir.join("bin"))
}

impl Cde {
    /// The cde executable, installed into the data directory for containers to mount.
    pub(crate) async fn executable(&self) -> Result<&Path> {
        let installed = self
            .executable
            .get_or_try_init(|| async { installed(&self.config) })
            .await?;
        Ok(installed)
    }

    /// Runs the installed executable in a container (`cde --version`), as every run will:
    /// the engine must be able to mount it, so the data directory must be on the engine's
    /// host at the same path. A bind mount of a missing path is refused, not created.
    pub(crate) async fn check_mountable(&self, engine: &dyn Engine) -> Result<()> {
        let executable = self.executable().await?;
        let unmountable = |reason: String| {
            Error::Config(format!(
                "the Docker engine cannot mount cde's data directory {} ({reason}); put \
                 CDE_DATA_DIR on the engine's host, at the same path inside and outside any \
                 container cde runs in",
                self.config.data_dir.display()
            ))
        };
        empty_image(engine).await?;
        let limits = self.config.default_limits();
        let body = ContainerCreateBody {
            image: Some(EMPTY_IMAGE.into()),
            entrypoint: Some(vec![IN_CONTAINER.into()]),
            cmd: Some(vec!["--version".into()]),
            labels: Some(container::labels(
                self.store.instance(),
                &[("cde.role", "mount-check")],
            )),
            host_config: Some(HostConfig {
                mounts: Some(vec![Mount {
                    typ: Some(MountType::BIND),
                    source: Some(executable.display().to_string()),
                    target: Some(IN_CONTAINER.into()),
                    read_only: Some(true),
                    ..Default::default()
                }]),
                ..container::confined(&limits, "none")
            }),
            ..Default::default()
        };
        let name = format!("cde-mount-check-{}", uuid::Uuid::new_v4().simple());
        // The engine refuses to create or start the container when it cannot mount the file.
        match container::run_once(engine, &name, body, CHECK_TIMEOUT).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(why)) => Err(unmountable(format!("`cde --version` in a container {why}"))),
            Err(Error::Engine { source, .. }) => Err(unmountable(source.to_string())),
            Err(e) => Err(e),
        }
    }
}

/// [`EMPTY_IMAGE`], imported when missing.
pub async fn empty_image(engine: &dyn Engine) -> Result<&'static str> {
    if !engine.image_exists(EMPTY_IMAGE).await? {
        engine
            .import_empty_image(EMPTY_IMAGE, &[("cde.empty", "true")])
            .await?;
    }
    Ok(EMPTY_IMAGE)
}

/// Copies `source` to `<bin_dir>/cde-<hash>` unless it is there.
fn install(source: &Path, hash: &str, bin_dir: &Path) -> Result<PathBuf> {
    let installed = bin_dir.join(format!("cde-{}", &hash[..16]));
    if installed.exists() {
        return Ok(installed);
    }
    let installing = Error::file("installing the cde executable as", &installed);
    std::fs::create_dir_all(bin_dir)
        .and_then(|_| tempfile::NamedTempFile::new_in(bin_dir))
        .and_then(|partial| {
            std::fs::copy(source, partial.path())?;
            std::fs::set_permissions(partial.path(), std::fs::Permissions::from_mode(0o755))?;
            partial.persist(&installed).map_err(|e| e.error)
        })
        .map_err(installing)?;
    Ok(installed)
}

/// The SHA-256 (hex) of the static executable at `path`; an error when it is not static.
/// Worked out once per process for the same file, size and time of change: tests open
/// many `Cde`s, and a debug build of cde is large.
fn checked_digest(path: &Path) -> Result<String> {
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static KNOWN: LazyLock<Mutex<HashMap<Key, String>>> = LazyLock::new(Default::default);
    let unreadable =
        |e: std::io::Error| Error::Executable(format!("cannot read {}: {e}", path.display()));
    let meta = std::fs::metadata(path).map_err(unreadable)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let mut known = KNOWN.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(hash) = known.get(&key) {
        return Ok(hash.clone());
    }
    // Streamed: the executable is tens of megabytes, and a server's memory should not
    // remember it. Linkers put the program headers right after the ELF header.
    let mut file = std::fs::File::open(path).map_err(unreadable)?;
    let mut head = Vec::with_capacity(HEAD_BYTES);
    (&mut file)
        .take(HEAD_BYTES as u64)
        .read_to_end(&mut head)
        .map_err(unreadable)?;
    if !is_static(&head) {
        return Err(Error::Executable(format!(
            "{} is not a statically linked executable, so it cannot run inside connector images; \
             build cde as the README's Install section says, or set CDE_EXECUTABLE to a static cde",
            path.display()
        )));
    }
    let mut hasher = Sha256::new();
    hasher.update(&head);
    std::io::copy(&mut file, &mut hasher).map_err(unreadable)?;
    let hash = format!("{:x}", hasher.finalize());
    known.insert(key, hash.clone());
    Ok(hash)
}

/// Whether `elf` (the start of a file) is a 64-bit little-endian ELF executable without a
/// program interpreter (`PT_INTERP`): one that needs no dynamic loader or C library from
/// the image it runs in. Program headers beyond `elf` count as not static.
fn is_static(elf: &[u8]) -> bool {
    const PT_INTERP: u32 = 3;
    let u16_at = |at: usize| {
        elf.get(at..at + 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        elf.get(at..at + 4)
            .map(|b| u32::from_le_bytes(b.try_into().expect("4 bytes")))
    };
    let u64_at = |at: usize| {
        elf.get(at..at + 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    };
    // Magic, 64-bit class, little-endian.
    if !elf.starts_with(b"\x7fELF\x02\x01") {
        return false;
    }
    let (Some(phoff), Some(phentsize), Some(phnum)) = (u64_at(0x20), u16_at(0x36), u16_at(0x38))
    else {
        return false;
    };
    (0..usize::from(phnum)).all(|i| {
        let at = usize::try_from(phoff)
            .unwrap_or(usize::MAX)
            .saturating_add(i.saturating_mul(usize::from(phentsize)));
        u32_at(at).is_some_and(|kind| kind != PT_INTERP)
    })
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn installs_once_per_content() {
        let dir = tempfile::tempdir().unwrap();
        let source = dir.path().join("cde");
        std::fs::write(&source, b"binary one").unwrap();
        let bin = dir.path().join("bin");
        let first = super::install(&source, "1111222233334444aaaa", &bin).unwrap();
        assert!(first.ends_with("cde-1111222233334444"));
        assert_eq!(std::fs::read(&first).unwrap(), b"binary one");
        assert_eq!(
            std::fs::metadata(&first).unwrap().permissions().mode() & 0o777,
            0o755
        );
        // Installed already: not copied again.
        std::fs::write(&source, b"binary two").unwrap();
        assert_eq!(
            super::install(&source, "1111222233334444aaaa", &bin).unwrap(),
            first
        );
        assert_eq!(std::fs::read(&first).unwrap(), b"binary one");
        let second = super::install(&source, "5555666677778888bbbb", &bin).unwrap();
        assert_eq!(std::fs::read(&second).unwrap(), b"binary two");
        assert_eq!(std::fs::read_dir(&bin).unwrap().count(), 2);
    }

    #[test]
    fn refuses_a_dynamically_linked_executable() {
        let error = super::checked_digest(std::path::Path::new("/bin/sh")).unwrap_err();
        assert!(
            error
                .to_string()
                .contains("not a statically linked executable"),
            "{error}"
        );
    }

    #[test]
    fn tells_static_from_dynamic_executables() {
        // This test binary is built like cde: statically on linux-gnu (.cargo/config.toml).
        let this = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        assert!(super::is_static(&this[..super::HEAD_BYTES]));
        // A dynamically linked program of the machine.
        let dynamic = std::fs::read("/bin/sh").unwrap();
        assert!(!super::is_static(&dynamic));
        assert!(!super::is_static(b"#!/bin/sh\necho not an executable\n"));
        assert!(!super::is_static(&this[..0x30]));
    }
}
