//! A connector may write anything into its own run, and nothing else. Each test runs the
//! `attack` connector (tests/connectors/attack) doing exactly one attack through its run
//! directory on the real engine, shows the attack happened, and that nothing outside the
//! run was affected and the run ended with a clear reason.

mod common;

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::sync::Arc;
use std::time::Duration;

use cde::dataset::connector_dataset;
use cde::model::Leased;
use cde::model::{Run, RunStatus};
use cde::Cde;
use common::*;

const ATTACK: &str = "attack";

async fn attack(data: &std::path::Path) -> Arc<Cde> {
    image("tests/connectors/attack");
    let cde = Arc::new(open(config(data)).await);
    cde.register_file(&root().join("tests/connectors/attack/manifest.yaml"))
        .await
        .unwrap();
    cde
}

/// `GET path` of the management API serving `cde`: the status and the body.
async fn api_get(cde: &Arc<Cde>, path: &str) -> (u16, serde_json::Value) {
    let server = cde::server::Server::start(cde.clone(), "token".to_owned(), &[])
        .await
        .unwrap();
    let url = format!("{}{path}", server.url());
    let response = reqwest::Client::new()
        .get(url)
        .bearer_auth("token")
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let body = response.json().await.unwrap();
    server.shutdown().await;
    (status, body)
}

async fn versions(cde: &Cde) -> Vec<cde::model::Dataset> {
    cde.store
        .datasets(&connector_dataset(ATTACK))
        .await
        .unwrap()
}

#[tokio::test]
async fn an_output_symlink_to_a_host_file_is_refused() {
    let data = tempfile::tempdir().unwrap();
    let cde = attack(data.path()).await;
    // A host file that would pass for a record if cde followed the link.
    let host = tempfile::tempdir().unwrap();
    let target = host.path().join("host.jsonl");
    std::fs::write(&target, "{\"id\":\"host secret\"}\n").unwrap();
    std::fs::set_permissions(&target, PermissionsExt::from_mode(0o640)).unwrap();

    let run = cde
        .run(request(
            ATTACK,
            &[
                ("MODE", "symlink-output"),
                ("TARGET", target.to_str().unwrap()),
            ],
        ))
        .await
        .unwrap();
    let planted = std::fs::symlink_metadata(run.output_path()).unwrap();
    assert!(
        planted.file_type().is_symlink(),
        "the attack planted its link"
    );

    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let reason = run.reason.unwrap();
    assert!(
        reason.contains("output/output.jsonl is not a regular file"),
        "{reason}"
    );
    assert!(versions(&cde).await.is_empty(), "no dataset from a link");
    let (status, body) = api_get(&cde, &format!("/runs/{}/output", run.id)).await;
    assert_eq!(status, 422, "{body}");
    assert_eq!(body["error"]["code"], "invalid_output");
    assert!(!body.to_string().contains("host secret"), "{body}");
    let host_file = std::fs::metadata(&target).unwrap();
    assert_eq!(
        host_file.permissions().mode() & 0o777,
        0o640,
        "not chmodded"
    );
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        "{\"id\":\"host secret\"}\n"
    );
    assert_eq!(host_file.nlink(), 1, "not linked into the data directory");
}

#[tokio::test]
async fn a_forged_summary_does_not_change_the_counts() {
    let data = tempfile::tempdir().unwrap();
    let cde = attack(data.path()).await;
    let run = cde
        .run(request(ATTACK, &[("MODE", "forge-summary")]))
        .await
        .unwrap();
    let summary =
        std::fs::read_to_string(std::path::Path::new(&run.run_dir).join("summary.json")).unwrap();
    assert!(
        summary.contains("999999"),
        "the forged summary stayed: {summary}"
    );

    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    assert_eq!(run.output_rows, Some(3));
    let versions = versions(&cde).await;
    assert_eq!(versions.len(), 1);
    assert_eq!(versions[0].rows, 3);
    assert_eq!(versions[0].columns, ["id", "name"]);
}

