//! The transport's configuration as a connector manifest declares it under
//! `http.endpoint_groups`, its validation, and the mappings from the spec formats that
//! say the same thing in their own words (the CDP hub's `rateLimitConfig`, AEP's
//! `delayRequestMillis`).
//!
//! ```yaml
//! endpoint_groups:
//!   - patterns: ["/3.0/lists/"]          # [METHOD ][host]/path; first matching group wins
//!     rate_limit: {requests_per_second: 2.5, burst: 10}
//!     max_concurrent: 4
//!     timeout_secs: 30
//!     max_tries: 5
//!     retry:                               # status codes (space separated) -> strategy
//!       "429": {strategy: retry_after}
//!       "500 503": {strategy: exponential, base_ms: 100, cap_ms: 10000, jitter: true}
//!       "502": {strategy: constant, delay_ms: 500}
//! ```

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// How long one request may take unless a group says otherwise, in seconds.
pub const DEFAULT_TIMEOUT_SECS: f64 = 30.0;
/// How many times a request is sent at most (the first try included) unless a group says
/// otherwise.
pub const DEFAULT_MAX_TRIES: u32 = 5;
/// The first delay of the default exponential backoff.
pub const DEFAULT_BASE_MS: u64 = 100;
/// The longest delay of the default exponential backoff.
pub const DEFAULT_CAP_MS: u64 = 10_000;
/// A `Retry-After` asking for longer than this fails the request instead of sleeping.
pub const DEFAULT_MAX_RETRY_AFTER_SECS: u64 = 300;

/// The key of [`EndpointGroup::retry`] that stands for network failures (connect errors,
/// timeouts, connections closed mid-answer) rather than a status code.
pub const NETWORK_KEY: &str = "network";

/// The transport's part of a connector manifest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct TransportConfig {
    /// Groups of endpoints sharing a rate limit and a retry policy. A request belongs to
    /// the first group one of whose patterns matches it; a request matching none belongs
    /// to the default group (no rate limit, the default retry policy).
    #[serde(default)]
    pub endpoint_groups: Vec<EndpointGroup>,
}

/// A group of endpoints: every request matching one of `patterns` shares the group's rate
/// limit and concurrency, and follows its timeout and retry policy.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct EndpointGroup {
    /// A name for logs and messages; the first pattern when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `[METHOD ][host]/path` patterns, as Go's `http.ServeMux` writes them without
    /// wildcards: `/3.0/lists/`, `GET /api/users/`, `api.example.com/v1/items`. A path
    /// ending in `/` matches every path below it; one without matches itself and the
    /// paths below it (`/v1/items` matches `/v1/items` and `/v1/items/7`, not
    /// `/v1/itemsX`). `/` matches everything.
    pub patterns: Vec<String>,
    /// Requests per second with a burst (GCRA); no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// A minimum interval between two requests of the group, in milliseconds (AEP's
    /// `delayRequestMillis`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_interval_ms: Option<u64>,
    /// How many requests of the group may be in flight at once; no limit when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_concurrent: Option<u32>,
    /// How long one try may take, in seconds (fractions allowed); 30 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    /// How many times a request is sent at most, the first try included; 5 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_tries: Option<u32>,
    /// Status codes (space separated, or `network`) -> strategy. Declared keys take
    /// precedence over the defaults, which still apply to what is not declared: 429 ->
    /// `retry_after`, 5xx and network failures -> `exponential`. `{strategy: none}` turns
    /// one off.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub retry: BTreeMap<String, RetryStrategy>,
    /// Status codes other than 429 by which the API says "too many requests" (the CDP
    /// hub's `errorCodes`); they slow the group down as a 429 does.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rate_limit_codes: Vec<u16>,
    /// A `Retry-After` longer than this many seconds fails the request instead of being
    /// waited for; 300 when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_retry_after_secs: Option<u64>,
    /// Whether 429s (and `rate_limit_codes`) slow the group below its rate limit, which
    /// then recovers step by step after successes; true when absent. Only a group with a
    /// `rate_limit` or `min_interval_ms` adapts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub adaptive: Option<bool>,
}

