//! Sample CDE data service in Rust: adds `___rust_title_length` (the length of `title` in
//! characters) to every product, and with `UPPERCASE=1` also `___rust_title_upper`.
//!
//! It reads the `input` stream batch by batch (1000 rows, hidden columns included),
//! enriches each row and writes every row back to `output` before it asks for the next
//! batch, so memory stays bounded by one batch whatever the size of the feed.
//!
//! Exit codes: 0 success (and `--health-check`); 1 a bad option value or an error of the
//! Container API (logged at `error` level); 143 / 130 after SIGTERM / SIGINT.

use std::borrow::Cow;
use std::env::VarError;
use std::process::ExitCode;

use container_api_client::{Client, Error, InputKind, Level, OutputKind, Record};
use serde_json::{json, Value};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// Rows per `next_batch` (the API's maximum).
const BATCH_SIZE: u32 = 1000;
const TITLE: &str = "title";
const LENGTH_COLUMN: &str = "___rust_title_length";
const UPPER_COLUMN: &str = "___rust_title_upper";
/// The checkbox option: `"1"` also writes the upper-cased title.
const UPPERCASE: &str = "UPPERCASE";

fn main() -> ExitCode {
    // The health check runs in a throw-away container without the API: exit at once.
    if std::env::args().skip(1).any(|arg| arg == "--health-check") {
        return ExitCode::SUCCESS;
    }
    if let Err(e) = exit_on_termination() {
        eprintln!("warning: cannot handle SIGTERM: {e}");
    }
    let api = Client::from_env();

    let uppercase = match uppercase_option() {
        Ok(uppercase) => uppercase,
        Err(message) => {
            let context = json!({"option": UPPERCASE, "allowed": ["0", "1"]});
            if let Err(e) = api.log(Level::Error, &message, Some(context)) {
                eprintln!("error: {message}");
                eprintln!("error: could not log it either: {e}");
            }
            return ExitCode::FAILURE;
        }
    };

    match run(&api, uppercase) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // STDERR first: it is seen even when the API is what fails.
            let message = format!("Container API call failed: {e}");
            eprintln!("error: {message}");
            if let Err(again) = api.log(Level::Error, &message, Some(e.to_context())) {
                eprintln!("error: could not log it either: {again}");
            }
            ExitCode::FAILURE
        }
    }
}

/// Counts for the closing `notice`.
#[derive(Debug, Default)]
struct Counts {
    read: u64,
    titled: u64,
    written: u64,
}

/// Reads `input` until a batch comes back empty (and never asks again), enriching and
/// writing back every row of each batch. Any API error ends the run: no retries.
fn run(api: &Client, uppercase: bool) -> Result<(), Error> {
    let mut counts = Counts::default();
    loop {
        let mut rows = api.next_batch(InputKind::Input, BATCH_SIZE, true)?;
        if rows.is_empty() {
            break;
        }
        counts.read += rows.len() as u64;
        for row in &mut rows {
            if enrich(row, uppercase) {
                counts.titled += 1;
            }
        }
        // A data service writes back every row it keeps: rows left out leave the feed.
        api.append(OutputKind::Output, &rows)?;
        counts.written += rows.len() as u64;
    }
    api.close(OutputKind::Output)?;

    let Counts {
        read,
        titled,
        written,
    } = counts;
    api.log(
        Level::Notice,
        &format!("read {read} rows ({titled} with a title), wrote {written} rows"),
        Some(json!({"read": read, "titled": titled, "written": written, "uppercase": uppercase})),
    )?;
    api.log(
        Level::Success,
        &format!("added {LENGTH_COLUMN} to {titled} of {written} rows"),
        None,
    )
}

/// Sets this service's columns of `row` from its `title`; returns whether it has one.
/// A row without a title (missing, null or empty) gets none: values an earlier run left
/// in the row (hidden columns come back with `show-hidden`) are removed.
fn enrich(row: &mut Record, uppercase: bool) -> bool {
    let title: Option<Cow<'_, str>> = match row.get(TITLE) {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) if s.is_empty() => None,
        Some(Value::String(s)) => Some(Cow::Borrowed(s)),
        // Typed values (`input_values: typed`): a number or boolean as written.
        Some(other) => Some(Cow::Owned(other.to_string())),
    };
    let length = title.as_ref().map(|t| t.chars().count().to_string());
    let upper = title.filter(|_| uppercase).map(|t| t.to_uppercase());
    let has_title = length.is_some();
    set(row, LENGTH_COLUMN, length);
    set(row, UPPER_COLUMN, upper);
    has_title
}

fn set(row: &mut Record, column: &str, value: Option<String>) {
    match value {
        Some(value) => {
            row.insert(column.to_owned(), Value::String(value));
        }
        None => {
            row.remove(column);
        }
    }
}

/// `UPPERCASE`: `"1"` or `"0"`; unset means `"0"` (the manifest's default).
fn uppercase_option() -> Result<bool, String> {
    match std::env::var(UPPERCASE) {
        Ok(value) if value == "1" => Ok(true),
        Ok(value) if value == "0" => Ok(false),
        Err(VarError::NotPresent) => Ok(false),
        Ok(value) => Err(format!(
            "invalid option {UPPERCASE}={value:?}: a checkbox is \"0\" or \"1\""
        )),
        Err(VarError::NotUnicode(value)) => Err(format!(
            "invalid option {UPPERCASE}={value:?}: a checkbox is \"0\" or \"1\""
        )),
    }
}

/// On SIGTERM or SIGINT, exits at once with 128 + the signal, even while a request is in
/// flight: what was written stays written, the run is failed.
fn exit_on_termination() -> std::io::Result<()> {
    let mut signals = Signals::new([SIGTERM, SIGINT])?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                let name = if signal == SIGTERM {
                    "SIGTERM"
                } else {
                    "SIGINT"
                };
                eprintln!("{name} received: stopping");
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(value: Value) -> Record {
        match value {
            Value::Object(map) => map,
            _ => unreachable!(),
        }
    }

    #[test]
    fn length_in_chars() {
        let mut r = row(json!({"id": "1", "title": "Schöne Schuhe"}));
        assert!(enrich(&mut r, false));
        assert_eq!(r[LENGTH_COLUMN], "13");
        assert!(!r.contains_key(UPPER_COLUMN));
    }

    #[test]
    fn uppercase_when_asked() {
        let mut r = row(json!({"title": "straße"}));
        assert!(enrich(&mut r, true));
        assert_eq!(r[LENGTH_COLUMN], "6");
        assert_eq!(r[UPPER_COLUMN], "STRASSE");
    }

    #[test]
    fn no_title_no_columns_and_stale_ones_removed() {
        for value in [
            json!({"id": "1"}),
            json!({"title": ""}),
            json!({"title": null}),
        ] {
            let mut r = row(value);
            r.insert(LENGTH_COLUMN.into(), "9".into());
            r.insert(UPPER_COLUMN.into(), "OLD".into());
            assert!(!enrich(&mut r, true));
            assert!(!r.contains_key(LENGTH_COLUMN), "{r:?}");
            assert!(!r.contains_key(UPPER_COLUMN), "{r:?}");
        }
    }

    #[test]
    fn typed_title() {
        let mut r = row(json!({"title": 1234}));
        assert!(enrich(&mut r, false));
        assert_eq!(r[LENGTH_COLUMN], "4");
    }
}
