//! The `log` processor: the framed block goes to the tracing log; the stored output follows `forward`.

use std::io;
use std::sync::{Arc, Mutex};

use rkron_processor::{LOG_REPLACEMENT, LogProcessor, Processor};
use tracing_subscriber::fmt::MakeWriter;

use crate::{config, execution};

/// A tracing writer that keeps everything written to it.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    fn text(&self) -> String {
        String::from_utf8(self.0.lock().unwrap().clone()).unwrap()
    }
}

impl io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Captured {
    type Writer = Captured;

    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

/// Runs the log processor under a subscriber that captures its events; answers the stored
/// output and the captured log.
async fn run_logged(success: bool, forward: &str) -> (String, String) {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let processed = LogProcessor::new()
        .process(
            execution("line 1\nline 2", success),
            &config(&[("forward", forward)]),
        )
        .await
        .unwrap();
    (processed.output, captured.text())
}

#[tokio::test]
async fn log_without_forward_stores_dkron_note() {
    let (output, log) = run_logged(true, "false").await;
    assert_eq!(output, LOG_REPLACEMENT);
    assert_eq!(output, "Output in dkron log");
    let id = execution("", true).id();
    let block = format!(
        "----- BEGIN OUTPUT job=job1 execution={id} -----\nline 1\nline 2\n----- END OUTPUT -----"
    );
    assert!(log.contains(&block), "{log}");
    assert!(log.contains(" INFO "), "{log}");
}

#[tokio::test]
async fn log_with_forward_keeps_output() {
    let (output, _) = run_logged(true, "true").await;
    assert_eq!(output, "line 1\nline 2");
}

#[tokio::test]
async fn log_of_failed_execution_is_a_warning() {
    let (output, log) = run_logged(false, "false").await;
    assert_eq!(output, LOG_REPLACEMENT);
    assert!(log.contains(" WARN "), "{log}");
    assert!(log.contains("----- END OUTPUT -----"), "{log}");
}
