//! The harness's environment, admin access and scratch namespaces.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kproxy_bin::source::kube::{build_client, KubeSourceOptions};
use kube::api::{Api, ObjectMeta, PostParams};
use futures::{StreamExt, TryStreamExt};
use kube::Client;

use super::{endpoint_slice, service};

/// What `cargo xtask e2e` tells the tests.
#[derive(Debug, Clone)]
pub struct E2eEnv {
    /// `https://127.0.0.1:<port>`.
    pub url: String,
    /// system:masters kubeconfig.
    pub admin_kubeconfig: PathBuf,
    /// kube-system/kproxy ServiceAccount kubeconfig (token from the TokenRequest API).
    pub kproxy_kubeconfig: PathBuf,
    /// CA of the serving certificate.
    pub ca: PathBuf,
    /// The harness's control socket.
    pub control: PathBuf,
    /// The run directory (logs, certificates).
    pub run_dir: PathBuf,
}

impl E2eEnv {
    /// Reads the harness's environment; panics (fails the test) when it is missing.
    pub fn require() -> E2eEnv {
        let var = |k: &str| {
            std::env::var(k).unwrap_or_else(|_| {
                panic!(
                    "{k} is not set: this end-to-end test needs the real kube-apiserver that \
                     `cargo xtask e2e` starts (it sets KPROXY_E2E_* and runs these tests); \
                     run `cargo xtask e2e` instead of `cargo test -- --ignored`"
                )
            })
        };
        E2eEnv {
            url: var("KPROXY_E2E_APISERVER"),
            admin_kubeconfig: var("KPROXY_E2E_ADMIN_KUBECONFIG").into(),
            kproxy_kubeconfig: var("KPROXY_E2E_KPROXY_KUBECONFIG").into(),
            ca: var("KPROXY_E2E_CA").into(),
            control: var("KPROXY_E2E_CONTROL").into(),
            run_dir: var("KPROXY_E2E_RUN_DIR").into(),
        }
    }

    /// Source options as kproxy would use them with its ServiceAccount kubeconfig.
    pub fn kproxy_options(&self, node_name: &str) -> KubeSourceOptions {
        let mut o = KubeSourceOptions::new(node_name);
        o.kubeconfig = Some(self.kproxy_kubeconfig.clone());
        o
    }

    /// Asks the harness to run a control command (`stop-apiserver`, `start-apiserver`,
    /// `restart-apiserver`, `stop-etcd`, `kill-etcd`, `start-etcd`, `ping`); returns once
    /// it is done (`start-apiserver` waits for `/readyz`). Bounded by a 150 s reply timeout.
    pub fn control(&self, command: &str) -> Result<(), String> {
        let mut s = UnixStream::connect(&self.control)
            .map_err(|e| format!("connecting to the harness at {}: {e}", self.control.display()))?;
        s.set_read_timeout(Some(Duration::from_secs(150))).map_err(|e| e.to_string())?;
        s.write_all(format!("{command}\n").as_bytes()).map_err(|e| format!("sending {command}: {e}"))?;
        let mut reply = String::new();
        BufReader::new(&s).read_line(&mut reply).map_err(|e| format!("waiting for {command}: {e}"))?;
        match reply.trim() {
            "ok" => Ok(()),
            other => Err(format!("harness: {command}: {other}")),
        }
    }
}

/// An unthrottled admin (system:masters) client.
pub async fn admin_client(env: &E2eEnv) -> Client {
    let mut o = KubeSourceOptions::new("unused");
    o.kubeconfig = Some(env.admin_kubeconfig.clone());
    o.qps = -1.0;
    o.content_type = "application/json".into();
    build_client(&o).await.expect("admin client from the harness's kubeconfig")
}

/// Creates a namespace named `<prefix>-<pid>-<n>` and returns its name. Namespaces are not
/// deleted (no namespace controller runs); the whole control plane is discarded after the run.
pub async fn create_namespace(client: &Client, prefix: &str) -> String {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    let name = format!("{prefix}-{}-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed));
    let ns = Namespace { metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() }, ..Default::default() };
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await.expect("create namespace");
    name
}

/// A fresh namespace with admin handles for the objects tests create in it.
pub struct Scratch {
    /// Admin client.
    pub admin: Client,
    /// The namespace (see [`create_namespace`]).
    pub ns: String,
    /// Services in `ns`.
    pub services: Api<Service>,
    /// EndpointSlices in `ns`.
    pub slices: Api<EndpointSlice>,
}

impl Scratch {
    /// Creates namespace `<prefix>-<pid>-<n>` with an admin client.
    pub async fn new(env: &E2eEnv, prefix: &str) -> Scratch {
        let admin = admin_client(env).await;
        let ns = create_namespace(&admin, prefix).await;
        let services = Api::namespaced(admin.clone(), &ns);
        let slices = Api::namespaced(admin.clone(), &ns);
        Scratch { admin, ns, services, slices }
    }

    /// Creates Services `svc-0`..`svc-{n-1}` (port 80), each with one EndpointSlice
    /// `svc-<i>-a` holding the single endpoint [`bulk_endpoint_ip`]`(i)`, 16 writes at a time.
    pub async fn populate(&self, n: usize) {
        let started = std::time::Instant::now();
        futures::stream::iter(0..n)
            .map(|i| async move {
                let name = format!("svc-{i}");
                self.services.create(&PostParams::default(), &service(&self.ns, &name, 80, &[])).await?;
                let slice = endpoint_slice(&self.ns, &format!("{name}-a"), &name, &[&bulk_endpoint_ip(i)]);
                self.slices.create(&PostParams::default(), &slice).await?;
                Ok::<_, kube::Error>(())
            })
            .buffer_unordered(16)
            .try_collect::<Vec<()>>()
            .await
            .expect("create services and slices");
        println!("created {n} Services + {n} EndpointSlices in {:?}", started.elapsed());
    }
}

/// The endpoint address [`Scratch::populate`] gives Service `i` (198.18.10.1 onwards).
pub fn bulk_endpoint_ip(i: usize) -> String {
    format!("198.18.{}.{}", 10 + i / 250, 1 + i % 250)
}

/// Adds ServiceCIDR `cidr` (named after it) and marks it Ready, as kube-controller-manager's
/// ServiceCIDR controller would (it does not run in this harness; the API server allocates
/// only from Ready ServiceCIDRs). The harness's own range is a /20: 4,096 ClusterIPs.
pub async fn add_service_cidr(admin: &Client, cidr: &str) {
    use k8s_openapi::api::networking::v1::{ServiceCIDR, ServiceCIDRSpec};
    use kube::api::{Patch, PatchParams};
    let name = format!("extra-{}", cidr.replace(['.', ':', '/'], "-"));
    let extra = ServiceCIDR {
        metadata: ObjectMeta { name: Some(name.clone()), ..Default::default() },
        spec: Some(ServiceCIDRSpec { cidrs: Some(vec![cidr.into()]) }),
        ..Default::default()
    };
    let api = Api::<ServiceCIDR>::all(admin.clone());
    match api.create(&PostParams::default(), &extra).await {
        Ok(_) => {}
        // Another test of the same run added it already.
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(err) => panic!("create the extra ServiceCIDR {cidr}: {err}"),
    }
    let ready = serde_json::json!({"status": {"conditions": [{
        "type": "Ready", "status": "True", "reason": "", "message": "",
        "lastTransitionTime": "2026-01-01T00:00:00Z"
    }]}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&ready)).await.expect("mark the extra ServiceCIDR Ready");
}
