//! Unit tests of schedules: Dkron's own vectors (reference §2.7), rkron's extensions and DST.

use chrono::{DateTime, Duration as TimeDelta, Utc};

use super::{Repr, Schedule, ScheduleKind, stable_name_hash, substitute_hash};

/// Parses an RFC 3339 instant.
fn instant(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .unwrap_or_else(|error| panic!("bad test instant {text}: {error}"))
        .with_timezone(&Utc)
}

fn schedule(spec: &str, timezone: &str) -> Schedule {
    Schedule::parse(spec, "test_job", timezone)
        .unwrap_or_else(|error| panic!("{spec:?} in {timezone:?} should parse: {error}"))
}

fn next(spec: &str, timezone: &str, after: &str) -> Option<DateTime<Utc>> {
    schedule(spec, timezone).next_after(instant(after))
}

fn parse_error(spec: &str) -> String {
    match Schedule::parse(spec, "test_job", "") {
        Ok(parsed) => panic!("{spec:?} should not parse, got {parsed:?}"),
        Err(error) => error.to_string(),
    }
}

// ---- reference §2.7: next-time vectors (Dkron v1 `cron/spec_test.go`, robfig v3) ----

#[test]
fn next_time_vectors_in_utc() {
    let rows = [
        (
            "2012-07-09T14:45:00Z",
            "0 0/15 * * * *",
            "2012-07-09T15:00:00Z",
        ),
        (
            "2012-07-09T14:59:59Z",
            "0 0/15 * * * *",
            "2012-07-09T15:00:00Z",
        ),
        (
            "2012-07-09T15:45:00Z",
            "0 20-35/15 * * * *",
            "2012-07-09T16:20:00Z",
        ),
        (
            "2012-07-09T23:46:00Z",
            "0 */15 * * * *",
            "2012-07-10T00:00:00Z",
        ),
        (
            "2012-07-09T23:35:51Z",
            "15/35 20-35/15 * * * *",
            "2012-07-10T00:20:15Z",
        ),
        (
            "2012-07-09T23:35:51Z",
            "15/35 20-35/15 1/2 * * *",
            "2012-07-10T01:20:15Z",
        ),
        (
            "2012-07-09T23:35:51Z",
            "15/35 20-35/15 10-12 * * *",
            "2012-07-10T10:20:15Z",
        ),
        (
            "2012-07-09T23:35:51Z",
            "15/35 20-35/15 1/2 */2 * *",
            "2012-07-11T01:20:15Z",
        ),
        (
            "2012-07-09T23:35:51Z",
            "15/35 20-35/15 * 9-20 * *",
            "2012-07-10T00:20:15Z",
        ),
        (
            "2012-07-09T23:35:00Z",
            "0 0 0 9 Apr-Oct ?",
            "2012-08-09T00:00:00Z",
        ),
        (
            "2012-07-09T23:35:00Z",
            "0 0 0 */5 Oct Mon",
            "2012-10-01T00:00:00Z",
        ),
        (
            "2012-07-09T23:35:00Z",
            "0 0 0 * Feb Mon",
            "2013-02-04T00:00:00Z",
        ),
        (
            "2012-07-09T23:35:00Z",
            "0 0 0 * Feb Mon/2",
            "2013-02-01T00:00:00Z",
        ),
        (
            "2012-12-31T23:59:45Z",
            "0 * * * * *",
            "2013-01-01T00:00:00Z",
        ),
        (
            "2012-07-09T23:35:00Z",
            "0 0 0 29 Feb ?",
            "2016-02-29T00:00:00Z",
        ),
    ];
    for (after, spec, expected) in rows {
        assert_eq!(
            next(spec, "", after),
            Some(instant(expected)),
            "{spec} after {after}"
        );
    }
}

#[test]
fn stepped_star_day_of_month_is_restricted_so_either_day_field_may_match() {
    // The reference table (from Dkron v1's cron package) says Mon Aug 6 2012: v1 kept the star
    // flag on `*/5`, so both day fields had to match. robfig v3, used by Dkron 2+, clears the star
    // flag when the step is above 1 (its own test expects Tue Aug 1), and rkron follows v3: `*/5`
    // and `Mon` are both restricted, so either may match and Aug 1 (day 1) fires.
    assert_eq!(
        next("0 0 0 */5 Apr,Aug,Oct Mon", "", "2012-07-09T23:35:00Z"),
        Some(instant("2012-08-01T00:00:00Z"))
    );
    // `*/1` keeps the star flag, as in robfig.
    assert_eq!(
        next("0 0 0 */1 Apr,Aug,Oct Mon", "", "2012-07-09T23:35:00Z"),
        Some(instant("2012-08-06T00:00:00Z"))
    );
}

