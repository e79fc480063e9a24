//! A validating JSON tokenizer: one pass over the text, no recursion, no allocation
//! per token. It accepts exactly RFC 8259 JSON and also refuses what would get past
//! a parser but poison an output file or a later reader: nesting deeper than a limit,
//! `\u` escapes of unpaired UTF-16 surrogates, and numbers beyond `f64`.
//!
//! Ingest hinges on it: a body is tokenized once, and a flat record is then copied
//! to the output as the bytes it arrived as.

use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Token<'a> {
    BeginObject,
    EndObject,
    BeginArray,
    EndArray,
    /// A member name, as its JSON text (quotes and escapes included).
    Key(&'a str),
    /// A string, number or literal, as its JSON text.
    Scalar(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ScanError {
    Syntax { problem: &'static str, at: usize },
    TooDeep { max_depth: usize },
    UnpairedSurrogate,
    NumberOutOfRange,
}

impl ScanError {
    /// The message for a 400, with the position as line and column of `text`.
    pub(crate) fn describe(&self, text: &str) -> String {
        match self {
            Self::Syntax { problem, at } => {
                let before = &text.as_bytes()[..(*at).min(text.len())];
                let line = 1 + before.iter().filter(|&&b| b == b'\n').count();
                let column = 1 + before.iter().rev().take_while(|&&b| b != b'\n').count();
                format!(
                    "The request body is not valid JSON: {problem} at line {line} column {column}."
                )
            }
            Self::TooDeep { max_depth } => {
                format!("The request body is nested deeper than {max_depth} levels.")
            }
            Self::UnpairedSurrogate => {
                "The request body contains an unpaired surrogate in a \\u escape.".into()
            }
            Self::NumberOutOfRange => {
                "The request body contains a number beyond the range of a double.".into()
            }
        }
    }
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self:?}")
    }
}

/// What may come next.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Expect {
    Value,
    ValueOrEnd,
    KeyOrEnd,
    Key,
    Colon,
    CommaOrEnd,
    Done,
}

pub(crate) struct Scanner<'a> {
    text: &'a str,
    pos: usize,
    token_start: usize,
    token_end: usize,
    /// Open containers, innermost last; `true` for an object.
    stack: Vec<bool>,
    expect: Expect,
    max_depth: usize,
    escaped: bool,
    /// `\n` and `\r` seen so far (whitespace, as strings cannot hold them).
    line_breaks: usize,
}

impl<'a> Scanner<'a> {
    pub(crate) fn new(text: &'a str, max_depth: usize) -> Self {
        Self {
            text,
            pos: 0,
            token_start: 0,
            token_end: 0,
            stack: Vec::new(),
            expect: Expect::Value,
            max_depth,
            escaped: false,
            line_breaks: 0,
        }
    }

