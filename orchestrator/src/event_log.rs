//! A listener's event log: events appended durably, read back in order from an offset.
//!
//! - An append returns only once its events are written and `fdatasync`ed. Appends that
//!   arrive while a sync is under way wait for the next one, which then serves them all
//!   (group commit): one sync per batch of concurrent requests, not per request.
//! - An append is all or nothing: if the write or the sync fails, the file is cut back to
//!   where it was and every append of that group fails.
//! - An event may carry an id; an id already in the log makes that event a duplicate,
//!   counted and not written again (a retried delivery).
//! - The file is a sequence of frames, `length (u32 LE) · CRC-32 of the payload (u32 LE) ·
//!   payload` (the payload is `{"id": ..., "at": ms since the epoch, "event": ...}`). On
//!   open, a torn or corrupt tail (a crash in the middle of a write) is cut off at the last
//!   whole frame.
//! - Readers see only what has been synced.
//! - What was consumed (everything before an offset) is forgotten: its disk space is given
//!   back (a hole punched, so offsets stay as they are), its ids are no longer checked
//!   after the log is opened again.
//! - A log has a size limit on what is not yet consumed; an append that would pass it is
//!   refused whole.
//! - One process at a time has a log open (an exclusive lock on the file).
//! - Frames are written over zeros written (and synced) ahead of them, a MiB at a time,
//!   so that a sync flushes data only, not the file's size and block map: about half the
//!   time of a sync after an append. Recovery stops at the zeros (a zero length with a
//!   zero CRC is no frame).

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use thiserror::Error;
use tokio::sync::{mpsc, oneshot};

const HEADER: usize = 8;
/// No frame is larger: a length above it is a torn or corrupt header, not an event.
pub const MAX_EVENT_BYTES: usize = 16 << 20;

#[derive(Debug, Error)]
pub enum EventLogError {
    #[error("{op} the event log {}: {source}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the event log {} is full ({limit} bytes): nothing was written", path.display())]
    Full { path: PathBuf, limit: u64 },
    #[error("an event of {size} bytes is over the limit of {MAX_EVENT_BYTES}")]
    TooLarge { size: usize },
    #[error("the event log {} is closed", path.display())]
    Closed { path: PathBuf },
    #[error("the event log {} takes no appends until it is opened again: {reason}", path.display())]
    Broken { path: PathBuf, reason: String },
    #[error("the event log {} is open in another process (a cde server receiving its events)", path.display())]
    InUse { path: PathBuf },
}

/// One event to append: its JSON text and, optionally, the id that deduplicates it.
#[derive(Debug, Clone)]
pub struct Event {
    pub id: Option<String>,
    pub json: Box<RawValue>,
}

/// What an append did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Appended {
    pub written: usize,
    pub duplicates: usize,
}

/// An event read back, with the offset just past it.
#[derive(Debug, Clone, PartialEq)]
pub struct Stored {
    pub id: Option<String>,
    /// When it was appended, in milliseconds since the Unix epoch.
    pub at: i64,
    pub event: serde_json::Value,
    pub next: u64,
}

#[derive(Serialize)]
struct FrameOut<'a> {
    id: Option<&'a str>,
    at: i64,
    event: &'a RawValue,
}

#[derive(Deserialize)]
struct FrameIn {
    id: Option<String>,
    at: i64,
    event: serde_json::Value,
}

/// What the log has recorded, for counters.
#[derive(Debug, Default)]
pub struct Counters {
    /// Bytes synced: readers read up to here.
    pub durable_end: AtomicU64,
    /// Everything before is consumed.
    pub start: AtomicU64,
    /// Events between where the log was opened (its `start` then) and `durable_end`.
    pub frames: AtomicU64,
    /// The most bytes between `start` and the end.
    pub limit: AtomicU64,
    /// Since the log was opened.
    pub written: AtomicU64,
    pub duplicates: AtomicU64,
    pub syncs: AtomicU64,
}

/// An event framed by the appending task, so that the writer only copies bytes.
struct Framed {
    id: Option<String>,
    bytes: Vec<u8>,
}

struct Append {
    events: Vec<Framed>,
    done: oneshot::Sender<Result<Appended, EventLogError>>,
}