/// A rate limit: on average `requests_per_second`, with up to `burst` requests at once.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields, rename_all = "snake_case")]
pub struct RateLimit {
    pub requests_per_second: f64,
    /// 1 when absent: requests evenly spaced.
    #[serde(default = "one")]
    pub burst: u32,
}

fn one() -> u32 {
    1
}

/// How a failed try is retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(tag = "strategy", rename_all = "snake_case", deny_unknown_fields)]
pub enum RetryStrategy {
    /// After the answer's `Retry-After` (seconds or an HTTP date); the default exponential
    /// backoff when the answer has none.
    RetryAfter,
    /// After `base_ms`, doubling each time up to `cap_ms`, each delay plus a random part
    /// of itself when `jitter` (never past `cap_ms`).
    Exponential {
        #[serde(default = "default_base_ms")]
        base_ms: u64,
        #[serde(default = "default_cap_ms")]
        cap_ms: u64,
        #[serde(default = "yes")]
        jitter: bool,
    },
    /// After `delay_ms`, every time.
    Constant { delay_ms: u64 },
    /// Not retried.
    None,
}

fn default_base_ms() -> u64 {
    DEFAULT_BASE_MS
}
fn default_cap_ms() -> u64 {
    DEFAULT_CAP_MS
}
fn yes() -> bool {
    true
}

impl RetryStrategy {
    /// 100 ms, doubling up to 10 s, with jitter.
    pub const DEFAULT_EXPONENTIAL: RetryStrategy = RetryStrategy::Exponential {
        base_ms: DEFAULT_BASE_MS,
        cap_ms: DEFAULT_CAP_MS,
        jitter: true,
    };
}

/// A configuration the transport cannot work with; the message names the group and the
/// field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// What a retry key stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum RetryOn {
    Status(u16),
    Network,
}

/// One pattern of a group, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Pattern {
    pub method: Option<String>,
    /// Lower case, with the port when the pattern has one.
    pub host: Option<String>,
    pub path: String,
}

impl Pattern {
    pub(crate) fn parse(text: &str) -> Result<Pattern, String> {
        let text = text.trim();
        if text.is_empty() {
            return Err("a pattern is empty".into());
        }
        let (method, rest) = match text.split_once(' ') {
            Some((method, rest)) => {
                if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                    return Err(format!(
                        "{text:?}: {method:?} is not a method (upper case letters, e.g. GET)"
                    ));
                }
                (Some(method.to_string()), rest.trim_start())
            }
            None => (None, text),
        };
        let Some(slash) = rest.find('/') else {
            return Err(format!(
                "{text:?}: has no path (it must contain one starting with /)"
            ));
        };
        let (host, path) = rest.split_at(slash);
        if let Some(c) = rest
            .chars()
            .find(|c| c.is_whitespace() || matches!(c, '?' | '#'))
        {
            return Err(format!(
                "{text:?}: {c:?} is not allowed (a pattern is [METHOD ][host]/path, without a query)"
            ));
        }
        if path.contains(['{', '}', '*']) {
            return Err(format!(
                "{text:?}: wildcards ({{name}}, *) are not supported"
            ));
        }
        if !host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '[' | ']'))
        {
            return Err(format!("{text:?}: {host:?} is not a host name"));
        }
        Ok(Pattern {
            method,
            host: (!host.is_empty()).then(|| host.to_ascii_lowercase()),
            path: path.to_string(),
        })
    }

    pub(crate) fn matches(&self, method: &str, url: &reqwest::Url) -> bool {
        if self.method.as_deref().is_some_and(|m| m != method) {
            return false;
        }
        if let Some(host) = &self.host {
            let Some(url_host) = url.host_str() else {
                return false;
            };
            let with_port = match url.port() {
                Some(port) => format!("{url_host}:{port}"),
                None => url_host.to_string(),
            };
            if !host.eq_ignore_ascii_case(url_host) && !host.eq_ignore_ascii_case(&with_port) {
                return false;
            }
        }
        let path = url.path();
        if self.path.ends_with('/') {
            path.starts_with(&self.path)
        } else {
            path.strip_prefix(&self.path)
                .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
        }
    }
}

