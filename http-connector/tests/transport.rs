//! The transport against mock APIs of its own on loopback (axum on 127.0.0.1:0): retries,
//! failure kinds, rate limits, concurrency, the adaptive slow-down, the CDP mapping,
//! endpoint group patterns and timeouts. Delays are kept small (Retry-After: 1, 10 ms
//! backoffs).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use http_connector::transport::{
    EndpointGroup, FailureKind, RateLimit, RetryStrategy, Transport, TransportConfig,
};
use reqwest::Method;
use tokio::time::Instant;

/// What the mock answers.
struct Answer {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
    delay: Duration,
}

impl Answer {
    fn status(status: u16) -> Answer {
        Answer {
            status,
            headers: Vec::new(),
            body: String::new(),
            delay: Duration::ZERO,
        }
    }
    fn ok() -> Answer {
        Answer::status(200).body("ok")
    }
    fn header(mut self, name: &'static str, value: impl Into<String>) -> Answer {
        self.headers.push((name, value.into()));
        self
    }
    fn body(mut self, body: impl Into<String>) -> Answer {
        self.body = body.into();
        self
    }
    fn delay(mut self, delay: Duration) -> Answer {
        self.delay = delay;
        self
    }
}

#[derive(Debug, Clone)]
struct Arrival {
    at: Instant,
    method: String,
    path: String,
    body: String,
}

/// Decides the answer from the path and how many requests that path has had before.
type Reply = dyn Fn(&str, usize) -> Answer + Send + Sync;

struct Inner {
    reply: Box<Reply>,
    arrivals: Mutex<Vec<Arrival>>,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
}

struct Mock {
    addr: SocketAddr,
    inner: Arc<Inner>,
}

impl Mock {
    async fn start(reply: impl Fn(&str, usize) -> Answer + Send + Sync + 'static) -> Mock {
        let inner = Arc::new(Inner {
            reply: Box::new(reply),
            arrivals: Mutex::new(Vec::new()),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
        });
        let router = axum::Router::new()
            .fallback(handle)
            .with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
        Mock { addr, inner }
    }

    fn url(&self, path_and_query: &str) -> reqwest::Url {
        reqwest::Url::parse(&format!("http://{}{path_and_query}", self.addr)).unwrap()
    }

    fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn arrivals(&self) -> Vec<Arrival> {
        self.inner.arrivals.lock().unwrap().clone()
    }

    fn count(&self) -> usize {
        self.inner.arrivals.lock().unwrap().len()
    }

    fn gap(&self, from: usize, to: usize) -> Duration {
        let arrivals = self.arrivals();
        arrivals[to].at - arrivals[from].at
    }
}

async fn handle(
    axum::extract::State(inner): axum::extract::State<Arc<Inner>>,
    request: axum::extract::Request,
) -> Response {
    let at = Instant::now();
    let method = request.method().to_string();
    let path = request.uri().path().to_string();
    let body = axum::body::to_bytes(request.into_body(), usize::MAX)
        .await
        .unwrap();
    let before = {
        let mut arrivals = inner.arrivals.lock().unwrap();
        let before = arrivals.iter().filter(|a| a.path == path).count();
        arrivals.push(Arrival {
            at,
            method,
            path: path.clone(),
            body: String::from_utf8_lossy(&body).into_owned(),
        });
        before
    };
    let now = inner.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    inner.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let answer = (inner.reply)(&path, before);
    tokio::time::sleep(answer.delay).await;
    inner.in_flight.fetch_sub(1, Ordering::SeqCst);
    let mut response = Response::new(Body::from(answer.body));
    *response.status_mut() = StatusCode::from_u16(answer.status).unwrap();
    for (name, value) in answer.headers {
        response.headers_mut().insert(
            HeaderName::from_static(name),
            HeaderValue::from_str(&value).unwrap(),
        );
    }
    response
}

