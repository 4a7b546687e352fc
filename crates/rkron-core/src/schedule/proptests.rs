//! Property tests of schedules: next fire times checked against a slow, independent matcher.
//!
//! Specs are generated from field pieces, so the oracle here decides membership from those pieces
//! arithmetically and never uses the bitmask parser under test.

use chrono::{
    DateTime, Datelike, LocalResult, NaiveDateTime, Offset, TimeDelta, TimeZone, Timelike, Utc,
};
use chrono_tz::{GapInfo, Tz};
use proptest::prelude::*;

use super::{Schedule, stable_name_hash};

const ZONES: [&str; 5] = [
    "UTC",
    "Europe/Berlin",
    "America/New_York",
    "Australia/Lord_Howe",
    "Asia/Kolkata",
];

const MONTH_NAMES: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];
const WEEKDAY_NAMES: [&str; 7] = ["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

/// The longest wait that is checked second by second for missed fire times.
const EXHAUSTIVE_WINDOW_SECONDS: i64 = 2 * 3600;

/// Which cron field a piece belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FieldKind {
    Second,
    Minute,
    Hour,
    DayOfMonth,
    Month,
    DayOfWeek,
}

impl FieldKind {
    const ALL: [Self; 6] = [
        Self::Second,
        Self::Minute,
        Self::Hour,
        Self::DayOfMonth,
        Self::Month,
        Self::DayOfWeek,
    ];

    fn bounds(self) -> (u32, u32) {
        match self {
            Self::Second | Self::Minute => (0, 59),
            Self::Hour => (0, 23),
            Self::DayOfMonth => (1, 31),
            Self::Month => (1, 12),
            Self::DayOfWeek => (0, 6),
        }
    }
}

/// One comma-separated piece of a field.
#[derive(Debug, Clone)]
enum Piece {
    Star,
    Question,
    /// A value; `style` 1 and 2 write month and weekday names (lower case, capitalised).
    Value {
        value: u32,
        style: u8,
    },
    Range(u32, u32),
    StarStep(u32),
    ValueStep(u32, u32),
    RangeStep(u32, u32, u32),
    /// `7`: Sunday (day of week only).
    Seven,
    /// `a-7`: from `a` to Sunday (day of week only).
    RangeToSeven(u32),
}

impl Piece {
    fn render(&self, kind: FieldKind) -> String {
        match *self {
            Self::Star => "*".to_owned(),
            Self::Question => "?".to_owned(),
            Self::Value { value, style } => render_value(kind, value, style),
            Self::Range(low, high) => format!("{low}-{high}"),
            Self::StarStep(step) => format!("*/{step}"),
            Self::ValueStep(start, step) => format!("{start}/{step}"),
            Self::RangeStep(low, high, step) => format!("{low}-{high}/{step}"),
            Self::Seven => "7".to_owned(),
            Self::RangeToSeven(low) => format!("{low}-7"),
        }
    }

    /// Tells whether the piece holds `value`, straight from the cron definition.
    fn contains(&self, kind: FieldKind, value: u32) -> bool {
        let (min, max) = kind.bounds();
        match *self {
            Self::Star | Self::Question => true,
            Self::Value {
                value: piece_value, ..
            } => value == piece_value,
            Self::Range(low, high) => (low..=high).contains(&value),
            Self::StarStep(step) => value >= min && (value - min).is_multiple_of(step),
            Self::ValueStep(start, step) => {
                value >= start && value <= max && (value - start).is_multiple_of(step)
            }
            Self::RangeStep(low, high, step) => {
                (low..=high).contains(&value) && (value - low).is_multiple_of(step)
            }
            Self::Seven => value == 0,
            Self::RangeToSeven(low) => value >= low || value == 0,
        }
    }

    /// Tells whether the piece is a star in robfig's sense (`*`/`?` with step 1).
    fn is_star(&self) -> bool {
        matches!(self, Self::Star | Self::Question | Self::StarStep(1))
    }
}

fn render_value(kind: FieldKind, value: u32, style: u8) -> String {
    let name = match kind {
        FieldKind::Month => MONTH_NAMES.get(value as usize - 1),
        FieldKind::DayOfWeek => WEEKDAY_NAMES.get(value as usize),
        _ => None,
    };
    match (name, style) {
        (Some(name), 1) => (*name).to_owned(),
        (Some(name), 2) => {
            let mut capitalised = name.to_uppercase();
            capitalised.truncate(1);
            capitalised.push_str(&name[1..]);
            capitalised
        }
        _ => value.to_string(),
    }
}

/// A generated cron spec.
#[derive(Debug, Clone)]
struct Spec {
    fields: [Vec<Piece>; 6],
    five_fields: bool,
}