/// Parses one key of [`EndpointGroup::retry`]: status codes and `network`, space
/// separated.
pub(crate) fn parse_retry_key(key: &str) -> Result<Vec<RetryOn>, String> {
    let mut on = Vec::new();
    for token in key.split_whitespace() {
        if token == NETWORK_KEY {
            on.push(RetryOn::Network);
            continue;
        }
        match token.parse::<u16>() {
            Ok(code) if token.len() == 3 && (100..=999).contains(&code) => {
                on.push(RetryOn::Status(code))
            }
            _ => {
                return Err(format!(
                    "{key:?}: {token:?} is not a status code (three digits, 100 to 999) or {NETWORK_KEY:?}"
                ))
            }
        }
    }
    if on.is_empty() {
        return Err(format!("{key:?}: names no status code"));
    }
    Ok(on)
}

impl EndpointGroup {
    /// The group's name in logs and messages.
    pub fn label(&self) -> String {
        match (&self.name, self.patterns.first()) {
            (Some(name), _) => name.clone(),
            (None, Some(pattern)) => pattern.clone(),
            (None, None) => "(no pattern)".into(),
        }
    }

    /// Checks everything [`crate::transport::Transport::with_config`] relies on; `index`
    /// is the group's place in `endpoint_groups`, for the message.
    pub fn validate(&self, index: usize) -> Result<(), ConfigError> {
        let at = |field: &str, problem: String| {
            ConfigError(format!(
                "endpoint_groups[{index}] ({}): {field}: {problem}",
                self.label()
            ))
        };
        if self.patterns.is_empty() {
            return Err(at(
                "patterns",
                "none given (use \"/\" for every path)".into(),
            ));
        }
        for pattern in &self.patterns {
            Pattern::parse(pattern).map_err(|e| at("patterns", e))?;
        }
        if let Some(limit) = &self.rate_limit {
            if !(limit.requests_per_second.is_finite() && limit.requests_per_second > 0.0) {
                return Err(at(
                    "rate_limit.requests_per_second",
                    format!("{} is not a positive number", limit.requests_per_second),
                ));
            }
            if limit.requests_per_second > 1e9 {
                return Err(at(
                    "rate_limit.requests_per_second",
                    format!("{} is more than 10^9", limit.requests_per_second),
                ));
            }
            if limit.burst == 0 {
                return Err(at("rate_limit.burst", "must be at least 1".into()));
            }
        }
        if self.min_interval_ms == Some(0) {
            return Err(at("min_interval_ms", "must be at least 1".into()));
        }
        if self.max_concurrent == Some(0) {
            return Err(at("max_concurrent", "must be at least 1".into()));
        }
        if let Some(t) = self.timeout_secs {
            if !(t.is_finite() && t > 0.0 && t <= 86_400.0) {
                return Err(at(
                    "timeout_secs",
                    format!("{t} is not a positive number of seconds (at most a day)"),
                ));
            }
        }
        if self.max_tries == Some(0) {
            return Err(at("max_tries", "must be at least 1 (the first try)".into()));
        }
        let mut seen = BTreeMap::new();
        for (key, strategy) in &self.retry {
            for on in parse_retry_key(key).map_err(|e| at("retry", e))? {
                if let Some(other) = seen.insert(on, key) {
                    return Err(at(
                        "retry",
                        format!("{on} appears in both {other:?} and {key:?}"),
                    ));
                }
            }
            if let RetryStrategy::Exponential {
                base_ms, cap_ms, ..
            } = strategy
            {
                if *base_ms == 0 {
                    return Err(at(
                        &format!("retry.{key:?}.base_ms"),
                        "must be at least 1".into(),
                    ));
                }
                if cap_ms < base_ms {
                    return Err(at(
                        &format!("retry.{key:?}.cap_ms"),
                        format!("{cap_ms} is less than base_ms ({base_ms})"),
                    ));
                }
            }
        }
        for code in &self.rate_limit_codes {
            if !(100..=999).contains(code) {
                return Err(at(
                    "rate_limit_codes",
                    format!("{code} is not a status code (100 to 999)"),
                ));
            }
        }
        Ok(())
    }

