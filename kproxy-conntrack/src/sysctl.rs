//! Reading and writing kernel parameters, the raw side of [`crate::tuning`]: a small trait so
//! that tests (and embedders with their own view of `/proc/sys`) can stand in for the file
//! system. The file-system implementation is the workspace's [`kproxy_netlink::Sysctl`].
//!
//! Keys are paths relative to `/` (e.g. `proc/sys/net/netfilter/nf_conntrack_max`), not to
//! `/proc/sys`, because the tuning also touches a module parameter under `/sys/module`; so the
//! [`kproxy_netlink::Sysctl`] to use is rooted at `/` ([`node`]), or at a temporary directory
//! in tests.

use std::io;

/// Reads and writes kernel parameters by path relative to `/` (e.g.
/// `proc/sys/net/netfilter/nf_conntrack_max`), so tests can point it at a temp dir.
pub trait Sysctl {
    /// Current value, trimmed.
    fn read(&self, key: &str) -> io::Result<String>;
    /// Write a value.
    fn write(&self, key: &str, value: &str) -> io::Result<()>;
}

/// The node's parameters: a [`kproxy_netlink::Sysctl`] rooted at `/`, as [`Sysctl`]'s keys
/// want (its own default root, `/proc/sys`, would not find them).
pub fn node() -> kproxy_netlink::Sysctl {
    kproxy_netlink::Sysctl::new("/")
}

impl Sysctl for kproxy_netlink::Sysctl {
    fn read(&self, key: &str) -> io::Result<String> {
        kproxy_netlink::Sysctl::read(self, key)
    }

    fn write(&self, key: &str, value: &str) -> io::Result<()> {
        kproxy_netlink::Sysctl::write(self, key, value)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_keys_are_relative_to_the_root_directory() {
        let path = node().path("proc/sys/net/netfilter/nf_conntrack_max");
        assert_eq!(path, std::path::Path::new("/proc/sys/net/netfilter/nf_conntrack_max"));
    }
}
