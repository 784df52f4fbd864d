//! Building (or reusing) etcd, kube-apiserver and e2e-kit from `tools/apiserver`, and for
//! the lab upstream's kube-proxy and kube-controller-manager (same pinned version).
//!
//! The binaries are cached under `<workspace>/target/apiserver-bin/` (outside git) and rebuilt
//! only when a file under `tools/apiserver` is newer than the oldest binary. The first build
//! compiles all of Kubernetes' API server (about 4-5 minutes here on 2 cores with the Go
//! module cache warm, more with a cold one); later runs take milliseconds.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Instant, SystemTime};

use crate::cmd;

/// kube-apiserver's version as built (go.mod pins k8s.io/kubernetes to this).
const KUBE_VERSION: &str = "v1.34.4";

/// The three binaries the harness runs.
#[derive(Debug, Clone)]
pub struct Binaries {
    /// etcd server.
    pub etcd: PathBuf,
    /// kube-apiserver.
    pub apiserver: PathBuf,
    /// The harness helper (certs, kubeconfigs, readiness, RBAC bootstrap).
    pub kit: PathBuf,
}

/// Directory holding the cached binaries.
pub fn bin_dir() -> PathBuf {
    cmd::root().join("target").join("apiserver-bin")
}

/// Returns the cached binaries, building them first when missing or stale.
pub fn ensure_binaries(force: bool) -> Result<Binaries, String> {
    let dir = bin_dir();
    let bins = Binaries { etcd: dir.join("etcd"), apiserver: dir.join("kube-apiserver"), kit: dir.join("e2e-kit") };
    ensure_built(&["etcd", "kube-apiserver", "e2e-kit"], force)?;
    Ok(bins)
}

/// Upstream's node and controller binaries the lab (`cargo xtask lab`) runs beside kproxy.
#[derive(Debug, Clone)]
pub struct Upstream {
    /// kube-proxy (nftables and iptables modes).
    pub kube_proxy: PathBuf,
    /// kube-controller-manager (the lab enables only its EndpointSlice controllers).
    pub controller_manager: PathBuf,
}

/// Returns upstream's kube-proxy and kube-controller-manager, building them first when
/// missing or stale. Separate from [`ensure_binaries`] so the e2e suite never pays for them.
pub fn ensure_upstream(force: bool) -> Result<Upstream, String> {
    let dir = bin_dir();
    ensure_built(&["kube-proxy", "kube-controller-manager"], force)?;
    Ok(Upstream { kube_proxy: dir.join("kube-proxy"), controller_manager: dir.join("kube-controller-manager") })
}

/// Builds `./cmd/NAME` for each of `names` into [`bin_dir`] unless every one of them is
/// newer than every file under `tools/apiserver` (and `force` is off).
fn ensure_built(names: &[&str], force: bool) -> Result<(), String> {
    let dir = bin_dir();
    let src = cmd::root().join("tools").join("apiserver");
    let oldest_bin = names.iter().map(|n| mtime(&dir.join(n))).min().flatten();
    let newest_src = newest_mtime(&src)?;
    let list = names.join(", ");
    if !force {
        if let Some(bin) = oldest_bin {
            if bin >= newest_src {
                println!("apiserver: reusing cached {list} in {}", dir.display());
                return Ok(());
            }
        }
    }
    let go = find_go()?;
    let ldflags = format!(
        "-s -w -X k8s.io/component-base/version.gitVersion={KUBE_VERSION} \
         -X k8s.io/component-base/version.gitMajor=1 -X k8s.io/component-base/version.gitMinor=34 \
         -X k8s.io/component-base/version.gitTreeState=clean"
    );
    // Low priority and one package at a time: this build is long and the machine is shared.
    let parallel = std::env::var("KPROXY_GO_BUILD_P").unwrap_or_else(|_| "1".into());
    let mut c = Command::new("nice");
    c.args(["-n", "10"])
        .arg(&go)
        .args(["build", "-trimpath", &format!("-p={parallel}"), "-ldflags", &ldflags, "-o"])
        .arg(format!("{}/", dir.display()))
        .args(names.iter().map(|n| format!("./cmd/{n}")))
        .current_dir(&src)
        .env("GOFLAGS", "-buildvcs=false");
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    println!("apiserver: building {list} ({KUBE_VERSION}; first build: several minutes)");
    let started = Instant::now();
    cmd::status(&mut c)?;
    println!("apiserver: Go build took {:.0?}", started.elapsed());
    Ok(())
}

/// `go` from PATH, else the official tarball's location.
fn find_go() -> Result<PathBuf, String> {
    if let Ok(go) = std::env::var("KPROXY_GO") {
        return Ok(PathBuf::from(go));
    }
    let on_path = std::env::var_os("PATH")
        .into_iter()
        .flat_map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .map(|d| d.join("go"))
        .find(|p| p.is_file());
    on_path.or_else(|| Some(PathBuf::from("/usr/local/go/bin/go")).filter(|p| p.is_file())).ok_or_else(|| {
        "building kube-apiserver needs Go >= 1.24 (not found on PATH or in /usr/local/go): \
         install it from https://go.dev/dl or set KPROXY_GO=/path/to/go"
            .to_string()
    })
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

/// Newest modification time of any file below `dir` (bounded depth: the module is small).
fn newest_mtime(dir: &Path) -> Result<SystemTime, String> {
    let mut newest = SystemTime::UNIX_EPOCH;
    let mut stack = vec![(dir.to_path_buf(), 0u32)];
    while let Some((d, depth)) = stack.pop() {
        let entries = std::fs::read_dir(&d).map_err(|e| format!("reading {}: {e}", d.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if depth < 8 {
                    stack.push((path, depth + 1));
                }
            } else if let Some(t) = mtime(&path) {
                newest = newest.max(t);
            }
        }
    }
    Ok(newest)
}
