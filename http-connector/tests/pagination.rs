//! Each pagination type and end condition, explode and keep/skip, and ADVANCE scheduling,
//! end to end: a mock API, the engine, the real Container API.

mod common;

use std::time::Duration;

use common::{definition, run, vars, Answer, ContainerApi, Finished, MockApi, Received};
use serde_json::{json, Value};

/// A bare sourceSpec (parameters directly in it) reading `$.items` from `/items`.
fn spec(pagination: Value) -> Value {
    json!({
        "urlParams": {"host": "https://api.example.test", "path": "/items", "method": "GET"},
        "contentPath": {"path": "$.items"},
        "paginationParams": pagination
    })
}

fn items(from: usize, to: usize) -> Value {
    Value::Array((from..to).map(|i| json!({"id": i})).collect())
}

async fn pull(
    spec: Value,
    api: &MockApi,
    container: ContainerApi,
    options: &[(&str, &str)],
) -> (u8, Finished, Vec<Received>) {
    let mut options = options.to_vec();
    options.push(("base_url", &api.url));
    let status = run(vars(
        &definition(spec, json!({"type": "none"})),
        &container.url,
        &options,
    ))
    .await;
    let finished = container.finish().await;
    (status, finished, api.received())
}

fn ids(finished: &Finished) -> Vec<i64> {
    finished
        .records
        .iter()
        .map(|r| {
            r["items-id"]
                .as_i64()
                .or_else(|| r["items-id"].as_str()?.parse().ok())
                .unwrap()
        })
        .collect()
}

