//! `BENCH http_source`: how fast cde's declarative HTTP connector pulls 200 000 records
//! (pages of 1 000, OFFSET pagination) from a zero-latency mock API on 127.0.0.1, against
//! Airbyte's declarative low-code source on the same API and against a bare request loop.
//!
//! `cargo bench --bench http_source`. Prints one line:
//!
//! `BENCH http_source records_per_s=<cde> ratio_vs_airbyte=<r> ratio_vs_raw=<r> airbyte_records_per_s=<n> raw_records_per_s=<n>`
//!
//! * cde: `cde http-connector --definition FILE` as a child process (the Mailchimp members
//!   spec of the engine's tests with `count=1000`), posting to the real Container API in
//!   this process, which writes `output/output.jsonl`; its lines are counted (200 000).
//!   Rate: records over the child's wall time, from spawn to exit.
//! * Airbyte: `source-declarative-manifest read` of PyPI's `airbyte-cdk` with the
//!   equivalent manifest (DeclarativeStream, HttpRequester GET, DpathExtractor `members`,
//!   DefaultPaginator with OffsetIncrement 1000, `count`/`offset` request parameters); its
//!   RECORD messages on stdout are counted (200 000). Rate: records over the child's wall
//!   time. The CDK is installed once into `<target dir>/airbyte-venv` (`python3 -m venv`,
//!   `pip install airbyte-cdk`) and reused by later runs.
//! * raw: the same requests in a loop in this process (reqwest, each page parsed as JSON
//!   and its members counted), no output at all: the limit.
//!
//! The mock answers from pages built before any timing. Each client stops on the first
//! short page, so each run makes 201 requests (the last one past the end, empty).
//! Details (per-run times, CPU times, the time to the first request) go to stderr.
//!
//! Environment: `CDE_BENCH_RUNS` (5) runs of cde and raw, the median is reported;
//! `CDE_BENCH_AIRBYTE_RUNS` (1); `CDE_BENCH_RECORDS` (200000); `CDE_BENCH_AIRBYTE_VENV`
//! (another venv with airbyte-cdk); `CDE_BENCH_PYTHON` (the interpreter that creates the
//! venv, `python3`); `CDE_BENCH_SKIP_AIRBYTE=1` (no Airbyte: its fields print `nan`).
//! A watchdog ends the bench after `CDE_BENCH_LIMIT_SECS` (900) once the venv is ready.

#[path = "support/http_pull.rs"]
mod http_pull;

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_pull::{
    env_or, median, run_child, ContainerApi, Ended, MockApi, Pages, Seen, LIST_ID, PAGE_SIZE,
};
use serde_json::{json, Value};

const NAME: &str = "http_source";

fn main() {
    let _guard = http_pull::Guard;
    let total: usize = env_or("CDE_BENCH_RECORDS", 200_000);
    let runs: usize = env_or::<usize>("CDE_BENCH_RUNS", 5).max(1);
    let airbyte_runs: usize = env_or("CDE_BENCH_AIRBYTE_RUNS", 1);
    let airbyte = if std::env::var("CDE_BENCH_SKIP_AIRBYTE").is_ok_and(|v| v == "1") {
        None
    } else {
        Some(airbyte_entrypoint())
    };
    http_pull::watchdog(
        NAME,
        Duration::from_secs(env_or("CDE_BENCH_LIMIT_SECS", 900)),
    );

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    runtime.block_on(async move {
        let built = Instant::now();
        let pages = Arc::new(Pages::build(total));
        eprintln!(
            "{NAME}: {total} records in {} pages of {PAGE_SIZE} ({:.1} MB of JSON) built in {:.1}s; load1={}",
            total.div_ceil(PAGE_SIZE),
            pages.bytes as f64 / 1e6,
            built.elapsed().as_secs_f64(),
            http_pull::load1()
        );
        let mock = MockApi::start(pages).await;
        let dir = http_pull::temp_dir("cde-bench-http-source-");
        let definition = dir.path().join("definition.json");
        std::fs::write(&definition, http_pull::definition()).expect("writing the definition");

        let client = reqwest::Client::new();
        // Warms the mock's and the loopback's paths; not counted.
        raw(&client, &mock, total).await;
        let (mut cde_rates, mut raw_rates) = (Vec::new(), Vec::new());
        for run in 1..=runs {
            raw_rates.push(raw(&client, &mock, total).await);
            cde_rates.push(cde(&mock, dir.path(), &definition, total, run).await);
        }
        let mut airbyte_rates = Vec::new();
        if let Some(entrypoint) = &airbyte {
            let files = airbyte_files(dir.path(), &mock.url);
            for run in 1..=airbyte_runs {
                airbyte_rates.push(airbyte_run(entrypoint, &files, &mock, total, run).await);
            }
        }

        let cde_rate = median(&cde_rates);
        let raw_rate = median(&raw_rates);
        let airbyte_rate = if airbyte_rates.is_empty() {
            f64::NAN
        } else {
            median(&airbyte_rates)
        };
        eprintln!("{NAME}: load1={} at the end", http_pull::load1());
        println!(
            "BENCH http_source records_per_s={:.0} ratio_vs_airbyte={:.2} ratio_vs_raw={:.3} airbyte_records_per_s={:.0} raw_records_per_s={:.0}",
            cde_rate,
            cde_rate / airbyte_rate,
            cde_rate / raw_rate,
            airbyte_rate,
            raw_rate
        );
    });
}