#[test]
fn unsatisfiable_specs_never_fire() {
    assert_eq!(next("0 0 0 30 Feb ?", "", "2012-07-09T23:35:00Z"), None);
    assert_eq!(next("0 0 0 31 Apr ?", "", "2012-07-09T23:35:00Z"), None);
    assert_eq!(
        next(
            "0 0 0 31 Apr,Jun,Sep,Nov ?",
            "America/New_York",
            "2012-07-09T23:35:00Z"
        ),
        None
    );
}

#[test]
fn search_horizon_is_five_calendar_years() {
    assert_eq!(
        next("0 0 0 29 Feb ?", "", "2014-03-01T00:00:00Z"),
        Some(instant("2016-02-29T00:00:00Z"))
    );
    assert_eq!(
        next("0 0 0 29 Feb ?", "", "2092-03-01T00:00:00Z"),
        Some(instant("2096-02-29T00:00:00Z"))
    );
    // 2100 is not a leap year: after 2096 the next Feb 29 is in 2104, beyond 2096 + 5.
    assert_eq!(next("0 0 0 29 Feb ?", "", "2096-03-01T00:00:00Z"), None);
}

#[test]
fn dst_vectors_where_rkron_matches_dkron() {
    let new_york = "America/New_York";
    let rows = [
        // Hourly through the spring-forward gap: 02:00 does not exist.
        (
            "2012-03-11T01:00:00-05:00",
            "0 0 * * * ?",
            "2012-03-11T03:00:00-04:00",
        ),
        // Hourly through the fall-back: 01:00 happens twice and fires twice.
        (
            "2012-11-04T01:00:00-04:00",
            "0 0 * * * ?",
            "2012-11-04T01:00:00-05:00",
        ),
        (
            "2012-11-04T01:00:00-05:00",
            "0 0 1 * * ?",
            "2012-11-05T01:00:00-05:00",
        ),
        (
            "2012-11-04T00:00:00-04:00",
            "0 0 2 * * ?",
            "2012-11-04T02:00:00-05:00",
        ),
    ];
    for (after, spec, expected) in rows {
        assert_eq!(
            next(spec, new_york, after),
            Some(instant(expected)),
            "{spec} after {after}"
        );
    }
}

#[test]
fn fixed_time_in_spring_forward_gap_runs_at_end_of_gap() {
    // Dkron (robfig) gives 2013-03-11T02:30:00-04:00: it skips 02:30, which does not exist on
    // 2012-03-11. rkron follows Vixie cron (DESIGN §8): a fixed-time job skipped by the gap runs
    // once right after it, at 03:00 EDT.
    assert_eq!(
        next(
            "0 30 2 11 Mar ?",
            "America/New_York",
            "2012-03-11T00:00:00-05:00"
        ),
        Some(instant("2012-03-11T03:00:00-04:00"))
    );
    // Dkron gives 2012-03-12T02:00:00-04:00 (the daily job loses a day); rkron runs it at 03:00 EDT.
    assert_eq!(
        next(
            "0 0 2 * * ?",
            "America/New_York",
            "2012-03-11T00:00:00-05:00"
        ),
        Some(instant("2012-03-11T03:00:00-04:00"))
    );
    // And then normally the next day.
    assert_eq!(
        next(
            "0 0 2 * * ?",
            "America/New_York",
            "2012-03-11T03:00:00-04:00"
        ),
        Some(instant("2012-03-12T02:00:00-04:00"))
    );
}

#[test]
fn gap_run_is_found_when_search_starts_just_before_gap_end() {
    let daily = schedule("0 30 2 * * *", "America/New_York");
    // 01:59:59 EST is the last second before the gap; the gap run is the very next second.
    assert_eq!(
        daily.next_after(instant("2012-03-11T01:59:59-05:00")),
        Some(instant("2012-03-11T03:00:00-04:00"))
    );
    assert_eq!(
        daily.next_after(instant("2012-03-11T01:59:59.5-05:00")),
        Some(instant("2012-03-11T03:00:00-04:00"))
    );
    assert!(daily.fires_at(instant("2012-03-11T03:00:00-04:00")));
    assert_eq!(
        daily.next_after(instant("2012-03-11T03:00:00-04:00")),
        Some(instant("2012-03-12T02:30:00-04:00"))
    );
}

#[test]
fn fixed_time_in_repeated_hour_runs_once_at_first_occurrence() {
    // Dkron gives 2012-11-04T01:00:00-05:00 ("1am runs twice"). rkron follows Vixie cron
    // (DESIGN §8): a fixed-time job runs once a day, at the first occurrence (EDT), so after the
    // 01:00 EDT run the next one is the following day.
    let one_am = schedule("0 0 1 * * ?", "America/New_York");
    assert_eq!(
        one_am.next_after(instant("2012-11-04T00:00:00-04:00")),
        Some(instant("2012-11-04T01:00:00-04:00"))
    );
    assert_eq!(
        one_am.next_after(instant("2012-11-04T01:00:00-04:00")),
        Some(instant("2012-11-05T01:00:00-05:00"))
    );
    // Searching from inside the second occurrence does not fire it either.
    assert_eq!(
        one_am.next_after(instant("2012-11-04T00:59:59-05:00")),
        Some(instant("2012-11-05T01:00:00-05:00"))
    );
    assert!(!one_am.fires_at(instant("2012-11-04T01:00:00-05:00")));
}

