//! Running the node's tools (iptables-save/-restore, ipset): a missing tool is a warning.

use std::io::Write;
use std::process::{Command, Output, Stdio};

use crate::{Report, TakeoverError};

/// Runs `tool args` with `stdin`; `None` when it could not be run or failed (the reason
/// is recorded in `report`: a warning when the tool is not installed, else an error).
pub(crate) fn run(tool: &str, args: &[&str], stdin: Option<&str>, what: &str, check: &str, report: &mut Report) -> Option<Output> {
    let mut cmd = Command::new(tool);
    cmd.args(args).stdin(if stdin.is_some() { Stdio::piped() } else { Stdio::null() }).stdout(Stdio::piped()).stderr(Stdio::piped());
    let spawned = cmd.spawn().and_then(|mut child| {
        if let (Some(text), Some(mut pipe)) = (stdin, child.stdin.take()) {
            pipe.write_all(text.as_bytes())?;
        }
        child.wait_with_output()
    });
    match spawned {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            report.warnings.push(format!("`{tool}` is not installed: kube-proxy's {what} (if any) were not checked"));
            None
        }
        Err(source) => {
            report.errors.push(TakeoverError::Spawn { tool: tool.into(), what: what.into(), source });
            None
        }
        Ok(out) if !out.status.success() => {
            report.errors.push(TakeoverError::ToolFailed {
                command: std::iter::once(tool).chain(args.iter().copied()).collect::<Vec<_>>().join(" "),
                what: what.into(),
                status: out.status,
                stderr: String::from_utf8_lossy(&out.stderr).trim().to_string(),
                check: check.into(),
            });
            None
        }
        Ok(out) => Some(out),
    }
}
