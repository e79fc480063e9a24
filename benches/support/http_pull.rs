//! Shared parts of the HTTP connector benches (`http_source`, `http_memory`): a mock API
//! on 127.0.0.1 answering from prebuilt pages of Mailchimp-like members, the real
//! Container API in process, the engine as a child process (`cde http-connector`) with its
//! peak memory and CPU time, and a watchdog that ends the bench, its children and its
//! temporary directories after a time limit.
//!
//! Included by each bench as `#[path = "support/http_pull.rs"] mod http_pull;` so that
//! `support/mod.rs`, which the run benches use, stays as it is.
#![allow(dead_code)] // each bench uses a different part

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use axum::extract::{Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use serde_json::{json, Value};
use tokio::sync::oneshot;

/// Records per page, the `count` every client asks for.
pub const PAGE_SIZE: usize = 1000;
/// The list the path names (`/3.0/lists/{listId}/members`).
pub const LIST_ID: &str = "bench";
/// The path of the members endpoint.
pub fn members_path() -> String {
    format!("/3.0/lists/{LIST_ID}/members")
}

/// The Mailchimp members spec of the engine's tests, adapted: pages of 1000, no schedule.
const MAILCHIMP: &str = include_str!("../../http-connector/tests/fixtures/mailchimp-members.json");

/// The AEP spec cde pulls with: `$.members` under the wrapper `member`, OFFSET pagination
/// with `count=1000` and `offset`, `_links`, `total_items` and `list_id` skipped.
pub fn spec() -> Value {
    let mut spec: Value =
        serde_json::from_str(&format!("{{{MAILCHIMP}}}")).expect("the fixture is a fragment");
    let attributes = &mut spec["sourceSpec"]["attributes"];
    attributes["paginationParams"]["limitValue"] = json!(PAGE_SIZE.to_string());
    attributes
        .as_object_mut()
        .expect("attributes is an object")
        .remove("scheduleParams");
    spec
}

/// The definition file of `cde http-connector --definition FILE`.
pub fn definition() -> String {
    json!({"dialect": "aep", "spec": spec(), "auth": {"type": "none"}, "kind": "data-source"})
        .to_string()
}

/// One member, ~10 top-level fields with two nested objects (~450 bytes of JSON).
pub fn member(i: usize) -> Value {
    const STATUS: [&str; 4] = ["subscribed", "unsubscribed", "cleaned", "pending"];
    let at = |secs: i64| {
        chrono::DateTime::from_timestamp(secs, 0)
            .expect("a valid timestamp")
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    };
    let i64_of = i as i64;
    json!({
        "id": format!("{:032x}", (i as u128).wrapping_mul(0x9e37_79b9_7f4a_7c15_f39c_c060_5ced_c834)),
        "email_address": format!("user{i}@example.com"),
        "full_name": format!("User Number {i}"),
        "status": STATUS[i % STATUS.len()],
        "member_rating": i % 5 + 1,
        "vip": i.is_multiple_of(7),
        "merge_fields": {"FNAME": "User", "LNAME": format!("Number{i}"), "PHONE": format!("+1-555-{:07}", i % 10_000_000)},
        "location": {"latitude": 40.0 + (i % 1000) as f64 / 1000.0, "longitude": -74.0 - (i % 997) as f64 / 997.0, "country_code": "US", "timezone": "America/New_York"},
        "timestamp_signup": at(1_600_000_000 + i64_of * 37),
        "last_changed": at(1_700_000_000 + i64_of * 11),
    })
}

/// The API's answers, built once: `total` members in pages of [`PAGE_SIZE`], and the
/// empty page past the end.
pub struct Pages {
    pub total: usize,
    pages: Vec<Bytes>,
    empty: Bytes,
    pub bytes: usize,
}

impl Pages {
    pub fn build(total: usize) -> Self {
        let page = |members: Vec<Value>| {
            Bytes::from(
                serde_json::to_vec(&json!({
                    "members": members,
                    "list_id": LIST_ID,
                    "total_items": total,
                    "_links": [{"rel": "self", "href": "https://example.test/3.0/lists/bench/members", "method": "GET"}],
                }))
                .expect("a page serializes"),
            )
        };
        let pages: Vec<Bytes> = (0..total.div_ceil(PAGE_SIZE))
            .map(|p| {
                page(
                    (p * PAGE_SIZE..((p + 1) * PAGE_SIZE).min(total))
                        .map(member)
                        .collect(),
                )
            })
            .collect();
        let bytes = pages.iter().map(Bytes::len).sum();
        Self {
            total,
            pages,
            empty: page(Vec::new()),
            bytes,
        }
    }

    /// The answer to `offset` (a multiple of the page size; past the end: no members).
    fn at(&self, offset: usize) -> Option<Bytes> {
        if !offset.is_multiple_of(PAGE_SIZE) {
            return None;
        }
        Some(
            self.pages
                .get(offset / PAGE_SIZE)
                .unwrap_or(&self.empty)
                .clone(),
        )
    }
}

/// What the mock saw since the last [`MockApi::take`].
#[derive(Debug, Clone, Copy, Default)]
pub struct Seen {
    pub requests: u64,
    pub refused: u64,
    pub first: Option<Instant>,
    pub last: Option<Instant>,
}

#[derive(Clone)]
struct MockState {
    pages: Arc<RwLock<Arc<Pages>>>,
    seen: Arc<Mutex<Seen>>,
}

/// The members API on 127.0.0.1, zero latency: `GET /3.0/lists/bench/members?count=1000&offset=N`.
pub struct MockApi {
    pub url: String,
    state: MockState,
    stop: Option<oneshot::Sender<()>>,
}

impl MockApi {
    pub async fn start(pages: Arc<Pages>) -> Self {
        let state = MockState {
            pages: Arc::new(RwLock::new(pages)),
            seen: Arc::default(),
        };
        let app = axum::Router::new()
            .route(&members_path(), axum::routing::get(members))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("binding 127.0.0.1:0");
        let url = format!("http://{}", listener.local_addr().expect("an address"));
        let (stop, stopped) = oneshot::channel::<()>();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async {
                    let _ = stopped.await;
                })
                .await
                .expect("the mock API serves");
        });
        Self {
            url,
            state,
            stop: Some(stop),
        }
    }

    /// Serves `pages` from now on.
    pub fn serve(&self, pages: Arc<Pages>) {
        *self.state.pages.write().unwrap() = pages;
    }

    /// What was seen since the last call, and starts counting anew.
    pub fn take(&self) -> Seen {
        std::mem::take(&mut *self.state.seen.lock().unwrap())
    }
}

