//! The `rkron` command: parses the command line, sets up logging and signals, and maps errors
//! to exit codes. Everything else lives in the library.

use std::collections::BTreeMap;
use std::process::ExitCode;

use clap::Parser;
use rkron::cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Version => {
            say(&rkron::cli::version_text());
            ExitCode::SUCCESS
        }
        Command::Keygen => {
            say(&rkron::cli::keygen());
            ExitCode::SUCCESS
        }
        Command::Agent(args) => run_agent(&args),
        Command::Run { job, wait, server } => client_command(&server.address, |c| async move {
            if wait {
                let executions = c.run_job_and_wait(&job).await?;
                Ok(serde_json::to_string_pretty(&executions).unwrap_or_default())
            } else {
                let job = c.run_job(&job).await?;
                Ok(format!("Job {} started", job.name))
            }
        }),
        Command::Kill {
            job,
            execution,
            server,
        } => client_command(&server.address, |c| async move {
            let killed = c.kill_execution(&job, &execution).await?;
            Ok(format!(
                "Killed execution {} of job {}",
                killed.id, killed.job_name
            ))
        }),
        Command::Backup { file, server } => client_command(&server.address, |c| async move {
            let text = c.backup().await?;
            match file {
                Some(path) => {
                    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
                    Ok(format!("Backup written to {}", path.display()))
                }
                None => Ok(text),
            }
        }),
        Command::Leave { rpc_addr } => {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(e) => {
                    eprintln!("rkron: cannot start the async runtime: {e}");
                    return ExitCode::FAILURE;
                }
            };
            match runtime.block_on(rkron_rpc::request_leave(&rpc_addr)) {
                Ok(node) => {
                    say(&format!("Left the cluster successfully ({node})"));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("rkron: leave {rpc_addr}: {e}");
                    ExitCode::FAILURE
                }
            }
        }
        Command::Restore { file, server } => {
            let bytes = match std::fs::read(&file) {
                Ok(b) => b,
                Err(e) => {
                    eprintln!("rkron: {}: {e}", file.display());
                    return ExitCode::FAILURE;
                }
            };
            client_command(&server.address, |c| async move {
                let lines = c.restore(bytes).await?;
                Ok(lines.join("\n"))
            })
        }
    }
}

/// Runs one API call against `address`, prints its answer, and maps failure to exit code 1.
fn client_command<F, Fut>(address: &str, call: F) -> ExitCode
where
    F: FnOnce(rkron_client::Client) -> Fut,
    Fut: std::future::Future<Output = Result<String, CommandError>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rkron: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(call(rkron_client::Client::new(address))) {
        Ok(text) => {
            say(&text);
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("rkron: {e}");
            ExitCode::FAILURE
        }
    }
}

/// A client command's failure, printed as is.
#[derive(Debug)]
struct CommandError(String);

impl std::fmt::Display for CommandError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<rkron_client::ClientError> for CommandError {
    fn from(e: rkron_client::ClientError) -> Self {
        Self(e.to_string())
    }
}

impl From<String> for CommandError {
    fn from(e: String) -> Self {
        Self(e)
    }
}

#[allow(clippy::print_stdout)] // the CLI's output
fn say(text: &str) {
    println!("{text}");
}

fn run_agent(args: &rkron::cli::AgentArgs) -> ExitCode {
    // First, while the process holds only its standard streams: each spawner thread keeps a
    // copy of every descriptor open when it starts (see `rkron_executor::shell::start_spawner`).
    let spawner = rkron_executor::shell::start_spawner();
    // Lossy: one non-UTF-8 variable must not stop start-up.
    let env: BTreeMap<String, String> = std::env::vars_os()
        .map(|(k, v)| {
            (
                k.to_string_lossy().into_owned(),
                v.to_string_lossy().into_owned(),
            )
        })
        .collect();
    let home = env.get("HOME").map(std::path::PathBuf::from);
    let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
    let config = match rkron::config::load(args, &env, home.as_deref(), &cwd) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("rkron: configuration error: {e}");
            return ExitCode::from(2);
        }
    };
    init_logging(&config.log_level);
    match &config.config_file {
        Some(file) => tracing::info!(file = %file.display(), "configuration file loaded"),
        None => tracing::info!("No valid config found: Applying default values."),
    }
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    if let Err(error) = spawner {
        tracing::info!(
            %error,
            "shell jobs are spawned from the runtime's threads (no spawner threads)"
        );
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("rkron: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(rkron::agent::run(config, None, shutdown_signal()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("rkron: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_logging(level: &str) {
    let level = match level {
        "fatal" | "panic" => "error",
        other => other,
    };
    // chitchat warns on every failed gossip send (ten times a second per unreachable member);
    // rkron reports member failures itself, so its own lines are kept to errors unless debugging.
    let chitchat = if matches!(level, "debug" | "trace") {
        level
    } else {
        "error"
    };
    let filter = tracing_subscriber::EnvFilter::try_new(format!(
        "{level},h2=warn,hyper=warn,chitchat={chitchat}"
    ))
    .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: logs piped to a file or journald stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(ansi)
        .init();
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        // Without signal handlers the process still stops on the default action.
        std::future::pending::<()>().await;
        return;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}
