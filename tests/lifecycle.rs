//! Every way a run can end, against the real Docker engine, with the `behave` test connector.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use cde::model::Leased;
use cde::model::{RunRequest, RunStatus};
use cde::Cde;
use common::*;

async fn behave(configure: impl FnOnce(&mut cde::Config)) -> (tempfile::TempDir, Arc<Cde>) {
    behave_image();
    let data = tempfile::tempdir().unwrap();
    let mut config = config(data.path());
    configure(&mut config);
    let cde = Arc::new(open(config).await);
    cde.register_file(&behave_manifest()).await.unwrap();
    (data, cde)
}

fn behave_request(options: &[(&str, &str)]) -> RunRequest {
    request(BEHAVE, options)
}

/// Starts a run in the background and returns once its connector runs.
async fn started(
    cde: &Arc<Cde>,
    request: RunRequest,
) -> (String, tokio::task::JoinHandle<cde::model::Run>) {
    let run = cde.submit(request).await.unwrap();
    let claimed = cde.claim(run.clone()).await.unwrap().unwrap();
    let executor = tokio::spawn({
        let cde = cde.clone();
        async move { cde.execute(claimed).await.unwrap() }
    });
    let running = wait_for(cde, &run.id, RunStatus::Running, 60).await;
    assert_eq!(running.status, RunStatus::Running, "{running:?}");
    // The connector has set itself up once its first log line is in.
    wait_until(
        format!("the first log line of run {}", run.id),
        Duration::from_secs(30),
        || async {
            let logs = cde.store.logs(&run.id, 0).await.unwrap();
            match logs
                .iter()
                .any(|(_, l)| l.message.starts_with("behave starting"))
            {
                true => Ok(()),
                false => Err(logs),
            }
        },
    )
    .await;
    (run.id, executor)
}

#[tokio::test]
async fn a_run_over_its_timeout_is_timed_out() {
    let (_data, cde) = behave(|_| {}).await;
    let mut request = behave_request(&[("MODE", "sleep"), ("SECONDS", "60")]);
    request.limits.timeout_secs = Some(2);
    let begun = Instant::now();
    let run = cde.run(request).await.unwrap();
    assert_eq!(run.status, RunStatus::TimedOut, "{run:?}");
    assert_eq!(run.reason.as_deref(), Some("timed out after 2s"));
    assert!(
        begun.elapsed() < Duration::from_secs(30),
        "{:?}",
        begun.elapsed()
    );
    assert_eq!(
        records(&run).len(),
        3,
        "output written before the timeout is kept"
    );
    assert!(run.running_at.is_some() && run.finished_at.is_some());
    assert!(leftovers(&cde, &run.id).await.is_empty());
}

#[tokio::test]
async fn cancel_stops_a_running_connector() {
    let (_data, cde) = behave(|_| {}).await;
    let (id, executor) = started(
        &cde,
        behave_request(&[("MODE", "sleep"), ("SECONDS", "60")]),
    )
    .await;
    let begun = Instant::now();
    cde.cancel(&id).await.unwrap();
    let run = executor.await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled, "{run:?}");
    assert_eq!(run.reason.as_deref(), Some("cancelled"));
    assert!(
        begun.elapsed() < Duration::from_secs(2),
        "SIGTERM ends it at once: {:?}",
        begun.elapsed()
    );
    assert_eq!(
        cde.store.run(&id).await.unwrap().status,
        RunStatus::Cancelled
    );
    assert!(leftovers(&cde, &id).await.is_empty());
}

