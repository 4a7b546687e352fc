//! Parsers for configuration value formats: Go booleans, ports, host:port addresses, byte sizes, tags and headers.
//!
//! Each parser returns the reason for a rejection; the caller adds the key, the source and the value.

use std::net::{IpAddr, Ipv6Addr};

/// Parses a boolean as Go's `strconv.ParseBool` does: `1 t T TRUE true True 0 f F FALSE false False`.
pub(crate) fn parse_go_bool(text: &str) -> Result<bool, String> {
    match text.trim() {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("expected true or false".to_string()),
    }
}

/// Parses a whole number within `range`; any failure is reported as `expected`.
pub(super) fn parse_uint(
    text: &str,
    range: std::ops::RangeInclusive<u64>,
    expected: &str,
) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(number) if range.contains(&number) => Ok(number),
        _ => Err(expected.to_string()),
    }
}

/// A validated address: a host (IP address or DNS name, possibly empty) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct HostPort {
    pub(super) host: String,
    pub(super) port: u16,
}

impl std::fmt::Display for HostPort {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// How [`parse_host_port`] treats a missing part.
#[derive(Debug, Clone, Copy)]
pub(super) struct AddressRules {
    /// The port used when the address has none; `None` makes the port required.
    pub(super) default_port: Option<u16>,
    /// Whether `:port` (all interfaces) is allowed.
    pub(super) allow_empty_host: bool,
}

/// Parses `host`, `host:port`, `[v6]:port`, a bare IPv6 address, or `:port` (when allowed).
///
/// The host is checked for syntax only; names are resolved when the address is used.
/// go-sockaddr templates (`{{ GetPrivateIP }}`), which Dkron accepts, are rejected with a
/// reason that says so.
pub(super) fn parse_host_port(
    text: &str,
    rules: AddressRules,
    expected: &str,
) -> Result<HostPort, String> {
    let text = text.trim();
    if text.contains("{{") {
        return Err(
            "go-sockaddr templates are not supported; give an IP address or host name".to_string(),
        );
    }
    let fail = || Err(expected.to_string());
    let (host, port_text) = if let Some(rest) = text.strip_prefix('[') {
        let Some((inside, after)) = rest.split_once(']') else {
            return fail();
        };
        if inside.parse::<Ipv6Addr>().is_err() {
            return fail();
        }
        let port_text = match after {
            "" => None,
            _ => match after.strip_prefix(':') {
                Some(port) => Some(port),
                None => return fail(),
            },
        };
        (inside.to_string(), port_text)
    } else if let Ok(ip) = text.parse::<IpAddr>() {
        (ip.to_string(), None)
    } else if let Some((host, port)) = text.rsplit_once(':') {
        if host.contains(':') {
            return fail();
        }
        (host.to_string(), Some(port))
    } else {
        (text.to_string(), None)
    };
    let host_ok = if host.is_empty() {
        rules.allow_empty_host && port_text.is_some()
    } else {
        host.parse::<IpAddr>().is_ok() || is_host_name(&host)
    };
    if !host_ok {
        return fail();
    }
    let port = match (port_text, rules.default_port) {
        (Some(port), _) => match port.parse::<u16>() {
            Ok(port) => port,
            Err(_) => return fail(),
        },
        (None, Some(default)) => default,
        (None, None) => return fail(),
    };
    Ok(HostPort { host, port })
}

/// Returns whether `name` is a syntactically valid DNS host name (underscores tolerated).
fn is_host_name(name: &str) -> bool {
    let looks_numeric = name.chars().all(|c| c.is_ascii_digit() || c == '.');
    !looks_numeric
        && name.len() <= 253
        && name.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        })
}

/// Parses a byte size: a whole number of bytes, optionally followed by a unit
/// (`B`, `KB`/`MB`/`GB` in powers of 1000, `KiB`/`MiB`/`GiB` in powers of 1024; case-insensitive).
pub(super) fn parse_byte_size(text: &str) -> Option<u64> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let number: u64 = digits.parse().ok()?;
    let multiplier: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return None,
    };
    number.checked_mul(multiplier)
}

/// Parses a `key=value` tag as Dkron does: split at the first `=`, trim both sides, key non-empty.
pub(super) fn parse_tag(text: &str) -> Option<(String, String)> {
    let (key, value) = text.split_once('=')?;
    let key = key.trim();
    if key.is_empty() {
        return None;
    }
    Some((key.to_string(), value.trim().to_string()))
}

