//! What the lab writes through the API server: Nodes, Pods whose status it sets as a kubelet
//! would (so upstream's EndpointSlice controller writes the slices), and Services.

use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, Pod, Service, ServiceAccount};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use serde_json::json;

use crate::net::{node_ip, node_name, pod, pod_cidr, NODES, PODS_PER_NODE, POD_TCP, POD_UDP};

/// The namespace holding the lab's Pods and Services.
pub const NAMESPACE: &str = "lab";
/// The pod that is never Ready (its endpoint is published not-ready).
pub const UNREADY_POD: (u8, u8) = (3, 2);

/// A client with the admin kubeconfig.
pub async fn admin_client(kubeconfig: &Path) -> Result<Client, String> {
    let kc = Kubeconfig::read_from(kubeconfig).map_err(|e| format!("reading {}: {e}", kubeconfig.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
        .await
        .map_err(|e| format!("loading {}: {e}", kubeconfig.display()))?;
    Client::try_from(config).map_err(|e| format!("building a client: {e}"))
}

/// Zone label of node `i` (one zone per node, for topology hints).
pub fn zone(i: u8) -> String {
    format!("zone-{}", (b'a' + i - 1) as char)
}

/// The labels pod `k` of node `i` carries; Services select pods by one of these.
pub fn pod_labels(i: u8, _k: u8) -> serde_json::Value {
    let mut labels = json!({ "all": "yes" });
    labels[if i == 1 { "n1" } else { "n23" }] = json!("yes");
    labels
}

/// Creates the namespace, the Nodes (addresses, pod CIDR, zone) and the Pods with their
/// status (IPs, Running, Ready except [`UNREADY_POD`]).
pub async fn create_cluster(client: &Client) -> Result<(), String> {
    let nss: Api<Namespace> = Api::all(client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": NAMESPACE}})).map_err(|e| e.to_string())?;
    nss.create(&PostParams::default(), &ns).await.map_err(|e| format!("creating namespace {NAMESPACE}: {e}"))?;
    // Pod admission wants the namespace's `default` ServiceAccount, which the (not running)
    // serviceaccount controller would create.
    let sas: Api<ServiceAccount> = Api::namespaced(client.clone(), NAMESPACE);
    let sa: ServiceAccount = serde_json::from_value(json!({"metadata": {"name": "default"}})).map_err(|e| e.to_string())?;
    sas.create(&PostParams::default(), &sa).await.map_err(|e| format!("creating ServiceAccount {NAMESPACE}/default: {e}"))?;
    let nodes: Api<Node> = Api::all(client.clone());
    for i in 1..=NODES {
        let name = node_name(i);
        let node: Node = serde_json::from_value(json!({
            "metadata": {"name": name, "labels": {
                "kubernetes.io/hostname": name,
                "topology.kubernetes.io/zone": zone(i),
            }},
            "spec": {"podCIDR": pod_cidr(i), "podCIDRs": [pod_cidr(i)]},
            "status": {
                "addresses": [{"type": "InternalIP", "address": node_ip(i).to_string()},
                              {"type": "Hostname", "address": name}],
                "conditions": [{"type": "Ready", "status": "True"}],
            },
        }))
        .map_err(|e| e.to_string())?;
        nodes.create(&PostParams::default(), &node).await.map_err(|e| format!("creating Node {name}: {e}"))?;
    }
    let pods: Api<Pod> = Api::namespaced(client.clone(), NAMESPACE);
    for i in 1..=NODES {
        for k in 1..=PODS_PER_NODE {
            let (name, ip) = pod(i, k);
            let p: Pod = serde_json::from_value(json!({
                "metadata": {"name": name, "labels": pod_labels(i, k)},
                "spec": {"nodeName": node_name(i), "containers": [{
                    "name": "server", "image": "none.invalid/testserver",
                    "ports": [{"name": "tcp", "containerPort": POD_TCP, "protocol": "TCP"},
                              {"name": "udp", "containerPort": POD_UDP, "protocol": "UDP"}],
                }]},
            }))
            .map_err(|e| e.to_string())?;
            pods.create(&PostParams::default(), &p).await.map_err(|e| format!("creating Pod {name}: {e}"))?;
            let ready = if (i, k) == UNREADY_POD { "False" } else { "True" };
            let status = json!({"status": {
                "phase": "Running",
                "hostIP": node_ip(i).to_string(),
                "podIP": ip.to_string(),
                "podIPs": [{"ip": ip.to_string()}],
                "conditions": [{"type": "Ready", "status": ready}, {"type": "ContainersReady", "status": ready}],
            }});
            pods.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
                .await
                .map_err(|e| format!("setting the status of Pod {name}: {e}"))?;
        }
    }
    Ok(())
}

/// Waits (bounded by `timeout`) until every Service in `names` has an EndpointSlice written
/// by the controller. Returns the names still without one at the deadline as an error.
pub async fn wait_slices(client: &Client, names: &BTreeSet<String>, timeout: Duration) -> Result<(), String> {
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NAMESPACE);
    let deadline = Instant::now() + timeout;
    loop {
        let list = slices.list(&ListParams::default()).await.map_err(|e| format!("listing EndpointSlices: {e}"))?;
        let have: BTreeSet<String> = list
            .items
            .iter()
            .filter_map(|s| s.metadata.labels.as_ref()?.get("kubernetes.io/service-name").cloned())
            .collect();
        let missing: Vec<&String> = names.difference(&have).collect();
        if missing.is_empty() {
            return Ok(());
        }
        if Instant::now() >= deadline {
            return Err(format!(
                "no EndpointSlice after {timeout:?} for {} Services (first: {}); is kube-controller-manager running? \
                 see its log in the run directory",
                missing.len(),
                missing[0]
            ));
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Creates `svc` and, for a LoadBalancer with `lb_ip`, sets its ingress status as a cloud
/// controller would. Returns the Service as stored (ClusterIP and NodePorts allocated).
pub async fn create_service(client: &Client, svc: &Service, lb_ip: Option<&str>) -> Result<Service, String> {
    let api: Api<Service> = Api::namespaced(client.clone(), NAMESPACE);
    let name = svc.metadata.name.clone().unwrap_or_default();
    let created = api.create(&PostParams::default(), svc).await.map_err(|e| format!("creating Service {name}: {e}"))?;
    let Some(ip) = lb_ip else { return Ok(created) };
    let status = json!({"status": {"loadBalancer": {"ingress": [{"ip": ip}]}}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .map_err(|e| format!("setting the LoadBalancer status of Service {name}: {e}"))
}
