//! The management API over a real listener, with the real Docker engine and SQLite files
//! in temporary directories.

mod common;

use std::sync::Arc;

use cde::server::Loop;
use cde::Cde;
use common::{leftovers, root, sample_image, sample_manifest, SAMPLE};
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, WWW_AUTHENTICATE};
use reqwest::{Method, StatusCode};
use serde_json::{json, Value};

const TOKEN: &str = "test-token";

fn sample_yaml() -> String {
    std::fs::read_to_string(sample_manifest()).unwrap()
}

/// A management API on 127.0.0.1 over its own data directory.
struct Server {
    base: String,
    http: reqwest::Client,
    cde: Arc<Cde>,
    _server: cde::server::Server,
    _data: tempfile::TempDir,
}

impl Server {
    /// With the scheduler, queued runs are executed; without, they stay queued.
    async fn start(scheduler: bool) -> Self {
        sample_image();
        let data = tempfile::tempdir().unwrap();
        let cde = Arc::new(common::open(common::config(data.path())).await);
        let loops: &[Loop] = if scheduler { &[Loop::Schedule] } else { &[] };
        let server = cde::server::Server::start(cde.clone(), TOKEN.to_owned(), loops)
            .await
            .unwrap();
        Self {
            base: server.url(),
            http: reqwest::Client::new(),
            cde,
            _server: server,
            _data: data,
        }
    }

