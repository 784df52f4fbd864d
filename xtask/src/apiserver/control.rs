//! A Unix socket through which e2e tests ask the harness to stop/start the control plane
//! (e.g. "restart the API server", "kill etcd briefly") while they keep running.
//!
//! Protocol: the client writes one command line and reads one reply line, `ok` or
//! `error: <what>`. Commands: `ping`, `stop-apiserver`, `start-apiserver` (returns after
//! `/readyz` is ok), `restart-apiserver`, `stop-etcd`, `kill-etcd`, `start-etcd`.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use super::cluster::Cluster;

/// The serving thread; stops when dropped.
pub struct ControlServer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl ControlServer {
    /// Listens on `path` and serves commands against `cluster` on a thread.
    pub fn start(path: &Path, cluster: Arc<Mutex<Cluster>>) -> Result<Self, String> {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).map_err(|e| format!("binding {}: {e}", path.display()))?;
        // Non-blocking accept so the thread can notice `stop` (checked every 50 ms).
        listener.set_nonblocking(true).map_err(|e| format!("configuring {}: {e}", path.display()))?;
        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((stream, _)) => serve(stream, &cluster),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(50))
                    }
                    Err(e) => {
                        eprintln!("apiserver control: accept failed: {e}");
                        std::thread::sleep(Duration::from_millis(50));
                    }
                }
            }
        });
        Ok(ControlServer { stop, thread: Some(thread) })
    }
}

impl Drop for ControlServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(stream: UnixStream, cluster: &Mutex<Cluster>) {
    let _ = stream.set_nonblocking(false);
    // A test that connects and never writes must not wedge the harness forever.
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut line = String::new();
    let mut reader = BufReader::new(&stream);
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let command = line.trim();
    println!("apiserver control: {command}");
    // A panic while holding the lock cannot leave the cluster half-updated in a way that
    // matters more than failing the test run, so recover the guard.
    let mut c = cluster.lock().unwrap_or_else(|p| p.into_inner());
    let result = match command {
        "ping" => Ok(()),
        "stop-apiserver" => {
            c.stop_apiserver();
            Ok(())
        }
        "start-apiserver" => c.start_apiserver(),
        "restart-apiserver" => {
            c.stop_apiserver();
            c.start_apiserver()
        }
        "stop-etcd" => {
            c.stop_etcd();
            Ok(())
        }
        "kill-etcd" => {
            c.kill_etcd();
            Ok(())
        }
        "start-etcd" => c.start_etcd(),
        other => Err(format!("unknown command {other:?}")),
    };
    drop(c);
    let reply = match result {
        Ok(()) => "ok\n".to_string(),
        Err(e) => format!("error: {}\n", e.replace('\n', " ")),
    };
    let _ = (&stream).write_all(reply.as_bytes());
}