    /// A group from the CDP hub's `x-cdp-operation-settings.rateLimitConfig`:
    /// `{"type": "RPS", "rateLimitParameters": {"ratePerSecond": 100, "errorCodes": [606,
    /// 607], "delayAfterRateLimitInSecond": 300}}` is at most 100 requests a second (evenly
    /// spaced: burst 1), and 606 and 607 mean "too many requests", retried after 300 s
    /// (after the `Retry-After` or the default backoff when there is no delay). `patterns`
    /// are the operation's, e.g. `["POST /import"]`.
    pub fn from_cdp_rate_limit_config(
        patterns: Vec<String>,
        config: &serde_json::Value,
    ) -> Result<EndpointGroup, ConfigError> {
        let err = |problem: String| ConfigError(format!("rateLimitConfig: {problem}"));
        let object = config
            .as_object()
            .ok_or_else(|| err(format!("{config} is not an object")))?;
        for key in object.keys() {
            if !matches!(key.as_str(), "type" | "rateLimitParameters") {
                return Err(err(format!("unknown field {key:?}")));
            }
        }
        match object.get("type").and_then(|t| t.as_str()) {
            Some(t) if t.eq_ignore_ascii_case("RPS") => {}
            Some(t) => return Err(err(format!("type: {t:?} is not supported (only \"RPS\")"))),
            None => return Err(err("type: missing or not a string".into())),
        }
        let parameters = object
            .get("rateLimitParameters")
            .and_then(|p| p.as_object())
            .ok_or_else(|| err("rateLimitParameters: missing or not an object".into()))?;
        for key in parameters.keys() {
            if !matches!(
                key.as_str(),
                "ratePerSecond" | "errorCodes" | "delayAfterRateLimitInSecond"
            ) {
                return Err(err(format!("rateLimitParameters: unknown field {key:?}")));
            }
        }
        let rate = parameters
            .get("ratePerSecond")
            .and_then(|r| r.as_f64())
            .ok_or_else(|| {
                err("rateLimitParameters.ratePerSecond: missing or not a number".into())
            })?;
        if !(rate.is_finite() && rate > 0.0 && rate <= 1e9) {
            return Err(err(format!(
                "rateLimitParameters.ratePerSecond: {rate} is not a positive number (at most 10^9)"
            )));
        }
        let mut codes = Vec::new();
        if let Some(list) = parameters.get("errorCodes").filter(|v| !v.is_null()) {
            let list = list.as_array().ok_or_else(|| {
                err("rateLimitParameters.errorCodes: not an array of status codes".into())
            })?;
            for code in list {
                let code = code
                    .as_u64()
                    .filter(|c| (100..=999).contains(c))
                    .ok_or_else(|| {
                        err(format!(
                            "rateLimitParameters.errorCodes: {code} is not a status code (100 to 999)"
                        ))
                    })?;
                codes.push(code as u16);
            }
        }
        let delay = match parameters
            .get("delayAfterRateLimitInSecond")
            .filter(|v| !v.is_null())
        {
            None => None,
            Some(v) => Some(v.as_f64().filter(|d| d.is_finite() && *d >= 0.0).ok_or_else(|| {
                err(format!(
                    "rateLimitParameters.delayAfterRateLimitInSecond: {v} is not a number of seconds"
                ))
            })?),
        };
        let mut retry = BTreeMap::new();
        if !codes.is_empty() {
            let key = codes
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(" ");
            let strategy = match delay {
                Some(secs) => RetryStrategy::Constant {
                    delay_ms: (secs * 1000.0).round() as u64,
                },
                None => RetryStrategy::RetryAfter,
            };
            retry.insert(key, strategy);
        }
        let group = EndpointGroup {
            name: Some(format!("rateLimitConfig of {}", patterns.join(", "))),
            patterns,
            rate_limit: Some(RateLimit {
                requests_per_second: rate,
                burst: 1,
            }),
            retry,
            rate_limit_codes: codes,
            ..EndpointGroup::default()
        };
        group.validate(0).map_err(|e| err(e.0))?;
        Ok(group)
    }

