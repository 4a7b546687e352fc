//! Cron fields in robfig/cron v3's grammar, and the search for the next instant they match in a zone.
//!
//! Parsing keeps robfig's error texts.
//! The search walks local (naive) calendar time with one bitmask per field, jumping month by month,
//! day by day and then straight to the next matching time of day, so a call costs microseconds
//! even for sparse specs, and it gives up after [`SEARCH_YEARS`] years like robfig.
//! Local times are then mapped to instants with the DST rule documented in the parent module.

use std::fmt::Write as _;

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDate, NaiveDateTime, Offset, TimeDelta, TimeZone,
    Timelike, Utc,
};
use chrono_tz::{GapInfo, Tz};

use super::ScheduleError;

/// How many calendar years past the start of a search are looked at before giving up (robfig's
/// limit: `0 0 0 30 Feb ?` never fires).
pub(super) const SEARCH_YEARS: i32 = 5;

/// The accepted values and names of one cron field.
struct Bounds {
    min: u64,
    /// The largest value that `*` and `N/step` expand to.
    max: u64,
    /// The largest value that may be written explicitly (7 = Sunday for the day of week).
    max_explicit: u64,
    names: &'static [(&'static str, u64)],
}

const SECONDS: Bounds = Bounds {
    min: 0,
    max: 59,
    max_explicit: 59,
    names: &[],
};
const MINUTES: Bounds = Bounds {
    min: 0,
    max: 59,
    max_explicit: 59,
    names: &[],
};
const HOURS: Bounds = Bounds {
    min: 0,
    max: 23,
    max_explicit: 23,
    names: &[],
};
const DAYS_OF_MONTH: Bounds = Bounds {
    min: 1,
    max: 31,
    max_explicit: 31,
    names: &[],
};
const MONTHS: Bounds = Bounds {
    min: 1,
    max: 12,
    max_explicit: 12,
    names: &[
        ("jan", 1),
        ("feb", 2),
        ("mar", 3),
        ("apr", 4),
        ("may", 5),
        ("jun", 6),
        ("jul", 7),
        ("aug", 8),
        ("sep", 9),
        ("oct", 10),
        ("nov", 11),
        ("dec", 12),
    ],
};
const DAYS_OF_WEEK: Bounds = Bounds {
    min: 0,
    max: 6,
    max_explicit: 7,
    names: &[
        ("sun", 0),
        ("mon", 1),
        ("tue", 2),
        ("wed", 3),
        ("thu", 4),
        ("fri", 5),
        ("sat", 6),
    ],
};

/// The six cron fields as bitmasks (bit `n` set = value `n` matches).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct CronFields {
    seconds: u64,
    minutes: u64,
    hours: u64,
    days_of_month: u64,
    months: u64,
    days_of_week: u64,
    /// The day-of-month field contains a bare `*` or `?` (robfig's star bit).
    dom_star: bool,
    /// The day-of-week field contains a bare `*` or `?` (robfig's star bit).
    dow_star: bool,
}

impl CronFields {
    /// Parses six fields `sec min hour dom month dow`.
    pub(super) fn parse(fields: [&str; 6]) -> Result<Self, ScheduleError> {
        let [seconds, minutes, hours, days_of_month, months, days_of_week] = fields;
        let (seconds, _) = parse_field(seconds, &SECONDS)?;
        let (minutes, _) = parse_field(minutes, &MINUTES)?;
        let (hours, _) = parse_field(hours, &HOURS)?;
        let (days_of_month, dom_star) = parse_field(days_of_month, &DAYS_OF_MONTH)?;
        let (months, _) = parse_field(months, &MONTHS)?;
        let (days_of_week, dow_star) = parse_field(days_of_week, &DAYS_OF_WEEK)?;
        // Sunday written as 7 is Sunday.
        let days_of_week = (days_of_week | ((days_of_week >> 7) & 1)) & !(1 << 7);
        Ok(Self {
            seconds,
            minutes,
            hours,
            days_of_month,
            months,
            days_of_week,
            dom_star,
            dow_star,
        })
    }

    /// Tells whether the seconds, minutes and hours fields each match exactly one value.
    ///
    /// Such "fixed-time" schedules get Vixie cron's DST treatment: exactly one run per matching day.
    pub(super) fn is_fixed_time(&self) -> bool {
        self.seconds.count_ones() == 1
            && self.minutes.count_ones() == 1
            && self.hours.count_ones() == 1
    }

