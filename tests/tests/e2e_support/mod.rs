//! Shared helpers for the API-server end-to-end tests (`tests/tests/e2e_*.rs`).
//!
//! Those tests need the real kube-apiserver that `cargo xtask e2e` starts; they are marked
//! `#[ignore = "..."]` so a plain `cargo test` lists them as ignored (explicitly, never as
//! passed), and the harness runs them with `--include-ignored`. Run that way without the
//! harness's environment, [`E2eEnv::require`] FAILS the test with instructions.
//!
//! - [`E2eEnv`]: where the API server is, credentials, and [`E2eEnv::control`] to stop/start
//!   kube-apiserver and etcd (a Unix socket served by the harness).
//! - [`admin_client`] / [`E2eEnv::kproxy_options`]: an admin client and the source options
//!   for kproxy's own ServiceAccount kubeconfig.
//! - [`Events`]: collects `ClusterEvent`s from a running source and waits (bounded) for one.
//! - [`LogCapture`]: the process's tracing output, to assert on grep-able log lines.
//! - [`ApiRelay`]: makes the API server reachable from inside a test network namespace at
//!   `127.0.0.1:<port>` (a userspace relay; no link or route to the root namespace).
//! - Object builders: [`service`], [`endpoint_slice`], [`node`].
// Each e2e test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::{Namespace, Node, NodeAddress, NodeStatus, Service, ServicePort, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use kproxy_bin::source::kube::{build_client, KubeSourceOptions};
use kproxy_core::event::{ClusterEvent, ObjectKind};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::Client;
use tokio::sync::mpsc;

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
}

