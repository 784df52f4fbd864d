//! The seed's IPVS example configurations (digest 6.1 and 6.3), verbatim. They are compiled
//! in because the VM has no access to the source tree; keep them identical to
//! `examples/config/production.yaml` and `examples/config/large-cluster.yaml`.

/// 6.1 Production.
pub const PRODUCTION: &str = r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 0.0.0.0
clusterCIDR: "10.244.0.0/16"
clientConnection:
  kubeconfig: "/var/lib/kube-proxy/kubeconfig.conf"
  qps: 10
  burst: 20
mode: "ipvs"
ipvs:
  scheduler: "rr"
  strictARP: true
conntrack:
  maxPerCore: 32768
  min: 131072
  tcpEstablishedTimeout: 24h0m0s
nodePortAddresses: ["0.0.0.0/0"]
portRange: "30000-32767"
oomScoreAdj: -999
configSyncPeriod: 15m0s
udpIdleTimeout: 250ms
"#;

/// 6.3 Large high-performance cluster.
pub const LARGE_CLUSTER: &str = r#"apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
bindAddress: 0.0.0.0
clusterCIDR: "10.0.0.0/8"
clientConnection:
  kubeconfig: "/var/lib/kube-proxy/kubeconfig.conf"
  qps: 20
  burst: 30
mode: "ipvs"
ipvs:
  scheduler: "rr"
  strictARP: true
  tcpTimeout: 900s
  udpTimeout: 300s
conntrack:
  maxPerCore: 65536
  min: 262144
  tcpEstablishedTimeout: 24h0m0s
nodePortAddresses: ["0.0.0.0/0"]
portRange: "30000-40000"
oomScoreAdj: -999
configSyncPeriod: 10m0s
"#;
