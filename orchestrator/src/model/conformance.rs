//! The conformance kit's checks and its report (`cde test`).

use serde::Serialize;

/// One check of the connector contract, in the order the kit runs them.
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    PartialOrd,
    Ord,
    Serialize,
    strum::Display,
    strum::EnumString,
    strum::EnumIter,
)]
#[serde(rename_all = "kebab-case")]
#[strum(serialize_all = "kebab-case")]
pub enum Check {
    /// The health check exits 0 within 5 s, with no network.
    HealthCheck,
    /// A run with valid options succeeds.
    ValidRun,
    /// No empty column name; no request refused for colliding columns.
    Columns,
    /// A data service gives every input row back, unless its manifest says it filters.
    KeepsRows,
    /// A data service's new columns start with its column prefix.
    ColumnPrefix,
    /// An export succeeds on an empty input.
    EmptyInput,
    /// An export delta succeeds with each of its four streams empty in turn.
    DeltaStreams,
    /// An invalid option value ends the run non-zero with an `error` line, no crash trace.
    InvalidOptions,
    /// Cancelled mid-run, it exits within the grace period after SIGTERM.
    Sigterm,
    /// Answered 400 to its writes, it logs an error and exits non-zero, without looping.
    BadRequest,
    /// It stops reading a stream once the stream said it is exhausted.
    Exhaustion,
    /// On a 100 000-row input it stays within its memory limit.
    Memory,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, strum::Display)]
#[serde(rename_all = "lowercase")]
#[strum(serialize_all = "UPPERCASE")]
pub enum Verdict {
    Pass,
    Fail,
    /// The check does not apply, or could not be made (the reason says which).
    Skip,
}

#[derive(Debug, Clone, Serialize)]
pub struct CheckResult {
    pub check: Check,
    pub verdict: Verdict,
    pub reason: String,
}

/// The kit's findings for one connector.
#[derive(Debug, Clone, Serialize)]
pub struct ConformanceReport {
    pub connector: String,
    pub results: Vec<CheckResult>,
}

impl ConformanceReport {
    pub fn passed(&self) -> bool {
        self.results.iter().all(|r| r.verdict != Verdict::Fail)
    }

    pub fn verdict(&self, check: Check) -> Option<&CheckResult> {
        self.results.iter().find(|r| r.check == check)
    }
}
