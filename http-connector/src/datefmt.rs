//! .NET custom date and time format strings (the dialect AEP's `scheduleStartParamFormat`
//! and `paramFormat` are written in), applied to UTC times with the invariant culture.
//! `yyyy-MM-ddTHH:mm:ssZ`: `T` and `Z` are not specifiers and are copied as they are.

use chrono::{DateTime, Datelike, Timelike, Utc};

use crate::error::SpecError;

const MONTHS: [&str; 12] = [
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
];
const DAYS: [&str; 7] = [
    "Monday",
    "Tuesday",
    "Wednesday",
    "Thursday",
    "Friday",
    "Saturday",
    "Sunday",
];

/// Formats `time` by `format`. Errors only for a format .NET rejects too (an unclosed
/// quote, a trailing backslash, more than seven fraction digits).
pub fn format(time: DateTime<Utc>, format: &str) -> Result<String, SpecError> {
    let chars: Vec<char> = format.chars().collect();
    let bad = |message: &str| SpecError::new(format!("date format {format:?}"), message);
    let mut out = String::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        let run = chars[i..].iter().take_while(|&&x| x == c).count();
        match c {
            'y' => {
                let year = time.year();
                match run {
                    1 => out.push_str(&(year % 100).to_string()),
                    2 => out.push_str(&format!("{:02}", year % 100)),
                    n => out.push_str(&format!("{year:0n$}")),
                }
            }
            'M' => month(&mut out, time.month(), run),
            'd' => match run {
                1 => out.push_str(&time.day().to_string()),
                2 => out.push_str(&format!("{:02}", time.day())),
                3 => out.push_str(&DAYS[time.weekday().num_days_from_monday() as usize][..3]),
                _ => out.push_str(DAYS[time.weekday().num_days_from_monday() as usize]),
            },
            'H' => two(&mut out, time.hour(), run),
            'h' => two(&mut out, (time.hour() + 11) % 12 + 1, run),
            'm' => two(&mut out, time.minute(), run),
            's' => two(&mut out, time.second(), run),
            'f' | 'F' => {
                if run > 7 {
                    return Err(bad("more than seven fraction digits"));
                }
                let digits = format!("{:09}", time.nanosecond().min(999_999_999));
                let digits = &digits[..run];
                if c == 'f' {
                    out.push_str(digits);
                } else {
                    let trimmed = digits.trim_end_matches('0');
                    if trimmed.is_empty() {
                        // .NET drops the decimal point before an empty `F` fraction too.
                        if out.ends_with('.') {
                            out.pop();
                        }
                    } else {
                        out.push_str(trimmed);
                    }
                }
            }
            't' => {
                let designator = if time.hour() < 12 { "AM" } else { "PM" };
                out.push_str(if run == 1 {
                    &designator[..1]
                } else {
                    designator
                });
            }
            // A UTC time: `K` is `Z`, the `z` offsets are zero.
            'K' => out.push_str(&"Z".repeat(run)),
            'z' => out.push_str(match run {
                1 => "+0",
                2 => "+00",
                _ => "+00:00",
            }),
            'g' => out.push_str("A.D."),
            '\'' | '"' => {
                let end = chars[i + 1..]
                    .iter()
                    .position(|&x| x == c)
                    .ok_or_else(|| bad("a quoted literal is not closed"))?;
                out.extend(&chars[i + 1..i + 1 + end]);
                i += end + 2;
                continue;
            }
            '\\' => {
                let next = chars
                    .get(i + 1)
                    .ok_or_else(|| bad("ends with a backslash"))?;
                out.push(*next);
                i += 2;
                continue;
            }
            // `%c` is the specifier `c` on its own.
            '%' => {
                i += 1;
                continue;
            }
            other => {
                out.push(other);
                i += 1;
                continue;
            }
        }
        i += run;
    }
    Ok(out)
}

fn month(out: &mut String, month: u32, run: usize) {
    let name = MONTHS[month as usize - 1];
    match run {
        1 => out.push_str(&month.to_string()),
        2 => out.push_str(&format!("{month:02}")),
        3 => out.push_str(&name[..3]),
        _ => out.push_str(name),
    }
}

fn two(out: &mut String, value: u32, run: usize) {
    if run == 1 {
        out.push_str(&value.to_string());
    } else {
        out.push_str(&format!("{value:02}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn time() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2024, 3, 5, 14, 7, 9).unwrap()
            + chrono::Duration::nanoseconds(120_450_000)
    }

    #[test]
    fn the_formats_of_the_aep_documents() {
        assert_eq!(
            format(time(), "yyyy-MM-ddTHH:mm:ssZ").unwrap(),
            "2024-03-05T14:07:09Z"
        );
        assert_eq!(
            format(time(), "yyyy-MM-ddTHH:mm:ss:fffffffK").unwrap(),
            "2024-03-05T14:07:09:1204500Z"
        );
        assert_eq!(
            format(time(), "yyyy-MM-ddTHH:mm:ssK").unwrap(),
            "2024-03-05T14:07:09Z"
        );
    }

    #[test]
    fn short_forms_twelve_hour_clock_and_offsets() {
        assert_eq!(
            format(time(), "yy M d H h tt t").unwrap(),
            "24 3 5 14 2 PM P"
        );
        assert_eq!(format(time(), "hh:mm zzz zz").unwrap(), "02:07 +00:00 +00");
        assert_eq!(format(time(), "%d").unwrap(), "5");
        assert_eq!(format(time(), "MMM MMMM ddd").unwrap(), "Mar March Tue");
    }

    #[test]
    fn fractions_f_and_f_upper() {
        assert_eq!(format(time(), "ss.f ff fff").unwrap(), "09.1 12 120");
        assert_eq!(format(time(), "ss.FFFFFFF").unwrap(), "09.12045");
        let whole = Utc.with_ymd_and_hms(2024, 3, 5, 0, 0, 9).unwrap();
        assert_eq!(format(whole, "ss.FFFK").unwrap(), "09Z");
        assert!(format(whole, "ffffffff").is_err());
    }

    #[test]
    fn quoted_and_escaped_literals() {
        assert_eq!(
            format(time(), "'yyyy is' yyyy \"at\" \\H\\H HH").unwrap(),
            "yyyy is 2024 at HH 14"
        );
        assert!(format(time(), "yyyy 'open").is_err());
        assert!(format(time(), "yyyy\\").is_err());
    }
}
