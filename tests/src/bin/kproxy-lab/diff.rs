//! The differential run: generated Services through the API, the same probes in the kproxy
//! world and the kube-proxy world, every differing outcome listed.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Service;
use kproxy_tests::{Netns, Proto};

use crate::gen::{generate, SvcSpec, SvcType};
use crate::net::{node_ip, node_name, World, NODES};
use crate::probe::{Outcome, Probe, Source};
use crate::{api, stopping, Lab};

/// Requests per probe; a probe whose outcomes differ is repeated with [`RETRY_REQUESTS`] more
/// in both worlds (which endpoints a few random picks reach varies from run to run).
const REQUESTS: usize = 6;
const RETRY_REQUESTS: usize = 24;
/// At most this many repeats: with 5 endpoints, 78 requests all missing one of them has a
/// probability of about 1e-7, so a difference left after them is the proxies'.
const RETRY_ROUNDS: usize = 3;
/// Probes run in parallel per world.
const WORKERS: usize = 4;

/// `--seed N --services N`.
pub struct Options {
    /// Generator seed.
    pub seed: u64,
    /// Number of Services.
    pub services: usize,
}

impl Options {
    /// Parses the differential's flags.
    pub fn parse(args: &[String]) -> Result<Options, String> {
        let mut o = Options { seed: 1, services: 40 };
        let mut it = args.iter();
        while let Some(a) = it.next() {
            let mut value = |flag: &str| -> Result<u64, String> {
                let v = it.next().ok_or(format!("{flag} needs a number"))?;
                v.parse().map_err(|_| format!("{flag} {v:?}: not a number"))
            };
            match a.as_str() {
                "--seed" => o.seed = value("--seed")?,
                "--services" => o.services = value("--services")? as usize,
                other => return Err(format!("unknown differential argument {other:?}")),
            }
        }
        if o.services == 0 || o.services > 250 {
            return Err(format!("--services {}: between 1 and 250 (LB IPs come from one /24)", o.services));
        }
        Ok(o)
    }
}

/// Runs it; returns whether every probe was identical.
pub fn run(lab: &Lab, rt: &tokio::runtime::Runtime, client: &kube::Client, o: &Options) -> Result<bool, String> {
    let t = Instant::now();
    let specs = generate(o.seed, o.services);
    let mut created = Vec::new();
    for s in &specs {
        created.push(rt.block_on(api::create_service(client, &s.to_service()?, s.lb_ip.as_deref()))?);
    }
    let names: BTreeSet<String> = specs.iter().map(|s| s.name.clone()).collect();
    rt.block_on(api::wait_slices(client, &names, Duration::from_secs(60)))?;
    let cluster_ips: Vec<String> = created.iter().filter_map(|s| s.spec.as_ref()?.cluster_ip.clone()).collect();
    wait_programmed(lab, &cluster_ips, Duration::from_secs(120))?;
    // EndpointSlices may still be arriving after the Services are in; kube-proxy's default
    // minSyncPeriod is 1 s.
    std::thread::sleep(Duration::from_secs(3));
    println!("differential: seed {}, {} Services written and programmed in {:.1?}", o.seed, specs.len(), t.elapsed());

    let probes = probes(&specs, &created)?;
    let t = Instant::now();
    let [kp, up] = [&lab.worlds[0].1, &lab.worlds[1].1].map(|w| w as &World);
    let (mut a, mut b) = std::thread::scope(|s| {
        let ha = s.spawn(|| run_all(kp, &probes, REQUESTS));
        let hb = s.spawn(|| run_all(up, &probes, REQUESTS));
        (ha.join(), hb.join())
    });
    let (a, b) = match (&mut a, &mut b) {
        (Ok(a), Ok(b)) => (a, b),
        _ => return Err("a probe thread panicked".into()),
    };
    if stopping() {
        return Err("interrupted".into());
    }
    let mut identical = 0;
    for (i, p) in probes.iter().enumerate() {
        for _ in 0..RETRY_ROUNDS {
            if a[i] == b[i] || stopping() {
                break;
            }
            // Repeat in both worlds: a few random picks may simply have missed an endpoint.
            a[i].merge(p.run(source_ns(kp, p.from), RETRY_REQUESTS, false));
            b[i].merge(p.run(source_ns(up, p.from), RETRY_REQUESTS, false));
        }
        if a[i] == b[i] {
            identical += 1;
            continue;
        }
        let s = &specs[p.service];
        println!("DIFF {} ({}) from {} to {} {:?} ({}):", s.name, s.describe(), p.from, p.what, p.proto, p.to);
        println!("  kproxy:              {}", a[i]);
        println!("  kube-proxy-nftables: {}", b[i]);
    }
    println!("differential: probes took {:.1?}", t.elapsed());
    for (label, outcomes) in [("kproxy", &*a), ("kube-proxy-nftables", &*b)] {
        println!("differential: {label}: {}", classes(&probes, outcomes));
    }
    println!("differential: {} probes, {identical} identical", probes.len());
    Ok(identical == probes.len())
}