#[tokio::test]
async fn lines_written_around_the_api_fail_the_run_with_their_line_number() {
    let data = tempfile::tempdir().unwrap();
    let cde = attack(data.path()).await;
    let run = cde
        .run(request(ATTACK, &[("MODE", "garbage")]))
        .await
        .unwrap();
    let written = std::fs::read_to_string(run.output_path()).unwrap();
    assert!(written.contains("THIS IS NOT JSON"), "{written}");

    assert_eq!(run.status, RunStatus::Failed, "{run:?}");
    let reason = run.reason.unwrap();
    assert!(
        reason.contains("output/output.jsonl line 4: not a JSON object"),
        "{reason}"
    );
    assert_eq!(run.exit_code, Some(0), "the connector itself exited 0");
    assert!(versions(&cde).await.is_empty());
    let (status, body) = api_get(&cde, &format!("/runs/{}/output", run.id)).await;
    assert_eq!(status, 422, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("line 4 is not JSON"),
        "{body}"
    );
}

#[tokio::test]
async fn forged_log_lines_neither_pass_for_cde_nor_move_the_resume_point() {
    let data = tempfile::tempdir().unwrap();
    let first = attack(data.path()).await;
    // The first orchestrator dies mid-run with the runtime its tasks run on.
    let doomed = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    let run = first
        .submit(request(ATTACK, &[("MODE", "forge-logs"), ("LINES", "50")]))
        .await
        .unwrap();
    let claimed = first.claim(run.clone()).await.unwrap().unwrap();
    doomed.spawn({
        let first = first.clone();
        async move { first.execute(claimed).await }
    });
    // Until some STDOUT lines and the forged lines are in.
    wait_until(
        format!(
            "the forged lines and STDOUT line 5 in the log of run {}",
            run.id
        ),
        Duration::from_secs(60),
        || async {
            let logs = first.store.logs(&run.id, 0).await.unwrap();
            let forged = logs.iter().any(|(_, l)| l.message.starts_with("forged"));
            match forged && logs.iter().any(|(_, l)| l.message == "line 5") {
                true => Ok(()),
                false => Err(logs),
            }
        },
    )
    .await;
    doomed.shutdown_background();

    let second = Arc::new(open(config(data.path())).await);
    adopt(&second, 1).await;
    let run = wait_for(&second, &run.id, RunStatus::Succeeded, 60).await;
    assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    let logs = second.store.logs(&run.id, 0).await.unwrap();
    let lines: Vec<_> = logs
        .iter()
        .filter(|(_, l)| l.message.starts_with("line "))
        .map(|(_, l)| l.message.clone())
        .collect();
    let expected: Vec<_> = (1..=50).map(|n| format!("line {n}")).collect();
    assert_eq!(lines, expected, "every STDOUT line once, in order");
    let forged: Vec<_> = logs
        .iter()
        .filter(|(_, l)| l.message.starts_with("forged"))
        .collect();
    assert_eq!(forged.len(), 2, "{logs:?}");
    assert!(
        forged
            .iter()
            .all(|(_, l)| l.source == container_api::LogSource::Api),
        "a line in the API's file is an API line, whatever it claims: {forged:?}"
    );
}

#[tokio::test]
async fn runs_finishing_together_each_get_a_version_holding_their_own_rows() {
    let data = tempfile::tempdir().unwrap();
    let cde = attack(data.path()).await;
    let runs = futures_util::future::join_all((0..8).map(|n| {
        let cde = cde.clone();
        async move {
            let tag = format!("run-{n}");
            let run = cde
                .run(request(ATTACK, &[("MODE", "tagged"), ("TAG", &tag)]))
                .await
                .unwrap();
            (run, tag)
        }
    }))
    .await;
    let tag_of =
        |run_id: &str| -> &str { &runs.iter().find(|(run, _)| run.id == run_id).unwrap().1 };
    for (run, _) in &runs {
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
    }
    let versions = versions(&cde).await;
    let mut numbers: Vec<_> = versions.iter().map(|d| d.version).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=8).collect::<Vec<_>>());
    for version in &versions {
        let run_id = version.run_id.as_deref().unwrap();
        let tags: Vec<String> = std::fs::read_to_string(version.path())
            .unwrap()
            .lines()
            .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["tag"].to_string())
            .collect();
        let own = format!("\"{}\"", tag_of(run_id));
        assert_eq!(tags, [own.as_str(); 3], "version {}", version.version);
    }
}

