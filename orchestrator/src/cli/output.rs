//! The one place that decides between text and `--json`.

use serde::Serialize;

use crate::error::{Error, Result};

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub json: bool,
}

impl Output {
    /// A command's result: pretty JSON, or the text `text` makes of it (newlines included).
    pub fn show<T: Serialize + ?Sized>(
        &self,
        value: &T,
        text: impl FnOnce(&T) -> Result<String>,
    ) -> Result<()> {
        if self.json {
            let json = serde_json::to_string_pretty(value)
                .map_err(Error::json("printing the result as JSON"))?;
            println!("{json}");
        } else {
            print!("{}", text(value)?);
        }
        Ok(())
    }

    /// One item of a stream (a log line): a line of JSON, or the line `text` makes of it.
    pub fn line<T: Serialize + ?Sized>(&self, value: &T, text: impl FnOnce(&T) -> String) {
        if self.json {
            println!(
                "{}",
                serde_json::to_string(value).expect("a log line serialises")
            );
        } else {
            println!("{}", text(value));
        }
    }

    /// A note on standard error for a person watching; none with `--json`.
    pub fn note(&self, text: impl FnOnce() -> String) {
        if !self.json {
            eprintln!("{}", text());
        }
    }
}
