//! Tests of job validation (Dkron's order and messages) and the upsert merge rules.

use super::*;
use chrono::TimeZone;

fn job(name: &str) -> Job {
    Job {
        name: name.into(),
        schedule: "@every 1m".into(),
        executor: "shell".into(),
        executor_config: Some([("command".to_string(), "date".to_string())].into()),
        ..Job::default()
    }
}

fn at(secs: i64) -> DateTime<Utc> {
    Utc.timestamp_opt(1_750_000_000 + secs, 0).unwrap()
}

#[test]
fn names() {
    assert_eq!(job("").validate(), Err(ValidationError::EmptyName));
    assert_eq!(
        job("BAD JOB NAME!").validate(),
        Err(ValidationError::IllegalCharacter('B'))
    );
    assert_eq!(
        job("a.b").validate(),
        Err(ValidationError::IllegalCharacter('.'))
    );
    assert_eq!(
        job("a/b").validate(),
        Err(ValidationError::IllegalCharacter('/'))
    );
    let long = "abcdefghijklmnopqrstuvwxyz0123456789-_ßñëäïüøüáéíóýćàèìòùâêîôûæšłç";
    assert_eq!(job(long).validate(), Ok(()));
    assert_eq!(
        ValidationError::IllegalCharacter('B').to_string(),
        "name contains illegal character 'B'"
    );
}

#[test]
fn validation_order_and_messages() {
    let mut j = job("x");
    j.parent_job = "x".into();
    j.schedule = "bad".into();
    assert_eq!(
        j.validate().unwrap_err().to_string(),
        "the job can not have itself as parent"
    );

    let mut j = job("x");
    j.schedule = "@at badtime".into();
    assert!(
        j.validate()
            .unwrap_err()
            .to_string()
            .starts_with("can't parse job schedule: ")
    );

    let mut j = job("x");
    j.schedule = String::new();
    assert_eq!(
        j.validate().unwrap_err().to_string(),
        "can't parse job schedule: empty spec string"
    );
    j.parent_job = "p".into();
    assert_eq!(j.validate(), Ok(()), "children need no schedule");

    let mut j = job("x");
    j.timezone = "notatimezone".into();
    assert_eq!(
        j.validate().unwrap_err().to_string(),
        "unknown time zone notatimezone"
    );

    let mut j = job("x");
    j.executor_config
        .as_mut()
        .unwrap()
        .insert("timeout".into(), "foreverandever".into());
    assert_eq!(
        j.validate().unwrap_err().to_string(),
        "Error parsing job timeout value"
    );

    let mut j = job("x");
    j.executor_config
        .as_mut()
        .unwrap()
        .insert("mem_limit".into(), "invalid".into());
    assert!(
        j.validate()
            .unwrap_err()
            .to_string()
            .starts_with("Error parsing job memory limit value: ")
    );

    // The http executor's keys are not checked at write time, as in Dkron.
    let mut j = job("x");
    j.executor = "http".into();
    j.executor_config
        .as_mut()
        .unwrap()
        .insert("timeout".into(), "foreverandever".into());
    assert_eq!(j.validate(), Ok(()));
}

#[test]
fn concurrency_values() {
    assert_eq!(Concurrency::parse(""), Ok(Concurrency::Allow));
    assert_eq!(Concurrency::parse("forbid"), Ok(Concurrency::Forbid));
    assert_eq!(
        Concurrency::parse("badvalue").unwrap_err().to_string(),
        "invalid concurrency policy value, use \"allow\" or \"forbid\""
    );
}

#[test]
fn upsert_keeps_larger_counters_later_times_stored_status_and_dependents() {
    let mut stored = job("p");
    stored.success_count = 5;
    stored.error_count = 2;
    stored.last_success = Some(at(100));
    stored.last_error = Some(at(50));
    stored.status = JobStatus::Success;
    stored.dependent_jobs = Some(vec!["c".into()]);
    let mut submitted = job("p");
    submitted.success_count = 1;
    submitted.error_count = 9;
    submitted.last_error = Some(at(60));
    let plan = plan_upsert(submitted, Some(&stored), None, None, &[], at(0)).unwrap();
    assert_eq!(plan.job.success_count, 5);
    assert_eq!(plan.job.error_count, 9);
    assert_eq!(plan.job.last_success, Some(at(100)));
    assert_eq!(plan.job.last_error, Some(at(60)));
    assert_eq!(plan.job.status, JobStatus::Success);
    assert_eq!(plan.job.dependent_jobs, Some(vec!["c".into()]));
    assert!(plan.job.next.is_some_and(|n| n > at(0)));
}

#[test]
fn child_needs_existing_parent_and_is_added_once() {
    let mut child = job("c");
    child.parent_job = "p".into();
    assert_eq!(
        plan_upsert(child.clone(), None, None, None, &[], at(0)),
        Err(UpsertError::ParentNotFound)
    );
    let parent = job("p");
    let plan = plan_upsert(child.clone(), None, None, Some(&parent), &[], at(0)).unwrap();
    assert_eq!(
        plan.new_parent.unwrap().dependent_jobs,
        Some(vec!["c".into()])
    );
    assert_eq!(plan.job.next, None, "children are never scheduled by cron");

    let mut listed = parent.clone();
    listed.dependent_jobs = Some(vec!["c".into()]);
    let plan = plan_upsert(child, None, None, Some(&listed), &[], at(0)).unwrap();
    assert!(
        plan.new_parent.is_none(),
        "a parent that already lists the child is not rewritten"
    );
}

#[test]
fn moving_a_child_updates_both_parents_and_cycles_are_rejected() {
    let mut stored_child = job("c");
    stored_child.parent_job = "p1".into();
    let mut p1 = job("p1");
    p1.dependent_jobs = Some(vec!["c".into()]);
    let p2 = job("p2");
    let mut moved = job("c");
    moved.parent_job = "p2".into();
    let plan = plan_upsert(
        moved.clone(),
        Some(&stored_child),
        Some(&p1),
        Some(&p2),
        &[],
        at(0),
    )
    .unwrap();
    assert_eq!(plan.old_parent.unwrap().dependent_jobs, None);
    assert_eq!(
        plan.new_parent.unwrap().dependent_jobs,
        Some(vec!["c".into()])
    );

    let ancestors = vec!["c".to_string()];
    assert!(matches!(
        plan_upsert(
            moved,
            Some(&stored_child),
            Some(&p1),
            Some(&p2),
            &ancestors,
            at(0)
        ),
        Err(UpsertError::Cycle(_))
    ));
}

#[test]
fn next_honours_starts_at_and_expires_at() {
    let mut j = job("x");
    j.starts_at = Some(at(3600));
    let next = j.compute_next(at(0)).unwrap();
    assert!(next >= at(3600) && next <= at(3660));
    j.starts_at = None;
    j.expires_at = Some(at(1));
    assert_eq!(j.compute_next(at(0)), None);
    assert!(!j.is_schedulable_at(at(2)));
    j.expires_at = None;
    j.disabled = true;
    assert!(!j.is_schedulable_at(at(2)));
}
