//! Opening files in the run dir, which the connector shares (same uid, same
//! container) and can change at any time: never through a symlink it planted, and
//! only regular files (a FIFO or a device is refused, and opening one never blocks).

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::AsFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Component, Path};

use nix::errno::Errno;
use nix::fcntl::{openat, OFlag};
use nix::sys::stat::{mkdirat, Mode};

/// Flags for every file opened beneath the run dir.
const NOFOLLOW: OFlag = OFlag::O_NOFOLLOW
    .union(OFlag::O_NONBLOCK)
    .union(OFlag::O_CLOEXEC);

/// Opens `path` (whose last component must not be a symlink) for appending, creating it.
pub fn open_append(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .custom_flags(NOFOLLOW.bits())
        .open(path)?;
    regular(file)
}

/// Opens `path` (whose last component must not be a symlink) for reading.
pub fn open_read(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(NOFOLLOW.bits())
        .open(path)?;
    regular(file)
}

/// Creates `path` for writing; fails if anything (a symlink included) is there.
pub fn create_new(path: &Path) -> io::Result<File> {
    let file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .custom_flags(NOFOLLOW.bits())
        .open(path)?;
    regular(file)
}

/// Opens `<dir>/<relative>` for appending, creating it and its missing directories,
/// without following a symlink at any component below `dir` (which is trusted).
pub fn open_append_beneath(dir: &Path, relative: &Path) -> io::Result<File> {
    let mut names = Vec::new();
    for component in relative.components() {
        match component {
            Component::Normal(name) => names.push(name),
            _ => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("{} is not a plain relative path", relative.display()),
                ))
            }
        }
    }
    let (file_name, dirs) = names
        .split_last()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "an empty path"))?;
    let mut current: std::os::fd::OwnedFd = File::open(dir)?.into();
    for name in dirs {
        match mkdirat(current.as_fd(), *name, Mode::from_bits_truncate(0o755)) {
            Ok(()) | Err(Errno::EEXIST) => {}
            Err(e) => return Err(e.into()),
        }
        current = openat(
            current.as_fd(),
            *name,
            NOFOLLOW | OFlag::O_DIRECTORY | OFlag::O_RDONLY,
            Mode::empty(),
        )?;
    }
    let fd = openat(
        current.as_fd(),
        *file_name,
        NOFOLLOW | OFlag::O_WRONLY | OFlag::O_APPEND | OFlag::O_CREAT,
        Mode::from_bits_truncate(0o644),
    )?;
    regular(File::from(fd))
}

fn regular(file: File) -> io::Result<File> {
    if file.metadata()?.is_file() {
        Ok(file)
    } else {
        Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::symlink;

    #[test]
    fn symlinks_and_special_files_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let target = outside.path().join("target");
        std::fs::write(&target, "keep").unwrap();

        symlink(&target, dir.path().join("link")).unwrap();
        assert!(open_append(&dir.path().join("link")).is_err());
        assert!(create_new(&dir.path().join("link")).is_err());
        nix::unistd::mkfifo(&dir.path().join("fifo"), Mode::from_bits_truncate(0o600)).unwrap();
        assert!(open_append(&dir.path().join("fifo")).is_err());

        // A symlinked directory on the way, or the file itself.
        symlink(outside.path(), dir.path().join("out")).unwrap();
        assert!(open_append_beneath(dir.path(), Path::new("out/new.jsonl")).is_err());
        assert!(!outside.path().join("new.jsonl").exists());
        std::fs::create_dir(dir.path().join("real")).unwrap();
        symlink(&target, dir.path().join("real/f")).unwrap();
        assert!(open_append_beneath(dir.path(), Path::new("real/f")).is_err());
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(open_append_beneath(dir.path(), Path::new("../x")).is_err());

        use std::io::Write;
        let mut file = open_append_beneath(dir.path(), Path::new("a/b/c.jsonl")).unwrap();
        file.write_all(b"x\n").unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("a/b/c.jsonl")).unwrap(),
            "x\n"
        );
    }
}
