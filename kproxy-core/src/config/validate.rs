//! Upstream's validation rules (`pkg/proxy/apis/config/validation`), each problem reported
//! with where the offending value was set. Every rule runs; all problems are returned.

use std::net::IpAddr;

use ipnet::IpNet;

use super::decode::Origins;
use super::duration::GoDuration;
use super::error::FieldError;
use super::suggest::closest;
use super::types::KubeProxyConfiguration;

/// IPVS schedulers the kernel ships (upstream's list plus Maglev hashing, `mh`).
pub const IPVS_SCHEDULERS: &[&str] = &["rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sh", "dh", "sed", "nq", "mh"];

/// Proxy modes kproxy accepts (blank means nftables).
pub const PROXY_MODES: &[&str] = &["nftables", "iptables", "ipvs"];

/// `detectLocalMode` values (blank means ClusterCIDR).
pub const LOCAL_MODES: &[&str] = &["ClusterCIDR", "NodeCIDR", "BridgeInterface", "InterfaceNamePrefix"];

struct Rules<'a> {
    origins: &'a Origins,
    errors: Vec<FieldError>,
}

impl Rules<'_> {
    /// Run `checks`; for a section of a mode not in use, keep only the errors about fields
    /// that were written (a default never needs fixing there).
    fn section(&mut self, unused: bool, checks: impl FnOnce(&mut Self)) {
        let before = self.errors.len();
        checks(self);
        if unused {
            let origins = self.origins;
            let mut i = before;
            while i < self.errors.len() {
                if origins.is_set(self.errors[i].path.split('[').next().unwrap_or_default()) {
                    self.errors[i].message.push_str(" (checked although this mode is not in use)");
                    i += 1;
                } else {
                    self.errors.remove(i);
                }
            }
        }
    }

    fn fail(&mut self, path: &str, message: impl Into<String>) {
        let origin = self.origins.get(path).clone();
        self.errors.push(FieldError { origin, path: path.to_string(), message: message.into() });
    }

    /// Like [`Rules::fail`], but when `path` was never set (its default is the problem),
    /// point at where `cause` was set instead: that is what the operator must change.
    fn fail_caused_by(&mut self, path: &str, cause: &str, message: impl Into<String>) {
        let origin = if self.origins.is_set(path) { self.origins.get(path) } else { self.origins.get(cause) };
        self.errors.push(FieldError { origin: origin.clone(), path: path.to_string(), message: message.into() });
    }

    fn at_least_zero(&mut self, path: &str, value: GoDuration) {
        if value.is_negative() {
            self.fail(path, format!("{value} must be greater than or equal to 0"));
        }
    }

    fn above_zero(&mut self, path: &str, value: GoDuration) {
        if value.is_negative() || value.is_zero() {
            self.fail(path, format!("{value} must be greater than 0"));
        }
    }

    fn int_range(&mut self, path: &str, value: i32, min: i32, max: i32) {
        if value < min || value > max {
            self.fail(path, format!("{value} must be within the range [{min}, {max}]"));
        }
    }

    fn periods(&mut self, section: &str, sync: GoDuration, min_sync: GoDuration) {
        let sync_path = format!("{section}.syncPeriod");
        let min_path = format!("{section}.minSyncPeriod");
        self.above_zero(&sync_path, sync);
        self.at_least_zero(&min_path, min_sync);
        if min_sync > sync {
            // Upstream names syncPeriod; if only minSyncPeriod was written, point there.
            let message = format!(
                "{section}.syncPeriod ({sync}) must be greater than or equal to {section}.minSyncPeriod ({min_sync})"
            );
            if self.origins.is_set(&sync_path) || !self.origins.is_set(&min_path) {
                self.fail(&sync_path, message);
            } else {
                self.fail(&min_path, message);
            }
        }
    }

    fn one_of(&mut self, path: &str, value: &str, allowed: &[&str], blank_means: &str) {
        if value.is_empty() || allowed.contains(&value) {
            return;
        }
        let mut message = format!("{value:?} is not one of {} (blank means {blank_means})", allowed.join(", "));
        if let Some(s) = closest(value, allowed) {
            message.push_str(&format!("; did you mean {s:?}?"));
        }
        self.fail(path, message);
    }

    fn ip(&mut self, path: &str, value: &str) {
        if value.parse::<IpAddr>().is_err() {
            self.fail(path, format!("{value:?} is not a valid IP address"));
        }
    }

    fn host_port(&mut self, path: &str, value: &str) {
        let Some((host, port)) = split_host_port(value) else {
            self.fail(path, format!("{value:?} must be IP:port (e.g. 0.0.0.0:10256 or [::]:10256)"));
            return;
        };
        if host.parse::<IpAddr>().is_err() {
            self.fail(path, format!("{host:?} in {value:?} must be a valid IP"));
        }
        if !matches!(port.parse::<u32>(), Ok(1..=65535)) {
            self.fail(path, format!("port {port:?} in {value:?} must be a valid port (1-65535)"));
        }
    }

    fn cidr(&mut self, path: &str, value: &str) -> Option<IpNet> {
        match value.trim().parse::<IpNet>() {
            Ok(net) => Some(net),
            Err(_) => {
                self.fail(path, format!("{value:?} must be a valid CIDR (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)"));
                None
            }
        }
    }
}

