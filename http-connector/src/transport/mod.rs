//! Sending one request: the endpoint group's rate limit, concurrency and retry policy, a
//! request timeout, and the kind of failure when it does not succeed.
//!
//! A request belongs to the first [`EndpointGroup`] one of whose patterns matches its
//! method, host and path, else to the default group. Before each try it waits for a place
//! (`max_concurrent`) and a turn (the group's GCRA rate limit, `min_interval_ms`, and the
//! adaptive slow-down). Then:
//!
//! * 2xx: the response.
//! * 401, 403: a [`FailureKind::Configuration`] failure at once.
//! * a status or network failure with a retry strategy (declared, else the default: 429 →
//!   `Retry-After`, or exponential when absent; 5xx, connect errors and timeouts →
//!   exponential, 100 ms doubling to 10 s with jitter): retried, at most `max_tries` tries
//!   (5) in all, when the request is idempotent (GET, HEAD, PUT, DELETE, OPTIONS, TRACE, or
//!   any with an `Idempotency-Key` header) and its body can be cloned; when retries run out
//!   or cannot be made, a [`FailureKind::Transient`] failure (an API still answering 4xx
//!   declared retriable: [`FailureKind::Api`]). A `Retry-After` longer than
//!   `max_retry_after_secs` (300) fails at once instead of sleeping.
//! * any other status: a [`FailureKind::Api`] failure with the first 500 characters of the
//!   body.
//!
//! A 429 (or one of the group's `rate_limit_codes`) also slows the group down: its
//! effective rate halves (down to 1/64 of the configured one), and each later success adds
//! 5 % of the configured rate back. Messages name the method and the URL without its query,
//! fragment and userinfo; headers are never printed.

mod group;
pub mod types;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBackoff, ExponentialBuilder};
use reqwest::header::{HeaderMap, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use tokio::time::Instant;

use group::Group;
pub use group::{DECREASE_FACTOR, INCREASE_STEP, MIN_FACTOR};
use types::RetryOn;
pub use types::{
    ConfigError, EndpointGroup, RateLimit, RetryStrategy, TransportConfig, DEFAULT_BASE_MS,
    DEFAULT_CAP_MS, DEFAULT_MAX_RETRY_AFTER_SECS, DEFAULT_MAX_TRIES, DEFAULT_TIMEOUT_SECS,
};

/// Why a request (and so the run) failed; it decides whether cde may retry the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// Credentials, permissions, a wrong path or a bad spec: retrying cannot help.
    Configuration,
    /// The API could not be reached or kept failing after every retry.
    Transient,
    /// The API refused the request with an error of its own.
    Api,
}

#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct Failure {
    pub kind: FailureKind,
    pub status: Option<u16>,
    pub message: String,
}

impl Failure {
    pub fn configuration(message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Configuration,
            status: None,
            message: message.into(),
        }
    }

    pub fn transient(message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Transient,
            status: None,
            message: message.into(),
        }
    }

    pub fn api(status: u16, message: impl Into<String>) -> Failure {
        Failure {
            kind: FailureKind::Api,
            status: Some(status),
            message: message.into(),
        }
    }

    fn with_status(mut self, status: Option<u16>) -> Failure {
        self.status = status;
        self
    }
}

impl From<ConfigError> for Failure {
    fn from(e: ConfigError) -> Failure {
        Failure::configuration(e.0)
    }
}

/// Sends requests; see the module documentation. Clones share their groups (rate limits,
/// concurrency, slow-down) and connection pool.
#[derive(Clone)]
pub struct Transport {
    client: reqwest::Client,
    groups: Arc<[Group]>,
    default_group: Arc<Group>,
}

impl std::fmt::Debug for Transport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Transport")
            .field("groups", &self.groups)
            .finish_non_exhaustive()
    }
}

/// How long one request may take unless a group says otherwise.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// At most this many characters of an error answer's body go into a failure's message.
pub const BODY_EXCERPT_CHARS: usize = 500;

