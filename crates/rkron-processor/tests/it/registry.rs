//! The registry: a job's processors run in name order, with `reporting_node` injected; unknown and failing processors are skipped.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use rkron_core::job::StringMap;
use rkron_core::{Execution, Job};
use rkron_processor::{
    LOG_REPLACEMENT, Processor, ProcessorError, ProcessorRegistry, ProcessorSettings,
};
use tokio::net::TcpListener;

use crate::{config, execution};

/// A processor that records the output and config it was given and appends `+recorded`.
#[derive(Debug, Default)]
struct Recorder {
    calls: Mutex<Vec<(String, StringMap)>>,
}

#[async_trait::async_trait]
impl Processor for Recorder {
    async fn process(
        &self,
        mut execution: Execution,
        config: &StringMap,
    ) -> Result<Execution, ProcessorError> {
        self.calls
            .lock()
            .unwrap()
            .push((execution.output.clone(), config.clone()));
        execution.output.push_str("+recorded");
        Ok(execution)
    }
}

fn registry() -> ProcessorRegistry {
    ProcessorRegistry::with_builtins(ProcessorSettings {
        node_name: "leader-1".to_owned(),
        ..ProcessorSettings::default()
    })
}

fn job(processors: &[(&str, StringMap)]) -> Job {
    Job {
        name: "job1".to_owned(),
        processors: processors
            .iter()
            .map(|(name, config)| ((*name).to_owned(), config.clone()))
            .collect::<BTreeMap<_, _>>(),
        ..Job::default()
    }
}

#[tokio::test]
async fn processors_apply_in_name_order() {
    let dir = tempfile::tempdir().unwrap();
    // `files` sorts before `log`: it writes the original output, then `log` replaces the path.
    let job = job(&[
        ("log", config(&[("forward", "false")])),
        (
            "files",
            config(&[("log_dir", dir.path().to_str().unwrap())]),
        ),
    ]);
    let original = execution("original output", true);

    let processed = registry().apply(&job, original.clone()).await;

    assert_eq!(processed.output, LOG_REPLACEMENT);
    let written = dir.path().join(format!("{}.log", original.id()));
    assert_eq!(std::fs::read_to_string(written).unwrap(), "original output");
}

#[tokio::test]
async fn unknown_processor_is_skipped() {
    let recorder = Arc::new(Recorder::default());
    let mut registry = registry();
    registry.register("recorder", recorder.clone());
    let job = job(&[
        ("elasticsearch", config(&[("forward", "false")])),
        (
            "recorder",
            config(&[("reporting_node", "spoofed"), ("k", "v")]),
        ),
    ]);

    let processed = registry.apply(&job, execution("out", true)).await;

    assert_eq!(processed.output, "out+recorded");
    let calls = recorder.calls.lock().unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].0, "out");
    assert_eq!(
        calls[0].1,
        config(&[("k", "v"), ("reporting_node", "leader-1")]),
        "reporting_node is injected over the job's value"
    );
}

#[tokio::test]
async fn failing_processor_keeps_execution_and_next_still_runs() {
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = format!("tcp://{}", closed.local_addr().unwrap());
    drop(closed);

    let recorder = Arc::new(Recorder::default());
    let mut registry = registry();
    // Named to sort after `syslog`, so it runs on what the failed syslog left.
    registry.register("tail", recorder.clone());
    let job = job(&[
        ("syslog", config(&[("address", &address)])),
        ("tail", StringMap::new()),
    ]);
    let original = execution("kept as is", false);

    let processed = registry.apply(&job, original.clone()).await;

    let calls = recorder.calls.lock().unwrap();
    assert_eq!(
        calls.len(),
        1,
        "the processor after the failed one still runs"
    );
    assert_eq!(
        calls[0].0, "kept as is",
        "the failed processor changed nothing"
    );
    assert_eq!(
        processed,
        Execution {
            output: "kept as is+recorded".to_owned(),
            ..original
        }
    );
}

#[tokio::test]
async fn job_without_processors_is_unchanged() {
    let original = execution("out", true);
    let processed = registry().apply(&job(&[]), original.clone()).await;
    assert_eq!(processed, original);
}
