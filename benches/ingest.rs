//! Ingest throughput of the Container API: 200-byte records, 1000 per request,
//! several concurrent clients over loopback, against the real router writing real
//! files. Baselines on the same server in the same run: a discard-only endpoint, and
//! a write-only one that appends the body unparsed (the ceiling of any ingest). The
//! three are measured in interleaved rounds, so that load from elsewhere on the
//! machine weighs on all of them alike.
//!
//! `cargo bench --bench ingest`; `CDE_BENCH_RECORDS` changes the 5 000 000 records.

use std::io::Write;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use container_api::{AppState, Config, Summary};

const RECORD_BYTES: usize = 200;
const RECORDS_PER_REQUEST: usize = 1000;
const CLIENTS: usize = 4;
const ROUNDS: u64 = 10;
/// Distinct prebuilt bodies the clients cycle through.
const BODIES: usize = 16;

const TARGET_MB_PER_S: f64 = 150.0;
const TARGET_RATIO: f64 = 0.70;

/// One record of exactly `RECORD_BYTES` bytes of JSON.
fn record(i: usize) -> String {
    let head = format!(
        r#"{{"id":"{i:08}","title":"Product {i} in blue","brand":"Brand {}","price":"{}.99","availability":"in stock","link":"https://shop.example.com/p/{i:08}","pad":""#,
        i % 97,
        i % 500
    );
    let pad = RECORD_BYTES - head.len() - 2;
    format!("{head}{}\"}}", "x".repeat(pad))
}

