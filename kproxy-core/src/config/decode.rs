//! Typing a located tree into a [`KubeProxyConfiguration`]: unknown and duplicate fields,
//! values of the wrong type, and where every field was set.
//!
//! Typing follows what upstream's decoder (sigs.k8s.io/yaml: YAML 1.1 scalars converted to
//! JSON, then strict JSON decoding) accepts: an unquoted `10` is a number and cannot fill a
//! string field, durations are strings, `yes`/`on` are booleans. Command-line values are
//! parsed as the field needs, like pflag does.

use std::collections::BTreeMap;

use super::duration::GoDuration;
use super::error::{FieldError, Origin};
use super::suggest::closest;
use super::tree::{Node, ScalarStyle, Value};
use super::types::*;

/// Where every set field came from, by dotted path (`ipvs.scheduler`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Origins {
    map: BTreeMap<String, Origin>,
}

static DEFAULT_ORIGIN: Origin = Origin::Default;

impl Origins {
    /// Where `path` was set, or [`Origin::Default`].
    pub fn get(&self, path: &str) -> &Origin {
        self.map.get(path).unwrap_or(&DEFAULT_ORIGIN)
    }

    /// Whether `path` was set by a file or a flag.
    pub fn is_set(&self, path: &str) -> bool {
        self.map.contains_key(path)
    }

    /// Every set path with its origin, sorted by path.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &Origin)> {
        self.map.iter().map(|(k, v)| (k.as_str(), v))
    }
}

/// What an unquoted YAML scalar means.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Plain {
    Bool(bool),
    Int(i128),
    Float(f64),
    Str,
}

fn classify_plain(text: &str) -> Plain {
    match text {
        "y" | "Y" | "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => return Plain::Bool(true),
        "n" | "N" | "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => {
            return Plain::Bool(false)
        }
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Plain::Float(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Plain::Float(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Plain::Float(f64::NAN),
        _ => {}
    }
    if let Some(i) = parse_int(text) {
        return Plain::Int(i);
    }
    let float_like = text.bytes().any(|b| b.is_ascii_digit())
        && text.bytes().all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'));
    match text.parse::<f64>() {
        Ok(f) if float_like => Plain::Float(f),
        _ => Plain::Str,
    }
}

/// Decimal, `0x` hex, `0o`/`0b` integers with an optional sign and `_` separators.
fn parse_int(text: &str) -> Option<i128> {
    let (negative, body) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (radix, digits) = if let Some(h) = body.strip_prefix("0x") {
        (16, h)
    } else if let Some(o) = body.strip_prefix("0o") {
        (8, o)
    } else if let Some(b) = body.strip_prefix("0b") {
        (2, b)
    } else {
        (10, body)
    };
    let digits: String = digits.chars().filter(|c| *c != '_').collect();
    if digits.is_empty() || !digits.chars().all(|c| c.is_digit(radix)) {
        return None;
    }
    let value = i128::from_str_radix(&digits, radix).ok()?;
    Some(if negative { -value } else { value })
}

/// Go's `strconv.ParseBool`, which pflag uses for boolean flags.
fn parse_go_bool(text: &str) -> Option<bool> {
    match text {
        "1" | "t" | "T" | "true" | "TRUE" | "True" => Some(true),
        "0" | "f" | "F" | "false" | "FALSE" | "False" => Some(false),
        _ => None,
    }
}

/// A short description of what was found, for type errors.
fn describe(node: &Node) -> String {
    match &node.value {
        Value::Null => "null".to_string(),
        Value::Seq(_) => "a list".to_string(),
        Value::Map(_) => "a mapping".to_string(),
        Value::Scalar(text, ScalarStyle::Plain) => match classify_plain(text) {
            Plain::Bool(_) => format!("the boolean {text}"),
            Plain::Int(_) | Plain::Float(_) => format!("the number {text}"),
            Plain::Str => format!("the string {text:?}"),
        },
        Value::Scalar(text, _) => format!("the string {text:?}"),
    }
}

/// Joins a field path.
pub(crate) fn child(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_string()
    } else {
        format!("{path}.{key}")
    }
}

/// Collects every problem while typing a tree.
#[derive(Default)]
pub(crate) struct Decoder {
    pub errors: Vec<FieldError>,
    pub origins: Origins,
}

