//! End-to-end scenarios against the real Docker engine: the sample connector in its pod.

mod common;

use std::process::Command;

use cde::model::{Run, RunStatus};
use cde::Cde;
use common::*;
use container_api::LogSource;

async fn cde(data_dir: &std::path::Path) -> Cde {
    open(config(data_dir)).await
}

async fn run_sample(options: &[(&str, &str)]) -> (tempfile::TempDir, Cde, Run) {
    sample_image();
    let data = tempfile::tempdir().unwrap();
    let cde = cde(data.path()).await;
    cde.register_file(&sample_manifest()).await.unwrap();
    let run = cde.run(request(SAMPLE, options)).await.unwrap();
    (data, cde, run)
}

#[tokio::test]
async fn sample_source_writes_its_records_and_logs() {
    let (_data, cde, run) = run_sample(&[("NAME", "e2e")]).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.exit_code, Some(0));
    assert_eq!(run.output_rows, Some(3));

    let output = std::fs::read_to_string(run.output_path()).unwrap();
    let records: Vec<serde_json::Value> = output
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(records.len(), 3);
    assert!(records
        .iter()
        .all(|r| r["title"].as_str().unwrap().contains("e2e")));
    assert!(
        records.iter().any(|r| r.get("brand-name").is_some()),
        "nested objects are flattened: {output}"
    );

    let logs: Vec<_> = cde
        .store
        .logs(&run.id, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, l)| l)
        .collect();
    let has = |source: LogSource, level: &str, text: &str| {
        logs.iter()
            .any(|l| l.source == source && l.level == level && l.message.contains(text))
    };
    assert!(
        has(LogSource::Api, "info", "starting sample source for e2e"),
        "{logs:#?}"
    );
    assert!(logs
        .iter()
        .any(|l| l.source == LogSource::Api && l.level == "debug"));
    assert!(logs
        .iter()
        .any(|l| l.source == LogSource::Api && l.level == "success"));
    assert!(
        logs.iter()
            .any(|l| l.source == LogSource::Stderr && l.level == "error"),
        "STDERR lines are error level: {logs:#?}"
    );
    assert!(logs.iter().any(|l| l.source == LogSource::Stdout));
    assert!(leftovers(&cde, &run.id).await.is_empty());

    let stored = cde.store.run(&run.id).await.unwrap();
    assert_eq!(stored.status, RunStatus::Succeeded);
    assert!(stored.started_at.is_some() && stored.finished_at.is_some());
}

#[tokio::test]
async fn should_fail_fails_the_run_and_the_cli_exits_non_zero() {
    sample_image();
    let data = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cde"))
            .env("CDE_RUN_NETWORK", TEST_NETWORK)
            .args(args)
            .env("CDE_DATA_DIR", data.path())
            .output()
            .unwrap()
    };
    let registered = cli(&["connector", "register", sample_manifest().to_str().unwrap()]);
    assert!(registered.status.success(), "{registered:?}");
    assert_eq!(
        String::from_utf8_lossy(&registered.stdout).trim(),
        format!("registered {SAMPLE} version 1")
    );

    let out = cli(&["run", SAMPLE, "--set", "SHOULD_FAIL=1"]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("status    failed (exit code 1: failing on purpose (SHOULD_FAIL=1))"),
        "{stdout}"
    );
    assert!(
        stdout.contains("failing on purpose"),
        "the run's logs are printed: {stdout}"
    );

    let run_id = stdout
        .lines()
        .find_map(|l| l.strip_prefix("run       "))
        .expect("run id printed")
        .to_owned();
    let cde = cde(data.path()).await;
    let run = cde.store.run(&run_id).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.exit_code, Some(1));
    // The reason gives the connector's own last error.
    assert_eq!(
        run.reason.as_deref(),
        Some("exit code 1: failing on purpose (SHOULD_FAIL=1)")
    );
    assert!(leftovers(&cde, &run_id).await.is_empty());

    let logs = cli(&["logs", &run_id]);
    assert!(String::from_utf8_lossy(&logs.stdout).contains("failing on purpose"));
    let runs = cli(&["runs"]);
    assert!(String::from_utf8_lossy(&runs.stdout).contains(&run_id));

    let ok = cli(&["run", SAMPLE, "--set", "NAME=cli"]);
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stdout)
    );
}

#[tokio::test]
async fn a_missing_image_fails_the_run_with_a_clear_reason() {
    sample_image();
    let data = tempfile::tempdir().unwrap();
    // Registration checks the image, so it disappears between registration and the run.
    let tag = format!("cde-test/vanishing:{}", uuid::Uuid::new_v4().simple());
    docker(&["tag", "cde-sample/python:latest", &tag]);
    let manifest = std::fs::read_to_string(sample_manifest())
        .unwrap()
        .replace("cde-sample/python:latest", &tag);
    let path = data.path().join("vanishing.yaml");
    std::fs::write(&path, manifest).unwrap();
    let cde = cde(data.path()).await;
    cde.register_file(&path).await.unwrap();
    docker(&["image", "rm", &tag]);
    let run = cde.run(request(SAMPLE, &[])).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(run.reason, Some(format!("image not found: {tag}")));
    assert_eq!(run.exit_code, None);
    assert!(leftovers(&cde, &run.id).await.is_empty());
}

#[tokio::test]
async fn invalid_options_are_rejected_before_anything_runs() {
    sample_image();
    let data = tempfile::tempdir().unwrap();
    let cde = cde(data.path()).await;
    cde.register_file(&sample_manifest()).await.unwrap();
    let err = cde
        .run(request(SAMPLE, &[("COLOUR", "red")]))
        .await
        .unwrap_err();
    assert!(
        err.to_string().contains("unknown option \"COLOUR\""),
        "{err}"
    );
    assert!(cde
        .run(request(SAMPLE, &[("SHOULD_FAIL", "maybe")]))
        .await
        .is_err());
    let mut too_small = request(SAMPLE, &[]);
    too_small.limits.memory_mb = Some(1);
    let err = cde.run(too_small).await.unwrap_err();
    assert!(err.to_string().contains("limits.memory_mb"), "{err}");
    let runs = cde.store.runs(&Default::default()).await.unwrap();
    assert!(runs.is_empty(), "no run was recorded");
    let err = cde
        .run(request("no-such-connector", &[]))
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "connector not found: no-such-connector");
}

fn docker(args: &[&str]) {
    let status = Command::new("docker").args(args).status().unwrap();
    assert!(status.success(), "docker {args:?}");
}