#[test]
fn wildcard_schedules_follow_the_wall_clock_through_transitions() {
    let new_york = "America/New_York";
    // Every 15 minutes of wall-clock time is every 15 real minutes across both transitions,
    // because New York's offsets differ by whole hours.
    for (from, to) in [
        ("2012-03-11T05:00:00Z", "2012-03-11T09:00:00Z"),
        ("2012-11-04T03:00:00Z", "2012-11-04T09:00:00Z"),
    ] {
        let quarter = schedule("0 */15 * * * *", new_york);
        let mut current = instant(from);
        while current < instant(to) {
            let fire = quarter.next_after(current).unwrap();
            assert_eq!(fire - current, TimeDelta::minutes(15), "after {current}");
            current = fire;
        }
    }
    // Several hours listed: a wildcard job, so 01:00 and 01:30 fire in both occurrences.
    let half_hours = schedule("0 0,30 1 * * *", new_york);
    let mut fires = Vec::new();
    let mut current = instant("2012-11-04T00:00:00-04:00");
    for _ in 0..5 {
        current = half_hours.next_after(current).unwrap();
        fires.push(current);
    }
    let expected = [
        "2012-11-04T01:00:00-04:00",
        "2012-11-04T01:30:00-04:00",
        "2012-11-04T01:00:00-05:00",
        "2012-11-04T01:30:00-05:00",
        "2012-11-05T01:00:00-05:00",
    ];
    assert_eq!(fires, expected.map(instant));
    // Across the gap the skipped local times just do not happen.
    let half_hours_two = schedule("0 0,30 2 * * *", new_york);
    assert_eq!(
        half_hours_two.next_after(instant("2012-03-11T00:00:00-05:00")),
        Some(instant("2012-03-12T02:00:00-04:00"))
    );
}

#[test]
fn wildcard_search_from_inside_first_occurrence_sees_second_occurrence() {
    let new_york = "America/New_York";
    let quarter = schedule("0 */15 * * * *", new_york);
    // 01:50 EDT: the next is 01:00 EST (10 minutes later), whose local time is earlier.
    assert_eq!(
        quarter.next_after(instant("2012-11-04T01:50:00-04:00")),
        Some(instant("2012-11-04T01:00:00-05:00"))
    );
    // Only 01:10 matches; from 01:20 EDT the next is 01:10 EST.
    let ten_past = schedule("0 10 * * * *", new_york);
    assert_eq!(
        ten_past.next_after(instant("2012-11-04T01:20:00-04:00")),
        Some(instant("2012-11-04T01:10:00-05:00"))
    );
    assert_eq!(
        ten_past.next_after(instant("2012-11-04T01:10:00-05:00")),
        Some(instant("2012-11-04T02:10:00-05:00"))
    );
}

#[test]
fn half_hour_transitions_of_lord_howe_follow_the_same_rule() {
    // Lord Howe turns its clocks forward 30 minutes on 2023-10-01 at 02:00 (+10:30 -> +11:00)
    // and back 30 minutes on 2024-04-07 at 02:00 (+11:00 -> +10:30).
    let zone = "Australia/Lord_Howe";
    assert_eq!(
        next("0 15 2 * * *", zone, "2023-10-01T00:00:00+10:30"),
        Some(instant("2023-10-01T02:30:00+11:00"))
    );
    assert_eq!(
        next("0 15 * * * *", zone, "2023-10-01T01:20:00+10:30"),
        Some(instant("2023-10-01T03:15:00+11:00"))
    );
    assert_eq!(
        next("0 45 1 * * *", zone, "2024-04-07T01:45:00+11:00"),
        Some(instant("2024-04-08T01:45:00+10:30"))
    );
    assert_eq!(
        next("0 45 * * * *", zone, "2024-04-07T01:45:00+11:00"),
        Some(instant("2024-04-07T01:45:00+10:30"))
    );
}

// ---- reference §2.7: activation vectors ----