    /// A group from AEP's `delayRequestMillis` (a number, or a string of digits): at least
    /// that many milliseconds between two requests. `patterns` is usually `["/"]`, the
    /// whole connection.
    pub fn from_aep_delay_request_millis(
        patterns: Vec<String>,
        delay: &serde_json::Value,
    ) -> Result<EndpointGroup, ConfigError> {
        let millis = match delay {
            serde_json::Value::Number(n) => n.as_u64(),
            serde_json::Value::String(s) => s.trim().parse::<u64>().ok(),
            _ => None,
        }
        .filter(|m| *m > 0)
        .ok_or_else(|| {
            ConfigError(format!(
                "delayRequestMillis: {delay} is not a positive whole number of milliseconds"
            ))
        })?;
        let group = EndpointGroup {
            name: Some("delayRequestMillis".into()),
            patterns,
            min_interval_ms: Some(millis),
            ..EndpointGroup::default()
        };
        group
            .validate(0)
            .map_err(|e| ConfigError(format!("delayRequestMillis: {}", e.0)))?;
        Ok(group)
    }
}

impl TransportConfig {
    /// Checks every group; the first problem found is the error.
    pub fn validate(&self) -> Result<(), ConfigError> {
        for (index, group) in self.endpoint_groups.iter().enumerate() {
            group.validate(index)?;
        }
        Ok(())
    }
}

impl fmt::Display for RetryOn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RetryOn::Status(code) => write!(f, "status {code}"),
            RetryOn::Network => f.write_str(NETWORK_KEY),
        }
    }
}

impl PartialOrd for RetryOn {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for RetryOn {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        let rank = |on: &RetryOn| match on {
            RetryOn::Status(code) => *code as u32,
            RetryOn::Network => u32::MAX,
        };
        rank(self).cmp(&rank(other))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml(text: &str) -> Result<TransportConfig, String> {
        serde_yaml_ng::from_str::<TransportConfig>(text).map_err(|e| e.to_string())
    }

    #[test]
    fn the_documented_shape_parses_and_validates() {
        let config = yaml(
            r#"
endpoint_groups:
  - patterns: ["/3.0/lists/"]
    rate_limit: {requests_per_second: 2.5, burst: 10}
    max_concurrent: 4
    timeout_secs: 30
    max_tries: 5
    retry:
      "429": {strategy: retry_after}
      "500 503": {strategy: exponential, base_ms: 100, cap_ms: 10000, jitter: true}
      "502": {strategy: constant, delay_ms: 500}
"#,
        )
        .unwrap();
        config.validate().unwrap();
        let group = &config.endpoint_groups[0];
        assert_eq!(
            group.rate_limit,
            Some(RateLimit {
                requests_per_second: 2.5,
                burst: 10
            })
        );
        assert_eq!(
            group.retry["502"],
            RetryStrategy::Constant { delay_ms: 500 }
        );
        assert_eq!(group.retry["429"], RetryStrategy::RetryAfter);
        assert_eq!(group.retry["500 503"], RetryStrategy::DEFAULT_EXPONENTIAL);
    }

    #[test]
    fn unknown_fields_are_refused() {
        let e = yaml("endpoint_groups: [{patterns: [\"/\"], rate: 3}]").unwrap_err();
        assert!(e.contains("unknown field `rate`"), "{e}");
        let e = yaml(
            "endpoint_groups: [{patterns: [\"/\"], retry: {\"429\": {strategy: constant, delay_ms: 1, base_ms: 2}}}]",
        )
        .unwrap_err();
        assert!(e.contains("base_ms"), "{e}");
        let e =
            yaml("endpoint_groups: [{patterns: [\"/\"], retry: {\"429\": {strategy: linear}}}]")
                .unwrap_err();
        assert!(e.contains("linear"), "{e}");
    }

