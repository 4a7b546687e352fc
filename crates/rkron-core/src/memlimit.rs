//! The shell executor's `mem_limit` syntax: a byte count with an optional binary unit.
//!
//! Accepted forms are a plain number of bytes (`1024`) or a number followed by one of the units
//! `B`/`BYTES`, `K`/`KB`, `M`/`MB`, `G`/`GB`, `T`/`TB` (binary multiples, case-insensitive).
//! The number may carry a decimal fraction (`1.5GB`); the result is rounded down to whole bytes.

/// The largest number of fractional digits taken into account; further digits are ignored.
const MAX_FRACTION_DIGITS: usize = 18;

/// Parses a memory limit; `Ok(None)` means no limit (empty input).
///
/// Returns an error for unparsable numbers, unknown units, negative values, zero and values that
/// overflow a `u64`.
pub fn parse_mem_limit(s: &str) -> Result<Option<u64>, String> {
    let text = s.trim();
    if text.is_empty() {
        return Ok(None);
    }
    let number_end = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(number_end);
    let unit = unit.trim_start();
    if number.is_empty() {
        return Err(format!(
            "invalid memory limit {s:?}: expected a positive number of bytes with an optional unit \
             (B, KB, MB, GB, TB)"
        ));
    }
    let multiplier = unit_multiplier(unit).ok_or_else(|| {
        format!("invalid memory limit {s:?}: unknown unit {unit:?} (use B, KB, MB, GB or TB)")
    })?;
    let (integer_digits, fraction_digits) = match number.split_once('.') {
        Some((integer, fraction)) => (integer, fraction),
        None => (number, ""),
    };
    let is_well_formed = !integer_digits.is_empty()
        && integer_digits.bytes().all(|b| b.is_ascii_digit())
        && (!number.contains('.') || !fraction_digits.is_empty())
        && fraction_digits.bytes().all(|b| b.is_ascii_digit());
    if !is_well_formed {
        return Err(format!(
            "invalid memory limit {s:?}: malformed number {number:?}"
        ));
    }
    let too_large = || format!("invalid memory limit {s:?}: value is too large");
    let integer: u128 = integer_digits.parse().map_err(|_| too_large())?;
    let fraction_digits = &fraction_digits[..fraction_digits.len().min(MAX_FRACTION_DIGITS)];
    let fraction_bytes = if fraction_digits.is_empty() {
        0
    } else {
        let fraction: u128 = fraction_digits.parse().map_err(|_| too_large())?;
        let scale = 10u128.pow(u32::try_from(fraction_digits.len()).map_err(|_| too_large())?);
        fraction * multiplier / scale
    };
    let bytes = integer
        .checked_mul(multiplier)
        .and_then(|whole| whole.checked_add(fraction_bytes))
        .ok_or_else(too_large)?;
    let bytes = u64::try_from(bytes).map_err(|_| too_large())?;
    if bytes == 0 {
        return Err(format!(
            "invalid memory limit {s:?}: must be greater than zero"
        ));
    }
    Ok(Some(bytes))
}

/// Returns the number of bytes one `unit` stands for, or `None` for an unknown unit.
fn unit_multiplier(unit: &str) -> Option<u128> {
    let multiplier = match unit.to_ascii_uppercase().as_str() {
        "" | "B" | "BYTES" => 1,
        "K" | "KB" => 1 << 10,
        "M" | "MB" => 1 << 20,
        "G" | "GB" => 1 << 30,
        "T" | "TB" => 1 << 40,
        _ => return None,
    };
    Some(multiplier)
}

#[cfg(test)]
mod tests {
    use super::parse_mem_limit;

    #[test]
    fn empty_means_no_limit() {
        assert_eq!(parse_mem_limit(""), Ok(None));
    }

    #[test]
    fn accepts_documented_vectors() {
        let vectors = [
            ("1024", 1024),
            ("1KB", 1024),
            ("1MB", 1_048_576),
            ("2GB", 2_147_483_648),
            ("512mb", 536_870_912),
            ("1.5GB", 1_610_612_736),
        ];
        for (input, expected) in vectors {
            assert_eq!(
                parse_mem_limit(input),
                Ok(Some(expected)),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn accepts_every_unit_spelling() {
        let vectors = [
            ("7B", 7),
            ("7bytes", 7),
            ("2K", 2048),
            ("2kb", 2048),
            ("3m", 3 << 20),
            ("1g", 1 << 30),
            ("1T", 1 << 40),
            ("1TB", 1 << 40),
            ("0.5KB", 512),
            ("10 MB", 10 << 20),
        ];
        for (input, expected) in vectors {
            assert_eq!(
                parse_mem_limit(input),
                Ok(Some(expected)),
                "input {input:?}"
            );
        }
    }

    #[test]
    fn rejects_documented_error_vectors() {
        for input in ["invalid", "-100MB", "0", "100PB"] {
            let error = parse_mem_limit(input).expect_err(input);
            assert!(
                error.starts_with("invalid memory limit"),
                "input {input:?}: {error}"
            );
        }
    }

    #[test]
    fn rejects_malformed_and_overflowing_values() {
        for input in [
            "1.",
            ".5MB",
            "1.2.3",
            "MB",
            "0KB",
            "0.0001B",
            "99999999999TB",
            "1 M B",
        ] {
            assert!(parse_mem_limit(input).is_err(), "input {input:?}");
        }
    }

    #[test]
    fn error_messages_name_the_problem() {
        assert!(
            parse_mem_limit("100PB")
                .unwrap_err()
                .contains("unknown unit \"PB\"")
        );
        assert!(
            parse_mem_limit("0")
                .unwrap_err()
                .contains("greater than zero")
        );
        assert!(
            parse_mem_limit("-100MB")
                .unwrap_err()
                .contains("expected a positive number")
        );
    }
}