#[test]
fn activation_vectors() {
    let fires = |spec: &str, at: &str| schedule(spec, "").fires_at(instant(at));
    assert!(fires("0 0/15 * * * *", "2012-07-09T15:00:00Z"));
    assert!(fires("0 0/15 * * * *", "2012-07-09T15:45:00Z"));
    assert!(!fires("0 0/15 * * * *", "2012-07-09T15:40:00Z"));
    assert!(fires("0 5/15 * * * *", "2012-07-09T15:05:00Z"));
    assert!(fires("0 5/15 * * * *", "2012-07-09T15:20:00Z"));
    assert!(fires("0 5/15 * * * *", "2012-07-09T15:50:00Z"));
    assert!(fires("0 30 08 ? Jul Sun", "2012-07-15T08:30:00Z"));
    assert!(!fires("0 30 08 ? Jul Sun", "2012-07-16T08:30:00Z"));
    assert!(fires("@hourly", "2012-07-09T15:00:00Z"));
    assert!(!fires("@hourly", "2012-07-09T15:04:00Z"));
    assert!(fires("@daily", "2012-07-09T00:00:00Z"));
    assert!(!fires("@daily", "2012-07-09T15:00:00Z"));
    assert!(fires("@weekly", "2012-07-08T00:00:00Z"));
    assert!(!fires("@weekly", "2012-07-09T00:00:00Z"));
    assert!(fires("@monthly", "2012-07-01T00:00:00Z"));
    assert!(fires("@minutely", "2012-07-09T15:00:00Z"));
    assert!(!fires("@minutely", "2012-07-09T15:00:15Z"));
    // DOM/DOW OR rule: both restricted, either may match.
    assert!(fires("0 * * 1,15 * Sun", "2012-07-15T00:00:00Z"));
    assert!(fires("0 * * 1,15 * Sun", "2012-06-15T00:00:00Z"));
    assert!(fires("0 * * 1,15 * Sun", "2012-08-01T00:00:00Z"));
    assert!(fires("0 * * 1,15 * Sun", "2012-07-22T10:07:00Z"));
    assert!(!fires("0 * * 1,15 * Sun", "2012-07-23T10:07:00Z"));
    // Star rule: one day field is a star, so the other decides.
    assert!(!fires("0 * * * * Mon", "2012-07-15T00:00:00Z"));
    assert!(fires("0 * * * * Mon", "2012-07-16T00:00:00Z"));
    assert!(!fires("0 * * 1,15 * *", "2012-07-09T00:00:00Z"));
    assert!(fires("0 * * 1,15 * *", "2012-07-15T00:00:00Z"));
    // Fire times are whole seconds.
    assert!(!fires("* * * * * *", "2012-07-15T00:00:00.5Z"));
}

// ---- reference §2.7: extcron, scheduler and API vectors ----

#[test]
fn at_is_a_one_shot_at_that_instant() {
    let at = schedule("@at 2018-01-02T15:04:00Z", "");
    assert_eq!(at.kind(), ScheduleKind::At);
    assert_eq!(
        at.next_after(instant("2018-01-01T00:00:00Z")),
        Some(instant("2018-01-02T15:04:00Z"))
    );
    assert_eq!(at.next_after(instant("2018-01-02T15:04:00Z")), None);
    assert!(at.fires_at(instant("2018-01-02T15:04:00Z")));

    let with_offset = schedule("@at 2019-02-04T09:20:00+06:00", "Europe/Berlin");
    let Repr::At(at_time) = with_offset.repr else {
        panic!("expected an @at schedule, got {with_offset:?}");
    };
    assert_eq!(at_time.offset().local_minus_utc(), 21_600);
    assert_eq!(
        with_offset.next_after(instant("2019-01-01T00:00:00Z")),
        Some(instant("2019-02-04T03:20:00Z"))
    );

    let future = schedule("@at 2012-07-09T15:00:00Z", "");
    assert_eq!(
        future.next_after(instant("2012-07-09T14:45:00Z")),
        Some(instant("2012-07-09T15:00:00Z"))
    );
    let past = schedule("@at 2012-07-05T13:00:00Z", "");
    assert_eq!(past.next_after(instant("2012-07-09T14:45:00Z")), None);

    // rkron also accepts a zone prefix before @at; the instant keeps its own offset.
    assert_eq!(
        next(
            "TZ=Asia/Tokyo @at 2018-01-02T15:04:00Z",
            "",
            "2018-01-01T00:00:00Z"
        ),
        Some(instant("2018-01-02T15:04:00Z"))
    );
}

#[test]
fn at_with_a_bad_date_reports_the_date() {
    let error = parse_error("@at badtime");
    assert!(
        error.starts_with(
            r#"failed to parse date @at badtime: parsing time "badtime" as "2006-01-02T15:04:05Z07:00": "#
        ),
        "{error}"
    );
    assert!(
        parse_error("@at 2018-01-02 15:04")
            .starts_with("failed to parse date @at 2018-01-02 15:04: ")
    );
    assert_eq!(parse_error("@at"), "unrecognized descriptor: @at");
}

