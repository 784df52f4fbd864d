//! A tiny HTTP/1 server shared by `/metrics`, `/healthz` + `/livez` and the
//! healthCheckNodePort servers: every answer is small and computed in memory, so a handler is
//! a plain function from the request head to a complete response.
//!
//! hyper 1 (with hyper-util's tokio glue) is used directly rather than a web framework: three
//! fixed routes do not need routing, extractors or middleware, and hyper is already in the
//! dependency tree through kube.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::{JoinHandle, JoinSet};

/// A response body: the whole answer in one buffer.
pub type Body = Full<Bytes>;

/// What a server does with a request: look at the head, return a complete response.
pub type Handler = Arc<dyn Fn(&Request<Incoming>) -> Response<Body> + Send + Sync>;

/// A running server; dropping it (or [`HttpServer::close`]) stops accepting and closes every
/// open connection.
#[derive(Debug)]
pub struct HttpServer {
    local_addr: SocketAddr,
    task: JoinHandle<()>,
}

impl HttpServer {
    /// Bind `addr` now (so a busy port is reported to the caller) and serve `handler` on a
    /// task of the current tokio runtime. Must be called from within a runtime.
    pub fn spawn(addr: SocketAddr, handler: Handler) -> std::io::Result<HttpServer> {
        let std_listener = bind(addr)?;
        std_listener.set_nonblocking(true)?;
        let local_addr = std_listener.local_addr()?;
        let listener = TcpListener::from_std(std_listener)?;
        let task = tokio::spawn(accept_loop(listener, handler));
        Ok(HttpServer { local_addr, task })
    }

    /// The address actually bound (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Stop accepting and close the open connections.
    pub fn close(self) {
        // Drop does the work.
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        // Aborting the accept task drops its JoinSet, which aborts every connection task.
        self.task.abort();
    }
}

/// A listening socket on `addr`. IPv6 sockets are IPv6-only, so that `0.0.0.0:P` and `[::]:P`
/// (or an IPv4 and an IPv6 node address) can both be bound, whatever `net.ipv6.bindv6only`
/// says; `SO_REUSEADDR` as std sets it, so a restarted kproxy rebinds at once.
fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use nix::sys::socket::{self, sockopt, AddressFamily, Backlog, SockFlag, SockType, SockaddrIn, SockaddrIn6};
    let family = if addr.is_ipv6() { AddressFamily::Inet6 } else { AddressFamily::Inet };
    let fd = socket::socket(family, SockType::Stream, SockFlag::SOCK_CLOEXEC, None)?;
    socket::setsockopt(&fd, sockopt::ReuseAddr, &true)?;
    match addr {
        SocketAddr::V4(a) => socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn::from(a))?,
        SocketAddr::V6(a) => {
            socket::setsockopt(&fd, sockopt::Ipv6V6Only, &true)?;
            socket::bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &SockaddrIn6::from(a))?
        }
    }
    socket::listen(&fd, Backlog::new(1024).unwrap_or(Backlog::MAXCONN))?;
    Ok(std::net::TcpListener::from(fd))
}

async fn accept_loop(listener: TcpListener, handler: Handler) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => {
                    let handler = handler.clone();
                    connections.spawn(async move {
                        let service = service_fn(move |req: Request<Incoming>| {
                            let response = handler(&req);
                            async move { Ok::<_, Infallible>(response) }
                        });
                        // A client that goes away mid-request is not our problem to report.
                        let _ = http1::Builder::new().serve_connection(TokioIo::new(stream), service).await;
                    });
                }
                Err(err) => {
                    // EMFILE and friends: back off briefly instead of spinning.
                    tracing::warn!(error = %err, "HTTP server failed to accept a connection");
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            },
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// A response with a status, a content type and a body.
pub fn respond(status: StatusCode, content_type: &str, body: impl Into<Bytes>) -> Response<Body> {
    let mut response = Response::new(Full::new(body.into()));
    *response.status_mut() = status;
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response.headers_mut().insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// `404 page not found`, as Go's net/http answers unknown paths.
pub fn not_found() -> Response<Body> {
    respond(StatusCode::NOT_FOUND, "text/plain; charset=utf-8", "404 page not found\n")
}

/// Format a wall-clock time as RFC 3339 in UTC with nanoseconds trimmed to what is set,
/// e.g. `2026-12-01T09:05:03.25Z` (Go's `time.RFC3339Nano`, as upstream's healthz prints).
/// Times before the epoch print as the epoch.
pub fn rfc3339(time: std::time::SystemTime) -> String {
    // jiff (already in the tree through k8s-openapi) prints a Timestamp in exactly this form.
    // Past jiff's range (year 9999) cannot come from a clock; clamp rather than fail.
    let time = time.max(std::time::UNIX_EPOCH);
    jiff::Timestamp::try_from(time).unwrap_or(jiff::Timestamp::MAX).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    #[test]
    fn rfc3339_formats_known_instants() {
        assert_eq!(rfc3339(UNIX_EPOCH), "1970-01-01T00:00:00Z");
        // 2024-02-29T12:34:56.5Z (a leap day).
        let t = UNIX_EPOCH + Duration::new(1_709_210_096, 500_000_000);
        assert_eq!(rfc3339(t), "2024-02-29T12:34:56.5Z");
        let t = UNIX_EPOCH + Duration::new(4_102_444_800, 0);
        assert_eq!(rfc3339(t), "2100-01-01T00:00:00Z");
        assert_eq!(rfc3339(UNIX_EPOCH - Duration::from_secs(5)), "1970-01-01T00:00:00Z");
    }
}

/// A minimal HTTP/1.1 client for the endpoint tests (one request per connection, bounded).
#[cfg(test)]
pub(crate) mod test_client {
    use std::net::SocketAddr;
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    /// A parsed answer: status code, lower-cased header lines, body.
    pub(crate) struct Answer {
        pub status: u16,
        pub headers: Vec<(String, String)>,
        pub body: String,
    }

    impl Answer {
        pub(crate) fn header(&self, name: &str) -> Option<&str> {
            self.headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
        }
    }

    /// `GET path` on `addr`, failing after 5 s.
    pub(crate) async fn get(addr: SocketAddr, path: &str) -> Answer {
        get_with(addr, path, &[]).await
    }

    /// `GET path` on `addr` with extra request `headers`, failing after 5 s.
    pub(crate) async fn get_with(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Answer {
        let extra: String = headers.iter().map(|(n, v)| format!("{n}: {v}\r\n")).collect();
        let fut = async {
            let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
            let req = format!("GET {path} HTTP/1.1\r\nHost: test\r\n{extra}Connection: close\r\n\r\n");
            stream.write_all(req.as_bytes()).await.expect("write request");
            let mut raw = Vec::new();
            stream.read_to_end(&mut raw).await.expect("read response");
            String::from_utf8(raw).expect("utf-8 response")
        };
        let raw = tokio::time::timeout(Duration::from_secs(5), fut).await.expect("HTTP request timed out");
        let (head, body) = raw.split_once("\r\n\r\n").expect("response head");
        let mut lines = head.lines();
        let status_line = lines.next().expect("status line");
        let status = status_line.split(' ').nth(1).expect("status code").parse().expect("numeric status");
        let headers = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
            .collect();
        Answer { status, headers, body: body.to_string() }
    }
}
