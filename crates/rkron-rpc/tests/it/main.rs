//! RPC tests over real TCP on 127.0.0.1: an `AgentServer` serving a real `LocalAgent`, driven by
//! a `GrpcRunner` directly and by a node runtime.

#![allow(clippy::unwrap_used)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rkron_core::{Clock, Execution, Job, SystemClock};
use rkron_executor::{ExecutorRegistry, OutputBuffer};
use rkron_node::{
    AgentRun, AgentRunner, LocalAgent, Node, NodeConfig, NodeHandle, Plugins, RunError, RunEvent,
};
use rkron_rpc::{GrpcRunner, serve};
use rkron_store::MemoryStore;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};

/// A node's agent served over gRPC on a pre-bound port-0 listener, stopped when dropped.
struct ServedAgent {
    address: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn serve_agent(name: &str) -> ServedAgent {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let agent = local_agent(name);
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(async move {
        serve(listener, agent, async {
            let _ = stopped.await;
        })
        .await
        .unwrap();
    });
    ServedAgent {
        address,
        _stop: stop,
    }
}

fn local_agent(name: &str) -> LocalAgent {
    LocalAgent::new(
        name.to_owned(),
        ExecutorRegistry::with_builtins(),
        Arc::new(SystemClock),
    )
}

fn shell_job(command: &str) -> Job {
    Job {
        name: "j".into(),
        schedule: "@manually".into(),
        executor: "shell".into(),
        executor_config: Some(
            [
                ("command".to_owned(), command.to_owned()),
                ("shell".to_owned(), "true".to_owned()),
            ]
            .into(),
        ),
        ..Job::default()
    }
}

fn agent_run(command: &str) -> AgentRun {
    AgentRun {
        job: Arc::new(shell_job(command)),
        execution: Execution {
            job_name: "j".into(),
            started_at: SystemClock.now(),
            finished_at: None,
            success: false,
            output: String::new(),
            node_name: String::new(),
            group: 1,
            attempt: 1,
            scheduled_at: None,
        },
        leader_token: 0,
    }
}

/// A scheduled run of job `job` for `at`, dispatched by the leader holding `leader_token`.
fn scheduled_run(job: &str, at: chrono::DateTime<chrono::Utc>, leader_token: u64) -> AgentRun {
    let mut run = agent_run("true");
    run.execution.job_name = job.to_owned();
    run.execution.scheduled_at = Some(at);
    run.leader_token = leader_token;
    run
}

fn runner_for(node: &str, address: SocketAddr) -> GrpcRunner {
    let runner = GrpcRunner::new();
    runner.set_address(node, address);
    runner
}

async fn next_event(events: &mut mpsc::Receiver<RunEvent>) -> Option<RunEvent> {
    tokio::time::timeout(Duration::from_secs(10), events.recv())
        .await
        .expect("no run event within 10 s")
}

async fn expect_started(events: &mut mpsc::Receiver<RunEvent>) -> (Execution, OutputBuffer) {
    match next_event(events).await {
        Some(RunEvent::Started(execution, output)) => (execution, output),
        other => panic!("expected Started, got {other:?}"),
    }
}

async fn expect_finished(events: &mut mpsc::Receiver<RunEvent>) -> Execution {
    match next_event(events).await {
        Some(RunEvent::Finished(execution)) => execution,
        other => panic!("expected Finished, got {other:?}"),
    }
}

#[tokio::test]
async fn a_remote_run_reports_started_then_finished_with_its_output() {
    let agent = serve_agent("a1").await;
    let runner = runner_for("a1", agent.address);
    let (sender, mut events) = mpsc::channel(8);
    runner
        .run("a1", agent_run("echo hi"), sender)
        .await
        .unwrap();
    let (started, _) = expect_started(&mut events).await;
    assert_eq!(started.node_name, "a1");
    assert!(started.is_running());
    let finished = expect_finished(&mut events).await;
    assert!(finished.success, "{}", finished.output);
    assert_eq!(finished.output, "hi\n");
    assert_eq!(finished.id(), started.id());
    assert_eq!((finished.group, finished.attempt), (1, 1));
    assert!(
        next_event(&mut events).await.is_none(),
        "nothing after Finished"
    );
}

#[tokio::test]
async fn output_accumulates_in_the_leader_buffer_before_finished() {
    let agent = serve_agent("a1").await;
    let runner = runner_for("a1", agent.address);
    let (sender, mut events) = mpsc::channel(8);
    let command = "for i in 1 2 3; do echo $i; sleep 0.3; done";
    runner.run("a1", agent_run(command), sender).await.unwrap();
    let (_, output) = expect_started(&mut events).await;
    let mut streamed = String::new();
    for _ in 0..500 {
        streamed = output.snapshot();
        if !streamed.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        events.try_recv().is_err(),
        "the run finished before its output streamed"
    );
    assert!(streamed.starts_with("1\n"), "{streamed:?}");
    assert!(!streamed.contains('3'), "{streamed:?}");
    let finished = expect_finished(&mut events).await;
    assert!(finished.success);
    assert_eq!(finished.output, "1\n2\n3\n");
    assert_eq!(output.snapshot(), "1\n2\n3\n");
}

#[tokio::test]
async fn output_beyond_one_chunk_reaches_the_leader_whole() {
    let agent = serve_agent("a1").await;
    let runner = runner_for("a1", agent.address);
    let (sender, mut events) = mpsc::channel(8);
    let command = "yes 0123456789 | head -c 300000";
    runner.run("a1", agent_run(command), sender).await.unwrap();
    let (_, output) = expect_started(&mut events).await;
    let finished = expect_finished(&mut events).await;
    assert!(finished.success, "{}", finished.output);
    assert_eq!(finished.output.len(), rkron_executor::OUTPUT_LIMIT);
    // Bytes the agent's tail dropped before they were sent are not sent.
    assert!(output.total_written() >= rkron_executor::OUTPUT_LIMIT as u64);
    assert_eq!(output.snapshot(), finished.output);
}

#[tokio::test]
async fn kill_through_the_runner_ends_a_run_with_the_reason() {
    let agent = serve_agent("a1").await;
    let runner = runner_for("a1", agent.address);
    let (sender, mut events) = mpsc::channel(8);
    runner
        .run("a1", agent_run("sleep 300"), sender)
        .await
        .unwrap();
    let (started, _) = expect_started(&mut events).await;
    let asked = tokio::time::Instant::now();
    assert!(runner.kill("a1", &started.id(), "killed by the test").await);
    let finished = expect_finished(&mut events).await;
    assert!(asked.elapsed() < Duration::from_secs(2));
    assert!(!finished.success);
    assert!(
        finished.output.contains("killed by the test"),
        "{}",
        finished.output
    );
    assert!(!runner.kill("a1", &started.id(), "again").await, "gone");
}

#[tokio::test]
async fn an_unknown_or_silent_node_is_unreachable() {
    let runner = GrpcRunner::new();
    let (sender, _events) = mpsc::channel(8);
    let error = runner
        .run("ghost", agent_run("true"), sender.clone())
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::Unreachable(ref node) if node == "ghost"));
    assert!(!runner.kill("ghost", "1-ghost", "why").await);

    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = closed.local_addr().unwrap();
    drop(closed);
    runner.set_address("gone", address);
    let error = runner
        .run("gone", agent_run("true"), sender)
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::Unreachable(ref node) if node == "gone"));
}

