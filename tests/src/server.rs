//! [`TestServer`]: a `kproxy-testserver` child process inside a namespace.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crate::netns::describe;
use crate::serve::{ServeArgs, READY};
use crate::{testserver_binary, HarnessError, Netns};

/// How long a server may take to bind its sockets.
const READY_TIMEOUT: Duration = Duration::from_secs(10);

/// Ports a test server listens on (each on IPv4 and IPv6).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServerSpec {
    /// TCP ports.
    pub tcp: Vec<u16>,
    /// UDP ports.
    pub udp: Vec<u16>,
}

impl ServerSpec {
    /// TCP and UDP on the same ports.
    pub fn both(ports: &[u16]) -> Self {
        ServerSpec {
            tcp: ports.to_vec(),
            udp: ports.to_vec(),
        }
    }
    /// TCP ports only.
    pub fn tcp(ports: &[u16]) -> Self {
        ServerSpec {
            tcp: ports.to_vec(),
            udp: Vec::new(),
        }
    }
    /// UDP ports only.
    pub fn udp(ports: &[u16]) -> Self {
        ServerSpec {
            tcp: Vec::new(),
            udp: ports.to_vec(),
        }
    }
}

/// A running test server; killed (and reaped) on drop.
#[derive(Debug)]
pub struct TestServer {
    child: Child,
    name: String,
    ns: String,
}

impl TestServer {
    /// Starts `kproxy-testserver --name NAME ...` inside `ns` and waits (at most 10 s) until
    /// all its sockets are bound.
    pub fn start(ns: &Netns, name: &str, spec: &ServerSpec) -> Result<Self, HarnessError> {
        let args = ServeArgs {
            name: name.to_string(),
            tcp: spec.tcp.clone(),
            udp: spec.udp.clone(),
        };
        let mut cmd = ns.command(testserver_binary()?);
        cmd.args(args.to_args())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let line = describe(&cmd);
        let mut child = cmd
            .spawn()
            .map_err(|source| HarnessError::Spawn { cmd: line, source })?;
        let not_ready = |detail: String| HarnessError::ServerNotReady {
            name: name.to_string(),
            ns: ns.name().to_string(),
            detail,
        };
        let Some(stdout) = child.stdout.take() else {
            let _ = child.kill();
            return Err(not_ready("stdout was not captured".into()));
        };
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut first = String::new();
            let _ = BufReader::new(stdout).read_line(&mut first);
            let _ = tx.send(first);
        });
        let server = TestServer {
            child,
            name: name.to_string(),
            ns: ns.name().to_string(),
        };
        match rx.recv_timeout(READY_TIMEOUT) {
            Ok(line) if line.trim() == READY => Ok(server),
            Ok(_) => Err(not_ready(format!(
                "it exited early: {}",
                server.into_stderr()
            ))),
            Err(_) => Err(not_ready(format!(
                "no readiness line within {READY_TIMEOUT:?}"
            ))),
        }
    }

    /// The name the server replies with.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The namespace it runs in.
    pub fn namespace(&self) -> &str {
        &self.ns
    }

    /// The server's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for the (exited) child and returns what it wrote on stderr.
    fn into_stderr(mut self) -> String {
        let _ = self.child.wait();
        let mut err = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut err);
        }
        err.trim().to_string()
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
