//! The run lifecycle's decisions against a scripted engine: what cde does when a connector
//! exits, is OOM-killed, vanishes, outlives its timeout or fills its disk, and when a run is
//! cancelled before it starts or taken over after its container is gone. The store is real
//! (SQLite); the engine is `cde::engine::fake`. How a started container is awaited (its timeout,
//! its disk limit) is tested on tokio's paused clock.
//! The same scenarios on the real engine are in lifecycle.rs and containment.rs.

use std::sync::Arc;
use std::time::Duration;

use cde::engine::container::SUPERVISOR_MARGIN_SECS;
use cde::engine::fake::{Behaviour, Call, FakeEngine};
use cde::engine::{Engine, Exit};
use cde::model::{LimitsOverride, Manifest, Run, RunRequest, RunStatus};
use cde::run::await_exit;
use cde::run::outcome::StopCause;
use cde::{Cde, Config};
use container_api::LogSource;

const IMAGE: &str = "fake/connector:1";
const GRACE_SECS: u64 = 2;

struct Setup {
    cde: Cde,
    engine: Arc<FakeEngine>,
    _data: tempfile::TempDir,
}

async fn setup(engine: FakeEngine) -> Setup {
    let data = tempfile::tempdir().unwrap();
    let config = Config {
        data_dir: data.path().to_path_buf(),
        // Installed, never run: a fake engine mounts nothing.
        executable: Some(env!("CARGO_BIN_EXE_cde").into()),
        stop_grace_secs: GRACE_SECS,
        ..Config::default()
    };
    let engine = Arc::new(engine);
    let cde = Cde::with_engine(config, engine.clone()).await.unwrap();
    let manifest = Manifest::parse(
        &format!(
            "code: fake\nlabel: Fake\ntype: data-source\nimage: {IMAGE}\ncommand: run\n\
             limits: {{memory_mb: 64, disk_mb: 100}}\n"
        ),
        false,
    )
    .unwrap();
    cde.store.register(&manifest).await.unwrap();
    Setup {
        cde,
        engine,
        _data: data,
    }
}

fn request(timeout_secs: Option<u64>) -> RunRequest {
    RunRequest {
        connector: "fake".into(),
        limits: LimitsOverride {
            timeout_secs,
            ..Default::default()
        },
        ..Default::default()
    }
}

fn exits(code: i64, oom_killed: bool) -> Behaviour {
    Behaviour::Exits(Exit { code, oom_killed })
}

fn outcome(run: &Run) -> (RunStatus, &str, Option<i64>) {
    (
        run.status,
        run.reason.as_deref().unwrap_or(""),
        run.exit_code,
    )
}

fn stops(engine: &FakeEngine) -> Vec<u64> {
    let calls = engine.calls();
    calls
        .into_iter()
        .filter_map(|c| match c {
            Call::Stop { grace_secs, .. } => Some(grace_secs),
            _ => None,
        })
        .collect()
}

fn starts(engine: &FakeEngine) -> usize {
    let calls = engine.calls();
    calls.iter().filter(|c| matches!(c, Call::Start(_))).count()
}

#[tokio::test]
async fn a_connector_exiting_0_succeeds_its_output_logged_its_container_removed() {
    let s = setup(FakeEngine::new(&[IMAGE], exits(0, false)).printing("hello\nworld")).await;
    let run = s.cde.run(request(None)).await.unwrap();
    assert_eq!(
        outcome(&run),
        (RunStatus::Succeeded, "exit code 0", Some(0))
    );
    assert_eq!(run.output_rows, Some(0));
    let messages: Vec<_> = s
        .cde
        .store
        .logs(&run.id, 0)
        .await
        .unwrap()
        .into_iter()
        .map(|(_, line)| (line.source, line.message))
        .collect();
    assert!(messages.contains(&(LogSource::Stdout, "hello".into())));
    assert!(messages.contains(&(LogSource::Stdout, "world".into())));
    assert_eq!(s.engine.container_count(), 0, "the container is removed");
    let calls = s.engine.calls();
    assert!(matches!(
        calls.as_slice(),
        [Call::Create(_), Call::Start(_), Call::Remove(_)]
    ));
}

#[tokio::test]
async fn a_non_zero_exit_fails_the_run_naming_the_code() {
    let s = setup(FakeEngine::new(&[IMAGE], exits(3, false))).await;
    let run = s.cde.run(request(None)).await.unwrap();
    assert_eq!(outcome(&run), (RunStatus::Failed, "exit code 3", Some(3)));
}

