//! The real server, in process on 127.0.0.1:0, driven over HTTP.

mod common;

use common::*;
use container_api::{LogLine, LogSource, Summary};
use reqwest::StatusCode;
use serde_json::{json, Value};

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
async fn flat_records_are_kept_as_sent_and_the_rest_as_one_compact_line() {
    let s = start().await;
    let body = "{\"data\": [\n  {\"id\": \"1\", \"t\": \"a \\\"b\\\"\", \"n\": 1.50},\n  {\n    \"id\": \"2\",\n    \"n\": 2\n  },\n  {\"id\": \"3\", \"tags\": [\"x\"]}\n]}";
    let (status, _) = s
        .post_raw("/output/output", Some("application/json"), body)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        std::fs::read_to_string(output_path(&s.run_dir(), "output")).unwrap(),
        "{\"id\": \"1\", \"t\": \"a \\\"b\\\"\", \"n\": 1.50}\n{\"id\":\"2\",\"n\":2}\n{\"id\":\"3\",\"tags-0\":\"x\"}\n"
    );
}

#[tokio::test]
async fn meta_after_data_still_sets_the_separator() {
    let s = start().await;
    let body = r#"{"data": [{"a": {"b": 1}}, {"a": {"b": 2}}], "meta": {"separator": "."}}"#;
    let (status, _) = s
        .post_raw("/output/output", Some("application/json"), body)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        read_lines(&output_path(&s.run_dir(), "output")),
        vec![json!({"a.b": 1}), json!({"a.b": 2})]
    );
}

#[tokio::test]
async fn columns_are_the_union_of_all_rows() {
    let s = start().await;
    let body =
        json!({"data": [{"id": 1, "a": 1}, {"id": 2, "a": 2}, {"b": 3, "id": 3}, {"c": {"d": 4}}]});
    assert_eq!(s.post("/output/output", body).await, written());
    let body = r#"{"data": [{"\u0069d": 5, "e": 5}]}"#;
    let (status, _) = s
        .post_raw("/output/output", Some("application/json"), body)
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let (summary, _dir) = s.shutdown().await;
    assert_eq!(summary.files["output"].rows, 5);
    assert_eq!(summary.columns, ["a", "b", "c-d", "e", "id"]);
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
    let mut on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(run_dir.join("summary.json")).unwrap())
            .unwrap();
    // The host's cgroup, in this test: whatever it is.
    on_disk["diagnostics"]
        .as_object_mut()
        .unwrap()
        .remove("memory_peak_bytes");
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
            // The write of no records was a bad request.
            "diagnostics": {"bad_requests": 1, "rejected_writes": 0, "reads_after_end": {}},
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
async fn unknown_routes_answer_json() {
    let s = start().await;
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

#[tokio::test]
async fn diagnostics_count_reads_after_the_end_until_a_restart() {
    let s = start_with_inputs(&[("input", "{\"id\": 1}\n{\"id\": 2}\n")]).await;
    assert_eq!(
        s.get("/input/input/next_batch?size=5").await.1["data"]
            .as_array()
            .unwrap()
            .len(),
        2
    );
    // The answer that says "exhausted" is no fault; what follows it is.
    assert_eq!(
        s.get("/input/input/next_batch?size=5").await.1["data"],
        json!([])
    );
    s.get("/input/input/next_batch?size=5").await;
    s.get("/input/input/next").await;
    s.get("/input/input/restart").await;
    s.get("/input/input/next_batch?size=5").await;
    s.get("/input/input/next_batch?size=5").await;
    let (summary, _dir) = s.shutdown().await;
    assert_eq!(
        summary.diagnostics.reads_after_end,
        [("input".to_owned(), 2)].into()
    );
    assert_eq!(summary.diagnostics.bad_requests, 0);
    assert_eq!(summary.diagnostics.signal, None);
}

#[tokio::test]
async fn reject_writes_answers_every_write_with_400_and_counts_it() {
    let s = start_with(|config| config.reject_writes = true).await;
    let (status, body) = s.post("/output/output", json!({"data": [{"id": 1}]})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(body["message"], "Validation failed");
    assert!(
        body["errors"]["data"]
            .as_str()
            .unwrap()
            .contains("cde test"),
        "{body}"
    );
    s.post("/output/feedback/close", json!({})).await;
    // Logs and reads are served as ever.
    assert_eq!(
        s.post("/logs/error", json!({"message": "refused"})).await.0,
        StatusCode::CREATED
    );
    assert_eq!(s.get("/ping").await.0, StatusCode::OK);
    let (summary, dir) = s.shutdown().await;
    assert_eq!(summary.diagnostics.rejected_writes, 2);
    assert_eq!(summary.diagnostics.bad_requests, 2);
    assert_eq!(summary.files["output"].rows, 0);
    assert!(!output_path(&dir.path().join("run"), "output").exists());
}