    fn invalid(group: EndpointGroup) -> String {
        TransportConfig {
            endpoint_groups: vec![EndpointGroup::default_for("/ok/"), group],
        }
        .validate()
        .unwrap_err()
        .0
    }

    impl EndpointGroup {
        fn default_for(pattern: &str) -> EndpointGroup {
            EndpointGroup {
                patterns: vec![pattern.into()],
                ..EndpointGroup::default()
            }
        }
    }

    #[test]
    fn a_bad_pattern_names_the_group_and_the_field() {
        for (pattern, expect) in [
            ("lists", "has no path"),
            ("/a/{id}", "wildcards"),
            ("get /a/", "not a method"),
            ("/a?key=1", "'?'"),
            ("", "empty"),
        ] {
            let e = invalid(EndpointGroup {
                name: Some("lists".into()),
                ..EndpointGroup::default_for(pattern)
            });
            assert!(
                e.starts_with("endpoint_groups[1] (lists): patterns: "),
                "{e}"
            );
            assert!(e.contains(expect), "{pattern:?}: {e}");
        }
    }

    #[test]
    fn a_non_positive_rate_names_the_group_and_the_field() {
        for rate in [0.0, -1.0, f64::NAN] {
            let e = invalid(EndpointGroup {
                rate_limit: Some(RateLimit {
                    requests_per_second: rate,
                    burst: 1,
                }),
                ..EndpointGroup::default_for("/3.0/lists/")
            });
            assert!(
                e.starts_with("endpoint_groups[1] (/3.0/lists/): rate_limit.requests_per_second: "),
                "{e}"
            );
        }
        let e = invalid(EndpointGroup {
            rate_limit: Some(RateLimit {
                requests_per_second: 1.0,
                burst: 0,
            }),
            ..EndpointGroup::default_for("/x")
        });
        assert!(e.contains("rate_limit.burst"), "{e}");
    }

    #[test]
    fn an_unknown_status_code_names_the_group_and_the_field() {
        for key in ["5xx", "42", "1000", "500 abc", ""] {
            let e = invalid(EndpointGroup {
                retry: [(key.to_string(), RetryStrategy::RetryAfter)].into(),
                ..EndpointGroup::default_for("/x/")
            });
            assert!(e.starts_with("endpoint_groups[1] (/x/): retry: "), "{e}");
        }
        let e = invalid(EndpointGroup {
            retry: [
                ("500 503".to_string(), RetryStrategy::RetryAfter),
                ("503".to_string(), RetryStrategy::None),
            ]
            .into(),
            ..EndpointGroup::default_for("/x/")
        });
        assert!(e.contains("status 503 appears in both"), "{e}");
    }

    #[test]
    fn other_fields_are_checked() {
        let cases = [
            (
                EndpointGroup {
                    timeout_secs: Some(0.0),
                    ..EndpointGroup::default_for("/x")
                },
                "timeout_secs",
            ),
            (
                EndpointGroup {
                    max_tries: Some(0),
                    ..EndpointGroup::default_for("/x")
                },
                "max_tries",
            ),
            (
                EndpointGroup {
                    max_concurrent: Some(0),
                    ..EndpointGroup::default_for("/x")
                },
                "max_concurrent",
            ),
            (
                EndpointGroup {
                    rate_limit_codes: vec![42],
                    ..EndpointGroup::default_for("/x")
                },
                "rate_limit_codes",
            ),
            (
                EndpointGroup {
                    retry: [(
                        "503".to_string(),
                        RetryStrategy::Exponential {
                            base_ms: 100,
                            cap_ms: 10,
                            jitter: false,
                        },
                    )]
                    .into(),
                    ..EndpointGroup::default_for("/x")
                },
                "cap_ms",
            ),
            (
                EndpointGroup {
                    patterns: vec![],
                    ..EndpointGroup::default()
                },
                "patterns",
            ),
        ];
        for (group, field) in cases {
            let e = invalid(group);
            assert!(
                e.contains(&format!("): {field}")) || e.contains(field),
                "{e}"
            );
            assert!(e.starts_with("endpoint_groups[1] "), "{e}");
        }
    }

