//! Building the API client from `clientConnection` and the `--kubeconfig`/`--master` flags.
//!
//! Same precedence as kube-proxy's `createClient`: with neither a kubeconfig nor a master URL
//! the in-cluster service account is used; otherwise the kubeconfig (if any) is loaded and
//! the master URL (if any) overrides its server.

use kube::client::ClientBuilder;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};

use super::rate_limit::{bucket_for, RateLimitLayer};
use kproxy_telemetry::rest_metrics::RestMetricsLayer;
use super::{KubeSourceOptions, SourceError};

/// The only wire format kube-rs speaks.
const JSON: &str = "application/json";

/// Resolves where and how to connect, without connecting.
pub async fn resolve_config(opts: &KubeSourceOptions) -> Result<Config, SourceError> {
    let mut config = match (&opts.kubeconfig, &opts.master) {
        (None, None) => {
            tracing::info!("Neither kubeconfig file nor master URL was specified, falling back to in-cluster config");
            Config::incluster().map_err(|e| SourceError::InCluster(Box::new(e)))?
        }
        (Some(path), _) => {
            let kubeconfig = Kubeconfig::read_from(path)
                .map_err(|e| SourceError::ReadKubeconfig { path: path.clone(), source: Box::new(e) })?;
            Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
                .await
                .map_err(|e| SourceError::ReadKubeconfig { path: path.clone(), source: Box::new(e) })?
        }
        (None, Some(master)) => Config::new(parse_master(master)?),
    };
    if let (Some(_), Some(master)) = (&opts.kubeconfig, &opts.master) {
        config.cluster_url = parse_master(master)?;
    }
    note_content_type(&opts.content_type);
    Ok(config)
}

/// Builds a client whose every request start is rate limited by `qps`/`burst`, and whose
/// every request is recorded in `opts.rest_metrics`.
pub async fn build_client(opts: &KubeSourceOptions) -> Result<Client, SourceError> {
    let config = resolve_config(opts).await?;
    // Below kube's base-URI layer requests carry only a path: the host comes from the config.
    let host = config.cluster_url.authority().map(|a| a.to_string()).unwrap_or_default();
    let builder = ClientBuilder::try_from(config).map_err(|e| SourceError::BuildClient(Box::new(e)))?;
    // Inside the rate limiter (added after, so outside it in the stack): waiting for a token
    // is not request latency. Without a sink the layer records into metrics nobody serves.
    let metrics = opts.rest_metrics.clone().unwrap_or_default();
    let builder = builder.with_layer(&RestMetricsLayer::new(metrics, &host));
    let client = match bucket_for(opts.qps, opts.burst) {
        Some(bucket) => builder.with_layer(&RateLimitLayer::new(bucket)).build(),
        None => {
            tracing::info!(qps = opts.qps, "Client-side rate limit disabled (negative qps)");
            builder.build()
        }
    };
    Ok(client)
}

fn parse_master(master: &str) -> Result<http::Uri, SourceError> {
    master.parse().map_err(|e| SourceError::ParseMaster { master: master.to_string(), source: e })
}

/// kube-proxy defaults to protobuf; kube-rs only decodes JSON. Say so once, then use JSON.
fn note_content_type(content_type: &str) {
    if let Some(notice) = content_type_notice(content_type) {
        tracing::info!(requested = content_type, using = JSON, "{notice}");
    }
}

fn content_type_notice(content_type: &str) -> Option<&'static str> {
    let ct = content_type.trim();
    if ct.is_empty() || ct.eq_ignore_ascii_case(JSON) {
        None
    } else if ct.contains("protobuf") {
        Some("clientConnection.contentType protobuf is not supported by this client; falling back to JSON")
    } else {
        Some("clientConnection.contentType is not supported by this client; falling back to JSON")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts() -> KubeSourceOptions {
        KubeSourceOptions::new("node-a")
    }

    #[test]
    fn protobuf_and_unknown_content_types_get_a_notice_json_does_not() {
        assert!(content_type_notice("application/vnd.kubernetes.protobuf").unwrap().contains("protobuf"));
        assert!(content_type_notice("text/plain").is_some());
        assert_eq!(content_type_notice(""), None);
        assert_eq!(content_type_notice("application/json"), None);
    }

    #[tokio::test]
    async fn master_alone_is_used_verbatim() {
        let mut o = opts();
        o.master = Some("http://198.19.0.10:8080".into());
        let c = resolve_config(&o).await.expect("config");
        assert_eq!(c.cluster_url.to_string(), "http://198.19.0.10:8080/");
    }

    #[tokio::test]
    async fn master_overrides_kubeconfig_server() {
        let dir = std::env::temp_dir().join(format!("kproxy-kubeconfig-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("tmp dir");
        let path = dir.join("kubeconfig");
        std::fs::write(
            &path,
            "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster:\n    server: https://198.19.0.1:6443\n\
             contexts:\n- name: x\n  context:\n    cluster: c\n    user: u\ncurrent-context: x\n\
             users:\n- name: u\n  user:\n    token: abc\n",
        )
        .expect("write kubeconfig");
        let mut o = opts();
        o.kubeconfig = Some(path.clone());
        let c = resolve_config(&o).await.expect("config");
        assert_eq!(c.cluster_url.to_string(), "https://198.19.0.1:6443/");
        o.master = Some("https://198.19.0.2:6443".into());
        let c = resolve_config(&o).await.expect("config");
        assert_eq!(c.cluster_url.to_string(), "https://198.19.0.2:6443/");
        std::fs::remove_dir_all(&dir).ok();
    }

    #[tokio::test]
    async fn missing_kubeconfig_names_the_path() {
        let mut o = opts();
        o.kubeconfig = Some("/nonexistent/kproxy/kubeconfig".into());
        let err = resolve_config(&o).await.expect_err("must fail");
        assert!(err.to_string().contains("/nonexistent/kproxy/kubeconfig"), "{err}");
    }
}
