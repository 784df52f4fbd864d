//! What `kproxy explain` was asked about: `NAMESPACE/NAME`, or a destination
//! `VIP:PORT[/PROTO]` (`[IPv6]:PORT[/PROTO]`) that names the Service owning it.

use std::net::{IpAddr, SocketAddr};

use kproxy_core::model::{Protocol, ProxyState, ServicePort};

/// A parsed target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `NAMESPACE/NAME`.
    Name {
        /// Namespace.
        namespace: String,
        /// Name.
        name: String,
    },
    /// A destination: ClusterIP, ExternalIP, LoadBalancer IP, or node address and NodePort.
    Destination {
        /// Address.
        ip: IpAddr,
        /// Port.
        port: u16,
        /// Protocol, if given.
        protocol: Option<Protocol>,
    },
}

/// Parses a target; the error says what is wrong and what is expected.
pub fn parse(text: &str) -> Result<Target, String> {
    let (addr, proto) = match text.rsplit_once('/') {
        Some((a, p)) if ["tcp", "udp", "sctp"].contains(&p.to_ascii_lowercase().as_str()) => (a, Some(p.to_ascii_lowercase())),
        _ => (text, None),
    };
    if let Ok(sa) = addr.parse::<SocketAddr>() {
        let protocol = proto.map(|p| match p.as_str() {
            "udp" => Protocol::Udp,
            "sctp" => Protocol::Sctp,
            _ => Protocol::Tcp,
        });
        return Ok(Target::Destination { ip: sa.ip(), port: sa.port(), protocol });
    }
    match text.split_once('/') {
        Some((ns, name)) if !ns.is_empty() && !name.is_empty() && !name.contains('/') && !ns.contains(':') => {
            Ok(Target::Name { namespace: ns.into(), name: name.into() })
        }
        _ => Err(format!(
            "{text:?} is neither NAMESPACE/NAME nor a destination VIP:PORT[/tcp|udp|sctp] (IPv6: [VIP]:PORT); e.g. default/web or 198.19.0.10:80/tcp"
        )),
    }
}

/// Whether `sp` serves the destination (`node_port_on` says whether an address is one a
/// NodePort is served on).
fn serves(sp: &ServicePort, ip: IpAddr, port: u16, protocol: Option<Protocol>, node_port_on: &dyn Fn(&IpAddr) -> bool) -> bool {
    if protocol.is_some_and(|p| p != sp.name.protocol) {
        return false;
    }
    let vip = sp.cluster_ip == ip || sp.external_ips.contains(&ip) || sp.load_balancer_ips.contains(&ip);
    (vip && sp.port == port) || (sp.node_port == Some(port) && node_port_on(&ip))
}

/// The ports (both families) of the Service the target names, in state order; empty when
/// no Service matches. Also the `namespace/name` found.
pub fn select<'a>(state: &'a ProxyState, target: &Target, node_port_on: &dyn Fn(&IpAddr) -> bool) -> (Option<String>, Vec<&'a ServicePort>) {
    let owner = match target {
        Target::Name { namespace, name } => Some((namespace.clone(), name.clone())),
        Target::Destination { ip, port, protocol } => state
            .services
            .values()
            .find(|sp| serves(sp, *ip, *port, *protocol, node_port_on))
            .map(|sp| (sp.name.namespace.clone(), sp.name.name.clone())),
    };
    let Some((ns, name)) = owner else { return (None, Vec::new()) };
    let ports: Vec<&ServicePort> = state.services.values().filter(|sp| sp.name.namespace == ns && sp.name.name == name).collect();
    (Some(format!("{ns}/{name}")), ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_destinations_parse() {
        assert_eq!(parse("ns/web"), Ok(Target::Name { namespace: "ns".into(), name: "web".into() }));
        assert_eq!(
            parse("198.19.0.10:80/UDP"),
            Ok(Target::Destination { ip: "198.19.0.10".parse().unwrap(), port: 80, protocol: Some(Protocol::Udp) })
        );
        assert_eq!(parse("[2001:db8::10]:443"), Ok(Target::Destination { ip: "2001:db8::10".parse().unwrap(), port: 443, protocol: None }));
        for bad in ["web", "ns/", "/web", "198.19.0.10", "a/b/c", "198.19.0.10:80/icmp"] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
