//! Copies to storage and transport, and their processes.

mod common;

use std::time::Duration;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn copy(s: &TestServer, path: &str, source: &str, remote: &str) -> (StatusCode, Value) {
    s.post(path, json!({"source_file": source, "remote_file": remote}))
        .await
}

/// Polls the process until it is no longer pending; returns its last view.
async fn wait_for(s: &TestServer, id: &str) -> Value {
    for _ in 0..500 {
        let (status, body) = s.get(&format!("/processes/{id}")).await;
        assert_eq!(status, StatusCode::OK);
        if body["data"]["status"] != "pending" {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("process {id} still pending after 5 s");
}

fn started_id(answer: (StatusCode, Value)) -> String {
    let (status, body) = answer;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body["message"], "Copy started.");
    body["data"]["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn copies_land_in_internal_and_transport_storage() {
    let s = start().await;
    let work = s.run_dir().join("work");
    std::fs::create_dir_all(work.join("out")).unwrap();
    let content: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
    std::fs::write(work.join("out/export.csv"), &content).unwrap();

    let internal =
        started_id(copy(&s, "/storage/internal", "out/export.csv", "state/last.csv").await);
    let transport = started_id(
        copy(
            &s,
            "/store/to-transport",
            "/cde/work/out/export.csv",
            "feed.csv",
        )
        .await,
    );
    assert_ne!(internal, transport);
    for id in [&internal, &transport] {
        assert_eq!(
            wait_for(&s, id).await,
            json!({"message": "", "data": {"id": id, "status": "success", "exit-code": 0, "seconds-remaining": 0}})
        );
    }
    let storage = s.run_dir().join("storage");
    assert_eq!(
        std::fs::read(storage.join("internal/state/last.csv")).unwrap(),
        content
    );
    assert_eq!(
        std::fs::read(storage.join("transport/feed.csv")).unwrap(),
        content
    );
    // No temporary files are left behind.
    assert_eq!(
        std::fs::read_dir(storage.join("transport"))
            .unwrap()
            .count(),
        1
    );
    assert_eq!(
        s.get("/processes/pending").await,
        (StatusCode::OK, json!({"message": "", "data": []}))
    );
}

#[tokio::test]
async fn development_mode_accepts_absolute_paths_under_the_real_work_dir() {
    let s = start().await;
    let file = s.run_dir().join("work/data.json");
    std::fs::write(&file, "{}").unwrap();
    let id = started_id(copy(&s, "/storage/internal", file.to_str().unwrap(), "data.json").await);
    assert_eq!(wait_for(&s, &id).await["data"]["status"], "success");
}

#[tokio::test]
async fn a_copy_that_fails_reports_it() {
    let s = start().await;
    std::fs::write(s.run_dir().join("work/a.txt"), "a").unwrap();
    let first = started_id(copy(&s, "/storage/internal", "a.txt", "a").await);
    wait_for(&s, &first).await;
    // `a` is a file now, so nothing can be put under it.
    let second = started_id(copy(&s, "/storage/internal", "a.txt", "a/b").await);
    assert_eq!(
        wait_for(&s, &second).await["data"],
        json!({"id": second, "status": "failed", "exit-code": 1, "seconds-remaining": 0})
    );
    s.assert_still_serving().await;
}

#[tokio::test]
async fn bad_copy_requests_are_400_naming_the_field() {
    let s = start().await;
    let work = s.run_dir().join("work");
    std::fs::create_dir_all(work.join("dir")).unwrap();
    std::fs::write(work.join("ok.csv"), "x").unwrap();
    std::fs::write(s.run_dir().join("secret.txt"), "secret").unwrap();
    std::os::unix::fs::symlink(s.run_dir().join("secret.txt"), work.join("link.txt")).unwrap();

    let outside = "This value should be a path inside the working directory.";
    let missing = "This file does not exist.";
    let remote_problem = "This value should be a relative file path without \"..\".";
    for (source, remote, field, problem) in [
        ("../secret.txt", "x", "source_file", outside),
        ("dir/../../secret.txt", "x", "source_file", outside),
        ("link.txt", "x", "source_file", outside),
        ("/etc/passwd", "x", "source_file", outside),
        ("/cde/work/../secret.txt", "x", "source_file", outside),
        ("nope.csv", "x", "source_file", missing),
        ("/cde/work/nope.csv", "x", "source_file", missing),
        ("dir", "x", "source_file", "This value should be a file."),
        ("ok.csv", "../x", "remote_file", remote_problem),
        ("ok.csv", "a/../../x", "remote_file", remote_problem),
        ("ok.csv", "/abs", "remote_file", remote_problem),
        ("ok.csv", ".", "remote_file", remote_problem),
    ] {
        for path in ["/storage/internal", "/store/to-transport"] {
            let (status, body) = copy(&s, path, source, remote).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {source} {remote}");
            assert_eq!(
                body,
                validation_failed(json!({field: problem})),
                "{path} {source} {remote}"
            );
        }
    }
    let (status, body) = s.post("/storage/internal", json!({"remote_file": 3})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        validation_failed(json!({
            "source_file": "This value should not be blank.",
            "remote_file": "This value should be of type string.",
        }))
    );
    let (status, body) = s.post("/store/to-transport", json!(["ok.csv"])).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        validation_failed(json!({"body": "This value should be a JSON object."}))
    );
    assert!(!s.run_dir().join("storage").exists());
    s.assert_still_serving().await;
}

#[tokio::test]
async fn unknown_processes_are_404() {
    let s = start().await;
    let not_found = (
        StatusCode::NOT_FOUND,
        json!({"message": "Process not found."}),
    );
    for id in ["0190b6a4-8c2e-7c1a-9d51-3f1e2a4b5c6d", "nope", "%00"] {
        assert_eq!(s.get(&format!("/processes/{id}")).await, not_found, "{id}");
    }
}

#[tokio::test]
async fn shutdown_waits_for_copies() {
    let s = start().await;
    let content = vec![7u8; 20_000_000];
    std::fs::write(s.run_dir().join("work/big.bin"), &content).unwrap();
    started_id(copy(&s, "/store/to-transport", "big.bin", "big.bin").await);
    let (_summary, dir) = s.shutdown().await;
    assert_eq!(
        std::fs::read(dir.path().join("run/storage/transport/big.bin")).unwrap(),
        content
    );
}
