//! Slow or idle connections are closed and the connection cap holds, so they cannot
//! eat the server's memory; normal requests still get through.

mod common;

use std::time::{Duration, Instant};

use common::*;
use reqwest::StatusCode;
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const HEADER_TIMEOUT: Duration = Duration::from_secs(1);
const IDLE_TIMEOUT: Duration = Duration::from_secs(3);
const CAP: usize = 8;

async fn server() -> TestServer {
    start_with(|config| {
        config.header_timeout = HEADER_TIMEOUT;
        config.idle_timeout = IDLE_TIMEOUT;
        config.max_connections = CAP;
    })
    .await
}

fn addr(server: &TestServer) -> String {
    server.base.trim_start_matches("http://").to_string()
}

/// Waits until the server closes `stream` (EOF or reset); panics after `limit`.
async fn closed_within(stream: &mut TcpStream, limit: Duration) -> Duration {
    let started = Instant::now();
    let mut buf = [0u8; 1024];
    loop {
        match tokio::time::timeout_at((started + limit).into(), stream.read(&mut buf)).await {
            Err(_) => panic!("still open after {limit:?}"),
            Ok(Ok(0)) | Ok(Err(_)) => return started.elapsed(),
            Ok(Ok(_)) => continue,
        }
    }
}

/// Sends `GET /ping` on `stream` and reads the answer.
async fn ping(stream: &mut TcpStream) {
    stream
        .write_all(b"GET /ping HTTP/1.1\r\nHost: api\r\n\r\n")
        .await
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while !String::from_utf8_lossy(&got).contains("pong") {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buf))
            .await
            .expect("an answer in time")
            .unwrap();
        assert!(n > 0, "closed before answering");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(
        got.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&got)
    );
}

#[tokio::test]
async fn idle_connections_filling_the_cap_are_closed_and_requests_still_get_through() {
    let s = server().await;
    let mut idle = Vec::new();
    for _ in 0..CAP * 2 {
        idle.push(TcpStream::connect(addr(&s)).await.unwrap());
    }
    // The cap is full of silent connections; a normal request is served once their
    // header timeout has closed them.
    let started = Instant::now();
    let response = s
        .client
        .get(s.url("/ping"))
        .timeout(Duration::from_secs(10))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let waited = started.elapsed();
    // It waited for a free slot: the cap held.
    assert!(
        waited >= HEADER_TIMEOUT && waited < Duration::from_secs(8),
        "{waited:?}"
    );
    for stream in &mut idle {
        closed_within(stream, HEADER_TIMEOUT * 5).await;
    }
    s.assert_still_serving().await;
    s.shutdown().await;
}

#[tokio::test]
async fn a_slowloris_connection_is_closed_after_the_header_timeout() {
    let s = server().await;
    let mut stream = TcpStream::connect(addr(&s)).await.unwrap();
    let started = Instant::now();
    let head = b"GET /ping HTTP/1.1\r\nHost: api\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let mut sent = 0;
    // One byte every 200 ms: each byte comes well within the timeout, the head never does.
    let closed = loop {
        if sent < head.len() && stream.write_all(&head[sent..=sent]).await.is_ok() {
            sent += 1;
        }
        let mut buf = [0u8; 256];
        match tokio::time::timeout(Duration::from_millis(200), stream.read(&mut buf)).await {
            Err(_) => {}
            Ok(Ok(0)) | Ok(Err(_)) => break started.elapsed(),
            Ok(Ok(_)) => panic!("answered a request whose head never ended"),
        }
        assert!(started.elapsed() < HEADER_TIMEOUT * 5, "still open");
    };
    assert!(closed >= HEADER_TIMEOUT, "closed after {closed:?}");
    assert!(sent > 3, "the client kept sending, {sent} bytes");
    s.assert_still_serving().await;
    s.shutdown().await;
}

#[tokio::test]
async fn keep_alive_connections_live_until_the_idle_timeout() {
    let s = server().await;
    let mut stream = TcpStream::connect(addr(&s)).await.unwrap();
    ping(&mut stream).await;
    // Idle longer than the header timeout: still open, and still usable.
    tokio::time::sleep(HEADER_TIMEOUT * 2).await;
    ping(&mut stream).await;
    let idle = closed_within(&mut stream, IDLE_TIMEOUT * 3).await;
    assert!(
        idle >= IDLE_TIMEOUT - Duration::from_millis(100),
        "closed after {idle:?}"
    );
    s.shutdown().await;
}

#[tokio::test]
async fn shutdown_does_not_wait_for_idle_connections() {
    let s = server().await;
    let mut kept = TcpStream::connect(addr(&s)).await.unwrap();
    ping(&mut kept).await;
    let _silent = TcpStream::connect(addr(&s)).await.unwrap();
    assert_eq!(
        s.post("/output/output", json!({"data": [{"id": 1}]})).await,
        written()
    );
    let started = Instant::now();
    let (summary, _dir) = s.shutdown().await;
    assert!(
        started.elapsed() < HEADER_TIMEOUT,
        "{:?}",
        started.elapsed()
    );
    assert_eq!(summary.files["output"].rows, 1);
    closed_within(&mut kept, Duration::from_secs(1)).await;
}
