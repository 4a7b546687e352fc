//! Tests of the `shell` executor against real processes, covering every Dkron §7.1 vector.

use std::collections::BTreeMap;
use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::executor::{ProcStat, parse_proc_stat, tree_rss_pages};
use super::{ShellConfig, ShellExecutor, split_command_line};
use crate::{ExecuteOutcome, ExecuteRequest, Executor, OUTPUT_LIMIT, OutputBuffer, final_output};

fn request(job_name: &str, pairs: &[(&str, &str)]) -> ExecuteRequest {
    ExecuteRequest {
        job_name: job_name.to_owned(),
        config: pairs
            .iter()
            .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
            .collect(),
    }
}

async fn run_with(executor: &ShellExecutor, req: &ExecuteRequest) -> (ExecuteOutcome, String) {
    let output = OutputBuffer::new();
    let outcome = executor
        .execute(req, &output, CancellationToken::new())
        .await;
    (outcome, output.snapshot())
}

async fn run(pairs: &[(&str, &str)]) -> (ExecuteOutcome, String) {
    run_with(&executor(), &request("test-job", pairs)).await
}

/// The executor as `rkron agent` runs it: spawning through the spawner thread, which every test
/// of this module starts (so every one of them covers that path; [`in_process`] covers the
/// other). A spawner that cannot start fails the test.
fn executor() -> ShellExecutor {
    with_spawner(ShellExecutor::new())
}

fn with_spawner(executor: ShellExecutor) -> ShellExecutor {
    super::start_spawner().expect("the spawner thread starts");
    assert!(super::spawner::get().is_some(), "the spawner runs");
    executor
}

/// Returns whether `pid` is a live process (zombies awaiting a reaper count as dead).
fn process_is_alive(pid: u32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => {
            let state = stat.rsplit_once(')').map(|(_, rest)| rest.trim_start());
            !matches!(state.and_then(|rest| rest.chars().next()), Some('Z' | 'X'))
        }
        Err(_) => false,
    }
}

async fn wait_until_dead(pid: u32, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if !process_is_alive(pid) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    !process_is_alive(pid)
}

#[tokio::test]
async fn shell_mode_echo_succeeds() {
    let (outcome, output) = run(&[("command", "echo 'Hello World'"), ("shell", "true")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert!(output.contains("Hello World"), "{output:?}");
}

#[tokio::test]
async fn nonzero_exit_fails_with_exit_status() {
    let (outcome, output) = run(&[("command", "echo before; exit 1"), ("shell", "true")]).await;
    assert_eq!(outcome, ExecuteOutcome::failed("exit status 1"));
    let buffer = OutputBuffer::new();
    buffer.push(output.as_bytes());
    assert_eq!(final_output(&outcome, &buffer), "exit status 1\nbefore\n");
}

#[tokio::test]
async fn missing_command_is_an_error() {
    let (outcome, output) = run(&[("shell", "true")]).await;
    assert_eq!(outcome, ExecuteOutcome::failed("shell: Command missing"));
    assert_eq!(output, "");
}

#[tokio::test]
async fn timeout_kills_and_reports() {
    let started = Instant::now();
    let (outcome, output) =
        run(&[("command", "sleep 3"), ("shell", "true"), ("timeout", "1s")]).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(outcome, ExecuteOutcome::failed("signal: killed"));
    assert!(
        output.contains(
            "shell: Job 'sleep 3' execution time exceeding defined timeout 1s. Job was killed"
        ),
        "{output:?}"
    );
}

#[tokio::test]
async fn invalid_timeout_is_an_error() {
    let (outcome, _) = run(&[("command", "true"), ("timeout", "soon")]).await;
    assert!(!outcome.success);
    assert!(outcome.error.unwrap().contains("invalid timeout"));
}

#[tokio::test]
async fn payload_goes_to_stdin() {
    let (outcome, output) =
        run(&[("command", "cat"), ("payload", "SGVsbG8gZnJvbSBzdGRpbg==")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "Hello from stdin");
}

#[tokio::test]
async fn invalid_base64_payload_is_an_error() {
    let (outcome, output) = run(&[("command", "cat"), ("payload", "not base64!")]).await;
    assert!(!outcome.success);
    assert!(outcome.error.unwrap().contains("invalid base64 payload"));
    assert_eq!(output, "");
}

#[tokio::test]
async fn env_and_job_name_reach_the_process() {
    let req = request(
        "test-job-env",
        &[
            ("command", "echo $TEST_VAR $ENV_JOB_NAME"),
            ("shell", "true"),
            ("env", "TEST_VAR=hello"),
        ],
    );
    let (outcome, output) = run_with(&executor(), &req).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "hello test-job-env\n");
}

#[tokio::test]
async fn env_list_sets_several_variables() {
    let (outcome, output) = run(&[
        ("command", "echo $A-$B"),
        ("shell", "true"),
        ("env", "A=1,B=x=y"),
    ])
    .await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "1-x=y\n");
}

#[tokio::test]
async fn configured_env_overrides_inherited_env() {
    let path = std::env::var("PATH").unwrap_or_else(|_| "/usr/bin:/bin".to_owned());
    let base_env = BTreeMap::from([
        ("Foo".to_owned(), "Bar".to_owned()),
        ("PATH".to_owned(), path),
    ]);
    let executor = with_spawner(ShellExecutor::with_base_env(base_env));

    let inherited = request("job", &[("command", "echo $Foo"), ("shell", "true")]);
    assert_eq!(run_with(&executor, &inherited).await.1, "Bar\n");

    let overridden = request(
        "job",
        &[
            ("command", "echo $Foo"),
            ("shell", "true"),
            ("env", "Foo=Toto"),
        ],
    );
    let (outcome, output) = run_with(&executor, &overridden).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "Toto\n");
}

