//! The connector shares the run dir: what it plants there is never followed.

mod common;

use std::os::unix::fs::symlink;

use common::*;
use container_api::{Config, Server, Summary};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn a_planted_summary_tmp_symlink_is_not_followed() {
    let server = start().await;
    let run_dir = server.run_dir();
    let outside = server.dir.path().join("outside.json");
    std::fs::write(&outside, "forged").unwrap();
    assert_eq!(
        server
            .post("/output/output", json!({"data": [{"id": 1}, {"id": 2}]}))
            .await,
        written()
    );
    symlink(&outside, run_dir.join("summary.json.tmp")).unwrap();

    let (summary, dir) = server.shutdown().await;
    let run_dir = dir.path().join("run");
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "forged");
    let written_summary = run_dir.join("summary.json");
    assert!(std::fs::symlink_metadata(&written_summary)
        .unwrap()
        .file_type()
        .is_file());
    let read = Summary::read(&run_dir).unwrap();
    assert_eq!(read, summary);
    assert_eq!(read.files["output"].rows, 2);
    assert_eq!(read.columns, vec!["id"]);
    assert!(!run_dir.join("summary.json.tmp").exists());
}

#[tokio::test]
async fn output_files_are_not_opened_through_symlinks() {
    for planted in ["file", "dir"] {
        let server = start().await;
        let run_dir = server.run_dir();
        let outside = server.dir.path().join("outside");
        std::fs::create_dir_all(&outside).unwrap();
        let target = outside.join("output.jsonl");
        std::fs::write(&target, "host file\n").unwrap();
        if planted == "file" {
            std::fs::create_dir_all(run_dir.join("output")).unwrap();
            symlink(&target, run_dir.join("output/output.jsonl")).unwrap();
        } else {
            symlink(&outside, run_dir.join("output")).unwrap();
        }
        let (status, body) = server
            .post("/output/output", json!({"data": [{"id": 1}]}))
            .await;
        assert_eq!(
            status,
            StatusCode::INTERNAL_SERVER_ERROR,
            "{planted}: {body}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "host file\n");
        // Other files are unaffected.
        assert_eq!(
            server
                .post("/output/feedback", json!({"data": [{"id": 1}]}))
                .await
                .0,
            if planted == "file" {
                StatusCode::CREATED
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        );
        assert_eq!(std::fs::read_dir(&outside).unwrap().count(), 1, "{planted}");
        let (summary, _dir) = server.shutdown().await;
        assert_eq!(summary.files["output"].rows, 0);
    }
}

#[tokio::test]
async fn a_planted_logs_symlink_or_fifo_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let run_dir = dir.path().join("run");
    std::fs::create_dir_all(&run_dir).unwrap();
    let outside = dir.path().join("outside.log");
    std::fs::write(&outside, "").unwrap();
    symlink(&outside, run_dir.join("logs.jsonl")).unwrap();
    let mut config = Config::new(&run_dir);
    config.listen = "127.0.0.1:0".parse().unwrap();
    let error = Server::bind(config.clone()).await.err().unwrap();
    assert!(format!("{error:#}").contains("logs.jsonl"), "{error:#}");

    std::fs::remove_file(run_dir.join("logs.jsonl")).unwrap();
    nix_mkfifo(&run_dir.join("logs.jsonl"));
    // Refused without blocking on the FIFO.
    let bound = tokio::time::timeout(std::time::Duration::from_secs(5), Server::bind(config))
        .await
        .expect("opening a FIFO must not block");
    assert!(bound.is_err());
    assert_eq!(std::fs::read_to_string(&outside).unwrap(), "");
}

fn nix_mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .unwrap();
    assert!(status.success());
}
