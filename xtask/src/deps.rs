//! Installing the Debian packages kproxy's commands need, when they are missing.

use std::process::Command;
use std::sync::Once;

use crate::cmd;

/// What building kproxy and running it in namespaces needs.
pub const BUILD: &[&str] = &[
    "nftables",
    "libnftnl-dev",
    "libmnl-dev",
    "pkg-config",
    "clang",
    "libclang-dev",
    "iproute2",
    "conntrack",
    // The takeover tests load kube-proxy's rules with iptables-nft and iptables-legacy
    // (both in Debian's iptables package) and its IPVS-mode ipsets with ipset.
    "iptables",
    "ipset",
];

/// What the IPVS VM tests add (qemu, the initramfs tools, the independent IPVS witness).
pub const VM: &[&str] = &[
    "ipvsadm",
    "qemu-system-x86",
    "busybox-static",
    "kmod",
    "cpio",
];

/// Everything the test suites need.
pub fn all() -> Vec<&'static str> {
    [BUILD, VM].concat()
}

static APT_UPDATE: Once = Once::new();

/// Fails unless running as root (namespaces, nftables and apt-get all need it).
pub fn require_root(what: &str) -> Result<(), String> {
    if effective_uid()? == 0 {
        return Ok(());
    }
    Err(format!(
        "{what} needs root (it installs packages and creates network namespaces); \
         run it as root, e.g. `sudo -E cargo xtask ...`"
    ))
}

/// Installs those of `packages` that `dpkg -s` does not report as installed.
pub fn ensure(packages: &[&str]) -> Result<(), String> {
    let missing: Vec<&str> = packages.iter().copied().filter(|p| !installed(p)).collect();
    if missing.is_empty() {
        return Ok(());
    }
    require_root("installing packages")?;
    println!("xtask: installing missing packages: {}", missing.join(" "));
    let mut update_result = Ok(());
    APT_UPDATE.call_once(|| update_result = apt(&["update"]));
    update_result?;
    let mut args = vec!["install", "-y", "--no-install-recommends"];
    args.extend(&missing);
    apt(&args)
}

fn installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .map(|o| {
            o.status.success()
                && String::from_utf8_lossy(&o.stdout).contains("install ok installed")
        })
        .unwrap_or(false)
}

fn apt(args: &[&str]) -> Result<(), String> {
    let mut c = Command::new("apt-get");
    c.args(args).env("DEBIAN_FRONTEND", "noninteractive");
    cmd::status(&mut c)
}

/// The effective uid, from /proc (std has no geteuid).
fn effective_uid() -> Result<u32, String> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| format!("reading /proc/self/status: {e}"))?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|euid| euid.parse().ok())
        .ok_or_else(|| "no effective uid in /proc/self/status".to_string())
}