/// A handle on one log; clones share it. The writing is done by a thread of its own.
#[derive(Clone)]
pub struct EventLog {
    path: Arc<PathBuf>,
    appends: mpsc::UnboundedSender<Append>,
    counters: Arc<Counters>,
    _lock: Arc<File>,
}

impl EventLog {
    /// Opens (or creates) the log at `path`, consumed up to `start`, cutting a torn tail,
    /// with `limit` unconsumed bytes at most.
    pub fn open(path: &Path, limit: u64, start: u64) -> Result<Self, EventLogError> {
        let io = |op| io_error(op, path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(io("creating the directory of"))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io("opening"))?;
        // On a descriptor of its own, held by the handles: the lock goes with the last one.
        let lock = File::open(path).map_err(io("opening"))?;
        lock.try_lock().map_err(|e| match e {
            std::fs::TryLockError::WouldBlock => EventLogError::InUse {
                path: path.to_owned(),
            },
            std::fs::TryLockError::Error(e) => io("locking")(e),
        })?;
        let len = file.metadata().map_err(io("reading"))?.len();
        if len < start {
            // A log removed by hand: new events go where the consumed ones ended.
            file.set_len(start).map_err(io("extending"))?;
        }
        let recovered = recover(&mut file, start).map_err(io("reading"))?;
        if recovered.end < len {
            file.set_len(recovered.end)
                .map_err(io("cutting the torn tail of"))?;
            file.sync_data().map_err(io("syncing"))?;
        }
        let (end, ids) = (recovered.end, recovered.ids);
        let counters = Arc::new(Counters::default());
        counters.durable_end.store(end, Ordering::Release);
        counters.start.store(start, Ordering::Release);
        counters.limit.store(limit, Ordering::Release);
        counters.frames.store(recovered.frames, Ordering::Release);
        let (appends, received) = mpsc::unbounded_channel();
        let writer = Writer {
            path: path.to_owned(),
            file,
            end,
            zeroed: end,
            ids,
            counters: counters.clone(),
            broken: None,
        };
        std::thread::Builder::new()
            .name("cde-event-log".into())
            .spawn(move || writer.run(received))
            .map_err(io("starting the writer of"))?;
        Ok(Self {
            path: Arc::new(path.to_owned()),
            appends,
            counters,
            _lock: Arc::new(lock),
        })
    }

    /// Appends `events` durably; returns once they are synced (or refused).
    pub async fn append(&self, events: Vec<Event>) -> Result<Appended, EventLogError> {
        if let Some(event) = events.iter().find(|e| e.json.get().len() > MAX_EVENT_BYTES) {
            return Err(EventLogError::TooLarge {
                size: event.json.get().len(),
            });
        }
        let closed = || EventLogError::Closed {
            path: self.path.to_path_buf(),
        };
        let at = chrono::Utc::now().timestamp_millis();
        let events = events
            .into_iter()
            .map(|event| Framed {
                bytes: frame(&event, at),
                id: event.id,
            })
            .collect();
        let (done, answer) = oneshot::channel();
        self.appends
            .send(Append { events, done })
            .map_err(|_| closed())?;
        answer.await.map_err(|_| closed())?
    }

    /// At most `max` events from `offset` (0, or a `next` read before), synced ones only.
    pub fn read(&self, offset: u64, max: usize) -> Result<Vec<Stored>, EventLogError> {
        let io = |op| io_error(op, &self.path);
        let end = self.durable_end();
        let mut file = File::open(&*self.path).map_err(io("opening"))?;
        file.seek(SeekFrom::Start(offset)).map_err(io("reading"))?;
        let mut reader = BufReader::new(file.take(end.saturating_sub(offset)));
        let mut out = Vec::new();
        let mut at = offset;
        while out.len() < max {
            let Some(payload) = next_frame(&mut reader).map_err(io("reading"))? else {
                break;
            };
            at += (HEADER + payload.len()) as u64;
            let frame: FrameIn = serde_json::from_slice(&payload)
                .map_err(|e| io("reading")(io::Error::new(io::ErrorKind::InvalidData, e)))?;
            out.push(Stored {
                id: frame.id,
                at: frame.at,
                event: frame.event,
                next: at,
            });
        }
        Ok(out)
    }

    /// The offset past the last synced event.
    pub fn durable_end(&self) -> u64 {
        self.counters.durable_end.load(Ordering::Acquire)
    }

    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// Changes the most unconsumed bytes the log keeps, for appends from now on.
    pub fn set_limit(&self, limit: u64) {
        self.counters.limit.store(limit, Ordering::Release);
    }