impl Drop for MockApi {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn members(
    State(state): State<MockState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let now = Instant::now();
    let offset = query.get("offset").map_or(Some(0), |o| o.parse().ok());
    let count_ok = query
        .get("count")
        .is_some_and(|c| c == &PAGE_SIZE.to_string());
    let page = match offset {
        Some(offset) if count_ok => state.pages.read().unwrap().at(offset),
        _ => None,
    };
    {
        let mut seen = state.seen.lock().unwrap();
        seen.requests += 1;
        seen.first.get_or_insert(now);
        seen.last = Some(now);
        if page.is_none() {
            seen.refused += 1;
        }
    }
    match page {
        Some(body) => ([(header::CONTENT_TYPE, "application/json")], body).into_response(),
        None => (
            StatusCode::BAD_REQUEST,
            "expected count=1000 and offset a multiple of 1000",
        )
            .into_response(),
    }
}

/// The real Container API of one run, in process, writing `<dir>/run/output/output.jsonl`.
pub struct ContainerApi {
    pub url: String,
    pub run_dir: PathBuf,
    stop: oneshot::Sender<()>,
    handle: tokio::task::JoinHandle<anyhow::Result<container_api::Summary>>,
}

impl ContainerApi {
    pub async fn start(dir: &Path) -> Self {
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&run_dir).expect("creating the run directory");
        let mut config = container_api::Config::new(&run_dir);
        config.listen = "127.0.0.1:0".parse().expect("an address");
        let server = container_api::Server::bind(config)
            .await
            .expect("the Container API binds");
        let url = format!("http://{}", server.local_addr().expect("an address"));
        let (stop, stopped) = oneshot::channel::<()>();
        let handle = tokio::spawn(server.run(async {
            let _ = stopped.await;
        }));
        Self {
            url,
            run_dir,
            stop,
            handle,
        }
    }

    /// Stops the server (closing its files) and counts the lines of `output/output.jsonl`.
    pub async fn finish(self) -> (u64, container_api::Summary) {
        let _ = self.stop.send(());
        let summary = tokio::time::timeout(Duration::from_secs(60), self.handle)
            .await
            .expect("the Container API stops within 60 s")
            .expect("the Container API task")
            .expect("the Container API ran");
        let lines = count_lines(&self.run_dir.join("output").join("output.jsonl"));
        (lines, summary)
    }
}