#[tokio::test]
async fn direct_mode_runs_without_a_shell() {
    let (outcome, output) = run(&[("command", "echo hello direct")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "hello direct\n");
}

#[tokio::test]
async fn direct_mode_does_not_expand_variables() {
    let (outcome, output) = run(&[("command", "echo '$HOME' \"a b\"")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "$HOME a b\n");
}

#[tokio::test]
async fn nonexistent_binary_fails_with_empty_output() {
    let (outcome, output) = run(&[("command", "nope-this-binary-does-not-exist --flag")]).await;
    assert_eq!(
        outcome,
        ExecuteOutcome::failed(
            "exec: \"nope-this-binary-does-not-exist\": executable file not found in $PATH"
        )
    );
    assert_eq!(output, "");
}

#[tokio::test]
async fn nonexistent_path_fails_with_empty_output() {
    let (outcome, output) = run(&[("command", "/nonexistent/dir/tool")]).await;
    assert_eq!(
        outcome,
        ExecuteOutcome::failed("fork/exec /nonexistent/dir/tool: no such file or directory")
    );
    assert_eq!(output, "");
}

#[tokio::test]
async fn cwd_sets_the_working_directory() {
    let (outcome, output) = run(&[("command", "pwd"), ("cwd", "/tmp")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output.trim_end(), "/tmp");
}

#[tokio::test]
async fn missing_cwd_is_an_error() {
    let (outcome, _) = run(&[("command", "pwd"), ("cwd", "/nonexistent-rkron-dir")]).await;
    assert_eq!(
        outcome,
        ExecuteOutcome::failed("chdir /nonexistent-rkron-dir: no such directory")
    );
}

#[tokio::test]
async fn long_output_keeps_the_tail() {
    // 1000 lines of 1000 bytes: four times the limit.
    let command = "i=0; while [ $i -lt 1000 ]; do printf '%0999d\\n' $i; i=$((i+1)); done";
    let output = OutputBuffer::new();
    let req = request("job", &[("command", command), ("shell", "true")]);
    let outcome = executor()
        .execute(&req, &output, CancellationToken::new())
        .await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    let text = output.snapshot();
    assert_eq!(output.total_written(), 1_000_000);
    assert!(text.len() <= OUTPUT_LIMIT, "{}", text.len());
    assert_eq!(text.len(), OUTPUT_LIMIT);
    assert!(text.ends_with(&format!("{:0999}\n", 999)));
}

#[tokio::test]
async fn stdout_and_stderr_share_the_output() {
    let (outcome, output) = run(&[
        ("command", "echo out; echo err >&2; sleep 0.1; echo out2"),
        ("shell", "true"),
    ])
    .await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert!(
        output.contains("out\n") && output.contains("err\n"),
        "{output:?}"
    );
    assert!(output.ends_with("out2\n"), "{output:?}");
}

#[tokio::test]
async fn shell_mode_runs_operators() {
    let (outcome, output) = run(&[
        ("command", "echo 'test1' && echo 'success'"),
        ("shell", "true"),
    ])
    .await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "test1\nsuccess\n");
}

#[tokio::test]
async fn direct_mode_stops_at_the_first_operator() {
    // Dkron's go-shellwords stops at `&&`: the command is the single argv entry `date`.
    assert_eq!(
        split_command_line("date && echo 'success'").unwrap(),
        ["date"]
    );
    let (outcome, output) = run(&[("command", "date && echo 'success'")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert!(!output.contains("success"), "{output:?}");
    assert_eq!(output.lines().count(), 1, "{output:?}");
}

#[tokio::test]
async fn timeout_leaves_no_orphans() {
    assert_a_timeout_leaves_no_orphans(&executor()).await;
}

/// A job that times out is killed with its background process, within the timeout's second.
async fn assert_a_timeout_leaves_no_orphans(executor: &ShellExecutor) {
    let output = OutputBuffer::new();
    let req = request(
        "job",
        &[
            ("command", "sleep 300 & echo $!; sleep 300"),
            ("shell", "true"),
            ("timeout", "1s"),
        ],
    );
    let started = Instant::now();
    let outcome = executor
        .execute(&req, &output, CancellationToken::new())
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert!(!outcome.success);
    let text = output.snapshot();
    let grandchild: u32 = text.lines().next().unwrap().trim().parse().unwrap();
    assert!(
        wait_until_dead(grandchild, Duration::from_secs(1)).await,
        "{grandchild} survived"
    );
}

#[tokio::test]
async fn cancellation_kills_the_process_group() {
    let output = OutputBuffer::new();
    let req = request(
        "job",
        &[
            ("command", "sleep 300 & echo $!; sleep 300"),
            ("shell", "true"),
        ],
    );
    let cancel = CancellationToken::new();
    let trigger = cancel.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(200)).await;
        trigger.cancel();
    });
    let started = Instant::now();
    let outcome = executor().execute(&req, &output, cancel).await;
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(outcome, ExecuteOutcome::killed());
    assert_eq!(outcome.error.as_deref(), Some("killed"));
    let grandchild: u32 = output
        .snapshot()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until_dead(grandchild, Duration::from_secs(1)).await,
        "{grandchild} survived"
    );
}