#[test]
fn manually_never_fires() {
    let manual = schedule("@manually", "Europe/Berlin");
    assert!(manual.is_manual());
    assert_eq!(manual.kind(), ScheduleKind::Manual);
    assert_eq!(manual.next_after(instant("0001-01-01T00:00:00Z")), None);
    assert_eq!(manual.next_after(instant("2012-07-09T14:45:00Z")), None);
    assert!(!schedule("@daily", "").is_manual());
}

#[test]
fn minutely_is_second_zero_of_every_minute() {
    let minutely = schedule("@minutely", "");
    assert_eq!(minutely, schedule("0 * * * * *", ""));
    assert_eq!(minutely.timezone(), Some(chrono_tz::Tz::UTC));
    assert_eq!(
        minutely.next_after(instant("2012-07-09T14:45:00Z")),
        Some(instant("2012-07-09T14:46:00Z"))
    );
    // gRPC test: `0 * * * * *` is every minute at second 0.
    assert_eq!(
        next("0 * * * * *", "", "2012-07-09T14:45:30.25Z"),
        Some(instant("2012-07-09T14:46:00Z"))
    );
}

#[test]
fn descriptors_equal_their_cron_forms() {
    let pairs = [
        ("@yearly", "0 0 0 1 1 *"),
        ("@annually", "0 0 0 1 1 *"),
        ("@monthly", "0 0 0 1 * *"),
        ("@weekly", "0 0 0 * * 0"),
        ("@daily", "0 0 0 * * *"),
        ("@midnight", "0 0 0 * * *"),
        ("@hourly", "0 0 * * * *"),
        ("@minutely", "0 * * * * *"),
    ];
    for (descriptor, cron) in pairs {
        assert_eq!(
            schedule(descriptor, "Asia/Kolkata"),
            schedule(cron, "Asia/Kolkata"),
            "{descriptor}"
        );
        assert_eq!(schedule(descriptor, "").kind(), ScheduleKind::Cron);
    }
}

#[test]
fn hash_substitution_vectors() {
    // `test_job` has code-point sum 858.
    assert_eq!(substitute_hash("0 0 ~ * * *", "test_job"), "0 0 18 * * *");
    assert_eq!(
        substitute_hash("TZ=Europe/Madrid 0 0 1 * ~ *", "test_job"),
        "TZ=Europe/Madrid 0 0 1 * 7 *"
    );
    assert_eq!(
        substitute_hash("TZ=Europe/Madrid @at something with ~", "test_job"),
        "TZ=Europe/Madrid @at something with ~"
    );
}

#[test]
fn hash_substitution_covers_every_field_and_five_field_specs() {
    // 858 % 60 = 18, % 24 = 18, % 28 + 1 = 19, % 12 + 1 = 7, % 7 = 4.
    assert_eq!(
        substitute_hash("~ ~ ~ ~ ~ ~", "test_job"),
        "18 18 18 19 7 4"
    );
    assert_eq!(
        substitute_hash("CRON_TZ=UTC ~ ~ ~ ~ ~ ~", "test_job"),
        "CRON_TZ=UTC 18 18 18 19 7 4"
    );
    assert_eq!(substitute_hash("~ ~ ~ ~ ~", "test_job"), "18 18 19 7 4");
    assert_eq!(
        substitute_hash("0 ~/15 * * * *", "test_job"),
        "0 18/15 * * * *"
    );
    assert_eq!(
        substitute_hash("0  ~,~\t* * * *", "test_job"),
        "0  18,18\t* * * *"
    );
    assert_eq!(substitute_hash("@every ~", "test_job"), "@every ~");
    assert_eq!(substitute_hash("0 0 0 * * *", "test_job"), "0 0 0 * * *");
    // "é" is U+00E9 = 233: code points, not bytes.
    assert_eq!(substitute_hash("0 ~ * * * *", "\u{e9}"), "0 53 * * * *");
    // Parsing applies it.
    assert_eq!(schedule("0 0 ~ * * *", ""), schedule("0 0 18 * * *", ""));
    assert_eq!(schedule("~ * * * *", ""), schedule("0 18 * * * *", ""));
}

#[test]
fn every_fires_exactly_one_interval_apart_aligned_to_the_job_phase() {
    let every = schedule("@every 2s", "");
    assert_eq!(every.kind(), ScheduleKind::Every);
    assert_eq!(
        every.every_interval(),
        Some(std::time::Duration::from_secs(2))
    );
    let phase = i64::try_from(stable_name_hash("test_job") % 2).unwrap();
    let mut current = instant("2012-07-09T14:45:00.3Z");
    let first = every.next_after(current).unwrap();
    assert!(first > current && first - current <= TimeDelta::seconds(2));
    for _ in 0..10 {
        let fire = every.next_after(current).unwrap();
        assert_eq!((fire.timestamp() - phase).rem_euclid(2), 0);
        assert_eq!(fire.timestamp_subsec_nanos(), 0);
        if current != instant("2012-07-09T14:45:00.3Z") {
            assert_eq!(fire - current, TimeDelta::seconds(2));
        }
        current = fire;
    }
    // Europe/Amsterdam is accepted and changes nothing for @every.
    let amsterdam = schedule("@every 2s", "Europe/Amsterdam");
    assert_eq!(amsterdam.next_after(current), every.next_after(current));
    assert_eq!(amsterdam.timezone(), None);
}

