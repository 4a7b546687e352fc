//! Schedules: Dkron's cron dialect, descriptors, `@every`, `@at`, `@manually`, `~` and time zones.
//!
//! # Syntax
//!
//! A spec is an optional `TZ=<zone> ` or `CRON_TZ=<zone> ` prefix followed by either
//! - six cron fields `sec min hour dom month dow` (Dkron, robfig/cron v3 grammar), or five
//!   crontab fields `min hour dom month dow` (rkron extension, seconds = 0);
//! - a descriptor: `@yearly`/`@annually`, `@monthly`, `@weekly`, `@daily`/`@midnight`, `@hourly`,
//!   `@minutely`, `@every <go duration>`, `@at <RFC 3339>` or `@manually`.
//!
//! A prefix zone wins over the job's zone; without either the zone is UTC.
//! Before parsing, each `~` of a cron spec is replaced by a value derived from the job name
//! (see [`substitute_hash`]).
//!
//! # Deliberate differences from Dkron
//!
//! - Descriptors such as `@daily` are evaluated in the job's zone (Dkron uses the server's zone).
//! - `@every <d>` fires at the whole seconds `t` (since the Unix epoch) with
//!   `(t - phase) % interval == 0`, where `interval` is `d` rounded down to whole seconds (at least
//!   one) and `phase = stable_name_hash(job_name) % interval` ([`stable_name_hash`] is FNV-1a 64).
//!   Jobs sharing an interval are spread over it instead of all firing on the same second, and
//!   the fire times are a pure function of spec and name, so a new leader computes the same ones.
//!   Dkron instead counts the interval from the moment the job was (re)scheduled.
//! - Five-field crontab specs are accepted; `7` is accepted as Sunday.
//! - `@at` is also recognised after a `TZ=` prefix (the instant carries its own offset).
//!
//! # Daylight saving time (Vixie cron's rule, not robfig's)
//!
//! Cron fields are matched against the local wall-clock time in the schedule's zone.
//! When the clocks jump, the schedule's kind decides:
//!
//! - A **fixed-time** schedule is one whose seconds, minutes and hours fields each match exactly
//!   one value (`0 30 2 * * *`, `@daily`, `@weekly`, `@monthly`, `@yearly`). It runs once on each
//!   matching day:
//!   - if its local time is skipped by a spring-forward gap, it runs once at the first instant
//!     after the gap (New York, 2012-03-11: `0 30 2 * * *` runs at 03:00 EDT);
//!   - if its local time occurs twice because of a fall-back, it runs only at the first
//!     occurrence (New York, 2012-11-04: `0 0 1 * * *` runs at 01:00 EDT, not again at 01:00 EST).
//! - Every other schedule (a **wildcard** one: several seconds, minutes or hours, such as
//!   `@hourly`, `0 */15 * * * *` or `0 0,30 2 * * *`) follows the wall clock through both
//!   transitions: local times skipped by a gap do not happen, and local times that occur twice
//!   fire twice (`0 0 * * * *` fires at 01:00 EDT and again at 01:00 EST on 2012-11-04).
//!
//! Robfig (and so Dkron) instead skips fixed times in a gap and fires repeated times twice.
//! The search looks at most five calendar years ahead (robfig's limit); a spec that matches no
//! existing date in that window (`0 0 0 30 Feb ?`) never fires.

mod cron;
#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::time::Duration;

use chrono::{DateTime, FixedOffset, TimeDelta, Utc};
use chrono_tz::Tz;

use crate::duration::parse_go_duration;
use cron::{CronFields, CronSchedule};

/// A parsed schedule: when a job fires on its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    repr: Repr,
}

/// The internal form of each kind of schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    /// Cron fields (including the cron-like descriptors) in a zone.
    Cron(CronSchedule),
    /// `@every`: whole seconds `t` with `(t - phase_seconds) % interval_seconds == 0`.
    Every {
        interval_seconds: i64,
        phase_seconds: i64,
    },
    /// `@at`: once, at that instant.
    At(DateTime<FixedOffset>),
    /// `@manually`: never on its own.
    Manual,
}

