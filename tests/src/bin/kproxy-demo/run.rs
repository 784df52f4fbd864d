//! Running kproxy inside the node namespace, bounded in time, output shown.

use std::io::Read;
use std::path::Path;
use std::process::{ExitStatus, Stdio};
use std::time::{Duration, Instant};

use kproxy_tests::Netns;

/// `kproxy --once` is one sync; anything slower than this is a hang.
const LIMIT: Duration = Duration::from_secs(120);

pub struct Outcome {
    pub success: bool,
    pub status: String,
}

/// Runs kproxy with `args` in `ns`, prints the command and its output, kills it after LIMIT.
pub fn kproxy(ns: &Netns, kproxy: &Path, args: &[String]) -> Result<Outcome, String> {
    println!(
        "$ ip netns exec {} {} {}",
        ns.name(),
        kproxy.display(),
        args.join(" ")
    );
    let mut child = ns
        .command(kproxy)
        .args(args)
        // The output is captured and reprinted: no terminal colour codes.
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting {}: {e}", kproxy.display()))?;
    // Drain both pipes on threads so a chatty kproxy cannot block on a full pipe.
    let drain = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut s = String::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_string(&mut s);
            }
            s
        })
    };
    let out = drain(
        child
            .stdout
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let err = drain(
        child
            .stderr
            .take()
            .map(|p| Box::new(p) as Box<dyn Read + Send>),
    );
    let started = Instant::now();
    let status: Option<ExitStatus> = loop {
        match child.try_wait() {
            Ok(Some(st)) => break Some(st),
            Ok(None) if started.elapsed() < LIMIT => std::thread::sleep(Duration::from_millis(50)),
            Ok(None) | Err(_) => {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
        }
    };
    for text in [
        out.join().unwrap_or_default(),
        err.join().unwrap_or_default(),
    ] {
        if !text.trim().is_empty() {
            println!("{}", text.trim_end());
        }
    }
    Ok(match status {
        Some(st) => Outcome {
            success: st.success(),
            status: st.to_string(),
        },
        None => Outcome {
            success: false,
            status: format!("killed after {LIMIT:?}"),
        },
    })
}
