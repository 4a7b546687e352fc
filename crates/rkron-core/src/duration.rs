//! Go `time.ParseDuration` syntax (`1h30m10s`, `1.5h`, `500ms`), used by `@every` and job timeouts.
//!
//! The grammar is Go's: an optional sign, then one or more `<decimal><unit>` pairs, where the decimal
//! may have a fraction (`1.5`, `.5`, `1.`) and the unit is one of `ns`, `us`, `µs`, `μs`, `ms`, `s`,
//! `m`, `h`; `0` alone needs no unit.
//! Error texts are Go's, byte for byte, so that messages match Dkron's.
//! rkron only needs non-negative durations: a negative one (which Go accepts) is reported as
//! `time: invalid duration "-1s"`; `-0` is zero.

use std::fmt::Write as _;
use std::time::Duration;

/// The largest magnitude Go allows before the sign is applied (`1 << 63` nanoseconds).
const MAGNITUDE_LIMIT: u64 = 1 << 63;

/// Parses a Go duration such as `1h30m10s`, `1.5h` or `500ms`.
///
/// Returns Go's error text on failure (`time: invalid duration "x"`,
/// `time: missing unit in duration "1"`, `time: unknown unit "q" in duration "1q"`).
/// Negative non-zero durations are rejected with `time: invalid duration "<input>"`.
pub fn parse_go_duration(s: &str) -> Result<Duration, String> {
    let invalid = || format!("time: invalid duration {}", go_quote(s));
    let mut rest = s;
    let mut negative = false;
    if let Some(stripped) = rest.strip_prefix('-') {
        negative = true;
        rest = stripped;
    } else if let Some(stripped) = rest.strip_prefix('+') {
        rest = stripped;
    }
    if rest == "0" {
        return Ok(Duration::ZERO);
    }
    if rest.is_empty() {
        return Err(invalid());
    }
    let mut total_nanos: u64 = 0;
    while !rest.is_empty() {
        let bytes = rest.as_bytes();
        if !(bytes[0] == b'.' || bytes[0].is_ascii_digit()) {
            return Err(invalid());
        }
        let (whole, digits_before, after_whole) = leading_int(rest).ok_or_else(invalid)?;
        rest = after_whole;
        let mut fraction = 0u64;
        let mut scale = 1f64;
        let mut digits_after = false;
        if let Some(after_dot) = rest.strip_prefix('.') {
            let (value, value_scale, consumed, after_fraction) = leading_fraction(after_dot);
            fraction = value;
            scale = value_scale;
            digits_after = consumed;
            rest = after_fraction;
        }
        if !digits_before && !digits_after {
            return Err(invalid());
        }
        let unit_len = rest
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(rest.len());
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", go_quote(s)));
        }
        let unit_text = &rest[..unit_len];
        rest = &rest[unit_len..];
        let Some(unit) = unit_nanos(unit_text) else {
            return Err(format!(
                "time: unknown unit {} in duration {}",
                go_quote(unit_text),
                go_quote(s)
            ));
        };
        if whole > MAGNITUDE_LIMIT / unit {
            return Err(invalid());
        }
        let mut value = whole * unit;
        if fraction > 0 {
            // Go converts through float64 here; the same rounding is kept on purpose.
            let fraction_nanos = (fraction as f64 * (unit as f64 / scale)) as u64;
            value = value.checked_add(fraction_nanos).ok_or_else(invalid)?;
            if value > MAGNITUDE_LIMIT {
                return Err(invalid());
            }
        }
        total_nanos = total_nanos.checked_add(value).ok_or_else(invalid)?;
        if total_nanos > MAGNITUDE_LIMIT {
            return Err(invalid());
        }
    }
    if total_nanos > MAGNITUDE_LIMIT - 1 {
        return Err(invalid());
    }
    if negative && total_nanos != 0 {
        return Err(invalid());
    }
    Ok(Duration::from_nanos(total_nanos))
}

/// Returns the length of one `unit` in nanoseconds, or `None` for an unknown unit.
fn unit_nanos(unit: &str) -> Option<u64> {
    let nanos = match unit {
        "ns" => 1,
        // U+00B5 (micro sign) and U+03BC (Greek small letter mu), as Go accepts both.
        "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
        "ms" => 1_000_000,
        "s" => 1_000_000_000,
        "m" => 60 * 1_000_000_000,
        "h" => 3_600 * 1_000_000_000,
        _ => return None,
    };
    Some(nanos)
}

/// Consumes leading ASCII digits of `s`.
///
/// Returns the value, whether any digit was consumed, and the remainder; `None` on overflow.
fn leading_int(s: &str) -> Option<(u64, bool, &str)> {
    let digit_count = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut value: u64 = 0;
    for digit in s.bytes().take(digit_count) {
        if value > MAGNITUDE_LIMIT / 10 {
            return None;
        }
        value = value * 10 + u64::from(digit - b'0');
        if value > MAGNITUDE_LIMIT {
            return None;
        }
    }
    Some((value, digit_count > 0, &s[digit_count..]))
}