#[tokio::test]
async fn offset_stops_at_its_end_condition_read_from_the_response() {
    let api = MockApi::start(|r| {
        let offset: usize = r.param("start").unwrap().parse().unwrap();
        Answer::ok(json!({"items": items(offset, offset + 2), "hasMore": offset < 4}))
    })
    .await;
    let spec = spec(
        json!({"type": "OFFSET", "limitName": "limit", "limitValue": 2,
        "offsetName": "start", "endConditionName": "$.hasMore", "endConditionValue": "false"}),
    );
    let (status, finished, received) = pull(spec, &api, ContainerApi::start().await, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    let starts: Vec<_> = received.iter().map(|r| r.param("start").unwrap()).collect();
    assert_eq!(starts, ["0", "2", "4"]);
    assert!(received.iter().all(|r| r.param("limit") == Some("2")));
    assert_eq!(ids(&finished), [0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn offset_stops_on_an_empty_page() {
    let api = MockApi::start(|r| {
        let offset: usize = r.param("offset").unwrap().parse().unwrap();
        Answer::ok(json!({"items": items(offset, (offset + 3).min(6))}))
    })
    .await;
    let spec = spec(
        json!({"type": "OFFSET", "limitName": "limit", "limitValue": "3", "offSetName": "offset"}),
    );
    let (status, finished, received) = pull(spec, &api, ContainerApi::start().await, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(received.len(), 3, "two full pages, then an empty one");
    assert_eq!(ids(&finished), [0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn pointer_follows_next_urls_until_there_is_none() {
    let api = MockApi::start(|r| {
        let after: usize = r.param("after").map_or(0, |a| a.parse().unwrap());
        let next = if after < 4 {
            json!(format!("/items?after={}&limit=2", after + 2))
        } else {
            Value::Null
        };
        Answer::ok(json!({"items": items(after, after + 2), "paging": {"next": next}}))
    })
    .await;
    let spec = spec(
        json!({"type": "POINTER", "limitName": "limit", "limitValue": 2,
        "pointerPath": "$.paging.next"}),
    );
    let (status, finished, received) = pull(spec, &api, ContainerApi::start().await, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    let afters: Vec<_> = received.iter().map(|r| r.param("after")).collect();
    assert_eq!(afters, [None, Some("2"), Some("4")]);
    assert_eq!(ids(&finished), [0, 1, 2, 3, 4, 5]);
}

#[tokio::test]
async fn a_pointer_token_is_sent_as_the_pointer_param_with_the_limit() {
    let api = MockApi::start(|r| match r.param("cursor") {
        None => Answer::ok(json!({"items": items(0, 2), "meta": {"cursor": "c1"}})),
        Some("c1") => Answer::ok(json!({"items": items(2, 4), "meta": {"cursor": ""}})),
        Some(other) => Answer::status(400, json!({"error": format!("unexpected cursor {other}")})),
    })
    .await;
    let spec = spec(
        json!({"type": "POINTER", "limitName": "limit", "limitValue": 2,
        "pointerPath": "meta.cursor"}),
    );
    let (status, finished, received) = pull(spec, &api, ContainerApi::start().await, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].param("limit"), Some("2"));
    assert_eq!(ids(&finished), [0, 1, 2, 3]);
}

#[tokio::test]
async fn continuation_tokens_in_a_query_param_wait_the_delay_between_requests() {
    let api = MockApi::start(|r| match r.param("next_token") {
        None => Answer::ok(json!({"items": items(0, 1), "next": "t1"})),
        Some("t1") => Answer::ok(json!({"items": items(1, 2), "next": "t2"})),
        Some(_) => Answer::ok(json!({"items": items(2, 3)})),
    })
    .await;
    let spec = spec(
        json!({"type": "CONTINUATION_TOKEN", "continuationTokenPath": "$.next",
        "parameterType": "QUERYPARAM", "parameterName": "next_token", "delayRequestMillis": 150}),
    );
    let (status, finished, received) = pull(spec, &api, ContainerApi::start().await, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    let tokens: Vec<_> = received.iter().map(|r| r.param("next_token")).collect();
    assert_eq!(tokens, [None, Some("t1"), Some("t2")]);
    for pair in received.windows(2) {
        let gap = pair[1].at - pair[0].at;
        assert!(gap >= Duration::from_millis(150), "{gap:?}");
    }
    assert_eq!(ids(&finished), [0, 1, 2]);
}

#[tokio::test]
async fn continuation_tokens_in_a_header() {
    let api = MockApi::start(|r| match r.headers.get("x-continuation") {
        None => Answer::ok(json!({"items": items(0, 1), "token": "abc"})),
        Some(_) => Answer::ok(json!({"items": items(1, 2), "token": null})),
    })
    .await;
    let spec = spec(
        json!({"type": "CONTINUATION_TOKEN", "continuationTokenPath": "$.token",
        "parameterType": "HEADERPARAM", "parameterName": "X-Continuation"}),
    );
    let (status, finished, received) = pull(spec, &api, ContainerApi::start().await, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(received.len(), 2);
    assert_eq!(received[1].headers["x-continuation"], "abc");
    assert_eq!(ids(&finished), [0, 1]);
}

#[tokio::test]
async fn page_stops_at_the_page_count_of_a_response_header() {
    let api = MockApi::start(|r| {
        let page: usize = r.param("pageIndex").unwrap().parse().unwrap();
        Answer::ok(json!({"items": items(page * 10, page * 10 + 2)})).header("X-PageCount", "3")
    })
    .await;
    let spec = spec(
        json!({"type": "PAGE", "pageParamName": "pageIndex", "initialPageIndex": 1,
        "endPageIndex": "headers.x-pagecount", "limitName": "size", "limitValue": 2}),
    );
    let (status, finished, received) = pull(spec, &api, ContainerApi::start().await, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    let pages: Vec<_> = received
        .iter()
        .map(|r| r.param("pageIndex").unwrap())
        .collect();
    assert_eq!(
        pages,
        ["1", "2", "3"],
        "full pages, but the header says 3 pages from 1"
    );
    assert_eq!(ids(&finished), [10, 11, 20, 21, 30, 31]);
}

#[tokio::test]
async fn page_stops_at_a_numeric_end_index_or_a_short_page() {
    let api = MockApi::start(|r| {
        let page: usize = r.param("page").unwrap().parse().unwrap();
        Answer::ok(json!({"items": items(page * 2, page * 2 + 2)}))
    })
    .await;
    let spec_last = spec(json!({"type": "PAGE", "pageParamName": "page", "endPageIndex": 1}));
    let (status, finished, received) =
        pull(spec_last, &api, ContainerApi::start().await, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(received.len(), 2, "pages 0 and 1");
    assert_eq!(ids(&finished), [0, 1, 2, 3]);

    let short = MockApi::start(|r| {
        let page: usize = r.param("page").unwrap().parse().unwrap();
        Answer::ok(json!({"items": items(page * 3, (page * 3 + 3).min(7))}))
    })
    .await;
    let spec_short = spec(
        json!({"type": "PAGE", "pageParamName": "page", "limitName": "per_page", "limitValue": 3}),
    );
    let (status, finished, received) =
        pull(spec_short, &short, ContainerApi::start().await, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(received.len(), 3, "3 + 3 + 1");
    assert_eq!(ids(&finished), [0, 1, 2, 3, 4, 5, 6]);
}

#[tokio::test]
async fn none_makes_one_post_with_filled_headers_body_and_bearer_auth() {
    let api =
        MockApi::start(|_| Answer::ok(json!([{"id": 1, "secret_field": "x"}, {"id": 2}]))).await;
    let spec = json!({"sourceSpec": {"attributes": {
        "urlParams": {"host": "https://{region}.example.test", "path": "/v1/${tenant}/search", "method": "POST",
            "queryParams": {"fields": "${fields}"}},
        "headerParams": {"X-Tenant": "{tenant}"},
        "bodyParams": {"filter": {"tenant": "${tenant}"}, "size": 100},
        "contentPath": {"path": "$", "skipAttributes": ["secret_field"]},
        "paginationParams": {"type": "NONE"}
    }}});
    let container = ContainerApi::start().await;
    let status = run(vars(
        &definition(spec, json!({"type": "bearer"})),
        &container.url,
        &[
            ("tenant", "acme/eu"),
            ("fields", "a,b&c"),
            ("token", "tok-123"),
            ("base_url", &api.url),
        ],
    ))
    .await;
    let finished = container.finish().await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    let received = api.received();
    assert_eq!(received.len(), 1);
    let r = &received[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/v1/acme%2Feu/search");
    assert_eq!(r.param("fields"), Some("a,b&c"));
    assert_eq!(r.headers["x-tenant"], "acme/eu");
    assert_eq!(r.headers["authorization"], "Bearer tok-123");
    assert_eq!(r.headers["content-type"], "application/json");
    let body: Value = serde_json::from_slice(&r.body).unwrap();
    assert_eq!(body, json!({"filter": {"tenant": "acme/eu"}, "size": 100}));
    assert_eq!(finished.records.len(), 2);
    assert!(finished
        .records
        .iter()
        .all(|r| !r.as_object().unwrap().contains_key("secret_field")));
}

#[tokio::test]
async fn explode_gives_one_record_per_activity_with_keep_and_skip() {
    let api = MockApi::start(|_| {
        Answer::ok(json!({
            "emails": [
                {"email_id": "e1", "email_address": "a@x", "campaign_id": "c",
                 "activity": [{"action": "open", "timestamp": "t1", "ip": "1.1.1.1"},
                              {"action": "click", "timestamp": "t2", "ip": "2.2.2.2"}]},
                {"email_id": "e2", "email_address": "b@x", "campaign_id": "c",
                 "activity": [{"action": "bounce", "timestamp": "t3", "ip": "3.3.3.3"}]}
            ],
            "campaign_id": "c", "total_items": 2, "_links": []
        }))
    })
    .await;
    let spec = json!({
        "urlParams": {"host": "https://us1.api.mailchimp.com", "path": "/3.0/reports/c/email-activity", "method": "GET"},
        "contentPath": {"path": "$.emails", "overrideWrapperAttribute": "email",
            "keepAttributes": ["email_id", "activity", "campaign_id"], "skipAttributes": ["campaign_id"]},
        "explodeEntityPath": {"path": "$.email.activity", "skipAttributes": ["ip"]},
        "paginationParams": {"type": "NONE"}
    });
    let (status, finished, _) = pull(spec, &api, ContainerApi::start().await, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(
        finished.records,
        [
            json!({"email-email_id": "e1", "activity-action": "open", "activity-timestamp": "t1"}),
            json!({"email-email_id": "e1", "activity-action": "click", "activity-timestamp": "t2"}),
            json!({"email-email_id": "e2", "activity-action": "bounce", "activity-timestamp": "t3"}),
        ]
    );
}

#[tokio::test]
async fn advance_scheduling_backfills_first_then_asks_incrementally() {
    let api = MockApi::start(|_| Answer::ok(json!({"results": [{"id": 1}]}))).await;
    let spec = json!({
        "urlParams": {"host": "https://x.zendesk.com", "path": "/api/v2/search/export", "method": "GET",
            "queryParams": {"query": "{SCHEDULE_QUERY}", "filter[type]": "user"}},
        "contentPath": {"path": "results"},
        "paginationParams": {"type": "NONE"},
        "scheduleParams": {"type": "ADVANCE", "paramFormat": "yyyy-MM-ddTHH:mm:ssK",
            "incremental": "type:user updated>{START_TIME} updated<{END_TIME}",
            "backfill": "type:user updated<{END_TIME}"}
    });
    let container = ContainerApi::with_state(None).await;
    let (status, first, received) = pull(
        spec.clone(),
        &api,
        container,
        &[("schedule_start", "2020-01-01T00:00:00Z")],
    )
    .await;
    assert_eq!(status, 0, "{:#?}", first.logs);
    let query = received[0].param("query").unwrap();
    assert!(query.starts_with("type:user updated<20"), "{query}");
    assert!(query.ends_with('Z') && !query.contains('.'), "{query}");
    assert_eq!(received[0].param("filter[type]"), Some("user"));
    let state = first.state_puts[0]["data"].clone();
    let end = state["schedule"]["window_end"].as_str().unwrap();
    let end_seconds = format!("{}Z", &end[..19]);

    let container = ContainerApi::with_state(Some(state.clone())).await;
    let (status, second, received) = pull(spec, &api, container, &[]).await;
    assert_eq!(status, 0, "{:#?}", second.logs);
    let query = received[1].param("query").unwrap();
    assert!(
        query.starts_with(&format!("type:user updated>{end_seconds} updated<")),
        "{query} after {end}"
    );
}

#[tokio::test]
async fn a_large_page_is_posted_in_batches_of_at_most_1000_records() {
    let api = MockApi::start(|_| Answer::ok(json!({"items": items(0, 2500)}))).await;
    let container = ContainerApi::with_state(None).await;
    let (status, finished, _) = pull(spec(json!({"type": "NONE"})), &api, container, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    let batches: Vec<_> = finished
        .forwarded
        .iter()
        .filter(|(method, path, _)| method == "POST" && path == "/output/output")
        .map(|(_, _, records)| records.unwrap())
        .collect();
    assert_eq!(batches, [1000, 1000, 500]);
    assert_eq!(finished.records.len(), 2500);
    assert!(finished.state_puts.is_empty(), "no schedule, no state");
}

#[tokio::test]
async fn start_and_end_time_placeholders_in_the_query_get_the_window() {
    let api = MockApi::start(|_| Answer::ok(json!({"items": items(0, 1)}))).await;
    let mut spec = spec(json!({"type": "NONE"}));
    spec["urlParams"]["queryParams"] = json!({"from": "{START_TIME}"});
    spec["scheduleParams"] = json!({"scheduleStartParamName": "since", "scheduleEndParamName": "until",
        "scheduleStartParamFormat": "yyyy-MM-dd", "scheduleEndParamFormat": "yyyy-MM-ddTHH:mm:ssZ"});
    let container = ContainerApi::with_state(None).await;
    let (status, finished, received) = pull(
        spec,
        &api,
        container,
        &[("schedule_start", "2021-06-07T08:09:10Z")],
    )
    .await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(received[0].param("from"), Some("2021-06-07"));
    assert_eq!(received[0].param("since"), Some("2021-06-07"));
    assert!(received[0].param("until").unwrap().ends_with('Z'));
}

#[tokio::test]
async fn an_empty_answer_is_a_page_without_records_and_ends_the_pagination() {
    let api = MockApi::start(|r| match r.param("page") {
        Some("0") => Answer::ok(json!({"items": items(0, 2)})),
        _ => Answer::text(204, ""),
    })
    .await;
    let spec =
        spec(json!({"type": "PAGE", "pageParamName": "page", "limitName": "n", "limitValue": 2}));
    let (status, finished, received) = pull(spec, &api, ContainerApi::start().await, &[]).await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(received.len(), 2);
    assert_eq!(ids(&finished), [0, 1]);
}

#[tokio::test]
async fn declared_endpoint_groups_pace_the_pages_and_retry_their_codes() {
    // The first answer to /items is a 418 the group retries; then pages at 10/s, burst 1.
    let refused = std::sync::atomic::AtomicBool::new(false);
    let api = MockApi::start(move |r| {
        if !refused.swap(true, std::sync::atomic::Ordering::SeqCst) {
            return Answer::status(418, json!({"error": "teapot"}));
        }
        let offset: usize = r.param("offset").unwrap().parse().unwrap();
        Answer::ok(json!({"items": items(offset, (offset + 2).min(8))}))
    })
    .await;
    let spec = spec(
        json!({"type": "OFFSET", "limitName": "limit", "limitValue": 2, "offsetName": "offset"}),
    );
    let mut definition: Value =
        serde_json::from_str(&definition(spec, json!({"type": "none"}))).unwrap();
    definition["endpoint_groups"] = json!([{
        "patterns": ["/items"],
        "rate_limit": {"requests_per_second": 10, "burst": 1},
        "retry": {"418": {"strategy": "constant", "delay_ms": 10}}
    }]);
    let container = ContainerApi::start().await;
    let status = run(vars(
        &definition.to_string(),
        &container.url,
        &[("base_url", &api.url)],
    ))
    .await;
    let finished = container.finish().await;
    assert_eq!(status, 0, "{:#?}", finished.logs);
    assert_eq!(ids(&finished), (0..8).collect::<Vec<_>>());
    let received = api.received();
    assert_eq!(
        received.len(),
        6,
        "the 418, then 5 pages (the last one short)"
    );
    let spread = received.last().unwrap().at - received[0].at;
    assert!(
        spread >= Duration::from_millis(450),
        "10/s over 6 requests: {spread:?}"
    );
}

#[test]
fn a_bad_endpoint_group_is_refused_at_registration() {
    let mut definition: Value = serde_json::from_str(&definition(
        spec(json!({"type": "NONE"})),
        json!({"type": "none"}),
    ))
    .unwrap();
    definition["endpoint_groups"] =
        json!([{"patterns": ["/items"], "rate_limit": {"requests_per_second": 0}}]);
    let definition: http_connector::Definition = serde_json::from_value(definition).unwrap();
    let error = http_connector::parse(&definition).unwrap_err().to_string();
    assert!(
        error.contains("endpoint_groups") && error.contains("requests_per_second"),
        "{error}"
    );
}
