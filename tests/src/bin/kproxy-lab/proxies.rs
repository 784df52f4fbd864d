//! The proxies under comparison, each in a node namespace, reaching the API server through
//! an [`ApiRelay`] in that namespace.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use kproxy_tests::{ApiRelay, Netns};

use crate::LabEnv;

/// Which proxy a world runs on its nodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// kproxy, nftables backend.
    Kproxy,
    /// Upstream kube-proxy in nftables mode.
    KubeProxyNft,
}

impl Kind {
    /// Name used for the world and in output.
    pub fn label(self) -> &'static str {
        match self {
            Kind::Kproxy => "kproxy",
            Kind::KubeProxyNft => "kube-proxy-nftables",
        }
    }
}

/// Flags both proxies take the same way (kproxy follows kube-proxy's flag names).
const COMMON: &[&str] = &[
    "--proxy-mode=nftables",
    "--cluster-cidr=198.18.0.0/16",
    "--metrics-bind-address=127.0.0.1:10249",
    "--healthz-bind-address=0.0.0.0:10256",
];

/// A proxy process; SIGTERM on drop, SIGKILL after 5 s.
pub struct Proxy {
    child: Child,
    _relay: ApiRelay,
    /// Its combined output.
    pub log: PathBuf,
}

impl Proxy {
    /// Starts `kind` in `ns` as node `node`.
    pub fn start(env: &LabEnv, kind: Kind, ns: &Netns, node: &str) -> Result<Proxy, String> {
        let relay = ApiRelay::start(ns, &env.api)?;
        let (bin, kubeconfig, extra): (&PathBuf, &PathBuf, &[&str]) = match kind {
            Kind::Kproxy => (&env.kproxy, &env.kproxy_kubeconfig, &[]),
            // conntrack-max-per-core=0: leave nf_conntrack_max (not per namespace) alone.
            Kind::KubeProxyNft => (&env.kube_proxy, &env.admin_kubeconfig, &["--conntrack-max-per-core=0", "--v=2"]),
        };
        let log = env.run_dir.join(format!("{}-{node}.log", kind.label()));
        let out = std::fs::File::create(&log).map_err(|e| format!("creating {}: {e}", log.display()))?;
        let err = out.try_clone().map_err(|e| e.to_string())?;
        let mut c: Command = ns.command(bin);
        c.arg(format!("--kubeconfig={}", kubeconfig.display()))
            .arg(format!("--master={}", relay.url()))
            .arg(format!("--hostname-override={node}"))
            .args(COMMON)
            .args(extra)
            .env_remove("KUBERNETES_SERVICE_HOST")
            .env_remove("KUBERNETES_SERVICE_PORT")
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err);
        let child = c.spawn().map_err(|e| format!("starting {} in {}: {e}", bin.display(), ns.name()))?;
        Ok(Proxy { child, _relay: relay, log })
    }

    /// An error if the process has exited.
    pub fn check_running(&mut self) -> Result<(), String> {
        match self.child.try_wait() {
            Ok(Some(st)) => Err(format!("proxy exited ({st}); see {}", self.log.display())),
            _ => Ok(()),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        // `ip netns exec` execs the proxy, so this pid is the proxy itself.
        // Quietly: after Ctrl-C the proxy is usually gone already.
        let _ = Command::new("kill").args(["-TERM", &self.child.id().to_string()]).stderr(Stdio::null()).status();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
