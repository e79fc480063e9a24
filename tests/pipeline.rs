//! Pipelines end to end on the real engine, with the `feed` test connector (all four types).

mod common;

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::Duration;

use cde::model::{ColumnMapping, Pipeline, PipelineRun, PipelineStatus, Source, Step, StepKind};
use cde::Cde;
use common::*;
use serde_json::{json, Value};

async fn feed() -> (tempfile::TempDir, Arc<Cde>) {
    image("tests/connectors/feed");
    let data = tempfile::tempdir().unwrap();
    let cde = Arc::new(open(config(data.path())).await);
    for manifest in ["manifest.yaml", "service.yaml", "export.yaml", "delta.yaml"] {
        cde.register_file(&root().join("tests/connectors/feed").join(manifest))
            .await
            .unwrap();
    }
    (data, cde)
}

fn step(connector: &str, options: &[(&str, &str)]) -> Step {
    Step {
        connector: connector.into(),
        options: options
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        limits: Default::default(),
        columns: None,
        connection: None,
    }
}

/// `step` getting only `columns`, each `(column, as)`.
fn mapping(mut step: Step, columns: &[(&str, Option<&str>)]) -> Step {
    step.columns = Some(
        columns
            .iter()
            .map(|(column, rename)| ColumnMapping {
                column: column.to_string(),
                rename: rename.map(str::to_owned),
            })
            .collect(),
    );
    step
}

fn source(rows: Value) -> Source {
    step("feed-source", &[("ROWS", &rows.to_string())]).into()
}

fn pipeline(rows: Value, services: Vec<Step>, exports: Vec<Step>) -> Pipeline {
    Pipeline {
        name: "shop".into(),
        schedule: None,
        listeners: vec![],
        trigger: None,
        sources: vec![source(rows)],
        services,
        exports,
    }
}

/// The ids in one of the export step's delta streams.
async fn stream(cde: &Cde, run: &PipelineRun, name: &str) -> BTreeSet<String> {
    let export = run
        .steps
        .iter()
        .find(|s| s.kind == StepKind::Export)
        .expect("an export step");
    let connector_run = cde
        .store
        .run(export.run_id.as_deref().unwrap())
        .await
        .unwrap();
    let path = std::path::Path::new(&connector_run.run_dir)
        .join("input")
        .join(format!("{name}.jsonl"));
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line).unwrap()["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect()
}

fn ids(list: &[&str]) -> BTreeSet<String> {
    list.iter().map(|s| s.to_string()).collect()
}

/// The lines of the input feed a step's connector run was given, as it got them.
async fn received(cde: &Cde, run: &PipelineRun, kind: StepKind) -> Vec<String> {
    let step = run
        .steps
        .iter()
        .find(|s| s.kind == kind)
        .unwrap_or_else(|| panic!("a {kind:?} step in {run:?}"));
    let connector_run = cde
        .store
        .run(step.run_id.as_deref().unwrap())
        .await
        .unwrap();
    let path = std::path::Path::new(&connector_run.run_dir).join("input/input.jsonl");
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .collect()
}

