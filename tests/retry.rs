//! Retries on the real engine: a run that fails as transient (exit status 75) is tried
//! again per its retry policy, each attempt a run of its own linked to the others; a
//! configuration failure never is. With the `behave` and `feed` test connectors.

mod common;

use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cde::model::{PipelineStatus, RetryPolicy, Run, RunStatus, Step, StepKind};
use cde::Cde;
use common::*;

async fn behave() -> (tempfile::TempDir, Arc<Cde>) {
    behave_image();
    let data = tempfile::tempdir().unwrap();
    let cde = Arc::new(open(config(data.path())).await);
    cde.register_file(&behave_manifest()).await.unwrap();
    (data, cde)
}

fn retrying(options: &[(&str, &str)], attempts: u32, backoff_secs: u64) -> cde::model::RunRequest {
    let mut request = request(BEHAVE, options);
    request.retry = Some(RetryPolicy {
        attempts,
        backoff_secs,
    });
    request
}

async fn messages(cde: &Cde, run_id: &str) -> Vec<String> {
    cde.store
        .logs(run_id, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, line)| line.message)
        .collect()
}

/// The attempts of a run, first to last, following `next_attempt` from the first.
async fn chain(cde: &Cde, first: &str) -> Vec<Run> {
    let mut runs = vec![cde.store.run(first).await.unwrap()];
    while let Some(next) = runs.last().unwrap().next_attempt.clone() {
        runs.push(cde.store.run(&next).await.unwrap());
        assert!(runs.len() <= 10, "a chain of at most 10 attempts");
    }
    runs
}

/// Each attempt waited at least its backoff after the one before ended, and started
/// no earlier than it was due.
fn assert_backoffs(runs: &[Run]) {
    for pair in runs.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        let delay = before.retry.delay_before(after.attempt);
        let not_before = after.not_before.expect("a retry is due at a time");
        let ended = before.finished_at.unwrap();
        assert!(
            not_before >= ended + delay,
            "attempt {} due at {not_before}, attempt {} ended at {ended}, delay {delay:?}",
            after.attempt,
            before.attempt
        );
        let started = after.started_at.expect("the retry started");
        assert!(
            started >= not_before,
            "attempt {} started at {started}, before it was due at {not_before}",
            after.attempt
        );
    }
}