#[tokio::test]
async fn cancel_kills_a_connector_that_ignores_sigterm_after_the_grace_period() {
    let (_data, cde) = behave(|c| c.stop_grace_secs = 2).await;
    let (id, executor) = started(
        &cde,
        behave_request(&[("MODE", "ignore-term"), ("SECONDS", "60")]),
    )
    .await;
    let begun = Instant::now();
    cde.cancel(&id).await.unwrap();
    let run = executor.await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled, "{run:?}");
    assert_eq!(run.exit_code, Some(137), "SIGKILL");
    assert!(
        begun.elapsed() >= Duration::from_secs(2),
        "{:?}",
        begun.elapsed()
    );
    let logs = cde.store.logs(&id, 0).await.unwrap();
    assert!(
        logs.iter().any(|(_, l)| l.message == "ignoring SIGTERM"),
        "SIGTERM came first"
    );
    assert!(leftovers(&cde, &id).await.is_empty());
}

#[tokio::test]
async fn a_queued_run_is_cancelled_at_once() {
    let (_data, cde) = behave(|_| {}).await;
    let run = cde.submit(behave_request(&[])).await.unwrap();
    let cancelled = cde.cancel(&run.id).await.unwrap();
    assert_eq!(cancelled.status, RunStatus::Cancelled);
    assert!(cancelled.finished_at.is_some());
    assert!(
        cde.claim(run).await.unwrap().is_none(),
        "a cancelled run never starts"
    );
}

#[tokio::test]
async fn exceeding_the_memory_limit_fails_with_out_of_memory() {
    let (_data, cde) = behave(|_| {}).await;
    let mut request = behave_request(&[("MODE", "oom")]);
    request.limits.memory_mb = Some(64);
    let run = cde.run(request).await.unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert_eq!(run.reason.as_deref(), Some("out of memory (limit 64 MiB)"));
    assert_eq!(run.exit_code, Some(137));
    assert!(leftovers(&cde, &run.id).await.is_empty());
}

#[tokio::test]
async fn a_vanished_connector_fails_the_run_as_lost() {
    let (_data, cde) = behave(|_| {}).await;
    let (id, executor) = started(
        &cde,
        behave_request(&[("MODE", "sleep"), ("SECONDS", "60")]),
    )
    .await;
    let runtime = cde.engine().await.unwrap();
    let container = cde::engine::container::find(runtime, &id).await.unwrap();
    runtime.remove(&container.unwrap()).await.unwrap();
    let run = executor.await.unwrap();
    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    assert_eq!(run.reason.as_deref(), Some("lost: container disappeared"));
    assert!(leftovers(&cde, &id).await.is_empty());
}

#[tokio::test]
async fn a_failing_or_hanging_health_check_refuses_the_registration() {
    behave_image();
    let data = tempfile::tempdir().unwrap();
    let cde = open(config(data.path())).await;
    let manifest = std::fs::read_to_string(behave_manifest()).unwrap();
    for (argument, reason) in [
        (
            "--health-check-fail",
            "exited with code 3: health check failing on purpose",
        ),
        ("--health-check-hang", "did not exit within 5s"),
    ] {
        let path = data.path().join("variant.yaml");
        std::fs::write(&path, manifest.replace("--health-check", argument)).unwrap();
        let begun = Instant::now();
        let err = cde.register_file(&path).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("health check of behave failed: {reason}")
        );
        assert!(begun.elapsed() < Duration::from_secs(15));
    }
    assert!(
        cde.store.connectors().await.unwrap().is_empty(),
        "nothing was registered"
    );
    let runtime = cde.engine().await.unwrap();
    let instance = format!("cde.instance={}", cde.store.instance());
    assert!(runtime
        .containers_labelled(&instance)
        .await
        .unwrap()
        .is_empty());
}

