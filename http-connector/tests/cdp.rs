//! The CDP hub fixture (built from the hub README's snippets): registration (inputs,
//! default authentication, rate limit) and a pull of its event, end to end.

mod common;

use common::{cdp_definition, cdp_hub, run, vars, Answer, ContainerApi, MockApi};
use http_connector::{parse, Auth, ConnectorKind, Definition, Input, InputKind};
use serde_json::{json, Value};

fn definition(kind: &str, extra: Value) -> Definition {
    serde_json::from_str(&cdp_definition(cdp_hub(), kind, extra)).unwrap()
}

fn names(inputs: &[Input]) -> Vec<&str> {
    inputs.iter().map(|i| i.name.as_str()).collect()
}

#[test]
fn the_hub_event_registers_with_its_parameters_as_inputs_and_its_api_key() {
    let connector = parse(&definition("data-source", json!({}))).unwrap();
    assert_eq!(connector.kind, ConnectorKind::DataSource);
    assert_eq!(
        connector.auth,
        Auth::ApiKey {
            header: "X-Api-Key".into()
        }
    );
    let inputs = connector.inputs();
    assert_eq!(
        names(&inputs),
        ["listId", "updated_since", "base_url", "api_key"]
    );
    assert_eq!(
        inputs[0],
        Input {
            name: "listId".into(),
            kind: InputKind::String,
            description: Some("The list whose subscribers are loaded.".into()),
            required: true,
            secret: false,
        }
    );
    assert!(!inputs[1].required, "updated-since is optional");
    assert!(inputs[3].secret && inputs[3].required);
    assert_eq!(connector.rate_limit_config(), None);
    // By name, by resourcePath, by operationId: the same event.
    for name in ["Get subscribers", "/subscribers/get", "LoadSubscribers"] {
        let by_name = parse(&definition("data-source", json!({"operation": name}))).unwrap();
        assert_eq!(by_name.source().unwrap().request.path, "/subscribers");
    }
}

#[test]
fn the_hub_action_registers_with_the_seeds_rate_limit() {
    let connector = parse(&definition("export", json!({}))).unwrap();
    assert_eq!(
        names(&connector.inputs()),
        ["listId", "base_url", "api_key"]
    );
    assert_eq!(
        connector.rate_limit_config(),
        Some(json!({
            "type": "RPS",
            "rateLimitParameters": {
                "ratePerSecond": 100,
                "errorCodes": [606, 607],
                "delayAfterRateLimitInSecond": 300
            }
        }))
    );
    let push = connector.push().unwrap();
    assert_eq!(push.batch_size, 10, "the records array's maxItems");
    assert_eq!(push.id_column, "id");
    assert_eq!(push.upsert.config_values["subscribe"], json!(true));
    // The definition's auth wins over the document's.
    let bearer = parse(&definition("export", json!({"auth": {"type": "bearer"}}))).unwrap();
    assert_eq!(bearer.auth, Auth::Bearer);
    assert!(names(&bearer.inputs()).contains(&"token"));
}

#[test]
fn definitions_the_hub_cannot_serve_are_refused_naming_the_field() {
    for (kind, extra, field) in [
        ("data-source", json!({"operation": "Nope"}), "operation"),
        ("data-source", json!({"batch_size": 5}), "batch_size"),
        (
            "export",
            json!({"delete_operation": "/import/post"}),
            "delete_operation",
        ),
        ("export-delta", json!({}), "delete_operation"),
        ("export", json!({"batch_size": 0}), "batch_size"),
        (
            "export",
            json!({"body": {"records": "$", "config_values": "body"}}),
            "body.config_values",
        ),
        (
            "export",
            json!({"rejections": {"path": "$[", "id": "Id"}}),
            "rejections.path",
        ),
        (
            "export",
            json!({"rejections": {"path": "$.e", "id": "Id", "index": "i"}}),
            "rejections.index",
        ),
    ] {
        let err = parse(&definition(kind, extra.clone())).unwrap_err();
        assert_eq!(err.path, field, "{kind} {extra}: {err}");
    }
    let aep_export: Definition = serde_json::from_value(json!({
        "dialect": "aep", "spec": {}, "kind": "export"
    }))
    .unwrap();
    assert_eq!(parse(&aep_export).unwrap_err().path, "kind");
}

#[tokio::test]
async fn the_hub_event_pulls_the_records_under_results() {
    let api = MockApi::start(|r| {
        assert_eq!(r.path, "/subscribers");
        Answer::ok(json!({
            "Results": [
                {"id": "s1", "email": "a@x.test", "name": "A"},
                {"id": "s2", "email": "b@x.test", "name": "B"},
                {"id": "s3", "email": "c@x.test", "name": "C"}
            ],
            "Total": 3
        }))
    })
    .await;
    let container = ContainerApi::start().await;
    let status = run(vars(
        &cdp_definition(
            cdp_hub(),
            "data-source",
            json!({"operation": "Get subscribers"}),
        ),
        &container.url,
        &[
            ("base_url", &api.url),
            ("listId", "L1"),
            ("api_key", "k-123456"),
        ],
    ))
    .await;
    let finished = container.finish().await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    let received = api.received();
    assert_eq!(received.len(), 1);
    assert_eq!(received[0].method, "GET");
    assert_eq!(
        received[0].query,
        [("listId".to_owned(), "L1".to_owned())],
        "the optional updated-since is left out"
    );
    assert_eq!(received[0].headers["x-api-key"], "k-123456");
    assert_eq!(
        finished.records,
        [
            json!({"id": "s1", "email": "a@x.test", "name": "A"}),
            json!({"id": "s2", "email": "b@x.test", "name": "B"}),
            json!({"id": "s3", "email": "c@x.test", "name": "C"})
        ],
        "each element of Results is a record as it is"
    );
}

#[tokio::test]
async fn an_optional_parameter_with_a_value_is_sent() {
    let api = MockApi::start(|_| Answer::ok(json!({"Results": []}))).await;
    let container = ContainerApi::start().await;
    let status = run(vars(
        &cdp_definition(cdp_hub(), "data-source", json!({})),
        &container.url,
        &[
            ("base_url", &api.url),
            ("listId", "L1"),
            ("updated_since", "2024-01-01T00:00:00Z"),
            ("api_key", "k-123456"),
        ],
    ))
    .await;
    let finished = container.finish().await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(
        api.received()[0].param("updated-since"),
        Some("2024-01-01T00:00:00Z")
    );
    assert!(finished.records.is_empty());
}
