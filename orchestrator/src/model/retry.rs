//! A connector's retry policy: how many times a run that failed as transient is tried in
//! all, and how long cde waits between attempts. Which failures are retried is decided in
//! `run::outcome`.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The most attempts a policy may ask for.
pub const MAX_ATTEMPTS: u32 = 10;
/// No attempt waits longer than this after the one before it ended.
pub const MAX_DELAY_SECS: u64 = 3600;

/// `attempts: 3, backoff_secs: 10`: up to three attempts in all, the second 10 s after the
/// first ended, the third 20 s after the second (the delay doubles, up to an hour).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryPolicy {
    /// Attempts in all, the first included: 1 (the default) never retries, at most 10.
    #[serde(default = "default_attempts")]
    #[schema(minimum = 1, maximum = 10, default = 1)]
    pub attempts: u32,
    /// Seconds before the second attempt; each later one waits twice as long as the one
    /// before, at most an hour. Default 30.
    #[serde(default = "default_backoff_secs")]
    #[schema(maximum = 3600, default = 30)]
    pub backoff_secs: u64,
}

fn default_attempts() -> u32 {
    1
}

fn default_backoff_secs() -> u64 {
    30
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts: default_attempts(),
            backoff_secs: default_backoff_secs(),
        }
    }
}

impl RetryPolicy {
    /// The error names the field, as it is written in a manifest.
    pub fn validate(&self) -> Result<(), String> {
        if !(1..=MAX_ATTEMPTS).contains(&self.attempts) {
            return Err(format!(
                "retry.attempts: must be 1 to {MAX_ATTEMPTS} (attempts in all, the first included), not {}",
                self.attempts
            ));
        }
        if self.backoff_secs > MAX_DELAY_SECS {
            return Err(format!(
                "retry.backoff_secs: must be at most {MAX_DELAY_SECS} (an hour), not {}",
                self.backoff_secs
            ));
        }
        Ok(())
    }

    /// How long attempt `attempt` (1-based) waits after the one before it ended:
    /// `backoff_secs * 2^(attempt - 2)`, at most an hour; nothing for the first.
    pub fn delay_before(&self, attempt: u32) -> Duration {
        let Some(doublings) = attempt.checked_sub(2) else {
            return Duration::ZERO;
        };
        let factor = 1u64.checked_shl(doublings).unwrap_or(u64::MAX);
        Duration::from_secs(self.backoff_secs.saturating_mul(factor).min(MAX_DELAY_SECS))
    }

    pub fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_delay_doubles_from_the_second_attempt_up_to_an_hour() {
        let policy = RetryPolicy {
            attempts: 10,
            backoff_secs: 10,
        };
        let secs = |attempt| policy.delay_before(attempt).as_secs();
        assert_eq!(secs(0), 0);
        assert_eq!(secs(1), 0);
        assert_eq!(secs(2), 10);
        assert_eq!(secs(3), 20);
        assert_eq!(secs(4), 40);
        assert_eq!(secs(9), 1280);
        assert_eq!(secs(10), 2560);
        let slow = RetryPolicy {
            attempts: 10,
            backoff_secs: 1000,
        };
        assert_eq!(slow.delay_before(3).as_secs(), 2000);
        assert_eq!(slow.delay_before(4).as_secs(), MAX_DELAY_SECS);
        // No overflow however far it goes.
        assert_eq!(slow.delay_before(80).as_secs(), MAX_DELAY_SECS);
        assert_eq!(slow.delay_before(u32::MAX).as_secs(), MAX_DELAY_SECS);
        let immediate = RetryPolicy {
            attempts: 3,
            backoff_secs: 0,
        };
        assert_eq!(immediate.delay_before(3), Duration::ZERO);
    }

    #[test]
    fn defaults_and_validation_name_the_field() {
        let policy: RetryPolicy = serde_json::from_str("{}").unwrap();
        assert_eq!(policy, RetryPolicy::default());
        assert_eq!((policy.attempts, policy.backoff_secs), (1, 30));
        assert!(policy.is_default());
        let policy: RetryPolicy = serde_json::from_str(r#"{"attempts": 3}"#).unwrap();
        assert_eq!((policy.attempts, policy.backoff_secs), (3, 30));
        policy.validate().unwrap();
        for attempts in [0, 11] {
            let err = RetryPolicy { attempts, ..policy }.validate().unwrap_err();
            assert!(err.starts_with("retry.attempts:"), "{err}");
        }
        let err = RetryPolicy {
            backoff_secs: 3601,
            ..policy
        }
        .validate()
        .unwrap_err();
        assert!(err.starts_with("retry.backoff_secs:"), "{err}");
        let err = serde_json::from_str::<RetryPolicy>(r#"{"attempt": 3}"#).unwrap_err();
        assert!(err.to_string().contains("unknown field `attempt`"), "{err}");
    }
}