fn body(n: usize) -> Bytes {
    let records: Vec<String> = (0..RECORDS_PER_REQUEST)
        .map(|i| record(n * RECORDS_PER_REQUEST + i))
        .collect();
    assert!(records.iter().all(|r| r.len() == RECORD_BYTES));
    Bytes::from(format!(r#"{{"data":[{}]}}"#, records.join(",")))
}

fn written(_body: Bytes) -> (StatusCode, axum::Json<serde_json::Value>) {
    (
        StatusCode::CREATED,
        axum::Json(serde_json::json!({"message": "Written successfully."})),
    )
}

fn rss_mb() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[derive(Default)]
struct Phase {
    requests: u64,
    bytes: u64,
    elapsed: Duration,
    /// Largest RSS seen, sampled every 50 requests.
    rss_peak_mb: f64,
}

impl Phase {
    fn add(&mut self, other: Phase) {
        self.requests += other.requests;
        self.bytes += other.bytes;
        self.elapsed += other.elapsed;
        self.rss_peak_mb = self.rss_peak_mb.max(other.rss_peak_mb);
    }

    fn mb_per_s(&self) -> f64 {
        self.bytes as f64 / 1e6 / self.elapsed.as_secs_f64()
    }
}

/// `requests` POSTs of the prebuilt bodies to `url` from `CLIENTS` concurrent
/// connections; every answer must be `expected`.
async fn drive(url: String, bodies: Arc<Vec<Bytes>>, requests: u64, expected: StatusCode) -> Phase {
    let next = Arc::new(AtomicU64::new(0));
    let bytes = Arc::new(AtomicU64::new(0));
    let rss_peak = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut clients = Vec::new();
    for _ in 0..CLIENTS {
        let (url, bodies, next, bytes) = (url.clone(), bodies.clone(), next.clone(), bytes.clone());
        let rss_peak = rss_peak.clone();
        clients.push(tokio::spawn(async move {
            // One connection per client, kept alive.
            let client = reqwest::Client::builder()
                .pool_max_idle_per_host(1)
                .build()
                .unwrap();
            loop {
                let n = next.fetch_add(1, Ordering::Relaxed);
                if n >= requests {
                    break;
                }
                let body = bodies[n as usize % bodies.len()].clone();
                let len = body.len() as u64;
                let response = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(response.status(), expected);
                response.bytes().await.unwrap();
                bytes.fetch_add(len, Ordering::Relaxed);
                if n % 50 == 0 {
                    rss_peak.fetch_max((rss_mb() * 1024.0) as u64, Ordering::Relaxed);
                }
            }
        }));
    }
    for client in clients {
        client.await.unwrap();
    }
    Phase {
        requests,
        bytes: bytes.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        rss_peak_mb: rss_peak.load(Ordering::Relaxed) as f64 / 1024.0,
    }
}

fn main() {
    let records: u64 = std::env::var("CDE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(5_000_000);
    let ingest_requests = records / RECORDS_PER_REQUEST as u64;
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let mut config = Config::new(dir.path().join("run"));
    config.listen = "127.0.0.1:0".parse().unwrap();

    // The server gets a runtime like the Container API binary's (a worker per core); the clients
    // run on their own single thread.
    let server_rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let state = AppState::open(&config).unwrap();
    let listener = server_rt
        .block_on(tokio::net::TcpListener::bind(config.listen))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    // Baselines on the same server: `/discard` reads the body and drops it;
    // `/write-only` appends it unparsed to a file, the ceiling for any ingest.
    let raw_file = Arc::new(std::sync::Mutex::new(
        std::fs::File::create(dir.path().join("write-only.jsonl")).unwrap(),
    ));
    let router = container_api::router(state.clone())
        .route(
            "/discard",
            post(|body: Bytes| async move { written(std::hint::black_box(body)) }),
        )
        .route(
            "/write-only",
            post(move |body: Bytes| {
                let file = raw_file.clone();
                async move {
                    let body = tokio::task::spawn_blocking(move || {
                        file.lock().unwrap().write_all(&body).unwrap();
                        body
                    })
                    .await
                    .unwrap();
                    written(body)
                }
            }),
        );
    server_rt.spawn(async move { axum::serve(listener, router).await.unwrap() });

    let bodies = Arc::new((0..BODIES).map(body).collect::<Vec<_>>());
    let body_bytes = bodies[0].len();
    let client_rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let url = |path: &str| format!("http://{addr}{path}");
    let run = |path: &str, requests: u64| {
        client_rt.block_on(drive(
            url(path),
            bodies.clone(),
            requests,
            StatusCode::CREATED,
        ))
    };
    // Warm up every path (the records written here are not counted).
    for path in ["/discard", "/write-only", "/output/output"] {
        run(path, 100);
    }
    let per_round = (ingest_requests / ROUNDS).max(1);
    let (mut discard, mut write_only, mut ingest) = Default::default();
    let mut rss_first_round_mb = 0.0;
    let mut done = 0;
    while done < ingest_requests {
        let requests = per_round.min(ingest_requests - done);
        Phase::add(&mut discard, run("/discard", requests));
        // A fifth as much: its extra gigabyte of writeback would slow the others.
        Phase::add(&mut write_only, run("/write-only", requests.div_ceil(5)));
        Phase::add(&mut ingest, run("/output/output", requests));
        if done == 0 {
            rss_first_round_mb = ingest.rss_peak_mb;
        }
        done += requests;
    }
    let summary: Summary = server_rt.block_on(state.finish()).unwrap();
    let rows = summary.files["output"].rows;
    assert_eq!(rows, (ingest_requests + 100) * RECORDS_PER_REQUEST as u64);
    let file_bytes = std::fs::metadata(dir.path().join("run/output/output.jsonl"))
        .unwrap()
        .len();

    let discard_mb_per_s = discard.mb_per_s();
    let mb_per_s = ingest.mb_per_s();
    let records_per_s =
        (ingest.requests * RECORDS_PER_REQUEST as u64) as f64 / ingest.elapsed.as_secs_f64();
    let ratio = mb_per_s / discard_mb_per_s;
    println!(
        "ingest: {} requests of {body_bytes} bytes ({RECORDS_PER_REQUEST} records of {RECORD_BYTES} bytes) \
         from {CLIENTS} clients in {ROUNDS} rounds, {:.2?} in all; output.jsonl {:.0} MB, {rows} rows",
        ingest.requests,
        ingest.elapsed,
        file_bytes as f64 / 1e6
    );
    println!(
        "baselines in the same rounds: discard {discard_mb_per_s:.0} MB/s; write-only (body appended unparsed) {:.0} MB/s = {:.2} of discard",
        write_only.mb_per_s(),
        write_only.mb_per_s() / discard_mb_per_s
    );
    println!(
        "rss: {rss_first_round_mb:.0} MB peak in the first round, {:.0} MB peak over all {} records",
        ingest.rss_peak_mb,
        ingest.requests * RECORDS_PER_REQUEST as u64
    );
    println!(
        "BENCH ingest mb_per_s={mb_per_s:.0} records_per_s={records_per_s:.0} ratio_vs_discard={ratio:.2} rss_mb={:.0}",
        ingest.rss_peak_mb
    );
    let verdict = |ok: bool| if ok { "met" } else { "NOT MET" };
    println!(
        "targets: mb_per_s >= {TARGET_MB_PER_S}: {}; ratio_vs_discard >= {TARGET_RATIO}: {}; \
         memory flat (peak within 32 MB of the first round's): {}",
        verdict(mb_per_s >= TARGET_MB_PER_S),
        verdict(ratio >= TARGET_RATIO),
        verdict(ingest.rss_peak_mb - rss_first_round_mb <= 32.0)
    );
}
