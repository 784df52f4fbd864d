//! The seeded Service generator of the differential run: same seed, same Services.

use k8s_openapi::api::core::v1::Service;
use serde_json::json;

use crate::net::{POD_TCP, POD_UDP};

/// splitmix64: tiny, seedable, and stable across Rust and crate versions (a seed printed
/// in a report must reproduce the same cluster forever).
pub struct Rng(u64);

impl Rng {
    /// A generator for `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform index below `n` (n > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
}

/// Service types the generator covers so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SvcType {
    /// ClusterIP.
    ClusterIp,
    /// NodePort.
    NodePort,
    /// LoadBalancer (the lab sets the ingress IP as a cloud controller would).
    LoadBalancer,
}

/// One generated Service.
#[derive(Debug, Clone)]
pub struct SvcSpec {
    /// Name (`s<index>`).
    pub name: String,
    /// Type.
    pub kind: SvcType,
    /// `TCP` or `UDP`.
    pub proto: &'static str,
    /// The pod label it selects (`none` selects no pod: a Service without endpoints).
    pub selector: &'static str,
    /// externalTrafficPolicy: Local.
    pub etp_local: bool,
    /// internalTrafficPolicy: Local.
    pub itp_local: bool,
    /// sessionAffinity: ClientIP.
    pub affinity: bool,
    /// The Service port.
    pub port: u16,
    /// The ingress IP of a LoadBalancer.
    pub lb_ip: Option<String>,
}

/// Which pods each selector picks (see `api::pod_labels`).
const SELECTORS: [&str; 4] = ["all", "n1", "n23", "none"];

/// `n` Services from `seed`.
pub fn generate(seed: u64, n: usize) -> Vec<SvcSpec> {
    let mut rng = Rng::new(seed);
    (0..n)
        .map(|i| {
            let kind = [SvcType::ClusterIp, SvcType::NodePort, SvcType::LoadBalancer][rng.below(3)];
            let external = kind != SvcType::ClusterIp;
            SvcSpec {
                name: format!("s{i}"),
                kind,
                proto: if rng.chance(30) { "UDP" } else { "TCP" },
                selector: SELECTORS[rng.below(SELECTORS.len())],
                etp_local: external && rng.chance(35),
                itp_local: rng.chance(20),
                affinity: rng.chance(20),
                port: 80 + i as u16,
                // 198.19.200.0/24: the plan's LoadBalancer range.
                lb_ip: (kind == SvcType::LoadBalancer).then(|| format!("198.19.200.{}", 1 + i % 250)),
            }
        })
        .collect()
}

impl SvcSpec {
    /// The Service object (the API server allocates the ClusterIP and NodePorts).
    pub fn to_service(&self) -> Result<Service, String> {
        let target = if self.proto == "TCP" { POD_TCP } else { POD_UDP };
        let mut spec = json!({
            "type": match self.kind {
                SvcType::ClusterIp => "ClusterIP",
                SvcType::NodePort => "NodePort",
                SvcType::LoadBalancer => "LoadBalancer",
            },
            "selector": {self.selector: "yes"},
            "ports": [{"name": "p", "port": self.port, "targetPort": target, "protocol": self.proto}],
        });
        if self.etp_local {
            spec["externalTrafficPolicy"] = json!("Local");
        }
        if self.itp_local {
            spec["internalTrafficPolicy"] = json!("Local");
        }
        if self.affinity {
            spec["sessionAffinity"] = json!("ClientIP");
        }
        serde_json::from_value(json!({"metadata": {"name": self.name}, "spec": spec}))
            .map_err(|e| format!("building Service {}: {e}", self.name))
    }

    /// A one-line description for difference reports.
    pub fn describe(&self) -> String {
        let mut s = format!("{:?} {} selector={}", self.kind, self.proto, self.selector);
        for (on, what) in [(self.etp_local, "eTP=Local"), (self.itp_local, "iTP=Local"), (self.affinity, "affinity=ClientIP")] {
            if on {
                s.push(' ');
                s.push_str(what);
            }
        }
        s
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_services() {
        let a: Vec<String> = generate(7, 20).iter().map(SvcSpec::describe).collect();
        let b: Vec<String> = generate(7, 20).iter().map(SvcSpec::describe).collect();
        let c: Vec<String> = generate(8, 20).iter().map(SvcSpec::describe).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
    }
}
