//! `cde server` as a process: killed with SIGKILL while runs are in flight and started
//! again, it adopts the pods it finds by label and records every outcome with all output.

mod common;

use std::process::Command;
use std::time::Duration;

use common::server::{Server, TOKEN};
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn a_server_killed_mid_run_finishes_every_run_after_a_restart() {
    behave_image();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;

    let unauthorised = reqwest::get(format!("{}/runs", server.url)).await.unwrap();
    assert_eq!(unauthorised.status(), 401);

    let manifest: Value =
        serde_yaml_ng::from_str(&std::fs::read_to_string(behave_manifest()).unwrap()).unwrap();
    server.post("/connectors", manifest).await;
    let mut ids = Vec::new();
    let mut tags = std::collections::HashMap::new();
    for n in 0..6 {
        let options =
            json!({"MODE": "sleep", "SECONDS": "6", "RECORDS": "4", "TAG": format!("run-{n}")});
        let run = server
            .post("/runs", json!({"connector": BEHAVE, "options": options}))
            .await;
        let id = run["id"].as_str().unwrap().to_owned();
        tags.insert(id.clone(), format!("run-{n}"));
        ids.push(id);
    }
    for id in &ids {
        let run = server
            .wait_for_run(id, |s| s != "queued" && s != "starting", 60)
            .await;
        assert_eq!(run["status"], "running", "{run}");
    }
    // Each connector is past its first records and the server has some of its STDOUT.
    for id in &ids {
        wait_until(
            format!("run {id}'s first STDOUT line in its log"),
            Duration::from_secs(30),
            || async {
                let messages = server.log_messages(id).await;
                match messages.iter().any(|m| m == "tick 1") {
                    true => Ok(()),
                    false => Err(messages),
                }
            },
        )
        .await;
    }
    server.kill();

    // While no orchestrator runs, the containers go on; one of them vanishes.
    let cde = open(config(data.path())).await;
    let runtime = cde.engine().await.unwrap();
    let (vanishing, kept) = ids.split_last().unwrap();
    for id in kept {
        let container = cde::engine::container::find(runtime, id).await.unwrap();
        assert!(container.is_some(), "containers outlive the server");
    }
    cde::engine::container::remove(runtime, vanishing)
        .await
        .unwrap();

    let server = Server::start(data.path()).await;
    for id in kept {
        let run = server
            .wait_for_run(id, |s| s != "running" && s != "starting", 90)
            .await;
        let log = std::fs::read_to_string(data.path().join("server.log")).unwrap();
        assert_eq!(run["status"], "succeeded", "{run}\n{log}");
        assert_eq!(
            run["output_rows"], 8,
            "records from before and after the restart: {run}"
        );
        let logs = server.get(&format!("/runs/{id}/logs")).await;
        let messages: Vec<&str> = logs
            .as_array()
            .unwrap()
            .iter()
            .map(|l| l["message"].as_str().unwrap())
            .collect();
        let ticks: Vec<&str> = messages
            .iter()
            .copied()
            .filter(|m| m.starts_with("tick "))
            .collect();
        let expected: Vec<String> = (1..=ticks.len()).map(|n| format!("tick {n}")).collect();
        assert!(ticks.len() >= 10, "{messages:?}");
        assert_eq!(ticks, expected, "every STDOUT line once, in order");
        assert!(messages.contains(&"behave done"), "{messages:?}");
        let output = server.get(&format!("/runs/{id}/output?limit=100")).await;
        assert_eq!(output["records"].as_array().unwrap().len(), 8);
    }
    let lost = server
        .wait_for_run(vanishing, |s| s != "running" && s != "starting", 30)
        .await;
    assert_eq!(lost["status"], "failed", "{lost}");
    assert_eq!(lost["reason"], "lost: container disappeared");
    // The adopted runs finished together; each got a version of its own, holding its rows.
    let versions = cde
        .store
        .datasets(&cde::dataset::connector_dataset(BEHAVE))
        .await
        .unwrap();
    let mut numbers: Vec<_> = versions.iter().map(|d| d.version).collect();
    numbers.sort();
    assert_eq!(numbers, (1..=kept.len() as i64).collect::<Vec<_>>());
    for version in &versions {
        let run_id = version.run_id.as_deref().unwrap();
        let rows = std::fs::read_to_string(version.path()).unwrap();
        let tags_in: Vec<&str> = rows
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["tag"]
                    .as_str()
                    .unwrap()
                    .to_owned()
            })
            .map(|t| if t == tags[run_id] { "own" } else { "other" })
            .collect();
        assert_eq!(
            tags_in, ["own"; 8],
            "version {} of run {run_id}",
            version.version
        );
    }
    let running = server.get("/runs?status=running").await;
    assert_eq!(
        running.as_array().unwrap().len(),
        0,
        "no run stays running without a container"
    );
    for id in &ids {
        assert!(leftovers(&cde, id).await.is_empty());
    }
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("succeeded"), "{metrics}");
}

