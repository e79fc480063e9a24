//! `GET /state` and `PUT /state`: the previous run's state in, this run's state out, and
//! a connector that plants links or puts secrets gets nowhere.

mod common;

use common::{start, start_with, validation_failed};
use container_api::state::{NEW_STATE, PREVIOUS_STATE};
use container_api::Masker;
use reqwest::StatusCode;
use serde_json::{json, Value};

async fn put(server: &common::TestServer, body: Value) -> (StatusCode, Value) {
    let response = server
        .client
        .put(server.url("/state"))
        .json(&body)
        .send()
        .await
        .unwrap();
    common::into_parts(response).await
}

#[tokio::test]
async fn without_a_previous_state_the_state_is_empty() {
    let server = start().await;
    assert_eq!(
        server.get("/state").await,
        (StatusCode::OK, json!({"message": "", "data": {}}))
    );
}

#[tokio::test]
async fn the_previous_state_is_read_until_the_run_puts_its_own() {
    let server = start_with(|config| {
        std::fs::create_dir_all(config.run_dir.join("input")).unwrap();
        std::fs::write(config.run_dir.join(PREVIOUS_STATE), r#"{"cursor": 1}"#).unwrap();
    })
    .await;
    assert_eq!(server.get("/state").await.1["data"], json!({"cursor": 1}));
    assert_eq!(
        put(&server, json!({"data": {"cursor": 2, "seen": ["a"]}})).await,
        (StatusCode::OK, json!({"message": "State saved."}))
    );
    assert_eq!(
        server.get("/state").await.1["data"],
        json!({"cursor": 2, "seen": ["a"]})
    );
    let saved: Value =
        serde_json::from_slice(&std::fs::read(server.run_dir().join(NEW_STATE)).unwrap()).unwrap();
    assert_eq!(saved, json!({"cursor": 2, "seen": ["a"]}));
    // The previous state is cde's, and stays as it was.
    assert_eq!(
        std::fs::read_to_string(server.run_dir().join(PREVIOUS_STATE)).unwrap(),
        r#"{"cursor": 1}"#
    );
}

#[tokio::test]
async fn a_state_that_is_not_an_object_is_refused_and_nothing_is_saved() {
    let server = start().await;
    for body in [
        json!({"data": [1]}),
        json!({"data": "x"}),
        json!({}),
        json!([1]),
    ] {
        let (status, answer) = put(&server, body.clone()).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(answer["errors"].is_object(), "{body}: {answer}");
    }
    assert!(!server.run_dir().join(NEW_STATE).exists());
    assert_eq!(server.get("/state").await.1["data"], json!({}));
}

#[tokio::test]
async fn a_state_holding_a_secret_is_refused() {
    let server =
        start_with(|config| config.masker = Masker::new(["hunter2-token".to_owned()])).await;
    assert_eq!(
        put(&server, json!({"data": {"auth": "Bearer hunter2-token"}})).await,
        (
            StatusCode::BAD_REQUEST,
            validation_failed(
                json!({"data": "This value holds a secret option's value; state is not stored encrypted."})
            )
        )
    );
    assert!(!server.run_dir().join(NEW_STATE).exists());
}

#[tokio::test]
async fn a_planted_symlink_is_replaced_not_followed() {
    let server = start().await;
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("precious");
    std::fs::write(&target, "keep me").unwrap();
    std::fs::create_dir_all(server.run_dir().join("output")).unwrap();
    std::os::unix::fs::symlink(&target, server.run_dir().join(NEW_STATE)).unwrap();
    assert_eq!(
        put(&server, json!({"data": {"n": 1}})).await.0,
        StatusCode::OK
    );
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me");
    let saved = server.run_dir().join(NEW_STATE);
    assert!(!saved.symlink_metadata().unwrap().file_type().is_symlink());
    assert_eq!(std::fs::read_to_string(saved).unwrap(), r#"{"n":1}"#);
}
