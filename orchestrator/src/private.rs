//! The data directory is private to cde's user, whatever the umask: directories 0700,
//! files 0600 (0400 once sealed). Modes are set at creation and then again with `chmod`,
//! because the umask can only take bits away.
//!
//! Two exceptions, both unreachable to other host users because the directories above
//! them are 0700: a run directory (`runs/<id>/`, its `output/`, `work/` and `logs.jsonl`)
//! stays writable by any uid, since the container's user may be any uid; and the installed
//! `container-api` binaries in `bin/` stay 0755, since every container executes one
//! through a bind mount (the engine resolves mount paths as root).

use std::fs::{DirBuilder, File, OpenOptions, Permissions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::Path;

use crate::config::Config;
use crate::error::{Error, Result};

pub const DIR_MODE: u32 = 0o700;
pub const FILE_MODE: u32 = 0o600;
pub const SEALED_MODE: u32 = 0o400;

/// The directories cde creates directly in the data directory.
const SUBDIRS: [&str; 4] = ["runs", "datasets", "pipeline-runs", "bin"];

fn failed(action: &str, path: &Path, e: std::io::Error) -> Error {
    Error::Other(format!("{action} {}: {e}", path.display()))
}

pub fn chmod(path: &Path, mode: u32) -> Result<()> {
    std::fs::set_permissions(path, Permissions::from_mode(mode))
        .map_err(|e| failed(&format!("setting mode {mode:o} on"), path, e))
}

/// Creates `path` (and missing parents) as 0700 directories; an existing `path` is made 0700.
pub fn create_dir(path: &Path) -> Result<()> {
    DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)
        .map_err(|e| failed("creating the directory", path, e))?;
    chmod(path, DIR_MODE)
}

/// Creates (or truncates) a 0600 file for writing.
pub fn create_file(path: &Path) -> Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
        .map_err(|e| failed("creating", path, e))?;
    chmod(path, FILE_MODE)?;
    Ok(file)
}

/// Makes a finished file read-only for cde's user and unreadable to anyone else.
pub fn seal_file(path: &Path) -> Result<()> {
    chmod(path, SEALED_MODE)
}

/// Creates the SQLite database file 0600 before SQLite does (SQLite gives its `-wal` and
/// `-shm` files the database file's mode), and tightens the files of an existing database.
/// An existing file is changed by path only: closing a descriptor of a database file would
/// drop the POSIX locks other connections of this process hold on it.
pub fn prepare_database_file(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent().filter(|dir| !dir.as_os_str().is_empty()) {
        if !dir.exists() {
            create_dir(dir)?;
        }
    }
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(FILE_MODE)
        .open(path)
    {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
        Err(e) => return Err(failed("creating the database", path, e)),
    }
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = path.with_file_name(format!(
            "{}{suffix}",
            path.file_name().unwrap_or_default().to_string_lossy()
        ));
        if file.exists() {
            chmod(&file, FILE_MODE)?;
        }
    }
    Ok(())
}

/// Creates the data directory and its directories private, and tightens what an older
/// version of cde created there with the umask's modes. Run directories are left as they
/// are (see the module's comment).
pub fn secure_data_dir(config: &Config) -> Result<()> {
    let data_dir = &config.data_dir;
    create_dir(data_dir)?;
    for dir in SUBDIRS {
        create_dir(&data_dir.join(dir))?;
    }
    let database = config.database_path();
    let database_name = database.file_name().unwrap_or_default().to_string_lossy();
    for file in [
        config.api_token_path(),
        config.secret_key_path(),
        database.clone(),
        database.with_file_name(format!("{database_name}-wal")),
        database.with_file_name(format!("{database_name}-shm")),
        database.with_file_name(format!("{database_name}-journal")),
    ] {
        if file.exists() {
            chmod(&file, FILE_MODE)?;
        }
    }
    for dir in ["datasets", "pipeline-runs"] {
        tighten_tree(&data_dir.join(dir))?;
    }
    Ok(())
}

/// Directories 0700; files keep only their owner's bits (a read-only dataset stays 0400).
/// Symbolic links are neither followed nor changed.
fn tighten_tree(dir: &Path) -> Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(failed("listing", dir, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| failed("listing", dir, e))?;
        let path = entry.path();
        let meta = std::fs::symlink_metadata(&path).map_err(|e| failed("inspecting", &path, e))?;
        if meta.is_dir() {
            chmod(&path, DIR_MODE)?;
            tighten_tree(&path)?;
        } else if meta.is_file() {
            let mode = meta.permissions().mode() & 0o777;
            if mode & 0o077 != 0 {
                chmod(&path, mode & 0o700)?;
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        std::fs::symlink_metadata(path)
            .unwrap()
            .permissions()
            .mode()
            & 0o777
    }

    #[test]
    fn an_older_data_dir_is_tightened() {
        let root = tempfile::tempdir().unwrap();
        let data_dir = root.path().join("data");
        let config = Config {
            data_dir: data_dir.clone(),
            ..Config::default()
        };
        std::fs::create_dir_all(data_dir.join("datasets/connector/x")).unwrap();
        for dir in [&data_dir, &data_dir.join("datasets/connector/x")] {
            chmod(dir, 0o755).unwrap();
        }
        let dataset = data_dir.join("datasets/connector/x/1.jsonl");
        std::fs::write(&dataset, "{}\n").unwrap();
        chmod(&dataset, 0o444).unwrap();
        for file in ["cde.db", "cde.db-wal", "api-token"] {
            std::fs::write(data_dir.join(file), "x").unwrap();
            chmod(&data_dir.join(file), 0o644).unwrap();
        }
        secure_data_dir(&config).unwrap();
        assert_eq!(mode(&data_dir), 0o700);
        assert_eq!(mode(&data_dir.join("runs")), 0o700);
        assert_eq!(mode(&data_dir.join("datasets/connector/x")), 0o700);
        assert_eq!(mode(&dataset), 0o400);
        for file in ["cde.db", "cde.db-wal", "api-token"] {
            assert_eq!(mode(&data_dir.join(file)), 0o600, "{file}");
        }
    }
}