#[test]
fn every_spreads_jobs_by_name_within_the_interval() {
    let phases: std::collections::BTreeSet<i64> = (0..50)
        .map(|index| {
            let job = Schedule::parse("@every 1h", &format!("job-{index}"), "").unwrap();
            job.next_after(instant("2024-01-01T00:00:00Z"))
                .unwrap()
                .timestamp()
                % 3600
        })
        .collect();
    assert!(
        phases.len() > 40,
        "phases should differ by name: {phases:?}"
    );
    // FNV-1a 64 is pinned: fire times of existing jobs depend on it.
    assert_eq!(stable_name_hash(""), 0xcbf2_9ce4_8422_2325);
    assert_eq!(stable_name_hash("a"), 0xaf63_dc4c_8601_ec8c);
}

#[test]
fn every_rounds_down_to_whole_seconds_with_a_one_second_minimum() {
    let interval = |spec: &str| schedule(spec, "").every_interval().unwrap().as_secs();
    assert_eq!(interval("@every 10s"), 10);
    assert_eq!(interval("@every 1m"), 60);
    assert_eq!(interval("@every 1h30m"), 5400);
    assert_eq!(interval("@every 1.5s"), 1);
    assert_eq!(interval("@every 2999ms"), 2);
    assert_eq!(interval("@every 500ms"), 1);
    assert_eq!(interval("@every 0s"), 1);
    let ten = schedule("@every 10s", "");
    let mut current = instant("2024-06-01T12:00:00Z");
    for _ in 0..5 {
        let fire = ten.next_after(current).unwrap();
        assert!(fire > current);
        current = fire;
        assert_eq!(
            ten.next_after(current).unwrap() - current,
            TimeDelta::seconds(10)
        );
    }
    let every_half_hour_and_a_half = schedule("@every 1h30m", "");
    let fire = every_half_hour_and_a_half.next_after(current).unwrap();
    assert_eq!(
        every_half_hour_and_a_half.next_after(fire).unwrap() - fire,
        TimeDelta::minutes(90)
    );
}

#[test]
fn every_with_a_bad_duration_reports_go_text() {
    assert_eq!(
        parse_error("@every x"),
        r#"failed to parse duration @every x: time: invalid duration "x""#
    );
    assert_eq!(
        parse_error("@every 1"),
        r#"failed to parse duration @every 1: time: missing unit in duration "1""#
    );
    assert_eq!(parse_error("@every"), "unrecognized descriptor: @every");
}

// ---- five-field crontab specs (rkron extension) ----

#[test]
fn five_field_specs_are_crontab_with_seconds_zero() {
    let weekdays = schedule("30 9 * * MON-FRI", "");
    assert_eq!(weekdays, schedule("0 30 9 * * MON-FRI", ""));
    // 2024-06-01 is a Saturday.
    assert_eq!(
        weekdays.next_after(instant("2024-06-01T12:00:00Z")),
        Some(instant("2024-06-03T09:30:00Z"))
    );
    assert_eq!(
        weekdays.next_after(instant("2024-06-03T09:30:00Z")),
        Some(instant("2024-06-04T09:30:00Z"))
    );
    assert_eq!(
        next("*/5 * * * *", "", "2024-06-01T12:02:59Z"),
        Some(instant("2024-06-01T12:05:00Z"))
    );
    assert_eq!(
        next("0 0 1 jan *", "Europe/Berlin", "2024-06-01T12:00:00Z"),
        Some(instant("2024-12-31T23:00:00Z"))
    );
    // 7 is Sunday; 2024-06-02 is a Sunday.
    assert_eq!(
        next("0 12 * * 7", "", "2024-06-01T00:00:00Z"),
        Some(instant("2024-06-02T12:00:00Z"))
    );
    assert_eq!(schedule("0 12 * * 5-7", ""), schedule("0 12 * * 0,5,6", ""));
}

#[test]
fn field_counts_other_than_five_or_six_are_rejected() {
    assert_eq!(
        parse_error("0 0 0 1 1 * 2024"),
        "expected exactly 6 fields, found 7: [0 0 0 1 1 * 2024]"
    );
    assert_eq!(
        parse_error("* * * *"),
        "expected exactly 6 fields, found 4: [* * * *]"
    );
    assert_eq!(
        parse_error("xyz"),
        "expected exactly 6 fields, found 1: [xyz]"
    );
    assert_eq!(
        parse_error("TZ=UTC 1 2 3 4 5 6 7 8"),
        "expected exactly 6 fields, found 8: [1 2 3 4 5 6 7 8]"
    );
}