#[tokio::test]
async fn the_cli_drives_a_server_when_cde_server_is_set() {
    behave_image();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    // A client has a data directory of its own: nothing runs or is stored locally.
    let client_dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cde"))
            .env("CDE_RUN_NETWORK", TEST_NETWORK)
            .args(args)
            .env("CDE_DATA_DIR", client_dir.path())
            .env("CDE_SERVER", &server.url)
            .env("CDE_API_TOKEN", TOKEN)
            .output()
            .unwrap();
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.code(), text)
    };
    let (code, text) = cli(&["connector", "register", behave_manifest().to_str().unwrap()]);
    assert_eq!(
        (code, text.trim()),
        (Some(0), "registered behave version 1")
    );
    let (code, text) = cli(&["run", BEHAVE, "--set", "RECORDS=2"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(
        text.contains("behave done") && text.contains("succeeded (exit code 0)"),
        "{text}"
    );
    let (code, text) = cli(&["run", BEHAVE, "--set", "MODE=fail", "--set", "EXIT_CODE=7"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("failed (exit code 7)"), "{text}");
    let (code, text) = cli(&["--json", "runs", "--status", "failed"]);
    assert_eq!(code, Some(0));
    let runs: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1);
    let id = runs[0]["id"].as_str().unwrap();
    let (_, logs) = cli(&["logs", id]);
    assert!(logs.contains("behave starting in mode fail"), "{logs}");
    let (code, text) = cli(&["run", "nope"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("connector not found: nope"), "{text}");
    let (code, text) = cli(&["cancel", id]);
    assert_eq!(
        (code, text.trim()),
        (Some(0), format!("run {id} is failed").as_str())
    );
    assert!(
        !client_dir.path().join("cde.db").exists(),
        "the client kept no store"
    );
    let (code, text) = cli(&["server"]);
    assert_eq!(code, Some(2));
    assert!(text.contains("unset CDE_SERVER"), "{text}");
}

/// `cde <args>` against `server` as a client with a data directory of its own.
fn remote_cli(
    server: &Server,
    client_dir: &std::path::Path,
    args: &[&str],
) -> (Option<i32>, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cde"))
        .args(args)
        .env("CDE_DATA_DIR", client_dir)
        .env("CDE_SERVER", &server.url)
        .env("CDE_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

#[tokio::test]
async fn the_cli_drives_pipelines_on_a_server() {
    image("tests/connectors/feed");
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    let client_dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| remote_cli(&server, client_dir.path(), args);
    for manifest in ["manifest.yaml", "export.yaml", "delta.yaml"] {
        let path = root().join("tests/connectors/feed").join(manifest);
        let (code, text) = cli(&["connector", "register", path.to_str().unwrap()]);
        assert_eq!(code, Some(0), "{text}");
    }
    let write = |name: &str, text: &str| {
        let path = client_dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        path.to_str().unwrap().to_owned()
    };
    let source = "sources:\n  - connector: feed-source\n    options: {ROWS: '[{\"id\": \"x\", \"price\": 1}]'}\n";
    let shop = write(
        "shop.yaml",
        &format!("name: shop\n{source}exports:\n  - connector: feed-export\n"),
    );
    let broken = write(
        "broken.json",
        &serde_json::to_string(&json!({
            "name": "broken",
            "sources": [{"connector": "feed-source", "options": {"ROWS": "[{\"id\": \"y\"}]"}}],
            "exports": [{"connector": "feed-delta", "options": {"FAIL": "1"}}],
        }))
        .unwrap(),
    );
    let (code, text) = cli(&["pipeline", "create", &shop]);
    assert_eq!((code, text.trim()), (Some(0), "saved pipeline shop"));
    let (code, text) = cli(&["pipeline", "create", &broken]);
    assert_eq!((code, text.trim()), (Some(0), "saved pipeline broken"));
    let invalid = write(
        "invalid.yaml",
        "name: invalid\nsources:\n  - connector: nope\n",
    );
    let (code, text) = cli(&["pipeline", "create", &invalid]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("sources[0] (nope)"), "{text}");

    let (code, text) = cli(&["pipeline", "list"]);
    assert_eq!(code, Some(0), "{text}");
    let names: Vec<&str> = text
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().next().unwrap())
        .collect();
    assert_eq!(names, ["broken", "shop"], "{text}");
    let (code, text) = cli(&["--json", "pipeline", "show", "shop"]);
    assert_eq!(code, Some(0), "{text}");
    let shown: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(shown["exports"][0]["connector"], "feed-export", "{shown}");

    let (code, text) = cli(&["pipeline", "run", "shop"]);
    assert_eq!(code, Some(0), "{text}");
    assert!(text.contains("of shop: succeeded"), "{text}");
    assert!(text.contains("dataset pipeline/shop version 1"), "{text}");
    let (code, text) = cli(&["--json", "pipeline", "run", "broken"]);
    assert_eq!(code, Some(1), "{text}");
    let failed: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(failed["status"], "failed", "{failed}");
    assert!(
        failed["reason"].as_str().unwrap().contains("feed-delta"),
        "{failed}"
    );

    let (code, text) = cli(&["--json", "pipeline", "runs", "shop"]);
    assert_eq!(code, Some(0), "{text}");
    let runs: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    assert_eq!(runs[0]["status"], "succeeded", "{runs}");
    let (code, text) = cli(&["pipeline", "run", "nope"]);
    assert_eq!(code, Some(2), "{text}");
    assert!(text.contains("pipeline not found: nope"), "{text}");
    assert!(
        !client_dir.path().join("cde.db").exists(),
        "the client kept no store"
    );
}

#[tokio::test]
async fn the_cli_follows_retries_the_server_queues() {
    behave_image();
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    let client_dir = tempfile::tempdir().unwrap();
    let cli = |args: &[&str]| remote_cli(&server, client_dir.path(), args);
    let (code, text) = cli(&["connector", "register", behave_manifest().to_str().unwrap()]);
    assert_eq!(code, Some(0), "{text}");
    // The request carries the policy; the server queues the retry and starts it when due.
    let (code, text) = cli(&[
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
    assert_eq!(code, Some(0), "the retry succeeded: {text}");
    let switch = text
        .lines()
        .find(|l| {
            l.starts_with(
                "attempt 1 of 2 failed: transient failure (exit code 75); retrying in 1 s as run ",
            )
        })
        .unwrap_or_else(|| panic!("{text}"));
    let second = switch.rsplit(' ').next().unwrap();
    assert!(
        text.contains("behave starting in mode fail, attempt 2"),
        "the retry's log is streamed: {text}"
    );
    let run = server.get(&format!("/runs/{second}")).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["attempt"], 2, "{run}");
    assert_eq!(
        run["retry"],
        json!({"attempts": 2, "backoff_secs": 1}),
        "{run}"
    );
    let first = run["retry_of"].as_str().unwrap();
    let failed = server.get(&format!("/runs/{first}")).await;
    assert_eq!(failed["next_attempt"], second, "{failed}");
    // The server's queue started it no earlier than it was due.
    let at = |value: &Value| chrono::DateTime::parse_from_rfc3339(value.as_str().unwrap()).unwrap();
    assert!(at(&run["started_at"]) >= at(&run["not_before"]), "{run}");
    assert!(
        at(&run["not_before"]) >= at(&failed["finished_at"]) + chrono::Duration::seconds(1),
        "{run} {failed}"
    );
}