/// Checks a `Name: value` header: there is a colon and the name is a non-empty token.
pub(super) fn check_header(text: &str) -> Result<(), String> {
    let valid = text.split_once(':').is_some_and(|(name, _)| {
        let name = name.trim();
        !name.is_empty()
            && name
                .chars()
                .all(|c| c.is_ascii_graphic() && !"()<>@,;:\\\"/[]?={}".contains(c))
    });
    if valid {
        Ok(())
    } else {
        Err("expected a header \"Name: value\"".to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BIND: AddressRules = AddressRules {
        default_port: Some(8946),
        allow_empty_host: false,
    };
    const LISTEN: AddressRules = AddressRules {
        default_port: None,
        allow_empty_host: true,
    };

    fn address(text: &str, rules: AddressRules) -> Result<String, String> {
        parse_host_port(text, rules, "bad").map(|hp| hp.to_string())
    }

    #[test]
    fn go_bool_accepts_strconv_forms_only() {
        for yes in ["1", "t", "T", "TRUE", "true", "True"] {
            assert_eq!(parse_go_bool(yes), Ok(true));
        }
        for no in ["0", "f", "F", "FALSE", "false", "False"] {
            assert_eq!(parse_go_bool(no), Ok(false));
        }
        for bad in ["yes", "on", "", "tRUE", "2"] {
            assert!(parse_go_bool(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addresses_get_default_ports_and_brackets() {
        assert_eq!(address("10.0.0.5", BIND).unwrap(), "10.0.0.5:8946");
        assert_eq!(address("10.0.0.5:7946", BIND).unwrap(), "10.0.0.5:7946");
        assert_eq!(address("::1", BIND).unwrap(), "[::1]:8946");
        assert_eq!(address("[::1]", BIND).unwrap(), "[::1]:8946");
        assert_eq!(address("[fe80::1]:99", BIND).unwrap(), "[fe80::1]:99");
        assert_eq!(
            address("node-1.example.com", BIND).unwrap(),
            "node-1.example.com:8946"
        );
        assert_eq!(address(":8080", LISTEN).unwrap(), ":8080");
        assert_eq!(address("127.0.0.1:0", LISTEN).unwrap(), "127.0.0.1:0");
    }

    #[test]
    fn bad_addresses_are_rejected() {
        for bad in [
            "not an address",
            "",
            ":8946",
            "host:99999",
            "host:abc",
            "fe80::1:99:zz",
            "[::1",
            "[nothex]:1",
            "300.1.1.1",
            "-host",
            "a..b",
        ] {
            assert!(address(bad, BIND).is_err(), "{bad:?}");
        }
        assert!(address("localhost", LISTEN).is_err(), "port is required");
        assert!(address(":", LISTEN).is_err());
        let template = address("{{ GetPrivateIP }}:8946", BIND).unwrap_err();
        assert!(template.contains("go-sockaddr templates"), "{template}");
    }

    #[test]
    fn byte_sizes_take_units() {
        assert_eq!(parse_byte_size("1048576"), Some(1_048_576));
        assert_eq!(parse_byte_size("64MiB"), Some(64 << 20));
        assert_eq!(parse_byte_size("2 kb"), Some(2_000));
        assert_eq!(parse_byte_size("1GiB"), Some(1 << 30));
        assert_eq!(parse_byte_size("10B"), Some(10));
        for bad in ["", "MiB", "1.5MiB", "-1", "1 TB", "99999999999999999999"] {
            assert_eq!(parse_byte_size(bad), None, "{bad}");
        }
    }

    #[test]
    fn tags_split_at_the_first_equals() {
        assert_eq!(parse_tag("a=b"), Some(("a".into(), "b".into())));
        assert_eq!(parse_tag(" a = b=c "), Some(("a".into(), "b=c".into())));
        assert_eq!(parse_tag("a="), Some(("a".into(), String::new())));
        assert_eq!(parse_tag("=b"), None);
        assert_eq!(parse_tag("ab"), None);
    }

    #[test]
    fn headers_need_a_name_and_a_colon() {
        assert!(check_header("X-Token: abc").is_ok());
        assert!(check_header("Host:example.com").is_ok());
        assert!(check_header("Accept: a, b").is_ok());
        assert!(check_header("no colon").is_err());
        assert!(check_header(": value").is_err());
        assert!(check_header("Bad Name: value").is_err());
    }
}
