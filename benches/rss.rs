//! `BENCH rss`: the resident memory of a real `cde server` (the binary cargo built with
//! this bench), idle and while 20 runs are in flight.
//!
//! The server gets a temp data dir, a free port, a token and `CDE_MAX_CONCURRENT_RUNS=20`.
//! `idle_mb` is VmRSS after start-up and the registration of the behave connector (its
//! health check included), once settled. Then 20 runs of behave in `sleep` mode (it
//! prints a line every half second and posts logs and records to its API) are submitted
//! through `POST /runs`; `with_20_runs_mb` is the highest VmRSS sampled from the
//! submission until all 20 have run together for a few seconds, then they are cancelled.
//! `hwm_mb` is the server's VmHWM at the end, `after_mb` its VmRSS once all have ended.

mod support;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

const RUNS: usize = 20;
/// How long the 20 runs are watched together once all of them are running.
const TOGETHER: Duration = Duration::from_secs(5);
const LIMIT: Duration = Duration::from_secs(300);
const TOKEN: &str = "bench-rss-token";

fn main() {
    support::build_image();
    let data = tempfile::tempdir().expect("a temp dir");
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    // Opening the store first makes the instance id, which the server then uses: its
    // containers can be cleaned up by label whatever happens.
    let instance = rt.block_on(async {
        let store = cde::store::Store::open(None, &data.path().join("cde.db"))
            .await
            .expect("the store opens");
        store.instance().to_owned()
    });
    let labels = vec![format!("cde.instance={instance}")];
    support::watchdog("rss", LIMIT, labels.clone(), data.path());
    let _cleanup = support::Cleanup { labels };

    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let log = std::fs::File::create(data.path().join("server.log")).expect("a log file");
    let server = Command::new(env!("CARGO_BIN_EXE_cde"))
        .arg("server")
        .env("CDE_DATA_DIR", data.path())
        .env("CDE_LISTEN", format!("127.0.0.1:{port}"))
        .env("CDE_API_TOKEN", TOKEN)
        .env("CDE_MAX_CONCURRENT_RUNS", RUNS.to_string())
        .env("CDE_STOP_GRACE_SECS", "2")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("cde server starts");
    let server = Server { child: server };
    let api = Api {
        http: reqwest::Client::new(),
        base: format!("http://127.0.0.1:{port}"),
    };
    let outcome = rt.block_on(measure(&api, server.child.id()));
    drop(server);
    match outcome {
        Ok(line) => println!("{line}"),
        Err(e) => {
            let log = std::fs::read_to_string(data.path().join("server.log")).unwrap_or_default();
            eprintln!("server log:\n{log}");
            panic!("BENCH rss failed: {e}");
        }
    }
}