    pub(crate) fn text(&self) -> &'a str {
        self.text
    }

    /// Byte offset of the last token's first byte.
    pub(crate) fn token_start(&self) -> usize {
        self.token_start
    }

    /// Byte offset just past the last token.
    pub(crate) fn token_end(&self) -> usize {
        self.token_end
    }

    /// Whether the last string token (key or value) contains escapes.
    pub(crate) fn escaped(&self) -> bool {
        self.escaped
    }

    /// Line breaks passed so far.
    pub(crate) fn line_breaks(&self) -> usize {
        self.line_breaks
    }

    /// Open containers.
    pub(crate) fn depth(&self) -> usize {
        self.stack.len()
    }

    fn error(&self, problem: &'static str) -> ScanError {
        ScanError::Syntax {
            problem,
            at: self.pos,
        }
    }

    /// The next token; `None` once the one top-level value is complete and only
    /// whitespace follows.
    pub(crate) fn next(&mut self) -> Result<Option<Token<'a>>, ScanError> {
        let bytes = self.text.as_bytes();
        loop {
            self.skip_whitespace();
            let Some(&b) = bytes.get(self.pos) else {
                return match self.expect {
                    Expect::Done => Ok(None),
                    _ => Err(self.error("unexpected end of input")),
                };
            };
            self.token_start = self.pos;
            match self.expect {
                Expect::Done => return Err(self.error("trailing characters")),
                Expect::Colon => {
                    if b != b':' {
                        return Err(self.error("expected ':'"));
                    }
                    self.pos += 1;
                    self.expect = Expect::Value;
                }
                Expect::CommaOrEnd => {
                    let in_object = *self.stack.last().expect("inside a container");
                    self.pos += 1;
                    match (b, in_object) {
                        (b',', true) => self.expect = Expect::Key,
                        (b',', false) => self.expect = Expect::Value,
                        (b'}', true) => return Ok(Some(self.close(Token::EndObject))),
                        (b']', false) => return Ok(Some(self.close(Token::EndArray))),
                        (_, true) => {
                            self.pos -= 1;
                            return Err(self.error("expected ',' or '}'"));
                        }
                        (_, false) => {
                            self.pos -= 1;
                            return Err(self.error("expected ',' or ']'"));
                        }
                    }
                }
                Expect::KeyOrEnd if b == b'}' => {
                    self.pos += 1;
                    return Ok(Some(self.close(Token::EndObject)));
                }
                Expect::KeyOrEnd | Expect::Key => {
                    if b != b'"' {
                        return Err(self.error("expected a string as member name"));
                    }
                    let key = self.string()?;
                    self.token_end = self.pos;
                    // The colon is taken right away: one call per member name, not two.
                    self.skip_whitespace();
                    if bytes.get(self.pos) == Some(&b':') {
                        self.pos += 1;
                        self.expect = Expect::Value;
                    } else {
                        self.expect = Expect::Colon;
                    }
                    return Ok(Some(Token::Key(key)));
                }
                Expect::ValueOrEnd if b == b']' => {
                    self.pos += 1;
                    return Ok(Some(self.close(Token::EndArray)));
                }
                Expect::Value | Expect::ValueOrEnd => return self.value(b).map(Some),
            }
        }
    }

    /// Inside an object, where a member name may come next: reads on through its
    /// members as [`Self::next`] would, passing each name (as for [`Token::Key`]) to
    /// `on_key` and consuming string, number and literal values. Stops before
    /// anything else (the end of the object, a nested value, an error), which `next`
    /// then returns; one call instead of two per member, no token in between.
    pub(crate) fn scalar_members(
        &mut self,
        mut on_key: impl FnMut(&'a str),
    ) -> Result<(), ScanError> {
        let bytes = self.text.as_bytes();
        while matches!(self.expect, Expect::Key | Expect::KeyOrEnd) {
            self.skip_whitespace();
            if bytes.get(self.pos) != Some(&b'"') {
                return Ok(());
            }
            self.token_start = self.pos;
            on_key(self.string()?);
            self.token_end = self.pos;
            self.skip_whitespace();
            if bytes.get(self.pos) != Some(&b':') {
                self.expect = Expect::Colon;
                return Ok(());
            }
            self.pos += 1;
            self.expect = Expect::Value;
            self.skip_whitespace();
            self.token_start = self.pos;
            match bytes.get(self.pos) {
                Some(b'"') => {
                    self.string()?;
                }
                Some(b'-' | b'0'..=b'9') => {
                    self.number()?;
                }
                Some(b't') => {
                    self.literal("true")?;
                }
                Some(b'f') => {
                    self.literal("false")?;
                }
                Some(b'n') => {
                    self.literal("null")?;
                }
                _ => return Ok(()),
            }
            self.after_value();
        }
        Ok(())
    }

    /// Consumes the rest of the container whose begin token was just returned.
    pub(crate) fn skip_container(&mut self) -> Result<(), ScanError> {
        let depth = self.stack.len();
        while self.stack.len() >= depth {
            if self.next()?.is_none() {
                return Err(self.error("unexpected end of input"));
            }
        }
        Ok(())
    }

    /// Consumes whatever value follows (after a key, or as an array element).
    pub(crate) fn skip_value(&mut self) -> Result<(), ScanError> {
        match self.next()? {
            Some(Token::BeginObject | Token::BeginArray) => self.skip_container(),
            Some(_) => Ok(()),
            None => Err(self.error("unexpected end of input")),
        }
    }

    /// Checks that nothing but whitespace is left.
    pub(crate) fn finish(&mut self) -> Result<(), ScanError> {
        match self.next()? {
            None => Ok(()),
            Some(_) => Err(self.error("trailing characters")),
        }
    }

    fn close(&mut self, token: Token<'a>) -> Token<'a> {
        self.stack.pop();
        self.after_value();
        token
    }

    /// Ends a value; a comma after it is taken right away.
    fn after_value(&mut self) {
        self.token_end = self.pos;
        let Some(&in_object) = self.stack.last() else {
            self.expect = Expect::Done;
            return;
        };
        self.skip_whitespace();
        if self.text.as_bytes().get(self.pos) == Some(&b',') {
            self.pos += 1;
            self.expect = if in_object {
                Expect::Key
            } else {
                Expect::Value
            };
        } else {
            self.expect = Expect::CommaOrEnd;
        }
    }

    fn open(&mut self, object: bool) -> Result<(), ScanError> {
        if self.stack.len() >= self.max_depth {
            return Err(ScanError::TooDeep {
                max_depth: self.max_depth,
            });
        }
        self.stack.push(object);
        self.pos += 1;
        self.token_end = self.pos;
        self.expect = if object {
            Expect::KeyOrEnd
        } else {
            Expect::ValueOrEnd
        };
        Ok(())
    }

    // Inlined: returning the token through memory from a separate function costs a
    // store-forwarding stall per value.
    #[inline(always)]
    fn value(&mut self, b: u8) -> Result<Token<'a>, ScanError> {
        let token = match b {
            b'{' => {
                self.open(true)?;
                return Ok(Token::BeginObject);
            }
            b'[' => {
                self.open(false)?;
                return Ok(Token::BeginArray);
            }
            b'"' => Token::Scalar(self.string()?),
            b'-' | b'0'..=b'9' => Token::Scalar(self.number()?),
            b't' => Token::Scalar(self.literal("true")?),
            b'f' => Token::Scalar(self.literal("false")?),
            b'n' => Token::Scalar(self.literal("null")?),
            _ => return Err(self.error("expected a value")),
        };
        self.after_value();
        Ok(token)
    }

    fn skip_whitespace(&mut self) {
        let bytes = self.text.as_bytes();
        while let Some(&b) = bytes.get(self.pos) {
            match b {
                b' ' | b'\t' => {}
                b'\n' | b'\r' => self.line_breaks += 1,
                _ => break,
            }
            self.pos += 1;
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<&'a str, ScanError> {
        let start = self.pos;
        if !self.text.as_bytes()[start..].starts_with(word.as_bytes()) {
            return Err(self.error("invalid literal"));
        }
        self.pos += word.len();
        Ok(&self.text[start..self.pos])
    }

    fn number(&mut self) -> Result<&'a str, ScanError> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let digits = |pos: &mut usize| {
            let from = *pos;
            while bytes.get(*pos).is_some_and(u8::is_ascii_digit) {
                *pos += 1;
            }
            *pos > from
        };
        let mut pos = start;
        if bytes[pos] == b'-' {
            pos += 1;
        }
        match bytes.get(pos) {
            Some(b'0') => pos += 1,
            Some(b'1'..=b'9') => {
                digits(&mut pos);
            }
            _ => {
                self.pos = pos;
                return Err(self.error("invalid number"));
            }
        }
        if bytes.get(pos) == Some(&b'.') {
            pos += 1;
            if !digits(&mut pos) {
                self.pos = pos;
                return Err(self.error("invalid number"));
            }
        }
        let mut exponent = false;
        if matches!(bytes.get(pos), Some(b'e' | b'E')) {
            exponent = true;
            pos += 1;
            if matches!(bytes.get(pos), Some(b'+' | b'-')) {
                pos += 1;
            }
            if !digits(&mut pos) {
                self.pos = pos;
                return Err(self.error("invalid number"));
            }
        }
        self.pos = pos;
        let text = &self.text[start..pos];
        // Only an exponent or some 309 digits take a number beyond f64.
        if (exponent || text.len() > 300) && !text.parse::<f64>().is_ok_and(f64::is_finite) {
            return Err(ScanError::NumberOutOfRange);
        }
        Ok(text)
    }

    /// A string starting at the current position (a quote); returns its JSON text.
    /// Inlined for the same reason as [`Self::value`].
    #[inline(always)]
    fn string(&mut self) -> Result<&'a str, ScanError> {
        let bytes = self.text.as_bytes();
        let start = self.pos;
        let mut pos = start + 1;
        self.escaped = false;
        loop {
            pos = skip_plain(bytes, pos);
            match bytes.get(pos) {
                None => {
                    self.pos = pos;
                    return Err(self.error("unterminated string"));
                }
                Some(b'"') => {
                    self.pos = pos + 1;
                    return Ok(&self.text[start..self.pos]);
                }
                Some(b'\\') => {
                    self.pos = pos;
                    self.escaped = true;
                    pos = self.escape(pos)?;
                }
                Some(_) => {
                    self.pos = pos;
                    return Err(self.error("control character in string"));
                }
            }
        }
    }

    /// Validates the escape at `backslash`; returns the offset just past it.
    fn escape(&self, backslash: usize) -> Result<usize, ScanError> {
        let bytes = self.text.as_bytes();
        match bytes.get(backslash + 1) {
            Some(b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't') => Ok(backslash + 2),
            Some(b'u') => {
                let unit = hex4(bytes, backslash + 2).ok_or(self.error("invalid \\u escape"))?;
                match unit {
                    0xD800..=0xDBFF => {
                        let low = (bytes.get(backslash + 6..backslash + 8) == Some(b"\\u"))
                            .then(|| hex4(bytes, backslash + 8))
                            .flatten();
                        match low {
                            Some(0xDC00..=0xDFFF) => Ok(backslash + 12),
                            _ => Err(ScanError::UnpairedSurrogate),
                        }
                    }
                    0xDC00..=0xDFFF => Err(ScanError::UnpairedSurrogate),
                    _ => Ok(backslash + 6),
                }
            }
            _ => Err(self.error("invalid escape")),
        }
    }
}

