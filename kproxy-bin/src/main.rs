//! `kproxy`: parse the command line and configuration, then act. Configuration errors go to
//! stderr, one located line each, with exit code 1 and nothing applied.

use std::process::ExitCode;

use kproxy_bin::cli::{check_run_prerequisites, parse_invocation, CliError, Command, Invocation};
use kproxy_bin::config_load::write_config;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            report(&e);
            ExitCode::from(1)
        }
    }
}

fn report(e: &CliError) {
    match e {
        CliError::InvalidConfig(config) => {
            for line in config.lines() {
                eprintln!("error: {line}");
            }
        }
        CliError::ParseArgs(text) => {
            // clap already starts its message with "error:".
            let text = text.strip_prefix("error: ").unwrap_or(text);
            eprintln!("error: {text}");
        }
        other => eprintln!("error: {other}"),
    }
}

fn run() -> Result<ExitCode, CliError> {
    let inv = parse_invocation(std::env::args_os())?;
    match &inv.command {
        Command::Help(text) => {
            print!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        Command::Version(text) => {
            println!("{text}");
            return Ok(ExitCode::SUCCESS);
        }
        _ => {}
    }
    init_logging(&inv);
    match &inv.command {
        Command::Validate => {
            print_warnings(&inv);
            print!("{}", inv.config.to_yaml());
            let sources = if inv.extras.config_files.is_empty() {
                "no configuration file".to_string()
            } else {
                inv.extras.config_files.iter().map(|p| p.display().to_string()).collect::<Vec<_>>().join(", ")
            };
            eprintln!("configuration is valid (read: {sources}; flags override files)");
        }
        Command::WriteConfig(path) => {
            log_warnings(&inv);
            write_config(path, &inv.config)?;
            tracing::info!(file = %path.display(), "Wrote configuration");
        }
        Command::Cleanup => {
            log_warnings(&inv);
            if let Err(err) = kproxy_bin::daemon::cleanup(&inv) {
                tracing::error!("{err:#}");
                return Ok(ExitCode::from(1));
            }
        }
        Command::Run => {
            log_warnings(&inv);
            check_run_prerequisites(&inv)?;
            if let Err(err) = kproxy_bin::daemon::run(&inv) {
                tracing::error!("{err:#}");
                return Ok(ExitCode::from(1));
            }
        }
        Command::Help(_) | Command::Version(_) => {}
    }
    Ok(ExitCode::SUCCESS)
}

/// `kproxy validate` prints warnings plainly, one line each, before the YAML.
fn print_warnings(inv: &Invocation) {
    for w in &inv.warnings {
        eprintln!("warning: {w}");
    }
}

/// A running kproxy logs each warning once at startup.
fn log_warnings(inv: &Invocation) {
    for w in &inv.warnings {
        tracing::warn!("{w}");
    }
}

/// klog verbosity to tracing levels: 0-1 info, 2-4 debug, 5+ trace. `RUST_LOG` overrides.
/// `logging.format` (`--logging-format`) picks text or JSON lines.
fn init_logging(inv: &Invocation) {
    let level = match inv.extras.verbosity {
        0..=1 => "info",
        2..=4 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(level));
    // Logs go to stderr so `validate` output on stdout stays pure YAML.
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    // try_init only fails if a subscriber is already set, which nothing here does.
    let _ = if inv.config.logging.format == "json" { builder.json().try_init() } else { builder.try_init() };
}
