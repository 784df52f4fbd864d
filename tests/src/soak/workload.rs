//! The soak's cluster as manifest files: `services` ClusterIP Services with two endpoints
//! each, spread over `files` files, and the endpoint changes applied to them.
//!
//! Every endpoint address is used once in a run (a counter over 198.18.0.0-198.19.127.255),
//! so the address alone tells which change an `nft monitor` line belongs to.

use std::fmt::Write as _;
use std::io;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

/// First endpoint address; endpoints take consecutive addresses from here.
const ENDPOINT_BASE: u32 = u32::from_be_bytes([198, 18, 0, 0]);
/// Endpoint addresses available before the counter wraps (up to 198.19.127.255, below the VIPs).
const ENDPOINT_SPAN: u32 = 2 * 65536 - 32768;
/// First ClusterIP; Service `i` gets `VIP_BASE + i`.
const VIP_BASE: u32 = u32::from_be_bytes([198, 19, 160, 0]);
/// ClusterIPs available (198.19.160.0 - 198.19.255.255).
pub const MAX_SERVICES: usize = 96 * 256;
/// Endpoints per Service.
const ENDPOINTS: usize = 2;

/// One endpoint change: which Service, the address it gained (the one it lost is gone).
#[derive(Debug, Clone, Copy)]
pub struct Change {
    /// Index of the Service.
    pub service: usize,
    /// The new endpoint address.
    pub added: Ipv4Addr,
}

/// The Services' current endpoints and where their files are.
pub struct Workload {
    dir: PathBuf,
    files: usize,
    endpoints: Vec<[Ipv4Addr; ENDPOINTS]>,
    next_address: u32,
    changes: u64,
    stride: u64,
}

impl Workload {
    /// A cluster of `services` Services over `files` files in `dir` (nothing written yet).
    pub fn new(dir: &Path, services: usize, files: usize) -> Workload {
        assert!(services > 0 && services <= MAX_SERVICES, "services must be 1..={MAX_SERVICES}");
        let files = files.clamp(1, services);
        let n = services as u64;
        // A stride coprime to n visits every Service once per n changes, in scattered order.
        let stride = (1..=n / 2 + 1).rev().find(|s| gcd(*s, n) == 1).unwrap_or(1);
        let mut w = Workload { dir: dir.to_path_buf(), files, endpoints: Vec::new(), next_address: 0, changes: 0, stride };
        w.endpoints = (0..services).map(|_| [w.allocate(), w.allocate()]).collect();
        w
    }

    /// Every endpoint address the initial state holds.
    pub fn initial_addresses(&self) -> Vec<Ipv4Addr> {
        self.endpoints.iter().flatten().copied().collect()
    }

    /// Writes every file (atomically, like [`Workload::apply`]).
    pub fn write_all(&self) -> io::Result<()> {
        (0..self.files).try_for_each(|f| self.write_file(f))
    }

    /// The next change: a Service (spread over all of them, one after another in no file
    /// order) replaces its older endpoint with a fresh address. Not written yet.
    pub fn next_change(&mut self) -> Change {
        let n = self.endpoints.len() as u64;
        let service = ((self.changes * self.stride) % n) as usize;
        self.changes += 1;
        let added = self.allocate();
        let eps = &mut self.endpoints[service];
        eps.rotate_left(1);
        eps[ENDPOINTS - 1] = added;
        Change { service, added }
    }

    /// Writes the file holding `change`'s Service: a temporary file, then a rename.
    /// Returns after the rename; `before_rename` runs just before it.
    pub fn apply(&self, change: Change, before_rename: impl FnOnce()) -> io::Result<()> {
        let f = change.service % self.files;
        let (tmp, path) = self.paths(f);
        std::fs::write(&tmp, self.file_text(f))?;
        before_rename();
        std::fs::rename(tmp, path)
    }

    fn write_file(&self, f: usize) -> io::Result<()> {
        let (tmp, path) = self.paths(f);
        std::fs::write(&tmp, self.file_text(f))?;
        std::fs::rename(tmp, path)
    }

    fn paths(&self, f: usize) -> (PathBuf, PathBuf) {
        (self.dir.join(format!(".svc-{f:04}.yaml.tmp")), self.dir.join(format!("svc-{f:04}.yaml")))
    }

    fn file_text(&self, f: usize) -> String {
        let mut text = String::new();
        for i in (f..self.endpoints.len()).step_by(self.files) {
            service_yaml(&mut text, i, &self.endpoints[i]);
        }
        text
    }

    fn allocate(&mut self) -> Ipv4Addr {
        let a = Ipv4Addr::from(ENDPOINT_BASE + self.next_address % ENDPOINT_SPAN);
        self.next_address += 1;
        a
    }
}

/// The ClusterIP of Service `i`.
pub fn vip(i: usize) -> Ipv4Addr {
    Ipv4Addr::from(VIP_BASE + i as u32)
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

fn service_yaml(out: &mut String, i: usize, endpoints: &[Ipv4Addr]) {
    let vip = vip(i);
    // Writing into a String cannot fail.
    let _ = write!(
        out,
        "---\napiVersion: v1\nkind: Service\nmetadata: {{name: s{i}, namespace: soak}}\n\
         spec:\n  clusterIP: {vip}\n  clusterIPs: [\"{vip}\"]\n  ports:\n  - {{name: http, port: 80, targetPort: 8080, protocol: TCP}}\n\
         ---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\n\
         metadata:\n  name: s{i}-a\n  namespace: soak\n  labels: {{kubernetes.io/service-name: s{i}}}\n\
         addressType: IPv4\nports:\n- {{name: http, port: 8080, protocol: TCP}}\nendpoints:\n"
    );
    for a in endpoints {
        let _ = write!(out, "- addresses: [\"{a}\"]\n  conditions: {{ready: true}}\n  nodeName: node-1\n");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn changes_visit_every_service_and_never_reuse_an_address() {
        let dir = std::env::temp_dir();
        let mut w = Workload::new(&dir, 30, 4);
        let mut seen: std::collections::BTreeSet<Ipv4Addr> = w.initial_addresses().into_iter().collect();
        let mut services = std::collections::BTreeSet::new();
        for _ in 0..30 {
            let c = w.next_change();
            assert!(seen.insert(c.added), "address {} reused", c.added);
            services.insert(c.service);
        }
        assert_eq!(services.len(), 30);
        assert!(w.file_text(1).contains(&vip(5).to_string()), "service 5 is in file 1 of 4");
    }
}