fn rows_of(path: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

async fn run_with(cde: &Cde, pipeline: &Pipeline) -> PipelineRun {
    cde.save_pipeline(pipeline).await.unwrap();
    cde.run_pipeline(&pipeline.name, "manual").await.unwrap()
}

#[tokio::test]
async fn export_deltas_follow_the_feed_across_runs() {
    let (_data, cde) = feed().await;
    let services = vec![step("feed-service", &[])];
    let delta = |fail: &str| vec![step("feed-delta", &[("FAIL", fail)])];
    let streams = |new: &[&str], modified: &[&str], unchanged: &[&str], deleted: &[&str]| {
        [ids(new), ids(modified), ids(unchanged), ids(deleted)]
    };
    let check = |expected: [BTreeSet<String>; 4]| {
        let cde = cde.clone();
        move |run: PipelineRun| async move {
            assert_eq!(run.status, PipelineStatus::Succeeded, "{run:?}");
            let seen = [
                stream(&cde, &run, "new").await,
                stream(&cde, &run, "modified").await,
                stream(&cde, &run, "unchanged").await,
                stream(&cde, &run, "deleted").await,
            ];
            assert_eq!(seen, expected, "new, modified, unchanged, deleted");
            // The export's run records the counts cde found as it split the feed.
            let export = run
                .steps
                .iter()
                .find(|s| s.kind == StepKind::Export)
                .unwrap();
            let counts = cde
                .store
                .run(export.run_id.as_deref().unwrap())
                .await
                .unwrap()
                .delta
                .expect("an export delta's run has delta counts");
            let lengths = expected.each_ref().map(|set| set.len() as u64);
            assert_eq!(
                [
                    counts.new,
                    counts.modified,
                    counts.unchanged,
                    counts.deleted
                ],
                lengths
            );
            run
        }
    };

    let first =
        json!([{"id": "p1", "price": 1}, {"id": "p2", "price": 2}, {"id": "p3", "price": 3}]);
    let run = run_with(&cde, &pipeline(first, services.clone(), delta("0"))).await;
    let run = check(streams(&["p1", "p2", "p3"], &[], &[], &[]))(run).await;
    assert_eq!(run.dataset_version, Some(1));
    let kinds: Vec<_> = run
        .steps
        .iter()
        .map(|s| (s.kind, s.rows_in, s.rows_out))
        .collect();
    assert_eq!(
        kinds,
        [
            (StepKind::Source, None, Some(3)),
            (StepKind::Service, Some(3), Some(3)),
            (StepKind::Export, Some(3), Some(0))
        ]
    );

    let second =
        json!([{"id": "p1", "price": 1}, {"id": "p2", "price": 20}, {"id": "p4", "price": 4}]);
    let run = run_with(&cde, &pipeline(second, services.clone(), delta("0"))).await;
    check(streams(&["p4"], &["p2"], &["p1"], &["p3"]))(run).await;

    let third =
        json!([{"id": "p1", "price": 10}, {"id": "p4", "price": 4}, {"id": "p5", "price": 5}]);
    let run = run_with(&cde, &pipeline(third.clone(), services.clone(), delta("0"))).await;
    check(streams(&["p5"], &["p1"], &["p4"], &["p2"]))(run).await;

    // A failed export does not move its baseline: the next delta is against the third run.
    let fourth = json!([{"id": "p1", "price": 10}, {"id": "p6", "price": 6}]);
    let failed = run_with(
        &cde,
        &pipeline(fourth.clone(), services.clone(), delta("1")),
    )
    .await;
    assert_eq!(failed.status, PipelineStatus::Failed, "{failed:?}");
    assert!(
        failed.reason.as_deref().unwrap().contains("feed-delta"),
        "{failed:?}"
    );
    assert_eq!(failed.dataset_version, Some(4), "the feed itself was fine");
    let run = run_with(&cde, &pipeline(fourth, services, delta("0"))).await;
    check(streams(&["p6"], &[], &["p1"], &["p4", "p5"]))(run).await;
}

#[tokio::test]
async fn a_failing_data_service_leaves_the_dataset_untouched() {
    let (_data, cde) = feed().await;
    let rows = json!([{"id": "a", "price": 1}]);
    let ok = run_with(
        &cde,
        &pipeline(
            rows.clone(),
            vec![step("feed-service", &[])],
            vec![step("feed-export", &[])],
        ),
    )
    .await;
    assert_eq!(ok.status, PipelineStatus::Succeeded, "{ok:?}");
    let failing = pipeline(
        json!([{"id": "b"}]),
        vec![step("feed-service", &[("MODE", "fail")])],
        vec![step("feed-export", &[])],
    );
    let run = run_with(&cde, &failing).await;
    assert_eq!(run.status, PipelineStatus::Failed);
    assert_eq!(run.dataset_version, None);
    assert!(
        run.reason.as_deref().unwrap().contains("feed-service"),
        "{run:?}"
    );
    assert_eq!(
        run.steps.len(),
        2,
        "the export after the failed step never ran: {run:?}"
    );
    assert_eq!(run.steps[1].status, "failed");
    let latest = cde
        .store
        .latest_dataset("pipeline/shop")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(latest.version, 1);
    let ids: Vec<Value> = std::fs::read_to_string(latest.path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["id"].clone())
        .collect();
    assert_eq!(ids, [json!("a")]);
}

#[tokio::test]
async fn feedback_comes_back_on_the_next_run() {
    let (_data, cde) = feed().await;
    let rows = json!([{"id": "good", "price": 5}, {"id": "bad"}]);
    let shop = pipeline(rows, vec![], vec![step("feed-export", &[])]);
    let first = run_with(&cde, &shop).await;
    assert_eq!(first.status, PipelineStatus::Succeeded, "{first:?}");
    let feedback = cde
        .store
        .latest_dataset("pipeline/shop/feedback")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(feedback.rows, 1);
    let second = run_with(&cde, &shop).await;
    let dataset = cde
        .store
        .latest_dataset("pipeline/shop")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(dataset.version), second.dataset_version);
    let rows: Vec<Value> = std::fs::read_to_string(dataset.path())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let bad = rows.iter().find(|r| r["id"] == "bad").unwrap();
    assert_eq!(
        (bad["status"].as_str(), bad["message"].as_str()),
        (Some("error"), Some("no price"))
    );
    let good = rows.iter().find(|r| r["id"] == "good").unwrap();
    assert!(good.get("status").is_none(), "{good}");
}