#[tokio::test]
async fn dropping_the_execution_kills_the_process_group() {
    let output = OutputBuffer::new();
    let req = request(
        "job",
        &[("command", "echo $$; sleep 300"), ("shell", "true")],
    );
    let executor = executor();
    let execution = executor.execute(&req, &output, CancellationToken::new());
    let timed_out = tokio::time::timeout(Duration::from_millis(500), execution).await;
    assert!(timed_out.is_err());
    let leader: u32 = output.snapshot().trim().parse().unwrap();
    assert!(
        wait_until_dead(leader, Duration::from_secs(1)).await,
        "{leader} survived"
    );
}

#[tokio::test]
async fn memory_limit_kills_the_process_tree() {
    // `tail` keeps its whole newline-free input in memory until the input ends.
    let command = "(head -c 300M /dev/zero; sleep 10) | tail > /dev/null";
    let started = Instant::now();
    let (outcome, output) = run(&[
        ("command", command),
        ("shell", "true"),
        ("mem_limit", "50MB"),
    ])
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(!outcome.success);
    let expected_start = format!("shell: Job '{command}' memory usage (");
    assert!(output.contains(&expected_start), "{output:?}");
    assert!(
        output.contains("bytes) exceeding defined limit (52428800 bytes). Job was killed"),
        "{output:?}"
    );
}

