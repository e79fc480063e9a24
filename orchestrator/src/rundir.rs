//! Reading a run directory, which the connector may have written anything into.
//!
//! The connector shares its container with its Container API, so any file below the run
//! directory may be a symlink to a host path, a FIFO that blocks a reader, a device, or a
//! file larger than the run was allowed to write. cde opens files there only through
//! [`open`], which resolves the path beneath the run directory without following a
//! symlink at any component and accepts only a regular file within a size limit. Nothing
//! read from there is trusted before it is validated, and cde never links, chmods or
//! serves such a path.

use std::fs::File;
use std::io;
use std::os::fd::{AsFd, OwnedFd};
use std::path::{Component, Path};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// Files below a run directory that cde reads.
pub const OUTPUT: &str = "output/output.jsonl";
pub const FEEDBACK: &str = "output/feedback.jsonl";

/// Why a file below a run directory was not opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{0} is not there")]
    Missing(String),
    #[error(
        "{0} is not a regular file (a symlink, FIFO, device or directory planted by the connector)"
    )]
    NotRegular(String),
    #[error("{path} is {size} bytes, over the run's limit of {limit} bytes")]
    TooLarge { path: String, size: u64, limit: u64 },
    #[error("opening {path}: {source}")]
    Io { path: String, source: io::Error },
}

impl From<OpenError> for crate::Error {
    fn from(e: OpenError) -> Self {
        crate::Error::RunOutput(e.to_string())
    }
}

/// Opens the regular file `relative` below `run_dir` for reading, refusing symlinks at
/// every component, anything but a regular file, and files over `max_bytes`.
/// `Ok(None)` when the file does not exist.
pub fn open(run_dir: &Path, relative: &str, max_bytes: u64) -> Result<Option<File>, OpenError> {
    let io_error = |source: io::Error| OpenError::Io {
        path: relative.to_owned(),
        source,
    };
    let dir = rustix::fs::open(
        run_dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io_error(e.into()))?;
    let fd = match open_beneath(&dir, relative) {
        Ok(fd) => fd,
        Err(e) if e == rustix::io::Errno::NOENT => return Ok(None),
        Err(e) if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::XDEV => {
            return Err(OpenError::NotRegular(relative.to_owned()))
        }
        Err(e) => return Err(io_error(e.into())),
    };
    let stat = rustix::fs::fstat(&fd).map_err(|e| io_error(e.into()))?;
    if rustix::fs::FileType::from_raw_mode(stat.st_mode) != rustix::fs::FileType::RegularFile {
        return Err(OpenError::NotRegular(relative.to_owned()));
    }
    let size = stat.st_size as u64;
    if size > max_bytes {
        return Err(OpenError::TooLarge {
            path: relative.to_owned(),
            size,
            limit: max_bytes,
        });
    }
    // Opened non-blocking so that a FIFO cannot hang the open; reads of a regular file
    // never block anyway.
    let flags = rustix::fs::fcntl_getfl(&fd).map_err(|e| io_error(e.into()))?;
    rustix::fs::fcntl_setfl(&fd, flags - OFlags::NONBLOCK).map_err(|e| io_error(e.into()))?;
    Ok(Some(File::from(fd)))
}

const READ_FLAGS: OFlags = OFlags::RDONLY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::NONBLOCK)
    .union(OFlags::NOCTTY)
    .union(OFlags::CLOEXEC);

fn open_beneath(dir: &OwnedFd, relative: &str) -> rustix::io::Result<OwnedFd> {
    let resolve = ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
    match rustix::fs::openat2(dir, relative, READ_FLAGS, Mode::empty(), resolve) {
        Err(rustix::io::Errno::NOSYS) => open_by_components(dir, relative),
        other => other,
    }
}