/// Waits until `cde` has adopted `count` runs whose executor is gone (and no more).
async fn adopt(cde: &Arc<Cde>, count: usize) {
    let adopted = std::cell::Cell::new(0);
    wait_until(
        format!("{count} orphaned run(s) to be adopted"),
        Duration::from_secs(30),
        || async {
            adopted.set(adopted.get() + cde.adopt_orphans().await.unwrap());
            match adopted.get() >= count {
                true => Ok(()),
                false => Err(format!("{} adopted", adopted.get())),
            }
        },
    )
    .await;
    assert_eq!(adopted.get(), count, "runs adopted");
}

#[tokio::test]
async fn a_run_whose_executor_died_before_starting_its_container_is_started_by_the_adopter() {
    let data = tempfile::tempdir().unwrap();
    let first = attack(data.path()).await;
    let inputs = cde::model::RunInputs::default();
    // Its executor created the container and died before starting it.
    let created = first
        .start_with(request(ATTACK, &[("TAG", "created")]), &inputs)
        .await
        .unwrap();
    let container = first.create_container(&created).await.unwrap().unwrap();
    let runtime = first.engine().await.unwrap();
    assert!(!runtime.has_started(&container).await.unwrap());
    // Another one died before it could even create it.
    let claimed = first
        .start_with(request(ATTACK, &[("TAG", "claimed")]), &inputs)
        .await
        .unwrap();
    assert!(cde::engine::container::find(runtime, &claimed.id)
        .await
        .unwrap()
        .is_none());

    let second = Arc::new(open(config(data.path())).await);
    adopt(&second, 2).await;
    for id in [&created.id, &claimed.id] {
        let run: Run = wait_for(&second, id, RunStatus::Succeeded, 60).await;
        assert_eq!(run.status, RunStatus::Succeeded, "{run:?}");
        assert_eq!(run.output_rows, Some(3));
        assert!(leftovers(&second, id).await.is_empty());
    }
}

#[tokio::test]
async fn a_server_starting_leaves_a_live_pipeline_run_alone_and_fails_a_dead_one() {
    let data = tempfile::tempdir().unwrap();
    let cde = attack(data.path()).await;
    let pipeline = cde::model::Pipeline::parse(
        "name: slow\nsources:\n  - {connector: attack, options: {MODE: tagged, LINES: \"25\"}}\n",
        false,
    )
    .unwrap();
    cde.save_pipeline(&pipeline).await.unwrap();
    let live = cde.begin_pipeline_run("slow", "manual").await.unwrap();
    let first_lease = lease(&cde, Leased::PipelineRun, &live.id).await;
    let live_id = live.id.clone();
    let executing = tokio::spawn({
        let cde = cde.clone();
        async move { cde.execute_pipeline_run(live).await.unwrap() }
    });
    // A server starts beside it, recovering again and again until the first lease
    // period has passed and the live run's executor has renewed its lease.
    let server = Arc::new(open(config(data.path())).await);
    wait_until(
        format!("pipeline run {live_id} to outlive its first lease"),
        Duration::from_secs(30),
        || async {
            server.recover().await.unwrap();
            let run = server.store.pipeline_run(&live_id).await.unwrap();
            assert_eq!(
                run.status,
                cde::model::PipelineStatus::Running,
                "the live run ended within its first lease, too soon to show anything: {run:?}"
            );
            let now = lease(&server, Leased::PipelineRun, &live_id).await;
            match chrono::Utc::now() > first_lease.until && now.until > first_lease.until {
                true => Ok(()),
                false => Err((first_lease.clone(), now)),
            }
        },
    )
    .await;
    let finished = executing.await.unwrap();
    assert_eq!(
        finished.status,
        cde::model::PipelineStatus::Succeeded,
        "{finished:?}"
    );

    // A pipeline run whose executor is gone ends as failed once its lease lapses.
    let dead = cde.begin_pipeline_run("slow", "manual").await.unwrap();
    let run = wait_until(
        format!("the dead pipeline run {} to fail", dead.id),
        Duration::from_secs(30),
        || async {
            server.recover().await.unwrap();
            let run = server.store.pipeline_run(&dead.id).await.unwrap();
            match run.status == cde::model::PipelineStatus::Failed {
                true => Ok(run),
                false => Err(run),
            }
        },
    )
    .await;
    assert!(
        run.reason.as_deref().unwrap().contains("interrupted"),
        "{run:?}"
    );
}

