//! The `files` processor: one file per execution under `log_dir`; the stored output is its path.

use rkron_processor::{FilesProcessor, Processor, ProcessorError};

use crate::{config, execution};

#[tokio::test]
async fn files_writes_output_to_execution_file() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().to_str().unwrap();
    let original = execution("hello\nworld\n", true);
    let expected = dir.path().join(format!("{}.log", original.id()));

    let processed = FilesProcessor::new()
        .process(original.clone(), &config(&[("log_dir", log_dir)]))
        .await
        .unwrap();

    assert_eq!(processed.output, expected.to_str().unwrap());
    assert_eq!(
        std::fs::read_to_string(&expected).unwrap(),
        "hello\nworld\n"
    );
    assert_eq!(
        processed,
        rkron_core::Execution {
            output: processed.output.clone(),
            ..original
        }
    );
}

#[tokio::test]
async fn files_creates_missing_log_dir() {
    let dir = tempfile::tempdir().unwrap();
    let log_dir = dir.path().join("nested").join("logs");
    let original = execution("out", true);

    let processed = FilesProcessor::new()
        .process(
            original.clone(),
            &config(&[("log_dir", log_dir.to_str().unwrap()), ("forward", "false")]),
        )
        .await
        .unwrap();

    let expected = log_dir.join(format!("{}.log", original.id()));
    assert_eq!(processed.output, expected.to_str().unwrap());
    assert_eq!(std::fs::read_to_string(expected).unwrap(), "out");
}

#[tokio::test]
async fn files_with_forward_keeps_output() {
    let dir = tempfile::tempdir().unwrap();
    let original = execution("kept", true);
    let processed = FilesProcessor::new()
        .process(
            original.clone(),
            &config(&[
                ("log_dir", dir.path().to_str().unwrap()),
                ("forward", "true"),
            ]),
        )
        .await
        .unwrap();
    assert_eq!(processed.output, "kept");
    let written = dir.path().join(format!("{}.log", original.id()));
    assert_eq!(std::fs::read_to_string(written).unwrap(), "kept");
}

#[tokio::test]
async fn files_fails_when_log_dir_is_a_file() {
    let dir = tempfile::tempdir().unwrap();
    let blocker = dir.path().join("not-a-dir");
    std::fs::write(&blocker, "x").unwrap();
    let error = FilesProcessor::new()
        .process(
            execution("out", true),
            &config(&[("log_dir", blocker.to_str().unwrap())]),
        )
        .await
        .unwrap_err();
    assert!(
        matches!(error, ProcessorError::WriteFailed { .. }),
        "{error}"
    );
}