    /// Returns the first naive local date-time at or after `start` (whole seconds) that matches
    /// every field, or `None` if there is none before the end of year `year_limit`.
    pub(super) fn next_local(
        &self,
        start: NaiveDateTime,
        year_limit: i32,
    ) -> Option<NaiveDateTime> {
        let mut date = start.date();
        let mut floor = (start.hour(), start.minute(), start.second());
        loop {
            if date.year() > year_limit {
                return None;
            }
            if !has_bit(self.months, date.month()) {
                date = first_of_next_month(date)?;
                floor = (0, 0, 0);
                continue;
            }
            let Some(day) = next_bit(self.day_mask(date), date.day()) else {
                date = first_of_next_month(date)?;
                floor = (0, 0, 0);
                continue;
            };
            if day != date.day() {
                date = date.with_day(day)?;
                floor = (0, 0, 0);
            }
            if let Some((hour, minute, second)) = self.next_time_of_day(floor) {
                return date.and_hms_opt(hour, minute, second);
            }
            date = date.succ_opt()?;
            floor = (0, 0, 0);
        }
    }

    /// Returns the days (bits 1..=31) of the month of `date` that match the day-of-month and
    /// day-of-week fields, with robfig's rule: if either field is a star both must match,
    /// otherwise either may.
    fn day_mask(&self, date: NaiveDate) -> u64 {
        let days_in_month = u32::from(date.num_days_in_month());
        let first_weekday = date
            .with_day(1)
            .unwrap_or(date)
            .weekday()
            .num_days_from_sunday();
        let mut weekday_days = 0u64;
        for day in 1..=days_in_month {
            if has_bit(self.days_of_week, (first_weekday + day - 1) % 7) {
                weekday_days |= 1 << day;
            }
        }
        let existing_days = ((1u64 << (days_in_month + 1)) - 1) & !1;
        let month_days = self.days_of_month & existing_days;
        if self.dom_star || self.dow_star {
            month_days & weekday_days
        } else {
            month_days | weekday_days
        }
    }

    /// Returns the first matching `(hour, minute, second)` at or after `floor` on one day.
    fn next_time_of_day(&self, floor: (u32, u32, u32)) -> Option<(u32, u32, u32)> {
        let (floor_hour, floor_minute, floor_second) = floor;
        let first_minute = next_bit(self.minutes, 0)?;
        let first_second = next_bit(self.seconds, 0)?;
        let hour = next_bit(self.hours, floor_hour)?;
        if hour > floor_hour {
            return Some((hour, first_minute, first_second));
        }
        if let Some(minute) = next_bit(self.minutes, floor_minute) {
            if minute > floor_minute {
                return Some((hour, minute, first_second));
            }
            if let Some(second) = next_bit(self.seconds, floor_second) {
                return Some((hour, minute, second));
            }
            if let Some(next_minute) = next_bit(self.minutes, floor_minute + 1) {
                return Some((hour, next_minute, first_second));
            }
        }
        let next_hour = next_bit(self.hours, floor_hour + 1)?;
        Some((next_hour, first_minute, first_second))
    }
}

/// Cron fields evaluated in a time zone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct CronSchedule {
    pub(super) fields: CronFields,
    pub(super) zone: Tz,
}

