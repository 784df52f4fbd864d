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
            // `kproxy explain` documents 2 for bad arguments or configuration (1 is drift).
            let explain = std::env::args_os().skip(1).any(|a| a == "explain");
            ExitCode::from(if explain { kproxy_bin::explain::EXIT_ERROR } else { 1 })
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
    // `kproxy trace` takes none of the daemon's flags: it only reads the kernel.
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    if args.get(1).is_some_and(|a| a == "trace") {
        return Ok(kproxy_bin::trace_cmd::main(args.split_off(2)));
    }
    // `kproxy doctor` takes the daemon's flags (and its own), and reports instead of failing.
    if args.get(1).is_some_and(|a| a == "doctor") {
        return Ok(kproxy_bin::doctor_cmd::main(args.split_off(2)));
    }
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
        Command::Explain(args) => {
            log_warnings(&inv);
            return Ok(kproxy_bin::explain::main(&inv, args));
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

/// `logging.format` (`--logging-format`) picks klog text or component-base JSON lines.
fn init_logging(inv: &Invocation) {
    let format = kproxy_telemetry::logging::LogFormat::from_config(&inv.config.logging.format);
    kproxy_telemetry::logging::init(format, inv.extras.verbosity);
}