impl Transport {
    /// The defaults: no endpoint group, no rate limit, a 30 s timeout, up to 5 tries.
    pub fn new() -> Result<Self, Failure> {
        Self::with_config(&TransportConfig::default())
    }

    /// `config`'s endpoint groups (validated here) over a client of its own.
    pub fn with_config(config: &TransportConfig) -> Result<Self, Failure> {
        let client = reqwest::Client::builder()
            .build()
            .map_err(|e| Failure::configuration(format!("building the HTTP client: {e}")))?;
        Self::with_client(client, config)
    }

    /// `config`'s endpoint groups over `client` (its default headers, TLS, proxy). Each
    /// try's timeout is the group's unless the request sets one; a timeout set on the
    /// client applies as well.
    pub fn with_client(client: reqwest::Client, config: &TransportConfig) -> Result<Self, Failure> {
        config.validate()?;
        Ok(Self {
            client,
            groups: config
                .endpoint_groups
                .iter()
                .map(Group::from_config)
                .collect(),
            default_group: Arc::new(Group::default_group()),
        })
    }

    /// The client requests go through, to build them with (`client().get(url).build()`).
    pub fn client(&self) -> &reqwest::Client {
        &self.client
    }

    fn group(&self, method: &Method, url: &reqwest::Url) -> &Group {
        self.groups
            .iter()
            .find(|g| g.matches(method.as_str(), url))
            .unwrap_or(&self.default_group)
    }

    /// The name of the group a request with this method and URL belongs to (its `name`,
    /// else its first pattern); `"default"` when it matches none.
    pub fn group_name(&self, method: &Method, url: &reqwest::Url) -> &str {
        &self.group(method, url).label
    }

    /// The rate (requests a second) that group holds itself to now: its configured rate,
    /// or less while slowed down by 429s; `None` when it has no rate limit.
    pub fn effective_rate(&self, method: &Method, url: &reqwest::Url) -> Option<f64> {
        self.group(method, url).effective_rate()
    }

