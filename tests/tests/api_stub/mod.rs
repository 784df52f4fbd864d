//! A stand-in Kubernetes API server for daemon tests: plain HTTP on 127.0.0.1 inside a test's
//! node namespace, answering each request from a function of its path (lists, refusals, or a
//! watch stream of timed events). Every connection and the listener stop when the stub is
//! dropped, so nothing outlives a test.

// Each test file uses its own part of the stub.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use kproxy_tests::Netns;

/// How the stub answers one request.
pub enum Answer {
    /// A complete response: status and JSON body.
    Once(u16, String),
    /// A watch: `200` and these events (JSON lines), each after its delay from the start;
    /// then the stream stays open until the stub is dropped.
    Stream(Vec<(Duration, String)>),
}

/// The running stub.
pub struct ApiStub {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    served: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl ApiStub {
    /// Listen on 127.0.0.1 (a free port) inside `ns` and answer with `respond(path)`.
    pub fn start(ns: &Netns, respond: impl Fn(&str) -> Answer + Send + Sync + 'static) -> ApiStub {
        let listener = ns.run_in(|| TcpListener::bind("127.0.0.1:0")).expect("node namespace").expect("bind");
        listener.set_nonblocking(true).expect("non-blocking listener");
        let addr = listener.local_addr().expect("local address");
        let (stop, served) = (Arc::new(AtomicBool::new(false)), Arc::new(AtomicUsize::new(0)));
        let thread = {
            let (stop, served, respond) = (stop.clone(), served.clone(), Arc::new(respond));
            std::thread::spawn(move || {
                let mut connections = Vec::new();
                while !stop.load(Ordering::Relaxed) {
                    match listener.accept() {
                        Ok((conn, _)) => {
                            let (stop, served, respond) = (stop.clone(), served.clone(), respond.clone());
                            connections.push(std::thread::spawn(move || serve(conn, &*respond, &stop, &served)));
                        }
                        Err(_) => std::thread::sleep(Duration::from_millis(10)),
                    }
                }
                for c in connections {
                    let _ = c.join();
                }
            })
        };
        ApiStub { addr, stop, served, thread: Some(thread) }
    }

    /// Where it listens (`host:port`, also client-go's `host` label).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Requests answered so far.
    pub fn served(&self) -> usize {
        self.served.load(Ordering::Relaxed)
    }
}

impl Drop for ApiStub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// One request per connection (`Connection: close`), head read with a bounded size and time.
fn serve(mut conn: TcpStream, respond: &(dyn Fn(&str) -> Answer + Send + Sync), stop: &AtomicBool, served: &AtomicUsize) {
    let _ = conn.set_nonblocking(false);
    let _ = conn.set_read_timeout(Some(Duration::from_secs(2)));
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 65536 {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let head = String::from_utf8_lossy(&head);
    let path = head.split_whitespace().nth(1).unwrap_or("/").to_string();
    served.fetch_add(1, Ordering::Relaxed);
    match respond(&path) {
        Answer::Once(status, body) => {
            let _ = conn.write_all(
                format!(
                    "HTTP/1.1 {status} Stub\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        }
        Answer::Stream(events) => {
            let start = Instant::now();
            let headers = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n";
            if conn.write_all(headers.as_bytes()).is_err() {
                return;
            }
            let mut events = events.into_iter();
            let mut next = events.next();
            while !stop.load(Ordering::Relaxed) {
                if let Some((_, event)) = next.as_ref().filter(|(at, _)| start.elapsed() >= *at) {
                    let line = format!("{event}\n");
                    if conn.write_all(format!("{:x}\r\n{line}\r\n", line.len()).as_bytes()).is_err() {
                        return;
                    }
                    next = events.next();
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = conn.write_all(b"0\r\n\r\n");
        }
    }
}