/// A ClusterIP Service with one TCP port (the API server allocates the IP).
pub fn service(ns: &str, name: &str, port: i32, labels: &[(&str, &str)]) -> Service {
    Service {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: Some(labels.iter().map(|(k, v)| ((*k).into(), (*v).into())).collect::<BTreeMap<_, _>>()),
            ..Default::default()
        },
        spec: Some(ServiceSpec {
            ports: Some(vec![ServicePort { name: Some("p".into()), port, protocol: Some("TCP".into()), ..Default::default() }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// An IPv4 EndpointSlice for `service` with ready endpoints at `ips`, port 8080.
pub fn endpoint_slice(ns: &str, name: &str, service: &str, ips: &[&str]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            namespace: Some(ns.into()),
            name: Some(name.into()),
            labels: Some(BTreeMap::from([("kubernetes.io/service-name".to_string(), service.to_string())])),
            ..Default::default()
        },
        address_type: "IPv4".into(),
        endpoints: ips.iter().map(|ip| Endpoint { addresses: vec![(*ip).into()], ..Default::default() }).collect(),
        ports: Some(vec![EndpointPort { name: Some("p".into()), port: Some(8080), protocol: Some("TCP".into()), ..Default::default() }]),
    }
}

/// A Node with an InternalIP (nodes may carry status on create).
pub fn node(name: &str, internal_ip: &str) -> Node {
    Node {
        metadata: ObjectMeta { name: Some(name.into()), ..Default::default() },
        status: Some(NodeStatus {
            addresses: Some(vec![NodeAddress { type_: "InternalIP".into(), address: internal_ip.into() }]),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Events received from a source, kept in order, with bounded waits.
pub struct Events {
    rx: mpsc::Receiver<ClusterEvent>,
    /// Everything received so far.
    pub seen: Vec<ClusterEvent>,
}

impl Events {
    /// Wraps the receiving end of the source's channel.
    pub fn new(rx: mpsc::Receiver<ClusterEvent>) -> Self {
        Events { rx, seen: Vec::new() }
    }

    /// Waits until an event matching `pred` arrives (events before it are kept in `seen`);
    /// panics with `what` and the recent events after `timeout`.
    pub async fn wait_for(&mut self, what: &str, timeout: Duration, pred: impl Fn(&ClusterEvent) -> bool) -> ClusterEvent {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            match tokio::time::timeout_at(deadline, self.rx.recv()).await {
                Ok(Some(ev)) => {
                    self.seen.push(ev.clone());
                    if pred(&ev) {
                        return ev;
                    }
                }
                Ok(None) => panic!("source channel closed while waiting for {what}"),
                Err(_) => {
                    let tail: Vec<String> = self.seen.iter().rev().take(10).map(summary).collect();
                    panic!("timed out after {timeout:?} waiting for {what}; last events (newest first): {tail:#?}")
                }
            }
        }
    }

    /// Index into `seen` to search from with [`Events::wait_since`].
    pub fn mark(&self) -> usize {
        self.seen.len()
    }

    /// Like [`Events::wait_for`], but first looks at events already received since `mark`
    /// (for changes whose events may arrive in either order).
    pub async fn wait_since(
        &mut self,
        mark: usize,
        what: &str,
        timeout: Duration,
        pred: impl Fn(&ClusterEvent) -> bool,
    ) -> ClusterEvent {
        if let Some(ev) = self.seen[mark.min(self.seen.len())..].iter().find(|e| pred(e)) {
            return ev.clone();
        }
        self.wait_for(what, timeout, pred).await
    }

    /// Waits until every kind in `kinds` has sent `Synced` (counting only new events).
    pub async fn wait_synced(&mut self, kinds: &[ObjectKind], timeout: Duration) {
        let deadline = Instant::now() + timeout;
        let start = self.seen.len();
        loop {
            let missing: Vec<ObjectKind> = kinds
                .iter()
                .copied()
                .filter(|k| !self.seen[start..].contains(&ClusterEvent::Synced(*k)))
                .collect();
            if missing.is_empty() {
                return;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            self.wait_for(&format!("Synced of {missing:?}"), left, |e| matches!(e, ClusterEvent::Synced(_))).await;
        }
    }
}

/// One line per event: kind, verb, namespace/name.
pub fn summary(ev: &ClusterEvent) -> String {
    use kproxy_core::event::Update;
    use kube::ResourceExt;
    fn up<K: kube::Resource>(u: &Update<K>) -> String {
        match u {
            Update::Upsert(o) => format!("upsert {}/{}", o.namespace().unwrap_or_default(), o.name_any()),
            Update::Delete { namespace, name } => format!("delete {namespace}/{name}"),
        }
    }
    match ev {
        ClusterEvent::Service(u) => format!("Service {}", up(u)),
        ClusterEvent::EndpointSlice(u) => format!("EndpointSlice {}", up(u)),
        ClusterEvent::ServiceCidr(u) => format!("ServiceCIDR {}", up(u)),
        ClusterEvent::Node(u) => format!("Node {}", up(u)),
        ClusterEvent::Synced(k) => format!("Synced({k:?})"),
    }
}

/// The name in an upsert/delete event of `kind`, if it is one.
pub fn name_of(ev: &ClusterEvent) -> Option<(ObjectKind, bool, String)> {
    use kproxy_core::event::Update;
    use kube::ResourceExt;
    fn up<K: kube::Resource>(u: &Update<K>) -> (bool, String) {
        match u {
            Update::Upsert(o) => (true, o.name_any()),
            Update::Delete { name, .. } => (false, name.clone()),
        }
    }
    let (kind, (upsert, name)) = match ev {
        ClusterEvent::Service(u) => (ObjectKind::Service, up(u)),
        ClusterEvent::EndpointSlice(u) => (ObjectKind::EndpointSlice, up(u)),
        ClusterEvent::ServiceCidr(u) => (ObjectKind::ServiceCidr, up(u)),
        ClusterEvent::Node(u) => (ObjectKind::Node, up(u)),
        ClusterEvent::Synced(_) => return None,
    };
    Some((kind, upsert, name))
}

/// True for an upsert of `kind` named `name`.
pub fn is_upsert(ev: &ClusterEvent, kind: ObjectKind, name: &str) -> bool {
    name_of(ev).is_some_and(|(k, up, n)| k == kind && up && n == name)
}

/// True for a delete of `kind` named `name`.
pub fn is_delete(ev: &ClusterEvent, kind: ObjectKind, name: &str) -> bool {
    name_of(ev).is_some_and(|(k, up, n)| k == kind && !up && n == name)
}

/// The test process's tracing output (installed once per test binary; also echoed to
/// stderr so `--nocapture` shows it).
pub struct LogCapture {
    buf: Arc<Mutex<Vec<u8>>>,
}

struct CaptureWriter(Arc<Mutex<Vec<u8>>>);

impl Write for CaptureWriter {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).extend_from_slice(data);
        std::io::stderr().write_all(data)?;
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl LogCapture {
    /// Installs (once) an INFO-level subscriber writing into the capture.
    pub fn install() -> &'static LogCapture {
        static CAPTURE: OnceLock<LogCapture> = OnceLock::new();
        CAPTURE.get_or_init(|| {
            let buf = Arc::new(Mutex::new(Vec::new()));
            let writer_buf = Arc::clone(&buf);
            tracing_subscriber::fmt()
                .with_env_filter(tracing_subscriber::EnvFilter::new("info,kube_client=warn,kube_runtime=warn"))
                .with_ansi(false)
                .with_writer(move || CaptureWriter(Arc::clone(&writer_buf)))
                .init();
            LogCapture { buf }
        })
    }

    /// Current length (a mark to search from).
    pub fn mark(&self) -> usize {
        self.buf.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Lines after `mark` containing `needle`.
    pub fn lines_since(&self, mark: usize, needle: &str) -> Vec<String> {
        let buf = self.buf.lock().unwrap_or_else(|p| p.into_inner());
        String::from_utf8_lossy(&buf[mark.min(buf.len())..]).lines().filter(|l| l.contains(needle)).map(String::from).collect()
    }

    /// Waits (polling every 100 ms, bounded by `timeout`) for a line after `mark` with `needle`.
    pub async fn wait_line(&self, mark: usize, needle: &str, timeout: Duration) -> String {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(l) = self.lines_since(mark, needle).into_iter().next() {
                return l;
            }
            assert!(Instant::now() < deadline, "no log line containing {needle:?} within {timeout:?}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

/// Makes the API server reachable from inside a network namespace: a listener opened in
/// the namespace at `127.0.0.1:<port>` whose connections are relayed, by threads in the
/// root namespace, to the API server's 127.0.0.1 port. Only these TCP byte streams cross;
/// there is no link or route between the namespaces. The serving certificate is for
/// 127.0.0.1, so TLS verifies unchanged. Stops accepting when dropped.
pub struct ApiRelay {
    /// Address inside the namespace.
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl ApiRelay {
    /// Starts relaying from `netns` (127.0.0.1, a free port there) to `api_url`'s port.
    pub fn start(netns: &kproxy_tests::Netns, api_url: &str) -> Result<ApiRelay, String> {
        let target: SocketAddr = api_url
            .trim_start_matches("https://")
            .trim_end_matches('/')
            .parse()
            .map_err(|e| format!("API server URL {api_url:?} is not https://IP:PORT: {e}"))?;
        let listener = netns
            .run_in(|| TcpListener::bind("127.0.0.1:0"))
            .map_err(|e| format!("entering {}: {e}", netns.name()))?
            .map_err(|e| format!("listening in {}: {e}", netns.name()))?;
        let addr = listener.local_addr().map_err(|e| e.to_string())?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((inside, _)) => relay(inside, target),
                    Err(_) => std::thread::sleep(Duration::from_millis(20)),
                }
            }
        });
        Ok(ApiRelay { addr, stop })
    }

    /// `https://127.0.0.1:<port>` as seen from inside the namespace.
    pub fn url(&self) -> String {
        format!("https://{}", self.addr)
    }
}

impl Drop for ApiRelay {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

fn relay(inside: TcpStream, target: SocketAddr) {
    let _ = inside.set_nonblocking(false);
    let Ok(outside) = TcpStream::connect_timeout(&target, Duration::from_secs(5)) else { return };
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut from, &mut to);
            let _ = to.shutdown(std::net::Shutdown::Both);
        })
    };
    if let (Ok(i2), Ok(o2)) = (inside.try_clone(), outside.try_clone()) {
        pipe(inside, outside);
        pipe(o2, i2);
    }
}

/// The `kproxy` binary running inside a test network namespace against the harness's API
/// server: `--kubeconfig` is kproxy's ServiceAccount kubeconfig, `--master` the relay's
/// in-namespace URL, `--hostname-override` the node name; `args` adds the rest (config file,
/// mode, ...). Output goes to `<run dir>/kproxy-<node>.log`. Dropping it sends SIGTERM and
/// waits (bounded), then SIGKILLs.
pub struct KproxyDaemon {
    child: std::process::Child,
    /// The daemon's combined stdout/stderr.
    pub log: PathBuf,
}

impl KproxyDaemon {
    /// Starts `kproxy` (from [`kproxy_tests::kproxy_binary`]; `cargo xtask e2e` builds it and
    /// sets `KPROXY_BIN`) in `netns`.
    pub fn start(
        env: &E2eEnv,
        netns: &kproxy_tests::Netns,
        relay: &ApiRelay,
        node_name: &str,
        args: &[&str],
    ) -> Result<KproxyDaemon, String> {
        let bin = kproxy_tests::kproxy_binary().map_err(|e| e.to_string())?;
        let log = env.run_dir.join(format!("kproxy-{node_name}.log"));
        let out = std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut cmd = netns.command(&bin);
        cmd.arg(format!("--kubeconfig={}", env.kproxy_kubeconfig.display()))
            .arg(format!("--master={}", relay.url()))
            .arg(format!("--hostname-override={node_name}"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = cmd.spawn().map_err(|e| format!("starting {} in {}: {e}", bin.display(), netns.name()))?;
        Ok(KproxyDaemon { child, log })
    }

    /// Everything the daemon logged so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits (polling every 100 ms, bounded by `timeout`) for a log line containing `needle`;
    /// fails early if the daemon exits.
    pub fn wait_log(&mut self, needle: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(line) = self.log_text().lines().find(|l| l.contains(needle)) {
                return Ok(line.to_string());
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("kproxy exited ({status}) before logging {needle:?}; log:\n{}", self.log_text()));
            }
            if Instant::now() >= deadline {
                return Err(format!("kproxy did not log {needle:?} within {timeout:?}; log:\n{}", self.log_text()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// SIGTERM, then wait up to `grace` for the exit status (SIGKILL after that).
    pub fn stop(&mut self, grace: Duration) -> Option<std::process::ExitStatus> {
        if let Ok(Some(st)) = self.child.try_wait() {
            return Some(st);
        }
        // The pid fits: Linux pids are below 2^22.
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + grace;
        while Instant::now() < deadline {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        self.child.wait().ok();
        None
    }
}

impl Drop for KproxyDaemon {
    fn drop(&mut self) {
        self.stop(Duration::from_secs(5));
    }
}
