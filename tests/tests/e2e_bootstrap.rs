//! A new or rebooted node: kproxy started with the shipped `deploy/configmap.yaml` (its
//! `config.conf` and `kubeconfig.conf`, only the documented values filled in) in a fresh node
//! namespace with no service rules at all reaches the API server at its real address (not the
//! `kubernetes` ClusterIP, which nothing has programmed yet) and programs the node, including
//! that ClusterIP. Needs root.
//!
//! Run with `cargo xtask e2e` (ignored under plain `cargo test`).

mod e2e_support;

use std::time::Duration;

use e2e_support::{endpoint_slice, node, service, ApiRelay, E2eEnv, KproxyDaemon, NftMonitor, Scratch};
use k8s_openapi::api::core::v1::{ConfigMap, Node, Service};
use kube::api::{Api, PostParams};

const NODE_IP: &str = "198.19.0.8";

fn shipped_config_map() -> ConfigMap {
    let path = format!("{}/../deploy/configmap.yaml", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"));
    serde_yaml::from_str(&text).expect("deploy/configmap.yaml is a ConfigMap")
}

/// The ServiceAccount token from the harness's kproxy kubeconfig, as the kubelet would
/// project it into the pod's token file.
fn service_account_token(env: &E2eEnv) -> String {
    let text = std::fs::read_to_string(&env.kproxy_kubeconfig).expect("kproxy kubeconfig");
    let kc: serde_yaml::Value = serde_yaml::from_str(&text).expect("kubeconfig YAML");
    kc["users"][0]["user"]["token"].as_str().expect("a token user").to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "needs the real API server: run `cargo xtask e2e`"]
async fn shipped_configuration_boots_a_node_without_service_rules() {
    let env = E2eEnv::require();
    kproxy_tests::require_root();
    let scratch = Scratch::new(&env, "bootstrap").await;
    let pp = PostParams::default();
    let node_name = format!("e2e-bootstrap-{}", std::process::id());
    Api::<Node>::all(scratch.admin.clone()).create(&pp, &node(&node_name, NODE_IP)).await.expect("create node");

    let ns = kproxy_tests::Netns::new("e2e-boot").expect("node netns");
    let before = ns.exec(["nft", "list", "ruleset"]).expect("nft list ruleset");
    assert!(before.trim().is_empty(), "a fresh node has no rules:\n{before}");
    let relay = ApiRelay::start(&ns, &env.url).expect("relay");

    // The pod's files: the ConfigMap's two keys with the documented values set, the
    // ServiceAccount token and CA where the kubelet mounts them (here: a temp dir).
    let dir = tempfile::tempdir().expect("temp dir");
    let token = dir.path().join("token");
    std::fs::write(&token, service_account_token(&env)).unwrap();
    let data = shipped_config_map().data.expect("ConfigMap data");
    let kubeconfig = data["kubeconfig.conf"]
        .replace("https://CONTROL-PLANE-ENDPOINT:6443", &relay.url())
        .replace("/var/run/secrets/kubernetes.io/serviceaccount/ca.crt", &env.ca.display().to_string())
        .replace("/var/run/secrets/kubernetes.io/serviceaccount/token", &token.display().to_string());
    assert!(!kubeconfig.contains("CONTROL-PLANE-ENDPOINT"));
    let kubeconfig_path = dir.path().join("kubeconfig.conf");
    std::fs::write(&kubeconfig_path, kubeconfig).unwrap();
    let config = data["config.conf"]
        .replace("/var/lib/kube-proxy/kubeconfig.conf", &kubeconfig_path.display().to_string())
        .replace("10.244.0.0/16", "198.18.0.0/16");
    let config_path = dir.path().join("config.conf");
    std::fs::write(&config_path, config).unwrap();

    let monitor = NftMonitor::start(&ns);
    // The DaemonSet's command line.
    let args = [format!("--config={}", config_path.display()), format!("--hostname-override={node_name}")];
    let mut daemon = KproxyDaemon::start_with_args(&env, &ns, &node_name, &args).expect("start kproxy");
    daemon.wait_log("Successfully retrieved node IP", Duration::from_secs(30)).expect("reached the API server");

    // The `kubernetes` Service's ClusterIP (what in-cluster configuration would have needed)
    // is programmed by kproxy itself, and so is a Service created now.
    let kubernetes = Api::<Service>::namespaced(scratch.admin.clone(), "default").get("kubernetes").await.expect("svc");
    let api_ip = kubernetes.spec.and_then(|s| s.cluster_ip).expect("kubernetes ClusterIP");
    let svc = scratch.services.create(&pp, &service(&scratch.ns, "web", 80, &[])).await.expect("create service");
    let ip = svc.spec.and_then(|s| s.cluster_ip).expect("ClusterIP");
    scratch.slices.create(&pp, &endpoint_slice(&scratch.ns, "web-1", "web", &["198.18.1.10"])).await.expect("slice");
    monitor.wait(&ip, Duration::from_secs(30)).expect("the new Service programmed");
    let ruleset = ns.exec(["nft", "list", "ruleset"]).expect("nft list ruleset");
    assert!(ruleset.contains(&api_ip), "the kubernetes ClusterIP {api_ip} is not programmed:\n{ruleset}");
    assert!(ruleset.contains("198.18.1.10"), "endpoint missing:\n{ruleset}");
    assert!(daemon.is_running(), "kproxy exited; log:\n{}", daemon.log_text());
    assert!(!daemon.log_text().contains("in-cluster"), "used in-cluster config:\n{}", daemon.log_text());
}
