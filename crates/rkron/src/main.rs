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
    }
}

#[allow(clippy::print_stdout)] // the CLI's output
fn say(text: &str) {
    println!("{text}");
}

fn run_agent(args: &rkron::cli::AgentArgs) -> ExitCode {
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
    let filter = tracing_subscriber::EnvFilter::try_new(format!("{level},h2=warn,hyper=warn"))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
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