/// For kernels before 5.6 (no `openat2`): one `O_NOFOLLOW` open per component.
fn open_by_components(dir: &OwnedFd, relative: &str) -> rustix::io::Result<OwnedFd> {
    let components: Vec<_> = Path::new(relative).components().collect();
    let mut current: Option<OwnedFd> = None;
    for (index, component) in components.iter().enumerate() {
        let Component::Normal(name) = component else {
            return Err(rustix::io::Errno::XDEV);
        };
        let last = index + 1 == components.len();
        let flags = if last {
            READ_FLAGS
        } else {
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
        };
        let parent = current.as_ref().map_or(dir.as_fd(), |fd| fd.as_fd());
        current = Some(rustix::fs::openat(parent, *name, flags, Mode::empty())?);
    }
    current.ok_or(rustix::io::Errno::INVAL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;

    fn read(dir: &Path, relative: &str, max: u64) -> Result<Option<String>, OpenError> {
        Ok(open(dir, relative, max)?.map(|mut file| {
            let mut text = String::new();
            file.read_to_string(&mut text).unwrap();
            text
        }))
    }

    #[test]
    fn opens_regular_files_beneath_only() {
        let run = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let secret = outside.path().join("secret");
        std::fs::write(&secret, "host secret\n").unwrap();
        std::fs::create_dir_all(run.path().join("output")).unwrap();
        std::fs::write(run.path().join("output/output.jsonl"), "{}\n").unwrap();

        assert_eq!(read(run.path(), OUTPUT, 100).unwrap().unwrap(), "{}\n");
        assert!(read(run.path(), FEEDBACK, 100).unwrap().is_none());
        assert!(matches!(
            read(run.path(), OUTPUT, 2),
            Err(OpenError::TooLarge { size: 3, .. })
        ));

        // A symlinked file, a symlinked directory, a FIFO and a directory are refused.
        std::fs::remove_file(run.path().join("output/output.jsonl")).unwrap();
        std::os::unix::fs::symlink(&secret, run.path().join("output/output.jsonl")).unwrap();
        assert!(matches!(
            read(run.path(), OUTPUT, 100),
            Err(OpenError::NotRegular(_))
        ));
        std::fs::remove_dir_all(run.path().join("output")).unwrap();
        std::fs::write(outside.path().join("output.jsonl"), "{\"host\":1}\n").unwrap();
        std::os::unix::fs::symlink(outside.path(), run.path().join("output")).unwrap();
        assert!(matches!(
            read(run.path(), OUTPUT, 100),
            Err(OpenError::NotRegular(_))
        ));
        std::fs::remove_file(run.path().join("output")).unwrap();
        std::fs::create_dir_all(run.path().join("output")).unwrap();
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            run.path().join("output/output.jsonl"),
            Mode::RUSR | Mode::WUSR,
        )
        .unwrap();
        assert!(matches!(
            read(run.path(), OUTPUT, 100),
            Err(OpenError::NotRegular(_))
        ));
        std::fs::create_dir_all(run.path().join("output/feedback.jsonl")).unwrap();
        assert!(matches!(
            read(run.path(), FEEDBACK, 100),
            Err(OpenError::NotRegular(_))
        ));
        assert!(read(run.path(), "../secret", 100).is_err());
    }

    #[test]
    fn the_fallback_refuses_symlinks_too() {
        let run = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::fs::write(outside.path().join("x"), "x").unwrap();
        std::os::unix::fs::symlink(outside.path(), run.path().join("output")).unwrap();
        let dir = rustix::fs::open(
            run.path(),
            OFlags::RDONLY | OFlags::DIRECTORY,
            Mode::empty(),
        )
        .unwrap();
        assert!(open_by_components(&dir, "output/x").is_err());
        std::fs::remove_file(run.path().join("output")).unwrap();
        std::fs::create_dir(run.path().join("output")).unwrap();
        std::fs::write(run.path().join("output/x"), "x").unwrap();
        assert!(open_by_components(&dir, "output/x").is_ok());
        assert!(open_by_components(&dir, "../x").is_err());
    }
}
