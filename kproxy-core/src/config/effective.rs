//! What a validated configuration means for the rest of kproxy: the backend to run, the
//! settings of the mode's section, NodePort addresses, the local-traffic detector, and the
//! effective configuration as YAML. Pure functions of the configuration.

use std::net::IpAddr;

use ipnet::IpNet;

use super::duration::GoDuration;
use super::types::KubeProxyConfiguration;
use crate::model::{LocalDetector, NodePortAddresses, ProxySettings};

/// The kernel backend that serves the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Mode {
    /// nftables (modes `nftables`, `iptables` and blank).
    Nftables,
    /// IPVS (mode `ipvs`).
    Ipvs,
}

/// The backend and how the mode was asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct EffectiveMode {
    /// Which backend runs.
    pub backend: Mode,
    /// `mode: iptables`: served by the nftables backend with iptables-mode semantics
    /// (settings from the `iptables:` section; empty nodePortAddresses means all addresses).
    pub iptables_compat: bool,
}

/// The content type kproxy's API client sends: JSON (protobuf is not implemented, so
/// `application/vnd.kubernetes.protobuf` falls back to this).
pub const EFFECTIVE_CONTENT_TYPE: &str = "application/json";

impl KubeProxyConfiguration {
    /// The backend for `mode`: blank and `nftables` -> nftables (kproxy's default, where
    /// upstream's blank still means iptables), `iptables` -> nftables with iptables
    /// semantics, `ipvs` -> IPVS. Call on a validated configuration (other modes were rejected).
    pub fn effective_mode(&self) -> EffectiveMode {
        match self.mode.as_str() {
            "ipvs" => EffectiveMode { backend: Mode::Ipvs, iptables_compat: false },
            "iptables" => EffectiveMode { backend: Mode::Nftables, iptables_compat: true },
            _ => EffectiveMode { backend: Mode::Nftables, iptables_compat: false },
        }
    }

    /// `masqueradeAll` of the mode: the `iptables:` section for modes iptables and ipvs
    /// (upstream's IPVS proxier takes it from there), else `nftables:`.
    pub fn masquerade_all(&self) -> bool {
        if self.uses_iptables_masquerade() {
            self.iptables.masquerade_all
        } else {
            self.nftables.masquerade_all
        }
    }

    /// `masqueradeBit` of the mode (same sections as [`Self::masquerade_all`]); validated to be
    /// in [0, 31].
    pub fn masquerade_bit(&self) -> u8 {
        let bit =
            if self.uses_iptables_masquerade() { self.iptables.masquerade_bit } else { self.nftables.masquerade_bit };
        bit.clamp(0, 31) as u8 // validated to [0, 31]; clamp keeps an unvalidated value harmless
    }

    fn uses_iptables_masquerade(&self) -> bool {
        matches!(self.mode.as_str(), "iptables" | "ipvs")
    }

    /// `syncPeriod` of the mode's section (`iptables:`, `ipvs:` or `nftables:`).
    pub fn sync_period(&self) -> GoDuration {
        match self.mode.as_str() {
            "iptables" => self.iptables.sync_period,
            "ipvs" => self.ipvs.sync_period,
            _ => self.nftables.sync_period,
        }
    }

    /// `minSyncPeriod` of the mode's section.
    pub fn min_sync_period(&self) -> GoDuration {
        match self.mode.as_str() {
            "iptables" => self.iptables.min_sync_period,
            "ipvs" => self.ipvs.min_sync_period,
            _ => self.nftables.min_sync_period,
        }
    }

    /// Where NodePorts answer. `primary` -> the node's primary IPs; CIDRs -> local addresses
    /// inside them; the keywords `all` (`0.0.0.0/0`, `::/0`) and `localhost` (`127.0.0.0/8`,
    /// `::1/128`, which backends skip: loopback NodePorts are not served) expand to CIDRs.
    /// An empty list means `primary` in nftables mode, and every address in modes iptables and
    /// ipvs, as upstream.
    pub fn node_port_addresses(&self) -> NodePortAddresses {
        if self.node_port_addresses.iter().any(|a| a == "primary") {
            return NodePortAddresses::Primary;
        }
        if self.node_port_addresses.is_empty() {
            return match self.mode.as_str() {
                "iptables" | "ipvs" => NodePortAddresses::Cidrs(vec![any_v4(), any_v6()]),
                _ => NodePortAddresses::Primary,
            };
        }
        let mut nets = Vec::new();
        for entry in &self.node_port_addresses {
            match entry.trim() {
                "all" => nets.extend([any_v4(), any_v6()]),
                "localhost" => nets.extend(["127.0.0.0/8", "::1/128"].iter().filter_map(|n| n.parse::<IpNet>().ok())),
                cidr => nets.extend(cidr.parse::<IpNet>().ok().map(|n| n.trunc())),
            }
        }
        NodePortAddresses::Cidrs(nets)
    }

    /// The pod networks of `clusterCIDR` (comma-separated, one per family), host bits cleared.
    pub fn cluster_cidrs(&self) -> Vec<IpNet> {
        self.cluster_cidr
            .split(',')
            .filter(|s| !s.trim().is_empty())
            .filter_map(|s| s.trim().parse::<IpNet>().ok())
            .map(|n| n.trunc())
            .collect()
    }