#[tokio::test]
async fn the_oom_killer_fails_the_run_naming_the_limit() {
    let s = setup(FakeEngine::new(&[IMAGE], exits(137, true))).await;
    let run = s.cde.run(request(None)).await.unwrap();
    assert_eq!(
        outcome(&run),
        (RunStatus::Failed, "out of memory (limit 64 MiB)", Some(137))
    );
}

#[tokio::test]
async fn a_missing_image_fails_the_run_before_any_container_exists() {
    let s = setup(FakeEngine::new(&[], exits(0, false))).await;
    let run = s.cde.run(request(None)).await.unwrap();
    assert_eq!(
        outcome(&run),
        (RunStatus::Failed, "image not found: fake/connector:1", None)
    );
    assert!(s
        .engine
        .calls()
        .iter()
        .all(|c| !matches!(c, Call::Create(_))));
}

#[tokio::test]
async fn a_run_cancelled_before_its_container_starts_never_starts() {
    let s = setup(FakeEngine::new(&[IMAGE], exits(0, false))).await;
    let queued = s.cde.submit(request(None)).await.unwrap();
    let claimed = s.cde.claim(queued).await.unwrap().expect("claimed");
    let cancelling = s.cde.cancel(&claimed.id).await.unwrap();
    assert_eq!(
        cancelling.status,
        RunStatus::Starting,
        "the executor records the end"
    );
    let run = s.cde.execute(claimed).await.unwrap();
    assert_eq!(outcome(&run), (RunStatus::Cancelled, "cancelled", None));
    assert_eq!(starts(&s.engine), 0, "the container never started");
    assert_eq!(s.engine.container_count(), 0);
}

#[tokio::test]
async fn a_queued_run_cancelled_ends_at_once_without_an_engine_call() {
    let s = setup(FakeEngine::new(&[IMAGE], exits(0, false))).await;
    let queued = s.cde.submit(request(None)).await.unwrap();
    let run = s.cde.cancel(&queued.id).await.unwrap();
    assert_eq!(run.status, RunStatus::Cancelled);
    assert!(s.engine.calls().is_empty());
}

#[tokio::test]
async fn a_container_removed_by_someone_else_loses_the_run() {
    let s = setup(FakeEngine::new(&[IMAGE], Behaviour::Vanishes)).await;
    let run = s.cde.run(request(None)).await.unwrap();
    assert_eq!(
        outcome(&run),
        (RunStatus::Failed, "lost: container disappeared", None)
    );
}

#[tokio::test]
async fn a_running_run_whose_container_is_gone_is_lost_when_taken_over() {
    let s = setup(FakeEngine::new(&[IMAGE], exits(0, false))).await;
    let queued = s.cde.submit(request(None)).await.unwrap();
    let mut run = s.cde.claim(queued).await.unwrap().expect("claimed");
    run.status = RunStatus::Running;
    s.cde.store.update_run(&run).await.unwrap();
    let run = s.cde.resume(run).await.unwrap();
    assert_eq!(
        outcome(&run),
        (RunStatus::Failed, "lost: container disappeared", None)
    );
    assert_eq!(starts(&s.engine), 0, "a lost run is not started again");
}

#[tokio::test]
async fn a_starting_run_taken_over_before_its_container_started_is_started() {
    let s = setup(FakeEngine::new(&[IMAGE], exits(0, false))).await;
    let queued = s.cde.submit(request(None)).await.unwrap();
    let run = s.cde.claim(queued).await.unwrap().expect("claimed");
    let run = s.cde.resume(run).await.unwrap();
    assert_eq!(run.status, RunStatus::Succeeded);
    assert_eq!(starts(&s.engine), 1);
}

#[tokio::test]
async fn a_run_past_its_timeout_is_stopped_with_the_grace_period_and_timed_out() {
    let s = setup(FakeEngine::new(&[IMAGE], Behaviour::RunsUntilStopped)).await;
    let run = s.cde.run(request(Some(1))).await.unwrap();
    assert_eq!(
        outcome(&run),
        (RunStatus::TimedOut, "timed out after 1s", Some(143))
    );
    assert_eq!(stops(&s.engine), [GRACE_SECS + SUPERVISOR_MARGIN_SECS]);
}