impl CronSchedule {
    /// Returns the first fire time strictly after `after` (see the parent module for the DST rule).
    pub(super) fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        let first = DateTime::from_timestamp(after.timestamp().checked_add(1)?, 0)?;
        let start_local = first.with_timezone(&self.zone).naive_local();
        let year_limit = start_local.year() + SEARCH_YEARS;
        let fixed_time = self.fields.is_fixed_time();
        let forward = self.scan_forward(first, start_local, year_limit, fixed_time);
        if fixed_time {
            return forward;
        }
        let repeated = self.scan_repeated(first, start_local, year_limit);
        match (forward, repeated) {
            (Some(forward), Some(repeated)) => Some(forward.min(repeated)),
            (forward, repeated) => forward.or(repeated),
        }
    }

    /// Walks local times from `start_local` upwards and returns the first resulting fire time at
    /// or after `first`.
    ///
    /// In local-time order the fire times only go backwards for the second occurrence of a
    /// repeated local time, which [`Self::scan_repeated`] covers; so the first hit here is the
    /// earliest fire time whose local time is at or after `start_local`.
    fn scan_forward(
        &self,
        first: DateTime<Utc>,
        start_local: NaiveDateTime,
        year_limit: i32,
        fixed_time: bool,
    ) -> Option<DateTime<Utc>> {
        // A fixed-time job skipped by a gap runs at the gap's end; when the search starts exactly
        // there, the skipped local times must still be looked at.
        let mut local = if fixed_time {
            self.gap_ending_at(start_local).unwrap_or(start_local)
        } else {
            start_local
        };
        loop {
            let candidate = self.fields.next_local(local, year_limit)?;
            match self.zone.from_local_datetime(&candidate) {
                LocalResult::Single(instant) => {
                    let instant = instant.with_timezone(&Utc);
                    if instant >= first {
                        return Some(instant);
                    }
                }
                LocalResult::Ambiguous(earliest, latest) => {
                    let earliest = earliest.with_timezone(&Utc);
                    if earliest >= first {
                        return Some(earliest);
                    }
                    // A fixed-time job already ran at the first occurrence.
                    let latest = latest.with_timezone(&Utc);
                    if !fixed_time && latest >= first {
                        return Some(latest);
                    }
                }
                LocalResult::None => {
                    let gap_end = GapInfo::new(&candidate, &self.zone).and_then(|gap| gap.end);
                    if let Some(gap_end) = gap_end {
                        let gap_end_utc = gap_end.with_timezone(&Utc);
                        if fixed_time && gap_end_utc >= first {
                            return Some(gap_end_utc);
                        }
                        let gap_end_local = gap_end.naive_local();
                        if !fixed_time && gap_end_local > candidate {
                            // Nothing inside the gap exists: resume at its end.
                            local = gap_end_local;
                            continue;
                        }
                    }
                }
            }
            local = candidate.checked_add_signed(TimeDelta::seconds(1))?;
        }
    }

    /// For a wildcard (not fixed-time) job, returns the earliest fire time among the second
    /// occurrences of local times that lie before `start_local`.
    ///
    /// This only exists when `first` is in the first occurrence of a repeated range: after the
    /// clocks are turned back, the local times from the start of the range up to `start_local`
    /// come round again.
    fn scan_repeated(
        &self,
        first: DateTime<Utc>,
        start_local: NaiveDateTime,
        year_limit: i32,
    ) -> Option<DateTime<Utc>> {
        let LocalResult::Ambiguous(earliest, latest) = self.zone.from_local_datetime(&start_local)
        else {
            return None;
        };
        if earliest.with_timezone(&Utc) != first {
            return None;
        }
        let turn_back = self.first_offset_change(first, latest.with_timezone(&Utc))?;
        let repeat_start = turn_back.with_timezone(&self.zone).naive_local();
        let candidate = self.fields.next_local(repeat_start, year_limit)?;
        if candidate >= start_local {
            return None;
        }
        match self.zone.from_local_datetime(&candidate) {
            LocalResult::Ambiguous(_, second_occurrence) => {
                Some(second_occurrence.with_timezone(&Utc))
            }
            LocalResult::Single(_) | LocalResult::None => None,
        }
    }

    /// If `local` is the first local time after a gap, returns the first skipped local time.
    fn gap_ending_at(&self, local: NaiveDateTime) -> Option<NaiveDateTime> {
        let before = local.checked_sub_signed(TimeDelta::seconds(1))?;
        if !matches!(self.zone.from_local_datetime(&before), LocalResult::None) {
            return None;
        }
        GapInfo::new(&before, &self.zone)?
            .begin
            .map(|(gap_start, _)| gap_start)
    }

    /// Returns the first whole second in `(low, high]` whose UTC offset differs from the offset
    /// at `low`, given that the offset at `high` differs (one transition in between).
    fn first_offset_change(
        &self,
        low: DateTime<Utc>,
        high: DateTime<Utc>,
    ) -> Option<DateTime<Utc>> {
        let offset_at = |timestamp: i64| {
            DateTime::from_timestamp(timestamp, 0).map(|instant| {
                self.zone
                    .offset_from_utc_datetime(&instant.naive_utc())
                    .fix()
                    .local_minus_utc()
            })
        };
        let base_offset = offset_at(low.timestamp())?;
        let mut same = low.timestamp();
        let mut changed = high.timestamp();
        if offset_at(changed)? == base_offset {
            return None;
        }
        while changed - same > 1 {
            let middle = same + (changed - same) / 2;
            if offset_at(middle)? == base_offset {
                same = middle;
            } else {
                changed = middle;
            }
        }
        DateTime::from_timestamp(changed, 0)
    }
}

/// Parses one comma-separated field; returns its bits and whether it holds a star.
fn parse_field(field: &str, bounds: &Bounds) -> Result<(u64, bool), ScheduleError> {
    let mut bits = 0u64;
    let mut star = false;
    // Like Go's strings.FieldsFunc, empty items ("1,,2") are ignored.
    for expression in field.split(',').filter(|item| !item.is_empty()) {
        let (range_bits, range_star) = parse_range(expression, bounds)?;
        bits |= range_bits;
        star |= range_star;
    }
    Ok((bits, star))
}

