//! `notify_on` decides, through `execution_done`, whether a finished execution is notified.

use rkron_notify::{Notifier, NotifySettings};

use crate::fixtures::{execution, job};
use crate::webhook_server::HookServer;

/// (notify_on, success, previous group failed, notified)
const TRUTH_TABLE: &[(&str, bool, bool, bool)] = &[
    ("", true, false, true),
    ("", false, false, true),
    ("always", true, false, true),
    ("always", true, true, true),
    ("always", false, false, true),
    ("always", false, true, true),
    ("failure", true, false, false),
    ("failure", true, true, false),
    ("failure", false, false, true),
    ("failure", false, true, true),
    ("success", true, false, true),
    ("success", true, true, true),
    ("success", false, false, false),
    ("success", false, true, false),
    ("recovery", true, false, false),
    ("recovery", true, true, true),
    ("recovery", false, false, false),
    ("recovery", false, true, false),
    ("failure,recovery", true, false, false),
    ("failure,recovery", true, true, true),
    ("failure,recovery", false, false, true),
    ("failure, recovery", false, true, true),
    // Refused by validation; a stored one still notifies rather than going silent.
    ("sometimes", true, false, true),
];

#[tokio::test]
async fn notify_on_truth_table() {
    let mut server = HookServer::start().await;
    let notifier = Notifier::new(NotifySettings {
        node_name: "server-1".into(),
        webhook_endpoint: server.url("/hook"),
        webhook_payload: "{{.JobName}} {{.Success}}".into(),
        ..NotifySettings::default()
    });

    for &(notify_on, success, previous_failed, notified) in TRUTH_TABLE {
        let mut job = job("job1");
        job.notify_on = notify_on.into();
        let report = notifier
            .execution_done(&job, &execution(success), &[], previous_failed)
            .await;
        let case =
            format!("notify_on={notify_on:?} success={success} previous_failed={previous_failed}");
        assert_eq!(report.sent, u32::from(notified), "{case}");
        assert_eq!(report.failed, 0, "{case}");
        let hooks = server.received();
        assert_eq!(hooks.len(), usize::from(notified), "{case}");
        if notified {
            assert_eq!(hooks[0].body, format!("job1 {success}"), "{case}");
        }
    }
}