#[tokio::test]
async fn passwords_never_appear_in_logs_or_answers() {
    let (_data, cde) = behave(|_| {}).await;
    let secret = "s3cret-token-value";
    let run = cde
        .run(behave_request(&[
            ("MODE", "leak-secret"),
            ("TOKEN", secret),
        ]))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let logs = cde.store.logs(&run.id, 0).await.unwrap();
    let text: String = logs
        .iter()
        .map(|(_, l)| format!("{}\n", l.message))
        .collect();
    assert!(text.contains("the token is ********"), "{text}");
    assert!(text.contains("stdout token ********"), "{text}");
    assert!(!text.contains(secret));
    let stored = cde.store.run(&run.id).await.unwrap();
    assert_eq!(stored.options["TOKEN"], "********");
    assert!(!serde_json::to_string(&stored).unwrap().contains(secret));
    assert_eq!(
        stored.unmasked_options["TOKEN"], "********",
        "an ended run keeps no secret (tests/secrets.rs)"
    );
}

#[tokio::test]
async fn queued_runs_start_in_order_within_the_concurrency_limit() {
    let (_data, cde) = behave(|c| c.max_concurrent_runs = 1).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(cde.submit(behave_request(&[])).await.unwrap().id);
    }
    let scheduler = tokio::spawn(cde.clone().schedule());
    let mut runs = Vec::new();
    for id in &ids {
        let run = wait_for(&cde, id, RunStatus::Succeeded, 120).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        runs.push(run);
    }
    scheduler.abort();
    for pair in runs.windows(2) {
        let (before, after) = (&pair[0], &pair[1]);
        assert!(
            after.started_at.unwrap() >= before.finished_at.unwrap(),
            "one at a time, first in first out: {before:?} {after:?}"
        );
    }
}

#[tokio::test]
async fn the_sweeper_removes_containers_no_active_run_owns() {
    let (_data, cde) = behave(|_| {}).await;
    let runtime = cde.engine().await.unwrap();
    let body = bollard::models::ContainerCreateBody {
        image: Some("cde-test/behave:latest".into()),
        labels: Some(
            [
                ("cde.managed-by".to_owned(), "cde".to_owned()),
                ("cde.instance".to_owned(), cde.store.instance().to_owned()),
                ("cde.run".to_owned(), "no-such-run".to_owned()),
            ]
            .into(),
        ),
        ..Default::default()
    };
    let name = format!("cde-test-orphan-{}", uuid::Uuid::new_v4().simple());
    let orphan = runtime.create(&name, body.clone()).await.unwrap();
    // A health check in progress is left alone.
    let mut labels = body.labels.clone().unwrap();
    labels.remove("cde.run");
    labels.insert("cde.role".into(), "health-check".into());
    let checking = bollard::models::ContainerCreateBody {
        labels: Some(labels),
        ..body
    };
    let name = format!("cde-test-health-{}", uuid::Uuid::new_v4().simple());
    let checking = runtime.create(&name, checking).await.unwrap();
    assert_eq!(cde.sweep().await.unwrap(), 1);
    let instance = format!("cde.instance={}", cde.store.instance());
    let left: Vec<_> = runtime
        .containers_labelled(&instance)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(
        left,
        std::slice::from_ref(&checking),
        "the orphan {orphan} is gone, the health check stays"
    );
    runtime.remove(&checking).await.unwrap();
}

