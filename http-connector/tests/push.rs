//! Exports and export deltas of the CDP hub fixture's action, end to end: records read
//! from the real Container API (typed values), sent in batches to a mock API, refused
//! records written as feedback rows.

mod common;

use common::{
    cdp_definition, cdp_hub, json_body, run, vars, Answer, ContainerApi, Finished, MockApi,
    Received,
};
use serde_json::{json, Value};

const API_KEY: &str = "esp-key-s3cret-42";

fn subscriber(i: usize) -> Value {
    json!({
        "id": format!("s{i:02}"),
        "email": if i == 7 || i == 18 { format!("bad-{i}") } else { format!("s{i}@example.test") },
        "age": 20 + i,
        "vip": i & 1 == 0
    })
}

fn subscribers(range: std::ops::Range<usize>) -> Vec<Value> {
    range.map(subscriber).collect()
}

async fn export(
    definition: String,
    api: &MockApi,
    container: ContainerApi,
) -> (u8, Finished, Vec<Received>) {
    let status = run(vars(
        &definition,
        &container.url,
        &[
            ("base_url", &api.url),
            ("listId", "L1"),
            ("PUP_AUTH_API_KEY", API_KEY),
        ],
    ))
    .await;
    let finished = container.finish().await;
    let all = serde_json::to_string(&finished.logs).unwrap();
    assert!(!all.contains(API_KEY), "a secret in the logs: {all}");
    (status, finished, api.received())
}

/// The `id`s of a request's `subscribers`.
fn sent_ids(received: &Received, column: &str) -> Vec<String> {
    json_body(received)["subscribers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[column].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn an_export_sends_25_records_in_batches_of_10_and_writes_feedback_for_the_2_refused() {
    // The API answers 200 and lists the records it refused, as many batch APIs do.
    let api = MockApi::start(|r| {
        let body = json_body(r);
        let errors: Vec<Value> = body["subscribers"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["email"].as_str().unwrap().starts_with("bad"))
            .map(|s| json!({"Id": s["id"], "Message": format!("invalid email address {}", s["email"].as_str().unwrap())}))
            .collect();
        Answer::ok(json!({"Imported": 10 - errors.len(), "Errors": errors}))
    })
    .await;
    let container = ContainerApi::with_inputs(&[("input", subscribers(0..25))]).await;
    let definition = cdp_definition(
        cdp_hub(),
        "export",
        json!({"rejections": {"path": "$.Errors[*]", "id": "Id", "error": "Message"}}),
    );
    let (status, finished, received) = export(definition, &api, container).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);

    // Batches of the schema's maxItems (10): 10, 10, 5; each body is the action's
    // configValues beside the records, sent as typed JSON.
    assert_eq!(received.len(), 3);
    for (i, request) in received.iter().enumerate() {
        assert_eq!(request.method, "POST");
        assert_eq!(request.path, "/import");
        assert_eq!(request.param("listId"), Some("L1"));
        assert_eq!(request.headers["x-api-key"], API_KEY);
        assert_eq!(request.headers["content-type"], "application/json");
        let body = json_body(request);
        assert_eq!(body["subscribe"], json!(true), "configValues in body {i}");
        let expected = subscribers(i * 10..(i * 10 + 10).min(25));
        assert_eq!(body["subscribers"], Value::Array(expected), "body {i}");
    }

    assert_eq!(
        finished.feedback,
        [
            json!({"id": "s07", "error": "invalid email address bad-7"}),
            json!({"id": "s18", "error": "invalid email address bad-18"})
        ]
    );
    assert!(finished.records.is_empty(), "an export writes no output");
    let done = finished.logs_at("info").last().unwrap()["message"].clone();
    assert!(
        done.as_str()
            .unwrap()
            .contains("25 records sent in 3 requests, 2 refused"),
        "{done}"
    );
}

#[tokio::test]
async fn a_batch_refused_with_400_gives_a_row_per_record_and_the_other_batches_are_sent() {
    // Records keyed by `sku`; the batch holding sku k08 is refused as a whole.
    let api = MockApi::start(|r| {
        let skus = sent_ids(r, "sku");
        if skus.iter().any(|s| s == "k08") {
            Answer::status(400, json!({"error": "batch refused: duplicate sku"}))
        } else {
            Answer::ok(json!({"Imported": skus.len()}))
        }
    })
    .await;
    let records: Vec<Value> = (0..25)
        .map(|i| json!({"sku": format!("k{i:02}"), "email": format!("{i}@x.test")}))
        .collect();
    let container = ContainerApi::with_inputs(&[("input", records)]).await;
    let definition = cdp_definition(
        cdp_hub(),
        "export",
        json!({"batch_size": 8, "id_column": "sku"}),
    );
    let (status, finished, received) = export(definition, &api, container).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    let batches: Vec<Vec<String>> = received.iter().map(|r| sent_ids(r, "sku")).collect();
    assert_eq!(
        batches.iter().map(Vec::len).collect::<Vec<_>>(),
        [8, 8, 8, 1],
        "the batches after the refused one are sent"
    );
    let expected: Vec<Value> = (8..16)
        .map(|i| json!({"id": format!("k{i:02}"), "error": "batch refused: duplicate sku"}))
        .collect();
    assert_eq!(finished.feedback, expected);
    let warnings = finished.logs_at("warning");
    assert_eq!(warnings.len(), 1, "{:#?}", finished.logs);
    assert!(
        warnings[0]["message"].as_str().unwrap().contains("400"),
        "{}",
        warnings[0]
    );
}