    /// When the first event from `offset` was appended (ms since the epoch).
    pub fn appended_at(&self, offset: u64) -> Result<Option<i64>, EventLogError> {
        Ok(self.read(offset, 1)?.first().map(|stored| stored.at))
    }

    /// Marks everything before `offset` (the `next` of an event read) as consumed, and
    /// gives back the disk space of whole blocks before it. An offset at or before one
    /// consumed before changes nothing.
    pub fn consume(&self, offset: u64) -> Result<(), EventLogError> {
        let previous = self.counters.start.fetch_max(offset, Ordering::AcqRel);
        if offset <= previous {
            return Ok(());
        }
        let hole = offset & !(PUNCH_BLOCK - 1);
        if hole > 0 {
            let file = OpenOptions::new()
                .write(true)
                .open(&*self.path)
                .map_err(io_error("opening", &self.path))?;
            use rustix::fs::{fallocate, FallocateFlags};
            fallocate(
                &file,
                FallocateFlags::PUNCH_HOLE | FallocateFlags::KEEP_SIZE,
                0,
                hole,
            )
            .map_err(|e| io_error("giving back the consumed space of", &self.path)(e.into()))?;
        }
        Ok(())
    }
}

/// Zeros are written ahead of the frames in steps of this many bytes.
const ZEROED_AHEAD: u64 = 1 << 20;

/// Consumed space is given back in whole blocks of this size.
const PUNCH_BLOCK: u64 = 4096;

/// Turns an I/O error of `op` on the log at `path` into an [`EventLogError`].
fn io_error(op: &'static str, path: &Path) -> impl FnOnce(io::Error) -> EventLogError {
    let path = path.to_owned();
    move |source| EventLogError::Io { op, path, source }
}

/// What the whole frames of a log from `start` hold.
struct Recovered {
    end: u64,
    frames: u64,
    ids: HashSet<String>,
}

fn recover(file: &mut File, start: u64) -> io::Result<Recovered> {
    file.seek(SeekFrom::Start(start))?;
    let mut reader = BufReader::new(&mut *file);
    let mut recovered = Recovered {
        end: start,
        frames: 0,
        ids: HashSet::new(),
    };
    while let Some(payload) = next_frame(&mut reader)? {
        match serde_json::from_slice::<FrameIn>(&payload) {
            Ok(frame) => {
                recovered.ids.extend(frame.id);
                recovered.end += (HEADER + payload.len()) as u64;
                recovered.frames += 1;
            }
            Err(_) => break,
        }
    }
    Ok(recovered)
}

/// The next whole frame's payload; `None` at the end or at a torn or corrupt frame.
fn next_frame(reader: &mut impl Read) -> io::Result<Option<Vec<u8>>> {
    let mut header = [0u8; HEADER];
    if !read_all(reader, &mut header)? {
        return Ok(None);
    }
    let len = u32::from_le_bytes(header[..4].try_into().expect("4 bytes")) as usize;
    let crc = u32::from_le_bytes(header[4..].try_into().expect("4 bytes"));
    if len > MAX_EVENT_BYTES + 1024 {
        return Ok(None);
    }
    let mut payload = vec![0u8; len];
    if !read_all(reader, &mut payload)? || crc32fast::hash(&payload) != crc {
        return Ok(None);
    }
    Ok(Some(payload))
}

