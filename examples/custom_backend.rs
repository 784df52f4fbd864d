//! A custom [`ProxyBackend`]: instead of programming a kernel, it writes down what it is
//! asked to program, one line per service port. A CNI with its own dataplane (eBPF maps, a
//! userspace proxy) implements the same four methods, and kproxy-core's change tracker
//! tells it what to do, full state or only what changed.
//!
//! `cargo run -p kproxy-examples --example custom-backend` (no privileges needed); the test
//! `examples/tests/custom_backend.rs` checks the lines.

use kproxy_core::backend::{ProxyBackend, SyncKind, SyncReport};
use kproxy_core::config::KubeProxyConfiguration;
use kproxy_core::event::{ClusterEvent, Update};
use kproxy_core::model::{Change, ChangeSet, ProxyState, ServicePort};
use kproxy_core::tracker::ChangeTracker;

/// The error of [`LogBackend`]. A real backend names the object and step that failed.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// `sync_changes` came before any `sync_full`: there is nothing the changes apply to.
    #[error("partial sync before any full sync: call sync_full first")]
    NoFullSync,
}

/// Writes down what it is asked to program instead of programming it.
#[derive(Debug, Default)]
pub struct LogBackend {
    /// Service ports it has programmed, `None` before the first full sync. A backend keeps
    /// only what it needs of its own: the state itself is the tracker's, passed to each sync.
    programmed: Option<usize>,
    /// One line per programming step, in order.
    pub lines: Vec<String>,
}

/// `demo/web:http 198.19.160.10:80 -> [198.18.0.11:8080]`: a service port and where its
/// cluster traffic goes.
fn describe(port: &ServicePort) -> String {
    let endpoints: Vec<String> = port.cluster_endpoints.iter().map(ToString::to_string).collect();
    format!("{} {}:{} -> [{}]", port.name, port.cluster_ip, port.port, endpoints.join(", "))
}

impl ProxyBackend for LogBackend {
    type Error = LogError;

    fn sync_full(&mut self, state: &ProxyState) -> Result<SyncReport, LogError> {
        self.lines.push(format!("full: {} service ports", state.services.len()));
        self.lines.extend(state.services.values().map(|p| format!("program {}", describe(p))));
        self.programmed = Some(state.services.len());
        Ok(SyncReport { kind: SyncKind::Full, operations: state.services.len(), warnings: Vec::new() })
    }

    fn sync_changes(&mut self, state: &ProxyState, changes: &ChangeSet) -> Result<SyncReport, LogError> {
        if self.programmed.is_none() {
            return Err(LogError::NoFullSync);
        }
        if changes.settings.is_some() {
            // Node-wide settings changed: everything may look different, start over.
            return self.sync_full(state);
        }
        for change in changes.services.values() {
            self.lines.push(match change {
                Change::Added(p) => format!("add {}", describe(p)),
                Change::Removed(p) => format!("remove {}", describe(p)),
                Change::Modified { new, .. } => format!("update {}", describe(new)),
            });
        }
        self.programmed = Some(state.services.len());
        Ok(SyncReport { kind: SyncKind::Partial, operations: changes.services.len(), warnings: Vec::new() })
    }

    fn cleanup(&mut self) -> Result<(), LogError> {
        self.lines.push("cleanup".into());
        self.programmed = None;
        Ok(())
    }
}

impl LogBackend {
    /// How many service ports are programmed (`None` before the first full sync).
    pub fn programmed(&self) -> Option<usize> {
        self.programmed
    }
}

/// Feeds the sample Service and EndpointSlice through the tracker into `backend`, then
/// moves the endpoints and deletes the Service, syncing only the changes each time.
pub fn drive(backend: &mut LogBackend) -> Result<(), LogError> {
    use kproxy_examples::{web_service, web_slice};
    let settings = KubeProxyConfiguration::default().proxy_settings("node-1".into(), Vec::new());
    let mut tracker = ChangeTracker::new(settings, Default::default());
    tracker.apply(ClusterEvent::Service(Update::Upsert(web_service())));
    tracker.apply(ClusterEvent::EndpointSlice(Update::Upsert(web_slice(&["198.18.0.11"]))));
    tracker.take_state();
    backend.sync_full(tracker.state())?;

    tracker.apply(ClusterEvent::EndpointSlice(Update::Upsert(web_slice(&["198.18.0.12", "198.18.0.13"]))));
    let taken = tracker.take_changes();
    backend.sync_changes(tracker.state(), &taken.changes)?;

    let gone = Update::Delete { namespace: "demo".into(), name: "web".into() };
    tracker.apply(ClusterEvent::Service(gone));
    let taken = tracker.take_changes();
    backend.sync_changes(tracker.state(), &taken.changes)?;
    Ok(())
}

fn main() -> Result<(), LogError> {
    let mut backend = LogBackend::default();
    drive(&mut backend)?;
    for line in &backend.lines {
        println!("{line}");
    }
    Ok(())
}