pub fn count_lines(path: &Path) -> u64 {
    use std::io::Read;
    let Ok(mut file) = std::fs::File::open(path) else {
        return 0;
    };
    let mut buffer = vec![0u8; 1 << 20];
    let mut lines = 0u64;
    loop {
        match file.read(&mut buffer) {
            Ok(0) => return lines,
            Ok(n) => lines += buffer[..n].iter().filter(|b| **b == b'\n').count() as u64,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading {}: {e}", path.display()),
        }
    }
}

/// The cde executable of this build.
pub fn cde() -> &'static str {
    env!("CARGO_BIN_EXE_cde")
}

/// The target directory (`CARGO_TARGET_DIR`), from where cargo put the cde executable.
pub fn target_dir() -> PathBuf {
    let profile = Path::new(cde()).parent().expect("the profile directory");
    let mut dir = profile.parent().expect("a target directory").to_path_buf();
    // `target/<triple>/release/cde` when a build target is configured.
    if let Some(up) = dir.parent() {
        if up.join("CACHEDIR.TAG").exists() {
            dir = up.to_path_buf();
        }
    }
    dir
}

/// `cde http-connector --definition FILE` pulling from `api` into `container`; only the
/// variables it needs are passed. `CDE_BENCH_ENGINE_WRAPPER` (say `perf record -o
/// /tmp/engine.data --`) runs the engine under another program, to profile it; the times
/// and memory reported are then the wrapper's.
pub fn engine_command(definition: &Path, api: &str, container: &str) -> Command {
    let wrapper = std::env::var("CDE_BENCH_ENGINE_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut command = Command::new(program);
            command.args(words).arg(cde());
            command.env_clear().env("PATH", "/usr/bin:/bin");
            command
        }
        None => {
            let mut command = Command::new(cde());
            command.env_clear();
            command
        }
    };
    command
        .args(["http-connector", "--definition"])
        .arg(definition)
        .env("CONTAINER_API_URL", container)
        .env("base_url", api)
        .env("listId", LIST_ID)
        .stdin(Stdio::null());
    command
}

/// How a child ended, with what the kernel accounted for it.
#[derive(Debug, Clone, Copy)]
pub struct Ended {
    pub status: ExitStatus,
    pub started: Instant,
    pub wall: Duration,
    /// `ru_maxrss`: the peak resident set, in KiB.
    pub max_rss_kib: u64,
    /// The highest `VmHWM` read from `/proc/<pid>/status` while it ran (0: never read).
    pub sampled_hwm_kib: u64,
    pub samples: u64,
    pub user: Duration,
    pub system: Duration,
}

impl Ended {
    /// The sampled `VmHWM` (reset by exec); `ru_maxrss` only when nothing was sampled, as
    /// Linux carries into it the pre-exec copy of this (large) bench process.
    pub fn peak_mib(&self) -> f64 {
        let kib = if self.samples > 0 {
            self.sampled_hwm_kib
        } else {
            self.max_rss_kib
        };
        kib as f64 / 1024.0
    }

    pub fn cpu(&self) -> Duration {
        self.user + self.system
    }
}