async fn measure(api: &Api, pid: u32) -> Result<String, String> {
    api.wait_healthy().await?;
    let manifest =
        std::fs::read_to_string(support::root().join("tests/connectors/behave/manifest.yaml"))
            .map_err(|e| e.to_string())?;
    api.call(reqwest::Method::POST, "/connectors", Body::Yaml(manifest))
        .await?;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let idle = memory(pid)?;
    let idle_parts = breakdown(pid)?;
    let settled = tokio::task::spawn_blocking(|| support::settle(Duration::from_secs(45)))
        .await
        .map_err(|e| e.to_string())?;
    let load_before = format!("{} {settled}", support::machine_load());

    let mut ids = Vec::new();
    for _ in 0..RUNS {
        let request =
            json!({"connector": "behave", "options": {"MODE": "sleep", "SECONDS": "120"}});
        let run = api
            .call(reqwest::Method::POST, "/runs", Body::Json(request))
            .await?;
        ids.push(run["id"].as_str().ok_or("a run id")?.to_owned());
    }
    let submitted = Instant::now();
    let mut peak = idle;
    let mut peak_parts = idle_parts.clone();
    let mut all_running_since = None;
    let mut most_running = 0;
    while all_running_since.is_none_or(|since: Instant| since.elapsed() < TOGETHER) {
        if submitted.elapsed() > Duration::from_secs(120) {
            return Err(format!(
                "only {most_running} of {RUNS} runs were running together after 120s"
            ));
        }
        let now = memory(pid)?;
        if now > peak {
            peak = now;
            peak_parts = breakdown(pid)?;
        }
        let running = api.count(&ids, |status| status == "running").await?;
        let ended = api
            .count(&ids, |status| {
                !matches!(status, "queued" | "starting" | "running")
            })
            .await?;
        if ended > 0 {
            return Err(format!(
                "{ended} run(s) ended before all {RUNS} were running"
            ));
        }
        most_running = most_running.max(running);
        if running == RUNS && all_running_since.is_none() {
            all_running_since = Some(Instant::now());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let all_running_after = all_running_since
        .map(|since| since - submitted)
        .unwrap_or_default();
    let load_during = support::machine_load();
    for id in &ids {
        api.call(
            reqwest::Method::POST,
            &format!("/runs/{id}/cancel"),
            Body::None,
        )
        .await?;
    }
    let cancelled = Instant::now();
    while api
        .count(&ids, |status| {
            matches!(status, "queued" | "starting" | "running")
        })
        .await?
        > 0
    {
        if cancelled.elapsed() > Duration::from_secs(60) {
            return Err("the cancelled runs did not end within 60s".into());
        }
        peak = peak.max(memory(pid)?);
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    let after = memory(pid)?;
    let hwm = high_water_mark(pid)?;
    eprintln!("rss idle: {idle_parts}; at the peak with the runs: {peak_parts}");
    eprintln!(
        "rss: all {RUNS} running {:.1}s after submission; machine before: {load_before}; \
         with the runs: {load_during}",
        all_running_after.as_secs_f64()
    );
    Ok(format!(
        "BENCH rss idle_mb={:.1} with_20_runs_mb={:.1} after_mb={:.1} hwm_mb={:.1}",
        mib(idle),
        mib(peak),
        mib(after),
        mib(hwm)
    ))
}

/// The server process, stopped with SIGTERM (SIGKILL after 10 s) when dropped.
struct Server {
    child: Child,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

struct Api {
    http: reqwest::Client,
    base: String,
}

enum Body {
    None,
    Json(Value),
    Yaml(String),
}

impl Api {
    async fn wait_healthy(&self) -> Result<(), String> {
        let begun = Instant::now();
        loop {
            if let Ok(response) = self.http.get(format!("{}/health", self.base)).send().await {
                if response.status().is_success() {
                    return Ok(());
                }
            }
            if begun.elapsed() > Duration::from_secs(30) {
                return Err("the server did not answer /health within 30s".into());
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Body) -> Result<Value, String> {
        let request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(TOKEN);
        let request = match body {
            Body::None => request,
            Body::Json(value) => request.json(&value),
            Body::Yaml(text) => request
                .header("content-type", "application/yaml")
                .body(text),
        };
        let response = request
            .send()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        let status = response.status();
        let text = response
            .text()
            .await
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if !status.is_success() {
            return Err(format!("{method} {path}: {status}: {text}"));
        }
        serde_json::from_str(&text).map_err(|e| format!("{method} {path}: {e}: {text}"))
    }

    /// How many of the runs `ids` have a status for which `matches` holds.
    async fn count(&self, ids: &[String], matches: impl Fn(&str) -> bool) -> Result<usize, String> {
        let runs = self
            .call(reqwest::Method::GET, "/runs?limit=1000", Body::None)
            .await?;
        let runs = runs.as_array().ok_or("a list of runs")?;
        Ok(runs
            .iter()
            .filter(|run| ids.iter().any(|id| run["id"] == id.as_str()))
            .filter(|run| matches(run["status"].as_str().unwrap_or_default()))
            .count())
    }
}

/// VmRSS in kB.
fn memory(pid: u32) -> Result<u64, String> {
    status_kb(pid, "VmRSS:")
}

fn high_water_mark(pid: u32) -> Result<u64, String> {
    status_kb(pid, "VmHWM:")
}

/// Anonymous (heap, stacks), file-backed (the binary's pages) and shared resident memory.
fn breakdown(pid: u32) -> Result<String, String> {
    let threads = status_kb(pid, "Threads:")?;
    let parts = ["RssAnon:", "RssFile:", "RssShmem:"]
        .iter()
        .map(|field| {
            Ok(format!(
                "{}={:.1}MiB",
                field.trim_end_matches(':'),
                mib(status_kb(pid, field)?)
            ))
        })
        .collect::<Result<Vec<_>, String>>()?;
    Ok(format!("{} Threads={threads}", parts.join(" ")))
}

fn status_kb(pid: u32, field: &str) -> Result<u64, String> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .map_err(|e| format!("the server is gone: {e}"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field))
        .and_then(|value| value.split_whitespace().next()?.parse().ok())
        .ok_or_else(|| format!("no {field} in /proc/{pid}/status"))
}

fn mib(kb: u64) -> f64 {
    kb as f64 / 1024.0
}
