//! The decisions of a run's lifecycle, as pure functions of what was observed: how a run
//! that another process left continues, how a run whose container stopped ended, and
//! whether it is tried again.

use crate::engine::Exit;
use crate::model::{Ending, Limits, RetryPolicy, RunStatus};

pub const LOST: &str = "lost: container disappeared";

/// What a process taking over a run does with it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Resumption {
    /// The container started: follow it to its end.
    Follow,
    /// The container was never started (or never created): start it.
    Start,
    /// The run was running but its container is gone.
    Lost,
}

/// `container_started`: `None` when the run has no container, else whether it ever started.
pub fn resumption(status: RunStatus, container_started: Option<bool>) -> Resumption {
    match container_started {
        Some(true) => Resumption::Follow,
        None if status == RunStatus::Running => Resumption::Lost,
        Some(false) | None => Resumption::Start,
    }
}

/// Why cde stopped a container before it ended by itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopCause {
    Timeout,
    Disk,
}

/// The kind of failure a connector reports with its exit status, after sysexits(3):
/// 75 (`EX_TEMPFAIL`) and 78 (`EX_CONFIG`). Any other non-zero status says nothing more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FailureKind {
    /// It may succeed when tried again: the API was unreachable, or kept failing.
    Transient,
    /// Credentials, permissions or settings are wrong: trying again cannot help.
    Configuration,
}

pub const EX_TEMPFAIL: i64 = 75;
pub const EX_CONFIG: i64 = 78;

pub fn reported_failure(exit_code: i64) -> Option<FailureKind> {
    match exit_code {
        EX_TEMPFAIL => Some(FailureKind::Transient),
        EX_CONFIG => Some(FailureKind::Configuration),
        _ => None,
    }
}

/// The reason of a run that ended with a non-zero status by itself.
pub fn exit_reason(code: i64) -> String {
    match reported_failure(code) {
        Some(FailureKind::Transient) => format!("transient failure (exit code {code})"),
        Some(FailureKind::Configuration) => format!("configuration failure (exit code {code})"),
        None => format!("exit code {code}"),
    }
}

/// An exit reason followed by the last error the connector logged, which says what went
/// wrong in its own words (cut to a line's worth).
pub fn with_last_error(reason: &str, last_error: &str) -> String {
    const MAX_CHARS: usize = 300;
    let error = last_error.trim();
    let mut cut: String = error.chars().take(MAX_CHARS).collect();
    if cut.len() < error.len() {
        cut.push('…');
    }
    format!("{reason}: {cut}")
}

/// What is known of a run's container once it stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Observed {
    /// `None` when the container vanished before its exit could be read.
    pub exit: Option<Exit>,
    /// Whether it still existed after its exit. Only the run removes its container, so one
    /// gone by then was removed by someone else (`docker rm -f` kills before it removes,
    /// so its exit code alone cannot tell).
    pub still_exists: bool,
    pub stopped_by_cde: Option<StopCause>,
    pub cancel_requested: bool,
}

/// How the run ended, from what was observed. cde's own stops come first (the exit code
/// of a stopped container says only that it was stopped), then a cancel, then the OOM
/// killer, then the exit code.
pub fn ending(observed: Observed, limits: &Limits) -> Ending {
    let exit = match observed.exit {
        Some(exit) if observed.still_exists => exit,
        _ => return Ending::failed(LOST),
    };
    let exit_code = Some(exit.code);
    let (status, reason) = match observed.stopped_by_cde {
        Some(StopCause::Timeout) => (
            RunStatus::TimedOut,
            format!("timed out after {}s", limits.timeout_secs),
        ),
        Some(StopCause::Disk) => (
            RunStatus::Failed,
            format!("disk limit exceeded ({} MiB)", limits.disk_mb),
        ),
        None if observed.cancel_requested => return Ending::cancelled(exit_code),
        None if exit.oom_killed => (
            RunStatus::Failed,
            format!("out of memory (limit {} MiB)", limits.memory_mb),
        ),
        None if exit.code == 0 => (RunStatus::Succeeded, "exit code 0".into()),
        None => (RunStatus::Failed, exit_reason(exit.code)),
    };
    Ending {
        status,
        reason,
        exit_code,
    }
}