    fn request(&self, method: Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.base))
            .header(AUTHORIZATION, format!("Bearer {TOKEN}"))
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> (StatusCode, Value) {
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        let body = serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"));
        (status, body)
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(self.request(Method::GET, path)).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.send(self.request(Method::POST, path).json(&body))
            .await
    }

    async fn register_sample(&self) {
        let request = self
            .request(Method::POST, "/connectors")
            .header(CONTENT_TYPE, "application/yaml")
            .body(sample_yaml());
        let (status, body) = self.send(request).await;
        assert!(status.is_success(), "{status} {body}");
    }

    async fn metrics(&self) -> String {
        let response = self
            .http
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        response.text().await.unwrap()
    }

    /// Follows a run's log to its `end` event: the events as (name, id, data).
    async fn follow(
        &self,
        id: &str,
        last_event_id: Option<i64>,
    ) -> Vec<(String, Option<String>, Value)> {
        let mut request = self.request(Method::GET, &format!("/runs/{id}/logs?follow=true"));
        if let Some(last) = last_event_id {
            request = request.header("Last-Event-ID", last.to_string());
        }
        let mut response = request.send().await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert!(response.headers()[CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/event-stream"));
        let follow = async {
            let (mut buffer, mut events) = (String::new(), vec![]);
            while let Some(chunk) = response.chunk().await.unwrap() {
                buffer.push_str(std::str::from_utf8(&chunk).unwrap());
                while let Some(end) = buffer.find("\n\n") {
                    let block: String = buffer.drain(..end + 2).collect();
                    if let Some(event) = parse_event(&block) {
                        events.push(event);
                    }
                }
            }
            events
        };
        let events = tokio::time::timeout(std::time::Duration::from_secs(120), follow)
            .await
            .expect("the run ends");
        assert_eq!(
            events.last().map(|e| e.0.as_str()),
            Some("end"),
            "{events:?}"
        );
        events
    }
}

/// One server-sent event block; `None` for a keep-alive comment.
fn parse_event(block: &str) -> Option<(String, Option<String>, Value)> {
    let (mut name, mut id, mut data) = (None, None, String::new());
    for line in block.lines() {
        let (field, value) = line.split_once(':').unwrap_or((line, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match field {
            "event" => name = Some(value.to_owned()),
            "id" => id = Some(value.to_owned()),
            "data" => data.push_str(value),
            _ => {}
        }
    }
    Some((name?, id, serde_json::from_str(&data).unwrap()))
}

fn assert_error(status: StatusCode, body: &Value, expected: StatusCode, code: &str) {
    assert_eq!(status, expected, "{body}");
    assert_eq!(body["error"]["code"], code, "{body}");
    assert!(
        body["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "{body}"
    );
}

#[tokio::test]
async fn protected_routes_need_the_token_and_health_metrics_and_docs_do_not() {
    let server = Server::start(false).await;
    let protected = [
        (Method::GET, "/connectors"),
        (Method::POST, "/connectors"),
        (Method::GET, "/connectors/x"),
        (Method::GET, "/runs"),
        (Method::POST, "/runs"),
        (Method::GET, "/runs/x"),
        (Method::POST, "/runs/x/cancel"),
        (Method::GET, "/runs/x/logs"),
        (Method::GET, "/runs/x/output"),
    ];
    for (method, path) in protected {
        let url = format!("{}{path}", server.base);
        for authorization in [
            None,
            Some("Bearer wrong-token"),
            Some(TOKEN),
            Some("Basic dGVzdC10b2tlbg=="),
        ] {
            let mut request = server.http.request(method.clone(), &url);
            if let Some(authorization) = authorization {
                request = request.header(AUTHORIZATION, authorization);
            }
            let response = request.send().await.unwrap();
            assert_eq!(
                response.headers()[WWW_AUTHENTICATE],
                "Bearer",
                "{method} {path}"
            );
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_error(status, &body, StatusCode::UNAUTHORIZED, "unauthorized");
        }
    }

    // The scheme is case-insensitive.
    let lowercase = server
        .http
        .get(format!("{}/runs", server.base))
        .header(AUTHORIZATION, format!("bearer {TOKEN}"));
    assert_eq!(server.send(lowercase).await, (StatusCode::OK, json!([])));

    let (status, body) = server
        .send(server.http.get(format!("{}/health", server.base)))
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!({"status": "ok"})));
    assert!(server
        .metrics()
        .await
        .contains("cde_runs{status=\"queued\"} 0"));
    let (status, spec) = server
        .send(server.http.get(format!("{}/openapi.json", server.base)))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(spec, serde_json::to_value(cde::api::openapi()).unwrap());
    let docs = server
        .http
        .get(format!("{}/docs/", server.base))
        .send()
        .await
        .unwrap();
    assert_eq!(docs.status(), StatusCode::OK);
    assert!(docs.text().await.unwrap().contains("swagger-ui"));

    let (status, body) = server.get("/nowhere").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (status, body) = server.send(server.request(Method::DELETE, "/runs")).await;
    assert_error(
        status,
        &body,
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
    );
}

#[tokio::test]
async fn connectors_register_from_yaml_and_json_and_unknown_fields_are_named() {
    let server = Server::start(false).await;
    let yaml = sample_yaml();
    let request = server
        .request(Method::POST, "/connectors")
        .header(CONTENT_TYPE, "application/yaml")
        .body(yaml.clone());
    let (status, body) = server.send(request).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body, json!({"code": SAMPLE, "version": 1, "created": true}));

    // The same manifest as JSON changes nothing.
    let manifest =
        serde_json::to_value(cde::model::Manifest::parse(&yaml, false).unwrap()).unwrap();
    let (status, body) = server.post("/connectors", manifest.clone()).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        body,
        json!({"code": SAMPLE, "version": 1, "created": false})
    );

    let (status, list) = server.get("/connectors").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
    assert_eq!(list[0]["code"], SAMPLE);
    let (status, shown) = server.get(&format!("/connectors/{SAMPLE}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(shown["version"], 1);
    assert_eq!(shown["manifest"], manifest);

    let request = server
        .request(Method::POST, "/connectors")
        .header(CONTENT_TYPE, "application/yaml")
        .body(format!("{yaml}colour: red\n"));
    let (status, body) = server.send(request).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_manifest");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("unknown field `colour`"),
        "{body}"
    );

    let mut bad_option = manifest.clone();
    bad_option["options"][1]["size"] = json!(3);
    let (status, body) = server.post("/connectors", bad_option).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "invalid_manifest");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("options[1].size: unknown field `size`"),
        "{body}"
    );

    let request = server
        .request(Method::POST, "/connectors")
        .header(CONTENT_TYPE, "text/plain")
        .body(yaml);
    let (status, body) = server.send(request).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let mut missing_image = manifest;
    missing_image["image"] = json!("cde-test/no-such-image:latest");
    let (status, body) = server.post("/connectors", missing_image).await;
    assert_error(
        status,
        &body,
        StatusCode::UNPROCESSABLE_ENTITY,
        "health_check_failed",
    );

    let (status, body) = server.get("/connectors/nope").await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
    let (_, list) = server.get("/connectors").await;
    assert_eq!(list.as_array().unwrap().len(), 1, "{list}");
}