fn transport(groups: Vec<EndpointGroup>) -> Transport {
    Transport::with_config(&TransportConfig {
        endpoint_groups: groups,
    })
    .unwrap()
}

/// Every path, with fast exponential backoffs for 5xx and network failures.
fn fast(extra: impl FnOnce(&mut EndpointGroup)) -> EndpointGroup {
    let mut group = EndpointGroup {
        patterns: vec!["/".into()],
        retry: [(
            "500 502 503 504 network".to_string(),
            RetryStrategy::Exponential {
                base_ms: 10,
                cap_ms: 40,
                jitter: true,
            },
        )]
        .into(),
        ..EndpointGroup::default()
    };
    extra(&mut group);
    group
}

fn get(url: reqwest::Url) -> reqwest::Request {
    reqwest::Request::new(Method::GET, url)
}

fn post(url: reqwest::Url, body: &str, idempotency_key: Option<&str>) -> reqwest::Request {
    let mut request = reqwest::Request::new(Method::POST, url);
    *request.body_mut() = Some(body.to_string().into());
    if let Some(key) = idempotency_key {
        request
            .headers_mut()
            .insert("idempotency-key", key.parse().unwrap());
    }
    request
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let mock = Mock::start(|_, n| match n {
        0 => Answer::status(429).header("retry-after", "1"),
        _ => Answer::ok(),
    })
    .await;
    let response = Transport::new()
        .unwrap()
        .send(get(mock.url("/items")))
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "ok");
    assert_eq!(mock.count(), 2);
    assert!(
        mock.gap(0, 1) >= Duration::from_secs(1),
        "{:?}",
        mock.gap(0, 1)
    );
}

#[tokio::test]
async fn retry_after_as_an_http_date_is_honoured() {
    // An HTTP date has whole seconds: two seconds ahead is at least one second away.
    let mock = Mock::start(|_, n| match n {
        0 => Answer::status(429).header(
            "retry-after",
            httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(2)),
        ),
        _ => Answer::ok(),
    })
    .await;
    Transport::new()
        .unwrap()
        .send(get(mock.url("/items")))
        .await
        .unwrap();
    assert_eq!(mock.count(), 2);
    // Without the date, the fallback (exponential, 100 ms) would retry far sooner.
    assert!(
        mock.gap(0, 1) >= Duration::from_secs(1),
        "{:?}",
        mock.gap(0, 1)
    );
}

#[tokio::test]
async fn a_retry_after_longer_than_the_cap_fails_instead_of_sleeping() {
    let mock = Mock::start(|_, _| Answer::status(429).header("retry-after", "3600")).await;
    let started = Instant::now();
    let failure = Transport::new()
        .unwrap()
        .send(get(mock.url("/items")))
        .await
        .unwrap_err();
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(failure.kind, FailureKind::Transient);
    assert_eq!(failure.status, Some(429));
    assert!(
        failure.message.contains("Retry-After"),
        "{}",
        failure.message
    );
    assert!(failure.message.contains("3600 s"), "{}", failure.message);
    assert_eq!(mock.count(), 1);
}

#[tokio::test]
async fn server_errors_are_retried_then_succeed() {
    let mock = Mock::start(|_, n| match n {
        0 => Answer::status(500),
        1 => Answer::status(503),
        _ => Answer::ok().body("at last"),
    })
    .await;
    let response = transport(vec![fast(|_| {})])
        .send(get(mock.url("/items")))
        .await
        .unwrap();
    assert_eq!(response.text().await.unwrap(), "at last");
    assert_eq!(mock.count(), 3);
}

#[tokio::test]
async fn server_errors_are_retried_by_default() {
    let mock = Mock::start(|_, n| match n {
        0 => Answer::status(502),
        _ => Answer::ok(),
    })
    .await;
    Transport::new()
        .unwrap()
        .send(get(mock.url("/items")))
        .await
        .unwrap();
    assert_eq!(mock.count(), 2);
    // The default backoff starts at 100 ms.
    assert!(
        mock.gap(0, 1) >= Duration::from_millis(100),
        "{:?}",
        mock.gap(0, 1)
    );
}