    /// Sends `request`; a 2xx answer is `Ok`, anything else a [`Failure`] naming the
    /// method, the URL and the status or cause.
    pub async fn send(&self, mut request: reqwest::Request) -> Result<reqwest::Response, Failure> {
        let group = self.group(request.method(), request.url());
        let what = format!("{} {}", request.method(), redacted(request.url()));
        let retriable = is_idempotent(request.method(), request.headers());
        let timeout = *request.timeout_mut().get_or_insert(group.timeout);
        let mut backoffs: HashMap<RetryOn, ExponentialBackoff> = HashMap::new();
        let mut tries = 0u32;
        loop {
            tries += 1;
            let spare = if tries < group.max_tries && retriable {
                request.try_clone()
            } else {
                None
            };
            let permit = group.admit().await;
            let sent_at = Instant::now();
            let outcome = self.client.execute(request).await;
            drop(permit);

            // What went wrong, how to retry it, and the failure if it is not retried.
            let (on, last, failure, retry_after) = match outcome {
                Ok(response) if response.status().is_success() => {
                    group.on_success(sent_at);
                    return Ok(response);
                }
                Ok(response) => {
                    let status = response.status();
                    let code = status.as_u16();
                    if group.is_rate_limited(code) {
                        group.on_rate_limited(sent_at, code);
                    }
                    let retry_after = retry_after(response.headers());
                    let strategy = group.strategy(RetryOn::Status(code));
                    if matches!(code, 401 | 403) || strategy.is_none() {
                        let body = excerpt(response).await;
                        let message = format!("{what}: {}{body}", status_text(status));
                        return Err(match code {
                            401 | 403 => Failure::configuration(message),
                            429 | 500..=599 => Failure::transient(message),
                            _ => Failure::api(code, message),
                        }
                        .with_status(Some(code)));
                    }
                    let body = excerpt(response).await;
                    let last = format!("{}{body}", status_text(status));
                    let kind = if (400..500).contains(&code) && code != 429 && code != 408 {
                        FailureKind::Api
                    } else {
                        FailureKind::Transient
                    };
                    let failure = Failure {
                        kind,
                        status: Some(code),
                        message: String::new(),
                    };
                    (RetryOn::Status(code), last, failure, retry_after)
                }
                Err(e) if e.is_builder() => {
                    return Err(Failure::configuration(format!(
                        "{what}: {}",
                        cause(e.without_url())
                    )))
                }
                Err(e) => {
                    let last = if e.is_timeout() {
                        format!("timed out after {}", seconds(timeout))
                    } else {
                        cause(e.without_url())
                    };
                    if group.strategy(RetryOn::Network).is_none() {
                        return Err(Failure::transient(format!("{what}: {last}")));
                    }
                    (RetryOn::Network, last, Failure::transient(""), None)
                }
            };
            let strategy = group.strategy(on).expect("checked above");
            let fail = |message: String| Failure {
                message,
                ..failure.clone()
            };

            let Some(next) = spare else {
                let message = if tries >= group.max_tries {
                    format!(
                        "{what}: gave up after {tries} {}; the last: {last}",
                        if tries == 1 { "try" } else { "tries" }
                    )
                } else if !retriable {
                    format!(
                        "{what}: {last} (sent once: a {} without an Idempotency-Key header is not retried)",
                        what.split(' ').next().unwrap_or_default()
                    )
                } else {
                    format!("{what}: {last} (sent once: its body cannot be sent again)")
                };
                return Err(fail(message));
            };
            let delay = match strategy {
                RetryStrategy::RetryAfter => match retry_after {
                    Some(delay) if delay > group.max_retry_after => {
                        return Err(fail(format!(
                            "{what}: {last}; the API asks to wait {} (Retry-After), more than the {} this transport waits",
                            seconds(delay),
                            seconds(group.max_retry_after)
                        )));
                    }
                    Some(delay) => delay,
                    None => next_backoff(&mut backoffs, on, RetryStrategy::DEFAULT_EXPONENTIAL),
                },
                RetryStrategy::Exponential { .. } => next_backoff(&mut backoffs, on, strategy),
                RetryStrategy::Constant { delay_ms } => Duration::from_millis(delay_ms),
                RetryStrategy::None => unreachable!("filtered by Group::strategy"),
            };
            tracing::warn!(
                group = group.label.as_str(),
                try_ = tries,
                max_tries = group.max_tries,
                delay_ms = delay.as_millis() as u64,
                "{what}: {last}; retrying in {} (try {} of {})",
                seconds(delay),
                tries + 1,
                group.max_tries
            );
            tokio::time::sleep(delay).await;
            request = next;
        }
    }
}

/// The next delay of `strategy` (exponential) for failures of kind `on` in this request.
fn next_backoff(
    backoffs: &mut HashMap<RetryOn, ExponentialBackoff>,
    on: RetryOn,
    strategy: RetryStrategy,
) -> Duration {
    let RetryStrategy::Exponential {
        base_ms,
        cap_ms,
        jitter,
    } = strategy
    else {
        unreachable!("an exponential strategy");
    };
    let cap = Duration::from_millis(cap_ms);
    backoffs
        .entry(on)
        .or_insert_with(|| {
            let builder = ExponentialBuilder::new()
                .with_min_delay(Duration::from_millis(base_ms))
                .with_max_delay(cap)
                .with_factor(2.0)
                .without_max_times();
            if jitter {
                builder.with_jitter().build()
            } else {
                builder.build()
            }
        })
        .next()
        .unwrap_or(cap)
        .min(cap)
}

/// Whether a request may be sent twice: its method is idempotent, or it carries an
/// `Idempotency-Key` header.
pub fn is_idempotent(method: &Method, headers: &HeaderMap) -> bool {
    matches!(
        *method,
        Method::GET | Method::HEAD | Method::PUT | Method::DELETE | Method::OPTIONS | Method::TRACE
    ) || headers.contains_key("idempotency-key")
}