/// Whether a run that ended so, as attempt `attempt` under `policy`, is tried again: when
/// attempts are left and it failed as transient (its connector exited 75 by itself) or
/// lost its container. A configuration failure (78), any other exit status, a timeout, a
/// cancel, the OOM killer, the disk limit or a rejected output: never. `ending` is the one
/// [`ending`] decided (its reason without the connector's last error).
pub fn retries(ending: &Ending, attempt: u32, policy: &RetryPolicy) -> bool {
    if ending.status != RunStatus::Failed || attempt >= policy.attempts {
        return false;
    }
    // The reason says the connector's own exit status decided the ending, not a stop of
    // cde's or the OOM killer (which leave the exit status they caused).
    let transient = ending.exit_code.is_some_and(|code| {
        reported_failure(code) == Some(FailureKind::Transient) && ending.reason == exit_reason(code)
    });
    transient || ending.reason == LOST
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: Limits = Limits {
        timeout_secs: 30,
        memory_mb: 64,
        cpus: 1.0,
        pids: 64,
        disk_mb: 100,
    };

    fn exited(code: i64, oom_killed: bool) -> Observed {
        Observed {
            exit: Some(Exit { code, oom_killed }),
            still_exists: true,
            stopped_by_cde: None,
            cancel_requested: false,
        }
    }

    fn decide(observed: Observed) -> (RunStatus, String, Option<i64>) {
        let ending = ending(observed, &LIMITS);
        (ending.status, ending.reason, ending.exit_code)
    }

    #[test]
    fn the_exit_code_decides_a_run_nobody_stopped() {
        assert_eq!(
            decide(exited(0, false)),
            (RunStatus::Succeeded, "exit code 0".into(), Some(0))
        );
        assert_eq!(
            decide(exited(3, false)),
            (RunStatus::Failed, "exit code 3".into(), Some(3))
        );
    }

    #[test]
    fn the_exit_status_names_the_kind_of_failure() {
        assert_eq!(
            decide(exited(75, false)).1,
            "transient failure (exit code 75)"
        );
        assert_eq!(
            decide(exited(78, false)).1,
            "configuration failure (exit code 78)"
        );
        assert_eq!(decide(exited(3, false)).1, "exit code 3");
        let long = "x".repeat(400);
        let reason = with_last_error("exit code 1", &long);
        assert!(
            reason.starts_with("exit code 1: xxx") && reason.ends_with('…'),
            "{reason}"
        );
        assert_eq!(reason.chars().count(), "exit code 1: ".len() + 301);
    }

    #[test]
    fn the_oom_killer_is_named_with_the_limit() {
        assert_eq!(
            decide(exited(137, true)),
            (
                RunStatus::Failed,
                "out of memory (limit 64 MiB)".into(),
                Some(137)
            )
        );
    }

    #[test]
    fn cdes_own_stops_come_before_cancel_and_exit_code() {
        let timed_out = Observed {
            stopped_by_cde: Some(StopCause::Timeout),
            cancel_requested: true,
            ..exited(0, false)
        };
        assert_eq!(
            decide(timed_out),
            (RunStatus::TimedOut, "timed out after 30s".into(), Some(0))
        );
        let disk = Observed {
            stopped_by_cde: Some(StopCause::Disk),
            ..exited(143, true)
        };
        assert_eq!(
            decide(disk),
            (
                RunStatus::Failed,
                "disk limit exceeded (100 MiB)".into(),
                Some(143)
            )
        );
    }

    #[test]
    fn a_cancel_wins_over_the_exit_code_and_oom() {
        let cancelled = Observed {
            cancel_requested: true,
            ..exited(137, true)
        };
        assert_eq!(
            decide(cancelled),
            (RunStatus::Cancelled, "cancelled".into(), Some(137))
        );
    }

    #[test]
    fn a_vanished_container_is_lost_whatever_it_exited_with() {
        let removed = Observed {
            still_exists: false,
            ..exited(0, false)
        };
        assert_eq!(decide(removed), (RunStatus::Failed, LOST.into(), None));
        let gone = Observed {
            exit: None,
            ..exited(0, false)
        };
        assert_eq!(decide(gone), (RunStatus::Failed, LOST.into(), None));
    }

    #[test]
    fn a_taken_over_run_continues_by_its_container() {
        use RunStatus::{Running, Starting};
        assert_eq!(resumption(Running, Some(true)), Resumption::Follow);
        assert_eq!(resumption(Starting, Some(true)), Resumption::Follow);
        assert_eq!(resumption(Starting, Some(false)), Resumption::Start);
        assert_eq!(resumption(Starting, None), Resumption::Start);
        assert_eq!(resumption(Running, Some(false)), Resumption::Start);
        assert_eq!(resumption(Running, None), Resumption::Lost);
    }

    #[test]
    fn only_transient_failures_and_lost_runs_are_retried_while_attempts_are_left() {
        let policy = RetryPolicy {
            attempts: 3,
            backoff_secs: 10,
        };
        let transient = ending(exited(75, false), &LIMITS);
        let lost = ending(
            Observed {
                exit: None,
                ..exited(0, false)
            },
            &LIMITS,
        );
        for retried in [&transient, &lost] {
            assert!(retries(retried, 1, &policy), "{retried:?}");
            assert!(retries(retried, 2, &policy), "{retried:?}");
            assert!(
                !retries(retried, 3, &policy),
                "no attempt left: {retried:?}"
            );
            assert!(!retries(retried, 4, &policy), "{retried:?}");
            assert!(
                !retries(retried, 1, &RetryPolicy::default()),
                "the default policy never retries: {retried:?}"
            );
        }
        let never = [
            ending(exited(78, false), &LIMITS),
            ending(exited(1, false), &LIMITS),
            ending(exited(3, false), &LIMITS),
            ending(exited(0, false), &LIMITS),
            // The OOM killer, whatever the exit status says.
            ending(exited(75, true), &LIMITS),
            // A timeout or the disk limit: cde stopped it, whatever it exited with.
            ending(
                Observed {
                    stopped_by_cde: Some(StopCause::Timeout),
                    ..exited(75, false)
                },
                &LIMITS,
            ),
            ending(
                Observed {
                    stopped_by_cde: Some(StopCause::Disk),
                    ..exited(75, false)
                },
                &LIMITS,
            ),
            ending(
                Observed {
                    cancel_requested: true,
                    ..exited(75, false)
                },
                &LIMITS,
            ),
            // Exited 0 but its output was rejected, or cde failed it for a reason of its own.
            Ending {
                status: RunStatus::Failed,
                reason: "output rejected: output/output.jsonl line 1 is not JSON".into(),
                exit_code: Some(0),
            },
            Ending::failed("image not found: x"),
            Ending {
                status: RunStatus::Failed,
                reason: "output rejected: x".into(),
                exit_code: Some(75),
            },
        ];
        for ended in never {
            assert!(!retries(&ended, 1, &policy), "{ended:?}");
        }
    }
}
