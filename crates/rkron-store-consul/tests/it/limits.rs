//! Consul's 64-operation transactions: an oversized commit writes nothing, a large trim spans
//! transactions, a ledger write spanning many transactions follows lease renewals but stops at a
//! takeover; and the fake itself answers as Consul documents.

use std::sync::Arc;
use std::time::Duration;

use rkron_store::testsuite::{execution, instant, job};
use rkron_store::{Expect, JobOp, Store, StoreError};
use serde_json::{Value, json};

use crate::fake::FakeConsul;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_commit_over_the_limit_writes_nothing() {
    let consul = FakeConsul::start().await;
    let store = consul.store("lim").await;
    let names: Vec<String> = (0..13).map(|i| format!("j{i:02}")).collect();
    let ops = names
        .iter()
        .map(|name| JobOp::Put {
            job: job(name),
            expect: Expect::Absent,
        })
        .collect();
    store.commit_jobs(ops).await.expect("13 creates fit");
    let keys = consul.key_count();
    // A delete takes a check and six writes: 13 of them need 91 operations.
    let deletes = names
        .iter()
        .map(|name| JobOp::Delete {
            name: name.clone(),
            expect: Expect::Any,
        })
        .collect();
    let answer = store.commit_jobs(deletes).await;
    assert!(matches!(answer, Err(StoreError::Backend(_))), "{answer:?}");
    assert_eq!(consul.key_count(), keys, "nothing written");
    assert_eq!(store.list_jobs().await.unwrap().len(), 13);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_trim_spans_transactions() {
    let consul = FakeConsul::start().await;
    let store = consul.store("trim").await;
    for started in 0..60 {
        store
            .put_execution(&execution("t", started, "n", true), 100)
            .await
            .unwrap();
    }
    // 59 runs go (177 deletes) with the write of the new one.
    store
        .put_execution(&execution("t", 100, "n", true), 1)
        .await
        .unwrap();
    let runs = store.list_executions("t", true).await.unwrap();
    assert_eq!(runs, [execution("t", 100, "n", true)]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ledger_writes_follow_renewals_and_stop_at_a_takeover() {
    let consul = FakeConsul::start().await;
    let store = Arc::new(consul.store("fence").await);
    let lease = store
        .acquire_lease("a", Duration::from_secs(30))
        .await
        .unwrap()
        .expect("granted");
    let fires: Vec<(String, chrono::DateTime<chrono::Utc>)> = (0..3_000)
        .map(|i| (format!("job-{i:05}"), instant(i)))
        .collect();

    // Renewals move the leader key's ModifyIndex while ~48 chunks are written.
    let renewing = {
        let store = Arc::clone(&store);
        let lease = lease.clone();
        tokio::spawn(async move {
            for _ in 0..30 {
                assert!(
                    store
                        .renew_lease(&lease, Duration::from_secs(30))
                        .await
                        .unwrap()
                );
                tokio::task::yield_now().await;
            }
        })
    };
    store
        .record_fires(lease.token, &fires)
        .await
        .expect("renewals keep the tenure");
    renewing.await.unwrap();
    assert_eq!(store.fire_ledger().await.unwrap().len(), 3_000);

    // A takeover mid-call fences the rest of the slice.
    let later: Vec<(String, chrono::DateTime<chrono::Utc>)> = (0..3_000)
        .map(|i| (format!("job-{i:05}"), instant(10_000 + i)))
        .collect();
    let taking_over = {
        let store = Arc::clone(&store);
        let lease = lease.clone();
        tokio::spawn(async move {
            tokio::task::yield_now().await;
            store.release_lease(&lease).await.unwrap();
            store
                .acquire_lease("b", Duration::from_secs(30))
                .await
                .unwrap()
                .expect("b takes over")
        })
    };
    let answer = store.record_fires(lease.token, &later).await;
    let b = taking_over.await.unwrap();
    assert!(b.token > lease.token);
    if answer.is_ok() {
        // The whole slice made it before the takeover; then the next one is fenced.
        assert_eq!(
            store.record_fires(lease.token, &later).await,
            Err(StoreError::Fenced(lease.token))
        );
    } else {
        assert_eq!(answer, Err(StoreError::Fenced(lease.token)));
    }
    store
        .record_fires(b.token, &later)
        .await
        .expect("the new leader writes");
    let ledger = store.fire_ledger().await.unwrap();
    assert!(ledger.iter().all(|(_, at)| *at >= instant(10_000)));
}

/// Sends a raw request to the fake.
async fn call(
    consul: &FakeConsul,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = reqwest::Client::new();
    let mut request = client.request(method, format!("http://{}{path}", consul.address()));
    if let Some(body) = body {
        request = request.body(body.to_string());
    }
    let response = request.send().await.expect("the fake answers");
    let status = response.status().as_u16();
    let text = response.text().await.expect("a body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_fake_answers_as_consul_documents() {
    use reqwest::Method;
    let consul = FakeConsul::start().await;
    assert_eq!(call(&consul, Method::GET, "/v1/kv/a", None).await.0, 404);
    assert_eq!(
        call(&consul, Method::PUT, "/v1/kv/a?cas=0", None).await,
        (200, json!(true))
    );
    assert_eq!(
        call(&consul, Method::PUT, "/v1/kv/a?cas=0", None).await,
        (200, json!(false))
    );
    let (_, read) = call(&consul, Method::GET, "/v1/kv/a", None).await;
    assert_eq!(
        read[0]["Value"],
        Value::Null,
        "an empty value reads as null"
    );
    let index = read[0]["ModifyIndex"].as_u64().unwrap();

    let txn = json!([
        {"KV": {"Verb": "cas", "Key": "a", "Value": "eA==", "Index": index}},
        {"KV": {"Verb": "set", "Key": "b/c", "Value": "eQ=="}},
    ]);
    let (status, answer) = call(&consul, Method::PUT, "/v1/txn", Some(txn)).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["Results"].as_array().unwrap();
    assert_eq!(results.len(), 2);
    assert_eq!(results[0]["KV"]["Value"], Value::Null);
    assert_eq!(
        results[0]["KV"]["ModifyIndex"],
        results[1]["KV"]["ModifyIndex"]
    );
    assert_eq!(results[0]["KV"]["CreateIndex"].as_u64(), Some(index));

    // A stale cas rolls the whole transaction back.
    let txn = json!([
        {"KV": {"Verb": "set", "Key": "d", "Value": "eg=="}},
        {"KV": {"Verb": "cas", "Key": "a", "Value": "eg==", "Index": index}},
    ]);
    let (status, answer) = call(&consul, Method::PUT, "/v1/txn", Some(txn)).await;
    assert_eq!(status, 409, "{answer}");
    assert_eq!(answer["Errors"][0]["OpIndex"], json!(1));
    assert_eq!(call(&consul, Method::GET, "/v1/kv/d", None).await.0, 404);
    let (_, keys) = call(&consul, Method::GET, "/v1/kv/?keys&separator=/", None).await;
    assert_eq!(keys, json!(["a", "b/"]));

    let many: Vec<Value> = (0..65)
        .map(|i| json!({"KV": {"Verb": "get", "Key": format!("k{i}")}}))
        .collect();
    let (status, _) = call(&consul, Method::PUT, "/v1/txn", Some(Value::Array(many))).await;
    assert_eq!(status, 413, "more than 64 operations");
}
