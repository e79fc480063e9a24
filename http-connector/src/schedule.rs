//! The schedule window: the first run asks from `schedule_start` to now, each later run
//! from the previous window's end (kept in the run's state) to now.

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde_json::{json, Value};

use crate::datefmt;
use crate::error::{configuration, SpecError};
use crate::model::{Schedule, END_TIME, START_TIME};
use crate::transport::Failure;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// No earlier window: a backfill.
    pub first: bool,
}

impl Window {
    /// `now` is truncated to microseconds, so the end kept in the state is exactly the
    /// start the next run formats.
    pub fn new(
        previous_end: Option<DateTime<Utc>>,
        schedule_start: DateTime<Utc>,
        now: DateTime<Utc>,
    ) -> Self {
        let end = now.trunc_subsecs(6);
        let start = previous_end.unwrap_or(schedule_start).min(end);
        Self {
            start,
            end,
            first: previous_end.is_none(),
        }
    }
}

/// The previous window's end in a run's state (`{"schedule": {"window_end": ...}}`).
pub fn previous_end(state: &Value) -> Result<Option<DateTime<Utc>>, Failure> {
    let Some(end) = state.pointer("/schedule/window_end") else {
        return Ok(None);
    };
    end.as_str()
        .and_then(|text| DateTime::parse_from_rfc3339(text).ok())
        .map(|t| Some(t.with_timezone(&Utc)))
        .ok_or_else(|| {
            configuration("reading the state: schedule.window_end is not an RFC 3339 time")
        })
}

/// `state` with the window's end recorded; other keys of the state are kept.
pub fn next_state(mut state: Value, window: &Window) -> Value {
    if !state.is_object() {
        state = json!({});
    }
    let end = window.end.to_rfc3339_opts(SecondsFormat::AutoSi, true);
    match state.get_mut("schedule").and_then(Value::as_object_mut) {
        Some(schedule) => {
            schedule.insert("window_end".into(), Value::String(end));
        }
        None => {
            state["schedule"] = json!({"window_end": end});
        }
    }
    state
}

/// What the window adds to the requests.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Fill {
    pub query: Vec<(String, String)>,
    /// The value of `{SCHEDULE_QUERY}` (ADVANCE).
    pub schedule_query: Option<String>,
}

pub fn fill(schedule: &Schedule, window: &Window) -> Result<Fill, SpecError> {
    match schedule {
        Schedule::Params {
            start_name,
            end_name,
            start_format,
            end_format,
        } => Ok(Fill {
            query: vec![
                (
                    start_name.clone(),
                    datefmt::format(window.start, start_format)?,
                ),
                (end_name.clone(), datefmt::format(window.end, end_format)?),
            ],
            schedule_query: None,
        }),
        Schedule::Advance {
            format,
            incremental,
            backfill,
        } => {
            let template = if window.first { backfill } else { incremental };
            let query = template
                .replace(
                    &format!("{{{START_TIME}}}"),
                    &datefmt::format(window.start, format)?,
                )
                .replace(
                    &format!("{{{END_TIME}}}"),
                    &datefmt::format(window.end, format)?,
                );
            Ok(Fill {
                query: Vec::new(),
                schedule_query: Some(query),
            })
        }
    }
}

/// The window's start and end in the schedule's formats, for a `{START_TIME}` or
/// `{END_TIME}` written directly in the request.
pub fn times(schedule: &Schedule, window: &Window) -> Result<(String, String), SpecError> {
    let (start_format, end_format) = match schedule {
        Schedule::Params {
            start_format,
            end_format,
            ..
        } => (start_format, end_format),
        Schedule::Advance { format, .. } => (format, format),
    };
    Ok((
        datefmt::format(window.start, start_format)?,
        datefmt::format(window.end, end_format)?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 1, 2, h, 0, 0).unwrap()
    }

    #[test]
    fn the_first_window_starts_at_schedule_start_and_later_ones_at_the_previous_end() {
        let first = Window::new(
            None,
            at(1),
            at(5) + chrono::Duration::nanoseconds(1_234_567),
        );
        assert_eq!(first.start, at(1));
        assert_eq!(first.end, at(5) + chrono::Duration::nanoseconds(1_234_000));
        assert!(first.first);
        let state = next_state(json!({"other": 1}), &first);
        assert_eq!(
            state,
            json!({"other": 1, "schedule": {"window_end": "2024-01-02T05:00:00.001234Z"}})
        );
        let previous = previous_end(&state).unwrap();
        assert_eq!(previous, Some(first.end));
        let second = Window::new(previous, at(1), at(7));
        assert_eq!(
            (second.start, second.end, second.first),
            (first.end, at(7), false)
        );
        assert_eq!(previous_end(&json!({})).unwrap(), None);
        assert!(previous_end(&json!({"schedule": {"window_end": 3}})).is_err());
    }

    #[test]
    fn params_are_formatted_and_advance_picks_backfill_then_incremental() {
        let params = Schedule::Params {
            start_name: "since".into(),
            end_name: "before".into(),
            start_format: "yyyy-MM-ddTHH:mm:ssZ".into(),
            end_format: "yyyy-MM-ddTHH:mm:ss:fffffffK".into(),
        };
        let window = Window::new(None, at(1), at(5));
        assert_eq!(
            fill(&params, &window).unwrap().query,
            [
                ("since".to_string(), "2024-01-02T01:00:00Z".to_string()),
                (
                    "before".to_string(),
                    "2024-01-02T05:00:00:0000000Z".to_string()
                )
            ]
        );
        let advance = Schedule::Advance {
            format: "yyyy-MM-ddTHH:mm:ssK".into(),
            incremental: "type:user updated > {START_TIME} updated < {END_TIME}".into(),
            backfill: "type:user updated < {END_TIME}".into(),
        };
        assert_eq!(
            fill(&advance, &window).unwrap().schedule_query.unwrap(),
            "type:user updated < 2024-01-02T05:00:00Z"
        );
        let later = Window::new(Some(at(5)), at(1), at(6));
        assert_eq!(
            fill(&advance, &later).unwrap().schedule_query.unwrap(),
            "type:user updated > 2024-01-02T05:00:00Z updated < 2024-01-02T06:00:00Z"
        );
    }
}
