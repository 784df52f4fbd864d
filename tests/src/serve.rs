//! The test server's logic (the `kproxy-testserver` binary is a thin wrapper around [`main`]).
//!
//! It listens on `[::]` (dual-stack, so one socket serves IPv4 and IPv6) on every given TCP
//! and UDP port and answers with one line, `"<name> <peer>"`, where `<peer>` is the source
//! address and port it saw (`198.18.0.11:40000`, `[2001:db8:a::11]:40000`): that tells a
//! test which endpoint answered and whether the source was masqueraded.
//!
//! - TCP: the line is sent right after accept; every further line the client sends is
//!   answered with the same line (so a long-lived connection can be probed); the connection
//!   ends at EOF or after [`IDLE`] without data.
//! - UDP: every datagram is answered with the line.
//!
//! Once every socket is bound it prints [`READY`] on stdout, which [`crate::TestServer`]
//! waits for.

use std::io::{BufRead, BufReader, Write};
use std::net::{Ipv6Addr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::Duration;

/// The line printed on stdout once all sockets are bound.
pub const READY: &str = "kproxy-testserver ready";
/// How long an idle TCP connection is kept (bounds the server's threads).
pub const IDLE: Duration = Duration::from_secs(60);

/// What the server serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServeArgs {
    /// Name sent in every reply.
    pub name: String,
    /// TCP ports.
    pub tcp: Vec<u16>,
    /// UDP ports.
    pub udp: Vec<u16>,
}

impl ServeArgs {
    /// Parses `--name NAME [--tcp P[,P...]] [--udp P[,P...]]`.
    pub fn parse(args: &[String]) -> Result<Self, String> {
        let mut out = ServeArgs {
            name: String::new(),
            tcp: Vec::new(),
            udp: Vec::new(),
        };
        let mut it = args.iter();
        while let Some(flag) = it.next() {
            let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
            match flag.as_str() {
                "--name" => out.name = value.clone(),
                "--tcp" => out.tcp.extend(parse_ports(value)?),
                "--udp" => out.udp.extend(parse_ports(value)?),
                other => {
                    return Err(format!(
                        "unknown argument {other:?}; usage: {}",
                        Self::USAGE
                    ))
                }
            }
        }
        if out.name.is_empty() || out.name.contains(char::is_whitespace) {
            return Err(format!(
                "--name must be one non-empty word; usage: {}",
                Self::USAGE
            ));
        }
        if out.tcp.is_empty() && out.udp.is_empty() {
            return Err(format!("give at least one port; usage: {}", Self::USAGE));
        }
        Ok(out)
    }

    /// Command-line usage.
    pub const USAGE: &'static str = "kproxy-testserver --name NAME [--tcp P[,P..]] [--udp P[,P..]]";

    /// The arguments as a command line (the inverse of [`ServeArgs::parse`]).
    pub fn to_args(&self) -> Vec<String> {
        let join = |ports: &[u16]| {
            ports
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(",")
        };
        let mut args = vec!["--name".to_string(), self.name.clone()];
        if !self.tcp.is_empty() {
            args.extend(["--tcp".to_string(), join(&self.tcp)]);
        }
        if !self.udp.is_empty() {
            args.extend(["--udp".to_string(), join(&self.udp)]);
        }
        args
    }
}

fn parse_ports(list: &str) -> Result<Vec<u16>, String> {
    list.split(',')
        .map(|p| match p.trim().parse::<u16>() {
            Ok(0) | Err(_) => Err(format!("invalid port {p:?} (want 1-65535)")),
            Ok(port) => Ok(port),
        })
        .collect()
}

/// The reply line (without newline) for a peer.
pub fn reply_line(name: &str, peer: SocketAddr) -> String {
    format!("{name} {}", canonical(peer))
}

/// IPv4 clients reach the dual-stack socket as `::ffff:a.b.c.d`; report them as IPv4.
pub fn canonical(addr: SocketAddr) -> SocketAddr {
    SocketAddr::new(addr.ip().to_canonical(), addr.port())
}