/// The kind of a [`Schedule`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ScheduleKind {
    /// Cron fields or a cron-like descriptor (`@daily`, `@hourly`, …).
    Cron,
    /// `@every <duration>`.
    Every,
    /// `@at <RFC 3339>`: one shot.
    At,
    /// `@manually`: never fires on its own.
    Manual,
}

/// Why a schedule spec does not parse; the text follows robfig/Dkron.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ScheduleError(pub String);

impl Schedule {
    /// Parses `spec` for job `job_name` in `timezone` (an IANA name; empty = UTC).
    ///
    /// A `TZ=`/`CRON_TZ=` prefix in the spec wins over `timezone`; `~` is replaced first
    /// (see [`substitute_hash`]).
    pub fn parse(spec: &str, job_name: &str, timezone: &str) -> Result<Self, ScheduleError> {
        let substituted = substitute_hash(spec, job_name);
        let spec_text = substituted.trim();
        if spec_text.is_empty() {
            return Err(ScheduleError("empty spec string".to_owned()));
        }
        let (prefix_zone, body) = split_zone_prefix(spec_text)?;
        let zone = match prefix_zone {
            Some(zone) => zone,
            None => load_zone(timezone)?,
        };
        if body.is_empty() {
            return Err(ScheduleError("empty spec string".to_owned()));
        }
        let repr = if body.starts_with('@') {
            parse_descriptor(body, job_name, zone)?
        } else {
            Repr::Cron(CronSchedule {
                fields: parse_cron_fields(body)?,
                zone,
            })
        };
        Ok(Self { repr })
    }

    /// Returns the first fire time strictly after `after`, or `None` if it never fires again
    /// (`@manually`, a past `@at`, or no match within the search horizon).
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.repr {
            Repr::Cron(cron) => cron.next_after(after),
            Repr::Every {
                interval_seconds,
                phase_seconds,
            } => {
                let earliest = after.timestamp().checked_add(1)?;
                // i128: the phase can be as large as the interval (up to ~292 years of seconds).
                let wait = (i128::from(*phase_seconds) - i128::from(earliest))
                    .rem_euclid(i128::from(*interval_seconds));
                let fire = i64::try_from(i128::from(earliest) + wait).ok()?;
                DateTime::from_timestamp(fire, 0)
            }
            Repr::At(at) => {
                let at = at.with_timezone(&Utc);
                (at > after).then_some(at)
            }
            Repr::Manual => None,
        }
    }

    /// Tells whether the schedule fires exactly at `instant`.
    pub fn fires_at(&self, instant: DateTime<Utc>) -> bool {
        if let Repr::At(at) = &self.repr {
            return at.with_timezone(&Utc) == instant;
        }
        if instant.timestamp_subsec_nanos() != 0 {
            return false;
        }
        instant
            .checked_sub_signed(TimeDelta::seconds(1))
            .and_then(|before| self.next_after(before))
            == Some(instant)
    }

    /// Returns the kind of schedule.
    pub fn kind(&self) -> ScheduleKind {
        match self.repr {
            Repr::Cron(_) => ScheduleKind::Cron,
            Repr::Every { .. } => ScheduleKind::Every,
            Repr::At(_) => ScheduleKind::At,
            Repr::Manual => ScheduleKind::Manual,
        }
    }

    /// Tells whether the schedule is `@manually` (never fires on its own).
    pub fn is_manual(&self) -> bool {
        matches!(self.repr, Repr::Manual)
    }

    /// Returns the interval of an `@every` schedule (whole seconds, at least one).
    pub fn every_interval(&self) -> Option<Duration> {
        match self.repr {
            Repr::Every {
                interval_seconds, ..
            } => Some(Duration::from_secs(interval_seconds.unsigned_abs())),
            _ => None,
        }
    }

    /// Returns the zone the cron fields are evaluated in (`None` for `@every`, `@at`,
    /// `@manually`).
    pub fn timezone(&self) -> Option<Tz> {
        match &self.repr {
            Repr::Cron(cron) => Some(cron.zone),
            _ => None,
        }
    }
}

