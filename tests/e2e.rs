//! End-to-end scenarios against the real Docker engine: the sample connector in its pod.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

use cde::run::{Run, RunStatus};
use cde::{Cde, Config};
use container_api::LogSource;

const SAMPLE: &str = "sample-python-source";

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

fn sample_manifest() -> PathBuf {
    root().join("sample-connectors/python/manifest.yaml")
}

/// The sample image is built once per test binary (a cached build product, like base images).
fn sample_image() {
    static BUILT: OnceLock<()> = OnceLock::new();
    BUILT.get_or_init(|| cde::demo::build_sample_image().expect("sample image builds"));
}

async fn cde(data_dir: &Path) -> Cde {
    let config = Config {
        data_dir: data_dir.to_path_buf(),
        ..Config::default()
    };
    Cde::open(config).await.unwrap()
}

async fn run_sample(options: &[(&str, &str)]) -> (tempfile::TempDir, Cde, Run) {
    sample_image();
    let data = tempfile::tempdir().unwrap();
    let cde = cde(data.path()).await;
    cde.register(&sample_manifest()).await.unwrap();
    let options: BTreeMap<_, _> = options
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let run = cde.run(SAMPLE, options).await.unwrap();
    (data, cde, run)
}

/// Containers of a run still on the engine (there must be none once it is recorded).
async fn leftovers(cde: &Cde, run_id: &str) -> Vec<String> {
    let runtime = cde.runtime().await.unwrap();
    runtime
        .containers_labelled(&format!("cde.run={run_id}"))
        .await
        .unwrap()
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

    let logs = cde.store.logs(&run.id).await.unwrap();
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
        stdout.contains("status    failed (exit code 1)"),
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
    assert_eq!(run.reason.as_deref(), Some("exit code 1"));
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
    let data = tempfile::tempdir().unwrap();
    let manifest = std::fs::read_to_string(sample_manifest())
        .unwrap()
        .replace("cde-sample/python:latest", "cde-test/does-not-exist:never");
    let path = data.path().join("missing.yaml");
    std::fs::write(&path, manifest).unwrap();
    let cde = cde(data.path()).await;
    cde.register(&path).await.unwrap();
    let run = cde.run(SAMPLE, BTreeMap::new()).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    assert_eq!(
        run.reason.as_deref(),
        Some("image not found: cde-test/does-not-exist:never")
    );
    assert_eq!(run.exit_code, None);
    assert!(leftovers(&cde, &run.id).await.is_empty());
}

#[tokio::test]
async fn invalid_options_are_rejected_before_anything_runs() {
    let data = tempfile::tempdir().unwrap();
    let cde = cde(data.path()).await;
    cde.register(&sample_manifest()).await.unwrap();
    let given = BTreeMap::from([("COLOUR".to_owned(), "red".to_owned())]);
    let err = cde.run(SAMPLE, given).await.unwrap_err();
    assert!(
        err.to_string().contains("unknown option \"COLOUR\""),
        "{err}"
    );
    let given = BTreeMap::from([("SHOULD_FAIL".to_owned(), "maybe".to_owned())]);
    assert!(cde.run(SAMPLE, given).await.is_err());
    assert!(
        cde.store.runs(10).await.unwrap().is_empty(),
        "no run was recorded"
    );
    let err = cde
        .run("no-such-connector", BTreeMap::new())
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "connector not found: no-such-connector");
}