#[tokio::test]
async fn a_state_file_planted_as_a_symlink_or_holding_a_secret_is_not_kept() {
    let data = tempfile::tempdir().unwrap();
    let cde = attack(data.path()).await;
    let host = tempfile::tempdir().unwrap();
    let target = host.path().join("host-state.json");
    std::fs::write(&target, r#"{"host": "secret"}"#).unwrap();

    let linked = cde
        .run(request(
            ATTACK,
            &[
                ("MODE", "symlink-state"),
                ("TARGET", target.to_str().unwrap()),
            ],
        ))
        .await
        .unwrap();
    let planted = std::path::Path::new(&linked.run_dir).join("output/state.json");
    assert!(std::fs::symlink_metadata(&planted)
        .unwrap()
        .file_type()
        .is_symlink());
    assert_eq!(linked.status, RunStatus::Failed, "{linked:?}");
    let reason = linked.reason.clone().unwrap();
    assert!(
        reason.contains("output/state.json is not a regular file"),
        "{reason}"
    );
    let key = linked.state_key.clone().unwrap();
    assert_eq!(cde.store.state(&key).await.unwrap(), None);
    assert_eq!(
        std::fs::read_to_string(&target).unwrap(),
        r#"{"host": "secret"}"#
    );

    let leaked = cde
        .run(request(
            ATTACK,
            &[("MODE", "secret-state"), ("SECRET", "s3cr3t-value")],
        ))
        .await
        .unwrap();
    assert_eq!(leaked.status, RunStatus::Failed, "{leaked:?}");
    let reason = leaked.reason.clone().unwrap();
    assert!(reason.contains("holds a secret option's value"), "{reason}");
    assert!(!reason.contains("s3cr3t-value"), "{reason}");
    let key = leaked.state_key.clone().unwrap();
    assert_eq!(cde.store.state(&key).await.unwrap(), None);
    assert!(
        versions(&cde).await.is_empty(),
        "no dataset from a rejected run"
    );
}

#[tokio::test]
async fn a_discovery_does_not_follow_an_output_symlink() {
    let data = tempfile::tempdir().unwrap();
    let cde = attack(data.path()).await;
    let host = tempfile::tempdir().unwrap();
    let target = host.path().join("host.jsonl");
    std::fs::write(&target, "{\"id\":\"host secret\"}\n").unwrap();
    let values = [
        ("MODE", "symlink-output"),
        ("TARGET", target.to_str().unwrap()),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    cde.save_connection(
        "planted",
        cde::model::SaveConnection {
            connector: ATTACK.into(),
            values,
            save_anyway: false,
        },
    )
    .await
    .unwrap();
    let refused = cde.discover("planted").await.unwrap_err().to_string();
    assert!(refused.contains("the discovery run"), "{refused}");
    assert!(!refused.contains("host secret"), "{refused}");
    let kept = cde.connection("planted").await.unwrap();
    assert_eq!(kept.discovery, None, "nothing discovered through the link");
}
