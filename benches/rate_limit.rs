//! `BENCH rate_limit`: the HTTP connector's transport held to 50 requests/s with a burst of
//! 10 for 20 s, against a mock API on loopback that answers 429 to any request beyond that
//! (its own sliding one-second window of at most 50 + 10 accepted requests).
//!
//! `cargo bench --bench rate_limit`; `CDE_BENCH_SECS` changes the 20 s. Prints one line:
//!
//! `BENCH rate_limit achieved_ratio=<r> max_window=<n> received_429=<n> requests=<n>`
//!
//! * `achieved_ratio`: the steady rate achieved over the configured 50/s: (requests − the
//!   burst of 10) / elapsed seconds / 50, elapsed being from the first send to the last
//!   answer (the initial burst aside, a limiter that holds 50/s exactly gives 1.0);
//!   target 0.95 to 1.0.
//! * `max_window`: the most requests the mock saw in any one-second window; target ≤ 60.
//! * `received_429`: 429s the mock sent; target 0.
//!
//! Sixteen tasks send GETs back to back until the time is up; the transport's limiter is
//! what paces them. A watchdog ends the bench after twice the time plus a minute.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::http::StatusCode;
use http_connector::transport::{EndpointGroup, RateLimit, Transport, TransportConfig};
use tokio::time::Instant;

const RATE: f64 = 50.0;
const BURST: u32 = 10;
const WORKERS: usize = 16;

#[derive(Default)]
struct Seen {
    /// Every arrival, accepted or not.
    all: Vec<Instant>,
    /// Accepted arrivals of the last second.
    window: std::collections::VecDeque<Instant>,
    refused: u64,
}

/// The mock's check: at most RATE + BURST accepted requests in any one-second window.
fn admit(seen: &Mutex<Seen>) -> StatusCode {
    let now = Instant::now();
    let mut seen = seen.lock().unwrap();
    seen.all.push(now);
    while seen
        .window
        .front()
        .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
    {
        seen.window.pop_front();
    }
    if seen.window.len() >= (RATE as usize + BURST as usize) {
        seen.refused += 1;
        return StatusCode::TOO_MANY_REQUESTS;
    }
    seen.window.push_back(now);
    StatusCode::OK
}

/// The most instants within any span shorter than one second.
fn max_window(sorted: &[Instant]) -> usize {
    let mut best = 0;
    let mut start = 0;
    for end in 0..sorted.len() {
        while sorted[end].duration_since(sorted[start]) >= Duration::from_secs(1) {
            start += 1;
        }
        best = best.max(end - start + 1);
    }
    best
}

fn main() {
    let secs: f64 = std::env::var("CDE_BENCH_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20.0);
    let limit = Duration::from_secs_f64(secs * 2.0 + 60.0);
    std::thread::spawn(move || {
        std::thread::sleep(limit);
        eprintln!("rate_limit: still running after {limit:?}, giving up");
        std::process::exit(2);
    });

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let seen = Arc::new(Mutex::new(Seen::default()));
        let state = seen.clone();
        let router = axum::Router::new().fallback(move || {
            let state = state.clone();
            async move { (admit(&state), "{}") }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = reqwest::Url::parse(&format!("http://{}/items", listener.local_addr().unwrap()))
            .unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });

        let transport = Transport::with_config(&TransportConfig {
            endpoint_groups: vec![EndpointGroup {
                patterns: vec!["/".into()],
                rate_limit: Some(RateLimit {
                    requests_per_second: RATE,
                    burst: BURST,
                }),
                ..EndpointGroup::default()
            }],
        })
        .unwrap();

        let started = Instant::now();
        let deadline = started + Duration::from_secs_f64(secs);
        let workers: Vec<_> = (0..WORKERS)
            .map(|_| {
                let transport = transport.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    let mut done = 0u64;
                    while Instant::now() < deadline {
                        let request = reqwest::Request::new(reqwest::Method::GET, url.clone());
                        if let Ok(response) = transport.send(request).await {
                            let _ = response.bytes().await;
                        }
                        done += 1;
                    }
                    done
                })
            })
            .collect();
        for worker in workers {
            worker.await.unwrap();
        }
        let elapsed = started.elapsed().as_secs_f64();

        let seen = seen.lock().unwrap();
        let mut all = seen.all.clone();
        all.sort();
        let requests = all.len();
        let achieved = (requests as f64 - BURST as f64) / elapsed;
        println!(
            "BENCH rate_limit achieved_ratio={:.3} max_window={} received_429={} requests={}",
            achieved / RATE,
            max_window(&all),
            seen.refused,
            requests
        );
    });
}