impl Decoder {
    fn error(&mut self, origin: &Origin, path: &str, message: impl Into<String>) {
        self.errors.push(FieldError { origin: origin.clone(), path: path.to_string(), message: message.into() });
    }

    fn set(&mut self, path: &str, node: &Node) {
        self.origins.map.insert(path.to_string(), node.origin.clone());
    }

    /// The known fields of a mapping; reports unknown and duplicate keys.
    fn fields<'n>(&mut self, node: &'n Node, path: &str, known: &[&str]) -> Vec<(&'n str, &'n Node, String)> {
        if node.is_null() {
            return Vec::new();
        }
        let Some(entries) = node.entries() else {
            self.error(&node.origin, path, format!("expected a mapping of fields, found {}", describe(node)));
            return Vec::new();
        };
        let mut seen: BTreeMap<&str, &Origin> = BTreeMap::new();
        let mut out = Vec::new();
        for entry in entries {
            let key_path = child(path, &entry.key);
            if let Some(first) = seen.insert(&entry.key, &entry.key_origin) {
                let message = format!("duplicate field (first set at {first})");
                self.error(&entry.key_origin, &key_path, message);
                continue;
            }
            if !known.contains(&entry.key.as_str()) {
                let message = match closest(&entry.key, known) {
                    Some(s) => format!("unknown field; did you mean `{s}`?"),
                    None => format!("unknown field (known fields here: {})", known.join(", ")),
                };
                self.error(&entry.key_origin, &key_path, message);
                continue;
            }
            if matches!(entry.value.value, Value::Map(_)) {
                // A section is located by its key; its fields by their values.
                self.origins.map.insert(key_path.clone(), entry.key_origin.clone());
            }
            out.push((entry.key.as_str(), &entry.value, key_path));
        }
        out
    }

    /// A string field.
    fn string(&mut self, node: &Node, path: &str, out: &mut String) {
        match &node.value {
            Value::Null => {}
            Value::Scalar(text, ScalarStyle::Quoted | ScalarStyle::Flag) => {
                self.set(path, node);
                *out = text.clone();
            }
            Value::Scalar(text, ScalarStyle::Plain) if classify_plain(text) == Plain::Str => {
                self.set(path, node);
                *out = text.clone();
            }
            Value::Scalar(text, ScalarStyle::Plain) => {
                let message =
                    format!("expected a string, found {}; quote it (\"{text}\") if a string is meant", describe(node));
                self.error(&node.origin, path, message);
            }
            _ => self.error(&node.origin, path, format!("expected a string, found {}", describe(node))),
        }
    }

    fn boolean(&mut self, node: &Node, path: &str, out: &mut bool) {
        let parsed = match &node.value {
            Value::Null => return,
            Value::Scalar(text, ScalarStyle::Plain) => match classify_plain(text) {
                Plain::Bool(b) => Some(b),
                _ => None,
            },
            Value::Scalar(text, ScalarStyle::Flag) => parse_go_bool(text),
            _ => None,
        };
        match parsed {
            Some(b) => {
                self.set(path, node);
                *out = b;
            }
            None => self.error(&node.origin, path, format!("expected true or false, found {}", describe(node))),
        }
    }

    /// An integer in `[min, max]` (the Go type's range).
    fn integer(&mut self, node: &Node, path: &str, min: i128, max: i128, type_name: &str) -> Option<i128> {
        let parsed = match &node.value {
            Value::Null => return None,
            Value::Scalar(text, ScalarStyle::Plain) => match classify_plain(text) {
                Plain::Int(i) => Some(i),
                _ => None,
            },
            Value::Scalar(text, ScalarStyle::Flag) => parse_int(text.trim()),
            _ => None,
        };
        match parsed {
            Some(i) if (min..=max).contains(&i) => {
                self.set(path, node);
                Some(i)
            }
            Some(i) => {
                self.error(&node.origin, path, format!("{i} does not fit in a {type_name} ({min} to {max})"));
                None
            }
            None => {
                self.error(&node.origin, path, format!("expected an integer, found {}", describe(node)));
                None
            }
        }
    }

    fn int32(&mut self, node: &Node, path: &str, out: &mut i32) {
        if let Some(i) = self.integer(node, path, i32::MIN.into(), i32::MAX.into(), "32-bit integer") {
            *out = i as i32; // in range: checked by integer()
        }
    }

    fn uint32(&mut self, node: &Node, path: &str, out: &mut u32) {
        if let Some(i) = self.integer(node, path, 0, u32::MAX.into(), "32-bit unsigned integer") {
            *out = i as u32; // in range: checked by integer()
        }
    }

    fn float32(&mut self, node: &Node, path: &str, out: &mut f32) {
        let parsed = match &node.value {
            Value::Null => return,
            Value::Scalar(text, ScalarStyle::Plain) => match classify_plain(text) {
                Plain::Int(i) => Some(i as f64),
                Plain::Float(f) => Some(f),
                _ => None,
            },
            Value::Scalar(text, ScalarStyle::Flag) => text.trim().parse::<f64>().ok(),
            _ => None,
        };
        match parsed {
            Some(f) if f.is_finite() && f.abs() <= f64::from(f32::MAX) => {
                self.set(path, node);
                *out = f as f32;
            }
            Some(f) if f.is_finite() => {
                let message = format!(
                    "{} is too large: this field is a 32-bit float (at most {:e}); use a smaller value",
                    describe(node),
                    f32::MAX
                );
                self.error(&node.origin, path, message);
            }
            Some(_) => self.error(&node.origin, path, format!("must be a finite number, found {}", describe(node))),
            None => self.error(&node.origin, path, format!("expected a number, found {}", describe(node))),
        }
    }

    fn duration(&mut self, node: &Node, path: &str, out: &mut GoDuration) {
        let text = match &node.value {
            Value::Null => return,
            Value::Scalar(text, ScalarStyle::Quoted | ScalarStyle::Flag) => text,
            Value::Scalar(text, ScalarStyle::Plain) if classify_plain(text) == Plain::Str => text,
            _ => {
                let message =
                    format!("expected a duration such as \"30s\", \"250ms\" or \"1h0m0s\", found {}", describe(node));
                self.error(&node.origin, path, message);
                return;
            }
        };
        match GoDuration::parse(text) {
            Ok(d) => {
                self.set(path, node);
                *out = d;
            }
            Err(e) => self.error(&node.origin, path, e.to_string()),
        }
    }

    fn string_list(&mut self, node: &Node, path: &str, out: &mut Vec<String>) {
        match &node.value {
            Value::Null => {}
            Value::Seq(items) => {
                self.set(path, node);
                let mut list = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    let mut s = String::new();
                    self.string(item, &format!("{path}[{i}]"), &mut s);
                    list.push(s);
                }
                *out = list;
            }
            _ => self.error(&node.origin, path, format!("expected a list of strings, found {}", describe(node))),
        }
    }

    fn bool_map(&mut self, node: &Node, path: &str, out: &mut BTreeMap<String, bool>) {
        if node.is_null() {
            return;
        }
        let Some(entries) = node.entries() else {
            self.error(
                &node.origin,
                path,
                format!("expected a mapping of names to true/false, found {}", describe(node)),
            );
            return;
        };
        for entry in entries {
            let mut b = false;
            let p = child(path, &entry.key);
            self.boolean(&entry.value, &p, &mut b);
            out.insert(entry.key.clone(), b);
        }
    }

    /// A Kubernetes quantity (`0`, `64Ki`, `1M`), kept as text.
    fn quantity(&mut self, node: &Node, path: &str, out: &mut String) {
        let text = match &node.value {
            Value::Null => return,
            Value::Scalar(text, _) => text.trim(),
            _ => {
                self.error(
                    &node.origin,
                    path,
                    format!("expected a quantity such as \"0\" or \"64Ki\", found {}", describe(node)),
                );
                return;
            }
        };
        let number_len = text.bytes().take_while(|b| b.is_ascii_digit() || *b == b'.').count();
        let suffix = &text[number_len..];
        let valid_suffix =
            ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei", "k", "M", "G", "T", "P", "E", "m"].contains(&suffix);
        if number_len == 0 || !valid_suffix {
            self.error(&node.origin, path, format!("{text:?} is not a quantity such as \"0\" or \"64Ki\""));
            return;
        }
        self.set(path, node);
        *out = text.to_string();
    }
}

