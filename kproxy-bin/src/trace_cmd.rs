//! `kproxy trace --from SRC_IP --to DST_IP:PORT [--protocol tcp|udp|sctp] [--iif IFNAME]
//! [-o json]`: follows one new connection through kproxy's table as the kernel holds it now
//! (read-only; [`kproxy_nft::trace`] does the work). Exit 0 whenever it could trace, whatever
//! the verdict; 2 when its arguments are wrong or the kernel could not be read.

use std::ffi::OsString;
use std::net::{IpAddr, SocketAddr};
use std::process::ExitCode;

use clap::{Arg, Command};
use kproxy_core::model::{IpFamily, Protocol};
use kproxy_nft::trace::{read_table, trace, Packet, Trace};

use crate::daemon::TABLE_NAME;

fn command() -> Command {
    Command::new("kproxy trace")
        .about("Follow one new connection through kproxy's nftables rules as the kernel holds them now")
        .arg(Arg::new("from").long("from").required(true).value_name("SRC_IP").help("Source address; one of this node's addresses means traffic from the node itself"))
        .arg(Arg::new("to").long("to").required(true).value_name("DST_IP:PORT").help("Destination, e.g. 198.18.0.10:80 or [2001:db8::10]:80"))
        .arg(Arg::new("protocol").long("protocol").default_value("tcp").value_parser(["tcp", "udp", "sctp"]))
        .arg(Arg::new("iif").long("iif").value_name("IFNAME").help("Input interface of traffic from outside (interface-based local detection)"))
        .arg(Arg::new("output").short('o').long("output").default_value("text").value_parser(["text", "json"]))
}

/// Runs `kproxy trace` with the arguments after `trace`.
pub fn main(args: Vec<OsString>) -> ExitCode {
    let m = match command().try_get_matches_from(std::iter::once(OsString::from("kproxy trace")).chain(args)) {
        Ok(m) => m,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    let arg = |n: &str| m.get_one::<String>(n).cloned().unwrap_or_default();
    let src: IpAddr = match arg("from").parse() {
        Ok(ip) => ip,
        Err(_) => return fail(&format!("--from {:?}: not an IP address", arg("from"))),
    };
    let dst: SocketAddr = match arg("to").parse() {
        Ok(sa) => sa,
        Err(_) => return fail(&format!("--to {:?}: not IP:PORT (IPv6: [IP]:PORT)", arg("to"))),
    };
    if src.is_ipv4() != dst.is_ipv4() {
        return fail(&format!("--from {src} and --to {dst} are of different IP families"));
    }
    let protocol = match arg("protocol").as_str() {
        "udp" => Protocol::Udp,
        "sctp" => Protocol::Sctp,
        _ => Protocol::Tcp,
    };
    let node = kproxy_doctor::gather::local_addresses();
    let packet = Packet { src, dst: dst.ip(), dport: dst.port(), protocol, iif: m.get_one::<String>("iif").cloned(), local_origin: node.contains(&src) };
    let family = IpFamily::of(&dst.ip());
    let table = match read_table(family, TABLE_NAME) {
        Ok(t) => t,
        // No table at all: kproxy's rules leave everything alone, which is a trace too.
        Err(e) if e.is_not_found() => kproxy_nft::trace::TableDump::default(),
        Err(e) => {
            return fail(&format!(
                "cannot read table {} {TABLE_NAME} from the kernel: {e} (run as root in the node's network namespace)",
                kproxy_nft::lowlevel::ip_word(family)
            ))
        }
    };
    let mut t = trace(&table, &packet, &node);
    if table.chains.is_empty() {
        t.path.insert(0, format!("table {} {TABLE_NAME} has no chains: kproxy's rules are not installed here", kproxy_nft::lowlevel::ip_word(family)));
    }
    print!("{}", text(&t));
    if arg("output") == "json" {
        println!("{}", json(&t));
    }
    ExitCode::SUCCESS
}

fn fail(msg: &str) -> ExitCode {
    eprintln!("error: {msg}");
    ExitCode::from(2)
}

/// The path, then the result, for people.
fn text(t: &Trace) -> String {
    let mut out: String = t.path.iter().map(|l| format!("{l}\n")).collect();
    out.push_str(&format!("verdict: {}\n", t.verdict.as_str()));
    if !t.endpoints.is_empty() {
        out.push_str(&format!("endpoints: {}\n", t.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")));
    }
    out.push_str(&format!("masquerade: {}\n", if t.masquerade { "yes" } else { "no" }));
    out.push_str(&format!("service: {}\n", t.service.as_deref().unwrap_or("-")));
    out
}

/// The one-line JSON object of `-o json`.
fn json(t: &Trace) -> String {
    serde_json::json!({
        "verdict": t.verdict.as_str(),
        "endpoints": t.endpoints.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "masquerade": t.masquerade,
        "service": t.service,
        "path": t.path,
    })
    .to_string()
}
