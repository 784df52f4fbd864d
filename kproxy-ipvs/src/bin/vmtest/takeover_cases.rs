//! Taking over from kube-proxy's IPVS mode (issue 9 item 1; the iptables and nftables modes
//! are proven in tests/tests/takeover.rs, this kernel part only exists in the VM): the
//! `kproxy` binary in nftables mode removes kube-proxy's virtual servers and `kube-ipvs0`,
//! logging each once, and leaves a foreign dummy link alone.

use std::process::Command;

use crate::cases::{ensure, R};
use crate::netns::{Netns, IP, IPVSADM};

pub fn kube_proxy_ipvs_leftovers() -> R {
    let kproxy = "/usr/bin/kproxy";
    ensure(std::path::Path::new(kproxy).is_file(), || format!("{kproxy} is not in the initramfs"))?;
    let node = Netns::new("takeover")?;
    // kube-proxy's IPVS mode as it leaves a node: VIPs on kube-ipvs0, a virtual server each.
    node.ip("link add kube-ipvs0 type dummy")?;
    node.ip("addr add 198.19.160.10/32 dev kube-ipvs0")?;
    node.ip("link add admin0 type dummy")?;
    for args in [
        "-A -t 198.19.160.10:80 -s rr",
        "-a -t 198.19.160.10:80 -r 198.18.0.11:8080 -m",
        "-A -u [2001:db8:b::10]:53 -s rr",
    ] {
        node.exec(IPVSADM, &args.split_whitespace().collect::<Vec<_>>())?;
    }
    let out = Command::new(IP)
        .args(["netns", "exec", &node.name, kproxy, "--cleanup", "--proxy-mode", "nftables"])
        .output()
        .map_err(|e| format!("running kproxy --cleanup: {e}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    ensure(out.status.success(), || format!("kproxy --cleanup failed: {log}"))?;
    let left = node.exec(IPVSADM, &["-Ln"])?;
    ensure(!left.contains("TCP") && !left.contains("UDP"), || format!("virtual servers left: {left}"))?;
    ensure(node.ip("link show kube-ipvs0").is_err(), || "kube-ipvs0 is still there".into())?;
    node.ip("link show admin0").map_err(|e| format!("the foreign dummy link was removed: {e}"))?;
    for what in ["IPVS virtual server", "link kube-ipvs0"] {
        let n = log.lines().filter(|l| l.contains(&format!("Removed kube-proxy leftover: {what}"))).count();
        let want = if what == "link kube-ipvs0" { 1 } else { 2 };
        ensure(n == want, || format!("{what}: logged {n} times, want {want}:\n{log}"))?;
    }
    // A second run finds nothing of kube-proxy's.
    let out = Command::new(IP)
        .args(["netns", "exec", &node.name, kproxy, "--cleanup", "--proxy-mode", "nftables"])
        .output()
        .map_err(|e| format!("running kproxy --cleanup again: {e}"))?;
    let log = String::from_utf8_lossy(&out.stderr);
    ensure(out.status.success() && !log.contains("Removed kube-proxy leftover"), || format!("second run: {log}"))
}