#[tokio::test]
async fn a_run_for_another_node_name_is_refused() {
    let agent = serve_agent("a1").await;
    let runner = runner_for("a2", agent.address);
    let (sender, _events) = mpsc::channel(8);
    let error = runner
        .run("a2", agent_run("true"), sender)
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::Unreachable(_)));
}

#[tokio::test]
async fn a_draining_node_refuses_runs_as_shutting_down() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let agent = local_agent("a1");
    agent.drain(Duration::ZERO).await;
    tokio::spawn(serve(listener, agent, std::future::pending()));
    let runner = runner_for("a1", address);
    let (sender, _events) = mpsc::channel(8);
    let error = runner
        .run("a1", agent_run("true"), sender)
        .await
        .unwrap_err();
    assert!(matches!(error, RunError::ShuttingDown));
}

#[tokio::test]
async fn a_node_that_goes_away_mid_run_closes_the_events_without_finished() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let address = listener.local_addr().unwrap();
    let (die, dies) = oneshot::channel::<()>();
    // The agent's process: its own runtime, dropped whole (connections, agent tasks) on `die`.
    let process = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            listener.set_nonblocking(true).unwrap();
            let listener = TcpListener::from_std(listener).unwrap();
            tokio::select! {
                _ = serve(listener, local_agent("a1"), std::future::pending()) => {}
                _ = dies => {}
            }
        });
        runtime.shutdown_background();
    });
    let runner = runner_for("a1", address);
    let (sender, mut events) = mpsc::channel(8);
    runner
        .run("a1", agent_run("sleep 3"), sender)
        .await
        .unwrap();
    expect_started(&mut events).await;
    die.send(()).unwrap();
    tokio::task::spawn_blocking(move || process.join().unwrap())
        .await
        .unwrap();
    assert!(
        next_event(&mut events).await.is_none(),
        "the events end without Finished"
    );
}