/// The bare loop: GET every page, parse it, count its members; records per second.
async fn raw(client: &reqwest::Client, mock: &MockApi, total: usize) -> f64 {
    let url = format!("{}{}", mock.url, http_pull::members_path());
    mock.take();
    let begun = Instant::now();
    let (mut records, mut offset) = (0usize, 0usize);
    loop {
        let body = client
            .get(&url)
            .query(&[("count", PAGE_SIZE), ("offset", offset)])
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("the mock answers")
            .bytes()
            .await
            .expect("a body");
        let page: Value = serde_json::from_slice(&body).expect("a JSON page");
        let members = page["members"].as_array().map_or(0, Vec::len);
        records += members;
        offset += members;
        if members < PAGE_SIZE {
            break;
        }
    }
    let took = begun.elapsed();
    let seen = mock.take();
    assert_eq!(records, total, "raw: records counted");
    let rate = records as f64 / took.as_secs_f64();
    eprintln!(
        "{NAME}: raw  {:>6.2}s {rate:>9.0} records/s, {} requests",
        took.as_secs_f64(),
        seen.requests
    );
    rate
}

/// One run of `cde http-connector` into a fresh Container API; records per second.
async fn cde(mock: &MockApi, dir: &Path, definition: &Path, total: usize, run: usize) -> f64 {
    let run_dir = dir.join(format!("cde-{run}"));
    let container = ContainerApi::start(&run_dir).await;
    let stderr = std::fs::File::create(run_dir.join("engine.stderr")).expect("a stderr file");
    let mut command = http_pull::engine_command(definition, &mock.url, &container.url);
    command.stdout(Stdio::null()).stderr(stderr);
    mock.take();
    let own_before = http_pull::own_cpu();
    let ended = tokio::task::spawn_blocking(move || run_child(command, false, |_| {}))
        .await
        .expect("the engine's waiter");
    let own = http_pull::own_cpu().saturating_sub(own_before);
    let seen = mock.take();
    let (lines, summary) = container.finish().await;
    if !ended.status.success() || lines != total as u64 {
        let stderr = std::fs::read_to_string(run_dir.join("engine.stderr")).unwrap_or_default();
        panic!(
            "cde http-connector: {}, {lines} records written of {total}; stderr:\n{stderr}",
            ended.status
        );
    }
    let rate = total as f64 / ended.wall.as_secs_f64();
    eprintln!(
        "{NAME}: cde  {:>6.2}s {rate:>9.0} records/s, {} requests, {} columns, engine cpu {:.2}s (user {:.2}s), bench process cpu {:.2}s (mock + Container API), {}",
        ended.wall.as_secs_f64(),
        seen.requests,
        summary.columns.len(),
        ended.cpu().as_secs_f64(),
        ended.user.as_secs_f64(),
        own.as_secs_f64(),
        timeline(&ended, &seen)
    );
    let _ = std::fs::remove_dir_all(&run_dir);
    rate
}

/// When the first and last requests came, from the child's spawn.
fn timeline(ended: &Ended, seen: &Seen) -> String {
    let since = |at: Option<Instant>| {
        at.map_or(f64::NAN, |at| {
            at.saturating_duration_since(ended.started).as_secs_f64()
        })
    };
    format!(
        "first request at {:.2}s, last at {:.2}s, exit at {:.2}s",
        since(seen.first),
        since(seen.last),
        ended.wall.as_secs_f64()
    )
}

/// The Airbyte source's files: the manifest, its config and the configured catalog.
struct AirbyteFiles {
    manifest: PathBuf,
    config: PathBuf,
    catalog: PathBuf,
    stderr: PathBuf,
}