/// Fills `buf`; `false` when the input ends first.
fn read_all(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<bool> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => return Ok(false),
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

struct Writer {
    path: PathBuf,
    file: File,
    end: u64,
    /// The file's length: zeros from `end` to here.
    zeroed: u64,
    ids: HashSet<String>,
    counters: Arc<Counters>,
    /// Why the log takes no more appends until it is opened again.
    broken: Option<String>,
}

impl Writer {
    fn run(mut self, mut received: mpsc::UnboundedReceiver<Append>) {
        while let Some(first) = received.blocking_recv() {
            let mut group = vec![first];
            while let Ok(more) = received.try_recv() {
                group.push(more);
            }
            self.commit(group);
        }
    }

    /// Writes every append of `group` that fits, syncs once, then answers each.
    fn commit(&mut self, group: Vec<Append>) {
        let start = self.end;
        let consumed = self.counters.start.load(Ordering::Acquire);
        let limit = self.counters.limit.load(Ordering::Acquire);
        let mut buffer = Vec::new();
        let mut new_ids = HashSet::new();
        let mut answers = Vec::with_capacity(group.len());
        if let Some(broken) = &self.broken {
            for append in group {
                let _ = append.done.send(Err(EventLogError::Broken {
                    path: self.path.clone(),
                    reason: broken.clone(),
                }));
            }
            return;
        }
        for append in group {
            let mark = buffer.len();
            let mut ids_of_this = Vec::new();
            let mut appended = Appended::default();
            for event in &append.events {
                if let Some(id) = &event.id {
                    if self.ids.contains(id) || !new_ids.insert(id.clone()) {
                        appended.duplicates += 1;
                        continue;
                    }
                    ids_of_this.push(id.clone());
                }
                buffer.extend_from_slice(&event.bytes);
                appended.written += 1;
            }
            if start + buffer.len() as u64 - consumed > limit {
                // This append would pass the limit: refused whole, the others go on.
                buffer.truncate(mark);
                for id in ids_of_this {
                    new_ids.remove(&id);
                }
                let full = EventLogError::Full {
                    path: self.path.clone(),
                    limit,
                };
                let _ = append.done.send(Err(full));
                continue;
            }
            answers.push((append.done, appended));
        }
        if !buffer.is_empty() {
            if let Err((op, source)) = self.write_and_sync(&buffer) {
                // Nothing of the group is kept. If even the cut fails, later appends would
                // land past the torn bytes: the log refuses them until it is opened again,
                // which cuts the tail.
                self.zeroed = start;
                if let Err(e) = self.file.set_len(start) {
                    self.broken = Some(format!("a failed write could not be cut back: {e}"));
                }
                let kind = source.kind();
                for (done, _) in answers {
                    let _ = done.send(Err(EventLogError::Io {
                        op,
                        path: self.path.clone(),
                        source: io::Error::new(kind, source.to_string()),
                    }));
                }
                return;
            }
            self.end = start + buffer.len() as u64;
            self.ids.extend(new_ids);
            let written: usize = answers.iter().map(|(_, appended)| appended.written).sum();
            self.counters
                .frames
                .fetch_add(written as u64, Ordering::AcqRel);
            self.counters.durable_end.store(self.end, Ordering::Release);
        }
        for (done, appended) in answers {
            self.count(appended);
            let _ = done.send(Ok(appended));
        }
    }

    fn write_and_sync(&mut self, buffer: &[u8]) -> Result<(), (&'static str, io::Error)> {
        use std::os::unix::fs::FileExt;
        let past = self.end + buffer.len() as u64;
        if past > self.zeroed {
            let zeroed = past.next_multiple_of(ZEROED_AHEAD);
            let zeros = vec![0u8; (zeroed - self.zeroed) as usize];
            self.file
                .write_all_at(&zeros, self.zeroed)
                .map_err(|e| ("zeroing ahead in", e))?;
            self.zeroed = zeroed;
        }
        self.file
            .write_all_at(buffer, self.end)
            .map_err(|e| ("appending to", e))?;
        self.file.sync_data().map_err(|e| ("syncing", e))?;
        self.counters.syncs.fetch_add(1, Ordering::Relaxed);
        Ok(())
    }

    fn count(&self, appended: Appended) {
        self.counters
            .written
            .fetch_add(appended.written as u64, Ordering::Relaxed);
        self.counters
            .duplicates
            .fetch_add(appended.duplicates as u64, Ordering::Relaxed);
    }
}

fn frame(event: &Event, at: i64) -> Vec<u8> {
    let mut bytes = vec![0u8; HEADER];
    serde_json::to_writer(
        &mut bytes,
        &FrameOut {
            id: event.id.as_deref(),
            at,
            event: &event.json,
        },
    )
    .expect("an id and a JSON text serialize");
    let payload = &bytes[HEADER..];
    let (len, crc) = (payload.len() as u32, crc32fast::hash(payload));
    bytes[..4].copy_from_slice(&len.to_le_bytes());
    bytes[4..HEADER].copy_from_slice(&crc.to_le_bytes());
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn event(id: Option<&str>, value: serde_json::Value) -> Event {
        Event {
            id: id.map(Into::into),
            json: RawValue::from_string(value.to_string()).unwrap(),
        }
    }

    fn events(log: &EventLog) -> Vec<serde_json::Value> {
        log.read(0, usize::MAX)
            .unwrap()
            .into_iter()
            .map(|s| s.event)
            .collect()
    }

    #[tokio::test]
    async fn events_come_back_in_order_from_any_offset() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("a/events.log"), 1 << 20, 0).unwrap();
        let appended = log
            .append(vec![event(None, json!({"n": 1})), event(None, json!([2]))])
            .await
            .unwrap();
        assert_eq!(
            appended,
            Appended {
                written: 2,
                duplicates: 0
            }
        );
        log.append(vec![event(Some("x"), json!("three"))])
            .await
            .unwrap();
        let all = log.read(0, 10).unwrap();
        assert_eq!(
            all.iter().map(|s| &s.event).collect::<Vec<_>>(),
            [&json!({"n": 1}), &json!([2]), &json!("three")]
        );
        assert_eq!(all[2].id.as_deref(), Some("x"));
        assert_eq!(all[2].next, log.durable_end());
        let rest = log.read(all[0].next, 1).unwrap();
        assert_eq!(rest.len(), 1);
        assert_eq!(rest[0].event, json!([2]));
        assert!(log.read(log.durable_end(), 10).unwrap().is_empty());
    }

    #[tokio::test]
    async fn an_id_seen_before_is_a_duplicate_even_after_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let log = EventLog::open(&path, 1 << 20, 0).unwrap();
        let first = log
            .append(vec![
                event(Some("a"), json!(1)),
                event(Some("a"), json!(1)),
                event(Some("b"), json!(2)),
            ])
            .await
            .unwrap();
        assert_eq!(
            first,
            Appended {
                written: 2,
                duplicates: 1
            }
        );
        drop(log);
        let log = EventLog::open(&path, 1 << 20, 0).unwrap();
        let again = log
            .append(vec![event(Some("b"), json!(2)), event(Some("c"), json!(3))])
            .await
            .unwrap();
        assert_eq!(
            again,
            Appended {
                written: 1,
                duplicates: 1
            }
        );
        assert_eq!(events(&log), [json!(1), json!(2), json!(3)]);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
    async fn concurrent_appends_are_all_kept_once_with_fewer_syncs() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("events.log"), 1 << 30, 0).unwrap();
        let tasks: Vec<_> = (0..8)
            .map(|client| {
                let log = log.clone();
                tokio::spawn(async move {
                    for i in 0..100 {
                        let id = format!("{client}-{i}");
                        let done = log
                            .append(vec![event(Some(&id), json!({"client": client, "i": i}))])
                            .await
                            .unwrap();
                        assert_eq!(done.written, 1);
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let stored = log.read(0, usize::MAX).unwrap();
        let ids: HashSet<String> = stored.iter().filter_map(|s| s.id.clone()).collect();
        assert_eq!((stored.len(), ids.len()), (800, 800));
        assert_eq!(log.counters().written.load(Ordering::Relaxed), 800);
    }

    #[test]
    fn the_appends_waiting_together_share_one_sync() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let counters = Arc::new(Counters::default());
        counters.limit.store(1 << 20, Ordering::Relaxed);
        let mut writer = Writer {
            path: path.clone(),
            file: OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .open(&path)
                .unwrap(),
            end: 0,
            zeroed: 0,
            ids: HashSet::new(),
            counters: counters.clone(),
            broken: None,
        };
        let (group, answers): (Vec<_>, Vec<_>) = (0..8)
            .map(|i| {
                let (done, answer) = oneshot::channel();
                let event = event(Some(&i.to_string()), json!(i));
                let append = Append {
                    events: vec![Framed {
                        bytes: frame(&event, 0),
                        id: event.id,
                    }],
                    done,
                };
                (append, answer)
            })
            .unzip();
        writer.commit(group);
        for mut answer in answers {
            assert_eq!(answer.try_recv().unwrap().unwrap().written, 1);
        }
        assert_eq!(counters.syncs.load(Ordering::Relaxed), 1);
        assert_eq!(counters.durable_end.load(Ordering::Relaxed), writer.end);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), ZEROED_AHEAD);
    }

    #[tokio::test]
    async fn a_torn_tail_is_cut_on_open_and_appends_go_on_after_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let log = EventLog::open(&path, 1 << 20, 0).unwrap();
        log.append(vec![event(None, json!(1)), event(None, json!(2))])
            .await
            .unwrap();
        let whole = log.durable_end();
        drop(log);
        // A crash in the middle of a frame: its header says 100 bytes, 5 made it.
        use std::os::unix::fs::FileExt;
        let file = OpenOptions::new().write(true).open(&path).unwrap();
        let torn = [
            &100u32.to_le_bytes()[..],
            &[0, 0, 0, 0, b'{', b'"', b'i', b'd', b'"'],
        ];
        file.write_all_at(&torn.concat(), whole).unwrap();
        drop(file);
        let log = EventLog::open(&path, 1 << 20, 0).unwrap();
        assert_eq!(log.durable_end(), whole);
        assert_eq!(std::fs::metadata(&path).unwrap().len(), whole);
        log.append(vec![event(None, json!(3))]).await.unwrap();
        assert_eq!(events(&log), [json!(1), json!(2), json!(3)]);
    }

    #[tokio::test]
    async fn a_corrupt_frame_ends_the_log_where_it_starts() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let log = EventLog::open(&path, 1 << 20, 0).unwrap();
        log.append(vec![event(Some("a"), json!("first"))])
            .await
            .unwrap();
        let first = log.durable_end();
        log.append(vec![event(Some("b"), json!("second"))])
            .await
            .unwrap();
        let second = log.durable_end() as usize;
        drop(log);
        let mut bytes = std::fs::read(&path).unwrap();
        let last = second - 3;
        bytes[last] ^= 0x20;
        std::fs::write(&path, bytes).unwrap();
        let log = EventLog::open(&path, 1 << 20, 0).unwrap();
        assert_eq!(log.durable_end(), first);
        assert_eq!(events(&log), [json!("first")]);
        // The cut event's id is not remembered: its redelivery is written.
        let redelivered = log
            .append(vec![event(Some("b"), json!("second"))])
            .await
            .unwrap();
        assert_eq!(redelivered.written, 1);
    }

    #[tokio::test]
    async fn an_append_past_the_limit_is_refused_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let log = EventLog::open(&path, 200, 0).unwrap();
        log.append(vec![event(Some("a"), json!("x".repeat(50)))])
            .await
            .unwrap();
        let before = std::fs::read(&path).unwrap();
        let refused = log
            .append(vec![
                event(Some("b"), json!("small")),
                event(Some("c"), json!("y".repeat(150))),
            ])
            .await;
        assert!(
            matches!(refused, Err(EventLogError::Full { limit: 200, .. })),
            "{refused:?}"
        );
        assert_eq!(std::fs::read(&path).unwrap(), before);
        // Its ids were not taken: a smaller delivery of `b` is written.
        let later = log
            .append(vec![event(Some("b"), json!("small"))])
            .await
            .unwrap();
        assert_eq!(later.written, 1);
    }

    #[tokio::test]
    async fn consumed_events_give_back_their_space_and_their_room_under_the_limit() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.log");
        let log = EventLog::open(&path, 64 << 10, 0).unwrap();
        let big = |n: u32| {
            event(
                Some(&n.to_string()),
                json!({"n": n, "pad": "x".repeat(20_000)}),
            )
        };
        log.append(vec![big(0), big(1)]).await.unwrap();
        assert!(matches!(
            log.append(vec![big(2), big(3)]).await,
            Err(EventLogError::Full { .. })
        ));
        let consumed = log.read(0, 2).unwrap()[1].next;
        let blocks = std::fs::metadata(&path).unwrap().blocks();
        log.consume(consumed).unwrap();
        assert!(std::fs::metadata(&path).unwrap().blocks() < blocks);
        assert_eq!(log.appended_at(consumed).unwrap(), None);
        // Room again under the limit, and reads from the offset as before.
        log.append(vec![big(2), big(3)]).await.unwrap();
        let rest = log.read(consumed, 10).unwrap();
        assert_eq!(
            rest.iter()
                .map(|s| s.event["n"].clone())
                .collect::<Vec<_>>(),
            [json!(2), json!(3)]
        );
        drop(log);
        let log = EventLog::open(&path, 64 << 10, consumed).unwrap();
        assert_eq!(log.counters().frames.load(Ordering::Relaxed), 2);
        assert!(log.appended_at(consumed).unwrap().is_some());
    }
}
