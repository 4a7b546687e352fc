//! The data dir lock: one rkron process per data dir.

use rkron_store_embedded::{EmbeddedStore, OpenError};

use crate::child::{self, EXPECT_FREE, EXPECT_IN_USE};

#[test]
fn second_open_in_the_same_process_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStore::open(dir.path()).unwrap();
    let error = EmbeddedStore::open(dir.path()).unwrap_err();
    assert!(matches!(error, OpenError::InUse { .. }), "{error:?}");
    assert_eq!(
        error.to_string(),
        format!(
            "data dir {} is already in use by another rkron process",
            dir.path().display()
        )
    );
    drop(first);
    EmbeddedStore::open(dir.path()).unwrap();
}

#[test]
fn second_process_is_refused_while_the_store_is_open() {
    let dir = tempfile::tempdir().unwrap();
    let first = EmbeddedStore::open(dir.path()).unwrap();
    child::run(dir.path(), EXPECT_IN_USE);
    drop(first);
    child::run(dir.path(), EXPECT_FREE);
    // And the other way round: a child's open released at its exit leaves the dir usable.
    EmbeddedStore::open(dir.path()).unwrap();
}

#[test]
fn data_dir_is_created() {
    let dir = tempfile::tempdir().unwrap();
    let nested = dir.path().join("a").join("b");
    let store = EmbeddedStore::open(&nested).unwrap();
    assert_eq!(store.path(), nested.join(rkron_store_embedded::FILE_NAME));
    assert!(store.path().is_file());
}

#[test]
fn unusable_data_dir_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, b"").unwrap();
    let error = EmbeddedStore::open(&file).unwrap_err();
    assert!(matches!(error, OpenError::CreateDir { .. }), "{error:?}");
    assert!(
        error.to_string().starts_with("failed to create data dir"),
        "{error}"
    );
}
