//! The reading side: cursors, batches, restart, count, hidden columns, classifications.

mod common;

use common::*;
use reqwest::StatusCode;
use serde_json::{json, Value};

fn lines(records: &[Value]) -> String {
    records.iter().map(|r| format!("{r}\n")).collect()
}

fn products(n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| json!({"id": i.to_string(), "title": format!("product {i}"), "___internal": i}))
        .collect()
}

/// `record` as it is read back: every scalar as text, as a Productsup site stores it.
fn as_text(record: &Value) -> Value {
    let text = |v: &Value| match v {
        Value::Number(n) => json!(n.to_string()),
        Value::Bool(true) => json!("1"),
        Value::Bool(false) | Value::Null => json!(""),
        other => other.clone(),
    };
    Value::Object(
        record
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), text(v)))
            .collect(),
    )
}

fn visible(record: &Value) -> Value {
    let mut record = record.clone();
    record.as_object_mut().unwrap().remove("___internal");
    record
}

#[tokio::test]
async fn next_and_next_batch_share_one_cursor_per_stream() {
    let all = products(7);
    let s = start_with_inputs(&[("input", &lines(&all)), ("new", &lines(&all[..2]))]).await;

    assert_eq!(
        s.get("/input/input/next").await,
        (
            StatusCode::OK,
            json!({"message": "", "data": visible(&all[0])})
        )
    );
    assert_eq!(
        s.get("/input/input/next_batch?size=3").await,
        (
            StatusCode::OK,
            json!({"message": "", "data": all[1..4].iter().map(visible).collect::<Vec<_>>()})
        )
    );
    // Another stream has its own cursor.
    assert_eq!(
        s.get("/input/new/next").await,
        (
            StatusCode::OK,
            json!({"message": "", "data": visible(&all[0])})
        )
    );
    // `full` is the same stream as `input`, so it continues after record 3.
    assert_eq!(
        s.get("/input/full/next").await,
        (
            StatusCode::OK,
            json!({"message": "", "data": visible(&all[4])})
        )
    );
    // Default size is 1.
    assert_eq!(
        s.get("/input/input/next_batch").await.1["data"],
        json!([visible(&all[5])])
    );
    assert_eq!(
        s.get("/input/input/next_batch?size=1000").await.1["data"],
        json!([visible(&all[6])])
    );
    assert_eq!(
        s.get("/input/input/next_batch?size=10").await,
        (StatusCode::OK, json!({"message": "", "data": []}))
    );
    assert_eq!(
        s.get("/input/input/next").await,
        (StatusCode::NO_CONTENT, Value::Null)
    );
}

#[tokio::test]
async fn restart_starts_the_cursor_over() {
    let all = products(3);
    let s = start_with_inputs(&[("input", &lines(&all))]).await;
    let read_all = || async {
        s.get("/input/input/next_batch?size=1000&show-hidden=true")
            .await
            .1["data"]
            .clone()
    };
    let all_text: Vec<Value> = all.iter().map(as_text).collect();
    assert_eq!(read_all().await, json!(all_text));
    assert_eq!(read_all().await, json!([]));
    assert_eq!(
        s.get("/input/input/restart").await,
        (StatusCode::OK, json!({"message": "successful request"}))
    );
    assert_eq!(read_all().await, json!(all_text));
    // Restarting `full` restarts `input`.
    s.get("/input/full/restart").await;
    assert_eq!(s.get("/input/input/next").await.1["data"]["id"], "0");
}

#[tokio::test]
async fn hidden_columns_only_with_show_hidden() {
    let record = json!({"id": "1", "___dsprefix_score": 3, "__two": 1, "title": "t"});
    let s = start_with_inputs(&[("input", &lines(&[record.clone(), record.clone()]))]).await;
    assert_eq!(
        s.get("/input/input/next").await.1["data"],
        json!({"id": "1", "__two": "1", "title": "t"})
    );
    for value in ["true", "True", "1"] {
        s.get("/input/input/restart").await;
        assert_eq!(
            s.get(&format!("/input/input/next?show-hidden={value}"))
                .await
                .1["data"],
            as_text(&record),
            "{value}"
        );
    }
    s.get("/input/input/restart").await;
    assert_eq!(
        s.get("/input/input/next_batch?size=2&show-hidden=false")
            .await
            .1["data"],
        json!([{"id": "1", "__two": "1", "title": "t"}, {"id": "1", "__two": "1", "title": "t"}])
    );
}

