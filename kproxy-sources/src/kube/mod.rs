//! The Kubernetes API source: watchers for Services, EndpointSlices, ServiceCIDRs and this
//! node's Node, emitting [`ClusterEvent`]s on a channel.
//!
//! Every kind sends [`ClusterEvent::Synced`] once its initial list is complete, and again
//! after each relist (preceded by deletes for objects that vanished while the watch was
//! broken). Failures never end the source: each watch retries with backoff and logs
//! "Failed to list services" (and the other kinds' equivalents) as warnings.

pub mod client;
mod node_ip;
mod rate_limit;
mod tracker;
mod watch;
mod watched;

use std::path::PathBuf;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use kproxy_core::event::ClusterEvent;
use kube::runtime::watcher;
use kube::Api;
use tokio::sync::mpsc;

use kproxy_telemetry::rest_metrics::RestClientMetrics;
use tokio::task::JoinHandle;

pub use client::{build_client, resolve_config};
pub use node_ip::node_ips;
pub use rate_limit::{RateLimitLayer, TokenBucket};

/// The label selector kube-proxy applies to Services and EndpointSlices: skip objects meant
/// for another proxy and headless services' slices.
pub const DEFAULT_LABEL_SELECTOR: &str = "!service.kubernetes.io/service-proxy-name,!service.kubernetes.io/headless";

/// How to reach the API server and what to watch (plain fields: the caller maps
/// `clientConnection` and the command-line flags onto them).
#[derive(Debug, Clone, PartialEq)]
pub struct KubeSourceOptions {
    /// Kubeconfig file (the `--kubeconfig` flag, else `clientConnection.kubeconfig`);
    /// `None` with no `master` means the in-cluster service account.
    pub kubeconfig: Option<PathBuf>,
    /// `--master`: overrides the kubeconfig's server URL.
    pub master: Option<String>,
    /// Client-side request rate (`clientConnection.qps`): 0 means client-go's default of 5,
    /// negative disables the limit.
    pub qps: f32,
    /// Requests allowed in a burst above `qps` (`clientConnection.burst`).
    pub burst: i32,
    /// `clientConnection.contentType`; only JSON is spoken, anything else gets one notice.
    pub content_type: String,
    /// This node's name (Node watch field selector `metadata.name`).
    pub node_name: String,
    /// Label selector for Services and EndpointSlices.
    pub label_selector: String,
    /// Whether to watch networking.k8s.io/v1 ServiceCIDRs.
    pub watch_service_cidrs: bool,
    /// Where every API request is recorded (`rest_client_*` metrics); `None` records nowhere.
    pub rest_metrics: Option<Arc<RestClientMetrics>>,
}

impl KubeSourceOptions {
    /// kube-proxy's defaults (in-cluster, 5 qps, burst 10, protobuf requested) for `node_name`.
    pub fn new(node_name: impl Into<String>) -> Self {
        KubeSourceOptions {
            kubeconfig: None,
            master: None,
            qps: 5.0,
            burst: 10,
            content_type: "application/vnd.kubernetes.protobuf".into(),
            node_name: node_name.into(),
            label_selector: DEFAULT_LABEL_SELECTOR.into(),
            watch_service_cidrs: true,
            rest_metrics: None,
        }
    }
}

/// Why the Kubernetes source could not start.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The kubeconfig file could not be read or understood.
    #[error("reading kubeconfig {path}: {source} (check --kubeconfig / clientConnection.kubeconfig)")]
    ReadKubeconfig {
        /// The file.
        path: PathBuf,
        /// What kube reported.
        source: Box<kube::config::KubeconfigError>,
    },
    /// Neither a kubeconfig nor --master was given and the in-cluster config is unavailable.
    #[error("loading in-cluster config: {0} (not running in a pod? pass --kubeconfig or --master)")]
    InCluster(#[source] Box<kube::config::InClusterError>),
    /// `--master` is not a URL.
    #[error("parsing --master {master:?}: {source}")]
    ParseMaster {
        /// The value given.
        master: String,
        /// The parse error.
        source: http::uri::InvalidUri,
    },
    /// The HTTP/TLS client could not be built (e.g. a bad CA or client certificate).
    #[error("building the API client: {0}")]
    BuildClient(#[source] Box<kube::Error>),
    /// `node_name` is empty, so the Node watch would select every node.
    #[error("node name is empty (set --hostname-override or the hostname)")]
    EmptyNodeName,
}

/// How every watch lists: as client-go's informers (kube-proxy's) do, from the API server's
/// watch cache (`resourceVersion=0`, "any" semantic) in one response, not a consistent list
/// read from etcd 500 objects a page (kube's default): at 4,000 Services and EndpointSlices
/// the paged consistent lists took 2.6 s of a 2.7 s cold start (issue 13 item 2b). Pages of
/// 500 from the watch cache are not enough: measured at 4,000 x 10, 2.5 s to list (peak RSS
/// 78 MB) against 0.32 s in one response (136 MB), `bench_cold_start`. A relist
/// after a watch error may then see a slightly older state, which the watch that follows
/// brings up to date, as with client-go.
fn list_config() -> watcher::Config {
    let mut config = watcher::Config::default().any_semantic();
    config.page_size = None;
    config
}

/// Builds the client and starts the watchers; the returned task runs until `tx` is closed
/// (it ends shortly after the receiver is dropped). Does not wait for the API server: an
/// unreachable server shows as warnings and retries, not as an error here.
pub async fn spawn_kube_source(
    opts: KubeSourceOptions,
    tx: mpsc::Sender<ClusterEvent>,
) -> Result<JoinHandle<()>, SourceError> {
    if opts.node_name.is_empty() {
        return Err(SourceError::EmptyNodeName);
    }
    let client = build_client(&opts).await?;
    let selected = list_config().labels(&opts.label_selector);
    let node_field = format!("metadata.name={}", opts.node_name);

    let mut tasks = vec![
        tokio::spawn(watch::run_watch(Api::<Service>::all(client.clone()), selected.clone(), tx.clone(), |_| {})),
        tokio::spawn(watch::run_watch(Api::<EndpointSlice>::all(client.clone()), selected, tx.clone(), |_| {})),
    ];
    if opts.watch_service_cidrs {
        let all = list_config();
        tasks.push(tokio::spawn(watch::run_watch(Api::<ServiceCIDR>::all(client.clone()), all, tx.clone(), |_| {})));
    }
    let mut node_logger = node_ip::NodeIpLogger::default();
    let node_cfg = list_config().fields(&node_field);
    tasks.push(tokio::spawn(watch::run_watch(Api::<Node>::all(client), node_cfg, tx, move |ev| node_logger.observe(ev))));

    Ok(tokio::spawn(async move {
        for task in tasks {
            if let Err(err) = task.await {
                tracing::error!(error = %err, "A Kubernetes watch task panicked");
            }
        }
    }))
}
