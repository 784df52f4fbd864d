//! Reading and writing kernel parameters, the raw side of [`crate::tuning`]: a small trait so
//! that tests (and embedders with their own view of `/proc/sys`) can stand in for the file
//! system, and the file-system implementation. Kept apart from the tuning logic so that moving
//! onto a shared sysctl helper touches only this file.

use std::io;
use std::path::PathBuf;

/// Reads and writes kernel parameters by path relative to `/` (e.g.
/// `proc/sys/net/netfilter/nf_conntrack_max`), so tests can point it at a temp dir.
pub trait Sysctl {
    /// Current value, trimmed.
    fn read(&self, key: &str) -> io::Result<String>;
    /// Write a value.
    fn write(&self, key: &str, value: &str) -> io::Result<()>;
}

/// The real file system under a root (normally `/`).
#[derive(Debug, Clone)]
pub struct FsSysctl {
    root: PathBuf,
}

impl FsSysctl {
    /// Parameters under `root` (`/` on a node).
    pub fn new(root: impl Into<PathBuf>) -> FsSysctl {
        FsSysctl { root: root.into() }
    }

    fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }
}

impl Default for FsSysctl {
    fn default() -> Self {
        FsSysctl::new("/")
    }
}

impl Sysctl for FsSysctl {
    fn read(&self, key: &str) -> io::Result<String> {
        std::fs::read_to_string(self.path(key)).map(|s| s.trim().to_string())
    }

    fn write(&self, key: &str, value: &str) -> io::Result<()> {
        std::fs::write(self.path(key), format!("{value}\n"))
    }
}