/// Consumes the digits of a fraction (after the dot), ignoring digits that would overflow.
///
/// Returns the value, its scale (a power of ten), whether any digit was consumed, and the
/// remainder.
fn leading_fraction(s: &str) -> (u64, f64, bool, &str) {
    let digit_count = s.bytes().take_while(u8::is_ascii_digit).count();
    let mut value: u64 = 0;
    let mut scale = 1f64;
    let mut overflowed = false;
    for digit in s.bytes().take(digit_count) {
        if overflowed {
            continue;
        }
        if value > (MAGNITUDE_LIMIT - 1) / 10 {
            overflowed = true;
            continue;
        }
        let next = value * 10 + u64::from(digit - b'0');
        if next > MAGNITUDE_LIMIT {
            overflowed = true;
            continue;
        }
        value = next;
        scale *= 10.0;
    }
    (value, scale, digit_count > 0, &s[digit_count..])
}

/// Quotes `s` the way Go's `time` package does in its errors: ASCII is kept (with `"` and `\`
/// escaped), and each byte of non-ASCII or control characters is written as `\xNN`.
fn go_quote(s: &str) -> String {
    let mut quoted = String::with_capacity(s.len() + 2);
    quoted.push('"');
    for character in s.chars() {
        if !character.is_ascii() || character < ' ' {
            let mut buffer = [0u8; 4];
            for byte in character.encode_utf8(&mut buffer).bytes() {
                // Writing to a String cannot fail.
                let _ = write!(quoted, "\\x{byte:02x}");
            }
        } else {
            if character == '"' || character == '\\' {
                quoted.push('\\');
            }
            quoted.push(character);
        }
    }
    quoted.push('"');
    quoted
}

#[cfg(test)]
mod tests {
    use super::parse_go_duration;
    use std::time::Duration;

    fn ok(text: &str) -> Duration {
        parse_go_duration(text).unwrap_or_else(|error| panic!("{text}: {error}"))
    }

    #[test]
    fn parses_every_unit() {
        assert_eq!(ok("7ns"), Duration::from_nanos(7));
        assert_eq!(ok("7us"), Duration::from_micros(7));
        assert_eq!(ok("7\u{b5}s"), Duration::from_micros(7));
        assert_eq!(ok("7\u{3bc}s"), Duration::from_micros(7));
        assert_eq!(ok("7ms"), Duration::from_millis(7));
        assert_eq!(ok("7s"), Duration::from_secs(7));
        assert_eq!(ok("7m"), Duration::from_secs(7 * 60));
        assert_eq!(ok("7h"), Duration::from_secs(7 * 3600));
    }

    #[test]
    fn parses_zero_signs_decimals_and_concatenation() {
        assert_eq!(ok("0"), Duration::ZERO);
        assert_eq!(ok("+0"), Duration::ZERO);
        assert_eq!(ok("-0"), Duration::ZERO);
        assert_eq!(ok("0s"), Duration::ZERO);
        assert_eq!(ok("+5s"), Duration::from_secs(5));
        assert_eq!(ok("1.5h"), Duration::from_secs(5400));
        assert_eq!(ok(".5s"), Duration::from_millis(500));
        assert_eq!(ok("1.s"), Duration::from_secs(1));
        assert_eq!(ok("1h30m10s"), Duration::from_secs(5410));
        assert_eq!(ok("1h1h"), Duration::from_secs(7200));
        assert_eq!(ok("2m3.25s"), Duration::from_millis(123_250));
        assert_eq!(ok("1.0000000001s"), Duration::from_nanos(1_000_000_000));
        assert_eq!(ok("100.00100s"), Duration::from_nanos(100_001_000_000));
        assert_eq!(
            ok("9223372036854775807ns"),
            Duration::from_nanos(i64::MAX as u64)
        );
        assert_eq!(ok("2562047h"), Duration::from_secs(2_562_047 * 3600));
    }

    #[test]
    fn reports_go_error_texts() {
        let cases = [
            ("", r#"time: invalid duration """#),
            ("x", r#"time: invalid duration "x""#),
            ("3", r#"time: missing unit in duration "3""#),
            ("1h2", r#"time: missing unit in duration "1h2""#),
            ("1q", r#"time: unknown unit "q" in duration "1q""#),
            ("1d", r#"time: unknown unit "d" in duration "1d""#),
            ("s", r#"time: invalid duration "s""#),
            (".s", r#"time: invalid duration ".s""#),
            ("-", r#"time: invalid duration "-""#),
            ("+", r#"time: invalid duration "+""#),
            ("1s ", r#"time: unknown unit "s " in duration "1s ""#),
            (" 1s", r#"time: invalid duration " 1s""#),
            (
                "9223372036854775808ns",
                r#"time: invalid duration "9223372036854775808ns""#,
            ),
            ("2562048h", r#"time: invalid duration "2562048h""#),
            ("-1s", r#"time: invalid duration "-1s""#),
            (
                "1\u{e9}",
                r#"time: unknown unit "\xc3\xa9" in duration "1\xc3\xa9""#,
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(
                parse_go_duration(input),
                Err(expected.to_owned()),
                "input {input:?}"
            );
        }
    }
}
