//! Network namespaces for the in-VM tests: RAII creation/deletion with iproute2, and running
//! code inside one on a dedicated thread (a netlink socket stays in the namespace of the
//! thread that opened it).

use std::fs::File;
use std::os::fd::AsRawFd;
use std::process::Command;

/// iproute2's `ip` (busybox's has no netns support).
pub const IP: &str = "/usr/sbin/ip";
/// The independent witness of what IPVS holds.
pub const IPVSADM: &str = "/usr/sbin/ipvsadm";

/// Run a program, returning its stdout or an error with its stderr.
pub fn run(prog: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(prog)
        .args(args)
        .output()
        .map_err(|e| format!("{prog} {args:?}: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "{prog} {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// `ip ARGS...`.
pub fn ip(args: &str) -> Result<String, String> {
    let v: Vec<&str> = args.split_whitespace().collect();
    run(IP, &v)
}

/// A network namespace, deleted on drop.
pub struct Netns {
    /// Its name under /run/netns.
    pub name: String,
}

impl Netns {
    /// Create `name` (with the process id appended for uniqueness).
    pub fn new(name: &str) -> Result<Netns, String> {
        let name = format!("{name}-{}", std::process::id());
        ip(&format!("netns add {name}"))?;
        let ns = Netns { name };
        ns.exec(IP, &["link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// Run a program inside the namespace.
    pub fn exec(&self, prog: &str, args: &[&str]) -> Result<String, String> {
        let mut v = vec!["netns", "exec", &self.name, prog];
        v.extend_from_slice(args);
        run(IP, &v)
    }

    /// `ip -n NS ARGS...`.
    pub fn ip(&self, args: &str) -> Result<String, String> {
        ip(&format!("-n {} {args}", self.name))
    }

    /// Run `f` on a new thread inside the namespace and wait for it.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, String> {
        let name = self.name.clone();
        std::thread::spawn(move || enter(&name).map(|_| f()))
            .join()
            .map_err(|_| "thread panicked".to_string())?
    }

    /// Start `f` on a detached thread inside the namespace (servers).
    pub fn spawn(&self, f: impl FnOnce() + Send + 'static) {
        let name = self.name.clone();
        std::thread::spawn(move || match enter(&name) {
            Ok(()) => f(),
            Err(e) => eprintln!("VMTEST server thread: {e}"),
        });
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&format!("netns del {}", self.name));
    }
}

/// setns(2) the calling thread into /run/netns/NAME.
pub fn enter(name: &str) -> Result<(), String> {
    let f =
        File::open(format!("/run/netns/{name}")).map_err(|e| format!("open netns {name}: {e}"))?;
    // SAFETY: setns on a valid namespace fd; affects only the calling thread's network ns.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    if rc != 0 {
        return Err(format!("setns {name}: {}", std::io::Error::last_os_error()));
    }
    Ok(())
}