// ---- field syntax and error texts ----

#[test]
fn field_syntax_forms() {
    let same = [
        ("? ? ? ? ? ?", "* * * * * *"),
        ("0 0 0 * JAN-mar SUN", "0 0 0 * 1-3 0"),
        ("0 0 0 * Dec sat", "0 0 0 * 12 6"),
        ("0 1,2,3 * * * *", "0 1-3 * * * *"),
        ("0 1,,3, * * * *", "0 1,3 * * * *"),
        ("0 10/20 * * * *", "0 10,30,50 * * * *"),
        ("0 10-40/15 * * * *", "0 10,25,40 * * * *"),
        ("0 */20 * * * *", "0 0,20,40 * * * *"),
        ("0 +5 * * * *", "0 5 * * * *"),
        ("0 0 0 * * 1/2", "0 0 0 * * 1,3,5"),
    ];
    for (left, right) in same {
        assert_eq!(schedule(left, ""), schedule(right, ""), "{left} vs {right}");
    }
}

#[test]
fn invalid_fields_report_robfig_texts() {
    let cases = [
        ("60 * * * * *", "end of range (60) above maximum (59): 60"),
        ("* 60 * * * *", "end of range (60) above maximum (59): 60"),
        ("* * 24 * * *", "end of range (24) above maximum (23): 24"),
        ("* * * 32 * *", "end of range (32) above maximum (31): 32"),
        ("* * * * 13 *", "end of range (13) above maximum (12): 13"),
        ("* * * * * 8", "end of range (8) above maximum (7): 8"),
        ("* * * 0 * *", "beginning of range (0) below minimum (1): 0"),
        ("* * * * 0 *", "beginning of range (0) below minimum (1): 0"),
        (
            "0 50-70 * * * *",
            "end of range (70) above maximum (59): 50-70",
        ),
        (
            "* * * * 5-3 *",
            "beginning of range (5) beyond end of range (3): 5-3",
        ),
        (
            "0 0 0 * * 7/2",
            "beginning of range (7) beyond end of range (6): 7/2",
        ),
        (
            "x * * * * *",
            r#"failed to parse int from x: strconv.Atoi: parsing "x": invalid syntax"#,
        ),
        (
            "0 0 0 * Foo *",
            r#"failed to parse int from Foo: strconv.Atoi: parsing "Foo": invalid syntax"#,
        ),
        (
            "-1 * * * * *",
            r#"failed to parse int from : strconv.Atoi: parsing "": invalid syntax"#,
        ),
        (
            "99999999999999999999 * * * * *",
            r#"failed to parse int from 99999999999999999999: strconv.Atoi: parsing "99999999999999999999": value out of range"#,
        ),
        ("1-2-3 * * * * *", "too many hyphens: 1-2-3"),
        ("*/2/3 * * * * *", "too many slashes: */2/3"),
        (
            "*/0 * * * * *",
            "step of range should be a positive number: */0",
        ),
        ("*/-1 * * * * *", "negative number (-1) not allowed: -1"),
        ("", "empty spec string"),
        ("   ", "empty spec string"),
        ("@foo", "unrecognized descriptor: @foo"),
        ("@Daily", "unrecognized descriptor: @Daily"),
        // No L, W or # (Quartz extensions).
        (
            "0 0 0 L * *",
            r#"failed to parse int from L: strconv.Atoi: parsing "L": invalid syntax"#,
        ),
        (
            "0 0 0 15W * *",
            r#"failed to parse int from 15W: strconv.Atoi: parsing "15W": invalid syntax"#,
        ),
        (
            "0 0 0 * * 1#2",
            r#"failed to parse int from 1#2: strconv.Atoi: parsing "1#2": invalid syntax"#,
        ),
    ];
    for (spec, expected) in cases {
        assert_eq!(parse_error(spec), expected, "spec {spec:?}");
    }
}

// ---- time zones ----

#[test]
fn zone_prefixes_select_the_zone_and_win_over_the_job_zone() {
    // 09:00 in Tokyo (+09:00) is 00:00 UTC.
    for spec in [
        "TZ=Asia/Tokyo 0 0 9 * * *",
        "CRON_TZ=Asia/Tokyo 0 0 9 * * *",
    ] {
        assert_eq!(
            next(spec, "", "2024-06-01T12:00:00Z"),
            Some(instant("2024-06-02T00:00:00Z"))
        );
        assert_eq!(
            next(spec, "America/New_York", "2024-06-01T12:00:00Z"),
            Some(instant("2024-06-02T00:00:00Z"))
        );
    }
    assert_eq!(
        next(
            "TZ=Asia/Tokyo @daily",
            "Europe/Berlin",
            "2024-06-01T12:00:00Z"
        ),
        Some(instant("2024-06-01T15:00:00Z"))
    );
    assert_eq!(
        next("TZ=Asia/Kolkata 30 9 * * *", "", "2024-06-01T00:00:00Z"),
        Some(instant("2024-06-01T04:00:00Z"))
    );
    // An empty zone name is UTC, as Go's LoadLocation("").
    assert_eq!(
        schedule("TZ= 0 0 9 * * *", "Asia/Tokyo").timezone(),
        Some(chrono_tz::Tz::UTC)
    );
}

