//! Issue 5: several servers on a real distributed store. The leader is killed with SIGKILL
//! three times in a row; from the execution records, no `(job, scheduled instant)` ran twice,
//! and every scheduled instant between the first and the last kill either ran or was recorded
//! as missed by the catch-up (nothing silently lost).

#![allow(clippy::print_stdout)] // the test prints the takeover times, as the issue asks

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde_json::{Value, json};

use crate::support::{Agent, Etcd, Server, wait_until};

fn time(v: &Value) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(v.as_str().unwrap())
        .unwrap()
        .with_timezone(&Utc)
}

/// The index of the server that answers `/v1/isleader` with 200, if exactly one does.
async fn leader_of(servers: &[Server]) -> Option<usize> {
    let mut leaders = Vec::new();
    for (i, server) in servers.iter().enumerate() {
        if server.child.is_some() && server.http_get("/v1/isleader").await.status == 200 {
            leaders.push(i);
        }
    }
    assert!(leaders.len() <= 1, "two servers lead at once: {leaders:?}");
    leaders.first().copied()
}

/// Three servers sharing `backend` at `machine` in a fresh keyspace, joined by gossip, and one
/// agent tagged `pool=blue` on which every job runs.
async fn ha_cluster(backend: &str, machine: &str) -> (Vec<Server>, Agent) {
    ha_cluster_with_ttl(backend, machine, "3s").await
}

/// [`ha_cluster`] with lease TTL `ttl`.
async fn ha_cluster_with_ttl(backend: &str, machine: &str, ttl: &str) -> (Vec<Server>, Agent) {
    let keyspace = format!("ha{}", std::process::id());
    let store = [
        "--backend",
        backend,
        "--backend-machine",
        machine,
        "--keyspace",
        &keyspace,
        "--lease-ttl",
        ttl,
    ];
    let first = Server::start_named("s1", &store).await;
    let join = first.gossip_addr();
    let mut servers = vec![first];
    for name in ["s2", "s3"] {
        let mut args = store.to_vec();
        args.extend(["--join", join.as_str()]);
        servers.push(Server::start_named(name, &args).await);
    }
    let agent = Agent::start("a1", &["--join", &join, "--tag", "pool=blue"]).await;
    (servers, agent)
}

fn jobs() -> Vec<(String, i64)> {
    (0..10)
        .map(|i| {
            let every = if i % 2 == 0 { 1 } else { 2 };
            (format!("tick-{i}"), every)
        })
        .collect()
}

