//! An endpoint group at run time: its patterns, its rate limiters (GCRA, `governor`), its
//! concurrency (a semaphore), its adaptive slow-down, and its retry policy.

use std::collections::HashMap;
use std::fmt;
use std::num::NonZeroU32;
use std::sync::Mutex;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use tokio::sync::{Semaphore, SemaphorePermit};
use tokio::time::Instant;

use super::types::{
    parse_retry_key, EndpointGroup, Pattern, RetryOn, RetryStrategy, DEFAULT_MAX_RETRY_AFTER_SECS,
    DEFAULT_MAX_TRIES, DEFAULT_TIMEOUT_SECS,
};

/// Each slow-down multiplies the group's effective rate by this.
pub const DECREASE_FACTOR: f64 = 0.5;
/// Each success (of a request sent after the last slow-down) adds this share of the
/// configured rate back, up to the configured rate.
pub const INCREASE_STEP: f64 = 0.05;
/// The effective rate never goes below this share of the configured rate.
pub const MIN_FACTOR: f64 = 1.0 / 64.0;

pub(crate) struct Group {
    pub label: String,
    patterns: Vec<Pattern>,
    limiters: Vec<DefaultDirectRateLimiter>,
    semaphore: Option<Semaphore>,
    adaptive: Option<Adaptive>,
    pub timeout: Duration,
    pub max_tries: u32,
    pub max_retry_after: Duration,
    retry: HashMap<RetryOn, RetryStrategy>,
    rate_limit_codes: Vec<u16>,
}

impl fmt::Debug for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Group")
            .field("label", &self.label)
            .field("patterns", &self.patterns)
            .field("timeout", &self.timeout)
            .field("max_tries", &self.max_tries)
            .finish_non_exhaustive()
    }
}

/// The slow-down under 429s: a factor on the configured rate, and, while it is below 1,
/// one request every `1 / (rate × factor)` (evenly spaced, on top of the GCRA limiter).
struct Adaptive {
    configured_rate: f64,
    state: Mutex<AdaptiveState>,
}

struct AdaptiveState {
    factor: f64,
    next_slot: Option<Instant>,
    last_decrease: Option<Instant>,
}

impl Group {
    /// The default group: no pattern, no limit, the default policy.
    pub fn default_group() -> Group {
        Group::new(&EndpointGroup::default(), "default".into())
    }

    /// `group` must have been validated.
    pub fn from_config(group: &EndpointGroup) -> Group {
        Group::new(group, group.label())
    }

    fn new(group: &EndpointGroup, label: String) -> Group {
        let patterns = group
            .patterns
            .iter()
            .map(|p| Pattern::parse(p).expect("validated"))
            .collect();
        let mut limiters = Vec::new();
        let mut rates = Vec::new();
        if let Some(limit) = &group.rate_limit {
            let period = Duration::from_secs_f64(1.0 / limit.requests_per_second)
                .max(Duration::from_nanos(1));
            let quota = Quota::with_period(period)
                .expect("a positive period")
                .allow_burst(NonZeroU32::new(limit.burst).expect("validated"));
            limiters.push(RateLimiter::direct(quota));
            rates.push(limit.requests_per_second);
        }
        if let Some(ms) = group.min_interval_ms {
            let quota = Quota::with_period(Duration::from_millis(ms)).expect("validated");
            limiters.push(RateLimiter::direct(quota));
            rates.push(1000.0 / ms as f64);
        }
        let adaptive = if group.adaptive.unwrap_or(true) && !rates.is_empty() {
            Some(Adaptive {
                configured_rate: rates.into_iter().fold(f64::INFINITY, f64::min),
                state: Mutex::new(AdaptiveState {
                    factor: 1.0,
                    next_slot: None,
                    last_decrease: None,
                }),
            })
        } else {
            None
        };
        let mut retry = HashMap::new();
        for (key, strategy) in &group.retry {
            for on in parse_retry_key(key).expect("validated") {
                retry.insert(on, *strategy);
            }
        }
        Group {
            label,
            patterns,
            limiters,
            semaphore: group
                .max_concurrent
                .map(|n| Semaphore::new((n as usize).min(Semaphore::MAX_PERMITS))),
            adaptive,
            timeout: Duration::from_secs_f64(group.timeout_secs.unwrap_or(DEFAULT_TIMEOUT_SECS)),
            max_tries: group.max_tries.unwrap_or(DEFAULT_MAX_TRIES),
            max_retry_after: Duration::from_secs(
                group
                    .max_retry_after_secs
                    .unwrap_or(DEFAULT_MAX_RETRY_AFTER_SECS),
            ),
            retry,
            rate_limit_codes: group.rate_limit_codes.clone(),
        }
    }