/// Every probe of every Service: its ClusterIP from a pod, the node and the client; NodePorts
/// on every node from the client, on another node from a pod and on its own node from the
/// node; LoadBalancer IPs from the client and a pod.
fn probes(specs: &[SvcSpec], created: &[Service]) -> Result<Vec<Probe>, String> {
    let mut out = Vec::new();
    for (i, (s, svc)) in specs.iter().zip(created).enumerate() {
        let spec = svc.spec.as_ref().ok_or(format!("Service {} has no spec", s.name))?;
        let ip: IpAddr = spec
            .cluster_ip
            .as_deref()
            .and_then(|ip| ip.parse().ok())
            .ok_or(format!("Service {} has no ClusterIP", s.name))?;
        let proto = if s.proto == "TCP" { Proto::Tcp } else { Proto::Udp };
        let mut add = |from, to: SocketAddr, what: String| {
            out.push(Probe { service: i, from, to, proto, what, affinity: s.affinity })
        };
        for from in [Source::Pod, Source::Node, Source::Client] {
            add(from, SocketAddr::new(ip, s.port), "clusterIP".into());
        }
        if s.kind != SvcType::ClusterIp {
            let np = spec
                .ports
                .as_ref()
                .and_then(|p| p.first())
                .and_then(|p| p.node_port)
                .ok_or(format!("Service {} has no nodePort", s.name))? as u16;
            for n in 1..=NODES {
                add(Source::Client, SocketAddr::new(node_ip(n).into(), np), format!("nodePort {}", node_name(n)));
            }
            add(Source::Pod, SocketAddr::new(node_ip(2).into(), np), "nodePort node-2".into());
            add(Source::Node, SocketAddr::new(node_ip(1).into(), np), "nodePort node-1".into());
        }
        if let Some(lb) = &s.lb_ip {
            let lb: IpAddr = lb.parse().map_err(|e| format!("LB IP {lb}: {e}"))?;
            for from in [Source::Client, Source::Pod] {
                add(from, SocketAddr::new(lb, s.port), "loadBalancer IP".into());
            }
        }
    }
    Ok(out)
}

/// How many outcomes answered, were refused, dropped: shows what the probes exercised.
fn classes(probes: &[Probe], outcomes: &[Outcome]) -> String {
    let count = |f: &dyn Fn(&Probe, &Outcome) -> bool| probes.iter().zip(outcomes).filter(|(p, o)| f(p, o)).count();
    format!(
        "{} answered ({} with a source other than the sender's), {} refused, {} dropped, {} other errors{}",
        count(&|_, o| !o.servers.is_empty()),
        count(&|_, o| o.peers.iter().any(|c| c != "sender")),
        count(&|_, o| o.refused),
        count(&|_, o| o.dropped),
        count(&|_, o| !o.errors.is_empty()),
        probes
            .iter()
            .zip(outcomes)
            .find_map(|(p, o)| Some(format!(" (first: {} to {} {}: {})", p.from, p.what, p.to, o.errors.first()?)))
            .unwrap_or_default(),
    )
}

fn source_ns(w: &World, from: Source) -> &Netns {
    match from {
        Source::Pod => &w.client_pod,
        Source::Node => &w.nodes[0].ns,
        Source::Client => &w.client,
    }
}

/// Runs every probe in world `w`, [`WORKERS`] at a time; results in probe order.
fn run_all(w: &World, probes: &[Probe], requests: usize) -> Vec<Outcome> {
    let next = AtomicUsize::new(0);
    let results: Vec<std::sync::Mutex<Outcome>> = probes.iter().map(|_| Default::default()).collect();
    std::thread::scope(|s| {
        for _ in 0..WORKERS {
            s.spawn(|| loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= probes.len() || stopping() {
                    break;
                }
                let o = probes[i].run(source_ns(w, probes[i].from), requests, true);
                *results[i].lock().unwrap_or_else(|p| p.into_inner()) = o;
            });
        }
    });
    results.into_iter().map(|m| m.into_inner().unwrap_or_else(|p| p.into_inner())).collect()
}

/// Waits (bounded) until every node of every world has every ClusterIP in its ruleset.
fn wait_programmed(lab: &Lab, ips: &[String], timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    for (kind, world) in &lab.worlds {
        for node in &world.nodes {
            loop {
                let rules = kproxy_tests::nft_text(&node.ns).map_err(|e| e.to_string())?;
                let missing = ips.iter().filter(|ip| !rules.contains(&format!("{ip} "))).count();
                if missing == 0 {
                    break;
                }
                if Instant::now() >= deadline || stopping() {
                    return Err(format!(
                        "{} on {}: {missing} of {} ClusterIPs still not in its ruleset after {timeout:?}",
                        kind.label(),
                        node_name(node.index),
                        ips.len()
                    ));
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        }
    }
    Ok(())
}
