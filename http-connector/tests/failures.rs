//! How runs fail: the exit status, the error log line with its failure kind, no loops,
//! no secrets.

mod common;

use common::{definition, run, vars, Answer, ContainerApi, Finished, MockApi};
use serde_json::{json, Value};

const TOKEN: &str = "tok-s3cret-value";

fn spec(pagination: Value) -> Value {
    json!({
        "urlParams": {"host": "https://api.example.test", "path": "/items", "method": "GET"},
        "contentPath": {"path": "$.items"},
        "paginationParams": pagination
    })
}

async fn pull(spec: Value, base_url: &str, options: &[(&str, &str)]) -> (u8, Finished) {
    let container = ContainerApi::start().await;
    let mut options = options.to_vec();
    options.push(("base_url", base_url));
    options.push(("token", TOKEN));
    let status = run(vars(
        &definition(spec, json!({"type": "bearer"})),
        &container.url,
        &options,
    ))
    .await;
    (status, container.finish().await)
}

/// The one error line of a failed run.
fn error_line(finished: &Finished) -> &Value {
    let errors = finished.logs_at("error");
    assert_eq!(errors.len(), 1, "{:#?}", finished.logs);
    let all = serde_json::to_string(&finished.logs).unwrap();
    assert!(!all.contains(TOKEN), "a secret in the logs: {all}");
    errors[0]
}

#[tokio::test]
async fn a_repeated_continuation_token_fails_the_run_without_looping() {
    let api = MockApi::start(|r| {
        let n = r.param("t").map_or(0, |_| 1);
        Answer::ok(json!({"items": [{"id": n}], "next": "same"}))
    })
    .await;
    let spec = spec(
        json!({"type": "CONTINUATION_TOKEN", "continuationTokenPath": "$.next",
        "parameterType": "QUERYPARAM", "parameterName": "t"}),
    );
    let (status, finished) = pull(spec, &api.url, &[]).await;
    assert_eq!(status, 1);
    assert_eq!(api.received().len(), 2);
    let line = error_line(&finished);
    assert_eq!(line["context"]["failure_kind"], "api");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("token already used"),
        "{line}"
    );
}

#[tokio::test]
async fn an_api_that_ignores_the_offset_fails_the_run_on_the_second_page() {
    let api = MockApi::start(|_| Answer::ok(json!({"items": [{"id": 1}, {"id": 2}]}))).await;
    let spec = spec(
        json!({"type": "OFFSET", "limitName": "limit", "limitValue": 2, "offsetName": "offset"}),
    );
    let (status, finished) = pull(spec, &api.url, &[]).await;
    assert_eq!(status, 1);
    assert_eq!(api.received().len(), 2);
    let line = error_line(&finished);
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("exactly the records of page 1"),
        "{line}"
    );
    assert_eq!(finished.records.len(), 2, "the first page was written");
}

#[tokio::test]
async fn maximum_request_is_an_error() {
    let api = MockApi::start(|r| {
        let page: i64 = r.param("page").unwrap().parse().unwrap();
        Answer::ok(json!({"items": [{"id": page}]}))
    })
    .await;
    let spec = spec(json!({"type": "PAGE", "pageParamName": "page", "maximumRequest": 3}));
    let (status, finished) = pull(spec, &api.url, &[]).await;
    assert_eq!(status, 1);
    assert_eq!(api.received().len(), 3);
    let line = error_line(&finished);
    assert!(
        line["message"].as_str().unwrap().contains("maximumRequest"),
        "{line}"
    );
}

#[tokio::test]
async fn a_401_is_a_configuration_failure_at_once_and_the_token_stays_secret() {
    // The API echoes the credentials it refused: the message must not repeat them.
    let api = MockApi::start(|r| {
        let echoed = r.headers["authorization"].to_str().unwrap().to_owned();
        Answer::status(401, json!({"error": "invalid credentials", "got": echoed}))
    })
    .await;
    let (status, finished) = pull(spec(json!({"type": "NONE"})), &api.url, &[]).await;
    assert_eq!(status, 78);
    assert_eq!(api.received().len(), 1);
    let line = error_line(&finished);
    assert_eq!(line["context"]["failure_kind"], "configuration");
    assert_eq!(line["context"]["status"], 401);
    assert!(line["message"].as_str().unwrap().contains("***"), "{line}");
    assert!(finished.records.is_empty());
}

#[tokio::test]
async fn a_404_on_the_first_request_is_a_configuration_failure() {
    let api = MockApi::start(|_| Answer::status(404, json!({"error": "no such list"}))).await;
    let (status, finished) = pull(spec(json!({"type": "NONE"})), &api.url, &[]).await;
    assert_eq!(status, 78);
    assert_eq!(
        error_line(&finished)["context"]["failure_kind"],
        "configuration"
    );
}

#[tokio::test]
async fn a_404_on_a_later_page_is_the_apis_error() {
    let api = MockApi::start(|r| match r.param("page") {
        Some("0") => Answer::ok(json!({"items": [{"id": 0}]})),
        _ => Answer::status(404, json!({"error": "page gone"})),
    })
    .await;
    let spec = spec(json!({"type": "PAGE", "pageParamName": "page"}));
    let (status, finished) = pull(spec, &api.url, &[]).await;
    assert_eq!(status, 1);
    let line = error_line(&finished);
    assert_eq!(line["context"]["failure_kind"], "api");
    assert!(
        line["message"].as_str().unwrap().contains("page gone"),
        "{line}"
    );
}

