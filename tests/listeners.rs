//! Webhook listeners: deliveries checked, kept durably and once, counted; a `kill -9` while
//! clients post loses no acknowledged event; pipelines read each event once, a failed run
//! leaving its events to the next; the event trigger's debounce.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::server::{Server, TOKEN};
use common::*;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};
use sha2::Sha256;

/// A pipeline fed by listeners only: no container runs.
fn hooks_pipeline() -> Value {
    json!({
        "name": "hooks",
        "listeners": [
            {"name": "orders", "auth": {"type": "token"}, "event_id": {"path": "$.id"}},
            {"name": "github", "records_locator": "$.commits",
             "auth": {"type": "hmac_sha256", "header": "x-hub-signature-256", "prefix": "sha256="},
             "event_id": {"header": "x-github-delivery"}},
            {"name": "small", "auth": {"type": "token"}, "log_limit_mb": 1},
        ],
        "sources": [{"listener": "orders"}, {"listener": "github"}],
    })
}

struct Answer {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Value,
}

/// Posts `body` to `path` of the server with `headers`, whatever the answer.
async fn post_raw(server: &Server, path: &str, headers: &[(&str, &str)], body: Vec<u8>) -> Answer {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", server.url))
        .header("content-type", "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    let headers = answer.headers().clone();
    let text = answer.text().await.unwrap();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    Answer {
        status,
        headers,
        body,
    }
}

fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    format!("sha256={}", hex::encode(mac.finalize().into_bytes()))
}

