//! Independent witnesses of what was programmed: the `nft` and `conntrack` tools, run
//! inside a namespace.

use crate::netns::{describe, succeeded};
use crate::{HarnessError, Netns};

/// The namespace's whole ruleset as JSON (`nft -j list ruleset`).
pub fn nft_json(ns: &Netns) -> Result<serde_json::Value, HarnessError> {
    let out = ns.exec(["nft", "-j", "list", "ruleset"])?;
    serde_json::from_str(&out).map_err(|e| HarnessError::Parse {
        cmd: describe(&ns.command("nft").args(["-j", "list", "ruleset"])),
        detail: e.to_string(),
    })
}

/// The namespace's whole ruleset as text (`nft list ruleset`), as an operator sees it.
pub fn nft_text(ns: &Netns) -> Result<String, HarnessError> {
    ns.exec(["nft", "list", "ruleset"])
}

/// Flushes the namespace's conntrack table (`conntrack -F`), so the next request is
/// load-balanced afresh instead of following an existing entry.
pub fn conntrack_flush(ns: &Netns) -> Result<(), HarnessError> {
    ns.exec(["conntrack", "-F"]).map(drop)
}

/// Loads an nft script into the namespace (`nft -f -`, script on stdin), e.g. a
/// hand-written reference ruleset or the output of `kproxy --dry-run`.
pub fn nft_apply(ns: &Netns, script: &str) -> Result<(), HarnessError> {
    use std::io::Write;
    use std::process::Stdio;

    let mut cmd = ns.command("nft");
    cmd.args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let line = describe(&cmd);
    let mut child = cmd.spawn().map_err(|source| HarnessError::Spawn {
        cmd: line.clone(),
        source,
    })?;
    let written = child
        .stdin
        .take()
        .map(|mut stdin| stdin.write_all(script.as_bytes()));
    let out = child
        .wait_with_output()
        .map_err(|source| HarnessError::Spawn {
            cmd: line.clone(),
            source,
        })?;
    succeeded(line.clone(), out)?;
    match written {
        Some(Err(source)) => Err(HarnessError::Spawn { cmd: line, source }),
        _ => Ok(()),
    }
}