#[tokio::test]
async fn a_run_left_by_a_dead_process_is_finished_by_the_next_one() {
    let (data, first) = behave(|_| {}).await;
    // The first orchestrator runs on a runtime of its own, shut down mid-run: its tasks die
    // as they would with the process, while the pod keeps running.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let request = behave_request(&[("MODE", "sleep"), ("SECONDS", "12"), ("RECORDS", "5")]);
    let run = first.submit(request).await.unwrap();
    let claimed = first.claim(run.clone()).await.unwrap().unwrap();
    let first_lease = lease(&first, Leased::Run, &run.id).await;
    doomed.spawn({
        let first = first.clone();
        async move { first.execute(claimed).await }
    });
    let running = wait_for(&first, &run.id, RunStatus::Running, 60).await;
    assert_eq!(running.status, RunStatus::Running);
    let second = Arc::new(open(config(data.path())).await);
    // The first renews its lease (3 s here) while it lives: once the lease it claimed the
    // run with has run out, there is still nothing to adopt.
    wait_until(
        format!(
            "the lease run {} was claimed with to run out, renewed",
            run.id
        ),
        Duration::from_secs(30),
        || async {
            let now = lease(&second, Leased::Run, &run.id).await;
            match chrono::Utc::now() > first_lease.until && now.until > first_lease.until {
                true => Ok(()),
                false => Err((first_lease.clone(), now)),
            }
        },
    )
    .await;
    assert_eq!(second.recover().await.unwrap(), 0, "the executor is alive");
    doomed.shutdown_background();
    assert_eq!(
        second.adopt_orphans().await.unwrap(),
        0,
        "the lease has not lapsed yet"
    );
    // Once the dead executor's lease lapses, the second takes the run over.
    let adopted = std::cell::Cell::new(0);
    wait_until(
        format!("run {} to be adopted once its lease lapsed", run.id),
        Duration::from_secs(30),
        || async {
            adopted.set(adopted.get() + second.adopt_orphans().await.unwrap());
            match adopted.get() {
                0 => Err(lease(&second, Leased::Run, &run.id).await),
                _ => Ok(()),
            }
        },
    )
    .await;
    assert_eq!(adopted.get(), 1);
    assert_ne!(
        lease(&second, Leased::Run, &run.id).await.owner,
        first_lease.owner,
        "the second holds the run's lease now"
    );
    let run = wait_for(&second, &run.id, RunStatus::Succeeded, 60).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.output_rows, Some(10));
    assert_eq!(
        records(&run).len(),
        10,
        "records from before and after the restart"
    );
    let logs = second.store.logs(&run.id, 0).await.unwrap();
    let ticks: Vec<_> = logs
        .iter()
        .filter(|(_, l)| l.message.starts_with("tick "))
        .map(|(_, l)| l.message.clone())
        .collect();
    let expected: Vec<_> = (1..=ticks.len()).map(|n| format!("tick {n}")).collect();
    assert!(ticks.len() >= 7, "{ticks:?}");
    assert_eq!(ticks, expected, "every STDOUT line once, in order");
    assert!(logs.iter().any(|(_, l)| l.message == "behave done"));
    assert!(leftovers(&second, &run.id).await.is_empty());
}

#[tokio::test]
async fn a_connector_image_with_a_non_root_user_runs_and_writes_its_output() {
    let (data, cde) = behave(|_| {}).await;
    // The Container API in the run's container runs as the image's user too.
    let image = "cde-test/behave-nonroot:latest";
    let mut build = std::process::Command::new("docker")
        .args([
            "build",
            "--quiet",
            "--label",
            "cde.sample=true",
            "-t",
            image,
            "-",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    use std::io::Write;
    build
        .stdin
        .take()
        .unwrap()
        .write_all(b"FROM cde-test/behave:latest\nUSER 4321:4321\n")
        .unwrap();
    assert!(build.wait().unwrap().success(), "docker build");
    let manifest = std::fs::read_to_string(behave_manifest())
        .unwrap()
        .replace("code: behave", "code: behave-nonroot")
        .replace("cde-test/behave:latest", image);
    let path = data.path().join("nonroot.yaml");
    std::fs::write(&path, manifest).unwrap();
    cde.register_file(&path).await.unwrap();

    let run = cde
        .run(request("behave-nonroot", &[("RECORDS", "4")]))
        .await
        .unwrap();
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.output_rows, Some(4));
    assert_eq!(records(&run).len(), 4);
    use std::os::unix::fs::MetadataExt;
    assert_eq!(std::fs::metadata(run.output_path()).unwrap().uid(), 4321);
    let logs = cde.store.logs(&run.id, 0).await.unwrap();
    assert!(
        logs.iter().any(|(_, l)| l.message == "behave done"),
        "{logs:?}"
    );
    assert!(leftovers(&cde, &run.id).await.is_empty());
}
