//! The harness's error type: one variant per step that can fail.

use std::path::PathBuf;

/// Why a harness step (namespace, link, server, command) failed.
#[derive(Debug, thiserror::Error)]
pub enum HarnessError {
    /// A helper command could not be started at all (missing binary, exec failure).
    #[error("starting `{cmd}` failed: {source} (is the package that provides it installed? `cargo xtask test` installs it)")]
    Spawn {
        /// The command line.
        cmd: String,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// A helper command ran but exited unsuccessfully.
    #[error("`{cmd}` failed with {status}: {stderr}")]
    Command {
        /// The command line.
        cmd: String,
        /// Its exit status.
        status: std::process::ExitStatus,
        /// What it printed on stderr (trimmed).
        stderr: String,
    },
    /// Opening `/run/netns/NAME` failed.
    #[error("opening namespace file {path} failed: {source}")]
    OpenNetns {
        /// The namespace file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// `setns(2)` into a namespace failed.
    #[error("setns into network namespace {ns} failed: {source}")]
    Setns {
        /// The namespace name.
        ns: String,
        /// The underlying error.
        #[source]
        source: nix::Error,
    },
    /// A test server did not report readiness in time, or exited early.
    #[error("test server {name} in namespace {ns} did not become ready: {detail}")]
    ServerNotReady {
        /// The server's name.
        name: String,
        /// The namespace it was started in.
        ns: String,
        /// What happened (timeout, early exit with its stderr).
        detail: String,
    },
    /// A binary the harness needs was not found.
    #[error("binary `{name}` not found (looked at: {looked}); {hint}")]
    BinaryNotFound {
        /// The binary name.
        name: String,
        /// The paths that were tried.
        looked: String,
        /// What to do about it.
        hint: String,
    },
    /// Output of a helper command could not be parsed.
    #[error("parsing output of `{cmd}` failed: {detail}")]
    Parse {
        /// The command line.
        cmd: String,
        /// What was wrong.
        detail: String,
    },
    /// A topology request is out of the address plan's range.
    #[error("invalid topology: {0}")]
    Topology(String),
}
