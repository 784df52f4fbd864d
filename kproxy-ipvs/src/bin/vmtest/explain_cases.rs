//! In-VM case of `kproxy explain` in IPVS mode against the real kernel: the `kproxy` binary
//! programs the seed production config (`mode: ipvs`) on `examples/manifests`, `explain`
//! says "in sync" (exit 0), then a real server deleted with ipvsadm is named (exit 1).

use std::net::IpAddr;
use std::process::Command;

use crate::cases::*;
use crate::netns::IP;
use crate::topo::Topology;

const KPROXY: &str = "/usr/bin/kproxy";
const FLAGS: [&str; 6] = ["--config", "/examples/config/production.yaml", "--manifests", "/examples/manifests", "--hostname-override", "node-1"];

/// `kproxy explain demo/web` in the node namespace: exit code and stdout.
fn explain(t: &Topology) -> Result<(i32, String), String> {
    let out = Command::new(IP)
        .args(["netns", "exec", &t.node.name, KPROXY, "explain", "demo/web", "-o", "json"])
        .args(FLAGS)
        .output()
        .map_err(|e| format!("running kproxy explain: {e}"))?;
    let text = format!("{}\nstderr: {}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok((out.status.code().unwrap_or(-1), text))
}

pub fn kproxy_binary_explain() -> R {
    let pods: Vec<(String, IpAddr, IpAddr)> =
        (1..=3).map(|i| (format!("pod{i}"), ip(&format!("198.18.0.1{i}")), ip(&format!("2001:db8:a::1{i}")))).collect();
    let t = Topology::with_pods(&pods)?;
    let mut once = vec!["--once"];
    once.extend(FLAGS);
    t.node.exec(KPROXY, &once).map_err(|e| format!("kproxy --once failed: {e}"))?;

    let (code, text) = explain(&t)?;
    ensure(code == 0 && text.contains("\"in_sync\":true") && text.contains("198.18.0.11:8080 weight 1"), || {
        format!("explain of a healthy IPVS node: exit {code}\n{text}")
    })?;
    t.node
        .exec("/usr/sbin/ipvsadm", &["-d", "-t", "198.19.160.10:80", "-r", "198.18.0.11:8080"])
        .map_err(|e| format!("ipvsadm -d: {e}"))?;
    let (code, text) = explain(&t)?;
    let want = "missing: real server 198.18.0.11:8080 (weight 1) of virtual server tcp 198.19.160.10:80";
    ensure(code == 1 && text.contains(want) && text.contains("\"in_sync\":false"), || {
        format!("explain after ipvsadm -d: exit {code}, want 1 and {want:?}\n{text}")
    })?;
    println!("VMTEST   kproxy explain (ipvs): in sync, then the deleted real server named");
    Ok(())
}
