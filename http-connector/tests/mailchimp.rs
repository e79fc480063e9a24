//! The MailChimp Members sourceSpec of Adobe's documentation, verbatim, against a mock
//! MailChimp with 250 members and the real Container API.

mod common;

use std::collections::HashSet;

use common::{definition, run, vars, Answer, ContainerApi, MockApi, MAILCHIMP};
use serde_json::{json, Value};

const MEMBERS: usize = 250;
const PASSWORD: &str = "key-s3cret-us1";

fn member(i: usize) -> Value {
    json!({
        "id": format!("m{i:03}"),
        "email_address": format!("m{i}@example.test"),
        "status": "subscribed",
        "list_id": "L1",
        "merge_fields": {"FNAME": format!("F{i}")},
        "_links": [{"rel": "self", "href": format!("https://us1.api.mailchimp.com/3.0/lists/L1/members/m{i}")}]
    })
}

async fn mailchimp() -> MockApi {
    MockApi::start(|request| {
        assert_eq!(request.path, "/3.0/lists/L1/members");
        let count: usize = request.param("count").unwrap().parse().unwrap();
        let offset: usize = request.param("offset").unwrap().parse().unwrap();
        let members: Vec<Value> = (offset..(offset + count).min(MEMBERS))
            .map(member)
            .collect();
        Answer::ok(json!({
            "members": members,
            "list_id": "L1",
            "total_items": MEMBERS,
            "_links": [{"rel": "parent", "href": "https://us1.api.mailchimp.com/3.0/lists/L1"}]
        }))
    })
    .await
}

/// `2024-01-02T03:04:05.123456Z` as `yyyy-MM-ddTHH:mm:ss:fffffffK` formats it.
fn dotnet_fffffff_k(rfc3339: &str) -> String {
    let body = rfc3339.strip_suffix('Z').expect("a UTC time");
    let (seconds, fraction) = body.split_once('.').unwrap_or((body, ""));
    format!("{seconds}:{fraction:0<7}Z")
}

fn is_fffffff_k(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |r: std::ops::Range<usize>| r.into_iter().all(|i| b[i].is_ascii_digit());
    b.len() == 28
        && digits(0..4)
        && b[4] == b'-'
        && digits(5..7)
        && b[7] == b'-'
        && digits(8..10)
        && b[10] == b'T'
        && digits(11..13)
        && b[13] == b':'
        && digits(14..16)
        && b[16] == b':'
        && digits(17..19)
        && b[19] == b':'
        && digits(20..27)
        && b[27] == b'Z'
}