async fn wait_finished(node: &NodeHandle, job: &str) -> Execution {
    for _ in 0..200 {
        let executions = node.executions(job, true).await.unwrap();
        if let Some(execution) = executions.into_iter().find(|e| e.finished_at.is_some()) {
            return execution;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the execution was never finished");
}

#[tokio::test]
async fn a_node_runs_a_job_on_a_remote_agent_and_records_it() {
    // Targeting knows only the node itself for now, so the remote agent carries its name.
    let agent = serve_agent("n1").await;
    let runner = Arc::new(runner_for("n1", agent.address));
    let node = Node::start_with_runner(
        NodeConfig::for_test("n1"),
        Arc::new(MemoryStore::new()),
        Plugins::builtins("n1"),
        Arc::new(SystemClock),
        Some(runner),
    )
    .await
    .unwrap();
    node.upsert_job(shell_job("echo hi")).await.unwrap();
    node.run_job("j").await.unwrap();
    let execution = wait_finished(&node, "j").await;
    assert!(execution.success, "{}", execution.output);
    assert_eq!(execution.output, "hi\n");
    assert_eq!(execution.node_name, "n1");
    let job = node.get_job("j").await.unwrap();
    assert_eq!(job.success_count, 1);
    node.shutdown().await;
}

#[tokio::test]
async fn a_new_leader_learns_the_accepted_runs_and_the_old_leader_is_refused_after() {
    let agent = serve_agent("a1").await;
    let runner = runner_for("a1", agent.address);
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    let before = at - chrono::TimeDelta::seconds(1);
    let (sender, mut events) = mpsc::channel(8);
    runner
        .run("a1", scheduled_run("a", at, 5), sender)
        .await
        .unwrap();
    expect_started(&mut events).await;
    expect_finished(&mut events).await;
    let (sender, mut events) = mpsc::channel(8);
    runner
        .run("a1", scheduled_run("old", before, 5), sender)
        .await
        .unwrap();
    expect_started(&mut events).await;
    expect_finished(&mut events).await;

    // The new leader (token 7) asks from `at` on: the run for `at` is listed, not the older one.
    let recent = runner.recent_runs("a1", 7, at).await.unwrap();
    assert_eq!(recent.runs, vec![("a".to_owned(), at)]);
    assert!(
        recent.complete_from <= SystemClock.now(),
        "it remembers from its start: {recent:?}"
    );

    // From now on the deposed leader's runs are refused; the new leader's and manual ones are not.
    let (sender, _events) = mpsc::channel(8);
    let refused = runner
        .run("a1", scheduled_run("b", at, 5), sender)
        .await
        .unwrap_err();
    assert!(matches!(refused, RunError::Fenced(5)), "{refused:?}");
    let (sender, mut events) = mpsc::channel(8);
    runner
        .run("a1", scheduled_run("b", at, 7), sender)
        .await
        .unwrap();
    expect_started(&mut events).await;
    expect_finished(&mut events).await;
    let (sender, mut events) = mpsc::channel(8);
    runner.run("a1", agent_run("true"), sender).await.unwrap();
    expect_started(&mut events).await;
    expect_finished(&mut events).await;
    let runs = runner.recent_runs("a1", 7, at).await.unwrap().runs;
    assert_eq!(
        runs,
        vec![("a".to_owned(), at), ("b".to_owned(), at)],
        "a refused run is not listed; manual runs are not listed"
    );
}
