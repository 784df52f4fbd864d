//! A tiny RAII network namespace for the daemon tests: unique name (prefix, pid, counter),
//! deleted on drop (also when the test panics), commands run inside with `ip netns exec`,
//! closures run inside on a thread that `setns(2)`s into it.

#![allow(dead_code)]

use std::io::Write;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A network namespace that exists as long as this value.
pub struct Netns {
    name: String,
}

impl Netns {
    /// `ip netns add PREFIX-PID-N`.
    pub fn new(prefix: &str) -> Result<Netns, String> {
        let name = format!("{prefix}-{}-{}", std::process::id(), COUNTER.fetch_add(1, Ordering::SeqCst));
        let out = Command::new("ip").args(["netns", "add", &name]).output().map_err(|e| format!("running ip: {e}"))?;
        if !out.status.success() {
            return Err(format!("ip netns add {name} failed (root needed): {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(Netns { name })
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Run `program args` inside; stdout on success, an error with stderr otherwise.
    pub fn run(&self, program: &str, args: &[&str]) -> Result<String, String> {
        self.run_stdin(program, args, "")
    }

    /// Run `program args` inside with `stdin` as standard input.
    pub fn run_stdin(&self, program: &str, args: &[&str], stdin: &str) -> Result<String, String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.name, program])
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|e| format!("spawning {program}: {e}"))?;
        if let Some(mut input) = child.stdin.take() {
            input.write_all(stdin.as_bytes()).map_err(|e| format!("writing stdin of {program}: {e}"))?;
        }
        let out = child.wait_with_output().map_err(|e| format!("waiting for {program}: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "{program} {args:?} in {} failed: {}",
                self.name,
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// Run `f` on a thread that entered this namespace (sockets it opens stay bound to it).
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = format!("/run/netns/{}", self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let file = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
                    nix::sched::setns(&file, nix::sched::CloneFlags::CLONE_NEWNET)
                        .unwrap_or_else(|e| panic!("setns {path}: {e}"));
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["netns", "del", &self.name]).status();
    }
}