#[tokio::test]
async fn memory_limit_lets_small_jobs_finish() {
    let (outcome, output) = run(&[
        ("command", "echo small"),
        ("shell", "true"),
        ("mem_limit", "1GB"),
    ])
    .await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    assert_eq!(output, "small\n");
}

#[tokio::test]
async fn invalid_memory_limit_is_an_error() {
    let (outcome, _) = run(&[("command", "true"), ("mem_limit", "100PB")]).await;
    assert!(!outcome.success);
    assert!(
        outcome
            .error
            .unwrap()
            .starts_with("shell: invalid memory limit")
    );
}

#[tokio::test]
async fn killed_by_signal_reports_the_signal() {
    let (outcome, _) = run(&[("command", "kill -TERM $$"), ("shell", "true")]).await;
    assert_eq!(outcome, ExecuteOutcome::failed("signal: terminated"));
}

#[tokio::test]
async fn su_runs_as_another_user() {
    if !nix::unistd::geteuid().is_root() {
        return;
    }
    let (outcome, output) = run(&[("command", "id -u"), ("su", "nobody"), ("cwd", "/tmp")]).await;
    assert_eq!(outcome, ExecuteOutcome::succeeded());
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    assert_eq!(output.trim(), nobody.uid.to_string());
}

#[tokio::test]
async fn su_with_unknown_user_is_an_error() {
    let (outcome, _) = run(&[("command", "true"), ("su", "no-such-user-rkron")]).await;
    assert_eq!(
        outcome,
        ExecuteOutcome::failed("shell: su: unknown user \"no-such-user-rkron\"")
    );
}