/// Runs `command` in its own process group until it exits; with `sample`, reads its
/// `VmHWM` every 5 ms meanwhile (a one-page run lasts less than 100 ms). `on_spawn` gets the child first (its pipes, say).
pub fn run_child(
    mut command: std::process::Command,
    sample: bool,
    on_spawn: impl FnOnce(&mut std::process::Child),
) -> Ended {
    use std::os::unix::process::CommandExt;
    command.process_group(0);
    let started = Instant::now();
    let mut child = command.spawn().expect("the child starts");
    let pid = child.id() as i32;
    register_child(pid);
    on_spawn(&mut child);
    let done = Arc::new(AtomicBool::new(false));
    let sampler = sample.then(|| {
        let done = done.clone();
        std::thread::spawn(move || {
            let (mut hwm, mut samples) = (0u64, 0u64);
            while !done.load(Ordering::Relaxed) {
                if let Some(kib) = vm_hwm_kib(pid) {
                    hwm = hwm.max(kib);
                    samples += 1;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (hwm, samples)
        })
    });
    let (status, usage) = sys::wait(pid);
    let wall = started.elapsed();
    done.store(true, Ordering::Relaxed);
    unregister_child(pid);
    let (sampled_hwm_kib, samples) = sampler.map_or((0, 0), |s| s.join().expect("the sampler"));
    Ended {
        status,
        started,
        wall,
        max_rss_kib: usage.ru_maxrss.max(0) as u64,
        sampled_hwm_kib,
        samples,
        user: usage.ru_utime.duration(),
        system: usage.ru_stime.duration(),
    }
}

/// `VmHWM` of a process, in KiB.
pub fn vm_hwm_kib(pid: i32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

/// `wait4(2)` and `kill(2)` from the C library std links anyway: std's `Child::wait`
/// gives no resource usage, and the workspace's nix/rustix lack the features for it.
mod sys {
    use std::os::raw::{c_int, c_long};
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;
    use std::time::Duration;

    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct Timeval {
        pub tv_sec: c_long,
        pub tv_usec: c_long,
    }

    impl Timeval {
        pub fn duration(&self) -> Duration {
            Duration::from_secs(self.tv_sec.max(0) as u64)
                + Duration::from_micros(self.tv_usec.max(0) as u64)
        }
    }

    /// `struct rusage` of Linux on 64-bit targets: two timevals and fourteen longs.
    #[repr(C)]
    #[derive(Debug, Default, Clone, Copy)]
    pub struct Rusage {
        pub ru_utime: Timeval,
        pub ru_stime: Timeval,
        pub ru_maxrss: c_long,
        pub rest: [c_long; 13],
    }

    extern "C" {
        fn wait4(pid: c_int, status: *mut c_int, options: c_int, rusage: *mut Rusage) -> c_int;
        fn kill(pid: c_int, signal: c_int) -> c_int;
    }

    pub fn wait(pid: i32) -> (ExitStatus, Rusage) {
        let mut status: c_int = 0;
        let mut usage = Rusage::default();
        loop {
            // SAFETY: both pointers are to live, properly laid out locals.
            let got = unsafe { wait4(pid, &mut status, 0, &mut usage) };
            if got == pid {
                return (ExitStatus::from_raw(status), usage);
            }
            let error = std::io::Error::last_os_error();
            assert_eq!(
                error.kind(),
                std::io::ErrorKind::Interrupted,
                "wait4({pid}): {error}"
            );
        }
    }

    /// SIGKILL to the process group `pgid`.
    pub fn kill_group(pgid: i32) {
        // SAFETY: kill takes plain integers.
        unsafe {
            kill(-pgid, 9);
        }
    }
}

static CHILDREN: Mutex<Vec<i32>> = Mutex::new(Vec::new());
static DIRS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn register_child(pid: i32) {
    CHILDREN.lock().unwrap().push(pid);
}

fn unregister_child(pid: i32) {
    CHILDREN.lock().unwrap().retain(|p| *p != pid);
}

/// Kills the process groups of the children still running.
pub fn kill_children() {
    for pgid in CHILDREN.lock().unwrap().drain(..) {
        sys::kill_group(pgid);
    }
}

/// A temporary directory the watchdog removes too.
pub fn temp_dir(prefix: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(prefix)
        .tempdir()
        .expect("a temporary directory");
    DIRS.lock().unwrap().push(dir.path().to_path_buf());
    dir
}

/// Kills the children and removes the temporary directories when dropped (a panic too).
pub struct Guard;

impl Drop for Guard {
    fn drop(&mut self) {
        kill_children();
        for dir in DIRS.lock().unwrap().drain(..) {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Ends the bench after `limit`: kills the children, removes the temporary directories
/// (an exit skips destructors) and exits 2.
pub fn watchdog(name: &'static str, limit: Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("BENCH {name} aborted: still running after {limit:?}");
        drop(Guard);
        std::process::exit(2);
    });
}

/// The 1-minute load average, to print with results on a shared machine.
pub fn load1() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_owned))
        .unwrap_or_else(|| "?".into())
}

pub fn median(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len();
    assert!(n > 0, "median of nothing");
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// An environment variable as a number, or `default`.
pub fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// CPU time (user + system) this process has used so far.
pub fn own_cpu() -> Duration {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return Duration::ZERO;
    };
    let Some(rest) = stat.rfind(')').map(|at| &stat[at + 2..]) else {
        return Duration::ZERO;
    };
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|f| f.parse().ok())
        .collect();
    Duration::from_millis(fields.iter().sum::<u64>() * 10) // USER_HZ = 100
}