#[tokio::test]
async fn exhausted_retries_are_transient_with_the_count() {
    let mock = Mock::start(|_, _| Answer::status(503).body("down for maintenance")).await;
    let failure = transport(vec![fast(|g| g.max_tries = Some(3))])
        .send(get(mock.url("/items?api_key=SECRET")))
        .await
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Transient);
    assert_eq!(failure.status, Some(503));
    assert_eq!(mock.count(), 3);
    let m = &failure.message;
    assert!(m.contains("gave up after 3 tries"), "{m}");
    assert!(m.contains("503 Service Unavailable"), "{m}");
    assert!(m.contains("down for maintenance"), "{m}");
    assert!(m.starts_with(&format!("GET {}/items:", mock.base())), "{m}");
    assert!(!m.contains("SECRET"), "{m}");
}

#[tokio::test]
async fn the_default_is_five_tries() {
    let mock = Mock::start(|_, _| Answer::status(500)).await;
    // Default backoff: 100, 200, 400, 800 ms (plus jitter).
    let failure = Transport::new()
        .unwrap()
        .send(get(mock.url("/items")))
        .await
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Transient);
    assert_eq!(mock.count(), 5);
    assert!(
        failure.message.contains("gave up after 5 tries"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn a_post_is_not_retried() {
    let mock = Mock::start(|_, _| Answer::status(503)).await;
    let failure = transport(vec![fast(|_| {})])
        .send(post(mock.url("/import"), "{}", None))
        .await
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Transient);
    assert_eq!(mock.count(), 1);
    assert!(
        failure.message.contains("not retried"),
        "{}",
        failure.message
    );
    assert!(failure.message.starts_with("POST "), "{}", failure.message);
}

#[tokio::test]
async fn a_post_with_an_idempotency_key_is_retried() {
    let mock = Mock::start(|_, n| match n {
        0 => Answer::status(503),
        _ => Answer::status(201).body("created"),
    })
    .await;
    let response = transport(vec![fast(|_| {})])
        .send(post(mock.url("/import"), r#"{"id":7}"#, Some("k-1")))
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), 2);
    assert!(arrivals
        .iter()
        .all(|a| a.method == "POST" && a.body == r#"{"id":7}"#));
}

#[tokio::test]
async fn unauthorized_is_a_configuration_failure_at_once() {
    for status in [401, 403] {
        let mock = Mock::start(move |_, _| Answer::status(status).body("bad token")).await;
        let failure = transport(vec![fast(|g| {
            // Even a declared retry does not resend a refused credential.
            g.retry
                .insert(status.to_string(), RetryStrategy::Constant { delay_ms: 10 });
        })])
        .send(get(mock.url("/me?token=SECRET")))
        .await
        .unwrap_err();
        assert_eq!(failure.kind, FailureKind::Configuration);
        assert_eq!(failure.status, Some(status));
        assert_eq!(mock.count(), 1);
        assert!(failure.message.contains("bad token"), "{}", failure.message);
        assert!(!failure.message.contains("SECRET"), "{}", failure.message);
    }
}

#[tokio::test]
async fn a_bad_request_is_an_api_failure_with_the_body() {
    let long = format!(r#"{{"error":"invalid field 'foo'"}}{}"#, "x".repeat(2000));
    let mock = Mock::start(move |_, _| Answer::status(400).body(long.clone())).await;
    let mut url = mock.url("/items?api_key=SECRET");
    url.set_username("user").unwrap();
    url.set_password(Some("hunter2")).unwrap();
    let failure = Transport::new().unwrap().send(get(url)).await.unwrap_err();
    assert_eq!(failure.kind, FailureKind::Api);
    assert_eq!(failure.status, Some(400));
    assert_eq!(mock.count(), 1);
    let m = &failure.message;
    assert!(
        m.starts_with(&format!("GET {}/items: 400 Bad Request: ", mock.base())),
        "{m}"
    );
    assert!(m.contains(r#"{"error":"invalid field 'foo'"}"#), "{m}");
    assert!(
        !m.contains("SECRET") && !m.contains("hunter2") && !m.contains("user@"),
        "{m}"
    );
    // The first 500 characters of the body, not the 2000 x's.
    assert!(m.chars().filter(|c| *c == 'x').count() < 500, "{}", m.len());
}

#[tokio::test]
async fn the_rate_limit_holds() {
    let mock = Mock::start(|_, _| Answer::ok()).await;
    let (rate, burst, n) = (20.0, 5, 15);
    let transport = transport(vec![EndpointGroup {
        patterns: vec!["/".into()],
        rate_limit: Some(RateLimit {
            requests_per_second: rate,
            burst,
        }),
        ..EndpointGroup::default()
    }]);
    let started = Instant::now();
    let sends = (0..n).map(|i| transport.send(get(mock.url(&format!("/items/{i}")))));
    for result in futures_util::future::join_all(sends).await {
        result.unwrap();
    }
    let elapsed = started.elapsed();
    let least = Duration::from_secs_f64((n - burst) as f64 / rate);
    // A hair of slack for the limiter's clock (quanta) against tokio's.
    assert!(elapsed >= least.mul_f64(0.98), "{elapsed:?} < {least:?}");
    assert!(elapsed < least * 4, "{elapsed:?}: the burst was not used");
    let arrivals = mock.arrivals();
    assert_eq!(arrivals.len(), n as usize);
    // The burst goes at once, the rest one every 50 ms.
    let first = arrivals.iter().map(|a| a.at).min().unwrap();
    let within = |d: Duration| arrivals.iter().filter(|a| a.at - first < d).count();
    assert!(within(Duration::from_millis(40)) <= burst as usize + 1);
}

#[tokio::test]
async fn groups_keep_separate_rate_limits() {
    let mock = Mock::start(|_, _| Answer::ok()).await;
    let slow = EndpointGroup {
        patterns: vec!["/slow/".into()],
        rate_limit: Some(RateLimit {
            requests_per_second: 2.0,
            burst: 1,
        }),
        ..EndpointGroup::default()
    };
    let transport = transport(vec![slow]);
    transport.send(get(mock.url("/slow/1"))).await.unwrap();
    let started = Instant::now();
    // The slow group's next turn is 500 ms away; the default group has no limit.
    for i in 0..10 {
        transport
            .send(get(mock.url(&format!("/fast/{i}"))))
            .await
            .unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
    transport.send(get(mock.url("/slow/2"))).await.unwrap();
    assert!(
        started.elapsed() >= Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn max_concurrent_is_never_exceeded() {
    let mock = Mock::start(|_, _| Answer::ok().delay(Duration::from_millis(50))).await;
    let transport = transport(vec![EndpointGroup {
        patterns: vec!["/".into()],
        max_concurrent: Some(3),
        ..EndpointGroup::default()
    }]);
    let sends = (0..12).map(|i| transport.send(get(mock.url(&format!("/items/{i}")))));
    for result in futures_util::future::join_all(sends).await {
        result.unwrap();
    }
    assert_eq!(mock.count(), 12);
    // Never more than 3, and 3 were reached: the limit, not the client, held them.
    assert_eq!(mock.inner.max_in_flight.load(Ordering::SeqCst), 3);
}

#[tokio::test]
async fn repeated_429s_slow_the_group_down_then_it_recovers() {
    let mock = Mock::start(|_, n| match n {
        0..=2 => Answer::status(429).header("retry-after", "0"),
        _ => Answer::ok(),
    })
    .await;
    let url = mock.url("/items");
    let transport = transport(vec![EndpointGroup {
        patterns: vec!["/items".into()],
        rate_limit: Some(RateLimit {
            requests_per_second: 50.0,
            burst: 1,
        }),
        ..EndpointGroup::default()
    }]);
    assert_eq!(transport.effective_rate(&Method::GET, &url), Some(50.0));
    transport.send(get(url.clone())).await.unwrap();
    assert_eq!(mock.count(), 4);
    // Three halvings (6.25/s), then one success (+2.5/s).
    let slowed = transport.effective_rate(&Method::GET, &url).unwrap();
    assert!((slowed - 8.75).abs() < 1e-9, "{slowed}");
    // At 50/s the retry would follow within 20 ms; slowed to 6.25/s, 160 ms.
    assert!(
        mock.gap(2, 3) >= Duration::from_millis(150),
        "{:?}",
        mock.gap(2, 3)
    );

    let deadline = Instant::now() + Duration::from_secs(20);
    let mut successes = 0;
    while transport.effective_rate(&Method::GET, &url) < Some(50.0) {
        assert!(Instant::now() < deadline, "no recovery by the deadline");
        transport.send(get(url.clone())).await.unwrap();
        successes += 1;
        let rate = transport.effective_rate(&Method::GET, &url).unwrap();
        assert!(rate <= 50.0);
    }
    // Gradual: 8.75 back to 50 in steps of 2.5.
    assert_eq!(successes, 17);
    // Back at the configured rate, requests follow one another again at 20 ms.
    let started = Instant::now();
    for _ in 0..5 {
        transport.send(get(url.clone())).await.unwrap();
    }
    assert!(
        started.elapsed() < Duration::from_millis(400),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn cdp_error_codes_are_retried_after_the_delay() {
    let mock = Mock::start(|_, n| match n {
        0 => Answer::status(606).body("rate limit reached"),
        _ => Answer::ok(),
    })
    .await;
    let group = EndpointGroup::from_cdp_rate_limit_config(
        vec!["POST /import".into()],
        &serde_json::json!({
            "type": "RPS",
            "rateLimitParameters": {
                "ratePerSecond": 100,
                "errorCodes": [606, 607],
                "delayAfterRateLimitInSecond": 1
            }
        }),
    )
    .unwrap();
    let transport = transport(vec![group]);
    let url = mock.url("/import");
    transport
        .send(post(url.clone(), "[]", Some("batch-1")))
        .await
        .unwrap();
    assert_eq!(mock.count(), 2);
    assert!(
        mock.gap(0, 1) >= Duration::from_secs(1),
        "{:?}",
        mock.gap(0, 1)
    );
    // 606 is the API's "too many requests": the group slowed down.
    let rate = transport.effective_rate(&Method::POST, &url).unwrap();
    assert!(rate < 100.0, "{rate}");
    // The mapping is for POST /import only.
    assert_eq!(transport.effective_rate(&Method::GET, &url), None);
}

#[tokio::test]
async fn cdp_error_codes_exhaust_into_a_transient_failure() {
    let mock = Mock::start(|_, _| Answer::status(607)).await;
    let mut group = EndpointGroup::from_cdp_rate_limit_config(
        vec!["/".into()],
        &serde_json::json!({"type": "RPS", "rateLimitParameters": {
            "ratePerSecond": 100, "errorCodes": [607], "delayAfterRateLimitInSecond": 0}}),
    )
    .unwrap();
    group.max_tries = Some(2);
    let failure = transport(vec![group])
        .send(get(mock.url("/contacts")))
        .await
        .unwrap_err();
    assert_eq!(failure.status, Some(607));
    assert_eq!(mock.count(), 2);
    assert!(
        failure.message.contains("gave up after 2 tries"),
        "{}",
        failure.message
    );
}

#[tokio::test]
async fn patterns_pick_the_right_group() {
    // 418 is retried in the "members" group only.
    let mock = Mock::start(|_, n| match n {
        0 => Answer::status(418).body("teapot"),
        _ => Answer::ok(),
    })
    .await;
    let groups: TransportConfig = serde_yaml_ng::from_str(
        r#"
endpoint_groups:
  - name: members
    patterns: ["/3.0/lists/members/", "GET /3.0/members"]
    retry: {"418": {strategy: constant, delay_ms: 10}}
  - name: lists
    patterns: ["/3.0/lists/"]
    rate_limit: {requests_per_second: 1000, burst: 10}
  - name: this host
    patterns: ["127.0.0.1/"]
"#,
    )
    .unwrap();
    let transport = Transport::with_config(&groups).unwrap();
    let name =
        |method: Method, path: &str| transport.group_name(&method, &mock.url(path)).to_string();
    assert_eq!(name(Method::GET, "/3.0/lists/members/7"), "members");
    assert_eq!(name(Method::GET, "/3.0/members"), "members");
    assert_eq!(name(Method::DELETE, "/3.0/members/7"), "this host");
    assert_eq!(name(Method::GET, "/3.0/lists/7"), "lists");
    assert_eq!(name(Method::GET, "/3.0/listsX"), "this host");
    let elsewhere = reqwest::Url::parse("http://localhost:1/3.0/other").unwrap();
    assert_eq!(transport.group_name(&Method::GET, &elsewhere), "default");

    transport
        .send(get(mock.url("/3.0/lists/members/7")))
        .await
        .unwrap();
    let failure = transport
        .send(get(mock.url("/3.0/lists/7")))
        .await
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Api);
    assert!(
        failure.message.contains("418 I'm a teapot: teapot"),
        "{}",
        failure.message
    );
    let per_path: HashMap<String, usize> =
        mock.arrivals()
            .into_iter()
            .fold(HashMap::new(), |mut m, a| {
                *m.entry(a.path).or_default() += 1;
                m
            });
    assert_eq!(per_path["/3.0/lists/members/7"], 2);
    assert_eq!(per_path["/3.0/lists/7"], 1);
}

#[tokio::test]
async fn a_request_timeout_is_transient() {
    let mock = Mock::start(|_, _| Answer::ok().delay(Duration::from_secs(5))).await;
    let started = Instant::now();
    let failure = transport(vec![fast(|g| {
        g.timeout_secs = Some(0.2);
        g.max_tries = Some(2);
    })])
    .send(get(mock.url("/slow")))
    .await
    .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Transient);
    assert_eq!(failure.status, None);
    let m = &failure.message;
    assert!(m.contains("gave up after 2 tries"), "{m}");
    assert!(m.contains("timed out after 200 ms"), "{m}");
    assert_eq!(mock.count(), 2);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn a_connect_error_is_retried_then_transient() {
    // A port nobody listens on any more.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let url = reqwest::Url::parse(&format!("http://{addr}/items?key=SECRET")).unwrap();
    let failure = transport(vec![fast(|g| g.max_tries = Some(3))])
        .send(get(url))
        .await
        .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Transient);
    let m = &failure.message;
    assert!(m.contains("gave up after 3 tries"), "{m}");
    assert!(m.starts_with(&format!("GET http://{addr}/items: ")), "{m}");
    assert!(!m.contains("SECRET"), "{m}");
}

#[tokio::test]
async fn an_invalid_config_is_a_configuration_failure() {
    let failure = Transport::with_config(&TransportConfig {
        endpoint_groups: vec![EndpointGroup {
            patterns: vec!["/3.0/lists/".into()],
            rate_limit: Some(RateLimit {
                requests_per_second: 0.0,
                burst: 1,
            }),
            ..EndpointGroup::default()
        }],
    })
    .unwrap_err();
    assert_eq!(failure.kind, FailureKind::Configuration);
    assert_eq!(
        failure.message,
        "endpoint_groups[0] (/3.0/lists/): rate_limit.requests_per_second: 0 is not a positive number"
    );
}