#[tokio::test]
async fn a_data_service_that_writes_nothing_empties_the_feed_with_a_warning() {
    let (_data, cde) = feed().await;
    let rows = json!([{"id": "a", "price": 1}, {"id": "b", "price": 2}]);
    let run = run_with(
        &cde,
        &pipeline(
            rows,
            vec![step("feed-service", &[("MODE", "nothing")])],
            vec![],
        ),
    )
    .await;
    assert_eq!(run.status, PipelineStatus::Succeeded, "{run:?}");
    let dataset = cde
        .store
        .latest_dataset("pipeline/shop")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dataset.rows, 0);
    let service = &run.steps[1];
    assert_eq!((service.rows_in, service.rows_out), (Some(2), Some(0)));
    let logs = cde
        .store
        .logs(service.run_id.as_deref().unwrap(), 0)
        .await
        .unwrap();
    let warning = logs
        .iter()
        .find(|(_, l)| l.level == "warning")
        .expect("a warning in the run log");
    assert!(
        warning.1.message.contains("feed it returns is empty"),
        "{warning:?}"
    );
}

#[tokio::test]
async fn a_schedule_fires_and_never_overlaps() {
    let (_data, cde) = feed().await;
    let mut scheduled = pipeline(json!([{"id": "a"}]), vec![], vec![]);
    scheduled.schedule = Some("* * * * * *".into());
    cde.save_pipeline(&scheduled).await.unwrap();
    let scheduler = tokio::spawn(cde.clone().run_schedules());
    let fired = wait_until(
        "a run the schedule started to succeed",
        Duration::from_secs(30),
        || async {
            let runs = cde.store.pipeline_runs("shop", 10).await.unwrap();
            match runs.iter().find(|r| r.status == PipelineStatus::Succeeded) {
                Some(run) => Ok(run.clone()),
                None => Err(runs),
            }
        },
    )
    .await;
    // Once the scheduler has stopped, it starts no more runs; those it started go on
    // without it: let them end. One it had begun but not yet handed on when it stopped
    // has no executor: it ends as interrupted once its lease lapses, as a server's
    // recovery would end it.
    scheduler.abort();
    assert!(scheduler.await.unwrap_err().is_cancelled());
    assert_eq!(fired.trigger, "schedule");
    wait_until(
        "the runs the schedule started to end",
        Duration::from_secs(60),
        || async {
            cde.recover().await.unwrap();
            let runs = cde.store.pipeline_runs("shop", 10).await.unwrap();
            match runs.iter().any(|r| r.status == PipelineStatus::Running) {
                true => Err(runs),
                false => Ok(()),
            }
        },
    )
    .await;
    let running = cde.begin_pipeline_run("shop", "manual").await.unwrap();
    let err = cde.begin_pipeline_run("shop", "manual").await.unwrap_err();
    assert_eq!(err.to_string(), "pipeline shop is already running");
    cde.execute_pipeline_run(running).await.unwrap();
}