/// Go's `net.SplitHostPort` for the forms validation accepts: `host:port`, `[v6]:port`.
fn split_host_port(value: &str) -> Option<(&str, &str)> {
    if let Some(rest) = value.strip_prefix('[') {
        let (host, after) = rest.split_once(']')?;
        let port = after.strip_prefix(':')?;
        return Some((host, port));
    }
    let (host, port) = value.rsplit_once(':')?;
    (!host.contains(':')).then_some((host, port))
}

/// Upstream's `ParsePortRange`: empty, `N`, `A-B` with A <= B, or `A+N`; ports 0..=65535.
pub(crate) fn port_range_ok(value: &str) -> bool {
    let value = value.trim();
    if value.is_empty() {
        return true;
    }
    let port = |s: &str| s.parse::<u32>().ok().filter(|p| *p <= 65535);
    if let Some((low, high)) = value.split_once('-') {
        matches!((port(low), port(high)), (Some(l), Some(h)) if l <= h)
    } else if let Some((base, size)) = value.split_once('+') {
        matches!((port(base), size.parse::<u32>()), (Some(b), Ok(n)) if b + n <= 65535)
    } else {
        port(value).is_some()
    }
}

/// Run every rule; an empty result means the configuration is valid.
pub(crate) fn validate(c: &KubeProxyConfiguration, origins: &Origins) -> Vec<FieldError> {
    let mut r = Rules { origins, errors: Vec::new() };

    r.int_range("iptables.masqueradeBit", c.iptables.masquerade_bit, 0, 31);
    r.int_range("nftables.masqueradeBit", c.nftables.masquerade_bit, 0, 31);
    // Upstream checks only the mode in use; kproxy also range-checks the sections of the other
    // modes, but only the fields the operator wrote (their defaults are always in range), so a
    // typo in a section not in use today does not wait for the day the mode changes.
    let mode = match c.mode.as_str() {
        "ipvs" => "ipvs",
        "iptables" => "iptables",
        _ => "nftables",
    };
    for section in ["iptables", "nftables", "ipvs"] {
        r.section(section != mode, |r| match section {
            "iptables" => r.periods("iptables", c.iptables.sync_period, c.iptables.min_sync_period),
            "nftables" => r.periods("nftables", c.nftables.sync_period, c.nftables.min_sync_period),
            _ => {
                r.periods("ipvs", c.ipvs.sync_period, c.ipvs.min_sync_period);
                r.at_least_zero("ipvs.tcpTimeout", c.ipvs.tcp_timeout);
                r.at_least_zero("ipvs.tcpFinTimeout", c.ipvs.tcp_fin_timeout);
                r.at_least_zero("ipvs.udpTimeout", c.ipvs.udp_timeout);
                r.one_of("ipvs.scheduler", &c.ipvs.scheduler, IPVS_SCHEDULERS, "rr");
                for (i, cidr) in c.ipvs.exclude_cidrs.iter().enumerate() {
                    r.cidr(&format!("ipvs.excludeCIDRs[{i}]"), cidr);
                }
            }
        });
    }
    let node_name = c.hostname_override.trim().to_lowercase();
    if !node_name.is_empty() {
        // It must be a valid Node name (DNS-1123 subdomain); checked as it is used: trimmed and
        // lower-cased, as upstream's GetHostname does, so `Node-1` stays accepted.
        if let Err(why) = crate::names::dns1123_subdomain(&node_name) {
            r.fail("hostnameOverride", format!("{:?} is not a valid node name: {why}", c.hostname_override));
        }
    }

    let ct = &c.conntrack;
    if ct.max_per_core < 0 {
        r.fail("conntrack.maxPerCore", format!("{} must be greater than or equal to 0", ct.max_per_core));
    }
    if ct.min < 0 {
        r.fail("conntrack.min", format!("{} must be greater than or equal to 0", ct.min));
    }
    r.at_least_zero("conntrack.tcpEstablishedTimeout", ct.tcp_established_timeout);
    r.at_least_zero("conntrack.tcpCloseWaitTimeout", ct.tcp_close_wait_timeout);
    r.at_least_zero("conntrack.udpTimeout", ct.udp_timeout);
    r.at_least_zero("conntrack.udpStreamTimeout", ct.udp_stream_timeout);

    match c.mode.as_str() {
        "userspace" => r.fail(
            "mode",
            "\"userspace\" is no longer supported (upstream removed the userspace proxy in Kubernetes 1.26); use \"nftables\"",
        ),
        "kernelspace" => r.fail("mode", "\"kernelspace\" is the Windows proxy mode; on Linux use \"nftables\""),
        mode => r.one_of("mode", mode, PROXY_MODES, "nftables"),
    }

    if c.client_connection.burst < 0 {
        r.fail("clientConnection.burst", format!("{} must be greater than or equal to 0", c.client_connection.burst));
    }
    r.int_range("oomScoreAdj", c.oom_score_adj, -1000, 1000);
    if let Some(t) = c.udp_idle_timeout {
        r.above_zero("udpIdleTimeout", t);
    }
    r.above_zero("configSyncPeriod", c.config_sync_period);
    r.ip("bindAddress", &c.bind_address);
    if !c.healthz_bind_address.is_empty() {
        r.host_port("healthzBindAddress", &c.healthz_bind_address);
    }
    r.host_port("metricsBindAddress", &c.metrics_bind_address);

    if !port_range_ok(&c.port_range) {
        r.fail("portRange", format!("{:?} must be a valid port range (e.g. 30000-32767)", c.port_range));
    }
    node_port_addresses(&mut r, &c.node_port_addresses);

    let version = &c.show_hidden_metrics_for_version;
    let version_ok = version.is_empty()
        || version.split_once('.').is_some_and(|(major, minor)| {
            [major, minor].iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        });
    if !version_ok {
        r.fail(
            "showHiddenMetricsForVersion",
            format!("{version:?} must be a version of the form <major>.<minor>, e.g. 1.33"),
        );
    }

    r.one_of("detectLocalMode", &c.detect_local_mode, LOCAL_MODES, "ClusterCIDR");
    match c.detect_local_mode.as_str() {
        "BridgeInterface" if c.detect_local.bridge_interface.is_empty() => r.fail_caused_by(
            "detectLocal.bridgeInterface",
            "detectLocalMode",
            "must not be empty when detectLocalMode is BridgeInterface (set detectLocal.bridgeInterface or --pod-bridge-interface)",
        ),
        "InterfaceNamePrefix" if c.detect_local.interface_name_prefix.is_empty() => r.fail_caused_by(
            "detectLocal.interfaceNamePrefix",
            "detectLocalMode",
            "must not be empty when detectLocalMode is InterfaceNamePrefix (set detectLocal.interfaceNamePrefix or --pod-interface-name-prefix)",
        ),
        _ => {}
    }
    cluster_cidr(&mut r, &c.cluster_cidr);

    if !["text", "json"].contains(&c.logging.format.as_str()) {
        r.fail("logging.format", format!("{:?} is not one of text, json", c.logging.format));
    }
    r.above_zero("logging.flushFrequency", c.logging.flush_frequency);
    r.errors
}