/// Type the whole document. Starts from upstream's defaults and overwrites what is set.
pub(crate) fn decode(root: &Node) -> (KubeProxyConfiguration, Decoder) {
    let mut d = Decoder::default();
    let mut c = KubeProxyConfiguration::default();
    // Their defaults depend on bindAddress: filled in by apply_zero_defaults.
    c.healthz_bind_address.clear();
    c.metrics_bind_address.clear();
    const TOP: &[&str] = &[
        "apiVersion",
        "kind",
        "featureGates",
        "clientConnection",
        "logging",
        "hostnameOverride",
        "bindAddress",
        "healthzBindAddress",
        "metricsBindAddress",
        "bindAddressHardFail",
        "enableProfiling",
        "showHiddenMetricsForVersion",
        "mode",
        "iptables",
        "ipvs",
        "nftables",
        "winkernel",
        "detectLocalMode",
        "detectLocal",
        "clusterCIDR",
        "nodePortAddresses",
        "oomScoreAdj",
        "conntrack",
        "configSyncPeriod",
        "portRange",
        "windowsRunAsService",
        "udpIdleTimeout",
        "resourceContainer",
    ];
    for (key, v, p) in d.fields(root, "", TOP) {
        match key {
            "apiVersion" => type_meta(&mut d, v, &p, API_VERSION, &mut c.api_version),
            "kind" => type_meta(&mut d, v, &p, KIND, &mut c.kind),
            "featureGates" => d.bool_map(v, &p, &mut c.feature_gates),
            "clientConnection" => client_connection(&mut d, v, &p, &mut c.client_connection),
            "logging" => logging(&mut d, v, &p, &mut c.logging),
            "hostnameOverride" => d.string(v, &p, &mut c.hostname_override),
            "bindAddress" => d.string(v, &p, &mut c.bind_address),
            "healthzBindAddress" => d.string(v, &p, &mut c.healthz_bind_address),
            "metricsBindAddress" => d.string(v, &p, &mut c.metrics_bind_address),
            "bindAddressHardFail" => d.boolean(v, &p, &mut c.bind_address_hard_fail),
            "enableProfiling" => d.boolean(v, &p, &mut c.enable_profiling),
            "showHiddenMetricsForVersion" => d.string(v, &p, &mut c.show_hidden_metrics_for_version),
            "mode" => d.string(v, &p, &mut c.mode),
            "iptables" => iptables(&mut d, v, &p, &mut c.iptables),
            "ipvs" => ipvs(&mut d, v, &p, &mut c.ipvs),
            "nftables" => nftables(&mut d, v, &p, &mut c.nftables),
            "winkernel" => winkernel(&mut d, v, &p, &mut c.winkernel),
            "detectLocalMode" => d.string(v, &p, &mut c.detect_local_mode),
            "detectLocal" => detect_local(&mut d, v, &p, &mut c.detect_local),
            "clusterCIDR" => d.string(v, &p, &mut c.cluster_cidr),
            "nodePortAddresses" => d.string_list(v, &p, &mut c.node_port_addresses),
            "oomScoreAdj" => d.int32(v, &p, &mut c.oom_score_adj),
            "conntrack" => conntrack(&mut d, v, &p, &mut c.conntrack),
            "configSyncPeriod" => d.duration(v, &p, &mut c.config_sync_period),
            "portRange" => d.string(v, &p, &mut c.port_range),
            "windowsRunAsService" => d.boolean(v, &p, &mut c.windows_run_as_service),
            // Removed upstream long ago but still in old kubeadm-generated files (upstream
            // accepts them through its lenient fallback): type-checked, warned about, dropped.
            "resourceContainer" => d.string(v, &p, &mut String::new()),
            "udpIdleTimeout" => {
                let mut t = GoDuration::ZERO;
                d.duration(v, &p, &mut t);
                if d.origins.is_set(&p) {
                    c.udp_idle_timeout = Some(t);
                }
            }
            _ => {} // fields() yields known keys only
        }
    }
    apply_zero_defaults(&mut c);
    (c, d)
}