#[tokio::test]
async fn pipelines_are_checked_against_the_registry() {
    let (_data, cde) = feed().await;
    let wrong_place = pipeline(json!([]), vec![step("feed-export", &[])], vec![]);
    let err = cde
        .save_pipeline(&wrong_place)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("services[0] (feed-export): a export does not belong in services"),
        "{err}"
    );
    let twice = pipeline(
        json!([]),
        vec![step("feed-service", &[]), step("feed-service", &[])],
        vec![],
    );
    let err = cde.save_pipeline(&twice).await.unwrap_err().to_string();
    assert!(err.contains("at most 1 time"), "{err}");
    let bad_option = pipeline(
        json!([]),
        vec![step("feed-service", &[("MODE", "odd")])],
        vec![],
    );
    let err = cde
        .save_pipeline(&bad_option)
        .await
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("services[0] (feed-service)") && err.contains("\"odd\""),
        "{err}"
    );
    assert!(cde.store.pipelines().await.unwrap().is_empty());
}

#[tokio::test]
async fn standalone_runs_take_an_input_and_a_previous_snapshot() {
    let (data, cde) = feed().await;
    let write = |name: &str, rows: &[Value]| {
        let path = data.path().join(name);
        std::fs::write(
            &path,
            rows.iter().map(|r| format!("{r}\n")).collect::<String>(),
        )
        .unwrap();
        path
    };
    let previous = write(
        "previous.jsonl",
        &[json!({"id": 1, "t": "a"}), json!({"id": 2, "t": "b"})],
    );
    let current = write(
        "current.jsonl",
        &[json!({"t": "a", "id": 1}), json!({"id": 3, "t": "c"})],
    );
    let cli = |args: &[&str]| {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_cde"))
            .env("CDE_RUN_NETWORK", TEST_NETWORK)
            .args(args)
            .env("CDE_DATA_DIR", data.path())
            .output()
            .unwrap();
        (
            out.status.code(),
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        )
    };
    let (code, text) = cli(&[
        "run",
        "feed-delta",
        "--input",
        current.to_str().unwrap(),
        "--previous",
        previous.to_str().unwrap(),
    ]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("export-delta new=1 modified=0 unchanged=1 deleted=1"),
        "{text}"
    );

    let (code, text) = cli(&["run", "feed-source", "--input", current.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("feed-source is a data-source: it reads no input"),
        "{text}"
    );
    let (code, text) = cli(&["run", "feed-service"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("reads an input feed"), "{text}");
    let no_id = write("no-id.jsonl", &[json!({"t": "x"})]);
    let (code, text) = cli(&["run", "feed-export", "--input", no_id.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("the input has no column \"id\", which feed-export requires"),
        "{text}"
    );
    let broken = data.path().join("broken.jsonl");
    std::fs::write(&broken, "{\"id\": 1}\nnot json\n").unwrap();
    let (code, text) = cli(&["run", "feed-service", "--input", broken.to_str().unwrap()]);
    assert_eq!(code, Some(2));
    assert!(
        text.contains("broken.jsonl line 2: not a JSON object"),
        "{text}"
    );

    let (code, text) = cli(&["run", "feed-service", "--input", current.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    let dataset = cde
        .store
        .latest_dataset("connector/feed-service")
        .await
        .unwrap()
        .unwrap();
    assert_eq!((dataset.version, dataset.rows), (1, 2));
    assert!(
        dataset.columns.contains(&"___feed_seen".to_owned()),
        "{dataset:?}"
    );
    let runs = cde.store.runs(&Default::default()).await.unwrap();
    assert_eq!(runs.len(), 2, "rejected runs were never recorded");
}

#[tokio::test]
async fn pipelines_through_the_management_api() {
    let (_data, cde) = feed().await;
    let server = cde::server::Server::start(cde.clone(), "t".to_owned(), &[])
        .await
        .unwrap();
    let base = server.url();
    let http = reqwest::Client::new();
    let call = |method: reqwest::Method, path: &str| {
        http.request(method, format!("{base}{path}"))
            .bearer_auth("t")
    };

    let yaml = "name: shop\nsources:\n  - connector: feed-source\n    options: {ROWS: '[{\"id\": \"x\", \"price\": 1}]'}\nexports:\n  - connector: feed-export\n";
    let saved = call(reqwest::Method::POST, "/pipelines")
        .header("content-type", "application/yaml")
        .body(yaml)
        .send()
        .await
        .unwrap();
    assert_eq!(saved.status(), 200, "{}", saved.text().await.unwrap());
    let bad = call(reqwest::Method::POST, "/pipelines")
        .json(&json!({"name": "shop", "sources": [{"connector": "nope"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("sources[0] (nope)"),
        "{body}"
    );

    let started = call(reqwest::Method::POST, "/pipelines/shop/runs")
        .send()
        .await
        .unwrap();
    assert_eq!(started.status(), 202);
    let run: Value = started.json().await.unwrap();
    let busy = call(reqwest::Method::POST, "/pipelines/shop/runs")
        .send()
        .await
        .unwrap();
    assert_eq!(busy.status(), 409, "never two runs of one pipeline at once");
    let id = run["id"].as_str().unwrap();
    let finished: Value = wait_until(
        format!("pipeline run {id} to end"),
        Duration::from_secs(30),
        || async {
            let run: Value = call(reqwest::Method::GET, &format!("/pipeline-runs/{id}"))
                .send()
                .await
                .unwrap()
                .json()
                .await
                .unwrap();
            match run["status"] != "running" {
                true => Ok(run),
                false => Err(run),
            }
        },
    )
    .await;
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["steps"].as_array().unwrap().len(), 2);
    let versions: Value = call(reqwest::Method::GET, "/datasets?name=pipeline/shop")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(versions[0]["version"], 1);
    assert_eq!(versions[0]["rows"], 1);
    let runs: Value = call(reqwest::Method::GET, "/pipelines/shop/runs")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let missing = call(reqwest::Method::GET, "/pipelines/nope")
        .send()
        .await
        .unwrap();
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn the_sample_connectors_run_as_a_pipeline() {
    sample_image();
    let data = tempfile::tempdir().unwrap();
    let cde = open(config(data.path())).await;
    let samples = root().join("sample-connectors/python");
    for manifest in [
        "manifest.yaml",
        "manifest-data-service.yaml",
        "manifest-export.yaml",
        "manifest-export-delta.yaml",
    ] {
        cde.register_file(&samples.join(manifest)).await.unwrap();
    }
    cde.save_pipeline(&Pipeline::load(&samples.join("pipeline.yaml")).unwrap())
        .await
        .unwrap();
    for round in 1..=2 {
        let run = cde.run_pipeline("sample-shop", "manual").await.unwrap();
        assert_eq!(run.status, PipelineStatus::Succeeded, "{run:?}");
        let rows: Vec<_> = run
            .steps
            .iter()
            .map(|s| (s.connector.as_str(), s.rows_in, s.rows_out))
            .collect();
        assert_eq!(
            rows[..2],
            [
                ("sample-python-source", None, Some(3)),
                ("sample-python-service", Some(3), Some(3))
            ]
        );
        let delta = run
            .steps
            .iter()
            .find(|s| s.connector == "sample-python-export-delta")
            .unwrap();
        let delta_run = cde
            .store
            .run(delta.run_id.as_deref().unwrap())
            .await
            .unwrap();
        let feedback = std::fs::read_to_string(
            std::path::Path::new(&delta_run.run_dir).join("output/feedback.jsonl"),
        )
        .unwrap_or_default();
        let created = feedback.lines().filter(|l| l.contains("created")).count();
        assert_eq!(
            created,
            if round == 1 { 3 } else { 0 },
            "round {round}: {feedback}"
        );
        let dataset = cde
            .store
            .latest_dataset("pipeline/sample-shop")
            .await
            .unwrap()
            .unwrap();
        assert!(
            dataset.columns.contains(&"___sample_title_copy".to_owned()),
            "{dataset:?}"
        );
    }
}

#[tokio::test]
async fn pipeline_steps_keep_to_the_concurrency_limit() {
    image("tests/connectors/feed");
    let data = tempfile::tempdir().unwrap();
    let mut config = config(data.path());
    config.max_concurrent_runs = 1;
    let cde = Arc::new(open(config).await);
    cde.register_file(&root().join("tests/connectors/feed/manifest.yaml"))
        .await
        .unwrap();
    let mut shop = pipeline(json!([{"id": "a", "price": 1}]), vec![], vec![]);
    shop.sources
        .push(source(json!([{"id": "a", "colour": "red"}])));
    let run = run_with(&cde, &shop).await;
    assert_eq!(run.status, PipelineStatus::Succeeded, "{run:?}");
    let mut runs = Vec::new();
    for step in &run.steps {
        runs.push(
            cde.store
                .run(step.run_id.as_deref().unwrap())
                .await
                .unwrap(),
        );
    }
    assert_eq!(runs.len(), 2);
    runs.sort_by_key(|r| r.started_at);
    assert!(
        runs[1].started_at.unwrap() >= runs[0].finished_at.unwrap(),
        "the sources ran one after the other with one slot: {runs:?}"
    );
}

#[tokio::test]
async fn steps_get_the_columns_their_mappings_give() {
    let (data, cde) = feed().await;
    let products = json!([
        {"id": "a", "title": "Shoe", "price": 1, "colour": "red"},
        {"id": "b", "title": "Hat", "price": 2, "colour": "blue"}
    ]);
    // The main source drops `colour` (and keeps its join key unlisted); the second one
    // renames `stock` and drops `internal`.
    let main = mapping(
        step("feed-source", &[("ROWS", &products.to_string())]),
        &[("title", None), ("price", None)],
    );
    let stock = mapping(
        step(
            "feed-source",
            &[(
                "ROWS",
                &json!([{"id": "a", "stock": 5, "internal": "x"}]).to_string(),
            )],
        ),
        &[("stock", Some("quantity"))],
    );
    // The service renames `title` and drops `price`; the export gets `id` and the
    // service's `name` back as `title`, and no `price`.
    let service = mapping(
        step("feed-service", &[]),
        &[("id", None), ("title", Some("name")), ("quantity", None)],
    );
    let export = mapping(
        step("feed-export", &[]),
        &[("id", None), ("name", Some("title"))],
    );
    let mut shop = pipeline(json!([]), vec![service], vec![export]);
    shop.sources = vec![main.into(), stock.into()];
    let run = run_with(&cde, &shop).await;
    assert_eq!(run.status, PipelineStatus::Succeeded, "{run:?}");

    let joined = data
        .path()
        .join("pipeline-runs")
        .join(&run.id)
        .join("feed-0.jsonl");
    assert_eq!(
        rows_of(&joined),
        [
            json!({"id": "a", "title": "Shoe", "price": 1, "quantity": 5}),
            json!({"id": "b", "title": "Hat", "price": 2})
        ],
        "the sources were mapped before the join, which kept their join key"
    );
    assert_eq!(
        received(&cde, &run, StepKind::Service).await,
        [
            r#"{"id":"a","name":"Shoe","quantity":5}"#,
            r#"{"id":"b","name":"Hat"}"#
        ],
        "the service got the mapped columns, in their order, under their names"
    );
    let dataset = cde
        .store
        .latest_dataset("pipeline/shop")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(Some(dataset.version), run.dataset_version);
    // Read after the export ran: the version it was given a mapped copy of keeps every
    // column the service wrote.
    assert_eq!(
        dataset.columns,
        ["___feed_seen", "id", "name", "quantity"],
        "{dataset:?}"
    );
    assert_eq!(
        rows_of(dataset.path()),
        [
            // Read through the Container API as text, and written back so.
            json!({"id": "a", "name": "Shoe", "quantity": "5", "___feed_seen": "1"}),
            json!({"id": "b", "name": "Hat", "___feed_seen": "1"})
        ]
    );

    assert_eq!(
        received(&cde, &run, StepKind::Export).await,
        [
            r#"{"id":"a","title":"Shoe"}"#,
            r#"{"id":"b","title":"Hat"}"#
        ],
        "the export got its mapping of the dataset version"
    );
    let export = run
        .steps
        .iter()
        .find(|s| s.kind == StepKind::Export)
        .unwrap();
    assert_eq!(export.rows_in, Some(2));
    // The export saw no `price`, so it reported every row as failed.
    let feedback = cde
        .store
        .latest_dataset("pipeline/shop/feedback")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(feedback.rows, 2, "{feedback:?}");

    let mut twice = shop.clone();
    twice.services[0] = mapping(
        step("feed-service", &[]),
        &[("title", Some("name")), ("name", None)],
    );
    let err = cde.save_pipeline(&twice).await.unwrap_err().to_string();
    assert!(
        err.contains("services[0].columns[1] (name): another column is already named \"name\""),
        "{err}"
    );
}

#[tokio::test]
async fn an_export_delta_compares_what_its_mapping_gives() {
    let (_data, cde) = feed().await;
    let delta = vec![mapping(
        step("feed-delta", &[]),
        &[("id", None), ("title", Some("name"))],
    )];
    let first =
        json!([{"id": "p1", "price": 1, "title": "a"}, {"id": "p2", "price": 2, "title": "b"}]);
    let run = run_with(&cde, &pipeline(first, vec![], delta.clone())).await;
    assert_eq!(run.status, PipelineStatus::Succeeded, "{run:?}");
    assert_eq!(stream(&cde, &run, "new").await, ids(&["p1", "p2"]));
    // Only p1's price changed, which the export does not get: its baseline is mapped the
    // same way, so p1 is unchanged.
    let second =
        json!([{"id": "p1", "price": 10, "title": "a"}, {"id": "p2", "price": 2, "title": "c"}]);
    let run = run_with(&cde, &pipeline(second, vec![], delta)).await;
    assert_eq!(run.status, PipelineStatus::Succeeded, "{run:?}");
    assert_eq!(
        [
            stream(&cde, &run, "new").await,
            stream(&cde, &run, "modified").await,
            stream(&cde, &run, "unchanged").await,
            stream(&cde, &run, "deleted").await,
        ],
        [ids(&[]), ids(&["p2"]), ids(&["p1"]), ids(&[])],
        "new, modified, unchanged, deleted"
    );
    let dataset = cde
        .store
        .latest_dataset("pipeline/shop")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(dataset.columns, ["id", "price", "title"], "{dataset:?}");
}
