//! Retention: which finished runs, pipeline work directories and dataset versions `cde gc`
//! removes, on SQLite and PostgreSQL with fabricated records, and end to end with real runs.

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cde::model::Dataset;
use cde::model::Limits;
use cde::model::{Pipeline, PipelineRun, PipelineStatus, Step, StepKind, StepRun};
use cde::model::{Run, RunStatus};
use cde::{Cde, Config};
use chrono::Utc;
use common::*;
use container_api::{LogLine, LogSource};

fn days_ago(days: i64) -> chrono::DateTime<Utc> {
    Utc::now() - chrono::Duration::days(days)
}

/// A run of `code` that ended `days` ago (or is still running), with its directory.
async fn fabricate_run(cde: &Cde, code: &str, days: i64, status: RunStatus) -> Run {
    let id = uuid::Uuid::now_v7().to_string();
    let run_dir = cde.config.runs_dir().join(&id);
    std::fs::create_dir_all(run_dir.join("output")).unwrap();
    std::fs::write(run_dir.join("output/output.jsonl"), "{\"id\":\"1\"}\n").unwrap();
    let mut run = Run {
        id,
        connector_code: code.into(),
        connector_version: 1,
        status: RunStatus::Queued,
        reason: None,
        exit_code: None,
        unmasked_options: Default::default(),
        options: Default::default(),
        limits: Limits {
            timeout_secs: 60,
            memory_mb: 256,
            cpus: 0.5,
            pids: 64,
            disk_mb: 1024,
        },
        run_dir: run_dir.canonicalize().unwrap().display().to_string(),
        output_rows: None,
        delta: None,
        network: None,
        state_key: None,
        attempt: 1,
        retry: Default::default(),
        retry_of: None,
        next_attempt: None,
        not_before: None,
        created_at: days_ago(days),
        started_at: None,
        running_at: None,
        finished_at: None,
    };
    cde.store.insert_run(&run, None).await.unwrap();
    run.status = status;
    run.started_at = Some(days_ago(days));
    if status.is_finished() {
        run.finished_at = Some(days_ago(days));
    }
    assert!(cde.store.update_run(&run).await.unwrap());
    let line = LogLine::now(LogSource::Cde, "info", "a line", None);
    cde.store.append_logs(&run.id, 0, &[line], 0).await.unwrap();
    run
}

async fn fabricate_dataset(cde: &Cde, name: &str, version: i64, days: i64) -> Dataset {
    let path = cde
        .config
        .data_dir
        .join("datasets")
        .join(name)
        .join(format!("{version}.jsonl"));
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(&path, "{\"id\":\"1\"}\n").unwrap();
    let dataset = Dataset {
        name: name.into(),
        version,
        run_id: None,
        path: path.display().to_string(),
        rows: 1,
        columns: vec!["id".into()],
        created_at: days_ago(days),
    };
    cde.store.insert_dataset(&dataset).await.unwrap();
    dataset
}

async fn fabricate_pipeline_run(cde: &Cde, days: i64, finished: bool) -> PipelineRun {
    let mut run = PipelineRun {
        id: uuid::Uuid::now_v7().to_string(),
        pipeline: "shop".into(),
        status: PipelineStatus::Running,
        reason: None,
        trigger: "manual".into(),
        dataset_version: None,
        created_at: days_ago(days),
        finished_at: None,
        steps: vec![],
    };
    let lease = cde::model::Lease {
        owner: "retention-test".into(),
        until: chrono::Utc::now(),
    };
    cde.store.insert_pipeline_run(&run, &lease).await.unwrap();
    let work = cde.config.data_dir.join("pipeline-runs").join(&run.id);
    std::fs::create_dir_all(&work).unwrap();
    std::fs::write(work.join("feed-0.jsonl"), "{}\n").unwrap();
    if finished {
        run.status = PipelineStatus::Succeeded;
        run.finished_at = Some(days_ago(days));
        cde.store.finish_pipeline_run(&run).await.unwrap();
    }
    run
}

fn ids(runs: &[&Run]) -> Vec<String> {
    runs.iter().map(|r| r.id.clone()).collect()
}

