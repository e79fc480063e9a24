//! Masking secret values (password options of a run) before a line reaches a log.
//!
//! The orchestrator hands the values to the supervisor in `CDE_MASK` (a JSON array of
//! strings, see [`Masker::from_env`]); the supervisor removes the variable from the
//! connector's environment and passes the connector's STDOUT, STDERR and
//! `POST /logs/{level}` lines through a [`Masker`] before they are written anywhere.
//!
//! What is caught, each occurrence replaced by [`MASK`]:
//! - a value as it is, and in its JSON-escaped forms (what `serde_json` writes between
//!   the quotes, and the `\uXXXX` form of non-ASCII characters Python's `json.dumps`
//!   writes by default);
//! - each line of a value that spans several lines, as if it were a value of its own;
//! - a value split over two consecutive lines of one stream ([`LineMasker`]): when a line
//!   ends with the first 3 or more characters of a value of 6 or more characters, that tail
//!   is masked, and when the next line starts with the rest of the value, that head is too
//!   (also after a tail of 1 or 2 characters, which itself stays).
//!
//! Values of fewer than 6 characters are masked only as whole tokens (not preceded or
//! followed by an ASCII letter, digit or `_`), so that a password `ab1` does not mask
//! every `tab1e`; the same such value inside a word is left alone, and short values are
//! not followed over line breaks.
//!
//! Not caught: other encodings (base64, URL encoding, hex, reversed, spaced out), a
//! value split over three or more lines or over two streams, a value split in the middle
//! of a log line's context, and the first 1 or 2 characters of a value ending a line.
//! The tail rule may also mask the end of a line that merely happens to end with the
//! first characters of a value.

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use serde_json::Value;

/// What every masked occurrence becomes.
pub const MASK: &str = "********";

/// The variable the supervisor reads the values from.
pub const MASK_ENV: &str = "CDE_MASK";

/// Values with fewer characters than this are masked only as whole tokens.
const WHOLE_TOKEN_BELOW: usize = 6;
/// The shortest end of a line taken for the start of a value split over two lines.
const MIN_SPLIT_PREFIX: usize = 3;

/// One form of a value to look for.
struct Pattern {
    text: String,
    whole_token: bool,
}

#[derive(Default)]
struct Inner {
    patterns: Vec<Pattern>,
    /// The forms long enough to be followed over a line break.
    splittable: Vec<String>,
    values: usize,
}

/// The secret values of a run; cheap to clone and share.
#[derive(Clone, Default)]
pub struct Masker(Arc<Inner>);

impl fmt::Debug for Masker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the values themselves.
        f.debug_struct("Masker")
            .field("values", &self.0.values)
            .finish()
    }
}

impl Masker {
    /// A masker of `secrets`; empty values are ignored.
    pub fn new(secrets: impl IntoIterator<Item = String>) -> Self {
        let mut inner = Inner::default();
        let mut seen = std::collections::HashSet::new();
        for secret in secrets {
            if secret.is_empty() {
                continue;
            }
            inner.values += 1;
            let mut forms = vec![secret.clone()];
            if secret.contains('\n') {
                forms.extend(
                    secret
                        .split('\n')
                        .map(|l| l.strip_suffix('\r').unwrap_or(l).to_string())
                        .filter(|l| !l.trim().is_empty()),
                );
            }
            for form in forms.clone() {
                let escaped = json_escaped(&form);
                let ascii = ascii_escaped(&escaped);
                forms.push(escaped);
                forms.push(ascii);
            }
            for form in forms {
                if !seen.insert(form.clone()) {
                    continue;
                }
                let whole_token = form.chars().count() < WHOLE_TOKEN_BELOW;
                if !whole_token {
                    inner.splittable.push(form.clone());
                }
                inner.patterns.push(Pattern {
                    text: form,
                    whole_token,
                });
            }
        }
        Self(Arc::new(inner))
    }

    /// Reads the values from [`MASK_ENV`] (a JSON array of strings); none when it is
    /// unset or empty.
    pub fn from_env() -> anyhow::Result<Self> {
        match std::env::var(MASK_ENV) {
            Err(std::env::VarError::NotPresent) => Ok(Self::default()),
            Err(e) => Err(anyhow::anyhow!("reading {MASK_ENV}: {e}")),
            Ok(text) if text.trim().is_empty() => Ok(Self::default()),
            Ok(text) => {
                let values: Vec<String> = serde_json::from_str(&text).map_err(|e| {
                    anyhow::anyhow!("reading {MASK_ENV}: not a JSON array of strings: {e}")
                })?;
                Ok(Self::new(values))
            }
        }
    }

    /// Whether there is nothing to mask.
    pub fn is_empty(&self) -> bool {
        self.0.patterns.is_empty()
    }

    /// A masker for the consecutive lines of one stream.
    pub fn lines(&self) -> LineMasker {
        LineMasker {
            masker: self.clone(),
            pending: Vec::new(),
        }
    }

