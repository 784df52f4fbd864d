//! In-VM cases about configuration: timeouts and sysctls, the seed configurations through
//! the config parser and through the `kproxy` binary.

use std::net::IpAddr;
use std::time::Duration;

use kproxy_core::backend::ProxyBackend;
use kproxy_core::model::*;
use kproxy_ipvs::IpvsConfig;

use crate::cases::*;
use crate::netns::Netns;
use crate::topo::{self, tcp_query, Topology};

/// Timeouts and sysctls from the configuration.
pub fn timeouts_and_sysctls() -> R {
    let t = Topology::new(1)?;
    let cfg = IpvsConfig {
        strict_arp: true,
        tcp_timeout: Duration::from_secs(900),
        tcp_fin_timeout: Duration::from_secs(30),
        udp_timeout: Duration::from_secs(300),
        ..IpvsConfig::default()
    };
    let st = state(
        &[service(
            "a",
            Protocol::Tcp,
            "198.19.160.20",
            80,
            &pods(&[0]),
        )],
        NodePortAddresses::Primary,
    );
    let be = backend(&t.node, cfg)?;
    let (_be, r) = inside(&t.node, be, move |b| b.sync_full(&st))?;
    r.map_err(|e| e.to_string())?;
    let out = ipvsadm(&t.node, &["-L", "--timeout"])?;
    ensure(out.contains("Timeout (tcp tcpfin udp): 900 30 300"), || {
        format!("timeouts: {out}")
    })?;
    check_sysctls(
        &t.node,
        &[
            ("net/ipv4/conf/all/arp_ignore", "1"),
            ("net/ipv4/conf/all/arp_announce", "2"),
            ("net/ipv4/vs/conntrack", "1"),
        ],
    )
}

/// What the seed's IPVS configs set on the node: the strictARP sysctls and, when given,
/// the IPVS timeouts (`ipvsadm -L --timeout` must contain `timeouts`). Returns the part of
/// the result line naming the timeouts checked.
fn check_seed_node_settings(
    node: &Netns,
    name: &str,
    timeouts: Option<&str>,
) -> Result<&'static str, String> {
    check_sysctls(
        node,
        &[
            ("net/ipv4/conf/all/arp_ignore", "1"),
            ("net/ipv4/conf/all/arp_announce", "2"),
        ],
    )?;
    let Some(want) = timeouts else {
        return Ok("");
    };
    let out = ipvsadm(node, &["-L", "--timeout"])?;
    ensure(out.contains(want), || format!("{name}: {out}"))?;
    Ok(", tcp 900s / udp 300s")
}

fn check_sysctls(node: &Netns, want: &[(&'static str, &'static str)]) -> R {
    let want = want.to_vec();
    node.run(move || {
        for (path, value) in want {
            let got = std::fs::read_to_string(format!("/proc/sys/{path}"))
                .map_err(|e| format!("{path}: {e}"))?;
            ensure(got.trim() == value, || {
                format!("{path} = {}, expected {value}", got.trim())
            })?;
        }
        Ok(())
    })?
}

/// The seed's production (6.1) and large-cluster (6.3) configurations, loaded by kproxy's
/// config parser, drive the backend: rr, strict ARP, and (6.3) tcp 900s / udp 300s.
pub fn seed_configs() -> R {
    for (name, yaml, timeouts) in [
        ("production (6.1)", crate::seed::PRODUCTION, None),
        (
            "large-cluster (6.3)",
            crate::seed::LARGE_CLUSTER,
            Some("Timeout (tcp tcpfin udp): 900 120 300"),
        ),
    ] {
        let parsed = kproxy_core::config::parse(yaml, name).map_err(|e| format!("{name}: {e}"))?;
        ensure(parsed.config.mode == "ipvs", || {
            format!("{name}: mode {}", parsed.config.mode)
        })?;
        let cfg = IpvsConfig::from_kube(&parsed.config.ipvs).map_err(|e| format!("{name}: {e}"))?;
        let t = Topology::new(2)?;
        let mut s = service("web", Protocol::Tcp, "198.19.160.50", 80, &pods(&[0, 1]));
        s.node_port = Some(30050);
        let mut st = state(&[s], NodePortAddresses::Primary);
        st.settings = parsed
            .config
            .proxy_settings("node".into(), vec![ip(topo::NODE_IP)]);
        let be = backend(&t.node, cfg)?;
        let (_be, r) = inside(&t.node, be, move |b| b.sync_full(&st))?;
        r.map_err(|e| format!("{name}: {e}"))?;
        let answers: Vec<_> = (0..4)
            .map(|_| tcp_query(&t.ext, sa(ip(topo::NODE_IP), 30050)))
            .collect::<Result<_, _>>()?;
        let c = count(&answers);
        ensure(c.len() == 2 && c.values().all(|n| *n == 2), || {
            format!("{name}: rr over NodePort: {c:?}")
        })?;
        witness(
            &t.node,
            &[
                "TCP 198.19.160.50:80 rr",
                "TCP 198.19.0.2:30050 rr",
                "TCP 198.19.64.1:30050 rr",
            ],
            &[],
        )?;
        let timeouts_checked = check_seed_node_settings(&t.node, name, timeouts)?;
        println!(
            "VMTEST   {name}: rr, strictARP sysctls{} verified",
            timeouts_checked
        );
    }
    Ok(())
}