#[tokio::test]
async fn an_api_error_exits_1_with_its_status_and_text() {
    let api = MockApi::start(|_| Answer::status(422, json!({"detail": "bad filter syntax"}))).await;
    let (status, finished) = pull(spec(json!({"type": "NONE"})), &api.url, &[]).await;
    assert_eq!(status, 1);
    let line = error_line(&finished);
    let message = line["message"].as_str().unwrap();
    assert!(
        message.contains("422") && message.contains("bad filter syntax"),
        "{message}"
    );
    assert_eq!(line["context"]["status"], 422);
}

#[tokio::test]
async fn an_unreachable_api_is_transient() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let (status, finished) = pull(
        spec(json!({"type": "NONE"})),
        &format!("http://127.0.0.1:{port}"),
        &[],
    )
    .await;
    assert_eq!(status, 75);
    assert_eq!(
        error_line(&finished)["context"]["failure_kind"],
        "transient"
    );
}

#[tokio::test]
async fn a_response_that_is_not_json_is_the_apis_error() {
    let api = MockApi::start(|_| Answer::text(200, "<html>maintenance</html>")).await;
    let (status, finished) = pull(spec(json!({"type": "NONE"})), &api.url, &[]).await;
    assert_eq!(status, 1);
    let line = error_line(&finished);
    assert!(
        line["message"].as_str().unwrap().contains("not JSON"),
        "{line}"
    );
    assert!(finished.records.is_empty());
}

#[tokio::test]
async fn a_bad_spec_is_a_configuration_failure_naming_the_json_path() {
    let mut bad = spec(
        json!({"type": "OFFSET", "limitName": "limit", "limitValue": "ten", "offsetName": "o"}),
    );
    bad["contentPath"]["path"] = json!("$.items");
    let (status, finished) = pull(bad, "http://127.0.0.1:9", &[]).await;
    assert_eq!(status, 78);
    let line = error_line(&finished);
    assert_eq!(line["context"]["failure_kind"], "configuration");
    assert!(
        line["message"]
            .as_str()
            .unwrap()
            .contains("sourceSpec.paginationParams.limitValue"),
        "{line}"
    );
}

#[tokio::test]
async fn a_missing_option_is_a_configuration_failure_naming_it() {
    let mut with_placeholder = spec(json!({"type": "NONE"}));
    with_placeholder["urlParams"]["path"] = json!("/lists/${listId}/members");
    let (status, finished) = pull(with_placeholder, "http://127.0.0.1:9", &[]).await;
    assert_eq!(status, 78);
    assert!(error_line(&finished)["message"]
        .as_str()
        .unwrap()
        .contains("`listId`"));
}

#[tokio::test]
async fn a_definition_that_is_not_one_is_a_configuration_failure() {
    let container = ContainerApi::start().await;
    let mut vars = vars("{\"dialect\": \"aep\"}", &container.url, &[]);
    let status = run(vars.clone()).await;
    assert_eq!(status, 78);
    vars.remove("CDE_HTTP_CONNECTOR");
    assert_eq!(run(vars).await, 78);
    let finished = container.finish().await;
    assert_eq!(finished.logs_at("error").len(), 2);
}

#[tokio::test]
async fn every_page_before_a_failed_one_is_written() {
    let api = MockApi::start(|r| match r.param("page") {
        Some(page @ ("0" | "1" | "2")) => {
            let n: u64 = page.parse().unwrap();
            Answer::ok(json!({"items": [{"id": 2 * n}, {"id": 2 * n + 1}]}))
        }
        _ => Answer::status(404, json!({"error": "page gone"})),
    })
    .await;
    let spec = spec(json!({"type": "PAGE", "pageParamName": "page"}));
    let (status, finished) = pull(spec, &api.url, &[]).await;
    assert_eq!(status, 1);
    assert_eq!(error_line(&finished)["context"]["failure_kind"], "api");
    let ids: Vec<u64> = finished
        .records
        .iter()
        .map(|r| r["items-id"].as_u64().unwrap())
        .collect();
    assert_eq!(ids, [0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_write_the_container_api_refuses_ends_the_pull() {
    // `a-b` and `a.b` flatten to the same column: the Container API refuses the batch.
    let api = MockApi::start(|r| {
        let page = r.param("page").unwrap_or_default().to_owned();
        Answer::ok(json!({"items": [{"a-b": page, "a": {"b": 2}}]}))
    })
    .await;
    let spec = spec(json!({"type": "PAGE", "pageParamName": "page", "maximumRequest": 50}));
    let (status, finished) = pull(spec, &api.url, &[]).await;
    assert_eq!(status, 1);
    let line = error_line(&finished);
    assert_eq!(line["context"]["failure_kind"], "api", "{line}");
    let message = line["message"].as_str().unwrap();
    assert!(
        message.contains("writing records") && message.contains("items-a-b"),
        "{message}"
    );
    assert!(finished.records.is_empty());
    // The page fetched while the first was being written, at most.
    assert!(
        api.received().len() <= 2,
        "{} requests",
        api.received().len()
    );
}
