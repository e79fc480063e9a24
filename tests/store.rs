//! The store on both databases: a SQLite file and a real PostgreSQL server.
//!
//! PostgreSQL comes from `CDE_TEST_DATABASE_URL` (a role that may create databases; `.ci/run`
//! starts Debian's server and sets it). Each test creates a database of its own and drops it.

mod common;

use cde::model::Limits;
use cde::model::Manifest;
use cde::model::RunFilter;
use cde::model::{Lease, Leased};
use cde::model::{Pipeline, PipelineRun, PipelineStatus, Step, StepKind, StepRun};
use cde::model::{RetryPolicy, Run, RunStatus};
use cde::store::Store;
use chrono::Utc;
use common::*;
use container_api::{LogLine, LogSource};

fn manifest(label: &str) -> Manifest {
    let text = std::fs::read_to_string(sample_manifest()).unwrap();
    Manifest::parse(
        &text.replace("label: Sample Python source", &format!("label: {label}")),
        false,
    )
    .unwrap()
}

fn run(code: &str, version: i64, created_secs_ago: i64) -> Run {
    Run {
        id: uuid::Uuid::now_v7().to_string(),
        connector_code: code.into(),
        connector_version: version,
        status: RunStatus::Queued,
        reason: None,
        exit_code: None,
        unmasked_options: [("TOKEN".to_owned(), "secret".to_owned())].into(),
        options: [("TOKEN".to_owned(), "********".to_owned())].into(),
        limits: Limits {
            timeout_secs: 60,
            memory_mb: 256,
            cpus: 0.5,
            pids: 64,
            disk_mb: 1024,
        },
        run_dir: "/tmp/nowhere".into(),
        output_rows: None,
        delta: None,
        network: None,
        state_key: None,
        attempt: 1,
        retry: Default::default(),
        retry_of: None,
        next_attempt: None,
        not_before: None,
        created_at: Utc::now() - chrono::Duration::seconds(created_secs_ago),
        started_at: None,
        running_at: None,
        finished_at: None,
    }
}