/// The `kproxy` binary itself, `--once` with the seed's production (6.1) and large-cluster
/// (6.3) configurations against `examples/manifests`, inside the node namespace: traffic
/// and `ipvsadm -Ln` show what it programmed.
pub fn kproxy_binary_seed_configs() -> R {
    let kproxy = "/usr/bin/kproxy";
    ensure(std::path::Path::new(kproxy).is_file(), || {
        format!("{kproxy} is not in the initramfs")
    })?;
    for (name, config, timeouts) in [
        ("production (6.1)", "/examples/config/production.yaml", None),
        (
            "large-cluster (6.3)",
            "/examples/config/large-cluster.yaml",
            Some("Timeout (tcp tcpfin udp): 900 120 300"),
        ),
    ] {
        // The pods of examples/manifests (pod1..pod3 on node-1).
        let pods: Vec<(String, IpAddr, IpAddr)> = (1..=3)
            .map(|i| {
                (
                    format!("pod{i}"),
                    ip(&format!("198.18.0.1{i}")),
                    ip(&format!("2001:db8:a::1{i}")),
                )
            })
            .collect();
        let t = Topology::with_pods(&pods)?;
        let args = [
            "--config",
            config,
            "--manifests",
            "/examples/manifests",
            "--once",
            "--hostname-override",
            "node-1",
        ];
        t.node
            .exec(kproxy, &args)
            .map_err(|e| format!("{name}: kproxy --once failed: {e}"))?;
        let c = count(
            &(0..3)
                .map(|_| tcp_query(&t.ext, sa(ip("198.19.160.10"), 80)))
                .collect::<Result<Vec<_>, _>>()?,
        );
        ensure(c.len() == 3, || {
            format!("{name}: rr over pod1..pod3: {c:?}")
        })?;
        tcp_query(&t.ext, sa(ip(topo::NODE_IP), 30080))
            .map_err(|e| format!("{name}: NodePort 30080: {e}"))?;
        tcp_query(&t.ext, sa(ip("2001:db8:b::10"), 80))
            .map_err(|e| format!("{name}: IPv6 ClusterIP: {e}"))?;
        let sticky = count(
            &(0..3)
                .map(|_| tcp_query(&t.ext, sa(ip("198.19.160.12"), 80)))
                .collect::<Result<Vec<_>, _>>()?,
        );
        ensure(sticky.len() == 1, || {
            format!("{name}: sessionAffinity: {sticky:?}")
        })?;
        witness(
            &t.node,
            &[
                "TCP 198.19.160.10:80 rr",
                "UDP 198.19.160.10:53 rr",
                "-> 198.18.0.11:8080 Masq 1",
                "-> 198.18.0.13:5353 Masq 1",
                "TCP 198.19.160.12:80 rr persistent 600",
                "TCP 198.19.0.2:30080 rr",
                "TCP [2001:db8:b::10]:80 rr",
            ],
            &[],
        )?;
        let timeouts_checked = check_seed_node_settings(&t.node, name, timeouts)?;
        println!(
            "VMTEST   kproxy --once {name}: rr, affinity, NodePort, IPv6, strictARP{} verified",
            timeouts_checked
        );
    }
    Ok(())
}