async fn secret(server: &Server, listener: &str) -> String {
    let path = format!("/pipelines/hooks/listeners/{listener}/secret");
    server.get(&path).await["secret"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn listener(server: &Server, name: &str) -> Value {
    let all = server.get("/pipelines/hooks/listeners").await;
    all.as_array()
        .unwrap()
        .iter()
        .find(|l| l["name"] == name)
        .cloned()
        .unwrap_or_else(|| panic!("no listener {name} in {all}"))
}

/// Starts a pipeline run through the API and waits for its end.
async fn run_pipeline(server: &Server, name: &str) -> Value {
    let run = server
        .post(&format!("/pipelines/{name}/runs"), json!({}))
        .await;
    let id = run["id"].as_str().unwrap().to_owned();
    wait_until(
        format!("pipeline run {id} to end"),
        Duration::from_secs(60),
        || async {
            let run = server.get(&format!("/pipeline-runs/{id}")).await;
            match run["status"] != "running" {
                true => Ok(run),
                false => Err(run),
            }
        },
    )
    .await
}

/// The rows of the latest version of dataset `pipeline/<name>`.
async fn latest_rows(server: &Server, name: &str) -> Vec<Value> {
    let versions = server.get(&format!("/datasets?name=pipeline/{name}")).await;
    let path = versions[0]["path"].as_str().unwrap().to_owned();
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

#[tokio::test]
async fn deliveries_are_authenticated_checked_kept_once_and_counted() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start_with(data.path(), &[("CDE_HOOK_MAX_BODY_KB", "512")]).await;
    server.post("/pipelines", hooks_pipeline()).await;
    let token = secret(&server, "orders").await;
    assert_eq!(token.len(), 64, "a generated secret: {token}");
    let orders = "/hooks/hooks/orders";
    let event = |id: &str| serde_json::to_vec(&json!({"id": id, "total": 3})).unwrap();

    // Who may deliver.
    let none = post_raw(&server, orders, &[], event("o-1")).await;
    assert_eq!(none.status, 401, "{}", none.body);
    assert_eq!(none.body["error"]["code"], "unauthorized", "{}", none.body);
    assert!(none.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no token"));
    let wrong = post_raw(&server, orders, &[("x-cde-token", "guess")], event("o-1")).await;
    assert_eq!(wrong.status, 401, "{}", wrong.body);
    let bearer = format!("Bearer {TOKEN}");
    let management = post_raw(&server, orders, &[("authorization", &bearer)], event("o-1")).await;
    assert_eq!(
        management.status, 401,
        "the management token is not a listener's secret"
    );
    let by_header = post_raw(&server, orders, &[("x-cde-token", &token)], event("o-1")).await;
    assert_eq!(by_header.status, 200, "{}", by_header.body);
    assert_eq!(by_header.body, json!({"written": 1, "duplicates": 0}));
    let by_query = post_raw(
        &server,
        &format!("{orders}?token={token}"),
        &[],
        event("o-2"),
    )
    .await;
    assert_eq!(by_query.body, json!({"written": 1, "duplicates": 0}));
    // A retried delivery is a no-op, answered 2xx.
    let replay = post_raw(&server, orders, &[("x-cde-token", &token)], event("o-1")).await;
    assert_eq!(replay.status, 200, "{}", replay.body);
    assert_eq!(replay.body, json!({"written": 0, "duplicates": 1}));

    // Bad input: a clear error, nothing written.
    let auth = [("x-cde-token", token.as_str())];
    for (body, status, says) in [
        (b"{not json".to_vec(), 400, "not JSON"),
        (
            b"[{\"id\": \"o-3\"}, 7]".to_vec(),
            400,
            "event 1 is not a JSON object",
        ),
        (
            b"{\"total\": 1}".to_vec(),
            400,
            "no single string or number at the event id path",
        ),
        (vec![b' '; 600 * 1024], 413, "over the limit of 512 KiB"),
    ] {
        let answer = post_raw(&server, orders, &auth, body).await;
        assert_eq!(answer.status, status, "{}", answer.body);
        let message = answer.body["error"]["message"].as_str().unwrap();
        assert!(message.contains(says), "{message}");
    }
    for path in ["/hooks/hooks/nope", "/hooks/nope/orders"] {
        let answer = post_raw(&server, path, &auth, event("o-9")).await;
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
    }

    // HMAC-SHA256 of the body, GitHub's way; the events are at `$.commits`.
    let github = "/hooks/hooks/github";
    let key = secret(&server, "github").await;
    let push = serde_json::to_vec(&json!({"commits": [{"sha": "a1"}, {"sha": "b2"}]})).unwrap();
    let signed = sign(&key, &push);
    let headers = [
        ("x-hub-signature-256", signed.as_str()),
        ("x-github-delivery", "d-1"),
    ];
    let answer = post_raw(&server, github, &headers, push.clone()).await;
    assert_eq!(answer.body, json!({"written": 2, "duplicates": 0}));
    let again = post_raw(&server, github, &headers, push.clone()).await;
    assert_eq!(again.body, json!({"written": 0, "duplicates": 2}));
    let other = serde_json::to_vec(&json!({"commits": [{"sha": "c3"}]})).unwrap();
    let forged = post_raw(&server, github, &headers, other.clone()).await;
    assert_eq!(
        forged.status, 401,
        "a signature of another body: {}",
        forged.body
    );
    let unsigned = post_raw(
        &server,
        github,
        &[("x-github-delivery", "d-2")],
        other.clone(),
    )
    .await;
    assert_eq!(unsigned.status, 401, "{}", unsigned.body);
    let nothing = serde_json::to_vec(&json!({"zen": "hi"})).unwrap();
    let signed_nothing = sign(&key, &nothing);
    let zen = post_raw(
        &server,
        github,
        &[
            ("x-hub-signature-256", &signed_nothing),
            ("x-github-delivery", "d-3"),
        ],
        nothing,
    )
    .await;
    assert_eq!(zen.status, 400, "{}", zen.body);
    assert!(zen.body["error"]["message"]
        .as_str()
        .unwrap()
        .contains("nothing at the records locator $.commits"));

    // Rotation: the old secret is refused from then on.
    let rotated = post_raw(
        &server,
        "/pipelines/hooks/listeners/github/secret",
        &[("authorization", &bearer)],
        vec![],
    )
    .await
    .body;
    let new_key = rotated["secret"].as_str().unwrap().to_owned();
    assert_ne!(new_key, key);
    let headers_2 = [
        ("x-hub-signature-256", signed.as_str()),
        ("x-github-delivery", "d-4"),
    ];
    let stale = post_raw(&server, github, &headers_2, push.clone()).await;
    assert_eq!(
        stale.status, 401,
        "the old secret after rotation: {}",
        stale.body
    );
    let fresh = sign(&new_key, &other);
    let current = post_raw(
        &server,
        github,
        &[
            ("x-hub-signature-256", &fresh),
            ("x-github-delivery", "d-4"),
        ],
        other,
    )
    .await;
    assert_eq!(current.body, json!({"written": 1, "duplicates": 0}));
    let empty = post_raw(
        &server,
        "/pipelines/hooks/listeners/github/secret",
        &[("authorization", &bearer)],
        br#"{"secret": " "}"#.to_vec(),
    )
    .await;
    assert_eq!(empty.status, 400, "{}", empty.body);
    assert_eq!(
        secret(&server, "github").await,
        new_key,
        "an empty secret changed nothing"
    );
    let chosen = server
        .post(
            "/pipelines/hooks/listeners/orders/secret",
            json!({"secret": "chosen-by-the-sender-0001"}),
        )
        .await;
    assert_eq!(chosen["secret"], "chosen-by-the-sender-0001");
    let with_chosen = post_raw(
        &server,
        orders,
        &[("x-cde-token", "chosen-by-the-sender-0001")],
        event("o-3"),
    )
    .await;
    assert_eq!(with_chosen.body, json!({"written": 1, "duplicates": 0}));

    // A full log answers 429 with Retry-After and keeps nothing of that request.
    let small = "/hooks/hooks/small";
    let small_token = secret(&server, "small").await;
    let big =
        |n: usize| serde_json::to_vec(&json!({"n": n, "pad": "x".repeat(400 * 1024)})).unwrap();
    for n in 0..2 {
        let answer = post_raw(&server, small, &[("x-cde-token", &small_token)], big(n)).await;
        assert_eq!(answer.status, 200, "{}", answer.body);
    }
    let full = post_raw(&server, small, &[("x-cde-token", &small_token)], big(2)).await;
    assert_eq!(full.status, 429, "{}", full.body);
    assert_eq!(full.body["error"]["code"], "too_many_requests");
    let retry_after: u64 = full.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(retry_after > 0);

    // Listed with URLs, masked secrets and counts; the same in the metrics and the CLI.
    let listed = listener(&server, "orders").await;
    assert!(
        listed["url"]
            .as_str()
            .unwrap()
            .ends_with("/hooks/hooks/orders"),
        "{listed}"
    );
    assert_eq!(listed["secret"], "****0001", "{listed}");
    assert_eq!(listed["received"], 3, "{listed}");
    assert_eq!(listed["deduplicated"], 1, "{listed}");
    assert_eq!(listed["rejected"], 7, "{listed}");
    assert_eq!(listed["pending"], 3, "{listed}");
    assert_eq!(listed["consumed"], 0, "{listed}");
    assert!(
        listed["oldest_pending_secs"].as_f64().unwrap() >= 0.0,
        "{listed}"
    );
    let small_listed = listener(&server, "small").await;
    assert_eq!(small_listed["rejected"], 1, "{small_listed}");
    assert_eq!(small_listed["received"], 2, "{small_listed}");
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "cde_listener_events_received_total{pipeline=\"hooks\",listener=\"orders\"} 3",
        "cde_listener_events_deduplicated_total{pipeline=\"hooks\",listener=\"github\"} 2",
        "cde_listener_deliveries_rejected_total{pipeline=\"hooks\",listener=\"orders\"} 7",
        "cde_listener_events_pending{pipeline=\"hooks\",listener=\"github\"} 3",
    ] {
        assert!(metrics.contains(line), "{line} not in\n{metrics}");
    }
    assert!(metrics
        .contains("cde_listener_oldest_pending_seconds{pipeline=\"hooks\",listener=\"orders\"}"));
    let cli = std::process::Command::new(env!("CARGO_BIN_EXE_cde"))
        .args(["pipeline", "listeners", "hooks"])
        .env("CDE_SERVER", &server.url)
        .env("CDE_API_TOKEN", TOKEN)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&cli.stdout);
    assert!(
        cli.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&cli.stderr)
    );
    assert!(
        text.contains("/hooks/hooks/github") && text.contains("hmac_sha256"),
        "{text}"
    );
    assert!(
        !text.contains(&new_key) && !text.contains(&small_token),
        "{text}"
    );

    // A run consumes what arrived; the next has nothing new.
    let run = run_pipeline(&server, "hooks").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let listener_steps: Vec<_> = run["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["kind"].clone(),
                s["connector"].clone(),
                s["rows_out"].clone(),
            )
        })
        .collect();
    assert_eq!(
        listener_steps,
        [
            (json!("listener"), json!("orders"), json!(3)),
            (json!("listener"), json!("github"), json!(3)),
        ]
    );
    let rows = latest_rows(&server, "hooks").await;
    let ids: BTreeSet<_> = rows.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["o-1", "o-2", "o-3"]), "{rows:?}");
    let listed = listener(&server, "orders").await;
    assert_eq!(
        (listed["consumed"].clone(), listed["pending"].clone()),
        (json!(3), json!(0))
    );
    assert_eq!(listed["oldest_pending_secs"], Value::Null, "{listed}");
    let run = run_pipeline(&server, "hooks").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["steps"][0]["rows_out"], 0, "{run}");
}