#[tokio::test]
async fn a_run_streams_its_logs_to_the_end_and_pages_its_output() {
    let server = Server::start(true).await;
    server.register_sample().await;
    let (status, run) = server
        .post(
            "/runs",
            json!({"connector": SAMPLE, "options": {"NAME": "api"}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    assert_eq!(run["status"], "queued");
    assert!(run.get("config").is_none(), "{run}");
    let id = run["id"].as_str().unwrap().to_owned();

    let events = server.follow(&id, None).await;
    let (logs, end) = events.split_at(events.len() - 1);
    let finished = &end[0].2;
    assert_eq!(finished["id"], id.as_str());
    assert_eq!(finished["status"], "succeeded", "{finished}");
    assert_eq!(finished["output_rows"], 3);
    for (n, (name, event_id, line)) in logs.iter().enumerate() {
        assert_eq!(name, "log");
        assert_eq!(line["seq"], n as i64);
        assert_eq!(event_id.as_deref(), Some(n.to_string().as_str()));
    }
    let messages: Vec<(&str, &str)> = logs
        .iter()
        .map(|(_, _, l)| {
            (
                l["source"].as_str().unwrap(),
                l["message"].as_str().unwrap(),
            )
        })
        .collect();
    assert!(
        messages.contains(&("api", "starting sample source for api")),
        "{messages:?}"
    );
    assert!(
        messages.contains(&("stdout", "sample source wrote 3 records for api")),
        "{messages:?}"
    );
    assert!(
        messages.contains(&("stderr", "sample warning on stderr")),
        "{messages:?}"
    );
    assert_eq!(leftovers(&server.cde, &id).await, Vec::<String>::new());

    // The same lines as JSON, and a reconnect with Last-Event-ID resumes after it.
    let (status, lines) = server.get(&format!("/runs/{id}/logs")).await;
    assert_eq!(status, StatusCode::OK);
    let lines = lines.as_array().unwrap();
    assert_eq!(lines.len(), logs.len());
    assert_eq!(
        lines.iter().collect::<Vec<_>>(),
        logs.iter().map(|(_, _, l)| l).collect::<Vec<_>>()
    );
    let (_, from) = server.get(&format!("/runs/{id}/logs?from=2")).await;
    assert_eq!(from.as_array().unwrap()[..], lines[2..]);
    let resumed = server.follow(&id, Some(lines.len() as i64 - 3)).await;
    assert_eq!(resumed.len(), 3, "two lines and the end: {resumed:?}");
    assert_eq!(resumed[0].2, lines[lines.len() - 2]);

    // Output records, two pages.
    let (status, page) = server.get(&format!("/runs/{id}/output?limit=2")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["offset"], 0);
    assert_eq!(page["next_offset"], 2);
    let (status, last) = server
        .get(&format!("/runs/{id}/output?type=output&offset=2&limit=2"))
        .await;
    assert_eq!(status, StatusCode::OK, "{last}");
    assert_eq!(last["next_offset"], Value::Null);
    let records: Vec<&Value> = page["records"]
        .as_array()
        .unwrap()
        .iter()
        .chain(last["records"].as_array().unwrap())
        .collect();
    let ids: Vec<&str> = records.iter().map(|r| r["id"].as_str().unwrap()).collect();
    assert_eq!(ids, ["sample-1", "sample-2", "sample-3"]);
    assert!(
        records
            .iter()
            .all(|r| r["title"].as_str().unwrap().ends_with("for api")),
        "{records:?}"
    );
    let (_, beyond) = server.get(&format!("/runs/{id}/output?offset=10")).await;
    assert_eq!(
        beyond,
        json!({"records": [], "offset": 10, "next_offset": null})
    );
    let (_, feedback) = server
        .get(&format!("/runs/{id}/output?type=feedback"))
        .await;
    assert_eq!(
        feedback,
        json!({"records": [], "offset": 0, "next_offset": null})
    );
    for bad in ["limit=0", "offset=-1", "limit=many", "type=input"] {
        let (status, body) = server.get(&format!("/runs/{id}/output?{bad}")).await;
        assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    }

    let (status, shown) = server.get(&format!("/runs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(&shown, finished);
    let (_, listed) = server
        .get(&format!(
            "/runs?status=succeeded&connector={SAMPLE}&limit=5"
        ))
        .await;
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    let (_, none) = server.get("/runs?status=failed").await;
    assert_eq!(none, json!([]));
    let (status, body) = server.get("/runs?status=bogus").await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    assert!(server
        .metrics()
        .await
        .contains("cde_runs{status=\"succeeded\"} 1"));
}

#[tokio::test]
async fn invalid_run_requests_are_rejected_and_nothing_is_recorded() {
    let server = Server::start(false).await;
    server.register_sample().await;
    let invalid = [
        (
            json!({"connector": SAMPLE, "options": {"NOPE": "x"}}),
            StatusCode::BAD_REQUEST,
            "invalid_config",
        ),
        (
            json!({"connector": SAMPLE, "options": {"SHOULD_FAIL": "maybe"}}),
            StatusCode::BAD_REQUEST,
            "invalid_config",
        ),
        (
            json!({"connector": SAMPLE, "limits": {"memory_mb": 1}}),
            StatusCode::BAD_REQUEST,
            "invalid_config",
        ),
        (
            json!({"connector": SAMPLE, "colour": "red"}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"options": {}}),
            StatusCode::BAD_REQUEST,
            "bad_request",
        ),
        (
            json!({"connector": "nope"}),
            StatusCode::NOT_FOUND,
            "not_found",
        ),
    ];
    for (request, expected, code) in invalid {
        let (status, body) = server.post("/runs", request.clone()).await;
        assert_error(status, &body, expected, code);
        if code == "invalid_config" {
            let message = body["error"]["message"].as_str().unwrap();
            let named = ["NOPE", "SHOULD_FAIL", "memory_mb"]
                .iter()
                .any(|name| message.contains(name));
            assert!(named, "the message names the option: {body}");
        }
    }
    let request = server
        .request(Method::POST, "/runs")
        .header(CONTENT_TYPE, "application/json")
        .body("{not json");
    let (status, body) = server.send(request).await;
    assert_error(status, &body, StatusCode::BAD_REQUEST, "bad_request");
    let request = server
        .request(Method::POST, "/runs")
        .body(r#"{"connector": "x"}"#);
    let (status, body) = server.send(request).await;
    assert_error(
        status,
        &body,
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
        "unsupported_media_type",
    );

    let (status, runs) = server.get("/runs").await;
    assert_eq!((status, runs), (StatusCode::OK, json!([])));
}

#[tokio::test]
async fn unknown_runs_are_404_in_the_error_shape() {
    let server = Server::start(false).await;
    for path in [
        "/runs/nope",
        "/runs/nope/logs",
        "/runs/nope/logs?follow=true",
        "/runs/nope/output",
    ] {
        let (status, body) = server.get(path).await;
        assert_eq!(
            body,
            json!({"error": {"code": "not_found", "message": "run not found: nope"}}),
            "{path}"
        );
        assert_eq!(status, StatusCode::NOT_FOUND);
    }
    let (status, body) = server.post("/runs/nope/cancel", json!(null)).await;
    assert_error(status, &body, StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_queued_run_is_cancelled_and_counted() {
    // No scheduler: the run stays queued until it is cancelled.
    let server = Server::start(false).await;
    server.register_sample().await;
    let (status, run) = server.post("/runs", json!({"connector": SAMPLE})).await;
    assert_eq!(status, StatusCode::CREATED, "{run}");
    let id = run["id"].as_str().unwrap();
    assert!(server
        .metrics()
        .await
        .contains("cde_runs{status=\"queued\"} 1"));

    let (status, cancelled) = server
        .send(server.request(Method::POST, &format!("/runs/{id}/cancel")))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["status"], "cancelled");
    assert!(cancelled["finished_at"].is_string(), "{cancelled}");
    let (_, shown) = server.get(&format!("/runs/{id}")).await;
    assert_eq!(shown["status"], "cancelled");
    // Following a finished run ends at once.
    let events = server.follow(id, None).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].2["status"], "cancelled");

    let metrics = server.metrics().await;
    assert!(metrics.contains("# TYPE cde_runs gauge"), "{metrics}");
    assert!(
        metrics.contains("cde_runs{status=\"queued\"} 0"),
        "{metrics}"
    );
    assert!(
        metrics.contains("cde_runs{status=\"cancelled\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("process_resident_memory_bytes "),
        "{metrics}"
    );
}

#[test]
fn the_committed_openapi_document_is_fresh() {
    let path = root().join("openapi/orchestrator.json");
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == cde::api::openapi_json(),
        "{} is stale; regenerate it with `cargo run -- openapi > openapi/orchestrator.json`",
        path.display()
    );
}