fn hex4(bytes: &[u8], at: usize) -> Option<u16> {
    let digits = bytes.get(at..at + 4)?;
    digits.iter().try_fold(0u16, |acc, &d| {
        let value = (d as char).to_digit(16)?;
        Some((acc << 4) | value as u16)
    })
}

/// Skips string content that needs no attention: everything but `"`, `\` and
/// control characters, sixteen bytes at a time (SSE2, which every x86-64 has).
#[cfg(target_arch = "x86_64")]
#[inline]
fn skip_plain(bytes: &[u8], mut pos: usize) -> usize {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128,
        _mm_set1_epi8,
    };
    while let Some(chunk) = bytes.get(pos..pos + 16) {
        // SAFETY: the load reads the 16 bytes of `chunk` (unaligned loads are fine);
        // the other intrinsics only compute on registers, with SSE2 always present.
        let special = unsafe {
            let v = _mm_loadu_si128(chunk.as_ptr().cast());
            let quote = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(v, _mm_set1_epi8(b'\\' as i8));
            // Unsigned v <= 0x1f.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(v, _mm_set1_epi8(0x1f)), v);
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
        };
        if special != 0 {
            return pos + special.trailing_zeros() as usize;
        }
        pos += 16;
    }
    skip_plain_swar(bytes, pos)
}