/// Loads an IANA zone; empty means UTC. The error is Go's text (`unknown time zone X`).
pub fn parse_timezone(tz: &str) -> Result<Option<chrono_tz::Tz>, String> {
    if tz.is_empty() {
        return Ok(None);
    }
    tz.parse::<chrono_tz::Tz>()
        .map(Some)
        .map_err(|_| format!("unknown time zone {tz}"))
}

/// Returns the stable 64-bit hash of a job name that spreads `@every` jobs: FNV-1a 64 of its
/// UTF-8 bytes.
///
/// It is fixed forever (fire times of existing jobs depend on it), unlike std's `RandomState`.
pub fn stable_name_hash(job_name: &str) -> u64 {
    const OFFSET_BASIS: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    job_name.bytes().fold(OFFSET_BASIS, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(PRIME)
    })
}

/// Replaces each `~` of a cron spec with a value derived from the job name (Dkron's hash symbol).
///
/// With `h` the sum of the Unicode code points of `job_name`, a `~` in the seconds or minutes field
/// becomes `h % 60`, in the hours field `h % 24`, in the day of month `h % 28 + 1`, in the month
/// `h % 12 + 1` and in the day of week `h % 7`.
/// Fields are counted after an optional `TZ=`/`CRON_TZ=` prefix; a five-field spec starts at the
/// minutes.
/// A spec whose first field (after the prefix) starts with `@` is returned unchanged, as are
/// tokens past the sixth field; whitespace is preserved.
pub fn substitute_hash(spec: &str, job_name: &str) -> String {
    if !spec.contains('~') {
        return spec.to_owned();
    }
    let hash: u64 = job_name
        .chars()
        .map(|character| u64::from(u32::from(character)))
        .sum();
    let tokens: Vec<(usize, &str)> = token_spans(spec);
    let skip = usize::from(
        tokens
            .first()
            .is_some_and(|(_, token)| is_zone_prefix(token)),
    );
    let cron_tokens = &tokens[skip..];
    if cron_tokens
        .first()
        .is_some_and(|(_, token)| token.starts_with('@'))
    {
        return spec.to_owned();
    }
    let six_field_values = [
        hash % 60,
        hash % 60,
        hash % 24,
        hash % 28 + 1,
        hash % 12 + 1,
        hash % 7,
    ];
    let values = if cron_tokens.len() == 5 {
        &six_field_values[1..]
    } else {
        &six_field_values[..]
    };
    let mut substituted = String::with_capacity(spec.len() + 8);
    let mut copied_up_to = 0;
    for ((start, token), value) in cron_tokens.iter().zip(values) {
        for (offset, _) in token.match_indices('~') {
            substituted.push_str(&spec[copied_up_to..start + offset]);
            substituted.push_str(&value.to_string());
            copied_up_to = start + offset + 1;
        }
    }
    substituted.push_str(&spec[copied_up_to..]);
    substituted
}

/// Returns the whitespace-separated tokens of `text` with their byte offsets.
fn token_spans(text: &str) -> Vec<(usize, &str)> {
    let mut spans = Vec::new();
    let mut token_start = None;
    for (index, character) in text.char_indices() {
        match (character.is_whitespace(), token_start) {
            (true, Some(start)) => {
                spans.push((start, &text[start..index]));
                token_start = None;
            }
            (false, None) => token_start = Some(index),
            _ => {}
        }
    }
    if let Some(start) = token_start {
        spans.push((start, &text[start..]));
    }
    spans
}

/// Tells whether `token` is a `TZ=` or `CRON_TZ=` prefix.
fn is_zone_prefix(token: &str) -> bool {
    token.starts_with("TZ=") || token.starts_with("CRON_TZ=")
}

