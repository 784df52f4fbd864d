//! The pod subnets a CNI configuration file names (pure): host-local IPAM's `subnet` and
//! `ranges[][].subnet`, wherever they appear (plugin lists, delegates).

use ipnet::IpNet;

/// Every `subnet` value that is a CIDR, anywhere in the JSON document `text`.
pub fn subnets(text: &str) -> Result<Vec<IpNet>, String> {
    let doc: serde_json::Value = serde_json::from_str(text).map_err(|e| format!("not JSON: {e}"))?;
    let mut out = Vec::new();
    walk(&doc, &mut out);
    Ok(out)
}

fn walk(v: &serde_json::Value, out: &mut Vec<IpNet>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                if let (true, Some(net)) = (k == "subnet", v.as_str().and_then(|s| s.parse::<IpNet>().ok())) {
                    out.push(net.trunc());
                } else {
                    walk(v, out);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
        _ => {}
    }
}

/// Whether a file name is one the container runtime loads (`.conf`, `.conflist`, `.json`).
pub fn is_config_file(name: &str) -> bool {
    [".conf", ".conflist", ".json"].iter().any(|ext| name.ends_with(ext))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_host_local_subnets_in_lists_and_ranges() {
        let conflist = r#"{"cniVersion":"1.0.0","name":"k8s","plugins":[
            {"type":"bridge","bridge":"cni0","ipam":{"type":"host-local","ranges":[[{"subnet":"198.18.0.0/24"}],[{"subnet":"2001:db8:a::/64"}]]}},
            {"type":"portmap"}]}"#;
        assert_eq!(subnets(conflist).unwrap(), vec!["198.18.0.0/24".parse::<IpNet>().unwrap(), "2001:db8:a::/64".parse().unwrap()]);
        let conf = r#"{"type":"bridge","ipam":{"type":"host-local","subnet":"198.18.5.1/24"}}"#;
        assert_eq!(subnets(conf).unwrap(), vec!["198.18.5.0/24".parse::<IpNet>().unwrap()]);
        assert_eq!(subnets(r#"{"type":"calico","ipam":{"type":"calico-ipam"}}"#).unwrap(), vec![]);
        assert!(subnets("{").unwrap_err().contains("not JSON"));
        assert!(is_config_file("10-bridge.conflist") && !is_config_file("README"));
    }
}