/// Parses `*`, `?`, `a`, `a-b`, with an optional `/step`; returns its bits and whether it is a
/// star (a bare `*`/`?`, or one with step 1).
fn parse_range(expression: &str, bounds: &Bounds) -> Result<(u64, bool), ScheduleError> {
    let range_and_step: Vec<&str> = expression.split('/').collect();
    let low_and_high: Vec<&str> = range_and_step[0].split('-').collect();
    let single_value = low_and_high.len() == 1;
    let mut star = false;
    let (start, mut end) = if low_and_high[0] == "*" || low_and_high[0] == "?" {
        // As in robfig, anything after `*-` is ignored.
        star = true;
        (bounds.min, bounds.max)
    } else {
        let start = parse_int_or_name(low_and_high[0], bounds)?;
        let end = match low_and_high.len() {
            1 => start,
            2 => parse_int_or_name(low_and_high[1], bounds)?,
            _ => return Err(ScheduleError(format!("too many hyphens: {expression}"))),
        };
        (start, end)
    };
    let step = match range_and_step.len() {
        1 => 1,
        2 => {
            let step = parse_unsigned(range_and_step[1])?;
            // "N/step" means "N-max/step".
            if single_value {
                end = bounds.max;
            }
            if step > 1 {
                star = false;
            }
            step
        }
        _ => return Err(ScheduleError(format!("too many slashes: {expression}"))),
    };
    if start < bounds.min {
        return Err(ScheduleError(format!(
            "beginning of range ({start}) below minimum ({}): {expression}",
            bounds.min
        )));
    }
    if end > bounds.max_explicit {
        return Err(ScheduleError(format!(
            "end of range ({end}) above maximum ({}): {expression}",
            bounds.max_explicit
        )));
    }
    if start > end {
        return Err(ScheduleError(format!(
            "beginning of range ({start}) beyond end of range ({end}): {expression}"
        )));
    }
    if step == 0 {
        return Err(ScheduleError(format!(
            "step of range should be a positive number: {expression}"
        )));
    }
    let mut bits = 0u64;
    let mut value = start;
    while value <= end {
        bits |= 1 << value;
        value += step;
    }
    Ok((bits, star))
}

/// Parses a month or weekday name (case-insensitive), or else a number.
fn parse_int_or_name(text: &str, bounds: &Bounds) -> Result<u64, ScheduleError> {
    let lowercase = text.to_lowercase();
    if let Some((_, value)) = bounds.names.iter().find(|(name, _)| *name == lowercase) {
        return Ok(*value);
    }
    parse_unsigned(text)
}

/// Parses a number like Go's `strconv.Atoi` (optional sign, decimal digits, 64-bit range) and
/// rejects negative values, with robfig's error texts.
fn parse_unsigned(text: &str) -> Result<u64, ScheduleError> {
    let quoted = go_quote(text);
    let (negative, digits) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if digits.is_empty() || !digits.bytes().all(|byte| byte.is_ascii_digit()) {
        return Err(ScheduleError(format!(
            "failed to parse int from {text}: strconv.Atoi: parsing {quoted}: invalid syntax"
        )));
    }
    let limit: u64 = if negative { 1 << 63 } else { (1 << 63) - 1 };
    let mut magnitude: u64 = 0;
    for digit in digits.bytes() {
        magnitude = magnitude
            .checked_mul(10)
            .and_then(|value| value.checked_add(u64::from(digit - b'0')))
            .filter(|value| *value <= limit)
            .ok_or_else(|| {
                ScheduleError(format!(
                    "failed to parse int from {text}: strconv.Atoi: parsing {quoted}: value out of range"
                ))
            })?;
    }
    if negative && magnitude != 0 {
        return Err(ScheduleError(format!(
            "negative number (-{magnitude}) not allowed: {text}"
        )));
    }
    Ok(magnitude)
}

/// Quotes `text` roughly like Go's `strconv.Quote`: `"` and `\` are escaped, control characters
/// are written as `\xNN`, everything else is kept.
fn go_quote(text: &str) -> String {
    let mut quoted = String::with_capacity(text.len() + 2);
    quoted.push('"');
    for character in text.chars() {
        match character {
            '"' | '\\' => {
                quoted.push('\\');
                quoted.push(character);
            }
            control if control.is_control() && control.is_ascii() => {
                // Writing to a String cannot fail.
                let _ = write!(quoted, "\\x{:02x}", u32::from(control));
            }
            other => quoted.push(other),
        }
    }
    quoted.push('"');
    quoted
}

/// Tells whether bit `position` of `mask` is set.
fn has_bit(mask: u64, position: u32) -> bool {
    position < 64 && mask & (1 << position) != 0
}

/// Returns the lowest set bit of `mask` at or above `from`.
fn next_bit(mask: u64, from: u32) -> Option<u32> {
    if from >= 64 {
        return None;
    }
    let shifted = mask >> from;
    if shifted == 0 {
        return None;
    }
    Some(from + shifted.trailing_zeros())
}

/// Returns the first day of the month after the month of `date`.
fn first_of_next_month(date: NaiveDate) -> Option<NaiveDate> {
    if date.month() == 12 {
        NaiveDate::from_ymd_opt(date.year().checked_add(1)?, 1, 1)
    } else {
        NaiveDate::from_ymd_opt(date.year(), date.month() + 1, 1)
    }
}