/// Splits a leading `TZ=<zone>`/`CRON_TZ=<zone>` off a trimmed spec; returns the zone (if any)
/// and the rest, trimmed.
fn split_zone_prefix(spec: &str) -> Result<(Option<Tz>, &str), ScheduleError> {
    if !is_zone_prefix(spec) {
        return Ok((None, spec));
    }
    let prefix_end = spec.find(char::is_whitespace).unwrap_or(spec.len());
    let name_start = spec.find('=').map_or(0, |equals| equals + 1);
    let zone = load_zone(&spec[name_start..prefix_end])?;
    Ok((Some(zone), spec[prefix_end..].trim()))
}

/// Loads a zone for a schedule; empty means UTC. The error follows robfig.
fn load_zone(name: &str) -> Result<Tz, ScheduleError> {
    parse_timezone(name)
        .map(|zone| zone.unwrap_or(Tz::UTC))
        .map_err(|error| ScheduleError(format!("provided bad location {name}: {error}")))
}

/// Parses a spec starting with `@`.
fn parse_descriptor(descriptor: &str, job_name: &str, zone: Tz) -> Result<Repr, ScheduleError> {
    let cron_equivalent = match descriptor {
        "@manually" => return Ok(Repr::Manual),
        "@yearly" | "@annually" => "0 0 0 1 1 *",
        "@monthly" => "0 0 0 1 * *",
        "@weekly" => "0 0 0 * * 0",
        "@daily" | "@midnight" => "0 0 0 * * *",
        "@hourly" => "0 0 * * * *",
        "@minutely" => "0 * * * * *",
        _ => return parse_parameterised_descriptor(descriptor, job_name),
    };
    Ok(Repr::Cron(CronSchedule {
        fields: parse_cron_fields(cron_equivalent)?,
        zone,
    }))
}

/// Parses `@every <duration>` and `@at <RFC 3339>`.
fn parse_parameterised_descriptor(descriptor: &str, job_name: &str) -> Result<Repr, ScheduleError> {
    if let Some(duration_text) = descriptor.strip_prefix("@every ") {
        let duration = parse_go_duration(duration_text).map_err(|error| {
            ScheduleError(format!("failed to parse duration {descriptor}: {error}"))
        })?;
        let interval_seconds = i64::try_from(duration.as_secs()).unwrap_or(i64::MAX).max(1);
        let phase_seconds =
            i64::try_from(stable_name_hash(job_name) % interval_seconds.unsigned_abs())
                .expect("the phase is below an i64 interval");
        return Ok(Repr::Every {
            interval_seconds,
            phase_seconds,
        });
    }
    if let Some(date_text) = descriptor.strip_prefix("@at ") {
        let at = DateTime::parse_from_rfc3339(date_text).map_err(|error| {
            ScheduleError(format!(
                "failed to parse date {descriptor}: parsing time \"{date_text}\" as \
                 \"2006-01-02T15:04:05Z07:00\": {error}"
            ))
        })?;
        return Ok(Repr::At(at));
    }
    Err(ScheduleError(format!(
        "unrecognized descriptor: {descriptor}"
    )))
}

/// Parses six (Dkron) or five (crontab, seconds = 0) whitespace-separated cron fields.
fn parse_cron_fields(body: &str) -> Result<CronFields, ScheduleError> {
    let fields: Vec<&str> = body.split_whitespace().collect();
    let six_fields: [&str; 6] = match fields.as_slice() {
        [minute, hour, day, month, weekday] => ["0", minute, hour, day, month, weekday],
        [second, minute, hour, day, month, weekday] => [second, minute, hour, day, month, weekday],
        _ => {
            return Err(ScheduleError(format!(
                "expected exactly 6 fields, found {}: [{}]",
                fields.len(),
                fields.join(" ")
            )));
        }
    };
    CronFields::parse(six_fields)
}
