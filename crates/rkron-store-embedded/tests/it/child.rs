//! Child processes: this test binary re-invoked with an environment variable, so a test can
//! hold the data dir in one process while another one opens it, or kill a writer mid-flight.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;

use rkron_store::testsuite::job;
use rkron_store::{Expect, JobOp, Store};
use rkron_store_embedded::{EmbeddedStore, OpenError};

/// Data dir handed to the child.
const CHILD_DATA_DIR: &str = "RKRON_TEST_CHILD_DATA_DIR";
/// What the child does: [`EXPECT_IN_USE`], [`EXPECT_FREE`] or [`WRITE_UNTIL_KILLED`].
const CHILD_ACTION: &str = "RKRON_TEST_CHILD_ACTION";
pub(crate) const EXPECT_IN_USE: &str = "expect-in-use";
pub(crate) const EXPECT_FREE: &str = "expect-free";
pub(crate) const WRITE_UNTIL_KILLED: &str = "write-until-killed";
/// Prefix of a line the writing child prints once a job write is acknowledged.
pub(crate) const ACKED: &str = "acked ";

/// Starts this test binary running only [`child_probe`] with `action` on `data_dir`.
pub(crate) fn spawn(data_dir: &Path, action: &str) -> Child {
    Command::new(std::env::current_exe().expect("the test binary has a path"))
        .args([
            "--exact",
            "child::child_probe",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_DATA_DIR, data_dir)
        .env(CHILD_ACTION, action)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the test binary starts again as a child")
}

/// Runs `action` on `data_dir` in a child process and panics with its output if it fails.
pub(crate) fn run(data_dir: &Path, action: &str) {
    let output = spawn(data_dir, action)
        .wait_with_output()
        .expect("the child runs");
    assert!(
        output.status.success(),
        "child {action} failed: {}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Reads the names the child acknowledged, through end of output.
pub(crate) fn acked_names(child: &mut Child, kill_after: usize) -> Vec<String> {
    let stdout = child.stdout.take().expect("the child's stdout is piped");
    let mut acked = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.expect("the child writes text");
        if let Some(name) = line.strip_prefix(ACKED) {
            acked.push(name.to_owned());
            if acked.len() == kill_after {
                // SIGKILL: no destructor, no flush, no clean shutdown of the store.
                child.kill().expect("the child can be killed");
            }
        }
    }
    acked
}

/// The child side; does nothing (and passes) in a normal test run.
#[test]
fn child_probe() {
    let Ok(data_dir) = std::env::var(CHILD_DATA_DIR) else {
        return;
    };
    let data_dir = Path::new(&data_dir);
    let action = std::env::var(CHILD_ACTION).unwrap();
    match action.as_str() {
        EXPECT_IN_USE => {
            let error = EmbeddedStore::open(data_dir).unwrap_err();
            assert!(matches!(error, OpenError::InUse { .. }), "{error:?}");
            let expected = format!(
                "data dir {} is already in use by another rkron process",
                data_dir.display()
            );
            assert_eq!(error.to_string(), expected);
        }
        EXPECT_FREE => drop(EmbeddedStore::open(data_dir).unwrap()),
        WRITE_UNTIL_KILLED => write_until_killed(data_dir),
        other => panic!("unknown child action {other}"),
    }
}

/// Writes jobs from 16 concurrent tasks forever, printing each acknowledged name.
fn write_until_killed(data_dir: &Path) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime starts");
    runtime.block_on(async {
        let store = Arc::new(EmbeddedStore::open(data_dir).expect("the child opens the store"));
        let mut tasks = Vec::new();
        for writer in 0..16 {
            let store = Arc::clone(&store);
            tasks.push(tokio::spawn(async move {
                for sequence in 0.. {
                    let name = format!("job-{writer:02}-{sequence:08}");
                    let op = JobOp::Put {
                        job: job(&name),
                        expect: Expect::Absent,
                    };
                    store
                        .commit_jobs(vec![op])
                        .await
                        .expect("the write succeeds");
                    let mut stdout = std::io::stdout().lock();
                    writeln!(stdout, "{ACKED}{name}").expect("stdout is writable");
                    stdout.flush().expect("stdout is writable");
                }
            }));
        }
        for task in tasks {
            task.await.expect("writers never stop");
        }
    });
}