#[tokio::test]
async fn a_server_killed_while_clients_post_keeps_every_acknowledged_event_once() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    server.post("/pipelines", hooks_pipeline()).await;
    let token = secret(&server, "orders").await;
    let url = format!("{}/hooks/hooks/orders", server.url);
    let started = Instant::now();
    let clients: Vec<_> = (0..8)
        .map(|client| {
            let (url, token) = (url.clone(), token.clone());
            tokio::spawn(async move {
                let http = reqwest::Client::builder()
                    .timeout(Duration::from_secs(2))
                    .build()
                    .unwrap();
                let (mut acknowledged, mut sent) = (Vec::new(), Vec::new());
                let mut n = 0;
                while started.elapsed() < Duration::from_secs(10) {
                    let id = format!("c{client}-{n}");
                    n += 1;
                    sent.push(id.clone());
                    let body = json!({"id": id, "client": client, "pad": "p".repeat(900)});
                    match http
                        .post(&url)
                        .header("x-cde-token", &token)
                        .json(&body)
                        .send()
                        .await
                    {
                        Ok(answer) if answer.status() == 200 => acknowledged.push(id),
                        Ok(answer) => panic!("{id}: answered {}", answer.status()),
                        // The server is gone: keep trying (with a pause) until the 10 s end.
                        Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
                    }
                }
                (acknowledged, sent)
            })
        })
        .collect();
    wait_until(
        "clients to have events acknowledged",
        Duration::from_secs(10),
        || async {
            let pending = listener(&server, "orders").await["pending"]
                .as_u64()
                .unwrap();
            match pending >= 1000 {
                true => Ok(()),
                false => Err(pending),
            }
        },
    )
    .await;
    server.kill();
    let mut acknowledged = Vec::new();
    let mut sent = BTreeSet::new();
    for client in clients {
        let (acked, tried) = client.await.unwrap();
        acknowledged.extend(acked);
        sent.extend(tried);
    }
    assert!(acknowledged.len() >= 500, "{}", acknowledged.len());

    let server = Server::start(data.path()).await;
    let run = run_pipeline(&server, "hooks").await;
    assert_eq!(run["status"], "succeeded", "{run}");
    let rows = latest_rows(&server, "hooks").await;
    let mut seen: HashMap<String, usize> = HashMap::new();
    for row in &rows {
        let id = row["id"]
            .as_str()
            .expect("every kept event whole")
            .to_owned();
        assert_eq!(row["pad"].as_str().map(str::len), Some(900), "{row}");
        assert!(sent.contains(&id), "{id} was never sent");
        *seen.entry(id).or_default() += 1;
    }
    eprintln!(
        "{} events sent, {} acknowledged, {} kept after the kill",
        sent.len(),
        acknowledged.len(),
        rows.len()
    );
    let twice: Vec<_> = seen.iter().filter(|(_, n)| **n > 1).collect();
    assert!(twice.is_empty(), "kept more than once: {twice:?}");
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|id| !seen.contains_key(*id))
        .collect();
    assert!(lost.is_empty(), "acknowledged, then lost: {lost:?}");
    // The log takes appends again after its torn tail.
    let after = post_raw(
        &server,
        "/hooks/hooks/orders",
        &[("x-cde-token", &token)],
        serde_json::to_vec(&json!({"id": "after-restart"})).unwrap(),
    )
    .await;
    assert_eq!(after.body, json!({"written": 1, "duplicates": 0}));
}