#[test]
fn bad_zones_are_reported_as_bad_locations() {
    assert_eq!(
        parse_error("TZ=Mars/Olympus 0 * * * * *"),
        "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"
    );
    assert_eq!(
        parse_error("CRON_TZ=Nowhere @daily"),
        "provided bad location Nowhere: unknown time zone Nowhere"
    );
    assert_eq!(
        Schedule::parse("0 * * * * *", "job", "Mars/Olympus")
            .unwrap_err()
            .to_string(),
        "provided bad location Mars/Olympus: unknown time zone Mars/Olympus"
    );
    assert_eq!(parse_error("TZ=UTC"), "empty spec string");
}

#[test]
fn job_zone_applies_to_cron_fields_and_descriptors() {
    // Berlin is UTC+1 in winter and UTC+2 in summer.
    assert_eq!(
        next("@daily", "Europe/Berlin", "2024-01-15T12:00:00Z"),
        Some(instant("2024-01-15T23:00:00Z"))
    );
    assert_eq!(
        next("@daily", "Europe/Berlin", "2024-07-15T12:00:00Z"),
        Some(instant("2024-07-15T22:00:00Z"))
    );
    assert_eq!(
        next(
            "0 30 9 * * MON-FRI",
            "Europe/Berlin",
            "2024-01-15T12:00:00Z"
        ),
        Some(instant("2024-01-16T08:30:00Z"))
    );
    assert_eq!(
        next("@hourly", "Asia/Kolkata", "2024-01-15T12:00:00Z"),
        Some(instant("2024-01-15T12:30:00Z"))
    );
    assert_eq!(
        next("@monthly", "America/New_York", "2024-01-15T12:00:00Z"),
        Some(instant("2024-02-01T05:00:00Z"))
    );
    assert_eq!(
        schedule("@weekly", "Europe/Berlin").timezone(),
        Some(chrono_tz::Tz::Europe__Berlin)
    );
    assert_eq!(
        schedule("0 0 * * * *", "").timezone(),
        Some(chrono_tz::Tz::UTC)
    );
}

#[test]
fn parse_timezone_keeps_its_contract() {
    assert_eq!(super::parse_timezone(""), Ok(None));
    assert_eq!(
        super::parse_timezone("Europe/Berlin"),
        Ok(Some(chrono_tz::Tz::Europe__Berlin))
    );
    assert_eq!(
        super::parse_timezone("Nope/Zone"),
        Err("unknown time zone Nope/Zone".to_owned())
    );
}

#[test]
fn next_after_is_strictly_after_and_handles_subseconds() {
    let every_second = schedule("* * * * * *", "");
    assert_eq!(
        every_second.next_after(instant("2024-01-01T00:00:00Z")),
        Some(instant("2024-01-01T00:00:01Z"))
    );
    assert_eq!(
        every_second.next_after(instant("2024-01-01T00:00:00.999Z")),
        Some(instant("2024-01-01T00:00:01Z"))
    );
    assert_eq!(
        every_second.next_after(instant("1969-12-31T23:59:59.5Z")),
        Some(instant("1970-01-01T00:00:00Z"))
    );
    // Leap day and year wrap.
    assert_eq!(
        next("59 59 23 28-29 2 *", "", "2024-02-28T23:59:59Z"),
        Some(instant("2024-02-29T23:59:59Z"))
    );
    assert_eq!(
        next("0 0 0 1 1 *", "", "2024-12-31T23:59:59Z"),
        Some(instant("2025-01-01T00:00:00Z"))
    );
}

#[test]
fn sparse_specs_are_answered_without_scanning_seconds() {
    // A few thousand sparse searches; a second-by-second scan would take minutes.
    let never = schedule("0 0 0 30 Feb ?", "America/New_York");
    let leap_monday = schedule("59 59 23 29 Feb Mon", "Europe/Berlin");
    let mut current = instant("2000-01-01T00:00:00Z");
    for _ in 0..2000 {
        assert_eq!(never.next_after(current), None);
        assert!(
            leap_monday
                .next_after(current)
                .is_some_and(|fire| fire > current)
        );
        current += TimeDelta::days(17);
    }
}