/// The delay a `Retry-After` header asks for: delta seconds, or an HTTP date (a date in
/// the past is no delay). `None` when absent or unreadable.
pub fn retry_after(headers: &HeaderMap) -> Option<Duration> {
    let value = headers.get(RETRY_AFTER)?.to_str().ok()?.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// `url` without its userinfo, query and fragment: what a message may show.
pub fn redacted(url: &reqwest::Url) -> String {
    let mut url = url.clone();
    let _ = url.set_username("");
    let _ = url.set_password(None);
    url.set_query(None);
    url.set_fragment(None);
    url.to_string()
}

fn status_text(status: StatusCode) -> String {
    match status.canonical_reason() {
        Some(reason) => format!("{} {reason}", status.as_u16()),
        None => status.as_u16().to_string(),
    }
}

/// ": " and the first 500 characters of the body, or nothing when it is empty.
async fn excerpt(response: reqwest::Response) -> String {
    let body = response.text().await.unwrap_or_default();
    let body = body.trim();
    if body.is_empty() {
        return String::new();
    }
    let mut text: String = body.chars().take(BODY_EXCERPT_CHARS).collect();
    if body.chars().nth(BODY_EXCERPT_CHARS).is_some() {
        text.push('…');
    }
    format!(": {text}")
}

/// An error and its sources, as one line.
fn cause(e: reqwest::Error) -> String {
    let mut text = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        let part = s.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = s.source();
    }
    text
}

fn seconds(d: Duration) -> String {
    if d >= Duration::from_secs(1) && d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else if d >= Duration::from_secs(1) {
        format!("{:.1} s", d.as_secs_f64())
    } else {
        format!("{} ms", d.as_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_in_messages_lose_userinfo_query_and_fragment() {
        let url =
            reqwest::Url::parse("https://user:pw@api.test:8443/v1/items?api_key=SECRET#x").unwrap();
        assert_eq!(redacted(&url), "https://api.test:8443/v1/items");
    }

    #[test]
    fn retry_after_reads_seconds_and_dates() {
        let mut headers = HeaderMap::new();
        headers.insert(RETRY_AFTER, "7".parse().unwrap());
        assert_eq!(retry_after(&headers), Some(Duration::from_secs(7)));
        let at = SystemTime::now() + Duration::from_secs(120);
        headers.insert(RETRY_AFTER, httpdate::fmt_http_date(at).parse().unwrap());
        let d = retry_after(&headers).unwrap();
        assert!(
            d > Duration::from_secs(110) && d <= Duration::from_secs(120),
            "{d:?}"
        );
        headers.insert(
            RETRY_AFTER,
            "Sun, 06 Nov 1994 08:49:37 GMT".parse().unwrap(),
        );
        assert_eq!(retry_after(&headers), Some(Duration::ZERO));
        headers.insert(RETRY_AFTER, "soon".parse().unwrap());
        assert_eq!(retry_after(&headers), None);
    }

    #[test]
    fn exponential_delays_double_up_to_the_cap() {
        let mut backoffs = HashMap::new();
        let strategy = RetryStrategy::Exponential {
            base_ms: 100,
            cap_ms: 350,
            jitter: false,
        };
        let on = RetryOn::Status(503);
        let delays: Vec<_> = (0..4)
            .map(|_| next_backoff(&mut backoffs, on, strategy).as_millis())
            .collect();
        assert_eq!(delays, vec![100, 200, 350, 350]);
        let mut backoffs = HashMap::new();
        let jittered = RetryStrategy::Exponential {
            base_ms: 100,
            cap_ms: 150,
            jitter: true,
        };
        for _ in 0..20 {
            let d = next_backoff(&mut backoffs, on, jittered);
            assert!(d >= Duration::from_millis(100) && d <= Duration::from_millis(150));
        }
    }

    #[test]
    fn idempotency_follows_the_method_or_the_key() {
        let none = HeaderMap::new();
        assert!(is_idempotent(&Method::GET, &none));
        assert!(is_idempotent(&Method::DELETE, &none));
        assert!(!is_idempotent(&Method::POST, &none));
        assert!(!is_idempotent(&Method::PATCH, &none));
        let mut keyed = HeaderMap::new();
        keyed.insert("Idempotency-Key", "k1".parse().unwrap());
        assert!(is_idempotent(&Method::POST, &keyed));
    }
}
