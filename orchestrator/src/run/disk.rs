//! How much disk a run fills, and a watch that fires when that passes its limit.
//!
//! A run fills its run directory (through `/cde/run` and `/cde/work`) and its container's
//! writable layer (anything else it writes inside the container). Its input is not counted:
//! cde put it there and the container cannot write to it.

use std::collections::HashSet;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use tokio::time::Instant;

use crate::engine::Engine;

/// How often the watch measures at most.
pub const POLL: Duration = Duration::from_secs(1);
/// A measurement that took `t` is not repeated for `SLOWDOWN * t`, so measuring a run with
/// very many files takes at most a tenth of a core.
const SLOWDOWN: u32 = 10;
const MIB: u64 = 1024 * 1024;

/// Bytes allocated under `run_dir`, its `input/` excepted. Counts allocated blocks, so a
/// sparse file counts what it really takes; does not follow symbolic links (a link counts
/// as itself, not as what it points at); counts a file with several links once; skips what
/// vanishes or cannot be read while it walks.
pub fn run_dir_usage(run_dir: &Path) -> u64 {
    let mut total = 0;
    let mut seen_links = HashSet::new();
    let mut pending: Vec<PathBuf> = vec![run_dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            if dir == run_dir && entry.file_name() == "input" {
                continue;
            }
            // `DirEntry::metadata` does not traverse symbolic links.
            let Ok(metadata) = entry.metadata() else {
                continue;
            };
            if metadata.nlink() > 1
                && !metadata.is_dir()
                && !seen_links.insert((metadata.dev(), metadata.ino()))
            {
                continue;
            }
            total += metadata.blocks() * 512;
            if metadata.is_dir() {
                pending.push(entry.path());
            }
        }
    }
    total
}

/// Measures the run's disk use about every [`POLL`] and returns, with the MiB it measured,
/// once that exceeds `limit_mb`. Never returns while the run stays below its limit.
pub async fn watch(engine: &dyn Engine, container_id: &str, run_dir: &Path, limit_mb: u64) -> u64 {
    let limit = limit_mb.saturating_mul(MIB);
    let mut layer = 0;
    let (mut next_layer, mut next_files) = (Instant::now(), Instant::now());
    let mut files = 0;
    loop {
        let now = Instant::now();
        if now >= next_layer {
            match engine.writable_layer_bytes(container_id).await {
                Ok(bytes) => layer = bytes.unwrap_or(layer),
                Err(e) => tracing::warn!("disk watch: {e}"),
            }
            next_layer = now + (now.elapsed() * SLOWDOWN).max(POLL);
        }
        let now = Instant::now();
        if now >= next_files {
            let dir = run_dir.to_path_buf();
            match tokio::task::spawn_blocking(move || run_dir_usage(&dir)).await {
                Ok(bytes) => files = bytes,
                Err(e) => tracing::warn!("disk watch of {}: {e}", run_dir.display()),
            }
            next_files = now + (now.elapsed() * SLOWDOWN).max(POLL);
        }
        let used = files + layer;
        if used > limit {
            return used / MIB;
        }
        let next = next_layer.min(next_files);
        tokio::time::sleep_until(next).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Seek, SeekFrom, Write};

    fn write(path: &Path, bytes: usize) {
        std::fs::write(path, vec![7u8; bytes]).unwrap();
    }

    #[test]
    fn counts_allocated_blocks_without_following_links_or_counting_input() {
        let outside = tempfile::tempdir().unwrap();
        let big = outside.path().join("big");
        write(&big, 8 * MIB as usize);
        let run = tempfile::tempdir().unwrap();
        let empty = run_dir_usage(run.path());
        std::fs::create_dir_all(run.path().join("work/deep/er")).unwrap();
        std::fs::create_dir(run.path().join("input")).unwrap();
        write(&run.path().join("input/input.jsonl"), 4 * MIB as usize);
        let base = run_dir_usage(run.path());
        assert!(base - empty < 64 * 1024, "directories only: {base}");

        // A symbolic link to a big outside file, or to an outside directory, is not followed.
        std::os::unix::fs::symlink(&big, run.path().join("work/link")).unwrap();
        std::os::unix::fs::symlink(outside.path(), run.path().join("work/dirlink")).unwrap();
        assert!(run_dir_usage(run.path()) - base < 64 * 1024);

        // A sparse file of 1 GiB with 1 MiB written counts about 1 MiB.
        let mut sparse = std::fs::File::create(run.path().join("work/deep/er/sparse")).unwrap();
        sparse.seek(SeekFrom::Start(1024 * MIB)).unwrap();
        sparse.write_all(&vec![1u8; MIB as usize]).unwrap();
        sparse.sync_all().unwrap();
        let with_sparse = run_dir_usage(run.path());
        assert!(
            (MIB..2 * MIB).contains(&(with_sparse - base)),
            "sparse file counted {}",
            with_sparse - base
        );

        // Real data counts, once however many names it has.
        write(&run.path().join("work/data"), 3 * MIB as usize);
        std::fs::hard_link(run.path().join("work/data"), run.path().join("work/again")).unwrap();
        let with_data = run_dir_usage(run.path());
        assert!(
            (3 * MIB..3 * MIB + 256 * 1024).contains(&(with_data - with_sparse)),
            "3 MiB file counted {}",
            with_data - with_sparse
        );
    }

    #[test]
    fn a_missing_directory_is_empty() {
        assert_eq!(run_dir_usage(Path::new("/nonexistent/cde/run")), 0);
    }
}