#[tokio::test]
async fn a_run_filling_its_disk_past_the_limit_is_stopped_and_fails() {
    let engine = FakeEngine::new(&[IMAGE], Behaviour::RunsUntilStopped).filling_layer(200 << 20);
    let s = setup(engine).await;
    let run = s.cde.run(request(Some(600))).await.unwrap();
    assert_eq!(
        outcome(&run),
        (
            RunStatus::Failed,
            "disk limit exceeded (100 MiB)",
            Some(143)
        )
    );
    assert_eq!(stops(&s.engine), [GRACE_SECS + SUPERVISOR_MARGIN_SECS]);
}

/// A container of `engine`, started.
async fn started(engine: &FakeEngine) -> String {
    let id = engine.create("c", Default::default()).await.unwrap();
    engine.start(&id).await.unwrap();
    id
}

#[tokio::test(start_paused = true)]
async fn waiting_stops_the_container_when_the_timeout_passes_on_the_clock() {
    let engine = FakeEngine::new(&[IMAGE], Behaviour::RunsUntilStopped);
    let id = started(&engine).await;
    let dir = tempfile::tempdir().unwrap();
    let begun = tokio::time::Instant::now();
    let timeout = Duration::from_secs(3600);
    let waited = await_exit(&engine, &id, timeout, dir.path(), 100, 7).await;
    assert_eq!(begun.elapsed(), timeout, "stopped exactly at the timeout");
    let exit = Exit {
        code: 143,
        oom_killed: false,
    };
    assert_eq!(waited.unwrap(), (Some(exit), Some(StopCause::Timeout)));
    assert_eq!(stops(&engine), [7]);
}

#[tokio::test(start_paused = true)]
async fn waiting_does_not_stop_a_container_that_exits_before_the_timeout() {
    let engine = FakeEngine::new(&[IMAGE], exits(0, false));
    let id = started(&engine).await;
    let dir = tempfile::tempdir().unwrap();
    let waited = await_exit(&engine, &id, Duration::from_secs(1), dir.path(), 100, 7).await;
    let exit = Exit {
        code: 0,
        oom_killed: false,
    };
    assert_eq!(waited.unwrap(), (Some(exit), None));
    assert!(stops(&engine).is_empty());
}

#[tokio::test(start_paused = true)]
async fn waiting_stops_a_container_whose_disk_use_passes_the_limit() {
    let engine = FakeEngine::new(&[IMAGE], Behaviour::RunsUntilStopped).filling_layer(101 << 20);
    let id = started(&engine).await;
    let dir = tempfile::tempdir().unwrap();
    let begun = tokio::time::Instant::now();
    let waited = await_exit(&engine, &id, Duration::from_secs(3600), dir.path(), 100, 7).await;
    assert!(begun.elapsed() < Duration::from_secs(2), "measured at once");
    assert_eq!(waited.unwrap().1, Some(StopCause::Disk));
    assert_eq!(stops(&engine), [7]);
}

#[tokio::test(start_paused = true)]
async fn waiting_on_a_vanished_container_reports_no_exit() {
    let engine = FakeEngine::new(&[IMAGE], Behaviour::Vanishes);
    let id = started(&engine).await;
    let dir = tempfile::tempdir().unwrap();
    let waited = await_exit(&engine, &id, Duration::from_secs(60), dir.path(), 100, 7).await;
    assert_eq!(waited.unwrap(), (None, None));
}

#[tokio::test]
async fn registration_runs_the_health_check_in_a_container_it_removes() {
    let s = setup(FakeEngine::new(&[IMAGE], exits(0, false))).await;
    let manifest = Manifest::parse(
        &format!("code: checked\nlabel: C\ntype: data-source\nimage: {IMAGE}\ncommand: run\n"),
        false,
    )
    .unwrap();
    let registration = s.cde.register(manifest).await.unwrap();
    assert!(registration.created);
    assert_eq!(starts(&s.engine), 1);
    assert_eq!(s.engine.container_count(), 0);
}

#[tokio::test]
async fn a_failing_health_check_refuses_the_registration() {
    let s = setup(FakeEngine::new(&[IMAGE], exits(1, false)).printing("bad credentials")).await;
    let manifest = Manifest::parse(
        &format!("code: refused\nlabel: R\ntype: data-source\nimage: {IMAGE}\ncommand: run\n"),
        false,
    )
    .unwrap();
    let error = s.cde.register(manifest).await.unwrap_err();
    assert_eq!(error.code(), cde::error::ErrorCode::HealthCheckFailed);
    assert!(error.to_string().contains("bad credentials"), "{error}");
    assert!(s.cde.store.connector("refused").await.is_err());
}
