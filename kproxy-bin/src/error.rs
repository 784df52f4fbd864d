//! The error of command-line and configuration-file handling, shared by `cli` and
//! `config_load` (in its own module so that `cli` depends on `config_load` and not the other
//! way round).

use std::path::PathBuf;

use kproxy_core::config::ConfigError;

/// Why the command line (flags and configuration files) could not be turned into an
/// invocation. Every variant means exit code 1 and nothing applied.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// Unknown flag, missing value, stray argument.
    #[error("{0}")]
    ParseArgs(String),
    /// A configuration file that must be read could not be.
    #[error("cannot read configuration file {path}: {source}")]
    ReadConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The configuration (files and flags) is invalid; every problem is listed.
    #[error("{0}")]
    InvalidConfig(#[from] ConfigError),
    /// `--write-config-to` failed.
    #[error("cannot write --write-config-to {path}: {source}")]
    WriteConfig {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Running needs something the configuration does not provide.
    #[error("{0}")]
    Prerequisite(String),
}