/// Binds everything, prints [`READY`], then serves forever (until killed).
pub fn main(args: &ServeArgs) -> std::io::Result<()> {
    let any = |port| SocketAddr::from((Ipv6Addr::UNSPECIFIED, port));
    let mut threads = Vec::new();
    for &port in &args.tcp {
        let listener = TcpListener::bind(any(port)).map_err(|e| bind_error("tcp", port, e))?;
        let name = args.name.clone();
        threads.push(std::thread::spawn(move || serve_tcp(&listener, &name)));
    }
    for &port in &args.udp {
        let socket = UdpSocket::bind(any(port)).map_err(|e| bind_error("udp", port, e))?;
        let name = args.name.clone();
        threads.push(std::thread::spawn(move || serve_udp(&socket, &name)));
    }
    let mut stdout = std::io::stdout();
    writeln!(stdout, "{READY}")?;
    stdout.flush()?;
    for t in threads {
        let _ = t.join();
    }
    Ok(())
}

fn bind_error(proto: &str, port: u16, e: std::io::Error) -> std::io::Error {
    std::io::Error::new(
        e.kind(),
        format!("binding {proto} port {port} on [::]: {e}"),
    )
}

fn serve_tcp(listener: &TcpListener, name: &str) {
    for conn in listener.incoming() {
        let Ok(stream) = conn else { continue };
        let name = name.to_string();
        std::thread::spawn(move || {
            let _ = answer_tcp(stream, &name);
        });
    }
}

fn answer_tcp(mut stream: TcpStream, name: &str) -> std::io::Result<()> {
    let line = reply_line(name, stream.peer_addr()?) + "\n";
    stream.write_all(line.as_bytes())?;
    stream.set_read_timeout(Some(IDLE))?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut buf = String::new();
    // One answer per line received; bounded by IDLE and by the client closing.
    while reader.read_line(&mut buf)? > 0 {
        stream.write_all(line.as_bytes())?;
        buf.clear();
    }
    Ok(())
}

fn serve_udp(socket: &UdpSocket, name: &str) {
    let mut buf = [0u8; 2048];
    loop {
        match socket.recv_from(&mut buf) {
            Ok((_, peer)) => {
                let line = reply_line(name, peer) + "\n";
                let _ = socket.send_to(line.as_bytes(), peer);
            }
            // ICMP errors from earlier replies surface here on some kernels; keep serving.
            Err(_) => continue,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn args_round_trip() {
        let args: Vec<String> = ["--name", "pod1", "--tcp", "80,8080", "--udp", "53"]
            .map(String::from)
            .to_vec();
        let parsed = ServeArgs::parse(&args).unwrap();
        assert_eq!(parsed.tcp, vec![80, 8080]);
        assert_eq!(parsed.udp, vec![53]);
        assert_eq!(parsed.to_args(), args);
    }

    #[test]
    fn bad_args_are_rejected() {
        let parse =
            |a: &[&str]| ServeArgs::parse(&a.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert!(parse(&["--name", "x"])
            .unwrap_err()
            .contains("at least one port"));
        assert!(parse(&["--name", "x", "--tcp", "0"])
            .unwrap_err()
            .contains("invalid port"));
        assert!(parse(&["--tcp", "80"]).unwrap_err().contains("--name"));
        assert!(parse(&["--bogus", "1"])
            .unwrap_err()
            .contains("unknown argument"));
    }

    #[test]
    fn mapped_peers_are_reported_as_ipv4() {
        let peer: SocketAddr = "[::ffff:198.18.0.11]:4000".parse().unwrap();
        assert_eq!(reply_line("pod1", peer), "pod1 198.18.0.11:4000");
        let peer6: SocketAddr = "[2001:db8:a::11]:4000".parse().unwrap();
        assert_eq!(reply_line("pod1", peer6), "pod1 [2001:db8:a::11]:4000");
    }
}