fn node_port_addresses(r: &mut Rules<'_>, list: &[String]) {
    for (i, entry) in list.iter().enumerate() {
        let path = format!("nodePortAddresses[{i}]");
        match entry.as_str() {
            "primary" if list.len() != 1 => r.fail(&path, "can't use both 'primary' and CIDRs"),
            // Keywords of newer upstream releases: all = 0.0.0.0/0 + ::/0, localhost = loopback.
            "primary" | "all" | "localhost" => {}
            _ => {
                r.cidr(&path, entry);
            }
        }
    }
}

fn cluster_cidr(r: &mut Rules<'_>, value: &str) {
    if value.is_empty() {
        return;
    }
    let parts: Vec<&str> = value.split(',').collect();
    if parts.len() > 2 {
        r.fail(
            "clusterCIDR",
            format!("{value:?} must be a single CIDR or a dual-stack pair (e.g. 10.100.0.0/16,fde4:8dba:82e1::/48)"),
        );
        return;
    }
    let mut nets = Vec::new();
    for part in &parts {
        match part.trim().parse::<IpNet>() {
            Ok(net) => nets.push(net),
            Err(_) => {
                r.fail(
                    "clusterCIDR",
                    format!("{part:?} must be a valid CIDR block (e.g. 10.100.0.0/16 or fde4:8dba:82e1::/48)"),
                );
                return;
            }
        }
    }
    if let [a, b] = nets.as_slice() {
        if std::mem::discriminant(a) == std::mem::discriminant(b) {
            r.fail("clusterCIDR", format!("{value:?} must be a dual-stack pair: one IPv4 and one IPv6 CIDR"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_ranges() {
        for ok in ["", "30000-32767", "30000", "30000+100", " 1-1 "] {
            assert!(port_range_ok(ok), "{ok:?}");
        }
        for bad in ["abc", "2-1", "1-70000", "-", "1-", "65535+1"] {
            assert!(!port_range_ok(bad), "{bad:?}");
        }
    }

    #[test]
    fn host_ports() {
        assert_eq!(split_host_port("0.0.0.0:10256"), Some(("0.0.0.0", "10256")));
        assert_eq!(split_host_port("[::]:10256"), Some(("::", "10256")));
        assert_eq!(split_host_port("::1"), None);
        assert_eq!(split_host_port("1.2.3.4"), None);
    }
}