#[cfg(not(target_arch = "x86_64"))]
fn skip_plain(bytes: &[u8], pos: usize) -> usize {
    skip_plain_swar(bytes, pos)
}

/// [`skip_plain`] eight bytes at a time (SWAR).
#[inline]
fn skip_plain_swar(bytes: &[u8], mut pos: usize) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    /// The high bit of the first byte below `n` is set (and maybe of later ones).
    #[inline]
    fn below(word: u64, n: u8) -> u64 {
        word.wrapping_sub(ONES * n as u64) & !word & HIGHS
    }
    while let Some(chunk) = bytes.get(pos..pos + 8) {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let special = below(word ^ (ONES * b'"' as u64), 1)
            | below(word ^ (ONES * b'\\' as u64), 1)
            | below(word, 0x20);
        if special != 0 {
            return pos + (special.trailing_zeros() / 8) as usize;
        }
        pos += 8;
    }
    while let Some(&b) = bytes.get(pos) {
        if b == b'"' || b == b'\\' || b < 0x20 {
            break;
        }
        pos += 1;
    }
    pos
}

/// Checks that `text` is one JSON value within `max_depth`.
pub(crate) fn validate(text: &str, max_depth: usize) -> Result<(), ScanError> {
    let mut scanner = Scanner::new(text, max_depth);
    while scanner.next()?.is_some() {}
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(text: &str) -> Result<Vec<Token<'_>>, ScanError> {
        let mut scanner = Scanner::new(text, 64);
        let mut out = Vec::new();
        while let Some(token) = scanner.next()? {
            out.push(token);
        }
        Ok(out)
    }

    #[test]
    fn tokens_of_a_document() {
        use Token::*;
        assert_eq!(
            tokens(" {\"a\\n\": [1, -0.5e+3, \"x\\u00e9\", true, null, {}], \"b\": false}\n")
                .unwrap(),
            vec![
                BeginObject,
                Key("\"a\\n\""),
                BeginArray,
                Scalar("1"),
                Scalar("-0.5e+3"),
                Scalar("\"x\\u00e9\""),
                Scalar("true"),
                Scalar("null"),
                BeginObject,
                EndObject,
                EndArray,
                Key("\"b\""),
                Scalar("false"),
                EndObject,
            ]
        );
        assert_eq!(tokens("\"top\"").unwrap(), vec![Scalar("\"top\"")]);
        assert_eq!(tokens("[]").unwrap(), vec![BeginArray, EndArray]);
    }

    #[test]
    fn positions() {
        let text = "{\"a\":\r\n [1,\n2] , \"b\" : 3 }";
        let mut s = Scanner::new(text, 8);
        s.next().unwrap();
        assert_eq!(s.next().unwrap(), Some(Token::Key("\"a\"")));
        assert_eq!(s.next().unwrap(), Some(Token::BeginArray));
        assert_eq!(s.token_start(), 8);
        s.skip_container().unwrap();
        assert_eq!(&text[8..s.token_end()], "[1,\n2]");
        assert_eq!(s.depth(), 1);
        assert_eq!(s.next().unwrap(), Some(Token::Key("\"b\"")));
        assert_eq!(&text[s.token_start()..s.token_end()], "\"b\"");
        assert_eq!(s.next().unwrap(), Some(Token::Scalar("3")));
        assert_eq!(&text[s.token_start()..s.token_end()], "3");
        assert_eq!(s.next().unwrap(), Some(Token::EndObject));
        assert_eq!(s.next().unwrap(), None);
    }

    /// Agrees with serde_json on what is JSON, over hand-picked edge cases and
    /// pseudo-random mutations of a valid document.
    #[test]
    fn accepts_what_serde_json_accepts() {
        let accepts = |text: &str| validate(text, 1000).is_ok();
        let serde_accepts = |text: &str| serde_json::from_str::<serde_json::Value>(text).is_ok();
        let cases = [
            "",
            " ",
            "{",
            "}",
            "[",
            "]",
            "[1,]",
            "[,1]",
            "{\"a\":1,}",
            "{\"a\" 1}",
            "{1:2}",
            "{\"a\":}",
            "01",
            "-",
            "-01",
            "1.",
            ".5",
            "1e",
            "1e+",
            "+1",
            "1.5e3",
            "-0",
            "0.0e-0",
            "tru",
            "truex",
            "nul",
            "null",
            "NaN",
            "Infinity",
            "\"\\x\"",
            "\"\\u12\"",
            "\"\\u12g4\"",
            "\"a\tb\"",
            "\"\\t\"",
            "\"\u{7f}\u{e9}\u{1f600}\"",
            "[1 2]",
            "{} {}",
            "\u{feff}1",
            "[\"\\/\"]",
            "{\"a\":[{\"b\":[]}]}",
            "1 ",
            " \t\r\n[ ] ",
        ];
        for case in cases {
            assert_eq!(accepts(case), serde_accepts(case), "{case:?}");
        }
        let valid = r#"{"data": [{"id": "1", "n": -12.5e-3, "t": true, "x": null, "a": [1, {"b": "c\"\\"}]}], "meta": {}}"#;
        for text in mutations(valid, 0x9e37_79b9_7f4a_7c15) {
            assert_eq!(accepts(&text), serde_accepts(&text), "{text}");
        }
    }

    /// 20 000 variants of `valid`, each with one to three bytes replaced, inserted or
    /// removed (xorshift from `seed`).
    fn mutations(valid: &str, mut seed: u64) -> impl Iterator<Item = String> + '_ {
        let alphabet = b"{}[]\",:\\ 0123456789-+.eEtrufalsn\nx";
        let mut random = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        (0..20_000).map(move |_| {
            let mut bytes = valid.as_bytes().to_vec();
            for _ in 0..1 + random() % 3 {
                let at = random() as usize % bytes.len();
                let b = alphabet[random() as usize % alphabet.len()];
                match random() % 3 {
                    0 => bytes[at] = b,
                    1 => bytes.insert(at, b),
                    _ => {
                        bytes.remove(at);
                    }
                }
            }
            String::from_utf8(bytes).unwrap()
        })
    }

    /// Member names and how scanning ends, reading the scalar members of objects with
    /// `scalar_members` or not.
    fn keys(text: &str, members: bool) -> (Vec<&str>, Result<(), ScanError>) {
        let mut scanner = Scanner::new(text, 64);
        let mut keys = Vec::new();
        let mut scan = || loop {
            if members {
                scanner.scalar_members(|key| keys.push(key))?;
            }
            match scanner.next()? {
                None => return Ok(()),
                Some(Token::Key(key)) => keys.push(key),
                Some(_) => {}
            }
        };
        let end = scan();
        (keys, end)
    }

    #[test]
    fn scalar_members_read_as_next_does() {
        let valid = r#"{"a": {"b": "c\"", "d" :-1.5e3 , "e":true,"f":null,"g":[{"h":false}]}, "i": {}, "j": [1, {"k": "l"}]}"#;
        assert_eq!(keys(valid, true), keys(valid, false));
        for text in mutations(valid, 0x2545_f491_4f6c_dd1d) {
            assert_eq!(keys(&text, true), keys(&text, false), "{text}");
        }
    }

    #[test]
    fn skip_plain_stops_at_the_first_special_byte() {
        let alphabet = [
            b'a', b' ', b'"', b'\\', 0x1f, 0x00, 0x7f, 0x80, 0xc3, 0xff, b'!', b']',
        ];
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let len = (seed % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|i| {
                    let r = seed.rotate_left(i as u32 * 5);
                    // Mostly plain bytes, so runs longer than a word occur.
                    if r & 7 == 0 {
                        alphabet[(r >> 8) as usize % alphabet.len()]
                    } else {
                        b'x'
                    }
                })
                .collect();
            for start in 0..=len.min(3) {
                let expected = bytes[start..]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
                    .map_or(len, |p| p + start);
                assert_eq!(
                    skip_plain(&bytes, start),
                    expected,
                    "{bytes:?} from {start}"
                );
                assert_eq!(skip_plain_swar(&bytes, start), expected);
            }
        }
    }

    #[test]
    fn refuses_what_would_poison_the_output() {
        assert_eq!(
            validate("[[[1]]]", 2),
            Err(ScanError::TooDeep { max_depth: 2 })
        );
        assert!(validate("[[[1]]]", 3).is_ok());
        assert!(validate(&"[".repeat(100_000), 64).is_err());
        assert_eq!(
            validate(r#""\ud800""#, 8),
            Err(ScanError::UnpairedSurrogate)
        );
        assert_eq!(
            validate(r#""\udc00\ud800""#, 8),
            Err(ScanError::UnpairedSurrogate)
        );
        assert_eq!(
            validate(r#""\ud83d\u0041""#, 8),
            Err(ScanError::UnpairedSurrogate)
        );
        assert!(validate(r#""\ud83d\ude00""#, 8).is_ok());
        assert_eq!(validate("1e400", 8), Err(ScanError::NumberOutOfRange));
        assert_eq!(
            validate(&"9".repeat(400), 8),
            Err(ScanError::NumberOutOfRange)
        );
        assert!(validate("1e308", 8).is_ok());
        assert!(validate(&"1".repeat(300), 8).is_ok());
    }

    #[test]
    fn errors_say_where() {
        let text = "{\"a\": 1,\n \"b\" 2}";
        let err = validate(text, 8).unwrap_err();
        assert_eq!(
            err.describe(text),
            "The request body is not valid JSON: expected ':' at line 2 column 6."
        );
        assert_eq!(
            validate("", 8).unwrap_err().describe(""),
            "The request body is not valid JSON: unexpected end of input at line 1 column 1."
        );
    }
}