impl Spec {
    fn render(&self) -> String {
        let rendered: Vec<String> = FieldKind::ALL
            .iter()
            .zip(&self.fields)
            .map(|(kind, pieces)| {
                pieces
                    .iter()
                    .map(|piece| piece.render(*kind))
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        if self.five_fields {
            rendered[1..].join(" ")
        } else {
            rendered.join(" ")
        }
    }

    fn field_contains(&self, kind: FieldKind, value: u32) -> bool {
        let index = FieldKind::ALL
            .iter()
            .position(|candidate| *candidate == kind)
            .unwrap();
        self.fields[index]
            .iter()
            .any(|piece| piece.contains(kind, value))
    }

    fn field_is_star(&self, kind: FieldKind) -> bool {
        let index = FieldKind::ALL
            .iter()
            .position(|candidate| *candidate == kind)
            .unwrap();
        self.fields[index].iter().any(Piece::is_star)
    }

    fn matches(&self, local: NaiveDateTime) -> bool {
        let day_of_month = self.field_contains(FieldKind::DayOfMonth, local.day());
        let day_of_week =
            self.field_contains(FieldKind::DayOfWeek, local.weekday().num_days_from_sunday());
        let day = if self.field_is_star(FieldKind::DayOfMonth)
            || self.field_is_star(FieldKind::DayOfWeek)
        {
            day_of_month && day_of_week
        } else {
            day_of_month || day_of_week
        };
        day && self.field_contains(FieldKind::Second, local.second())
            && self.field_contains(FieldKind::Minute, local.minute())
            && self.field_contains(FieldKind::Hour, local.hour())
            && self.field_contains(FieldKind::Month, local.month())
    }

    fn is_fixed_time(&self) -> bool {
        let single = |kind: FieldKind| {
            let (min, max) = kind.bounds();
            (min..=max)
                .filter(|value| self.field_contains(kind, *value))
                .count()
                == 1
        };
        single(FieldKind::Second) && single(FieldKind::Minute) && single(FieldKind::Hour)
    }

    /// Tells whether the job must fire at `instant`, by the rule of the parent module, checked
    /// from scratch.
    fn fires(&self, zone: Tz, instant: DateTime<Utc>) -> bool {
        if instant.timestamp_subsec_nanos() != 0 {
            return false;
        }
        let local = instant.with_timezone(&zone).naive_local();
        let fixed_time = self.is_fixed_time();
        if self.matches(local) {
            if fixed_time && let LocalResult::Ambiguous(first, _) = zone.from_local_datetime(&local)
            {
                return first.with_timezone(&Utc) == instant;
            }
            return true;
        }
        if !fixed_time {
            return false;
        }
        // A fixed-time job runs at the first instant after a gap that skipped its local time.
        let before = local - TimeDelta::seconds(1);
        if !matches!(zone.from_local_datetime(&before), LocalResult::None) {
            return false;
        }
        let gap_start = GapInfo::new(&before, &zone).unwrap().begin.unwrap().0;
        let mut skipped = gap_start;
        while skipped < local {
            if self.matches(skipped) {
                return true;
            }
            skipped += TimeDelta::seconds(1);
        }
        false
    }
}

fn piece_strategy(kind: FieldKind) -> BoxedStrategy<Piece> {
    let (min, max) = kind.bounds();
    let span = max - min + 1;
    let ordered = move |(low, high): (u32, u32)| (low.min(high), low.max(high));
    let common = prop_oneof![
        3 => Just(Piece::Star),
        1 => Just(Piece::Question),
        4 => (min..=max, 0u8..3).prop_map(|(value, style)| Piece::Value { value, style }),
        2 => (min..=max, min..=max).prop_map(move |pair| {
            let (low, high) = ordered(pair);
            Piece::Range(low, high)
        }),
        2 => (1..=span + 1).prop_map(Piece::StarStep),
        1 => (min..=max, 1..=span).prop_map(|(start, step)| Piece::ValueStep(start, step)),
        1 => (min..=max, min..=max, 1..=span).prop_map(move |(low, high, step)| {
            let (low, high) = ordered((low, high));
            Piece::RangeStep(low, high, step)
        }),
    ];
    if kind == FieldKind::DayOfWeek {
        prop_oneof![
            8 => common,
            1 => Just(Piece::Seven),
            1 => (0u32..=6).prop_map(Piece::RangeToSeven),
        ]
        .boxed()
    } else {
        common.boxed()
    }
}

fn field_strategy(kind: FieldKind) -> BoxedStrategy<Vec<Piece>> {
    let generic = prop::collection::vec(piece_strategy(kind), 1..=3);
    match kind {
        // Mostly second 0 or every second, so that many specs fire often enough for the
        // second-by-second check.
        FieldKind::Second => prop_oneof![
            4 => Just(vec![Piece::Value { value: 0, style: 0 }]),
            1 => Just(vec![Piece::Star]),
            3 => generic,
        ]
        .boxed(),
        FieldKind::Minute | FieldKind::Hour => generic.boxed(),
        FieldKind::DayOfMonth | FieldKind::Month | FieldKind::DayOfWeek => prop_oneof![
            3 => Just(vec![Piece::Star]),
            2 => generic,
        ]
        .boxed(),
    }
}

fn spec_strategy() -> impl Strategy<Value = Spec> {
    (
        field_strategy(FieldKind::Second),
        field_strategy(FieldKind::Minute),
        field_strategy(FieldKind::Hour),
        field_strategy(FieldKind::DayOfMonth),
        field_strategy(FieldKind::Month),
        field_strategy(FieldKind::DayOfWeek),
        any::<bool>(),
    )
        .prop_map(
            |(second, minute, hour, day_of_month, month, day_of_week, five)| {
                let second_is_zero = matches!(second.as_slice(), [Piece::Value { value: 0, .. }]);
                Spec {
                    fields: [second, minute, hour, day_of_month, month, day_of_week],
                    five_fields: five && second_is_zero,
                }
            },
        )
}

/// Where the search starts: anywhere in 2000..2100, or within three hours of a DST transition.
#[derive(Debug, Clone)]
enum Anchor {
    Uniform {
        timestamp: i64,
        nanos: u32,
    },
    NearTransition {
        year: i32,
        which: usize,
        offset_seconds: i64,
    },
}

fn anchor_strategy() -> impl Strategy<Value = Anchor> {
    let year_2000 = 946_684_800i64;
    let year_2100 = 4_102_444_800i64;
    prop_oneof![
        1 => (year_2000..year_2100, prop_oneof![Just(0u32), 0u32..1_000_000_000])
            .prop_map(|(timestamp, nanos)| Anchor::Uniform { timestamp, nanos }),
        1 => (2000i32..2100, 0usize..4, -3 * 3600i64..=3 * 3600)
            .prop_map(|(year, which, offset_seconds)| Anchor::NearTransition {
                year,
                which,
                offset_seconds,
            }),
    ]
}

fn offset_seconds_at(zone: Tz, timestamp: i64) -> i32 {
    let instant = DateTime::from_timestamp(timestamp, 0).unwrap();
    zone.offset_from_utc_datetime(&instant.naive_utc())
        .fix()
        .local_minus_utc()
}

/// Returns the instants of `year` at which `zone` changes its UTC offset.
fn transitions(zone: Tz, year: i32) -> Vec<i64> {
    let start = Utc
        .with_ymd_and_hms(year, 1, 1, 0, 0, 0)
        .unwrap()
        .timestamp();
    let mut found = Vec::new();
    for day in 0..366 {
        let (mut same, mut changed) = (start + day * 86_400, start + (day + 1) * 86_400);
        let base = offset_seconds_at(zone, same);
        if offset_seconds_at(zone, changed) == base {
            continue;
        }
        while changed - same > 1 {
            let middle = same + (changed - same) / 2;
            if offset_seconds_at(zone, middle) == base {
                same = middle;
            } else {
                changed = middle;
            }
        }
        found.push(changed);
    }
    found
}

fn resolve(anchor: &Anchor, zone: Tz) -> DateTime<Utc> {
    match *anchor {
        Anchor::Uniform { timestamp, nanos } => DateTime::from_timestamp(timestamp, nanos).unwrap(),
        Anchor::NearTransition {
            year,
            which,
            offset_seconds,
        } => {
            let year_transitions = transitions(zone, year);
            let base = if year_transitions.is_empty() {
                Utc.with_ymd_and_hms(year, 6, 1, 0, 0, 0)
                    .unwrap()
                    .timestamp()
            } else {
                year_transitions[which % year_transitions.len()]
            };
            DateTime::from_timestamp(base + offset_seconds, 0).unwrap()
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 768, ..ProptestConfig::default() })]

    #[test]
    fn next_after_is_the_first_instant_the_spec_fires_at(
        spec in spec_strategy(),
        zone_index in 0..ZONES.len(),
        anchor in anchor_strategy(),
    ) {
        let zone: Tz = ZONES[zone_index].parse().unwrap();
        let after = resolve(&anchor, zone);
        let text = spec.render();
        let schedule = Schedule::parse(&text, "prop_job", ZONES[zone_index]).unwrap();
        let next = schedule.next_after(after);
        let window_end = match next {
            Some(fire) => {
                prop_assert!(fire > after, "{text} in {zone}: {fire} is not after {after}");
                prop_assert!(
                    spec.fires(zone, fire),
                    "{text} in {zone}: {fire} (local {}) should not fire",
                    fire.with_timezone(&zone)
                );
                prop_assert!(schedule.fires_at(fire));
                fire
            }
            None => after + TimeDelta::seconds(EXHAUSTIVE_WINDOW_SECONDS + 1),
        };
        if window_end - after <= TimeDelta::seconds(EXHAUSTIVE_WINDOW_SECONDS + 1) {
            let mut probe = DateTime::from_timestamp(after.timestamp() + 1, 0).unwrap();
            while probe < window_end {
                prop_assert!(
                    !spec.fires(zone, probe),
                    "{text} in {zone}: after {after}, {probe} (local {}) fires before {next:?}",
                    probe.with_timezone(&zone)
                );
                probe += TimeDelta::seconds(1);
            }
        }
    }

    /// Fixed-time daily jobs whose time lies near a transition: the gap run and the single run
    /// in a repeated hour are checked against a minute-by-minute scan of the next 26 hours.
    #[test]
    fn fixed_time_jobs_around_transitions_run_once_per_day(
        zone_index in 1usize..4,
        year in 2000i32..2100,
        which in 0usize..4,
        minutes_from_transition in -120i64..=120,
        after_from_transition in -3 * 3600i64..=3600,
        nanos in prop_oneof![Just(0u32), 0u32..1_000_000_000],
    ) {
        let zone: Tz = ZONES[zone_index].parse().unwrap();
        let year_transitions = transitions(zone, year);
        prop_assume!(!year_transitions.is_empty());
        let transition = year_transitions[which % year_transitions.len()];
        // The transition instant read on the clock that was in force just before it.
        let before_transition = DateTime::from_timestamp(transition - 1, 0).unwrap();
        let clock_at_transition =
            before_transition.with_timezone(&zone).naive_local() + TimeDelta::seconds(1);
        let job_time = clock_at_transition + TimeDelta::minutes(minutes_from_transition);
        let text = format!("0 {} {} * * *", job_time.minute(), job_time.hour());
        let spec = Spec {
            fields: [
                vec![Piece::Value { value: 0, style: 0 }],
                vec![Piece::Value { value: job_time.minute(), style: 0 }],
                vec![Piece::Value { value: job_time.hour(), style: 0 }],
                vec![Piece::Star],
                vec![Piece::Star],
                vec![Piece::Star],
            ],
            five_fields: false,
        };
        prop_assert_eq!(&spec.render(), &text);
        let after = DateTime::from_timestamp(transition + after_from_transition, nanos).unwrap();
        let schedule = Schedule::parse(&text, "prop_job", ZONES[zone_index]).unwrap();
        // Seconds are 0 and these zones change offset on whole minutes, so only whole minutes
        // can fire.
        let mut probe = DateTime::from_timestamp((after.timestamp() / 60 + 1) * 60, 0).unwrap();
        let window_end = after + TimeDelta::hours(26);
        let expected = loop {
            if probe > window_end {
                break None;
            }
            if probe > after && spec.fires(zone, probe) {
                break Some(probe);
            }
            probe += TimeDelta::minutes(1);
        };
        prop_assert!(expected.is_some(), "{} in {}: a daily job must fire within 26 hours", text, zone);
        prop_assert_eq!(schedule.next_after(after), expected, "{} in {} after {}", text, zone, after);
    }

    #[test]
    fn every_fires_one_interval_apart_on_the_job_phase(
        name in "[a-z0-9_-]{0,12}",
        interval_seconds in 1i64..200_000,
        timestamp in 946_684_800i64..4_102_444_800,
        nanos in 0u32..1_000_000_000,
    ) {
        let schedule = Schedule::parse(&format!("@every {interval_seconds}s"), &name, "").unwrap();
        let after = DateTime::from_timestamp(timestamp, nanos).unwrap();
        let fire = schedule.next_after(after).unwrap();
        let phase = i64::try_from(stable_name_hash(&name) % interval_seconds.unsigned_abs()).unwrap();
        prop_assert!(fire > after);
        prop_assert!(fire - after <= TimeDelta::seconds(interval_seconds));
        prop_assert_eq!((fire.timestamp() - phase).rem_euclid(interval_seconds), 0);
        prop_assert_eq!(schedule.next_after(fire).unwrap() - fire, TimeDelta::seconds(interval_seconds));
    }
}
