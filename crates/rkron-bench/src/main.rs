//! rkron-bench owns the benchmarks of the real `rkron` binary: startup time and memory with many
//! stored jobs, request throughput, fire lag of the http and shell executors, a fork baseline, and
//! local clusters of one server and several agents, and high availability: three servers on a
//! shared etcd, Redis, ZooKeeper or DynamoDB (moto), leaders killed, fires sustained, store
//! requests per fire.
//!
//! Every scenario spawns `rkron agent --server` (the release binary beside this one) on a fresh
//! data dir, drives it over HTTP and prints its figures as a table. Figures that are compared are
//! measured side by side in the same run, because the machine is noisy.

// A benchmark measures the wall clock (`Utc::now`, `std::time::Instant`) and prints its figures
// on stdout; the workspace forbids both in product code, not in this measuring tool.
#![allow(
    clippy::disallowed_methods,
    clippy::disallowed_types,
    clippy::print_stdout
)]

mod cluster;
mod fire;
mod ha;
mod jobs;
mod load;
mod report;
mod requests;
mod server;
mod startup;
mod stores;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::report::Section;
use crate::stores::Backend;

/// Any failure of a scenario; the message says what went wrong.
pub(crate) type BenchError = Box<dyn std::error::Error + Send + Sync>;
/// The result of a benchmark step.
pub(crate) type BenchResult<T> = Result<T, BenchError>;

#[derive(Debug, Parser)]
#[command(
    name = "rkron-bench",
    about = "Benchmarks the real rkron binary and prints a table of figures"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Shrinks every count, for a smoke run.
    #[arg(long, global = true)]
    quick: bool,
    /// The rkron binary to run (default: `rkron` beside this binary, i.e. target/release/rkron).
    #[arg(long, global = true)]
    rkron: Option<PathBuf>,
}

#[derive(Debug, Clone, PartialEq, Eq, Subcommand)]
enum Scenario {
    /// Startup, requests, fire-http and fire-shell, in order (not cluster, about 1.5 minutes,
    /// nor ha, several minutes).
    All,
    /// Stores 100,000 jobs, restarts the server and measures readiness, memory and paging.
    Startup,
    /// Requests per second and latency of `POST /v1/jobs` and `GET /v1/jobs/{job}`.
    Requests,
    /// Fire lag of 1,000 and 10,000 jobs due on the same second, http and shell executors.
    FireLag,
    /// Fire lag with the http executor only.
    FireHttp,
    /// Fire lag with the shell executor only, beside the fork baseline.
    FireShell,
    /// The fork baseline alone: spawning `true` from this process.
    Fork,
    /// Local clusters (1 server + agents, gossip profile local): member-list convergence with
    /// 3, 10 and 30 nodes, dispatch of 1,000 and 3,000 jobs due at once to 3 agents, and the
    /// start lag of runs on agents under a burst and a light load.
    Cluster,
    /// High availability (issue 5), on a real etcd, Redis, ZooKeeper and DynamoDB (moto, from
    /// the venv of scripts/test-deps) in turn, each started by the bench: three servers + one
    /// agent; takeover after SIGKILL of the leader (10 kills with `--lease-ttl 3s`, 3 with the
    /// default 10s); on etcd and Redis also 500, 1,000 and 2,000 jobs `@every 1s` sustained for
    /// 15 s (recorded per second, lag, missed and duplicated fires) and store requests per fire.
    Ha {
        /// The stores to run on, comma-separated: etcd, redis, zk, dynamodb (default: all four).
        #[arg(long, value_delimiter = ',', value_parser = Backend::parse)]
        backends: Vec<Backend>,
        /// Skip the takeover part (only the sustained fires, on etcd and Redis).
        #[arg(long, conflicts_with = "no_sustained")]
        no_takeover: bool,
        /// Skip the sustained fires (only the takeovers).
        #[arg(long)]
        no_sustained: bool,
    },
}

/// What every scenario needs to know.
#[derive(Debug, Clone)]
pub(crate) struct Context {
    /// The `rkron` binary.
    pub(crate) rkron: PathBuf,
    /// Smaller counts for a smoke run.
    pub(crate) quick: bool,
}

fn default_rkron() -> PathBuf {
    std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|dir| dir.join("rkron")))
        .unwrap_or_else(|| PathBuf::from("target/release/rkron"))
}

async fn run_scenario(scenario: Scenario, context: &Context) -> Vec<BenchResult<Section>> {
    match scenario {
        Scenario::All => {
            let mut sections = Vec::new();
            for one in [
                Scenario::Startup,
                Scenario::Requests,
                Scenario::FireHttp,
                Scenario::FireShell,
            ] {
                sections.extend(Box::pin(run_scenario(one, context)).await);
            }
            sections
        }
        Scenario::Startup => vec![startup::run(context).await],
        Scenario::Requests => vec![requests::run(context).await],
        Scenario::FireLag => {
            let mut sections = fire::run(context, fire::Kind::Http).await;
            sections.extend(fire::run(context, fire::Kind::Shell).await);
            sections
        }
        Scenario::FireHttp => fire::run(context, fire::Kind::Http).await,
        Scenario::FireShell => fire::run(context, fire::Kind::Shell).await,
        Scenario::Fork => fire::fork_only(context).await,
        Scenario::Cluster => cluster::run(context).await,
        Scenario::Ha {
            backends,
            no_takeover,
            no_sustained,
        } => {
            let parts = ha::Parts {
                takeover: !no_takeover,
                sustained: !no_sustained,
            };
            ha::run(context, &backends, parts).await
        }
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let context = Context {
        rkron: cli.rkron.unwrap_or_else(default_rkron),
        quick: cli.quick,
    };
    if !context.rkron.is_file() {
        eprintln!(
            "rkron-bench: no rkron binary at {}; build it with `cargo build --release -p rkron` or pass --rkron",
            context.rkron.display()
        );
        return ExitCode::FAILURE;
    }
    println!("{}", report::machine_line(&context));
    let results = run_scenario(cli.scenario, &context).await;
    let mut sections = Vec::new();
    let mut failed = false;
    for result in results {
        match result {
            Ok(section) => sections.push(section),
            Err(error) => {
                failed = true;
                println!("\nscenario failed: {error}");
            }
        }
    }
    if sections.len() > 1 {
        report::print_summary(&sections);
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