#[tokio::test]
async fn a_transient_failure_is_retried_to_the_last_attempt() {
    let (_data, cde) = behave().await;
    let last = cde
        .run(retrying(
            &[
                ("MODE", "fail"),
                ("EXIT_CODE", "75"),
                ("ERROR", "the API answers 503"),
                ("TOKEN", "s3cret"),
            ],
            3,
            1,
        ))
        .await
        .unwrap();
    assert_eq!(
        last.attempt, 3,
        "Cde::run returns the last attempt: {last:?}"
    );
    assert_eq!(last.status, RunStatus::Failed, "{last:?}");
    assert_eq!(last.exit_code, Some(75));
    assert_eq!(
        last.reason.as_deref(),
        Some("transient failure (exit code 75): the API answers 503 (attempt 3)")
    );
    assert_eq!(last.next_attempt, None, "no attempt is left");

    let first = last
        .retry_of
        .clone()
        .expect("a retry names the first attempt");
    let runs = chain(&cde, &first).await;
    assert_eq!(
        runs.iter().map(|r| r.attempt).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    assert_eq!(runs[2].id, last.id);
    assert_eq!(runs[0].retry_of, None);
    assert_eq!(runs[0].not_before, None);
    for run in &runs {
        assert_eq!(run.status, RunStatus::Failed, "{run:?}");
        assert_eq!(run.exit_code, Some(75));
        assert_eq!(
            run.retry,
            RetryPolicy {
                attempts: 3,
                backoff_secs: 1
            }
        );
        // The same connector version, options, limits and state key, every time.
        assert_eq!(run.connector_version, runs[0].connector_version);
        assert_eq!(run.options, runs[0].options);
        assert_eq!(run.options["TOKEN"], "********");
        assert_eq!(run.limits, runs[0].limits);
        assert_eq!(run.state_key, runs[0].state_key);
        if run.attempt > 1 {
            assert_eq!(run.retry_of.as_deref(), Some(first.as_str()));
            assert_ne!(run.run_dir, runs[0].run_dir, "a run directory of its own");
        }
        // Each attempt ran the connector with its attempt number (and the password).
        let logs = messages(&cde, &run.id).await;
        assert!(
            logs.iter()
                .any(|m| m == &format!("the API answers 503 (attempt {})", run.attempt)),
            "{logs:#?}"
        );
        assert!(leftovers(&cde, &run.id).await.is_empty());
    }
    assert_backoffs(&runs);
    // The failed attempts say where their retry is.
    let logs = messages(&cde, &runs[0].id).await;
    assert!(
        logs.contains(&format!(
            "retrying in 1 s as run {} (attempt 2 of 3)",
            runs[1].id
        )),
        "{logs:#?}"
    );
    let logs = messages(&cde, &runs[1].id).await;
    assert!(
        logs.contains(&format!(
            "retrying in 2 s as run {} (attempt 3 of 3)",
            runs[2].id
        )),
        "{logs:#?}"
    );
    assert!(
        !messages(&cde, &runs[2].id)
            .await
            .iter()
            .any(|m| m.starts_with("retrying")),
        "the last attempt is not retried"
    );
    assert_eq!(
        cde.store.runs(&Default::default()).await.unwrap().len(),
        3,
        "three attempts, no more"
    );
    // The JSON of a run says which attempt it is.
    let json = serde_json::to_value(&runs[1]).unwrap();
    assert_eq!(json["attempt"], 2);
    assert_eq!(
        json["retry"],
        serde_json::json!({"attempts": 3, "backoff_secs": 1})
    );
    assert_eq!(json["retry_of"], first.as_str());
    assert_eq!(json["next_attempt"], runs[2].id.as_str());
    assert!(json["not_before"].is_string());
    let json = serde_json::to_value(&runs[0]).unwrap();
    assert!(json.get("retry_of").is_none() && json.get("not_before").is_none());
}

#[tokio::test]
async fn a_configuration_failure_or_another_exit_status_is_never_retried() {
    let (_data, cde) = behave().await;
    for (code, reason) in [
        ("78", "configuration failure (exit code 78)"),
        ("1", "exit code 1"),
    ] {
        let run = cde
            .run(retrying(&[("MODE", "fail"), ("EXIT_CODE", code)], 3, 1))
            .await
            .unwrap();
        assert_eq!(run.status, RunStatus::Failed, "{run:?}");
        assert_eq!(run.reason.as_deref(), Some(reason));
        assert_eq!((run.attempt, run.next_attempt.as_deref()), (1, None));
        assert!(
            !messages(&cde, &run.id)
                .await
                .iter()
                .any(|m| m.starts_with("retrying")),
            "exit code {code}"
        );
    }
    assert_eq!(
        cde.store.runs(&Default::default()).await.unwrap().len(),
        2,
        "one attempt each"
    );
}

#[tokio::test]
async fn a_run_that_fails_once_succeeds_on_its_retry_per_its_manifest() {
    behave_image();
    let data = tempfile::tempdir().unwrap();
    let cde = open(config(data.path())).await;
    // The manifest's policy, this time: no retry in the request.
    let manifest = std::fs::read_to_string(behave_manifest()).unwrap()
        + "retry: {attempts: 3, backoff_secs: 1}\n";
    let path = data.path().join("behave.yaml");
    std::fs::write(&path, manifest).unwrap();
    cde.register_file(&path).await.unwrap();
    let last = cde
        .run(request(
            BEHAVE,
            &[
                ("MODE", "fail"),
                ("EXIT_CODE", "75"),
                ("SUCCEED_FROM_ATTEMPT", "2"),
            ],
        ))
        .await
        .unwrap();
    assert_eq!(last.status, RunStatus::Succeeded, "{last:?}");
    assert_eq!((last.attempt, last.next_attempt.as_deref()), (2, None));
    assert_eq!(last.output_rows, Some(3));
    let runs = chain(&cde, last.retry_of.as_deref().unwrap()).await;
    assert_eq!(runs.len(), 2);
    assert_eq!(runs[0].status, RunStatus::Failed);
    assert_eq!(
        runs[0].retry,
        RetryPolicy {
            attempts: 3,
            backoff_secs: 1
        }
    );
    assert_backoffs(&runs);
    // The successful attempt's output is the connector's dataset; the failed one made none.
    let dataset = cde
        .store
        .latest_dataset(&cde::dataset::connector_dataset(BEHAVE))
        .await
        .unwrap()
        .expect("a dataset version");
    assert_eq!(dataset.run_id.as_deref(), Some(last.id.as_str()));
    assert_eq!(dataset.rows, 3);
    assert_eq!(dataset.version, 1);
    assert!(messages(&cde, &last.id)
        .await
        .contains(&"behave starting in mode fail, attempt 2".to_owned()));
}

#[tokio::test]
async fn the_queue_starts_a_retry_only_once_its_backoff_is_over() {
    let (_data, cde) = behave().await;
    let scheduler = tokio::spawn(cde.clone().schedule());
    let first = cde
        .submit(retrying(&[("MODE", "fail"), ("EXIT_CODE", "75")], 2, 3))
        .await
        .unwrap();
    let ended = wait_for(&cde, &first.id, RunStatus::Failed, 90).await;
    assert_eq!(ended.status, RunStatus::Failed, "{ended:?}");
    let next = ended.next_attempt.clone().expect("a retry is queued");
    let last = wait_until(
        format!("attempt 2 ({next}) to end"),
        Duration::from_secs(90),
        || async {
            // Named on the failed run just before it is recorded itself.
            match cde.store.run(&next).await {
                Ok(run) if run.status.is_finished() => Ok(run),
                seen => Err(format!("{seen:?}")),
            }
        },
    )
    .await;
    scheduler.abort();
    assert_eq!(last.status, RunStatus::Failed, "{last:?}");
    assert_eq!(last.attempt, 2);
    assert_eq!(last.next_attempt, None);
    assert_backoffs(&[ended, last]);
}

#[tokio::test]
async fn pipeline_steps_are_retried_with_the_same_inputs() {
    image("tests/connectors/feed");
    let data = tempfile::tempdir().unwrap();
    let cde = open(config(data.path())).await;
    let feed = root().join("tests/connectors/feed");
    let retry = "retry: {attempts: 2, backoff_secs: 1}\n";
    cde.register_file(&feed.join("manifest.yaml"))
        .await
        .unwrap();
    for manifest in ["service.yaml", "delta.yaml"] {
        let text = std::fs::read_to_string(feed.join(manifest)).unwrap() + retry;
        let path = data.path().join(manifest);
        std::fs::write(&path, text).unwrap();
        cde.register_file(&path).await.unwrap();
    }
    let step = |connector: &str, options: &[(&str, &str)]| Step {
        connector: connector.into(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        limits: Default::default(),
        columns: None,
        connection: None,
    };
    let rows = serde_json::json!([{"id": "1", "price": 1}, {"id": "2", "price": 2}]);
    let pipeline = cde::model::Pipeline {
        name: "flaky".into(),
        schedule: None,
        listeners: vec![],
        trigger: None,
        sources: vec![step("feed-source", &[("ROWS", &rows.to_string())]).into()],
        services: vec![step("feed-service", &[("MODE", "flaky")])],
        exports: vec![step("feed-delta", &[("FLAKY", "1")])],
    };
    cde.save_pipeline(&pipeline).await.unwrap();
    let run = cde.run_pipeline("flaky", "manual").await.unwrap();
    assert_eq!(run.status, PipelineStatus::Succeeded, "{run:?}");
    for kind in [StepKind::Service, StepKind::Export] {
        let step = run.steps.iter().find(|s| s.kind == kind).unwrap();
        assert_eq!(step.status, "succeeded", "{step:?}");
        let last = cde
            .store
            .run(step.run_id.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(last.attempt, 2, "the step is its last attempt: {last:?}");
        let first = cde
            .store
            .run(last.retry_of.as_deref().unwrap())
            .await
            .unwrap();
        assert_eq!(
            first.reason.as_deref(),
            Some("transient failure (exit code 75)")
        );
        assert_eq!(first.next_attempt.as_deref(), Some(last.id.as_str()));
        // The retry read what the first attempt read: the feed, or the delta's streams.
        let inputs = |run: &Run| {
            let dir = std::path::Path::new(&run.run_dir).join("input");
            let mut files: Vec<(String, String)> = std::fs::read_dir(&dir)
                .unwrap()
                .map(|entry| {
                    let path = entry.unwrap().path();
                    (
                        path.file_name().unwrap().to_string_lossy().into_owned(),
                        std::fs::read_to_string(&path).unwrap(),
                    )
                })
                .collect();
            files.sort();
            files
        };
        let (before, after) = (inputs(&first), inputs(&last));
        assert!(!before.is_empty(), "{kind:?} reads an input");
        assert_eq!(before, after, "{kind:?}");
        let logs = messages(&cde, &first.id).await;
        let read = |logs: &[String]| {
            logs.iter()
                .find(|m| m.starts_with("service read") || m.starts_with("export-delta"))
                .cloned()
        };
        assert!(read(&logs).is_some(), "{logs:#?}");
        assert_eq!(read(&logs), read(&messages(&cde, &last.id).await));
    }
    let dataset = cde
        .store
        .latest_dataset(&cde::dataset::pipeline_dataset("flaky"))
        .await
        .unwrap()
        .unwrap();
    let tagged = std::fs::read_to_string(dataset.path()).unwrap();
    assert_eq!(tagged.matches("___feed_seen").count(), 2, "{tagged}");
}

#[tokio::test]
async fn the_cli_follows_the_attempts_and_exits_with_the_last_ones_status() {
    behave_image();
    let data = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cde"))
            .env("CDE_RUN_NETWORK", TEST_NETWORK)
            .args(args)
            .env("CDE_DATA_DIR", data.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    let (code, _, stderr) = cli(&["connector", "register", behave_manifest().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{stderr}");
    let (code, stdout, stderr) = cli(&[
        "run",
        BEHAVE,
        "--attempts",
        "2",
        "--backoff",
        "1",
        "--set",
        "MODE=fail",
        "--set",
        "EXIT_CODE=75",
        "--set",
        "SUCCEED_FROM_ATTEMPT=2",
    ]);
    assert_eq!(
        code,
        Some(0),
        "the last attempt succeeded: {stdout}\n{stderr}"
    );
    let switch = stderr
        .lines()
        .find(|l| {
            l.starts_with(
                "attempt 1 of 2 failed: transient failure (exit code 75); retrying in 1 s as run ",
            )
        })
        .unwrap_or_else(|| panic!("{stderr}"));
    let second = switch.rsplit(' ').next().unwrap();
    assert!(
        stdout.contains("behave starting in mode fail, attempt 1")
            && stdout.contains("behave starting in mode fail, attempt 2"),
        "both attempts' logs are printed: {stdout}"
    );
    assert!(
        stdout.contains(&format!("run       {second}"))
            && stdout.contains("succeeded (exit code 0)"),
        "the outcome is the last attempt's: {stdout}"
    );
    let (code, runs, _) = cli(&["runs"]);
    assert_eq!(code, Some(0));
    let attempt_of = |id: &str| {
        runs.lines()
            .find(|l| l.starts_with(id))
            .unwrap_or_else(|| panic!("{runs}"))
            .split_whitespace()
            .nth(4)
            .unwrap()
            .to_owned()
    };
    assert_eq!(attempt_of(second), "2/2", "{runs}");
    assert!(runs.contains(" 1/2 "), "{runs}");
    assert!(runs.lines().next().unwrap().contains("ATTEMPT"), "{runs}");

    // Without attempts left, a transient failure is the outcome.
    let (code, stdout, stderr) = cli(&[
        "run",
        BEHAVE,
        "--attempts",
        "1",
        "--set",
        "MODE=fail",
        "--set",
        "EXIT_CODE=75",
    ]);
    assert_eq!(code, Some(1), "{stdout}\n{stderr}");
    assert!(!stderr.contains("retrying"), "{stderr}");
    assert!(
        stdout.contains("failed (transient failure (exit code 75))"),
        "{stdout}"
    );
    let (code, _, stderr) = cli(&["run", BEHAVE, "--attempts", "11"]);
    assert_eq!(code, Some(2), "{stderr}");
    assert!(stderr.contains("retry.attempts"), "{stderr}");
}
