//! [`Netns`]: a uniquely named network namespace that is deleted when dropped.

use std::ffi::OsStr;
use std::fs::File;
use std::path::PathBuf;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Once;

use nix::sched::CloneFlags;

use crate::HarnessError;

/// Prefix of every namespace this crate creates; stale ones are recognised by it.
const PREFIX: &str = "kpt-";
/// Where iproute2 keeps named network namespaces.
const NETNS_DIR: &str = "/run/netns";

static COUNTER: AtomicU32 = AtomicU32::new(0);
static REAP_STALE: Once = Once::new();

/// A network namespace named `kpt-<pid>-<counter>-<label>`, created with `ip netns add`.
///
/// Dropping it kills every process still inside it and deletes it (`ip netns del`), also
/// while unwinding from a panic. Nothing about it is linked to the root namespace.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates a new namespace; `label` (e.g. `node`, `pod1`) only helps a human reading
    /// `ip netns list`. Loopback is brought up so local services work.
    pub fn new(label: &str) -> Result<Self, HarnessError> {
        REAP_STALE.call_once(reap_stale);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("{PREFIX}{}-{n}-{label}", std::process::id());
        run(Command::new("ip").args(["netns", "add", &name]))?;
        // Owned from here on: if bringing up loopback fails, Drop still deletes it.
        let ns = Netns { name };
        ns.exec(["ip", "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name (as `ip netns exec` expects it).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace file, `/run/netns/NAME` (what `setns(2)` opens).
    pub fn path(&self) -> PathBuf {
        PathBuf::from(NETNS_DIR).join(&self.name)
    }

    /// A [`Command`] that runs `program` inside this namespace (`ip netns exec NAME ...`),
    /// for callers that need to spawn or capture output themselves.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs a command inside the namespace and returns its stdout; a non-zero exit is an
    /// error carrying the command line and its stderr. `args[0]` is the program.
    pub fn exec<I, S>(&self, args: I) -> Result<String, HarnessError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut args = args.into_iter();
        let Some(program) = args.next() else {
            return Err(HarnessError::Topology(
                "Netns::exec called with an empty command".into(),
            ));
        };
        let mut cmd = self.command(program);
        cmd.args(args);
        run(&mut cmd)
    }

    /// Runs `f` on a new thread that has entered this namespace with `setns(2)` and returns
    /// its result. Sockets opened inside `f` stay in this namespace after it returns.
    /// A panic inside `f` is propagated to the caller unchanged.
    pub fn run_in<T, F>(&self, f: F) -> Result<T, HarnessError>
    where
        T: Send,
        F: FnOnce() -> T + Send,
    {
        let path = self.path();
        let file = File::open(&path).map_err(|source| HarnessError::OpenNetns { path, source })?;
        let name = &self.name;
        std::thread::scope(|scope| {
            let handle = scope.spawn(move || {
                nix::sched::setns(&file, CloneFlags::CLONE_NEWNET).map_err(|source| {
                    HarnessError::Setns {
                        ns: name.clone(),
                        source,
                    }
                })?;
                Ok(f())
            });
            match handle.join() {
                Ok(result) => result,
                Err(panic) => std::panic::resume_unwind(panic),
            }
        })
    }

    /// Process ids currently inside the namespace (`ip netns pids`).
    pub fn pids(&self) -> Result<Vec<i32>, HarnessError> {
        pids_of(&self.name)
    }

    /// Writes a sysctl inside the namespace (`sysctl -w key=value`).
    pub fn sysctl(&self, key: &str, value: &str) -> Result<(), HarnessError> {
        self.exec(["sysctl", "-q", "-w", &format!("{key}={value}")])
            .map(drop)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        if let Err(e) = delete(&self.name) {
            eprintln!("kproxy-tests: cleaning up namespace {}: {e}", self.name);
        }
    }
}

/// Kills what runs in the namespace, then deletes it.
fn delete(name: &str) -> Result<(), HarnessError> {
    // A process left inside would keep the namespace (and its links) alive after the
    // name is gone, so kill first. `ip netns pids` fails only if the namespace is gone.
    for pid in pids_of(name).unwrap_or_default() {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(pid),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    run(Command::new("ip").args(["netns", "del", name])).map(drop)
}

fn pids_of(name: &str) -> Result<Vec<i32>, HarnessError> {
    let out = run(Command::new("ip").args(["netns", "pids", name]))?;
    Ok(out
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect())
}

/// Deletes namespaces left behind by earlier test processes that were killed before their
/// destructors could run (their pid, the part after the prefix, no longer exists).
fn reap_stale() {
    let Ok(entries) = std::fs::read_dir(NETNS_DIR) else {
        return;
    };
    for entry in entries.flatten().take(10_000) {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(rest) = name.strip_prefix(PREFIX) else {
            continue;
        };
        let Some(pid) = rest.split('-').next().and_then(|p| p.parse::<u32>().ok()) else {
            continue;
        };
        if pid != std::process::id() && !PathBuf::from(format!("/proc/{pid}")).exists() {
            let _ = delete(&name);
        }
    }
}

/// Runs a command to completion and returns its stdout, or an error with its stderr.
pub(crate) fn run(cmd: &mut Command) -> Result<String, HarnessError> {
    let line = describe(cmd);
    let out = cmd.output().map_err(|source| HarnessError::Spawn {
        cmd: line.clone(),
        source,
    })?;
    succeeded(line, out)
}

/// The stdout of a finished command `line`, or an error with its status and stderr.
pub(crate) fn succeeded(line: String, out: std::process::Output) -> Result<String, HarnessError> {
    if !out.status.success() {
        return Err(HarnessError::Command {
            cmd: line,
            status: out.status,
            stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// The command line as a human would type it, for error messages.
pub(crate) fn describe(cmd: &Command) -> String {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}
