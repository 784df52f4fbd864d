//! A minimal HTTP/1.0 GET for the daemon's own `/healthz` and `/metrics` (plain HTTP on a
//! local address), bounded in time. The answer's parsing is pure and tested.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

/// Upper bound of the connect and of each read/write.
pub const TIMEOUT: Duration = Duration::from_secs(3);
/// Largest answer read (metrics of a big node are a few hundred KiB).
const MAX_BYTES: u64 = 16 << 20;

/// GET `path` from `addr` (an unspecified address means this host's loopback, where a
/// daemon bound to `0.0.0.0`/`::` answers); returns the status and the body.
pub fn get(addr: SocketAddr, path: &str) -> Result<(u16, String), String> {
    let mut addr = addr;
    if addr.ip().is_unspecified() {
        addr.set_ip(if addr.is_ipv4() { [127, 0, 0, 1].into() } else { std::net::Ipv6Addr::LOCALHOST.into() });
    }
    let mut stream = TcpStream::connect_timeout(&addr, TIMEOUT).map_err(|e| format!("connecting to {addr}: {e}"))?;
    stream.set_read_timeout(Some(TIMEOUT)).and_then(|()| stream.set_write_timeout(Some(TIMEOUT))).map_err(|e| e.to_string())?;
    stream
        .write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept: text/plain\r\n\r\n").as_bytes())
        .map_err(|e| format!("sending to {addr}: {e}"))?;
    let mut raw = Vec::new();
    stream.take(MAX_BYTES).read_to_end(&mut raw).map_err(|e| format!("reading from {addr}: {e}"))?;
    parse(&String::from_utf8_lossy(&raw)).ok_or_else(|| format!("{addr}{path}: not an HTTP answer"))
}

/// The status code and body of an HTTP/1.x answer.
pub fn parse(raw: &str) -> Option<(u16, String)> {
    let (head, body) = raw.split_once("\r\n\r\n")?;
    let status = head.lines().next()?.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_status_and_body() {
        assert_eq!(super::parse("HTTP/1.1 503 Service Unavailable\r\nA: b\r\n\r\n{\"x\":1}"), Some((503, "{\"x\":1}".into())));
        assert_eq!(super::parse("garbage"), None);
    }
}