#[tokio::test]
async fn records_come_back_as_written_in_order_with_blank_lines_skipped() {
    let text = "{\"b\":1,\"a\":{\"x\":[1,2]},\"c\":\"\\u00e9\"}\n\n  \r\n{\"id\":2}\r\n{\"id\":3}";
    let s = start_with_inputs(&[("deleted", text)]).await;
    let body = s
        .client
        .get(s.url("/input/deleted/next_batch?size=5"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(
        body,
        r#"{"message":"","data":[{"b":"1","a":{"x":[1,2]},"c":"\u00e9"},{"id":"2"},{"id":"3"}]}"#
    );
    assert_eq!(
        s.get("/items/deleted/count").await,
        (
            StatusCode::OK,
            json!({"message": "Items counted successfully.", "data": {"count": 3}})
        )
    );
}

#[tokio::test]
async fn count_is_the_whole_stream_wherever_the_cursor_is() {
    let all = products(25);
    let s = start_with_inputs(&[("input", &lines(&all)), ("unchanged", "")]).await;
    let count = |kind: &'static str| {
        let s = &s;
        async move { s.get(&format!("/items/{kind}/count")).await.1["data"]["count"].clone() }
    };
    assert_eq!(count("input").await, json!(25));
    s.get("/input/input/next_batch?size=10").await;
    assert_eq!(count("input").await, json!(25));
    assert_eq!(count("full").await, json!(25));
    assert_eq!(count("unchanged").await, json!(0));
    // Counting does not move the cursor.
    assert_eq!(s.get("/input/input/next").await.1["data"]["id"], "10");
}

#[tokio::test]
async fn count_after_reading_to_the_end_needs_no_scan() {
    let all = products(5);
    let s = start_with_inputs(&[("modified", &lines(&all))]).await;
    s.get("/input/modified/next_batch?size=1000").await;
    // The file changes behind the server's back; the count comes from the cursor.
    std::fs::write(s.run_dir().join("input/modified.jsonl"), "").unwrap();
    assert_eq!(
        s.get("/items/modified/count").await.1["data"]["count"],
        json!(5)
    );
}

#[tokio::test]
async fn a_stream_the_run_does_not_have_is_404() {
    let s = start_with_inputs(&[("input", "{\"id\":1}\n")]).await;
    let not_provided = (
        StatusCode::NOT_FOUND,
        json!({"message": "Requested file not provided."}),
    );
    for path in [
        "/input/new/next",
        "/input/modified/next_batch?size=5",
        "/input/unchanged/restart",
        "/items/deleted/count",
    ] {
        assert_eq!(s.get(path).await, not_provided, "{path}");
    }
    s.assert_still_serving().await;
}

#[tokio::test]
async fn classification_id_changes_nothing_without_classifications() {
    let record = json!({"id": "1", "size": "42", "diagonal": "55"});
    let s = start_with_inputs(&[("input", &lines(std::slice::from_ref(&record)))]).await;
    assert_eq!(
        s.get("/input/input/next?classification-id=12").await.1["data"],
        record
    );
    assert_eq!(
        s.get("/csa-classifications?classification-path=Shoes")
            .await,
        (StatusCode::OK, json!([]))
    );
    assert_eq!(
        s.get("/csa-classifications").await,
        (StatusCode::OK, json!([]))
    );
}

#[tokio::test]
async fn classification_id_leaves_out_other_classifications_columns() {
    let record = json!({"id": "1", "shoe_size": "42", "diagonal": "55", "___x": 1});
    let s = start_with(|config| {
        write_inputs(&config.run_dir, &[("input", &lines(&[record.clone(), record.clone()]))]);
        std::fs::write(
            config.run_dir.join("classifications.json"),
            json!([
                {"classification-id": 12, "classification-path": "Apparel > Shoes", "columns": ["shoe_size"]},
                {"classification-id": "tv", "classification-path": "Electronics > TV", "columns": ["diagonal"]},
            ])
            .to_string(),
        )
        .unwrap();
    })
    .await;
    assert_eq!(
        s.get("/input/input/next?classification-id=12").await.1["data"],
        json!({"id": "1", "shoe_size": "42"})
    );
    assert_eq!(
        s.get("/input/input/next_batch?classification-id=tv&show-hidden=1")
            .await
            .1["data"],
        json!([{"id": "1", "diagonal": "55", "___x": "1"}])
    );
    let (status, body) = s.get("/input/input/next?classification-id=99").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        body,
        validation_failed(json!({"classification-id": "This classification does not exist."}))
    );
    assert_eq!(
        s.get("/csa-classifications?classification-path=apparel%20%3E%20shoes")
            .await,
        (
            StatusCode::OK,
            json!([{"classification-id": 12, "classification-path": "Apparel > Shoes"}])
        )
    );
    assert_eq!(
        s.get("/csa-classifications")
            .await
            .1
            .as_array()
            .unwrap()
            .len(),
        2
    );
}

