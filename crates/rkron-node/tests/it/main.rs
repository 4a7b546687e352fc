//! Node runtime tests with the in-memory store and runners standing in for a remote node that
//! stops answering (the cluster issue replaces them with real agents over gRPC).

#![allow(clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use rkron_core::{Job, SystemClock};
use rkron_node::{
    AgentRun, AgentRunner, Node, NodeConfig, NodeHandle, Plugins, RunError, RunEvent,
};
use rkron_store::MemoryStore;
use tokio::sync::mpsc;

/// A node that starts runs and then never reports again; `hold` keeps its stream open.
#[derive(Debug, Default)]
struct Vanishing {
    hold: bool,
    streams: Mutex<Vec<mpsc::Sender<RunEvent>>>,
    kills: Mutex<Vec<String>>,
}

#[async_trait]
impl AgentRunner for Vanishing {
    async fn run(
        &self,
        node: &str,
        run: AgentRun,
        events: mpsc::Sender<RunEvent>,
    ) -> Result<(), RunError> {
        let mut e = run.execution;
        e.node_name = node.to_owned();
        e.started_at = rkron_core::Clock::now(&SystemClock);
        events
            .send(RunEvent::Started(e, rkron_executor::OutputBuffer::new()))
            .await
            .unwrap();
        if self.hold {
            self.streams.lock().unwrap().push(events);
        }
        Ok(())
    }

    async fn kill(&self, _node: &str, execution_id: &str, _reason: &str) -> bool {
        self.kills.lock().unwrap().push(execution_id.to_owned());
        true
    }
}

async fn node_with(runner: Arc<Vanishing>) -> NodeHandle {
    let config = NodeConfig::for_test("n1");
    Node::start_with_runner(
        config,
        Arc::new(MemoryStore::new()),
        Plugins::builtins("n1"),
        Arc::new(SystemClock),
        Some(runner),
    )
    .await
    .unwrap()
}

fn job(timeout: &str) -> Job {
    Job {
        name: "j".into(),
        schedule: "@manually".into(),
        executor: "shell".into(),
        executor_config: Some(
            [
                ("command".to_owned(), "sleep 300".to_owned()),
                ("timeout".to_owned(), timeout.to_owned()),
            ]
            .into(),
        ),
        ..Job::default()
    }
}

async fn wait_finished(node: &NodeHandle) -> rkron_core::Execution {
    for _ in 0..200 {
        let list = node.executions("j", true).await.unwrap();
        if let Some(e) = list.into_iter().find(|e| e.finished_at.is_some()) {
            return e;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("the execution was never finished");
}

#[tokio::test]
async fn a_run_that_never_reports_is_killed_then_failed_after_its_timeout() {
    let runner = Arc::new(Vanishing {
        hold: true,
        ..Vanishing::default()
    });
    let node = node_with(runner.clone()).await;
    node.upsert_job(job("1s")).await.unwrap();
    node.run_job("j").await.unwrap();
    // timeout 1 s + margin 1 s, then the kill request, then 1 s more: failed within ~6 s.
    let e = wait_finished(&node).await;
    assert!(!e.success);
    assert!(
        e.output.contains("no final report from node n1"),
        "{}",
        e.output
    );
    assert_eq!(
        runner.kills.lock().unwrap().len(),
        1,
        "the node was asked to kill it first"
    );
    assert!(node.busy().is_empty(), "no stale running record");
    let job = node.get_job("j").await.unwrap();
    assert_eq!(job.error_count, 1);
}

#[tokio::test]
async fn a_stream_that_ends_without_a_result_fails_the_run_at_once() {
    let runner = Arc::new(Vanishing::default());
    let node = node_with(runner).await;
    node.upsert_job(job("")).await.unwrap();
    node.run_job("j").await.unwrap();
    let e = wait_finished(&node).await;
    assert!(!e.success);
    assert!(
        e.output.contains("ended before the execution reported"),
        "{}",
        e.output
    );
    assert!(node.busy().is_empty());
}