async fn failover_loses_and_repeats_nothing(backend: &str, machine: &str) {
    let started = tokio::time::Instant::now();
    let (mut servers, _agent) = ha_cluster(backend, machine).await;
    let led = wait_until(Duration::from_secs(20), || async {
        leader_of(&servers).await.is_some()
    })
    .await;
    assert!(led, "no leader elected:\n{}", servers[0].log_text());
    for (name, every) in jobs() {
        servers[0]
            .create_job_ok(&json!({
                "name": name, "schedule": format!("@every {every}s"),
                "executor": "shell", "executor_config": {"command": "true"},
                "tags": {"pool": "blue"}
            }))
            .await;
    }
    tokio::time::sleep(Duration::from_secs(4)).await;

    let mut kills: Vec<DateTime<Utc>> = Vec::new();
    let mut takeovers = Vec::new();
    for round in 1..=3 {
        let leader = leader_of(&servers).await.expect("a leader");
        let killed_at = tokio::time::Instant::now();
        #[allow(clippy::disallowed_methods)] // compared with the servers' instants
        kills.push(Utc::now());
        servers[leader].kill9();
        let taken = wait_until(Duration::from_secs(30), || async {
            leader_of(&servers).await.is_some_and(|l| l != leader)
        })
        .await;
        assert!(taken, "round {round}: nobody took over");
        let takeover = killed_at.elapsed();
        takeovers.push(takeover);
        println!(
            "{backend} round {round}: killed {}, new leader after {takeover:?}",
            servers[leader].name
        );
        let live = (0..servers.len()).find(|i| *i != leader).unwrap();
        let join = servers[live].gossip_addr();
        servers[leader].restart_with(&["--join", &join]).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    // Time for the last takeover's catch-up to be recorded, and for a final report the killed
    // leader read but never stored to be offered again by the agent (after 10 s unconfirmed).
    tokio::time::sleep(Duration::from_secs(12)).await;
    let reader = leader_of(&servers).await.expect("a leader at the end");
    let (first_kill, last_kill) = (kills[0], *kills.last().unwrap());
    println!("{backend} takeover times: {takeovers:?}");

    let (mut checked, mut caught_up_missed) = (0usize, 0usize);
    for (name, every) in jobs() {
        let list = servers[reader]
            .http_get(&format!("/v1/jobs/{name}/executions"))
            .await
            .json();
        let mut ran: BTreeMap<DateTime<Utc>, usize> = BTreeMap::new();
        for e in list.as_array().unwrap() {
            if e["scheduled_at"].is_string() {
                *ran.entry(time(&e["scheduled_at"])).or_default() += 1;
            }
        }
        let twice: Vec<_> = ran.iter().filter(|(_, n)| **n > 1).collect();
        let doubled: Vec<&Value> = list
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| {
                e["scheduled_at"].is_string()
                    && twice.iter().any(|(at, _)| **at == time(&e["scheduled_at"]))
            })
            .collect();
        assert!(
            twice.is_empty(),
            "{name}: instants run twice: {twice:?}; their executions: {doubled:#?}"
        );
        let missed = servers[reader]
            .http_get(&format!("/v1/jobs/{name}/missed"))
            .await
            .json();
        let missed: BTreeSet<DateTime<Utc>> = missed["recent"]
            .as_array()
            .unwrap()
            .iter()
            .map(time)
            .collect();
        let both: Vec<_> = missed.iter().filter(|t| ran.contains_key(t)).collect();
        assert!(both.is_empty(), "{name}: ran and recorded missed: {both:?}");
        // Every instant of the schedule in the window is accounted for.
        let accounted: BTreeSet<DateTime<Utc>> =
            ran.keys().copied().chain(missed.iter().copied()).collect();
        let window: Vec<DateTime<Utc>> = accounted
            .iter()
            .copied()
            .filter(|t| *t >= first_kill - chrono::TimeDelta::seconds(every) && *t <= last_kill)
            .collect();
        assert!(!window.is_empty(), "{name}: no fires in the window");
        for pair in window.windows(2) {
            assert_eq!(
                pair[1] - pair[0],
                chrono::TimeDelta::seconds(every),
                "{name}: instants between {} and {} are neither run nor recorded missed",
                pair[0],
                pair[1]
            );
        }
        checked += window.len();
        caught_up_missed += window.iter().filter(|t| missed.contains(t)).count();
        assert!(
            *window.first().unwrap() <= first_kill
                && *window.last().unwrap() + chrono::TimeDelta::seconds(every) > last_kill,
            "{name}: the window is not covered: {window:?}"
        );
    }
    println!(
        "{backend}: {checked} scheduled instants between the first and last kill: each ran once or was recorded missed ({caught_up_missed} missed), in {:?}",
        started.elapsed()
    );
    assert!(checked >= 60, "too few instants checked: {checked}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etcd_failover_loses_and_repeats_nothing() {
    let etcd = Etcd::start().await;
    failover_loses_and_repeats_nothing("etcd", &etcd.machine()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_failover_loses_and_repeats_nothing() {
    let redis = crate::support::Redis::start().await;
    failover_loses_and_repeats_nothing("redis", &redis.machine()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_etcd_outage_answers_503_for_writes_and_the_server_resumes() {
    let mut etcd = Etcd::start().await;
    let keyspace = format!("outage{}", std::process::id());
    let server = Server::start_named(
        "s1",
        &[
            "--backend",
            "etcd",
            "--backend-machine",
            &etcd.machine(),
            "--keyspace",
            &keyspace,
            "--lease-ttl",
            "3s",
        ],
    )
    .await;
    let mut tick = crate::support::shell_job("tick", "true");
    tick["schedule"] = json!("@every 1s");
    server.create_job_ok(&tick).await;
    server
        .wait_finished_executions("tick", 2, Duration::from_secs(15))
        .await;

    etcd.stop();
    let stopped = tokio::time::Instant::now();
    let mut during = crate::support::shell_job("during", "true");
    let refused = wait_until(Duration::from_secs(15), || async {
        let reply = server.http_post_json("/v1/jobs", &during).await;
        reply.status == 503 && reply.error().contains("store unavailable")
    })
    .await;
    assert!(refused, "writes did not answer 503:\n{}", server.log_text());
    // Reads of what the store holds answer 503 too, clearly; the server itself stays up.
    assert_eq!(server.http_get("/health").await.status, 200);
    let reply = server.http_get("/v1/jobs/tick").await;
    assert_eq!(reply.status, 503, "{}", reply.text);
    // Without its store, the leader cannot renew its lease: it stops leading.
    let stepped_down = wait_until(Duration::from_secs(10), || async {
        server.http_get("/v1/isleader").await.status == 404
    })
    .await;
    assert!(stepped_down, "{}", server.log_text());
    let remaining = Duration::from_secs(20).saturating_sub(stopped.elapsed());
    tokio::time::sleep(remaining).await;

    etcd.restart().await;
    let back = tokio::time::Instant::now();
    let leads = wait_until(Duration::from_secs(20), || async {
        server.http_get("/v1/isleader").await.status == 200
    })
    .await;
    assert!(
        leads,
        "the server did not lead again:\n{}",
        server.log_text()
    );
    during["name"] = json!("after");
    server.create_job_ok(&during).await;
    // It fires again, and the outage's fires were caught up: the last one ran, the rest are
    // recorded as missed.
    let missed = server.http_get("/v1/jobs/tick/missed").await.json();
    assert!(
        missed["total"].as_u64().unwrap() >= 15,
        "about 20 fires missed during the outage: {missed}"
    );
    let before = server.http_get("/v1/jobs/tick").await.json()["success_count"]
        .as_u64()
        .unwrap();
    let resumed = wait_until(Duration::from_secs(10), || async {
        server.http_get("/v1/jobs/tick").await.json()["success_count"]
            .as_u64()
            .unwrap()
            >= before + 2
    })
    .await;
    assert!(resumed, "{}", server.log_text());
    println!(
        "etcd outage of 20 s: leading again {:?} after etcd was back",
        back.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_server_answers_and_a_write_on_a_follower_reaches_the_leader_at_once() {
    let redis = crate::support::Redis::start().await;
    let store = [
        "--backend",
        "redis",
        "--backend-machine",
        &redis.machine(),
        "--keyspace",
        "followers",
        "--lease-ttl",
        "3s",
    ];
    let first = Server::start_named("s1", &store).await;
    let led = wait_until(Duration::from_secs(10), || async {
        first.http_get("/v1/isleader").await.status == 200
    })
    .await;
    assert!(led, "{}", first.log_text());
    let mut args = store.to_vec();
    let join = first.gossip_addr();
    args.extend(["--join", join.as_str()]);
    let second = Server::start_named("s2", &args).await;
    assert_eq!(second.http_get("/v1/isleader").await.status, 404);
    // Both name the same leader.
    let named = wait_until(Duration::from_secs(10), || async {
        let a = first.http_get("/v1/leader").await;
        let b = second.http_get("/v1/leader").await;
        a.status == 200 && b.status == 200 && a.json()["Name"] == "s1" && b.json()["Name"] == "s1"
    })
    .await;
    assert!(named, "{}", second.http_get("/v1/leader").await.text);

    // A job written through the follower fires on the leader's next tick.
    let mut tick = crate::support::shell_job("via-follower", "true");
    tick["schedule"] = json!("@every 1s");
    let written = tokio::time::Instant::now();
    second.create_job_ok(&tick).await;
    let list = first
        .wait_finished_executions("via-follower", 1, Duration::from_secs(5))
        .await;
    assert!(
        written.elapsed() < Duration::from_secs(3),
        "took {:?}",
        written.elapsed()
    );
    // Untagged, it runs on both servers.
    assert!(
        list.iter()
            .all(|e| e["node_name"] == "s1" || e["node_name"] == "s2"),
        "{list:?}"
    );
    // Every server answers the whole API from the shared store.
    let listed = second.http_get("/v1/jobs/via-follower/executions").await;
    assert_eq!(listed.status, 200);
    assert!(!listed.json().as_array().unwrap().is_empty());
    // Disabling it through the follower stops it on the leader within a second.
    let reply = second.http_post("/v1/jobs/via-follower/toggle").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let count = |list: Value| list.as_array().unwrap().len();
    let before = count(
        first
            .http_get("/v1/jobs/via-follower/executions")
            .await
            .json(),
    );
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after = count(
        first
            .http_get("/v1/jobs/via-follower/executions")
            .await
            .json(),
    );
    assert_eq!(before, after, "the disabled job kept running");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zookeeper_failover_loses_and_repeats_nothing() {
    let zk = crate::support::ZooKeeper::start().await;
    failover_loses_and_repeats_nothing("zk", &zk.machine()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_dynamodb_runs_jobs_and_keeps_them_across_a_restart() {
    let moto = crate::support::Moto::start().await;
    let endpoint = format!("http://127.0.0.1:{}", moto.port);
    let mut server = Server::start_named(
        "s1",
        &[
            "--backend",
            "dynamodb",
            "--backend-machine",
            &endpoint,
            "--keyspace",
            "rkron-test",
            "--backend-username",
            "test",
            "--backend-password",
            "test",
            "--lease-ttl",
            "3s",
        ],
    )
    .await;
    let led = wait_until(Duration::from_secs(15), || async {
        server.http_get("/v1/isleader").await.status == 200
    })
    .await;
    assert!(led, "{}", server.log_text());
    let mut tick = crate::support::shell_job("tick", "echo from-dynamo");
    tick["schedule"] = json!("@every 1s");
    server.create_job_ok(&tick).await;
    let list = server
        .wait_finished_executions("tick", 2, Duration::from_secs(20))
        .await;
    let finished: Vec<_> = list
        .iter()
        .filter(|e| e["finished_at"] != "0001-01-01T00:00:00Z")
        .collect();
    assert!(finished.len() >= 2, "{list:?}");
    assert!(
        finished
            .iter()
            .all(|e| e["success"] == true && e["output"].as_str().unwrap().trim() == "from-dynamo"),
        "{list:?}"
    );
    server.kill9();
    server.restart().await;
    let reply = server.http_get("/v1/jobs/tick").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json()["success_count"].as_u64().unwrap() >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_follower_lists_the_clusters_running_executions() {
    let redis = crate::support::Redis::start().await;
    let store = [
        "--backend",
        "redis",
        "--backend-machine",
        &redis.machine(),
        "--keyspace",
        "busy",
    ];
    let first = Server::start_named("s1", &store).await;
    let led = wait_until(Duration::from_secs(10), || async {
        first.http_get("/v1/isleader").await.status == 200
    })
    .await;
    assert!(led, "{}", first.log_text());
    let join = first.gossip_addr();
    let mut args = store.to_vec();
    args.extend(["--join", join.as_str()]);
    let second = Server::start_named("s2", &args).await;
    // A scheduled run, dispatched by the leader: the follower asks the leader for it.
    let mut long = crate::support::shell_job("long", "echo started; sleep 20");
    long["schedule"] = json!("@every 5s");
    long["concurrency"] = json!("forbid");
    long["tags"] = json!({"server": "true:1"});
    second.create_job_ok(&long).await;
    // A manual run, dispatched by the follower itself: it lists it too.
    let manual = crate::support::shell_job("manual", "echo manual; sleep 20");
    second.create_job_ok(&manual).await;
    assert_eq!(second.http_post("/v1/jobs/manual/run").await.status, 200);
    let listed = wait_until(Duration::from_secs(15), || async {
        let reply = second.http_get("/v1/busy").await;
        reply.status == 200
            && reply.json().as_array().is_some_and(|list| {
                let has = |job: &str, text: &str| {
                    list.iter().any(|e| {
                        e["job_name"] == job && e["output"].as_str().unwrap_or("").contains(text)
                    })
                };
                has("long", "started") && has("manual", "manual")
            })
    })
    .await;
    assert!(
        listed,
        "follower: {}\nleader: {}\n{}\n{}",
        second.http_get("/v1/busy").await.text,
        first.http_get("/v1/busy").await.text,
        first.log_text(),
        second.log_text()
    );
}

/// Freezes `server` (SIGSTOP) `early_ms` milliseconds before `at`, then kills it (SIGKILL).
async fn freeze_then_kill(server: &mut Server, at: DateTime<Utc>, early_ms: i64) {
    #[allow(clippy::disallowed_methods)] // compared with the servers' instants
    let until_freeze = (at - chrono::TimeDelta::milliseconds(early_ms) - Utc::now())
        .to_std()
        .unwrap();
    tokio::time::sleep(until_freeze).await;
    let pid = server.child.as_ref().unwrap().id();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap()),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    server.kill9();
}

/// The leader is frozen (SIGSTOP) a few milliseconds before a fire's instant, after its ledger
/// write (25 ms before the instant) and before the dispatch at the instant, then killed. The
/// fire must still run exactly once: the new leader asks the agent whether it took it and,
/// since it did not, catches it up. (On a loaded machine the freeze may land before the ledger
/// write or after the dispatch instead; the fire must run exactly once then too, by the usual
/// catch-up or by the agent's report, and the test says which case it saw.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_cut_off_by_the_leaders_death_still_runs_once() {
    let redis = crate::support::Redis::start().await;
    let (mut servers, _agent) = ha_cluster("redis", &redis.machine()).await;
    let led = wait_until(Duration::from_secs(20), || async {
        leader_of(&servers).await.is_some()
    })
    .await;
    assert!(led, "no leader elected:\n{}", servers[0].log_text());
    let leader = leader_of(&servers).await.expect("a leader");
    #[allow(clippy::disallowed_methods)] // compared with the servers' instants
    let now = Utc::now();
    let at = DateTime::from_timestamp(now.timestamp() + 4, 0).unwrap();
    servers[leader]
        .create_job_ok(&json!({
            "name": "cut", "schedule": format!("@at {}", at.to_rfc3339()),
            "executor": "shell", "executor_config": {"command": "true"},
            "tags": {"pool": "blue:1"}
        }))
        .await;
    freeze_then_kill(&mut servers[leader], at, 8).await;
    let taken = wait_until(Duration::from_secs(30), || async {
        leader_of(&servers).await.is_some_and(|l| l != leader)
    })
    .await;
    assert!(taken, "nobody took over");
    let new_leader = leader_of(&servers).await.unwrap();

    // The agent offers a report the dead leader never confirmed again after 10 s.
    let recorded = wait_until(Duration::from_secs(30), || async {
        let list = servers[new_leader]
            .http_get("/v1/jobs/cut/executions")
            .await
            .json();
        list.as_array().unwrap().iter().any(|e| {
            e["scheduled_at"].is_string()
                && time(&e["scheduled_at"]) == at
                && e["finished_at"].is_string()
        })
    })
    .await;
    let log = servers[new_leader].log_text();
    assert!(
        recorded,
        "the fire at {at} never ran; new leader's log:\n{log}"
    );
    // Let a second run, if there were one, be recorded too.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let list = servers[new_leader]
        .http_get("/v1/jobs/cut/executions")
        .await
        .json();
    let for_at: Vec<&Value> = list
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["scheduled_at"].is_string() && time(&e["scheduled_at"]) == at)
        .collect();
    assert_eq!(
        for_at.len(),
        1,
        "the fire at {at} ran {} times: {for_at:?}",
        for_at.len()
    );
    assert_eq!(for_at[0]["success"], true, "{:?}", for_at[0]);
    let missed = servers[new_leader]
        .http_get("/v1/jobs/cut/missed")
        .await
        .json();
    assert!(
        !missed["recent"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| time(t) == at),
        "ran and recorded missed: {missed}"
    );
    let case = if log.contains("never handed it to a node") {
        "frozen between the ledger write and the dispatch: caught up by the new leader"
    } else if log.contains("final report received outside the run stream") {
        "frozen after the dispatch: the agent's report was recorded by the new leader"
    } else {
        "frozen before the ledger write: the usual catch-up ran it"
    };
    println!("cut-off fire at {at}: ran once ({case})");
}

/// As above, but the job runs on a server (`server: true:1`), so the dead leader itself may have
/// been its target, and the killed leader is started again at once, as a service manager would:
/// it is back before the new leader takes over. Its accepted-runs journal (under `data-dir`)
/// lets it tell the new leader that its previous process never took the fire, so the fire is
/// caught up; without the journal it could not say, and the fire would be left alone. The job
/// appends a line to a file, so the test counts real runs, recorded or not. On a loaded machine
/// the freeze may land after the leader accepted the run on itself and before it started it:
/// then the fire does not run (its journal says it took it: at most once) and the restarted
/// server records it as failed with its outcome unknown; the test accepts that and says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_cut_off_on_a_leader_restarted_at_once_still_runs_once() {
    cut_off_on_a_server(true).await;
}

/// As above, but the killed leader comes back only after another server took over and found
/// the fire unsettled (the dead leader could have taken it and could not be asked): the new
/// leader asks it when it is back, learns from its journal that it never took the fire, and
/// runs it then, within the job's starting deadline.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fire_cut_off_on_a_leader_that_returns_later_runs_once_on_its_return() {
    cut_off_on_a_server(false).await;
}

/// The two tests above: the leader is frozen between a fire's ledger write and its dispatch,
/// killed, and restarted at once (`at_once`) or after another server leads.
async fn cut_off_on_a_server(at_once: bool) {
    let redis = crate::support::Redis::start().await;
    // A 6 s lease: the restarted server is back in gossip well before another one takes over
    // and asks it, even on a loaded machine.
    let (mut servers, _agent) = ha_cluster_with_ttl("redis", &redis.machine(), "6s").await;
    let led = wait_until(Duration::from_secs(20), || async {
        leader_of(&servers).await.is_some()
    })
    .await;
    assert!(led, "no leader elected:\n{}", servers[0].log_text());
    let leader = leader_of(&servers).await.expect("a leader");
    let other = (leader + 1) % servers.len();
    let runs_dir = tempfile::tempdir().unwrap();
    let runs_file = runs_dir.path().join("runs");
    #[allow(clippy::disallowed_methods)] // compared with the servers' instants
    let now = Utc::now();
    let at = DateTime::from_timestamp(now.timestamp() + 4, 0).unwrap();
    servers[leader]
        .create_job_ok(&json!({
            "name": "cut-server", "schedule": format!("@at {}", at.to_rfc3339()),
            "executor": "shell",
            "executor_config": {
                "shell": "true",
                "command": format!("echo ran >> {}", runs_file.display())
            },
            "tags": {"server": "true:1"}
        }))
        .await;
    // Frozen 12 ms early: after the ledger write (25 ms before the instant), before the
    // dispatch, unless the machine is slow to wake this test.
    freeze_then_kill(&mut servers[leader], at, 12).await;
    let join = servers[other].gossip_addr();
    if at_once {
        servers[leader].restart_with(&["--join", &join]).await;
    }
    let taken = wait_until(Duration::from_secs(30), || async {
        leader_of(&servers).await.is_some()
    })
    .await;
    assert!(taken, "nobody took over");
    if !at_once {
        tokio::time::sleep(Duration::from_secs(2)).await;
        servers[leader].restart_with(&["--join", &join]).await;
    }
    let new_leader = leader_of(&servers).await.unwrap();
    let count_runs = || {
        std::fs::read_to_string(&runs_file)
            .unwrap_or_default()
            .lines()
            .count()
    };
    let records_for_at = || async {
        let list = servers[new_leader]
            .http_get("/v1/jobs/cut-server/executions")
            .await
            .json();
        list.as_array()
            .unwrap()
            .iter()
            .filter(|e| e["scheduled_at"].is_string() && time(&e["scheduled_at"]) == at)
            .cloned()
            .collect::<Vec<Value>>()
    };
    // The fire runs once and is recorded. Or the freeze landed after the frozen leader accepted
    // the run on itself (its journal names it) and before it started it: then no leader runs
    // it again (at most once), and the restarted server records it as failed, outcome
    // unknown, 15 s after it started.
    let recorded = wait_until(Duration::from_secs(45), || async {
        !records_for_at().await.is_empty()
    })
    .await;
    let log = servers[new_leader].log_text();
    assert!(
        recorded,
        "the fire at {at} was never recorded (ran {} times); new leader's log:\n{log}\nreturned \
         leader's log:\n{}",
        count_runs(),
        servers[leader].log_text()
    );
    // Let a second run or record, if there were one, happen too.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let runs = count_runs();
    assert!(
        runs <= 1,
        "the fire at {at} ran {runs} times; new leader's log:\n{}\nreturned leader's log:\n{}",
        servers[new_leader].log_text(),
        servers[leader].log_text()
    );
    let records = records_for_at().await;
    assert_eq!(
        records.len(),
        1,
        "one execution is recorded for the fire at {at}: {records:#?}"
    );
    let unknown = records[0]["output"]
        .as_str()
        .is_some_and(|output| output.contains("whether its command ran is unknown"));
    if runs == 0 {
        assert!(
            unknown,
            "the fire at {at} did not run and its record does not say why: {records:#?}"
        );
    } else if !unknown {
        assert_eq!(records[0]["success"], true, "{records:#?}");
    }
    let case = if runs == 0 {
        "frozen after the leader accepted the run on itself and before it started it: not run \
         again, recorded failed with its outcome unknown"
    } else if unknown {
        "frozen after the run started on the leader and before it was recorded: ran once, \
         recorded failed with its outcome unknown"
    } else if log.contains("never handed it to a node") {
        "frozen between the ledger write and the dispatch: caught up by the new leader"
    } else if log.contains("its node said so on its return") {
        "frozen between the ledger write and the dispatch: run when the dead leader returned"
    } else {
        "frozen before the ledger write or after the dispatch: ran by the usual path"
    };
    println!("cut-off fire at {at} on a server (restarted at once: {at_once}): {case}");
}