    /// How pod traffic is recognised. ClusterCIDR mode (the default) without a clusterCIDR
    /// detects nothing, as upstream. NodeCIDR mode returns an empty list: the caller fills in
    /// the Node's `spec.podCIDRs`.
    pub fn local_detector(&self) -> LocalDetector {
        match self.detect_local_mode.as_str() {
            "NodeCIDR" => LocalDetector::NodeCidrs(Vec::new()),
            "BridgeInterface" => LocalDetector::BridgeInterface(self.detect_local.bridge_interface.clone()),
            "InterfaceNamePrefix" => {
                LocalDetector::InterfaceNamePrefix(self.detect_local.interface_name_prefix.clone())
            }
            _ => {
                let cidrs = self.cluster_cidrs();
                if cidrs.is_empty() {
                    LocalDetector::None
                } else {
                    LocalDetector::ClusterCidrs(cidrs)
                }
            }
        }
    }

    /// The content type the API client actually uses ([`EFFECTIVE_CONTENT_TYPE`]).
    pub fn effective_content_type(&self) -> &'static str {
        EFFECTIVE_CONTENT_TYPE
    }

    /// Node-wide backend settings from this configuration plus facts about the node.
    pub fn proxy_settings(&self, node_name: String, node_ips: Vec<IpAddr>) -> ProxySettings {
        ProxySettings {
            node_name,
            node_ips,
            masquerade_all: self.masquerade_all(),
            masquerade_bit: self.masquerade_bit(),
            local_detector: self.local_detector(),
            node_port_addresses: self.node_port_addresses(),
        }
    }

    /// The configuration as a YAML document, keys sorted like upstream's `--write-config-to`
    /// output. Parsing it back gives the same configuration.
    pub fn to_yaml(&self) -> String {
        // Serializing plain data to a JSON value cannot fail (string keys, finite numbers).
        let mut value = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        // f32 -> f64 would print 0.1 as 0.10000000149011612: go through the f32's text.
        if let Some(qps) = value.pointer_mut("/clientConnection/qps") {
            let text = self.client_connection.qps.to_string();
            if let Some(n) = text.parse::<f64>().ok().and_then(serde_json::Number::from_f64) {
                *qps = serde_json::Value::Number(n);
            }
        }
        // YAML 1.2 quoting: `bindAddress: 0.0.0.0` stays plain (the 1.1 heuristics would quote
        // it as a possible float; Go's reader takes it as a string either way).
        let mut options = serde_saphyr::SerializerOptions::default();
        options.yaml_12 = true;
        options.no_lang_directive = true;
        // Plain maps, sequences and scalars always serialize; an empty string is unreachable.
        serde_saphyr::to_string_with_options(&Written(&value), options).unwrap_or_default()
    }
}

/// A configuration as `--write-config-to` writes it: keys sorted at every level (serde_json's
/// map keeps insertion order when another crate turns on `preserve_order`), and strings that
/// would read back as something else (`''`, `'0'`) single-quoted, as this output has always
/// had them.
struct Written<'a>(&'a serde_json::Value);

impl serde::Serialize for Written<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{SerializeMap, SerializeSeq};
        match self.0 {
            serde_json::Value::Object(map) => {
                let mut entries: Vec<_> = map.iter().collect();
                entries.sort_by(|a, b| a.0.cmp(b.0));
                let mut out = s.serialize_map(Some(entries.len()))?;
                for (key, value) in entries {
                    out.serialize_entry(key, &Written(value))?;
                }
                out.end()
            }
            serde_json::Value::Array(items) => {
                let mut out = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    out.serialize_element(&Written(item))?;
                }
                out.end()
            }
            serde_json::Value::String(text) if needs_quotes(text) => serde_saphyr::SingleQuoted(text).serialize(s),
            scalar => scalar.serialize(s),
        }
    }
}

/// Whether `text` written plain would read back as something other than this string (a
/// number, a boolean, null). Control characters are left to the serializer's double quotes.
fn needs_quotes(text: &str) -> bool {
    if text.chars().any(char::is_control) {
        return false;
    }
    !matches!(serde_saphyr::from_str::<serde_json::Value>(text), Ok(serde_json::Value::String(read)) if read == text)
}

fn any_v4() -> IpNet {
    IpNet::V4(ipnet::Ipv4Net::default())
}

fn any_v6() -> IpNet {
    IpNet::V6(ipnet::Ipv6Net::default())
}

#[cfg(test)]
mod tests {
    use super::needs_quotes;

    #[test]
    fn strings_that_read_back_as_another_type_are_quoted() {
        for text in ["", "0", "1.5", "true", "null", "~"] {
            assert!(needs_quotes(text), "{text:?}");
        }
        for text in ["0.0.0.0", "15m0s", "ipvs", "198.18.0.0/16", "application/vnd.kubernetes.protobuf"] {
            assert!(!needs_quotes(text), "{text:?}");
        }
    }
}