#[tokio::test]
async fn the_published_mailchimp_members_spec_pulls_every_member_once_and_resumes_from_its_window()
{
    let api = mailchimp().await;
    let definition = definition(Value::String(MAILCHIMP.into()), json!({"type": "basic"}));

    // First run: no state yet.
    let container = ContainerApi::with_state(None).await;
    let status = run(vars(
        &definition,
        &container.url,
        &[
            ("listId", "L1"),
            ("domain", "us1"),
            ("base_url", &api.url),
            ("username", "anystring"),
            ("password", PASSWORD),
        ],
    ))
    .await;
    let first = container.finish().await;
    assert_eq!(status, 0, "logs: {:#?}", first.logs);

    let received = api.received();
    assert_eq!(received.len(), 3);
    let offsets: Vec<_> = received
        .iter()
        .map(|r| r.param("offset").unwrap())
        .collect();
    assert_eq!(offsets, ["0", "100", "200"]);
    assert!(received.iter().all(|r| r.param("count") == Some("100")));
    assert!(received.iter().all(|r| r.method == "GET"));
    let authorization = received[0].headers["authorization"].to_str().unwrap();
    assert!(authorization.starts_with("Basic "), "{authorization}");

    let since = received[0].param("since_last_changed").unwrap().to_owned();
    let before = received[0].param("before_last_changed").unwrap().to_owned();
    assert_eq!(
        since, "1970-01-01T00:00:00:0000000Z",
        "the default schedule_start"
    );
    assert!(is_fffffff_k(&before), "{before}");
    for r in &received {
        assert_eq!(r.param("since_last_changed"), Some(since.as_str()));
        assert_eq!(r.param("before_last_changed"), Some(before.as_str()));
    }

    assert_eq!(first.records.len(), MEMBERS);
    let ids: HashSet<_> = first
        .records
        .iter()
        .map(|r| r["member-id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, (0..MEMBERS).map(|i| format!("m{i:03}")).collect());
    for record in &first.records {
        let record = record.as_object().unwrap();
        for column in record.keys() {
            assert!(column.starts_with("member-"), "{column} in {record:?}");
            for gone in ["_links", "total_items", "list_id"] {
                assert!(!column.contains(gone), "{column} in {record:?}");
            }
        }
    }
    assert_eq!(first.records[0]["member-merge_fields-FNAME"], "F0");
    assert_eq!(first.records[0]["member-email_address"], "m0@example.test");

    let pages: Vec<_> = first
        .logs_at("info")
        .into_iter()
        .filter(|l| l["message"].as_str().unwrap().starts_with("page "))
        .collect();
    assert_eq!(pages.len(), 3, "{:#?}", first.logs);
    assert_eq!(pages[2]["context"]["records"], 50);
    let start = &first.logs_at("info")[0];
    assert_eq!(start["context"]["options"]["password"], "***", "{start}");
    assert_eq!(start["context"]["options"]["listId"], "L1", "{start}");
    let all_logs = serde_json::to_string(&first.logs).unwrap();
    assert!(!all_logs.contains(PASSWORD));

    assert_eq!(first.state_puts.len(), 1);
    let window_end = first.state_puts[0]["data"]["schedule"]["window_end"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(dotnet_fffffff_k(&window_end), before);

    // Second run: from the first window's end; `domain` is not needed with `base_url`.
    let container = ContainerApi::with_state(Some(first.state_puts[0]["data"].clone())).await;
    let status = run(vars(
        &definition,
        &container.url,
        &[
            ("listId", "L1"),
            ("base_url", &api.url),
            ("PUP_AUTH_USERNAME", "anystring"),
            ("PUP_AUTH_PASSWORD", PASSWORD),
        ],
    ))
    .await;
    let second = container.finish().await;
    assert_eq!(status, 0, "logs: {:#?}", second.logs);
    let received = api.received();
    assert_eq!(received.len(), 6);
    assert_eq!(
        received[3].param("since_last_changed"),
        Some(before.as_str())
    );
    let second_before = received[3].param("before_last_changed").unwrap();
    assert!(
        second_before >= before.as_str(),
        "{second_before} < {before}"
    );
    let second_end = second.state_puts[0]["data"]["schedule"]["window_end"]
        .as_str()
        .unwrap();
    assert_eq!(dotnet_fffffff_k(second_end), second_before);
}

#[tokio::test]
async fn without_state_support_the_run_still_succeeds_and_says_so() {
    let api = mailchimp().await;
    let definition = definition(Value::String(MAILCHIMP.into()), json!({"type": "basic"}));
    let container = ContainerApi::without_state().await;
    let status = run(vars(
        &definition,
        &container.url,
        &[
            ("listId", "L1"),
            ("base_url", &api.url),
            ("username", "u"),
            ("password", "p"),
        ],
    ))
    .await;
    let finished = container.finish().await;
    assert_eq!(status, 0, "logs: {:#?}", finished.logs);
    assert_eq!(finished.records.len(), MEMBERS);
    let warnings = finished.logs_at("warning");
    assert_eq!(warnings.len(), 1, "{:#?}", finished.logs);
    assert!(warnings[0]["message"]
        .as_str()
        .unwrap()
        .contains("no state"));
}
