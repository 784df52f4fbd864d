//! Kernel parameters under `/proc/sys`, by key (`net/ipv4/ip_forward`).
//!
//! The root is a parameter so that tests point it at a temporary directory. `/proc/sys/net`
//! shows the network namespace of the thread that opens the file.

use std::io;
use std::path::{Path, PathBuf};

/// Reads and writes kernel parameters under a root (normally `/proc/sys`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sysctl {
    root: PathBuf,
}

impl Default for Sysctl {
    fn default() -> Self {
        Sysctl::new("/proc/sys")
    }
}

/// What [`Sysctl::ensure`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ensured {
    /// The value was already set; nothing was written.
    Unchanged,
    /// The value was written.
    Written,
}

impl Sysctl {
    /// Parameters under `root` (`/proc/sys` on a node).
    pub fn new(root: impl Into<PathBuf>) -> Sysctl {
        Sysctl { root: root.into() }
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The file of `key` (relative to the root, e.g. `net/ipv4/vs/conntrack`).
    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// The current value of `key`, trimmed.
    pub fn read(&self, key: &str) -> io::Result<String> {
        std::fs::read_to_string(self.path(key)).map(|s| s.trim().to_string())
    }

    /// Writes `value` to `key`.
    pub fn write(&self, key: &str, value: &str) -> io::Result<()> {
        std::fs::write(self.path(key), value)
    }

    /// Writes `value` to `key` unless it already reads so (a read failure counts as "not
    /// set"). Errors are the write's: a read-only `/proc/sys` (a container) shows as
    /// `PermissionDenied` or `EROFS` ([`is_read_only`]).
    pub fn ensure(&self, key: &str, value: &str) -> io::Result<Ensured> {
        if self.read(key).is_ok_and(|v| v == value) {
            return Ok(Ensured::Unchanged);
        }
        self.write(key, value).map(|()| Ensured::Written)
    }
}

/// Whether a write failed because `/proc/sys` is read-only here (a container without
/// privileges over it), rather than because the key is wrong.
pub fn is_read_only(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EROFS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ensure_writes_only_changed_values() {
        let dir = std::env::temp_dir().join(format!("kproxy-netlink-sysctl-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("net/ipv4")).unwrap();
        let s = Sysctl::new(&dir);
        std::fs::write(dir.join("net/ipv4/ip_forward"), "0\n").unwrap();
        assert_eq!(s.read("net/ipv4/ip_forward").unwrap(), "0");
        assert_eq!(s.ensure("net/ipv4/ip_forward", "1").unwrap(), Ensured::Written);
        assert_eq!(s.ensure("net/ipv4/ip_forward", "1").unwrap(), Ensured::Unchanged);
        assert_eq!(std::fs::read_to_string(dir.join("net/ipv4/ip_forward")).unwrap(), "1");
        let e = s.ensure("net/nope/x", "1").unwrap_err();
        assert!(!is_read_only(&e));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn default_root_is_proc_sys() {
        assert_eq!(Sysctl::default().path("net/ipv4/ip_forward"), Path::new("/proc/sys/net/ipv4/ip_forward"));
    }
}