/// The declarative manifest equivalent to cde's spec.
fn manifest() -> Value {
    json!({
        "version": "6.0.0",
        "type": "DeclarativeSource",
        "check": {"type": "CheckStream", "stream_names": ["members"]},
        "spec": {
            "type": "Spec",
            "connection_specification": {
                "$schema": "http://json-schema.org/draft-07/schema#",
                "type": "object",
                "required": ["base_url", "list_id"],
                "properties": {"base_url": {"type": "string"}, "list_id": {"type": "string"}},
                "additionalProperties": true
            }
        },
        "streams": [{
            "type": "DeclarativeStream",
            "name": "members",
            "primary_key": [["id"]],
            "schema_loader": {
                "type": "InlineSchemaLoader",
                "schema": {
                    "$schema": "http://json-schema.org/draft-07/schema#",
                    "type": "object",
                    "additionalProperties": true,
                    "properties": {"id": {"type": "string"}}
                }
            },
            "retriever": {
                "type": "SimpleRetriever",
                "requester": {
                    "type": "HttpRequester",
                    "url_base": "{{ config['base_url'] }}",
                    "path": "/3.0/lists/{{ config['list_id'] }}/members",
                    "http_method": "GET"
                },
                "record_selector": {
                    "type": "RecordSelector",
                    "extractor": {"type": "DpathExtractor", "field_path": ["members"]}
                },
                "paginator": {
                    "type": "DefaultPaginator",
                    "page_token_option": {"type": "RequestOption", "inject_into": "request_parameter", "field_name": "offset"},
                    "page_size_option": {"type": "RequestOption", "inject_into": "request_parameter", "field_name": "count"},
                    "pagination_strategy": {"type": "OffsetIncrement", "page_size": PAGE_SIZE}
                }
            }
        }]
    })
}

fn airbyte_files(dir: &Path, api: &str) -> AirbyteFiles {
    let dir = dir.join("airbyte");
    std::fs::create_dir_all(&dir).expect("creating the Airbyte directory");
    let write = |name: &str, value: Value| {
        let path = dir.join(name);
        std::fs::write(&path, value.to_string()).expect("writing an Airbyte file");
        path
    };
    AirbyteFiles {
        manifest: write("manifest.json", manifest()),
        config: write("config.json", json!({"base_url": api, "list_id": LIST_ID})),
        catalog: write(
            "catalog.json",
            json!({"streams": [{
                "stream": {"name": "members", "json_schema": {}, "supported_sync_modes": ["full_refresh"]},
                "sync_mode": "full_refresh",
                "destination_sync_mode": "overwrite"
            }]}),
        ),
        stderr: dir.join("stderr"),
    }
}

/// One `source-declarative-manifest read`, its RECORD messages counted as they come out;
/// records per second.
async fn airbyte_run(
    entrypoint: &Path,
    files: &AirbyteFiles,
    mock: &MockApi,
    total: usize,
    run: usize,
) -> f64 {
    let mut command = Command::new(entrypoint);
    command
        .arg("read")
        .arg("--config")
        .arg(&files.config)
        .arg("--catalog")
        .arg(&files.catalog)
        .arg("--manifest-path")
        .arg(&files.manifest)
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&files.stderr).expect("a stderr file"));
    mock.take();
    let own_before = http_pull::own_cpu();
    let (ended, counted) = tokio::task::spawn_blocking(move || {
        let mut reader = None;
        let ended = run_child(command, false, |child| {
            let stdout = child.stdout.take().expect("a stdout pipe");
            reader = Some(std::thread::spawn(move || count_records(stdout)));
        });
        let counted = reader.expect("a reader").join().expect("the stdout reader");
        (ended, counted)
    })
    .await
    .expect("the Airbyte waiter");
    let own = http_pull::own_cpu().saturating_sub(own_before);
    let seen = mock.take();
    if !ended.status.success() || counted.records != total as u64 {
        let stderr = std::fs::read_to_string(&files.stderr).unwrap_or_default();
        panic!(
            "Airbyte source-declarative-manifest: {}, {} records of {total}; last other messages:\n{}\nstderr:\n{stderr}",
            ended.status,
            counted.records,
            counted.others.join("\n")
        );
    }
    let rate = total as f64 / ended.wall.as_secs_f64();
    eprintln!(
        "{NAME}: airbyte run {run} {:>6.2}s {rate:>9.0} records/s, {} requests, python cpu {:.2}s (user {:.2}s), bench process cpu {:.2}s, {}",
        ended.wall.as_secs_f64(),
        seen.requests,
        ended.cpu().as_secs_f64(),
        ended.user.as_secs_f64(),
        own.as_secs_f64(),
        timeline(&ended, &seen)
    );
    rate
}

