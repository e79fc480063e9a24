//! Bad input, one test per kind: each gets the contract's error answer, nothing of
//! the request is written, and the server keeps serving afterwards.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server with one output record and one log line written before the bad input.
async fn with_baseline(s: TestServer) -> TestServer {
    assert_eq!(
        s.post("/output/output", json!({"data": [{"id": "kept"}]}))
            .await,
        written()
    );
    assert_eq!(
        s.post("/logs/info", json!({"message": "kept"})).await,
        written()
    );
    s
}

async fn baseline() -> TestServer {
    with_baseline(start().await).await
}

/// Nothing but the baseline was written, and the server still reads and writes.
async fn assert_unharmed(s: &TestServer) {
    let run_dir = s.run_dir();
    assert_eq!(
        read_lines(&output_path(&run_dir, "output")),
        vec![json!({"id": "kept"})]
    );
    assert!(!output_path(&run_dir, "feedback").exists());
    let messages: Vec<Value> = read_lines(&run_dir.join("logs.jsonl"))
        .into_iter()
        .map(|l| l["message"].clone())
        .filter(|m| m != "still here")
        .collect();
    assert_eq!(messages, vec![json!("kept")]);
    assert!(!run_dir.join("storage").exists());
    s.assert_still_serving().await;
}

fn error_of(field: &str, body: &Value) -> String {
    assert_eq!(body["message"], "Validation failed", "{body}");
    body["errors"][field]
        .as_str()
        .unwrap_or_else(|| panic!("no errors.{field} in {body}"))
        .to_owned()
}

const JSON: Option<&str> = Some("application/json");
const POSTS: [&str; 5] = [
    "/output/output",
    "/output/feedback",
    "/logs/info",
    "/storage/internal",
    "/store/to-transport",
];

