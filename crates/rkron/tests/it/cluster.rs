//! Issue 4: real `rkron` processes forming a cluster on 127.0.0.1 (one server, agents), gossip
//! membership, runs targeted by tags over RPC, node loss, leave, encryption, and the embedded
//! store's one-server rule.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Agent, Server, shell_job, wait_exit, wait_until};

const NOT_STARTED: &str = "0001-01-01T00:00:00Z";

/// `/v1/members` as name → (status, tags).
async fn members(server: &Server) -> BTreeMap<String, (u64, Value)> {
    let reply = server.http_get("/v1/members").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    reply
        .json()
        .as_array()
        .unwrap()
        .iter()
        .map(|m| {
            (
                m["Name"].as_str().unwrap().to_owned(),
                (m["Status"].as_u64().unwrap(), m["Tags"].clone()),
            )
        })
        .collect()
}

/// Waits until `node` has Serf status `status` (1 alive, 3 left, 4 failed) in `/v1/members`.
async fn wait_status(server: &Server, node: &str, status: u64, timeout: Duration) {
    let reached = wait_until(timeout, || async {
        members(server).await.get(node).map(|m| m.0) == Some(status)
    })
    .await;
    assert!(
        reached,
        "{node} never reached status {status}: {:?}\n{}",
        members(server).await,
        server.log_text()
    );
}

/// A server and `agents` agents named a1, a2, … joined to it, each agent tagged `pool=blue`;
/// answers once `/v1/members` lists every one of them alive.
async fn cluster(agents: usize, extra_server: &[&str]) -> (Server, Vec<Agent>) {
    let server = Server::start_named("srv", extra_server).await;
    let join = server.gossip_addr();
    let mut started = Vec::new();
    for i in 1..=agents {
        let name = format!("a{i}");
        started.push(Agent::start(&name, &["--join", &join, "--tag", "pool=blue"]).await);
    }
    for agent in &started {
        wait_status(&server, &agent.name, 1, Duration::from_secs(20)).await;
    }
    (server, started)
}

