//! Static checks of `deploy/`: every manifest decodes as its Kubernetes type, the ConfigMap's
//! KubeProxyConfiguration loads in kproxy without errors, and the DaemonSet, RBAC, image and
//! systemd unit have what a kube-proxy replacement needs. (The API-server e2e tests also
//! dry-run these manifests server-side.)

use k8s_openapi::api::apps::v1::DaemonSet;
use k8s_openapi::api::core::v1::{ConfigMap, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};

fn deploy(file: &str) -> String {
    let path = format!("{}/../deploy/{file}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("read {path}: {e}"))
}

fn documents(file: &str) -> Vec<serde_json::Value> {
    serde_saphyr::from_multiple(&deploy(file)).expect("YAML documents")
}

fn decode<T: serde::de::DeserializeOwned>(v: &serde_json::Value) -> T {
    serde_json::from_value(v.clone()).expect("decodes as its Kubernetes type")
}

#[test]
fn config_map_holds_a_valid_kube_proxy_configuration() {
    let docs = documents("configmap.yaml");
    let cm: ConfigMap = decode(&docs[0]);
    let text = cm.data.as_ref().and_then(|d| d.get("config.conf")).expect("config.conf key");
    let parsed =
        kproxy_core::config::parse(text, "deploy/configmap.yaml:config.conf").expect("kproxy loads the configuration");
    assert_eq!(parsed.config.effective_mode().backend, kproxy_core::config::Mode::Nftables);
    // Boot without the `kubernetes` ClusterIP: a kubeconfig file whose server is the control
    // plane's own endpoint (the ClusterIP is what kproxy programs, so it cannot need it).
    assert_eq!(parsed.config.client_connection.kubeconfig, "/var/lib/kube-proxy/kubeconfig.conf");
    let kubeconfig = cm.data.as_ref().and_then(|d| d.get("kubeconfig.conf")).expect("kubeconfig.conf key");
    let kc: serde_json::Value = serde_saphyr::from_str(kubeconfig).expect("kubeconfig.conf is YAML");
    let cluster = &kc["clusters"][0]["cluster"];
    let server = cluster["server"].as_str().expect("a server");
    assert_eq!(server, "https://CONTROL-PLANE-ENDPOINT:6443", "the one value to set, documented in the file");
    assert_eq!(cluster["certificate-authority"], "/var/run/secrets/kubernetes.io/serviceaccount/ca.crt");
    assert_eq!(kc["users"][0]["user"]["tokenFile"], "/var/run/secrets/kubernetes.io/serviceaccount/token");
    assert!(deploy("configmap.yaml").contains("NOT the `kubernetes` Service's ClusterIP"));
}

#[test]
fn daemon_set_is_a_kube_proxy_drop_in() {
    let docs = documents("daemonset.yaml");
    let ds: DaemonSet = decode(&docs[0]);
    let pod = ds.spec.expect("spec").template.spec.expect("pod spec");
    assert_eq!(pod.host_network, Some(true));
    // Cluster DNS is a Service too: kproxy must not depend on it to start.
    assert_eq!(pod.dns_policy.as_deref(), Some("Default"));
    assert_eq!(pod.priority_class_name.as_deref(), Some("system-node-critical"));
    assert_eq!(pod.service_account_name.as_deref(), Some("kproxy"));
    assert!(pod.tolerations.as_ref().is_some_and(|t| t.iter().any(|t| t.operator.as_deref() == Some("Exists"))));
    let c = &pod.containers[0];
    let command = c.command.clone().unwrap_or_default();
    assert!(command.contains(&"--config=/var/lib/kube-proxy/config.conf".to_string()), "{command:?}");
    assert!(command.contains(&"--hostname-override=$(NODE_NAME)".to_string()), "{command:?}");
    // Least privilege (issue 12 item 7): capabilities only, as tests/tests/daemon_caps.rs runs it.
    let sc = c.security_context.as_ref().expect("securityContext");
    assert_eq!(sc.privileged, Some(false));
    assert_eq!(sc.allow_privilege_escalation, Some(false));
    let caps = sc.capabilities.as_ref().expect("capabilities");
    assert_eq!(caps.drop.as_deref(), Some(&["ALL".to_string()][..]));
    assert_eq!(caps.add.as_deref(), Some(&["NET_ADMIN".to_string(), "SYS_RESOURCE".to_string()][..]));
    let mounts: Vec<_> = c.volume_mounts.iter().flatten().map(|m| m.mount_path.as_str()).collect();
    for path in ["/var/lib/kube-proxy", "/run/xtables.lock", "/lib/modules"] {
        assert!(mounts.contains(&path), "{path} not mounted: {mounts:?}");
    }
    let env = c.env.iter().flatten().find(|e| e.name == "NODE_NAME").expect("NODE_NAME");
    let field = env.value_from.as_ref().and_then(|v| v.field_ref.as_ref()).map(|f| f.field_path.as_str());
    assert_eq!(field, Some("spec.nodeName"));
}

#[test]
fn rbac_grants_what_kproxy_reads_and_writes() {
    let docs = documents("rbac.yaml");
    let _sa: ServiceAccount = decode(&docs[0]);
    let role: ClusterRole = decode(&docs[1]);
    let binding: ClusterRoleBinding = decode(&docs[2]);
    assert_eq!(binding.role_ref.name, "kproxy");
    let rules = role.rules.unwrap_or_default();
    let allows = |group: &str, resource: &str, verb: &str| {
        rules.iter().any(|r| {
            r.api_groups.iter().flatten().any(|g| g == group)
                && r.resources.iter().flatten().any(|x| x == resource)
                && r.verbs.iter().any(|v| v == verb)
        })
    };
    for (group, resource) in
        [("", "services"), ("discovery.k8s.io", "endpointslices"), ("networking.k8s.io", "servicecidrs"), ("", "nodes")]
    {
        for verb in ["list", "watch"] {
            assert!(allows(group, resource, verb), "{verb} {group}/{resource}");
        }
    }
    assert!(allows("", "events", "create") && allows("events.k8s.io", "events", "patch"));
}

#[test]
fn image_and_unit() {
    let containerfile = deploy("Containerfile");
    // No base image can be pulled here: scratch plus what `cargo xtask image` stages (the
    // image itself is built and run by the test command's image stage).
    assert!(containerfile.lines().any(|l| l == "FROM scratch"), "{containerfile}");
    assert!(containerfile.contains("COPY root/ /") && containerfile.contains("ENTRYPOINT [\"/usr/local/bin/kproxy\"]"));
    let unit = deploy("kproxy.service");
    assert!(unit.contains("ExecStart=/usr/local/bin/kproxy"));
    assert!(unit.contains("/var/log/kube-proxy.log"));
    assert!(unit.contains("KillSignal=SIGTERM"));
}