#[tokio::test]
async fn a_401_ends_the_export_at_once_as_a_configuration_failure() {
    // The API echoes the key it refused: the message must not repeat it.
    let api = MockApi::start(|r| {
        let echoed = r.headers["x-api-key"].to_str().unwrap().to_owned();
        Answer::status(401, json!({"error": format!("unknown key {echoed}")}))
    })
    .await;
    let container = ContainerApi::with_inputs(&[("input", subscribers(0..25))]).await;
    let definition = cdp_definition(cdp_hub(), "export", json!({}));
    let (status, finished, received) = export(definition, &api, container).await;
    assert_eq!(status, 78);
    assert_eq!(received.len(), 1, "no further batch after a 401");
    assert!(finished.feedback.is_empty());
    let errors = finished.logs_at("error");
    assert_eq!(errors.len(), 1, "{:#?}", finished.logs);
    assert_eq!(errors[0]["context"]["failure_kind"], "configuration");
    assert_eq!(errors[0]["context"]["status"], 401);
    assert!(
        errors[0]["message"].as_str().unwrap().contains("***"),
        "{}",
        errors[0]
    );
}

#[tokio::test]
async fn a_record_without_its_id_column_is_a_configuration_failure_before_sending() {
    let api = MockApi::start(|_| Answer::ok(json!({}))).await;
    let container =
        ContainerApi::with_inputs(&[("input", vec![json!({"email": "a@x.test"})])]).await;
    let definition = cdp_definition(cdp_hub(), "export", json!({}));
    let (status, finished, received) = export(definition, &api, container).await;
    assert_eq!(status, 78);
    assert!(received.is_empty());
    let errors = finished.logs_at("error");
    assert!(
        errors[0]["message"].as_str().unwrap().contains("`id`"),
        "{}",
        errors[0]
    );
}

/// The hub fixture with the seed's second action, `/unsubscribe/post` ("Update
/// unsubscribes", `subscribe: false`), its body an array of subscribers.
fn hub_with_unsubscribe() -> Value {
    let mut hub = cdp_hub();
    hub["preDefinedActions"]
        .as_array_mut()
        .unwrap()
        .push(json!({
            "resourcePath": "/unsubscribe/post",
            "name": "Update unsubscribes",
            "configValues": {"subscribe": false}
        }));
    hub["paths"]["/unsubscribe"] = json!({"post": {
        "operationId": "Unsubscribe",
        "parameters": [{"name": "listId", "in": "query", "required": true, "schema": {"type": "string"}}],
        "requestBody": {"content": {"application/json": {"schema": {
            "type": "array", "items": {"$ref": "#/components/schemas/Subscriber"}
        }}}},
        "responses": {"204": {"description": "done"}}
    }});
    hub
}

#[tokio::test]
async fn an_export_delta_upserts_new_and_modified_deletes_deleted_and_skips_unchanged() {
    let api = MockApi::start(|r| match r.path.as_str() {
        "/import" => Answer::ok(json!({"Errors": []})),
        _ => Answer::status(204, Value::Null),
    })
    .await;
    let container = ContainerApi::with_inputs(&[
        ("new", subscribers(0..3)),
        ("modified", subscribers(3..5)),
        ("unchanged", subscribers(5..9)),
        ("deleted", subscribers(9..11)),
    ])
    .await;
    let definition = cdp_definition(
        hub_with_unsubscribe(),
        "export-delta",
        json!({
            "operation": "Create and update subscribers in batch",
            "delete_operation": "/unsubscribe/post",
            "rejections": {"path": "$.Errors[*]", "id": "Id", "error": "Message"}
        }),
    );
    let (status, finished, received) = export(definition, &api, container).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(
        received
            .iter()
            .map(|r| (r.method.as_str(), r.path.as_str()))
            .collect::<Vec<_>>(),
        [("POST", "/import"), ("POST", "/unsubscribe")]
    );
    // new and modified share the upsert batches.
    assert_eq!(
        json_body(&received[0]),
        json!({"subscribe": true, "subscribers": subscribers(0..5)})
    );
    // The delete action's body is an array: its configValues go into each record.
    let deleted: Vec<Value> = subscribers(9..11)
        .into_iter()
        .map(|mut s| {
            s["subscribe"] = json!(false);
            s
        })
        .collect();
    assert_eq!(json_body(&received[1]), Value::Array(deleted));
    assert_eq!(received[1].param("listId"), Some("L1"));
    let everything_sent = received
        .iter()
        .map(|r| String::from_utf8_lossy(&r.body).into_owned())
        .collect::<String>();
    for unchanged in 5..9 {
        assert!(
            !everything_sent.contains(&format!("\"s{unchanged:02}\"")),
            "unchanged s{unchanged:02} was sent"
        );
    }
    assert!(finished.feedback.is_empty());
}

#[tokio::test]
async fn the_actions_rate_limit_spaces_its_batches() {
    // The seed's rateLimitConfig at 5 requests a second (evenly spaced: burst 1).
    let mut hub = cdp_hub();
    hub["paths"]["/import"]["post"]["x-cdp-operation-settings"]["rateLimitConfig"]
        ["rateLimitParameters"]["ratePerSecond"] = json!(5);
    let api = MockApi::start(|_| Answer::ok(json!({}))).await;
    let container = ContainerApi::with_inputs(&[("input", subscribers(0..25))]).await;
    let (status, finished, received) =
        export(cdp_definition(hub, "export", json!({})), &api, container).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(received.len(), 3);
    for pair in received.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(
            gap >= std::time::Duration::from_millis(150),
            "batches {gap:?} apart at 5 a second"
        );
    }
}