#[tokio::test]
async fn events_trigger_runs_at_most_once_per_debounce_never_two_at_once() {
    let data = tempfile::tempdir().unwrap();
    let server = Server::start(data.path()).await;
    let mut pipeline = hooks_pipeline();
    pipeline["trigger"] = json!({"on_events": true, "debounce_secs": 2});
    server.post("/pipelines", pipeline).await;
    let token = secret(&server, "orders").await;
    let deliver = |id: String| {
        let body = serde_json::to_vec(&json!({"id": id})).unwrap();
        let (server, token) = (&server, token.clone());
        async move {
            let answer = post_raw(
                server,
                "/hooks/hooks/orders",
                &[("x-cde-token", &token)],
                body,
            )
            .await;
            assert_eq!(answer.status, 200, "{}", answer.body);
        }
    };
    deliver("first".into()).await;
    wait_until(
        "a run on the first event",
        Duration::from_secs(20),
        || async {
            let listed = listener(&server, "orders").await;
            match listed["consumed"] == 1 {
                true => Ok(()),
                false => Err(listed),
            }
        },
    )
    .await;
    // A burst after it: the runs it causes wait for the debounce.
    for n in 0..20 {
        deliver(format!("burst-{n}")).await;
    }
    let consumed = wait_until(
        "every event consumed by triggered runs",
        Duration::from_secs(30),
        || async {
            let listed = listener(&server, "orders").await;
            match listed["consumed"] == 21 {
                true => Ok(listed),
                false => Err(listed),
            }
        },
    )
    .await;
    assert_eq!(consumed["pending"], 0, "{consumed}");
    assert_eq!(consumed["received"], 21, "{consumed}");
    let runs = server.get("/pipelines/hooks/runs").await;
    let mut runs: Vec<Value> = runs.as_array().unwrap().clone();
    runs.reverse();
    assert!(
        runs.len() >= 2,
        "the burst after the first run's start: {runs:?}"
    );
    let at = |run: &Value, field: &str| {
        chrono::DateTime::parse_from_rfc3339(run[field].as_str().unwrap()).unwrap()
    };
    for run in &runs {
        assert_eq!(run["trigger"], "events", "{run}");
        assert_eq!(run["status"], "succeeded", "{run}");
    }
    for pair in runs.windows(2) {
        let gap = at(&pair[1], "created_at") - at(&pair[0], "created_at");
        assert!(
            gap >= chrono::Duration::milliseconds(1990),
            "runs {gap} apart: {pair:?}"
        );
        assert!(
            at(&pair[0], "finished_at") <= at(&pair[1], "created_at"),
            "{pair:?}"
        );
    }
    // Nothing new: no more runs.
    let count = runs.len();
    tokio::time::sleep(Duration::from_millis(2500)).await;
    let later = server.get("/pipelines/hooks/runs").await;
    assert_eq!(later.as_array().unwrap().len(), count, "{later}");
}