/// The selection on whichever database `cde` uses.
async fn exercise(cde: &Cde) {
    let text = std::fs::read_to_string(sample_manifest()).unwrap();
    let manifest = cde::model::Manifest::parse(&text, false).unwrap();
    cde.store.register(&manifest).await.unwrap();
    let mut other = manifest.clone();
    other.code = "other-source".into();
    cde.store.register(&other).await.unwrap();
    let code = manifest.code.as_str();

    // Per connector: keep the newest 2 and what ended in the last 10 days.
    let a1 = fabricate_run(cde, code, 20, RunStatus::Succeeded).await;
    let a2 = fabricate_run(cde, code, 5, RunStatus::Failed).await;
    let a3 = fabricate_run(cde, code, 3, RunStatus::Succeeded).await;
    let a4 = fabricate_run(cde, code, 1, RunStatus::Cancelled).await;
    let b1 = fabricate_run(cde, "other-source", 20, RunStatus::TimedOut).await;
    let b2 = fabricate_run(cde, "other-source", 20, RunStatus::Running).await;
    // A step of a pipeline run still going.
    let b3 = fabricate_run(cde, "other-source", 20, RunStatus::Succeeded).await;
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("keep"), "host file").unwrap();
    std::os::unix::fs::symlink(outside.path(), Path::new(&a1.run_dir).join("link")).unwrap();

    cde.store
        .save_pipeline(&Pipeline {
            name: "shop".into(),
            schedule: None,
            listeners: vec![],
            trigger: None,
            sources: vec![Step {
                connector: code.into(),
                options: Default::default(),
                limits: Default::default(),
                columns: None,
                connection: None,
            }
            .into()],
            services: vec![],
            exports: vec![],
        })
        .await
        .unwrap();
    let p1 = fabricate_pipeline_run(cde, 20, true).await;
    let p2 = fabricate_pipeline_run(cde, 2, true).await;
    let p3 = fabricate_pipeline_run(cde, 1, true).await;
    let going = fabricate_pipeline_run(cde, 20, false).await;
    cde.store
        .save_pipeline_step(
            &going.id,
            &StepRun {
                position: 0,
                kind: StepKind::Source,
                connector: "other-source".into(),
                run_id: Some(b3.id.clone()),
                status: "succeeded".into(),
                reason: None,
                rows_in: None,
                rows_out: None,
            },
        )
        .await
        .unwrap();

    // Per dataset: keep the newest 2 and what is younger than 10 days, the latest always,
    // and an export-delta baseline.
    let v1 = fabricate_dataset(cde, "connector/x", 1, 30).await;
    let v2 = fabricate_dataset(cde, "connector/x", 2, 30).await;
    let v3 = fabricate_dataset(cde, "connector/x", 3, 0).await;
    let v4 = fabricate_dataset(cde, "connector/x", 4, 0).await;
    let solo = fabricate_dataset(cde, "connector/solo", 1, 90).await;
    cde.store
        .save_export_snapshot("shop", "1:delta", &v1.path, &a3.id)
        .await
        .unwrap();

    let dry = cde.collect_garbage(true).await.unwrap();
    assert!(dry.errors.is_empty(), "{:?}", dry.errors);
    let mut expired: Vec<_> = dry.runs.iter().map(|r| r.id.clone()).collect();
    expired.sort();
    let mut expected = ids(&[&a1, &a2, &b1]);
    expected.sort();
    assert_eq!(expired, expected);
    assert_eq!(dry.pipeline_runs, std::slice::from_ref(&p1.id));
    assert_eq!(
        dry.dataset_versions
            .iter()
            .map(|v| (v.name.as_str(), v.version))
            .collect::<Vec<_>>(),
        [("connector/x", 2)]
    );
    assert!(Path::new(&a1.run_dir).exists(), "a dry run removes nothing");
    assert!(dry.describe().contains("would remove 3 run(s)"));

    let report = cde.collect_garbage(false).await.unwrap();
    assert!(report.errors.is_empty(), "{:?}", report.errors);
    assert_eq!(report.runs.len(), 3);
    for run in [&a1, &a2, &b1] {
        assert!(!Path::new(&run.run_dir).exists(), "{} removed", run.id);
        assert!(cde.store.logs(&run.id, 0).await.unwrap().is_empty());
        assert_eq!(
            cde.store.run(&run.id).await.unwrap().status,
            run.status,
            "the record stays"
        );
    }
    for run in [&a3, &a4, &b2, &b3] {
        assert!(Path::new(&run.run_dir).exists(), "{} kept", run.id);
        assert_eq!(cde.store.logs(&run.id, 0).await.unwrap().len(), 1);
    }
    assert_eq!(
        std::fs::read_to_string(outside.path().join("keep")).unwrap(),
        "host file",
        "a link in a run directory is not followed"
    );
    let work = |run: &PipelineRun| cde.config.data_dir.join("pipeline-runs").join(&run.id);
    assert!(!work(&p1).exists());
    for run in [&p2, &p3, &going] {
        assert!(work(run).exists());
    }
    let versions: Vec<i64> = cde
        .store
        .datasets("connector/x")
        .await
        .unwrap()
        .iter()
        .map(|d| d.version)
        .collect();
    assert_eq!(versions, [4, 3, 1]);
    assert!(!Path::new(&v2.path).exists());
    for kept in [&v1, &v3, &v4, &solo] {
        assert!(Path::new(&kept.path).exists(), "{}", kept.path);
    }

    let again = cde.collect_garbage(false).await.unwrap();
    assert!(again.is_empty(), "{again:?}");
}