    /// `text` with every occurrence of a value masked.
    pub fn mask<'a>(&self, text: &'a str) -> Cow<'a, str> {
        if self.is_empty() {
            return Cow::Borrowed(text);
        }
        let mut ranges = Vec::new();
        self.find(text, &mut ranges);
        replace(text, ranges)
    }

    /// Masks every string in `value`, object keys included.
    pub fn mask_value(&self, value: &mut Value) {
        if self.is_empty() {
            return;
        }
        match value {
            Value::String(s) => {
                if let Cow::Owned(masked) = self.mask(s) {
                    *s = masked;
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|v| self.mask_value(v)),
            Value::Object(map) => {
                let members = std::mem::take(map);
                for (key, mut v) in members {
                    self.mask_value(&mut v);
                    map.insert(self.mask(&key).into_owned(), v);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
    }

    fn find(&self, text: &str, ranges: &mut Vec<Range<usize>>) {
        for pattern in &self.0.patterns {
            let p = pattern.text.as_str();
            let mut from = 0;
            while let Some(at) = text[from..].find(p) {
                let start = from + at;
                let end = start + p.len();
                if !pattern.whole_token || is_token(text, start, end) {
                    ranges.push(start..end);
                }
                // Overlapping occurrences count too: go on one character further.
                from = start + text[start..].chars().next().map_or(1, char::len_utf8);
            }
        }
    }
}

/// Masks the lines of one stream in order, following values split over a line break.
pub struct LineMasker {
    masker: Masker,
    /// The value forms the last line ended with the start of, and that start's length.
    pending: Vec<(usize, usize)>,
}

impl LineMasker {
    /// `line` (without its line break) masked.
    pub fn mask(&mut self, line: &str) -> String {
        let inner = &*self.masker.0;
        if inner.patterns.is_empty() {
            return line.to_string();
        }
        let mut ranges = Vec::new();
        for (form, done) in std::mem::take(&mut self.pending) {
            let rest = &inner.splittable[form][done..];
            if line.starts_with(rest) {
                ranges.push(0..rest.len());
            }
        }
        self.masker.find(line, &mut ranges);
        for (form, text) in inner.splittable.iter().enumerate() {
            for (chars, (len, _)) in text.char_indices().enumerate().skip(1) {
                if line.ends_with(&text[..len]) {
                    // A shorter end is too common to mask, but the rest is not.
                    if chars >= MIN_SPLIT_PREFIX {
                        ranges.push(line.len() - len..line.len());
                    }
                    self.pending.push((form, len));
                }
            }
        }
        replace(line, ranges).into_owned()
    }
}

/// Whether `text[start..end]` is not glued to a letter, digit or `_` on either side.
fn is_token(text: &str, start: usize, end: usize) -> bool {
    let word = |b: &u8| b.is_ascii_alphanumeric() || *b == b'_';
    let bytes = text.as_bytes();
    !(start > 0 && word(&bytes[start - 1]) || bytes.get(end).is_some_and(word))
}

/// `text` with the union of `ranges` replaced by [`MASK`], one per connected stretch.
fn replace(text: &str, mut ranges: Vec<Range<usize>>) -> Cow<'_, str> {
    if ranges.is_empty() {
        return Cow::Borrowed(text);
    }
    ranges.sort_by_key(|r| (r.start, std::cmp::Reverse(r.end)));
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut iter = ranges.into_iter().peekable();
    while let Some(mut range) = iter.next() {
        while let Some(next) = iter.peek() {
            if next.start > range.end {
                break;
            }
            range.end = range.end.max(next.end);
            iter.next();
        }
        out.push_str(&text[copied..range.start]);
        out.push_str(MASK);
        copied = range.end;
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

/// `value` as `serde_json` writes it inside a string literal.
fn json_escaped(value: &str) -> String {
    let quoted = serde_json::to_string(value).expect("a string serialises");
    quoted[1..quoted.len() - 1].to_string()
}

/// A JSON-escaped `value` with non-ASCII characters as `\uXXXX` (Python's default).
fn ascii_escaped(escaped: &str) -> String {
    let mut out = String::with_capacity(escaped.len());
    for c in escaped.chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn masker(values: &[&str]) -> Masker {
        Masker::new(values.iter().map(|v| v.to_string()))
    }

    #[test]
    fn raw_values_are_masked_everywhere_when_long() {
        let m = masker(&["s3cr3t-pass", ""]);
        assert_eq!(m.mask("pw=s3cr3t-pass;"), "pw=********;");
        assert_eq!(m.mask("xs3cr3t-passx"), "x********x");
        assert_eq!(
            m.mask("s3cr3t-passs3cr3t-pass and s3cr3t-pass"),
            "******** and ********"
        );
        assert_eq!(m.mask("nothing here"), "nothing here");
        assert!(matches!(m.mask("nothing here"), Cow::Borrowed(_)));
        assert!(!m.is_empty());
        assert!(masker(&[""]).is_empty());
        assert!(Masker::default().is_empty());
    }

    #[test]
    fn json_escaped_forms_are_masked() {
        let secret = "pa\"ss\\wo\nrd\u{1}é";
        let m = masker(&[secret]);
        let serde = serde_json::to_string(&json!({ "p": secret })).unwrap();
        assert_eq!(m.mask(&serde), r#"{"p":"********"}"#);
        // As Python's json.dumps writes it by default.
        let python = r#"{"p": "pa\"ss\\wo\nrd\u0001\u00e9"}"#;
        assert_eq!(m.mask(python), r#"{"p": "********"}"#);
        assert_eq!(m.mask(secret), "********");
        // Each line of a multi-line value on its own.
        assert_eq!(m.mask("a pa\"ss\\wo b"), "a ******** b");
    }

    #[test]
    fn short_values_only_as_whole_tokens() {
        let m = masker(&["ab1"]);
        assert_eq!(
            m.mask("tab1e ab1 ab1c _ab1 ab1_"),
            "tab1e ******** ab1c _ab1 ab1_"
        );
        assert_eq!(m.mask("ab1"), "********");
        assert_eq!(m.mask("(ab1)"), "(********)");
        assert_eq!(m.mask("p=ab1,ab1"), "p=********,********");
        let m = masker(&["x\"y"]);
        assert_eq!(m.mask(r#"{"p":"x\"y"}"#), r#"{"p":"********"}"#);
        assert_eq!(m.mask(r#"{"p":"ax\"y"}"#), r#"{"p":"ax\"y"}"#);
        // Short values are not followed over line breaks.
        let mut lines = masker(&["ab1"]).lines();
        assert_eq!(lines.mask("xx ab"), "xx ab");
        assert_eq!(lines.mask("1 yy"), "1 yy");
    }

    #[test]
    fn a_value_split_over_two_lines_at_every_position() {
        let secret = "Tr0ub4dor&3x";
        assert_eq!(secret.len(), 12);
        let m = masker(&[secret]);
        for cut in 1..secret.len() {
            let mut lines = m.lines();
            let first = lines.mask(&format!("token: {}", &secret[..cut]));
            let second = lines.mask(&format!("{} end", &secret[cut..]));
            let both = format!("{first}\n{second}");
            for len in MIN_SPLIT_PREFIX..=secret.len() {
                for start in 0..=secret.len() - len {
                    let piece = &secret[start..start + len];
                    // Only pieces of 3+ characters could identify the value.
                    assert!(!both.contains(piece), "cut {cut}: {both:?} has {piece:?}");
                }
            }
            assert!(second.ends_with(" end"), "{second}");
            assert_eq!(second, "******** end", "cut {cut}");
            if cut >= MIN_SPLIT_PREFIX {
                assert_eq!(first, "token: ********", "cut {cut}");
            } else {
                assert_eq!(first, format!("token: {}", &secret[..cut]), "cut {cut}");
            }
        }
    }

    #[test]
    fn split_json_escaped_value() {
        let secret = "quo\"ted-secret";
        let m = masker(&[secret]);
        let escaped = json_escaped(secret);
        let mut lines = m.lines();
        assert_eq!(lines.mask(&format!("x {}", &escaped[..5])), "x ********");
        assert_eq!(lines.mask(&format!("{} y", &escaped[5..])), "******** y");
    }

    #[test]
    fn nothing_else_is_masked() {
        let m = masker(&["Tr0ub4dor&3x", "ab1"]);
        let mut lines = m.lines();
        for line in [
            "table tab1e ab12 Tr0u.",
            "Tr0ub4dor&3 without the end",
            "",
            "plain text, numbers 123",
            "ub4dor&3x after a line that did not end with the start",
        ] {
            assert_eq!(lines.mask(line), line);
        }
        // The head of the next line is masked only after a matching tail.
        let mut lines = m.lines();
        assert_eq!(lines.mask("nothing"), "nothing");
        assert_eq!(lines.mask("b4dor&3x here"), "b4dor&3x here");
        // A tail that is not followed by the rest: only the tail goes.
        assert_eq!(lines.mask("ends with Tr0ub"), "ends with ********");
        assert_eq!(lines.mask("something else"), "something else");
    }

    #[test]
    fn values_in_a_context() {
        let m = masker(&["hunter22", "pw1"]);
        let mut v = json!({
            "user": "bob",
            "auth": ["pw1", "x hunter22 y", {"hunter22": "pw1x"}],
            "n": 1, "b": true, "z": null
        });
        m.mask_value(&mut v);
        assert_eq!(
            v,
            json!({
                "user": "bob",
                "auth": ["********", "x ******** y", {"********": "pw1x"}],
                "n": 1, "b": true, "z": null
            })
        );
    }

    #[test]
    fn debug_hides_the_values() {
        let m = masker(&["hunter22"]);
        assert_eq!(format!("{m:?}"), "Masker { values: 1 }");
    }
}
