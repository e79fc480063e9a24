//! `BENCH webhook`: events a listener takes per second, each acknowledged only once it is
//! fsynced, against a discard route on the same server in the same run.
//!
//! One server in this process (the management API's router with its `/hooks` route, on a
//! loopback port), a pipeline with one `token` listener (event ids at `$.id`), and 16
//! clients on keep-alive connections posting 1 KB events one after another for 20 s:
//! first to `/discard/...`, a route that does everything a delivery does (reads the
//! body, checks the token, finds the events and their ids: `Cde::check_delivery`) but
//! append them, then to
//! `/hooks/...`. `events_per_s` and `p99_ms` are of the listener; `ratio_vs_discard` is
//! its rate over the discard route's. Every answer must be 200; every acknowledged event
//! must then be in the log.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::routing::post;
use axum::Json;
use serde_json::{json, Value};

/// The server's allocator, as in `cde server`.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const CLIENTS: usize = 16;
const PHASE: Duration = Duration::from_secs(20);
const EVENT_BYTES: usize = 1024;
const TOKEN: &str = "bench-webhook-token";

/// What one phase measured.
struct Phase {
    events: usize,
    elapsed: Duration,
    p99: Duration,
    p50: Duration,
    /// CPU time of this process (server and clients) per event.
    cpu_per_event: Duration,
}

/// User and system CPU time of this process so far, from `/proc/self/stat`.
fn cpu_time() -> Duration {
    let stat = std::fs::read_to_string("/proc/self/stat").expect("procfs");
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .expect("a stat line")
        .1
        .split_whitespace()
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the name.
    let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
    Duration::from_millis(ticks * 10)
}

impl Phase {
    fn per_s(&self) -> f64 {
        self.events as f64 / self.elapsed.as_secs_f64()
    }
}

/// The discard route: a delivery checked and parsed, then dropped.
async fn discard(
    State(cde): State<Arc<cde::Cde>>,
    Path((pipeline, name)): Path<(String, String)>,
    headers: HeaderMap,
    body: Body,
) -> Json<Value> {
    let events = cde
        .check_delivery(&pipeline, &name, &headers, None, body)
        .await
        .expect("a delivery the listener takes");
    Json(json!({"written": events.len(), "duplicates": 0}))
}

async fn phase(url: String, token: String, prefix: &'static str) -> Phase {
    let url = reqwest::Url::parse(&url).expect("a URL");
    // The clients' own work is kept small: the server shares the machine with them.
    let pad = "x".repeat(EVENT_BYTES);
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(CLIENTS)
        .build()
        .expect("a client");
    let begun = Instant::now();
    let cpu_before = cpu_time();
    let clients: Vec<_> = (0..CLIENTS)
        .map(|client| {
            let (http, url, token, pad) = (http.clone(), url.clone(), token.clone(), pad.clone());
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                let mut n = 0usize;
                while begun.elapsed() < PHASE {
                    let id = format!("{prefix}-{client}-{n}");
                    n += 1;
                    let head = format!(r#"{{"id":"{id}","client":{client},"pad":""#);
                    let body = format!("{head}{}\"}}", &pad[..EVENT_BYTES - head.len() - 2]);
                    debug_assert_eq!(body.len(), EVENT_BYTES);
                    let sent = Instant::now();
                    let answer = http
                        .post(url.clone())
                        .header("x-cde-token", &token)
                        .header("content-type", "application/json")
                        .body(body)
                        .send()
                        .await
                        .expect("an answer");
                    assert_eq!(answer.status(), 200, "{id}");
                    let done: Value = answer.json().await.expect("JSON");
                    assert_eq!(done["written"], 1, "{id}: {done}");
                    latencies.push(sent.elapsed());
                }
                latencies
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for client in clients {
        latencies.extend(client.await.expect("a client"));
    }
    let elapsed = begun.elapsed();
    let cpu = cpu_time() - cpu_before;
    latencies.sort();
    Phase {
        events: latencies.len(),
        elapsed,
        p99: latencies[latencies.len() * 99 / 100],
        p50: latencies[latencies.len() / 2],
        cpu_per_event: cpu / latencies.len() as u32,
    }
}

fn main() {
    let data = tempfile::tempdir().expect("a temp dir");
    let rt = tokio::runtime::Runtime::new().expect("a tokio runtime");
    rt.block_on(async {
        let config = cde::Config {
            data_dir: data.path().to_owned(),
            ..Default::default()
        };
        let cde = Arc::new(cde::Cde::open(config).await.expect("cde opens"));
        let pipeline = json!({
            "name": "bench",
            "listeners": [{"name": "events", "auth": {"type": "token"}, "event_id": {"path": "$.id"}}],
            "sources": [{"listener": "events"}],
        });
        let pipeline = cde::model::Pipeline::parse(&pipeline.to_string(), true).expect("valid");
        cde.save_pipeline(&pipeline).await.expect("saved");
        let token = cde.listener_secret("bench", "events").await.expect("a secret");
        let router = cde::api::router(cde.clone(), TOKEN.into()).merge(
            axum::Router::new()
                .route("/discard/{pipeline}/{listener}", post(discard))
                .with_state(cde.clone()),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("a port");
        let address = listener.local_addr().expect("an address");
        tokio::spawn(async move { axum::serve(listener, router).await });

        let base = format!("http://{address}");
        let discarded = phase(format!("{base}/discard/bench/events"), token.clone(), "d").await;
        let kept = phase(format!("{base}/hooks/bench/events"), token, "k").await;

        let listed = cde.listeners("bench").await.expect("listed");
        assert_eq!(listed[0].received, kept.events as u64, "every acknowledged event kept");
        let per_sync = kept.events as f64 / listed[0].syncs.max(1) as f64;
        println!(
            "BENCH webhook events_per_s={:.0} p99_ms={:.2} ratio_vs_discard={:.3} discard_per_s={:.0} discard_p99_ms={:.2} p50_ms={:.2} discard_p50_ms={:.2} events_per_sync={per_sync:.1} cpu_us_per_event={:.1} discard_cpu_us_per_event={:.1} clients={CLIENTS} event_bytes={EVENT_BYTES} secs={}",
            kept.per_s(),
            kept.p99.as_secs_f64() * 1000.0,
            kept.per_s() / discarded.per_s(),
            discarded.per_s(),
            discarded.p99.as_secs_f64() * 1000.0,
            kept.p50.as_secs_f64() * 1000.0,
            discarded.p50.as_secs_f64() * 1000.0,
            kept.cpu_per_event.as_secs_f64() * 1e6,
            discarded.cpu_per_event.as_secs_f64() * 1e6,
            PHASE.as_secs(),
        );
    });
}