fn limits(config: Config) -> Config {
    Config {
        retain_runs: 2,
        retain_runs_days: 10,
        retain_dataset_versions: 2,
        retain_datasets_days: 10,
        ..config
    }
}

#[tokio::test]
async fn retention_selects_what_expired_on_sqlite() {
    let data = tempfile::tempdir().unwrap();
    let cde = open(limits(config(data.path()))).await;
    exercise(&cde).await;
}

#[tokio::test]
async fn retention_selects_what_expired_on_postgresql() {
    let Some(postgres) = Postgres::create().await else {
        return;
    };
    let data = tempfile::tempdir().unwrap();
    let cde = open(Config {
        database_url: Some(postgres.url()),
        ..limits(config(data.path()))
    })
    .await;
    exercise(&cde).await;
    drop(cde);
}

/// Real runs: `cde gc --dry-run` lists the older ones, and the server's periodic pass
/// removes them, keeping the newest run and the latest dataset version.
#[tokio::test]
async fn the_server_removes_expired_runs_and_versions() {
    behave_image();
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        retain_runs: 1,
        retain_runs_days: 0,
        retain_dataset_versions: 1,
        retain_datasets_days: 0,
        gc_interval_secs: 1,
        ..config(data.path())
    };
    let cde = Arc::new(open(config.clone()).await);
    cde.register_file(&behave_manifest()).await.unwrap();
    let mut runs = Vec::new();
    for _ in 0..3 {
        let run = cde.run(request(BEHAVE, &[])).await.unwrap();
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        runs.push(run);
    }
    let versions: Vec<PathBuf> = cde
        .store
        .datasets("connector/behave")
        .await
        .unwrap()
        .iter()
        .map(|d| d.path().to_path_buf())
        .collect();
    assert_eq!(versions.len(), 3);

    let output = std::process::Command::new(env!("CARGO_BIN_EXE_cde"))
        .env("CDE_RUN_NETWORK", TEST_NETWORK)
        .args(["gc", "--dry-run"])
        .env("CDE_DATA_DIR", data.path())
        .env("CDE_RETAIN_RUNS", "1")
        .env("CDE_RETAIN_DATASET_VERSIONS", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    for run in &runs[..2] {
        assert!(
            stdout.contains(&format!("run {} (behave", run.id)),
            "{stdout}"
        );
        assert!(Path::new(&run.run_dir).exists());
    }
    assert!(!stdout.contains(&runs[2].id), "{stdout}");
    assert!(
        stdout.contains("would remove 2 run(s), 0 pipeline run work dir(s), 2 dataset version(s)"),
        "{stdout}"
    );

    let gc = tokio::spawn(cde.clone().collect_garbage_periodically());
    wait_until(
        "the server to remove the run directories of the two older runs",
        Duration::from_secs(20),
        || async {
            let left: Vec<_> = runs[..2]
                .iter()
                .filter(|run| Path::new(&run.run_dir).exists())
                .map(|run| &run.run_dir)
                .collect();
            match left.is_empty() {
                true => Ok(()),
                false => Err(left),
            }
        },
    )
    .await;
    assert!(Path::new(&runs[2].run_dir).exists());
    wait_until(
        "the server to remove all but the latest dataset version",
        Duration::from_secs(20),
        || async {
            let versions = cde.store.datasets("connector/behave").await.unwrap();
            match versions.len() <= 1 {
                true => Ok(()),
                false => Err(versions),
            }
        },
    )
    .await;
    gc.abort();
    assert!(!cde.store.logs(&runs[2].id, 0).await.unwrap().is_empty());
    assert!(cde.store.logs(&runs[0].id, 0).await.unwrap().is_empty());
    assert!(!versions[1].exists() && !versions[2].exists());
    assert!(versions[0].exists(), "the latest version stays");
}