struct Counted {
    records: u64,
    /// The last few messages that were not records (for a failure's report).
    others: Vec<String>,
}

fn count_records(stdout: std::process::ChildStdout) -> Counted {
    let mut reader = std::io::BufReader::with_capacity(1 << 20, stdout);
    let mut line = Vec::new();
    let mut counted = Counted {
        records: 0,
        others: Vec::new(),
    };
    loop {
        line.clear();
        match reader.read_until(b'\n', &mut line) {
            Ok(0) => return counted,
            Ok(_) if line.starts_with(br#"{"type":"RECORD""#) => counted.records += 1,
            Ok(_) => {
                if counted.others.len() == 8 {
                    counted.others.remove(0);
                }
                let text = String::from_utf8_lossy(&line);
                counted.others.push(text.chars().take(400).collect());
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => panic!("reading the Airbyte source's stdout: {e}"),
        }
    }
}

/// `<venv>/bin/source-declarative-manifest`, creating the venv and installing
/// airbyte-cdk first when it is not there; exits 2 with what to do when that fails.
fn airbyte_entrypoint() -> PathBuf {
    let venv = std::env::var_os("CDE_BENCH_AIRBYTE_VENV").map_or_else(
        || http_pull::target_dir().join("airbyte-venv"),
        PathBuf::from,
    );
    let python = venv.join("bin").join("python");
    let entrypoint = venv.join("bin").join("source-declarative-manifest");
    let ready = || {
        entrypoint.exists()
            && Command::new(&python)
                .args(["-c", "import airbyte_cdk.cli.source_declarative_manifest"])
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success())
    };
    if ready() {
        return entrypoint;
    }
    let interpreter = std::env::var("CDE_BENCH_PYTHON").unwrap_or_else(|_| "python3".into());
    eprintln!(
        "{NAME}: installing airbyte-cdk into {} (once; later runs reuse it)",
        venv.display()
    );
    let steps: [(&str, Command); 2] = [
        ("python3 -m venv", {
            let mut c = Command::new(&interpreter);
            c.args(["-m", "venv"]).arg(&venv);
            c
        }),
        ("pip install airbyte-cdk", {
            let mut c = Command::new(venv.join("bin").join("pip"));
            c.args([
                "install",
                "--disable-pip-version-check",
                "--quiet",
                "airbyte-cdk",
            ]);
            c
        }),
    ];
    for (what, command) in steps {
        let outcome = bounded(command, Duration::from_secs(20 * 60));
        if let Err(error) = outcome {
            eprintln!(
                "BENCH {NAME} cannot run Airbyte: `{what}` failed: {error}\n\
                 The bench needs PyPI's airbyte-cdk (Python 3.10 to 3.13). Install it by hand and run again:\n  \
                 {interpreter} -m venv {venv} && {venv}/bin/pip install airbyte-cdk\n\
                 or point CDE_BENCH_AIRBYTE_VENV at a venv that has it (CDE_BENCH_PYTHON picks the interpreter),\n\
                 or set CDE_BENCH_SKIP_AIRBYTE=1 to measure cde and the raw loop only.",
                venv = venv.display()
            );
            std::process::exit(2);
        }
    }
    if !ready() {
        eprintln!(
            "BENCH {NAME} cannot run Airbyte: {} has no airbyte_cdk after pip install; \
             remove it and run again, or set CDE_BENCH_AIRBYTE_VENV / CDE_BENCH_SKIP_AIRBYTE=1",
            venv.display()
        );
        std::process::exit(2);
    }
    entrypoint
}

/// Runs `command` to its end, killing it after `limit`; its output is kept for the error.
fn bounded(mut command: Command, limit: Duration) -> Result<(), String> {
    let log = tempfile::NamedTempFile::new().map_err(|e| e.to_string())?;
    let out = log.reopen().map_err(|e| e.to_string())?;
    let err = out.try_clone().map_err(|e| e.to_string())?;
    let mut child = command
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .map_err(|e| format!("cannot start it: {e}"))?;
    let begun = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
            break status;
        }
        if begun.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!("still running after {limit:?}"));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    if status.success() {
        return Ok(());
    }
    let text = std::fs::read_to_string(log.path()).unwrap_or_default();
    let tail: Vec<&str> = text.lines().rev().take(15).collect();
    Err(format!(
        "{status}; its last lines:\n{}",
        tail.into_iter().rev().collect::<Vec<_>>().join("\n")
    ))
}