#[tokio::test]
async fn a_corrupt_input_line_is_a_500_that_does_not_move_the_cursor() {
    let s = start_with_inputs(&[("input", "{\"id\":1}\n{\"id\":2}\nnot json\n{\"id\":4}\n")]).await;
    assert_eq!(
        s.get("/input/input/next").await.1["data"],
        json!({"id": "1"})
    );
    let (status, body) = s.get("/input/input/next_batch?size=5").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(body, json!({"message": "Internal server error."}));
    // All or nothing: record 2 was not consumed by the failed batch.
    assert_eq!(
        s.get("/input/input/next").await.1["data"],
        json!({"id": "2"})
    );
    s.assert_still_serving().await;
}

#[tokio::test]
async fn a_large_input_reads_to_the_end_in_full_batches() {
    let text: String = (0..200_000)
        .map(|i| format!("{{\"id\":\"{i}\",\"title\":\"product number {i}\"}}\n"))
        .collect();
    let s = start_with_inputs(&[("input", &text)]).await;
    let mut last = Value::Null;
    for _ in 0..200 {
        let (status, body) = s.get("/input/input/next_batch?size=1000").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(body["data"].as_array().unwrap().len(), 1000);
        last = body["data"][999].clone();
    }
    assert_eq!(last["id"], "199999");
    assert_eq!(
        s.get("/input/input/next_batch?size=1000").await.1["data"],
        json!([])
    );
    assert_eq!(
        s.get("/items/input/count").await.1["data"]["count"],
        json!(200_000)
    );
}

const SCALARS: &str = r#"{"id":1,"price":1.50,"big":123456789012345678901234567890,"exp":-1.5e-7,"on":true,"off":false,"none":null,"s":"1.50 \"q\"","nested":[1,true]}"#;

async fn raw_next_batch(s: &TestServer) -> String {
    s.client
        .get(s.url("/input/input/next_batch?size=10"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap()
}

#[tokio::test]
async fn values_read_back_are_text_as_on_a_productsup_site() {
    let s = start_with_inputs(&[("input", &format!("{SCALARS}\n{{\"id\": 1}}\n"))]).await;
    assert_eq!(
        raw_next_batch(&s).await,
        r#"{"message":"","data":[{"id":"1","price":"1.50","big":"123456789012345678901234567890","exp":"-1.5e-7","on":"1","off":"","none":"","s":"1.50 \"q\"","nested":[1,true]},{"id":"1"}]}"#
    );
    s.get("/input/input/restart").await;
    s.get("/input/input/next").await;
    // What the published sample export checks: `id == "1"` for a source that wrote `{"id": 1}`.
    let (status, body) = s.get("/input/input/next").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["data"]["id"], json!("1"));
}

#[tokio::test]
async fn typed_values_serve_the_json_as_written() {
    let s = start_with(|config| {
        config.typed_values = true;
        write_inputs(
            &config.run_dir,
            &[("input", &format!("{SCALARS}\n{{\"id\": 1}}\n"))],
        );
    })
    .await;
    assert_eq!(
        raw_next_batch(&s).await,
        format!(r#"{{"message":"","data":[{SCALARS},{{"id":1}}]}}"#)
    );
    s.get("/input/input/restart").await;
    assert_eq!(s.get("/input/input/next").await.1["data"]["id"], json!(1));
}
