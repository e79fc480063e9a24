//! The real server, in process on 127.0.0.1:0, driven over HTTP.

use std::path::Path;

use container_api::{Config, LogLine, LogSource, Server, Summary};
use reqwest::StatusCode;
use serde_json::{json, Value};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

struct TestServer {
    base: String,
    dir: TempDir,
    client: reqwest::Client,
    stop: oneshot::Sender<()>,
    handle: JoinHandle<anyhow::Result<Summary>>,
}

async fn start() -> TestServer {
    start_with(|_| {}).await
}

async fn start_with(configure: impl FnOnce(&mut Config)) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::new(dir.path().join("run"));
    config.listen = "127.0.0.1:0".parse().unwrap();
    configure(&mut config);
    let server = Server::bind(config).await.unwrap();
    let base = format!("http://{}", server.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let handle = tokio::spawn(server.run(async {
        let _ = stopped.await;
    }));
    TestServer {
        base,
        dir,
        client: reqwest::Client::new(),
        stop,
        handle,
    }
}

impl TestServer {
    fn run_dir(&self) -> std::path::PathBuf {
        self.dir.path().join("run")
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
        into_parts(response).await
    }

    async fn post_raw(&self, path: &str, content_type: &str, body: &str) -> (StatusCode, Value) {
        let response = self
            .client
            .post(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        into_parts(response).await
    }

    async fn shutdown(self) -> (Summary, TempDir) {
        self.stop.send(()).unwrap();
        let summary = self.handle.await.unwrap().unwrap();
        (summary, self.dir)
    }
}

async fn into_parts(response: reqwest::Response) -> (StatusCode, Value) {
    let status = response.status();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_owned();
    assert_eq!(content_type, "application/json", "status {status}");
    (status, response.json().await.unwrap())
}

fn read_lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn output_path(run_dir: &Path, kind: &str) -> std::path::PathBuf {
    run_dir.join("output").join(format!("{kind}.jsonl"))
}

fn validation_failed(errors: Value) -> Value {
    json!({"message": "Validation failed", "errors": errors})
}

fn written() -> (StatusCode, Value) {
    (
        StatusCode::CREATED,
        json!({"message": "Written successfully."}),
    )
}

#[tokio::test]
async fn ping() {
    let s = start().await;
    let response = s
        .client
        .get(format!("{}/ping", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        into_parts(response).await,
        (StatusCode::OK, json!({"message": "pong"}))
    );
}

#[tokio::test]
async fn records_from_two_requests_are_flattened_and_appended() {
    let s = start().await;
    let first = json!({"data": [
        {"id": 1, "taxon": [{"id": 11, "name": "t"}]},
        {"id": 2, "price": 9.5},
    ]});
    assert_eq!(s.post("/output/output", first).await, written());
    let second = json!({"meta": {"separator": "_"}, "data": [{"id": 3, "dim": {"w": 1}}]});
    assert_eq!(s.post("/output/output", second).await, written());

    assert_eq!(
        read_lines(&output_path(&s.run_dir(), "output")),
        vec![
            json!({"id": 1, "taxon-0-id": 11, "taxon-0-name": "t"}),
            json!({"id": 2, "price": 9.5}),
            json!({"id": 3, "dim_w": 1}),
        ]
    );
    assert!(!output_path(&s.run_dir(), "feedback").exists());
}

#[tokio::test]
async fn feedback_goes_to_its_own_file() {
    let s = start().await;
    let body = json!({"data": [{"id": "a", "status": "ok"}]});
    assert_eq!(s.post("/output/feedback", body).await, written());
    assert_eq!(
        read_lines(&output_path(&s.run_dir(), "feedback")),
        vec![json!({"id": "a", "status": "ok"})]
    );
    assert!(!output_path(&s.run_dir(), "output").exists());
}

#[tokio::test]
async fn unknown_output_type_is_rejected() {
    let s = start().await;
    let (status, body) = s.post("/output/input", json!({"data": [{"id": 1}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        validation_failed(json!({"type": "This value should be one of: output, feedback."}))
    );
    assert!(!s.run_dir().join("output").exists());
}

#[tokio::test]
async fn empty_missing_or_non_array_data_is_rejected_and_nothing_written() {
    let s = start().await;
    let expected = (
        StatusCode::BAD_REQUEST,
        validation_failed(json!({"data": "This value should be an array of items."})),
    );
    for body in [
        json!({"data": []}),
        json!({}),
        json!({"meta": {"separator": "-"}}),
        json!({"data": {"id": 1}}),
        json!({"data": "x"}),
        json!([{"id": 1}]),
    ] {
        assert_eq!(
            s.post("/output/output", body.clone()).await,
            expected,
            "{body}"
        );
    }
    assert!(!output_path(&s.run_dir(), "output").exists());
}

#[tokio::test]
async fn a_non_object_item_rejects_the_whole_request() {
    let s = start().await;
    assert_eq!(
        s.post("/output/output", json!({"data": [{"id": 0}]})).await,
        written()
    );
    let (status, body) = s
        .post(
            "/output/output",
            json!({"data": [{"id": 1}, [1, 2], {"id": 3}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        validation_failed(json!({"data[1]": "This value should be of type object."}))
    );
    assert_eq!(
        read_lines(&output_path(&s.run_dir(), "output")),
        vec![json!({"id": 0})]
    );
}

#[tokio::test]
async fn bad_meta_and_colliding_columns_are_rejected() {
    let s = start().await;
    let (status, body) = s
        .post(
            "/output/output",
            json!({"meta": {"separator": 1}, "data": [{"id": 1}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        validation_failed(json!({"meta.separator": "This value should be of type string."}))
    );
    let (status, body) = s
        .post(
            "/output/output",
            json!({"data": [{"a-b": 1, "a": {"b": 2}}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        validation_failed(
            json!({"data[0]": "Column \"a-b\" occurs more than once after flattening."})
        )
    );
    assert!(!output_path(&s.run_dir(), "output").exists());
}

#[tokio::test]
async fn malformed_json_and_wrong_content_type_get_the_json_error_shape() {
    let s = start().await;
    for (content_type, body) in [
        ("application/json", "{\"data\": [{\"id\": 1}"),
        ("application/json", ""),
        ("text/plain", "{\"data\": [{\"id\": 1}]}"),
    ] {
        for path in ["/output/output", "/logs/info"] {
            let (status, response) = s.post_raw(path, content_type, body).await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "{path} {content_type} {body}"
            );
            assert_eq!(response["message"], "Validation failed");
            assert!(response["errors"]["body"].is_string(), "{response}");
        }
    }
    assert!(!output_path(&s.run_dir(), "output").exists());
    assert_eq!(
        std::fs::read_to_string(s.run_dir().join("logs.jsonl")).unwrap(),
        ""
    );
}

#[tokio::test]
async fn logs_land_in_logs_jsonl() {
    let s = start().await;
    let before = chrono::Utc::now();
    assert_eq!(
        s.post("/logs/info", json!({"message": "hello"})).await,
        written()
    );
    assert_eq!(
        s.post(
            "/logs/warning",
            json!({"message": "careful", "context": {"row": 7}})
        )
        .await,
        written()
    );
    assert_eq!(
        s.post("/logs/report", json!({"message": "done", "context": null}))
            .await,
        written()
    );

    let text = std::fs::read_to_string(s.run_dir().join("logs.jsonl")).unwrap();
    let lines: Vec<LogLine> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let got: Vec<_> = lines
        .iter()
        .map(|l| {
            (
                l.source,
                l.level.as_str(),
                l.message.as_str(),
                l.context.clone(),
            )
        })
        .collect();
    assert_eq!(
        got,
        vec![
            (LogSource::Api, "info", "hello", None),
            (
                LogSource::Api,
                "warning",
                "careful",
                Some(json!({"row": 7}))
            ),
            (LogSource::Api, "report", "done", None),
        ]
    );
    for line in &lines {
        assert!(line.at >= before - chrono::Duration::seconds(1));
        assert_eq!(line.at.timestamp_subsec_nanos() % 1000, 0);
    }
    // Raw format: microsecond timestamps, lowercase source, no null context.
    let first: Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    let at = first["at"].as_str().unwrap();
    assert_eq!(at.len(), "2025-01-02T03:04:05.123456Z".len(), "{at}");
    assert_eq!(first["source"], "api");
    assert!(first.get("context").is_none());
}

#[tokio::test]
async fn blank_message_and_unknown_level_are_rejected() {
    let s = start().await;
    let blank = (
        StatusCode::BAD_REQUEST,
        validation_failed(json!({"message": "This value should not be blank."})),
    );
    for body in [
        json!({"message": ""}),
        json!({"message": "  "}),
        json!({}),
        json!({"context": {}}),
    ] {
        assert_eq!(s.post("/logs/info", body.clone()).await, blank, "{body}");
    }
    let (status, body) = s.post("/logs/verbose", json!({"message": "x"})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        validation_failed(
            json!({"level": "This value should be one of: success, debug, info, notice, warning, error, critical, alert, emergency, report."})
        )
    );
    assert_eq!(
        std::fs::read_to_string(s.run_dir().join("logs.jsonl")).unwrap(),
        ""
    );
}

#[tokio::test]
async fn graceful_shutdown_writes_the_summary() {
    let s = start().await;
    s.post(
        "/output/output",
        json!({"data": [{"id": 1, "b": {"c": 1}}, {"id": 2}]}),
    )
    .await;
    s.post("/output/output", json!({"data": [{"id": 3, "a": "x"}]}))
        .await;
    s.post(
        "/output/feedback",
        json!({"data": [{"id": 1, "msg": "ok"}]}),
    )
    .await;
    s.post("/output/output", json!({"data": []})).await;
    s.post("/logs/info", json!({"message": "one"})).await;
    s.post("/logs/info", json!({"message": "two"})).await;
    s.post("/logs/error", json!({"message": "three"})).await;

    let (summary, dir) = s.shutdown().await;
    let run_dir = dir.path().join("run");
    let on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    let mut logs = serde_json::Map::new();
    for level in container_api::LOG_LEVELS {
        logs.insert(level.into(), json!(0));
    }
    logs.insert("info".into(), json!(2));
    logs.insert("error".into(), json!(1));
    assert_eq!(
        on_disk,
        json!({
            "files": {
                "output": {"rows": 3, "columns": ["a", "b-c", "id"]},
                "feedback": {"rows": 1, "columns": ["id", "msg"]},
            },
            "columns": ["a", "b-c", "id"],
            "logs": logs,
        })
    );
    assert_eq!(Summary::read(&run_dir).unwrap(), summary);
    assert!(!run_dir.join("summary.json.tmp").exists());
}

#[tokio::test]
async fn concurrent_writes_never_interleave() {
    let s = start().await;
    let long = "x".repeat(10_000);
    let mut tasks = Vec::new();
    for request in 0..20 {
        let client = s.client.clone();
        let url = format!("{}/output/output", s.base);
        let data: Vec<Value> = (0..50)
            .map(|i| json!({"request": request, "i": i, "long": long}))
            .collect();
        tasks.push(tokio::spawn(async move {
            client
                .post(url)
                .json(&json!({"data": data}))
                .send()
                .await
                .unwrap()
                .status()
        }));
    }
    for task in tasks {
        assert_eq!(task.await.unwrap(), StatusCode::CREATED);
    }
    let lines = read_lines(&output_path(&s.run_dir(), "output"));
    assert_eq!(lines.len(), 1000);
    // Each request's 50 rows are contiguous and in order.
    for chunk in lines.chunks(50) {
        let request = &chunk[0]["request"];
        for (i, line) in chunk.iter().enumerate() {
            assert_eq!(&line["request"], request);
            assert_eq!(line["i"], json!(i));
        }
    }
    let (summary, _dir) = s.shutdown().await;
    assert_eq!(summary.files["output"].rows, 1000);
}

#[tokio::test]
async fn oversized_bodies_and_unknown_routes_answer_json() {
    let s = start_with(|c| c.body_limit = 1024).await;
    let big = json!({"data": [{"long": "x".repeat(2048)}]});
    let (status, body) = s.post("/output/output", big).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body, json!({"message": "Request body too large."}));

    let response = s
        .client
        .get(format!("{}/nope", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(
        into_parts(response).await,
        (StatusCode::NOT_FOUND, json!({"message": "Not found."}))
    );
    let response = s
        .client
        .get(format!("{}/output/output", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(into_parts(response).await.0, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn bodies_are_byte_exact() {
    let s = start().await;
    let text = |path: &'static str, body: &'static str| {
        let request = s
            .client
            .post(format!("{}{path}", s.base))
            .header("content-type", "application/json")
            .body(body);
        async move { request.send().await.unwrap().text().await.unwrap() }
    };
    assert_eq!(
        text("/output/output", r#"{"data":[]}"#).await,
        r#"{"message":"Validation failed","errors":{"data":"This value should be an array of items."}}"#
    );
    assert_eq!(
        text("/output/output", r#"{"data":[{"id":1}]}"#).await,
        r#"{"message":"Written successfully."}"#
    );
    assert_eq!(
        text("/logs/info", r#"{"message":""}"#).await,
        r#"{"message":"Validation failed","errors":{"message":"This value should not be blank."}}"#
    );
    let ping = s
        .client
        .get(format!("{}/ping", s.base))
        .send()
        .await
        .unwrap();
    assert_eq!(ping.text().await.unwrap(), r#"{"message":"pong"}"#);
}