fn type_meta(d: &mut Decoder, node: &Node, path: &str, expected: &str, out: &mut String) {
    if matches!(node.value, Value::Null) {
        d.error(&node.origin, path, format!("is empty (null); expected {expected:?}"));
        return;
    }
    let mut found = String::new();
    d.string(node, path, &mut found);
    if !d.origins.is_set(path) {
        return;
    }
    if found != expected {
        let message = format!("{found:?} is not supported; expected {expected:?}");
        d.error(&node.origin, path, message);
    } else {
        *out = found;
    }
}

fn client_connection(d: &mut Decoder, node: &Node, path: &str, c: &mut ClientConnectionConfiguration) {
    for (key, v, p) in d.fields(node, path, &["kubeconfig", "acceptContentTypes", "contentType", "qps", "burst"]) {
        match key {
            "kubeconfig" => d.string(v, &p, &mut c.kubeconfig),
            "acceptContentTypes" => d.string(v, &p, &mut c.accept_content_types),
            "contentType" => d.string(v, &p, &mut c.content_type),
            "qps" => d.float32(v, &p, &mut c.qps),
            "burst" => d.int32(v, &p, &mut c.burst),
            _ => {}
        }
    }
}

fn logging(d: &mut Decoder, node: &Node, path: &str, c: &mut LoggingConfiguration) {
    for (key, v, p) in d.fields(node, path, &["format", "flushFrequency", "verbosity", "vmodule", "options"]) {
        match key {
            "format" => d.string(v, &p, &mut c.format),
            // TimeOrMetaDuration: a duration string, or an integer number of nanoseconds.
            "flushFrequency" => match &v.value {
                Value::Scalar(text, ScalarStyle::Plain) if matches!(classify_plain(text), Plain::Int(_)) => {
                    if let Some(i) = d.integer(v, &p, 0, i64::MAX.into(), "64-bit integer") {
                        c.flush_frequency = GoDuration::from_nanos(i as i64); // in range: checked by integer()
                    }
                }
                _ => d.duration(v, &p, &mut c.flush_frequency),
            },
            "verbosity" => d.uint32(v, &p, &mut c.verbosity),
            "vmodule" => vmodule(d, v, &p, &mut c.vmodule),
            "options" => {
                for (key, v, p) in d.fields(v, &p, &["text", "json"]) {
                    let target = if key == "text" { &mut c.options.text } else { &mut c.options.json };
                    for (key, v, p) in d.fields(v, &p, &["splitStream", "infoBufferSize"]) {
                        match key {
                            "splitStream" => d.boolean(v, &p, &mut target.split_stream),
                            "infoBufferSize" => d.quantity(v, &p, &mut target.info_buffer_size),
                            _ => {}
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

fn vmodule(d: &mut Decoder, node: &Node, path: &str, out: &mut Vec<VModuleItem>) {
    match &node.value {
        Value::Null => {}
        Value::Seq(items) => {
            d.set(path, node);
            out.clear();
            for (i, item) in items.iter().enumerate() {
                let mut entry = VModuleItem { file_pattern: String::new(), verbosity: 0 };
                let ip = format!("{path}[{i}]");
                for (key, v, p) in d.fields(item, &ip, &["filePattern", "verbosity"]) {
                    match key {
                        "filePattern" => d.string(v, &p, &mut entry.file_pattern),
                        "verbosity" => d.uint32(v, &p, &mut entry.verbosity),
                        _ => {}
                    }
                }
                out.push(entry);
            }
        }
        _ => d.error(
            &node.origin,
            path,
            format!("expected a list of {{filePattern, verbosity}}, found {}", describe(node)),
        ),
    }
}

fn iptables(d: &mut Decoder, node: &Node, path: &str, c: &mut KubeProxyIPTablesConfiguration) {
    const KNOWN: &[&str] =
        &["masqueradeBit", "masqueradeAll", "localhostNodePorts", "snatNodeInternalIP", "syncPeriod", "minSyncPeriod"];
    for (key, v, p) in d.fields(node, path, KNOWN) {
        match key {
            "masqueradeBit" => d.int32(v, &p, &mut c.masquerade_bit),
            "masqueradeAll" => d.boolean(v, &p, &mut c.masquerade_all),
            "localhostNodePorts" => d.boolean(v, &p, &mut c.localhost_node_ports),
            "snatNodeInternalIP" => d.boolean(v, &p, &mut c.snat_node_internal_ip),
            "syncPeriod" => d.duration(v, &p, &mut c.sync_period),
            "minSyncPeriod" => d.duration(v, &p, &mut c.min_sync_period),
            _ => {}
        }
    }
}

fn ipvs(d: &mut Decoder, node: &Node, path: &str, c: &mut KubeProxyIPVSConfiguration) {
    const KNOWN: &[&str] = &[
        "syncPeriod",
        "minSyncPeriod",
        "scheduler",
        "excludeCIDRs",
        "strictARP",
        "tcpTimeout",
        "tcpFinTimeout",
        "udpTimeout",
    ];
    for (key, v, p) in d.fields(node, path, KNOWN) {
        match key {
            "syncPeriod" => d.duration(v, &p, &mut c.sync_period),
            "minSyncPeriod" => d.duration(v, &p, &mut c.min_sync_period),
            "scheduler" => d.string(v, &p, &mut c.scheduler),
            "excludeCIDRs" => d.string_list(v, &p, &mut c.exclude_cidrs),
            "strictARP" => d.boolean(v, &p, &mut c.strict_arp),
            "tcpTimeout" => d.duration(v, &p, &mut c.tcp_timeout),
            "tcpFinTimeout" => d.duration(v, &p, &mut c.tcp_fin_timeout),
            "udpTimeout" => d.duration(v, &p, &mut c.udp_timeout),
            _ => {}
        }
    }
}

fn nftables(d: &mut Decoder, node: &Node, path: &str, c: &mut KubeProxyNFTablesConfiguration) {
    for (key, v, p) in d.fields(node, path, &["masqueradeBit", "masqueradeAll", "syncPeriod", "minSyncPeriod"]) {
        match key {
            "masqueradeBit" => d.int32(v, &p, &mut c.masquerade_bit),
            "masqueradeAll" => d.boolean(v, &p, &mut c.masquerade_all),
            "syncPeriod" => d.duration(v, &p, &mut c.sync_period),
            "minSyncPeriod" => d.duration(v, &p, &mut c.min_sync_period),
            _ => {}
        }
    }
}

fn conntrack(d: &mut Decoder, node: &Node, path: &str, c: &mut KubeProxyConntrackConfiguration) {
    const KNOWN: &[&str] = &[
        "maxPerCore",
        "min",
        "tcpEstablishedTimeout",
        "tcpCloseWaitTimeout",
        "tcpBeLiberal",
        "udpTimeout",
        "udpStreamTimeout",
        "max",
    ];
    for (key, v, p) in d.fields(node, path, KNOWN) {
        match key {
            "maxPerCore" => d.int32(v, &p, &mut c.max_per_core),
            "min" => d.int32(v, &p, &mut c.min),
            "tcpEstablishedTimeout" => d.duration(v, &p, &mut c.tcp_established_timeout),
            "tcpCloseWaitTimeout" => d.duration(v, &p, &mut c.tcp_close_wait_timeout),
            "tcpBeLiberal" => d.boolean(v, &p, &mut c.tcp_be_liberal),
            "udpTimeout" => d.duration(v, &p, &mut c.udp_timeout),
            "udpStreamTimeout" => d.duration(v, &p, &mut c.udp_stream_timeout),
            "max" => d.int32(v, &p, &mut 0), // legacy, see resourceContainer

            _ => {}
        }
    }
}

fn winkernel(d: &mut Decoder, node: &Node, path: &str, c: &mut KubeProxyWinkernelConfiguration) {
    const KNOWN: &[&str] = &["networkName", "sourceVip", "enableDSR", "rootHnsEndpointName", "forwardHealthCheckVip"];
    for (key, v, p) in d.fields(node, path, KNOWN) {
        match key {
            "networkName" => d.string(v, &p, &mut c.network_name),
            "sourceVip" => d.string(v, &p, &mut c.source_vip),
            "enableDSR" => d.boolean(v, &p, &mut c.enable_dsr),
            "rootHnsEndpointName" => d.string(v, &p, &mut c.root_hns_endpoint_name),
            "forwardHealthCheckVip" => d.boolean(v, &p, &mut c.forward_health_check_vip),
            _ => {}
        }
    }
}

fn detect_local(d: &mut Decoder, node: &Node, path: &str, c: &mut DetectLocalConfiguration) {
    for (key, v, p) in d.fields(node, path, &["bridgeInterface", "interfaceNamePrefix"]) {
        match key {
            "bridgeInterface" => d.string(v, &p, &mut c.bridge_interface),
            "interfaceNamePrefix" => d.string(v, &p, &mut c.interface_name_prefix),
            _ => {}
        }
    }
}

/// Upstream's defaulting treats the zero value of these non-pointer fields as "unset"
/// (`SetDefaults_KubeProxyConfiguration`), so an explicit `0s`, `0` or `""` gets the default
/// too. Addresses without a port get the default port (`AppendPortIfNeeded`), and the
/// default health/metrics addresses follow bindAddress's family.
fn apply_zero_defaults(c: &mut KubeProxyConfiguration) {
    let defaults = KubeProxyConfiguration::default();
    if c.bind_address.is_empty() {
        c.bind_address = defaults.bind_address.clone();
    }
    let ipv6 = c.bind_address.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_ipv6());
    let (healthz_host, metrics_host) = if ipv6 { ("[::]", "[::1]") } else { ("0.0.0.0", "127.0.0.1") };
    c.healthz_bind_address = with_port(&c.healthz_bind_address, healthz_host, 10256);
    c.metrics_bind_address = with_port(&c.metrics_bind_address, metrics_host, 10249);
    for (value, default) in [
        (&mut c.iptables.sync_period, defaults.iptables.sync_period),
        (&mut c.iptables.min_sync_period, defaults.iptables.min_sync_period),
        (&mut c.ipvs.sync_period, defaults.ipvs.sync_period),
        (&mut c.nftables.sync_period, defaults.nftables.sync_period),
        (&mut c.nftables.min_sync_period, defaults.nftables.min_sync_period),
        (&mut c.config_sync_period, defaults.config_sync_period),
        (&mut c.logging.flush_frequency, defaults.logging.flush_frequency),
    ] {
        if value.is_zero() {
            *value = default;
        }
    }
    if c.client_connection.content_type.is_empty() {
        c.client_connection.content_type = defaults.client_connection.content_type.clone();
    }
    if c.client_connection.qps == 0.0 {
        c.client_connection.qps = defaults.client_connection.qps;
    }
    if c.client_connection.burst == 0 {
        c.client_connection.burst = defaults.client_connection.burst;
    }
    if c.logging.format.is_empty() {
        c.logging.format = defaults.logging.format.clone();
    }
}

/// Upstream's `AppendPortIfNeeded`: an empty address gets `default_host:port`, a bare IP
/// gets `:port` (IPv6 in brackets); anything else is left for validation to judge.
fn with_port(addr: &str, default_host: &str, port: u16) -> String {
    if addr.is_empty() {
        return format!("{default_host}:{port}");
    }
    match addr.parse::<std::net::IpAddr>() {
        Ok(std::net::IpAddr::V4(ip)) => format!("{ip}:{port}"),
        Ok(std::net::IpAddr::V6(ip)) => format!("[{ip}]:{port}"),
        Err(_) => addr.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_scalars_are_typed_like_yaml_1_1() {
        assert_eq!(classify_plain("10"), Plain::Int(10));
        assert_eq!(classify_plain("-999"), Plain::Int(-999));
        assert_eq!(classify_plain("0x10"), Plain::Int(16));
        assert_eq!(classify_plain("1.5"), Plain::Float(1.5));
        assert_eq!(classify_plain("yes"), Plain::Bool(true));
        assert_eq!(classify_plain("off"), Plain::Bool(false));
        for s in ["0.0.0.0", "10.244.0.0/16", "30000-32767", "24h0m0s", "rr", "inf", "1.2.3"] {
            assert_eq!(classify_plain(s), Plain::Str, "{s}");
        }
    }

    #[test]
    fn addresses_get_ports() {
        assert_eq!(with_port("", "0.0.0.0", 10256), "0.0.0.0:10256");
        assert_eq!(with_port("1.2.3.4", "0.0.0.0", 10256), "1.2.3.4:10256");
        assert_eq!(with_port("::1", "0.0.0.0", 10249), "[::1]:10249");
        assert_eq!(with_port("1.2.3.4:99", "0.0.0.0", 10256), "1.2.3.4:99");
    }
}