    pub fn matches(&self, method: &str, url: &reqwest::Url) -> bool {
        self.patterns.iter().any(|p| p.matches(method, url))
    }

    /// How a failure of this kind is retried: what the group declares, else the default
    /// (429 → `retry_after`; 5xx and network failures → exponential); `None` when not at
    /// all.
    pub fn strategy(&self, on: RetryOn) -> Option<RetryStrategy> {
        let strategy = match self.retry.get(&on) {
            Some(declared) => *declared,
            None => match on {
                RetryOn::Status(429) => RetryStrategy::RetryAfter,
                RetryOn::Status(500..=599) | RetryOn::Network => RetryStrategy::DEFAULT_EXPONENTIAL,
                RetryOn::Status(_) => RetryStrategy::None,
            },
        };
        (strategy != RetryStrategy::None).then_some(strategy)
    }

    /// Whether `status` says "too many requests".
    pub fn is_rate_limited(&self, status: u16) -> bool {
        status == 429 || self.rate_limit_codes.contains(&status)
    }

    /// Waits for a place (concurrency) and a turn (rate limits); the permit is to be held
    /// while the request is in flight.
    pub async fn admit(&self) -> Option<SemaphorePermit<'_>> {
        let permit = match &self.semaphore {
            Some(semaphore) => Some(semaphore.acquire().await.expect("never closed")),
            None => None,
        };
        for limiter in &self.limiters {
            limiter.until_ready().await;
        }
        if let Some(adaptive) = &self.adaptive {
            adaptive.pace().await;
        }
        permit
    }

    /// A "too many requests" answer to a request sent at `sent_at`.
    pub fn on_rate_limited(&self, sent_at: Instant, status: u16) {
        if let Some(adaptive) = &self.adaptive {
            adaptive.decrease(&self.label, sent_at, status);
        }
    }

    /// A success of a request sent at `sent_at`.
    pub fn on_success(&self, sent_at: Instant) {
        if let Some(adaptive) = &self.adaptive {
            adaptive.increase(&self.label, sent_at);
        }
    }

    /// The rate (requests a second) the group holds itself to now: the configured rate,
    /// or less while slowed down; `None` without a rate limit.
    pub fn effective_rate(&self) -> Option<f64> {
        self.adaptive.as_ref().map(|a| {
            let factor = a.state.lock().unwrap().factor;
            a.configured_rate * factor
        })
    }
}

impl Adaptive {
    async fn pace(&self) {
        let slot = {
            let mut state = self.state.lock().unwrap();
            if state.factor >= 1.0 {
                state.next_slot = None;
                return;
            }
            let interval = Duration::from_secs_f64(1.0 / (self.configured_rate * state.factor));
            let now = Instant::now();
            let slot = state.next_slot.map_or(now, |next| next.max(now));
            state.next_slot = Some(slot + interval);
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    fn decrease(&self, label: &str, sent_at: Instant, status: u16) {
        let mut state = self.state.lock().unwrap();
        // Answers to requests sent before the last slow-down were sent too fast for the
        // old rate: they say nothing about the new one.
        if state.last_decrease.is_some_and(|d| sent_at < d) {
            return;
        }
        let before = state.factor;
        state.factor = (state.factor * DECREASE_FACTOR).max(MIN_FACTOR);
        let now = Instant::now();
        state.last_decrease = Some(now);
        let interval = Duration::from_secs_f64(1.0 / (self.configured_rate * state.factor));
        state.next_slot = Some(
            state
                .next_slot
                .map_or(now, |n| n.max(now))
                .max(now + interval),
        );
        if state.factor < before {
            tracing::warn!(
                group = label,
                status,
                rate = self.configured_rate * state.factor,
                configured = self.configured_rate,
                "endpoint group {label:?}: rate limited ({status}); slowing down to {:.3} requests/s",
                self.configured_rate * state.factor
            );
        }
    }

    fn increase(&self, label: &str, sent_at: Instant) {
        let mut state = self.state.lock().unwrap();
        if state.factor >= 1.0 || state.last_decrease.is_some_and(|d| sent_at < d) {
            return;
        }
        state.factor = (state.factor + INCREASE_STEP).min(1.0);
        let rate = self.configured_rate * state.factor;
        if state.factor >= 1.0 {
            state.next_slot = None;
            tracing::info!(
                group = label,
                rate,
                "endpoint group {label:?}: back to its configured {rate:.3} requests/s"
            );
        } else {
            tracing::debug!(
                group = label,
                rate,
                "endpoint group {label:?}: speeding up to {rate:.3} requests/s"
            );
        }
    }
}