#[tokio::test]
async fn a_failed_run_leaves_its_events_to_the_next_successful_one_exactly_once() {
    image("tests/connectors/feed");
    let data = tempfile::tempdir().unwrap();
    let cde = Arc::new(open(config(data.path())).await);
    cde.register_file(&root().join("tests/connectors/feed/service.yaml"))
        .await
        .unwrap();
    let with_service = |mode: &str| {
        let mut pipeline = hooks_pipeline();
        pipeline["name"] = json!("relay");
        pipeline["sources"] = json!([{"listener": "orders"}]);
        pipeline["services"] = json!([{"connector": "feed-service", "options": {"MODE": mode}}]);
        cde::model::Pipeline::parse(&pipeline.to_string(), true).unwrap()
    };
    cde.save_pipeline(&with_service("fail")).await.unwrap();
    let token = cde.listener_secret("relay", "orders").await.unwrap();
    let deliver = |ids: &[&str]| {
        let events: Vec<Value> = ids.iter().map(|id| json!({"id": id})).collect();
        let body = axum::body::Body::from(serde_json::to_vec(&events).unwrap());
        let mut headers = axum::http::HeaderMap::new();
        headers.insert("x-cde-token", token.parse().unwrap());
        let cde = cde.clone();
        async move {
            cde.deliver("relay", "orders", &headers, None, body)
                .await
                .unwrap()
        }
    };
    let set = |ids: &[&str]| ids.iter().map(|s| s.to_string()).collect::<BTreeSet<_>>();

    assert_eq!(deliver(&["a", "b"]).await.written, 2);
    let failed = cde.run_pipeline("relay", "manual").await.unwrap();
    assert_eq!(
        failed.status,
        cde::model::PipelineStatus::Failed,
        "{failed:?}"
    );
    assert_eq!(failed.steps[0].rows_out, Some(2), "{failed:?}");
    deliver(&["c"]).await;
    cde.save_pipeline(&with_service("tag")).await.unwrap();
    let first = cde.run_pipeline("relay", "manual").await.unwrap();
    assert_eq!(
        first.status,
        cde::model::PipelineStatus::Succeeded,
        "{first:?}"
    );
    assert_eq!(relay_ids(&cde).await, set(&["a", "b", "c"]));
    let listed = cde.listeners("relay").await.unwrap();
    assert_eq!(
        (listed[0].consumed, listed[0].pending),
        (3, 0),
        "{listed:?}"
    );
    deliver(&["d", "e"]).await;
    // A late retry of a consumed event is still known by its id in this process.
    let retried = deliver(&["a"]).await;
    assert_eq!((retried.written, retried.duplicates), (0, 1));

    // Another process, from what is on disk: the offset is where the last success left it.
    drop(cde);
    let cde = Arc::new(open(config(data.path())).await);
    let second = cde.run_pipeline("relay", "manual").await.unwrap();
    assert_eq!(
        second.status,
        cde::model::PipelineStatus::Succeeded,
        "{second:?}"
    );
    assert_eq!(relay_ids(&cde).await, set(&["d", "e"]));
    let third = cde.run_pipeline("relay", "manual").await.unwrap();
    assert_eq!(third.steps[0].rows_out, Some(0), "{third:?}");
    let listed = cde.listeners("relay").await.unwrap();
    assert_eq!(
        (listed[0].received, listed[0].consumed),
        (5, 5),
        "{listed:?}"
    );
}