#[test]
fn splits_words_with_posix_quoting() {
    let vectors: &[(&str, &[&str])] = &[
        ("echo hello direct", &["echo", "hello", "direct"]),
        ("  spaced \t out  ", &["spaced", "out"]),
        (
            "echo 'single quoted' \"double quoted\"",
            &["echo", "single quoted", "double quoted"],
        ),
        ("a'b'\"c\"d", &["abcd"]),
        (r"echo a\ b", &["echo", "a b"]),
        (r#"echo "a \"q\" \$x \n""#, &["echo", r#"a "q" $x \n"#]),
        ("echo ''", &["echo", ""]),
        ("echo 'a;b' \"c|d\" e\\&f", &["echo", "a;b", "c|d", "e&f"]),
        ("cmd; other", &["cmd"]),
        ("cmd|other", &["cmd"]),
        ("cmd > file", &["cmd"]),
        ("", &[]),
    ];
    for (line, expected) in vectors {
        assert_eq!(
            split_command_line(line).unwrap(),
            *expected,
            "line {line:?}"
        );
    }
}

#[test]
fn rejects_unterminated_quotes() {
    for line in ["echo 'open", "echo \"open", "echo trailing\\"] {
        assert!(split_command_line(line).is_err(), "line {line:?}");
    }
}

#[test]
fn parses_shell_flag_like_go() {
    let config_with = |shell: &str| {
        let config = BTreeMap::from([
            ("command".to_owned(), "true".to_owned()),
            ("shell".to_owned(), shell.to_owned()),
        ]);
        ShellConfig::from_config(&config).unwrap().shell
    };
    for truthy in ["true", "1", "t", "T", "TRUE", "True"] {
        assert!(config_with(truthy), "{truthy}");
    }
    for falsy in ["false", "0", "yes", "", "tRuE"] {
        assert!(!config_with(falsy), "{falsy}");
    }
}

#[test]
fn parses_proc_stat_lines() {
    let stat = "1234 (my (odd) name) S 1 1234 1234 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 \
                5000 12345678 2048 18446744073709551615";
    let parsed = parse_proc_stat(1234, stat).unwrap();
    assert_eq!(
        parsed,
        ProcStat {
            pid: 1234,
            ppid: 1,
            pgrp: 1234,
            rss_pages: 2048
        }
    );
    assert_eq!(parse_proc_stat(1, "garbage"), None);
}

#[test]
fn tree_rss_counts_the_group_and_its_descendants() {
    let process = |pid, ppid, pgrp, rss_pages| ProcStat {
        pid,
        ppid,
        pgrp,
        rss_pages,
    };
    let processes = [
        process(100, 1, 100, 10),   // leader
        process(101, 100, 100, 20), // child in the group
        process(102, 101, 102, 40), // grandchild that started its own group
        process(103, 102, 103, 80), // its child
        process(200, 1, 200, 1000), // unrelated
        process(201, 200, 100, 1),  // in the group by id only (counted)
    ];
    assert_eq!(tree_rss_pages(100, &processes), 10 + 20 + 40 + 80 + 1);
}

#[tokio::test]
async fn a_background_process_holding_the_output_does_not_hold_the_execution() {
    let output = OutputBuffer::new();
    let req = request(
        "job",
        &[
            ("command", "sleep 30 & echo $!; echo done"),
            ("shell", "true"),
        ],
    );
    let started = Instant::now();
    let outcome = executor()
        .execute(&req, &output, CancellationToken::new())
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "took {:?}",
        started.elapsed()
    );
    assert!(outcome.success, "{outcome:?}");
    let text = output.snapshot();
    assert!(text.contains("done"), "{text}");
    // A leader that exited on its own leaves its background process alone, as Dkron does.
    let background: u32 = text.lines().next().unwrap().trim().parse().unwrap();
    assert!(process_is_alive(background));
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(background as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

#[tokio::test]
async fn a_leader_killed_by_a_signal_takes_its_group_along() {
    let output = OutputBuffer::new();
    let req = request(
        "job",
        &[
            ("command", "sleep 300 & echo $!; kill -9 $$"),
            ("shell", "true"),
        ],
    );
    let started = Instant::now();
    let outcome = executor()
        .execute(&req, &output, CancellationToken::new())
        .await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "took {:?}",
        started.elapsed()
    );
    assert_eq!(outcome.error.as_deref(), Some("signal: killed"));
    let grandchild: u32 = output
        .snapshot()
        .lines()
        .next()
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert!(
        wait_until_dead(grandchild, Duration::from_secs(1)).await,
        "{grandchild} survived"
    );
}

/// The same behaviours when processes are spawned from the runtime's threads, as they are where
/// the spawner thread cannot start.
mod in_process {
    use super::*;

    async fn run_here(pairs: &[(&str, &str)]) -> (ExecuteOutcome, String) {
        let executor = ShellExecutor::new().spawning_in_process();
        run_with(&executor, &request("test-job", pairs)).await
    }

    #[tokio::test]
    async fn output_exit_status_and_signal() {
        let (outcome, output) =
            run_here(&[("command", "echo out; echo err >&2"), ("shell", "true")]).await;
        assert_eq!(outcome, ExecuteOutcome::succeeded());
        assert_eq!(output, "out\nerr\n");
        let (outcome, _) = run_here(&[("command", "exit 3"), ("shell", "true")]).await;
        assert_eq!(outcome, ExecuteOutcome::failed("exit status 3"));
        let (outcome, _) = run_here(&[("command", "kill -TERM $$"), ("shell", "true")]).await;
        assert_eq!(outcome, ExecuteOutcome::failed("signal: terminated"));
    }

    #[tokio::test]
    async fn payload_env_and_spawn_errors() {
        let (outcome, output) = run_here(&[("command", "cat"), ("payload", "aGVsbG8=")]).await;
        assert_eq!(outcome, ExecuteOutcome::succeeded());
        assert_eq!(output, "hello");
        let (_, output) = run_here(&[("command", "sh -c 'echo $ENV_JOB_NAME'")]).await;
        assert_eq!(output.trim(), "test-job");
        let (outcome, output) = run_here(&[("command", "no-such-binary-rkron")]).await;
        assert_eq!(
            outcome,
            ExecuteOutcome::failed(
                "exec: \"no-such-binary-rkron\": executable file not found in $PATH"
            )
        );
        assert_eq!(output, "");
    }

    #[tokio::test]
    async fn a_timeout_kills_the_whole_group() {
        assert_a_timeout_leaves_no_orphans(&ShellExecutor::new().spawning_in_process()).await;
    }
}

/// Spawns through the spawner threads: many at once come back to the right runs, a lone one is
/// answered at once.
mod spawner {
    use super::*;

    #[tokio::test]
    async fn a_burst_of_runs_each_gets_its_own_process_and_output() {
        let executor = std::sync::Arc::new(executor());
        let spawner = super::super::spawner::get().expect("the spawner runs");
        let before = spawner.requests_made();
        let runs: Vec<_> = (0..300)
            .map(|i| {
                let executor = executor.clone();
                tokio::spawn(async move {
                    let command = format!("echo run-{i}; exit {}", i % 3);
                    let req = request(
                        &format!("job-{i}"),
                        &[("command", &command), ("shell", "true")],
                    );
                    (i, run_with(&executor, &req).await)
                })
            })
            .collect();
        for run in runs {
            let (i, (outcome, output)) = run.await.unwrap();
            assert_eq!(output, format!("run-{i}\n"));
            match i % 3 {
                0 => assert_eq!(outcome, ExecuteOutcome::succeeded()),
                code => assert_eq!(
                    outcome,
                    ExecuteOutcome::failed(format!("exit status {code}"))
                ),
            }
        }
        // Every one of them went through the spawner (other tests in this process may add more).
        assert!(spawner.requests_made() - before >= 300);
    }

    #[tokio::test]
    async fn a_run_dropped_during_its_spawn_leaves_no_process() {
        let executor = executor();
        let spawner = super::super::spawner::get().expect("the spawner runs");
        // A command line no other test uses.
        let seconds = format!("{}.{}", 300 + std::process::id() % 500, 731);
        let command = format!("sleep {seconds}");
        let req = request("job", &[("command", &command)]);
        let output = OutputBuffer::new();
        // Polled once (the spawn is asked for), then dropped while it waits for the answer.
        let run = executor.execute(&req, &output, CancellationToken::new());
        let dropped = tokio::time::timeout(Duration::ZERO, run).await;
        assert!(dropped.is_err(), "the run ended before it was dropped");
        let deadline = Instant::now() + Duration::from_secs(5);
        while spawner.waiting() > 0 {
            assert!(Instant::now() < deadline, "the spawn was never answered");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        // Answered: the process was spawned; nobody follows it, so it must be gone soon.
        loop {
            let left = processes_running(&["sleep", &seconds]);
            if left.is_empty() {
                break;
            }
            assert!(Instant::now() < deadline, "left running: {left:?}");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn one_thread_per_core_spawns_and_a_lone_run_is_answered_at_once() {
        let executor = executor();
        let threads = std::fs::read_dir("/proc/self/task")
            .unwrap()
            .flatten()
            .filter(|task| {
                std::fs::read_to_string(task.path().join("comm"))
                    .is_ok_and(|comm| comm.trim_end() == "rkron-spawner")
            })
            .count();
        assert_eq!(threads, super::super::spawner::spawner_threads());
        // While one spawner thread waits on the empty queue the others wait for its lock: a run
        // that comes alone must still be answered, not when the next one comes.
        for i in 0..5 {
            let command = format!("echo alone-{i}");
            let req = request("job", &[("command", &command)]);
            let run = tokio::time::timeout(Duration::from_secs(5), run_with(&executor, &req));
            let (outcome, output) = run.await.expect("a lone run was answered");
            assert_eq!(outcome, ExecuteOutcome::succeeded());
            assert_eq!(output, format!("alone-{i}\n"));
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Live processes whose command line is exactly `argv`.
    fn processes_running(argv: &[&str]) -> Vec<u32> {
        let wanted: Vec<u8> = argv.iter().flat_map(|arg| arg.bytes().chain([0])).collect();
        std::fs::read_dir("/proc")
            .unwrap()
            .flatten()
            .filter_map(|entry| entry.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted))
            .filter(|pid| process_is_alive(*pid))
            .collect()
    }
}
