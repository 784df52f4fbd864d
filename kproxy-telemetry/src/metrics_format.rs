//! The two exposition formats `/metrics` speaks, and the `Accept` negotiation between them.
//!
//! Prometheus's text format 0.0.4 is the default, as kube-proxy (client_golang) serves it and
//! as every scraper understands; OpenMetrics 1.0.0 is served when the scraper's `Accept`
//! header prefers it (Prometheus itself sends `application/openmetrics-text;version=1.0.0`
//! first). `prometheus-client` encodes OpenMetrics only, so the 0.0.4 text is derived from its
//! output here rather than formatted by hand: the samples are identical, only the metadata
//! differs (a counter's family is named with its `_total` suffix, no `# UNIT`, no `# EOF`).

use std::collections::HashSet;

/// Content type of the Prometheus text format 0.0.4.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";
/// Content type of the OpenMetrics text format 1.0.0.
pub const OPENMETRICS_CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// An exposition format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// `text/plain; version=0.0.4`.
    PrometheusText,
    /// `application/openmetrics-text; version=1.0.0`.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of an answer in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::PrometheusText => PROMETHEUS_TEXT_CONTENT_TYPE,
            Format::OpenMetrics => OPENMETRICS_CONTENT_TYPE,
        }
    }

    /// The format an `Accept` header asks for: OpenMetrics when an
    /// `application/openmetrics-text` range (version 1.0.0 or unversioned; 0.0.1 is the same
    /// text) has a quality above 0 and at least that of any `text/plain` range; the 0.0.4 text
    /// otherwise, including without a header.
    pub fn negotiate(accept: Option<&str>) -> Format {
        let Some(accept) = accept else { return Format::PrometheusText };
        let (mut openmetrics, mut text) = (0.0f32, 0.0f32);
        for range in accept.split(',') {
            let mut parts = range.split(';').map(str::trim);
            let media = parts.next().unwrap_or_default().to_ascii_lowercase();
            let (mut q, mut version) = (1.0f32, None);
            for param in parts {
                let Some((key, value)) = param.split_once('=') else { continue };
                match key.trim().to_ascii_lowercase().as_str() {
                    "q" => q = value.trim().parse().unwrap_or(0.0),
                    "version" => version = Some(value.trim().trim_matches('"').to_string()),
                    _ => {}
                }
            }
            match media.as_str() {
                "application/openmetrics-text" if matches!(version.as_deref(), None | Some("1.0.0" | "0.0.1")) => {
                    openmetrics = openmetrics.max(q);
                }
                "text/plain" => text = text.max(q),
                _ => {}
            }
        }
        if openmetrics > 0.0 && openmetrics >= text {
            Format::OpenMetrics
        } else {
            Format::PrometheusText
        }
    }
}

/// The Prometheus text format 0.0.4 of an OpenMetrics exposition as `prometheus-client`
/// writes it: counter families renamed to their `_total` sample name in `# HELP`/`# TYPE`,
/// `unknown` typed `untyped`, `# UNIT` and `# EOF` dropped. Samples pass through unchanged.
pub fn openmetrics_to_prometheus_text(openmetrics: &str) -> String {
    let counters: HashSet<&str> = openmetrics
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|rest| rest.split_once(' '))
        .filter(|(_, kind)| kind.trim() == "counter")
        .map(|(name, _)| name)
        .collect();
    let total = |name: &str| {
        if counters.contains(name) && !name.ends_with("_total") {
            format!("{name}_total")
        } else {
            name.to_string()
        }
    };
    let mut out = String::with_capacity(openmetrics.len());
    for line in openmetrics.lines() {
        if line == "# EOF" || line.starts_with("# UNIT ") {
            continue;
        }
        if let Some((name, help)) = line.strip_prefix("# HELP ").and_then(|r| r.split_once(' ')) {
            out.push_str(&format!("# HELP {} {help}\n", total(name)));
        } else if let Some((name, kind)) = line.strip_prefix("# TYPE ").and_then(|r| r.split_once(' ')) {
            let kind = if kind == "unknown" { "untyped" } else { kind };
            out.push_str(&format!("# TYPE {} {kind}\n", total(name)));
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    out
}

/// Every sample name a Prometheus text 0.0.4 exposition can contain, from its `# TYPE` lines:
/// a histogram's `_bucket`, `_sum` and `_count`, a summary's `_sum`, `_count` and its own
/// name, anything else its own name. Families without samples yet (labelled families nothing
/// has touched) are included: their metadata is always written.
pub fn series_names(prometheus_text: &str) -> std::collections::BTreeSet<String> {
    let mut names = std::collections::BTreeSet::new();
    for (name, kind) in prometheus_text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split_once(' ')) {
        match kind.trim() {
            "histogram" => names.extend(["_bucket", "_sum", "_count"].map(|s| format!("{name}{s}"))),
            "summary" => names.extend(["", "_sum", "_count"].map(|s| format!("{name}{s}"))),
            _ => {
                names.insert(name.to_string());
            }
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMETHEUS_SCRAPE: &str = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
        version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";

    #[test]
    fn negotiation_defaults_to_text_and_honours_openmetrics_requests() {
        assert_eq!(Format::negotiate(None), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("*/*")), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("text/plain;version=0.0.4")), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some(PROMETHEUS_SCRAPE)), Format::OpenMetrics);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text")), Format::OpenMetrics);
        // Preferring text, refusing OpenMetrics, or asking for an unknown version: text.
        assert_eq!(
            Format::negotiate(Some("text/plain;q=0.9, application/openmetrics-text;q=0.5")),
            Format::PrometheusText
        );
        assert_eq!(Format::negotiate(Some("application/openmetrics-text;q=0")), Format::PrometheusText);
        assert_eq!(Format::negotiate(Some("application/openmetrics-text;version=2.0.0")), Format::PrometheusText);
    }

    #[test]
    fn text_format_names_counter_families_with_total_and_has_no_eof() {
        let om = "# HELP kubeproxy_x Some counter.\n# TYPE kubeproxy_x counter\nkubeproxy_x_total{ip_family=\"IPv4\"} 3\n\
                  # HELP g A gauge.\n# TYPE g gauge\n# UNIT g seconds\ng 1.5\n# TYPE u unknown\nu 1\n# EOF\n";
        let text = openmetrics_to_prometheus_text(om);
        assert_eq!(
            text,
            "# HELP kubeproxy_x_total Some counter.\n# TYPE kubeproxy_x_total counter\n\
             kubeproxy_x_total{ip_family=\"IPv4\"} 3\n# HELP g A gauge.\n# TYPE g gauge\ng 1.5\n# TYPE u untyped\nu 1\n"
        );
        let names: Vec<String> = series_names(&(text + "# TYPE h histogram\n")).into_iter().collect();
        assert_eq!(names, ["g", "h_bucket", "h_count", "h_sum", "kubeproxy_x_total", "u"]);
    }
}