/// The ids of the latest version of `pipeline/relay`.
async fn relay_ids(cde: &cde::Cde) -> BTreeSet<String> {
    let dataset = cde
        .store
        .latest_dataset("pipeline/relay")
        .await
        .unwrap()
        .unwrap();
    cde::dataset::read_rows(dataset.path())
        .unwrap()
        .into_iter()
        .map(|row| row["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_hub_documents_event_listener_declares_where_its_events_are() {
    let data = tempfile::tempdir().unwrap();
    let cde = Arc::new(open(config(data.path())).await);
    let document = json!({
        "openapi": "3.0.0",
        "info": {"title": "Contacts hub", "version": "1"},
        "servers": [{"url": "https://contacts.invalid"}],
        "paths": {"/contacts": {"get": {"responses": {"200": {"description": "ok"}}}}},
        "preDefinedEvents": [{"resourcePath": "/contacts/get", "name": "Get contacts"}],
        "preDefinedEventListeners": [
            {"webhookPath": "contactEvent/post", "recordsLocator": "$.data.items", "name": "Contacts in real time"}
        ],
        "webhooks": {"contactEvent": {"post": {"responses": {"200": {"description": "received"}}}}}
    });
    let manifest = json!({
        "code": "contacts-hub", "label": "Contacts hub", "type": "data-source",
        "http": {"dialect": "cdp", "spec": document},
    });
    let manifest = cde::model::Manifest::parse(&manifest.to_string(), true).unwrap();
    cde.register(manifest).await.unwrap();
    let pipeline = |webhook: Value| {
        let pipeline = json!({
            "name": "crm",
            "listeners": [{"name": "contacts", "connector": "contacts-hub", "webhook": webhook,
                           "auth": {"type": "token"}}],
            "sources": [{"listener": "contacts"}],
        });
        cde::model::Pipeline::parse(&pipeline.to_string(), true).unwrap()
    };
    let wrong = cde
        .save_pipeline(&pipeline(json!("nope/post")))
        .await
        .unwrap_err();
    assert!(
        wrong.to_string().contains("\"contactEvent/post\""),
        "the message lists what the document has: {wrong}"
    );
    let saved = cde.save_pipeline(&pipeline(Value::Null)).await.unwrap();
    assert_eq!(saved.listeners[0].records_locator, "$.data.items");
    assert_eq!(
        saved.listeners[0].webhook.as_deref(),
        Some("contactEvent/post")
    );
    let by_name = cde
        .save_pipeline(&pipeline(json!("Contacts in real time")))
        .await
        .unwrap();
    assert_eq!(by_name.listeners[0].records_locator, "$.data.items");

    let token = cde.listener_secret("crm", "contacts").await.unwrap();
    let mut headers = axum::http::HeaderMap::new();
    headers.insert("x-cde-token", token.parse().unwrap());
    let body = json!({"type": "contact.created", "data": {"items": [{"id": "c1"}, {"id": "c2"}]}});
    let appended = cde
        .deliver(
            "crm",
            "contacts",
            &headers,
            None,
            axum::body::Body::from(body.to_string()),
        )
        .await
        .unwrap();
    assert_eq!(appended.written, 2);
}