fn executions(list: &[Value]) -> Vec<(i64, String, bool, String)> {
    list.iter()
        .map(|e| {
            (
                e["group"].as_i64().unwrap(),
                e["node_name"].as_str().unwrap().to_owned(),
                e["success"].as_bool().unwrap(),
                e["output"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[tokio::test]
async fn members_converge_and_runs_follow_the_job_tags() {
    let (server, _agents) = cluster(3, &[]).await;

    // All four are listed, with their tags: user tags on the agents, server tags on the server.
    let listed = members(&server).await;
    assert_eq!(
        listed.keys().cloned().collect::<Vec<_>>(),
        ["a1", "a2", "a3", "srv"]
    );
    for (name, (status, tags)) in &listed {
        assert_eq!(*status, 1, "{name} is alive");
        assert_eq!(tags["role"], "dkron");
        assert!(tags["rpc_addr"].as_str().unwrap().starts_with("127.0.0.1:"));
        if name == "srv" {
            assert_eq!(tags["server"], "true");
            assert_eq!(tags["dkron_server"], "true");
            assert!(tags.get("pool").is_none());
        } else {
            assert_eq!(tags["pool"], "blue");
            assert!(tags.get("server").is_none(), "{name}: {tags}");
        }
    }

    // blue:2 runs on exactly two distinct blue agents per tick.
    let mut blue = shell_job("blue", "echo blue");
    blue["schedule"] = json!("@every 1s");
    blue["tags"] = json!({"pool": "blue:2"});
    server.create_job_ok(&blue).await;
    let list = server
        .wait_finished_executions("blue", 8, Duration::from_secs(20))
        .await;
    server.http_post("/v1/jobs/blue/toggle").await;
    let mut by_group: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    for (group, node, success, output) in executions(&list) {
        assert!(success, "{node}: {output}");
        assert_eq!(output.trim(), "blue");
        by_group.entry(group).or_default().push(node);
    }
    // The newest group may still be in flight; every other one is complete.
    let newest = *by_group.keys().last().unwrap();
    let complete: Vec<_> = by_group.iter().filter(|(g, _)| **g != newest).collect();
    assert!(complete.len() >= 3, "{by_group:?}");
    for (group, nodes) in complete {
        let distinct: BTreeSet<&str> = nodes.iter().map(String::as_str).collect();
        assert_eq!(nodes.len(), 2, "group {group}: {nodes:?}");
        assert_eq!(distinct.len(), 2, "group {group}: {nodes:?}");
        assert!(
            distinct.iter().all(|n| ["a1", "a2", "a3"].contains(n)),
            "group {group}: {nodes:?}"
        );
    }

    // An untagged job runs on all four members.
    server
        .create_job_ok(&shell_job("everywhere", "echo here"))
        .await;
    let reply = server.http_post("/v1/jobs/everywhere/run?wait=true").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    let ran = executions(reply.json().as_array().unwrap());
    let nodes: BTreeSet<String> = ran.iter().map(|e| e.1.clone()).collect();
    assert_eq!(
        nodes,
        BTreeSet::from(["a1", "a2", "a3", "srv"].map(String::from)),
        "{ran:?}"
    );
    assert!(ran.iter().all(|e| e.2 && e.3.trim() == "here"), "{ran:?}");

    // No member carries pool=none: the run fails with Dkron's message.
    let mut nowhere = shell_job("nowhere", "echo never");
    nowhere["tags"] = json!({"pool": "none"});
    server.create_job_ok(&nowhere).await;
    let reply = server.http_post("/v1/jobs/nowhere/run?wait=true").await;
    let ran = executions(reply.json().as_array().unwrap());
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert!(!ran[0].2);
    assert_eq!(ran[0].3, "no target nodes found to run job nowhere");
}

#[tokio::test]
async fn an_agent_killed_mid_run_fails_its_execution_and_comes_back_alive() {
    let (server, mut agents) = cluster(1, &[]).await;
    let mut long = shell_job("long", "echo started; sleep 30");
    long["tags"] = json!({"pool": "blue"});
    server.create_job_ok(&long).await;
    assert_eq!(server.http_post("/v1/jobs/long/run").await.status, 200);

    // The run is on a1, and /v1/busy shows its output so far, streamed from the agent.
    let busy = wait_until(Duration::from_secs(10), || async {
        let list = server.http_get("/v1/busy").await.json();
        list.as_array().unwrap().iter().any(|e| {
            e["node_name"] == "a1" && e["output"].as_str().unwrap_or("").contains("started")
        })
    })
    .await;
    assert!(busy, "{}", server.http_get("/v1/busy").await.text);

    agents[0].kill9();
    let list = server
        .wait_finished_executions("long", 1, Duration::from_secs(15))
        .await;
    let (_, node, success, output) = executions(&list).remove(0);
    assert_eq!(node, "a1");
    assert!(!success);
    assert!(output.contains("a1"), "{output}");
    assert_ne!(list[0]["finished_at"], NOT_STARTED);
    wait_status(&server, "a1", 4, Duration::from_secs(15)).await;

    // Restarted, it rejoins and takes runs again.
    agents[0].restart().await;
    wait_status(&server, "a1", 1, Duration::from_secs(20)).await;
    let mut short = shell_job("short", "echo back");
    short["tags"] = json!({"pool": "blue"});
    server.create_job_ok(&short).await;
    let reply = server.http_post("/v1/jobs/short/run?wait=true").await;
    let ran = executions(reply.json().as_array().unwrap());
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0].1, "a1");
    assert!(ran[0].2, "{ran:?}");
    assert_eq!(ran[0].3.trim(), "back");
}

#[tokio::test]
async fn a_run_finishing_while_the_server_is_down_is_reported_when_it_is_back() {
    let (mut server, agents) = cluster(1, &[]).await;
    let mut slow = shell_job("slow", "sleep 4; echo finished late");
    slow["tags"] = json!({"pool": "blue"});
    server.create_job_ok(&slow).await;
    assert_eq!(server.http_post("/v1/jobs/slow/run").await.status, 200);
    // Wait for the running record (written once a run lasts 500 ms), then take the server down.
    let running = wait_until(Duration::from_secs(10), || async {
        let list = server.http_get("/v1/jobs/slow/executions").await.json();
        list.as_array().is_some_and(|l| !l.is_empty())
    })
    .await;
    assert!(running, "{}", server.log_text());
    server.kill9();
    // The run ends on a1 while no server is up; the agent keeps the report and offers it to
    // the server once gossip shows it again. The restarted server joins the agent.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let agent_gossip =
        crate::support::logged_addr(&agents[0].log_text(), "gossip listening on ").unwrap();
    server.restart_with(&["--join", &agent_gossip]).await;
    let list = server
        .wait_finished_executions("slow", 1, Duration::from_secs(30))
        .await;
    let ran = executions(&list);
    assert_eq!(ran.len(), 1, "{ran:?}");
    assert_eq!(ran[0].1, "a1");
    assert!(ran[0].2, "{ran:?}\n{}", agents[0].log_text());
    assert_eq!(ran[0].3.trim(), "finished late");
    assert!(
        agents[0]
            .log_text()
            .contains("final report delivered to a server"),
        "{}",
        agents[0].log_text()
    );
}

#[tokio::test]
async fn leave_by_rpc_and_by_http() {
    let (mut server, mut agents) = cluster(1, &[]).await;
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_rkron"))
        .args(["leave", "--rpc-addr", &agents[0].rpc_addr()])
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert!(String::from_utf8_lossy(&output.stdout).contains("Left the cluster successfully"));
    let exit = agents[0].wait_exit(Duration::from_secs(15)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "{exit:?}\n{}",
        agents[0].log_text()
    );
    wait_status(&server, "a1", 3, Duration::from_secs(10)).await;

    let reply = server.http_post("/v1/leave").await;
    assert_eq!(reply.status, 200, "{}", reply.text);
    assert!(reply.json().as_array().is_some_and(|m| !m.is_empty()));
    let exit = wait_exit(&mut server.child, Duration::from_secs(15)).await;
    assert!(
        exit.is_some_and(|s| s.success()),
        "{exit:?}\n{}",
        server.log_text()
    );
}

#[tokio::test]
async fn gossip_with_the_same_key_forms_a_cluster_and_another_key_is_refused() {
    let key = "cg8StVXbQJ0gPvMd9o7yrg==";
    let other = "6S8Uu+/hq8LwCX0x1Bw6Og==";
    let server = Server::start_named("srv", &["--encrypt", key]).await;
    let join = server.gossip_addr();
    let _good = Agent::start("good", &["--join", &join, "--encrypt", key]).await;
    wait_status(&server, "good", 1, Duration::from_secs(20)).await;

    for (name, flags) in [("wrong", vec!["--encrypt", other]), ("plain", vec![])] {
        let mut args = vec!["--join", join.as_str(), "--retry-interval", "2s"];
        args.extend(flags);
        let mut refused = Agent::start(name, &args).await;
        let exit = refused.wait_exit(Duration::from_secs(20)).await;
        assert!(
            exit.is_some_and(|s| !s.success()),
            "{name}: {exit:?}\n{}",
            refused.log_text()
        );
        assert!(
            refused.log_text().contains("could not join the cluster"),
            "{}",
            refused.log_text()
        );
        assert!(!members(&server).await.contains_key(name));
    }
    assert!(
        server
            .log_text()
            .contains("wrong or missing encryption key"),
        "{}",
        server.log_text()
    );
}

#[tokio::test]
async fn a_second_server_on_the_embedded_store_is_refused() {
    let first = Server::start_named("srv1", &[]).await;
    let dir = tempfile::tempdir().unwrap();
    let mut second = Server::spawn_named(
        "srv2",
        &dir.path().join("data"),
        &["--join", &first.gossip_addr()],
    );
    let exit = wait_exit(&mut second.child, Duration::from_secs(20)).await;
    assert!(
        exit.is_some_and(|s| !s.success()),
        "{exit:?}\n{}",
        second.log_text()
    );
    assert!(
        second.log_text().contains("needs an external store"),
        "{}",
        second.log_text()
    );
    // The first server goes on, alone.
    assert_eq!(first.http_get("/health").await.status, 200);
}