#[tokio::test]
async fn malformed_json() {
    let s = baseline().await;
    for body in [
        r#"{"data": [{"id": 1}"#,
        r#"{"data": [{"id": 1},]}"#,
        r#"{"data": [{"id": 1}]} trailing"#,
        r#"{'data': [{'id': 1}]}"#,
        r#"{"data": [{"id": 01}]}"#,
        "",
        "nul",
    ] {
        for path in POSTS {
            let (status, response) = s.post_raw(path, JSON, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {body:?}");
            let problem = error_of("body", &response);
            assert!(
                problem.starts_with("The request body is not valid JSON: "),
                "{problem}"
            );
        }
    }
    assert_unharmed(&s).await;
}

#[tokio::test]
async fn wrong_or_missing_content_type() {
    let s = baseline().await;
    let body = r#"{"data": [{"id": 1}], "message": "x"}"#;
    for content_type in [
        Some("text/plain"),
        Some("application/x-www-form-urlencoded"),
        Some("application/jsonx"),
        Some(""),
        None,
    ] {
        for path in POSTS {
            let (status, response) = s.post_raw(path, content_type, body).await;
            assert_eq!(status, StatusCode::BAD_REQUEST, "{path} {content_type:?}");
            assert_eq!(
                error_of("body", &response),
                "Expected request with `Content-Type: application/json`."
            );
        }
    }
    assert_unharmed(&s).await;
    // Parameters and +json suffixes are JSON.
    for content_type in [
        "application/json; charset=utf-8",
        "application/vnd.cde+json",
    ] {
        let (status, _) = s
            .post_raw("/logs/info", Some(content_type), r#"{"message": "x"}"#)
            .await;
        assert_eq!(status, StatusCode::CREATED, "{content_type}");
    }
}

#[tokio::test]
async fn body_over_the_configured_limit() {
    let s = with_baseline(start_with(|c| c.body_limit = 1024).await).await;
    let too_large = (
        StatusCode::PAYLOAD_TOO_LARGE,
        json!({"message": "Request body too large: the limit is 1024 bytes."}),
    );
    let big = json!({"message": "x", "data": [{"long": "x".repeat(2048)}]}).to_string();
    for path in POSTS {
        assert_eq!(
            s.post_raw(path, JSON, big.clone()).await,
            too_large,
            "{path}"
        );
    }
    // Without a Content-Length: the limit applies to the bytes as they arrive.
    let addr = s.base.trim_start_matches("http://");
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let chunk = format!(r#"{{"data":[{{"long":"{}"}}"#, "y".repeat(900));
    let request = format!(
        "POST /output/output HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n\
         {len:x}\r\n{chunk}\r\n{len:x}\r\n{chunk}\r\n0\r\n\r\n",
        len = chunk.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 413 "), "{answer}");
    assert!(answer.ends_with(&too_large.1.to_string()), "{answer}");
    // Just under the limit is fine.
    let fits = json!({"data": [{"id": "fits", "long": "x".repeat(900)}]});
    assert_eq!(s.post("/output/feedback", fits).await, written());
    std::fs::remove_file(output_path(&s.run_dir(), "feedback")).unwrap();
    assert_unharmed(&s).await;
}

#[tokio::test]
async fn invalid_utf8_and_unpaired_surrogates() {
    let s = baseline().await;
    for path in POSTS {
        let mut body = br#"{"message": "x", "data": [{"id": ""#.to_vec();
        body.extend_from_slice(&[0xff, 0xfe]);
        body.extend_from_slice(br#""}]}"#);
        let (status, response) = s.post_raw(path, JSON, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            error_of("body", &response),
            "The request body is not valid UTF-8."
        );

        let body = r#"{"message": "x\ud800", "data": [{"id": "\udc00"}]}"#;
        let (status, response) = s.post_raw(path, JSON, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(
            error_of("body", &response),
            "The request body contains an unpaired surrogate in a \\u escape."
        );
    }
    assert_unharmed(&s).await;
    // A proper pair is fine; the record is kept as it was written.
    let (status, _) = s
        .post_raw(
            "/output/feedback",
            JSON,
            r#"{"data": [{"e": "\ud83d\ude00"}]}"#,
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    assert_eq!(
        std::fs::read_to_string(output_path(&s.run_dir(), "feedback")).unwrap(),
        "{\"e\": \"\\ud83d\\ude00\"}\n"
    );
}

#[tokio::test]
async fn nesting_deeper_than_the_configured_limit() {
    let s = with_baseline(start_with(|c| c.max_depth = 6).await).await;
    // Body, data, record: 3 levels; the record may nest 3 more.
    let fits = json!({"data": [{"a": {"b": [[1]]}}]});
    let too_deep = json!({"data": [{"a": {"b": [[[1]]]}}]});
    let problem = "The request body is nested deeper than 6 levels.";
    let (status, response) = s.post("/output/feedback", too_deep).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of("body", &response), problem);
    let (status, response) = s
        .post(
            "/logs/info",
            json!({"message": "x", "context": {"a": [[[[[1]]]]]}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_of("body", &response), problem);
    // Far too deep for any recursive parser: refused, not a crash.
    let abyss = format!("{}{}", "[".repeat(1_000_000), "]".repeat(1_000_000));
    for path in POSTS {
        let (status, response) = s.post_raw(path, JSON, abyss.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{path}");
        assert_eq!(error_of("body", &response), problem);
    }
    assert_unharmed(&s).await;
    assert_eq!(s.post("/output/feedback", fits).await, written());
}

#[tokio::test]
async fn non_object_items() {
    let s = baseline().await;
    for (data, index) in [
        (json!([1]), 0),
        (json!(["x"]), 0),
        (json!([null]), 0),
        (json!([[{"id": 1}]]), 0),
        (json!([{"id": 1}, true]), 1),
        (json!([{"id": 1}, {"id": 2}, [1, 2], {"id": 3}]), 2),
    ] {
        let (status, response) = s.post("/output/output", json!({"data": data})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{data}");
        assert_eq!(
            response,
            validation_failed(
                json!({format!("data[{index}]"): "This value should be of type object."})
            )
        );
    }
    assert_unharmed(&s).await;
}

#[tokio::test]
async fn data_empty_missing_or_not_an_array() {
    let s = baseline().await;
    let expected = (
        StatusCode::BAD_REQUEST,
        validation_failed(json!({"data": "This value should be an array of items."})),
    );
    for body in [
        json!({"data": []}),
        json!({}),
        json!({"data": null}),
        json!({"meta": {"separator": "-"}}),
        json!({"data": {"id": 1}}),
        json!({"data": "x"}),
        json!({"data": 7}),
        json!([{"id": 1}]),
        json!("data"),
        json!(null),
    ] {
        for kind in ["output", "feedback"] {
            let path = format!("/output/{kind}");
            assert_eq!(s.post(&path, body.clone()).await, expected, "{body}");
        }
    }
    assert_unharmed(&s).await;
}

#[tokio::test]
async fn bad_meta_colliding_columns_and_numbers_out_of_range() {
    let s = baseline().await;
    for (body, field, problem) in [
        (
            json!({"meta": {"separator": 1}, "data": [{"id": 1}]}),
            "meta.separator",
            "This value should be of type string.",
        ),
        (
            json!({"meta": "-", "data": [{"id": 1}]}),
            "meta",
            "This value should be of type object.",
        ),
        (
            json!({"data": [{"id": 1}, {"a-b": 1, "a": {"b": 2}}]}),
            "data[1]",
            "Column \"a-b\" occurs more than once after flattening.",
        ),
    ] {
        let (status, response) = s.post("/output/output", body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response, validation_failed(json!({field: problem})));
    }
    for (body, field, problem) in [
        (
            r#"{"data": [{"id": 1, "id": 2}]}"#,
            "data[0]",
            "Column \"id\" occurs more than once after flattening.",
        ),
        (
            r#"{"data": [{"id": 1}, {"price": {"eur": 1e999}}]}"#,
            "body",
            "The request body contains a number beyond the range of a double.",
        ),
    ] {
        let (status, response) = s.post_raw("/output/output", JSON, body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(response, validation_failed(json!({field: problem})));
    }
    assert_unharmed(&s).await;
}

#[tokio::test]
async fn unknown_input_or_output_type() {
    let s = start_with(|c| write_inputs(&c.run_dir, &[("input", "{\"id\":\"first\"}\n")])).await;
    let s = with_baseline(s).await;
    let output_types =
        validation_failed(json!({"type": "This value should be one of: output, feedback."}));
    for path in [
        "/output/input",
        "/output/Output",
        "/output/%20",
        "/output/input/close",
    ] {
        let (status, response) = s.post(path, json!({"data": [{"id": 1}]})).await;
        assert_eq!(
            (status, response),
            (StatusCode::BAD_REQUEST, output_types.clone()),
            "{path}"
        );
    }
    let input_types = validation_failed(
        json!({"type": "This value should be one of: input, full, new, modified, unchanged, deleted."}),
    );
    for path in [
        "/input/output/next",
        "/input/INPUT/next_batch?size=2",
        "/input/..%2Finput/restart",
        "/items/feedback/count",
    ] {
        assert_eq!(
            s.get(path).await,
            (StatusCode::BAD_REQUEST, input_types.clone()),
            "{path}"
        );
    }
    assert_eq!(s.get("/input/input/next").await.1["data"]["id"], "first");
    assert_unharmed(&s).await;
}

#[tokio::test]
async fn size_out_of_range_or_not_a_number() {
    let s = start_with_inputs(&[("input", "{\"id\":\"first\"}\n{\"id\":\"second\"}\n")]).await;
    for size in ["0", "1001", "-5", "99999999999999999999"] {
        let (status, response) = s.get(&format!("/input/input/next_batch?size={size}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{size}");
        assert_eq!(
            response,
            validation_failed(json!({"size": "This value should be between 1 and 1000."}))
        );
    }
    for size in ["", "abc", "1.5", "1e3", "%00", "10%20apples"] {
        let (status, response) = s.get(&format!("/input/input/next_batch?size={size}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{size}");
        assert_eq!(
            response,
            validation_failed(json!({"size": "This value should be of type int."}))
        );
    }
    let (status, response) = s.get("/input/input/next_batch?size=1&size=2").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_of("query", &response).contains("duplicate field"));
    for value in ["maybe", "", "yes", "2"] {
        let (status, response) = s
            .get(&format!("/input/input/next?show-hidden={value}"))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{value}");
        assert_eq!(
            error_of("show-hidden", &response),
            "This value should be of type bool."
        );
    }
    // None of it moved the cursor.
    assert_eq!(
        s.get("/input/input/next_batch?size=1000").await.1["data"],
        json!([{"id": "first"}, {"id": "second"}])
    );
    s.assert_still_serving().await;
}

#[tokio::test]
async fn blank_log_message() {
    let s = baseline().await;
    let blank = (
        StatusCode::BAD_REQUEST,
        validation_failed(json!({"message": "This value should not be blank."})),
    );
    for body in [
        json!({"message": ""}),
        json!({"message": " \t\n "}),
        json!({"message": null}),
        json!({}),
        json!({"context": {"a": 1}}),
        json!([]),
        json!("message"),
    ] {
        assert_eq!(s.post("/logs/info", body.clone()).await, blank, "{body}");
    }
    let (status, response) = s.post("/logs/info", json!({"message": 42})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_of("message", &response),
        "This value should be of type string."
    );
    let (status, response) = s
        .post("/logs/info", json!({"message": "x", "context": "c"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        error_of("context", &response),
        "This value should be of type array."
    );
    assert_unharmed(&s).await;
}

#[tokio::test]
async fn unknown_log_level() {
    let s = baseline().await;
    let levels = validation_failed(
        json!({"level": "This value should be one of: success, debug, info, notice, warning, error, critical, alert, emergency, report."}),
    );
    for level in ["verbose", "INFO", "trace", "info%00"] {
        assert_eq!(
            s.post(&format!("/logs/{level}"), json!({"message": "x"}))
                .await,
            (StatusCode::BAD_REQUEST, levels.clone()),
            "{level}"
        );
    }
    assert_eq!(
        s.post("/logs/", json!({"message": "x"})).await,
        (StatusCode::NOT_FOUND, json!({"message": "Not found."}))
    );
    assert_unharmed(&s).await;
}

#[tokio::test]
async fn requests_after_close() {
    let s = baseline().await;
    let close = |kind: &'static str| {
        let request = s.client.post(s.url(&format!("/output/{kind}/close")));
        async move { into_parts(request.send().await.unwrap()).await }
    };
    assert_eq!(close("output").await, (StatusCode::NO_CONTENT, Value::Null));
    let closed = (
        StatusCode::BAD_REQUEST,
        validation_failed(json!({"type": "This output file has been closed."})),
    );
    for _ in 0..2 {
        assert_eq!(
            s.post("/output/output", json!({"data": [{"id": "late"}]}))
                .await,
            closed
        );
        // Closing again is harmless.
        assert_eq!(close("output").await, (StatusCode::NO_CONTENT, Value::Null));
    }
    assert_unharmed(&s).await;
    // Other files stay open.
    assert_eq!(
        s.post("/output/feedback", json!({"data": [{"id": "f"}]}))
            .await,
        written()
    );
    let (summary, _dir) = s.shutdown().await;
    assert_eq!(summary.files["output"].rows, 1);
    assert_eq!(summary.files["feedback"].rows, 1);
}