/// The same scenario on whichever database `url` names.
async fn exercise(url: Option<&str>, sqlite: &std::path::Path) {
    let store = Store::open(url, sqlite).await.unwrap();
    let instance = store.instance().to_owned();
    assert_eq!(
        Store::open(url, sqlite).await.unwrap().instance(),
        instance,
        "stable across opens"
    );
    store.ping().await.unwrap();

    // Incremental state: none, committed, replaced by a later run; the run keeps its key.
    let key = "connector/sample-python-source/0123456789abcdef";
    assert_eq!(store.state(key).await.unwrap(), None);
    store
        .commit_state(key, "run-1", r#"{"n":1}"#)
        .await
        .unwrap();
    store
        .commit_state(key, "run-2", r#"{"n":2}"#)
        .await
        .unwrap();
    assert_eq!(
        store.state(key).await.unwrap().as_deref(),
        Some(r#"{"n":2}"#)
    );
    assert_eq!(store.state("pipeline/p/0").await.unwrap(), None);

    assert_eq!(store.register(&manifest("one")).await.unwrap(), (1, true));
    assert_eq!(store.register(&manifest("one")).await.unwrap(), (1, false));
    assert_eq!(store.register(&manifest("two")).await.unwrap(), (2, true));
    let code = manifest("x").code;
    assert_eq!(store.connector(&code).await.unwrap().manifest.label, "two");
    assert_eq!(
        store
            .connector_version(&code, 1)
            .await
            .unwrap()
            .manifest
            .label,
        "one"
    );
    assert_eq!(store.connectors().await.unwrap().len(), 1);
    assert!(matches!(
        store.connector("nope").await,
        Err(cde::Error::NotFound {
            object: cde::error::Object::Connector,
            ..
        })
    ));

    let older = run(&code, 1, 10);
    let newer = run(&code, 2, 5);
    store.insert_run(&newer, None).await.unwrap();
    store.insert_run(&older, None).await.unwrap();
    let queue = store.runs_in(&[RunStatus::Queued]).await.unwrap();
    assert_eq!(
        queue[0].unmasked_options["TOKEN"], "secret",
        "sealed, and opened again"
    );
    assert_eq!(
        queue.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&older.id, &newer.id],
        "oldest first"
    );

    let mut claimed = older.clone();
    claimed.status = RunStatus::Starting;
    claimed.started_at = Some(Utc::now());
    let lease = |owner: &str, secs: i64| Lease {
        owner: owner.into(),
        until: Utc::now() + chrono::Duration::seconds(secs),
    };
    assert!(store.claim(&claimed, &lease("a", 30)).await.unwrap());
    assert!(
        !store.claim(&claimed, &lease("b", 30)).await.unwrap(),
        "a run is claimed once"
    );
    // Leases: only a lapsed one can be taken over, and then only its new holder renews.
    assert!(store
        .renew_lease(Leased::Run, &older.id, &lease("a", 30))
        .await
        .unwrap());
    assert!(
        !store.take_over(&older.id, &lease("b", 30)).await.unwrap(),
        "a live lease is kept"
    );
    assert!(store
        .renew_lease(Leased::Run, &older.id, &lease("a", -1))
        .await
        .unwrap());
    assert!(
        store.take_over(&older.id, &lease("b", 30)).await.unwrap(),
        "a lapsed lease is taken over"
    );
    assert!(
        !store.take_over(&older.id, &lease("c", 30)).await.unwrap(),
        "once"
    );
    assert!(!store
        .renew_lease(Leased::Run, &older.id, &lease("a", 30))
        .await
        .unwrap());
    assert!(store
        .renew_lease(Leased::Run, &older.id, &lease("b", 30))
        .await
        .unwrap());
    assert!(
        !store.take_over(&newer.id, &lease("b", 30)).await.unwrap(),
        "a queued run is not taken over"
    );
    assert!(store.request_cancel(&older.id).await.unwrap());
    assert!(store.cancel_requested(&older.id).await.unwrap());
    claimed.status = RunStatus::Failed;
    claimed.reason = Some("exit code 3".into());
    claimed.exit_code = Some(3);
    claimed.output_rows = Some(42);
    claimed.finished_at = Some(Utc::now());
    claimed.next_attempt = Some("the-next-attempt".into());
    assert!(store.update_run(&claimed).await.unwrap());
    assert!(
        !store.update_run(&claimed).await.unwrap(),
        "a finished run stays finished"
    );

    assert!(store.cancel_queued(&newer.id).await.unwrap());
    assert!(!store.cancel_queued(&newer.id).await.unwrap());
    let stored = store.run(&older.id).await.unwrap();
    assert_eq!(
        (stored.status, stored.exit_code, stored.output_rows),
        (RunStatus::Failed, Some(3), Some(42))
    );
    assert_eq!(
        stored.unmasked_options["TOKEN"], "********",
        "an ended run keeps no secret"
    );
    assert_eq!(stored.limits, older.limits);
    assert_eq!(stored.next_attempt.as_deref(), Some("the-next-attempt"));
    store.clear_next_attempt(&older.id).await.unwrap();
    assert_eq!(store.run(&older.id).await.unwrap().next_attempt, None);
    assert_eq!(
        (
            stored.attempt,
            stored.retry,
            stored.retry_of,
            stored.not_before
        ),
        (1, RetryPolicy::default(), None, None),
        "a first attempt"
    );
    assert_eq!(
        stored.created_at.timestamp_micros(),
        older.created_at.timestamp_micros()
    );

    let filter = |status| RunFilter {
        status: Some(status),
        ..Default::default()
    };
    assert_eq!(
        store.runs(&filter(RunStatus::Cancelled)).await.unwrap()[0].id,
        newer.id
    );
    assert_eq!(
        store.runs(&filter(RunStatus::Failed)).await.unwrap().len(),
        1
    );
    let all = store
        .runs(&RunFilter {
            connector: Some(code.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|r| &r.id).collect::<Vec<_>>(),
        [&newer.id, &older.id],
        "newest first"
    );
    assert!(store
        .runs(&RunFilter {
            connector: Some("other".into()),
            ..Default::default()
        })
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        store.count_by_status().await.unwrap(),
        [("cancelled".to_owned(), 1), ("failed".to_owned(), 1)]
    );
    // A retry: its attempt, policy, first attempt and backoff come back as recorded.
    let not_before = Utc::now() + chrono::Duration::seconds(30);
    let retry = Run {
        attempt: 2,
        retry: RetryPolicy {
            attempts: 3,
            backoff_secs: 10,
        },
        retry_of: Some(older.id.clone()),
        not_before: Some(not_before),
        ..run(&code, 2, 1)
    };
    store.insert_run(&retry, None).await.unwrap();
    let stored_retry = store.run(&retry.id).await.unwrap();
    assert_eq!(
        (
            stored_retry.attempt,
            stored_retry.retry,
            stored_retry.retry_of.as_deref(),
            stored_retry.next_attempt.as_deref(),
            stored_retry.not_before.map(|at| at.timestamp_micros()),
        ),
        (
            2,
            retry.retry,
            Some(older.id.as_str()),
            None,
            Some(not_before.timestamp_micros())
        )
    );
    assert!(store.cancel_queued(&retry.id).await.unwrap());
    assert_eq!(
        store.count_by_status().await.unwrap(),
        [("cancelled".to_owned(), 2), ("failed".to_owned(), 1)]
    );

    let lines: Vec<_> = (0..3)
        .map(|n| {
            LogLine::now(
                LogSource::Api,
                "info",
                format!("line {n}"),
                Some(serde_json::json!({"n": n})),
            )
        })
        .collect();
    assert_eq!(store.next_log_seq(&older.id).await.unwrap(), 0);
    store
        .append_logs(&older.id, 0, &lines[..2], 100)
        .await
        .unwrap();
    assert_eq!(store.next_log_seq(&older.id).await.unwrap(), 2);
    store
        .append_logs(&older.id, 2, &lines[2..], 150)
        .await
        .unwrap();
    assert_eq!(store.log_offset(&older.id).await.unwrap(), 150);
    let read = store.logs(&older.id, 1).await.unwrap();
    assert_eq!(read.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(), [1, 2]);
    assert_eq!(read[1].1, lines[2]);
    // A batch longer than one INSERT's worth of lines, in the same transaction.
    let many: Vec<_> = (0..500)
        .map(|n| LogLine::now(LogSource::Stdout, "info", format!("many {n}"), None))
        .collect();
    store.append_logs(&older.id, 3, &many, 9000).await.unwrap();
    assert_eq!(store.next_log_seq(&older.id).await.unwrap(), 503);
    assert_eq!(store.log_offset(&older.id).await.unwrap(), 9000);
    let read = store.logs(&older.id, 0).await.unwrap();
    assert_eq!(
        read.iter().map(|(seq, _)| *seq).collect::<Vec<_>>(),
        (0..503).collect::<Vec<_>>()
    );
    assert_eq!(read[502].1, many[499]);
    assert!(store.last_output_at(&older.id).await.unwrap().is_some());

    // The connector's own error (through the API) wins over a later line on stderr.
    assert_eq!(store.last_error(&older.id).await.unwrap(), None);
    let errors = [
        LogLine::now(LogSource::Stderr, "error", "early stderr".to_owned(), None),
        LogLine::now(
            LogSource::Api,
            "error",
            "the connector's error".to_owned(),
            None,
        ),
        LogLine::now(LogSource::Api, "info", "after".to_owned(), None),
        LogLine::now(LogSource::Stderr, "error", "late stderr".to_owned(), None),
    ];
    store
        .append_logs(&older.id, 503, &errors, 9100)
        .await
        .unwrap();
    assert_eq!(
        store.last_error(&older.id).await.unwrap().as_deref(),
        Some("the connector's error")
    );

    pipeline_runs(&store, &code).await;
}

/// Pipeline runs come back with their own steps, in order.
async fn pipeline_runs(store: &Store, code: &str) {
    store
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
    let lease = Lease {
        owner: "a".into(),
        until: Utc::now() + chrono::Duration::seconds(30),
    };
    let step = |position: i64, kind: StepKind| StepRun {
        position,
        kind,
        connector: code.into(),
        run_id: None,
        status: "succeeded".into(),
        reason: None,
        rows_in: Some(position),
        rows_out: None,
    };
    let mut ids = vec![];
    for (n, steps) in [2, 0, 3].into_iter().enumerate() {
        let mut run = PipelineRun {
            id: uuid::Uuid::now_v7().to_string(),
            pipeline: "shop".into(),
            status: PipelineStatus::Running,
            reason: None,
            trigger: "manual".into(),
            dataset_version: None,
            created_at: Utc::now() - chrono::Duration::seconds(10 - n as i64),
            finished_at: None,
            steps: vec![],
        };
        store.insert_pipeline_run(&run, &lease).await.unwrap();
        assert!(matches!(
            store
                .insert_pipeline_run(
                    &PipelineRun {
                        id: "other".into(),
                        ..run.clone()
                    },
                    &lease
                )
                .await,
            Err(cde::Error::Conflict(_))
        ));
        // Saved out of order, and one twice.
        for position in (0..steps).rev() {
            store
                .save_pipeline_step(&run.id, &step(position, StepKind::Source))
                .await
                .unwrap();
        }
        if steps > 0 {
            store
                .save_pipeline_step(&run.id, &step(0, StepKind::Export))
                .await
                .unwrap();
        }
        run.status = PipelineStatus::Succeeded;
        run.finished_at = Some(Utc::now());
        store.finish_pipeline_run(&run).await.unwrap();
        ids.push(run.id);
    }
    let runs = store.pipeline_runs("shop", 10).await.unwrap();
    let listed: Vec<_> = runs
        .iter()
        .map(|run| {
            let steps = run
                .steps
                .iter()
                .map(|s| (s.position, s.kind))
                .collect::<Vec<_>>();
            (run.id.clone(), run.status, steps)
        })
        .collect();
    use StepKind::*;
    assert_eq!(
        listed,
        [
            (
                ids[2].clone(),
                PipelineStatus::Succeeded,
                vec![(0, Export), (1, Source), (2, Source)]
            ),
            (ids[1].clone(), PipelineStatus::Succeeded, vec![]),
            (
                ids[0].clone(),
                PipelineStatus::Succeeded,
                vec![(0, Export), (1, Source)]
            ),
        ],
        "newest first, each with its own steps"
    );
    assert_eq!(store.pipeline_run(&ids[0]).await.unwrap().steps.len(), 2);
    assert!(matches!(
        store.pipeline_run("nope").await,
        Err(cde::Error::NotFound {
            object: cde::error::Object::PipelineRun,
            ..
        })
    ));
}

#[tokio::test]
async fn the_store_works_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    exercise(None, &dir.path().join("cde.db")).await;
}

#[tokio::test]
async fn the_store_works_on_postgresql() {
    let Some(postgres) = Postgres::create().await else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    exercise(Some(&postgres.url()), &dir.path().join("unused.db")).await;
    assert!(
        !dir.path().join("unused.db").exists(),
        "PostgreSQL was used, not SQLite"
    );
}

#[tokio::test]
async fn a_whole_run_is_recorded_in_postgresql() {
    let Some(postgres) = Postgres::create().await else {
        return;
    };
    sample_image();
    let data = tempfile::tempdir().unwrap();
    let cde = open(cde::Config {
        database_url: Some(postgres.url()),
        ..config(data.path())
    })
    .await;
    cde.register_file(&sample_manifest()).await.unwrap();
    let run = cde.run(request(SAMPLE, &[("NAME", "pg")])).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.output_rows, Some(3));
    let logs = cde.store.logs(&run.id, 0).await.unwrap();
    assert!(logs
        .iter()
        .any(|(_, l)| l.message == "starting sample source for pg"));
    assert!(leftovers(&cde, &run.id).await.is_empty());
    drop(cde);
}
