//! The node's addressing: addresses, routes (with whether their device is a bridge), and the
//! CNI configuration files.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;

use crate::{CniFile, Gathered, Route};

/// The addresses of this network namespace's interfaces (loopback included).
pub fn local_addresses() -> Vec<IpAddr> {
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else { return Vec::new() };
    addrs
        .filter_map(|a| {
            let a = a.address?;
            a.as_sockaddr_in().map(|v4| IpAddr::V4(v4.ip())).or_else(|| a.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip())))
        })
        .collect()
}

fn ip_json(args: &[&str]) -> Gathered<serde_json::Value> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("running `ip {}`: {e} (iproute2 installed?)", args.join(" ")))?;
    if !out.status.success() {
        return Err(format!("`ip {}` failed: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("`ip {}`: not JSON: {e}", args.join(" ")))
}

/// The main table's routes of both families; a device is a pod bridge when `ip -d link` says
/// it is a bridge and no default route leaves through it.
pub fn routes() -> Gathered<Vec<Route>> {
    let links = ip_json(&["-j", "-d", "link", "show"])?;
    let bridges: Vec<&str> = links
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["linkinfo"]["info_kind"] == "bridge")
        .filter_map(|l| l["ifname"].as_str())
        .collect();
    let mut raw = Vec::new();
    for family in ["-4", "-6"] {
        let routes = ip_json(&["-j", family, "route", "show", "table", "main"])?;
        raw.extend(routes.as_array().into_iter().flatten().filter_map(|r| {
            let dev = r["dev"].as_str()?.to_string();
            let dst = r["dst"].as_str()?;
            let dst = if dst == "default" { if family == "-4" { "0.0.0.0/0" } else { "::/0" }.to_string() } else if dst.contains('/') { dst.to_string() } else { format!("{dst}/{}", if family == "-4" { 32 } else { 128 }) };
            Some((dst.parse::<ipnet::IpNet>().ok()?, dev))
        }));
    }
    let uplinks: Vec<String> = raw.iter().filter(|(dst, _)| dst.prefix_len() == 0).map(|(_, dev)| dev.clone()).collect();
    Ok(raw
        .into_iter()
        .map(|(dst, dev)| Route { dst, on_pod_bridge: bridges.contains(&dev.as_str()) && !uplinks.contains(&dev), dev })
        .collect())
}

/// The configuration files in `dir`, sorted by name as the runtime loads them; a missing
/// directory has none.
pub fn cni_files(dir: &Path) -> Gathered<Vec<CniFile>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e.to_string()),
    };
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.file_name().and_then(|n| n.to_str()).is_some_and(crate::cni::is_config_file))
        .collect();
    paths.sort();
    Ok(paths
        .into_iter()
        .map(|path| match std::fs::read_to_string(&path).map_err(|e| e.to_string()).and_then(|t| crate::cni::subnets(&t)) {
            Ok(subnets) => CniFile { path, subnets, error: None },
            Err(e) => CniFile { path, subnets: Vec::new(), error: Some(e) },
        })
        .collect())
}