    #[test]
    fn patterns_match_methods_hosts_and_paths() {
        let url = |s: &str| reqwest::Url::parse(s).unwrap();
        let p = Pattern::parse("/3.0/lists/").unwrap();
        assert!(p.matches("GET", &url("https://x.test/3.0/lists/7/members?a=1")));
        assert!(!p.matches("GET", &url("https://x.test/3.0/lists")));
        let p = Pattern::parse("GET /v1/items").unwrap();
        assert!(p.matches("GET", &url("https://x.test/v1/items")));
        assert!(p.matches("GET", &url("https://x.test/v1/items/7")));
        assert!(!p.matches("GET", &url("https://x.test/v1/itemsX")));
        assert!(!p.matches("POST", &url("https://x.test/v1/items")));
        let p = Pattern::parse("API.example.com/v1/").unwrap();
        assert!(p.matches("PUT", &url("https://api.example.com/v1/a")));
        assert!(!p.matches("PUT", &url("https://other.example.com/v1/a")));
        let p = Pattern::parse("127.0.0.1:8080/").unwrap();
        assert!(p.matches("GET", &url("http://127.0.0.1:8080/a")));
        assert!(!p.matches("GET", &url("http://127.0.0.1:8081/a")));
        assert!(Pattern::parse("/")
            .unwrap()
            .matches("GET", &url("http://h/")));
    }

    #[test]
    fn cdp_rate_limit_config_maps_onto_a_group() {
        let group = EndpointGroup::from_cdp_rate_limit_config(
            vec!["POST /import".into()],
            &serde_json::json!({"type":"RPS","rateLimitParameters":{"ratePerSecond":100,"errorCodes":[606,607],"delayAfterRateLimitInSecond":300}}),
        )
        .unwrap();
        assert_eq!(
            group.rate_limit,
            Some(RateLimit {
                requests_per_second: 100.0,
                burst: 1
            })
        );
        assert_eq!(group.rate_limit_codes, vec![606, 607]);
        assert_eq!(
            group.retry["606 607"],
            RetryStrategy::Constant { delay_ms: 300_000 }
        );
        for (bad, expect) in [
            (
                serde_json::json!({"type":"RPM","rateLimitParameters":{"ratePerSecond":1}}),
                "type",
            ),
            (
                serde_json::json!({"type":"RPS","rateLimitParameters":{"ratePerSecond":0}}),
                "ratePerSecond",
            ),
            (
                serde_json::json!({"type":"RPS","rateLimitParameters":{"ratePerSecond":1,"errorCodes":["x"]}}),
                "errorCodes",
            ),
            (serde_json::json!({"type":"RPS"}), "rateLimitParameters"),
            (
                serde_json::json!({"type":"RPS","rateLimitParameters":{"ratePerSecond":1,"burst":2}}),
                "unknown field",
            ),
        ] {
            let e = EndpointGroup::from_cdp_rate_limit_config(vec!["/".into()], &bad).unwrap_err();
            assert!(e.0.starts_with("rateLimitConfig: "), "{e}");
            assert!(e.0.contains(expect), "{e}");
        }
    }

    #[test]
    fn aep_delay_request_millis_maps_onto_a_group() {
        for value in [serde_json::json!(250), serde_json::json!("250")] {
            let group =
                EndpointGroup::from_aep_delay_request_millis(vec!["/".into()], &value).unwrap();
            assert_eq!(group.min_interval_ms, Some(250));
        }
        for bad in [
            serde_json::json!(0),
            serde_json::json!(-5),
            serde_json::json!("soon"),
        ] {
            let e =
                EndpointGroup::from_aep_delay_request_millis(vec!["/".into()], &bad).unwrap_err();
            assert!(e.0.starts_with("delayRequestMillis: "), "{e}");
        }
    }
}
