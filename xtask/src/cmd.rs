//! Running commands: cargo, with output passed through, and locating the workspace.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Command, Stdio};

/// The workspace root (xtask lives one level below it).
pub fn root() -> PathBuf {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().map(PathBuf::from).unwrap_or(manifest)
}

/// `cargo` (the one that runs us, if known), started in the workspace root.
pub fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// Runs a command with inherited output; an error says which command failed and how.
pub fn status(c: &mut Command) -> Result<(), String> {
    let line = describe(c);
    let st = c
        .status()
        .map_err(|e| format!("starting `{line}` failed: {e}"))?;
    if st.success() {
        Ok(())
    } else {
        Err(format!("`{line}` failed ({st})"))
    }
}

/// Per-test counts summed over cargo's `test result:` lines.
#[derive(Debug, Default, Clone, Copy)]
pub struct TestCounts {
    /// Tests that passed.
    pub passed: u64,
    /// Tests that failed.
    pub failed: u64,
    /// Tests ignored.
    pub ignored: u64,
}

/// Runs a `cargo test`-like command, echoing its stdout while summing its `test result:`
/// lines; returns whether it succeeded and the counts.
pub fn test_run(c: &mut Command) -> Result<(bool, TestCounts), String> {
    let line = describe(c);
    let mut child = c
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("starting `{line}` failed: {e}"))?;
    let mut counts = TestCounts::default();
    if let Some(out) = child.stdout.take() {
        for l in BufReader::new(out).lines().map_while(Result::ok) {
            println!("{l}");
            if let Some(rest) = l.trim().strip_prefix("test result:") {
                add_counts(&mut counts, rest);
            }
        }
    }
    let st = child
        .wait()
        .map_err(|e| format!("waiting for `{line}` failed: {e}"))?;
    Ok((st.success(), counts))
}

/// Parses `ok. 7 passed; 0 failed; 1 ignored; ...`.
fn add_counts(counts: &mut TestCounts, rest: &str) {
    for part in rest.split(';') {
        let mut words = part.split_whitespace().rev();
        let (Some(label), Some(n)) = (words.next(), words.next()) else {
            continue;
        };
        let Ok(n) = n.parse::<u64>() else { continue };
        match label {
            "passed" => counts.passed += n,
            "failed" => counts.failed += n,
            "ignored" => counts.ignored += n,
            _ => {}
        }
    }
}

/// The command line as typed.
pub fn describe(c: &Command) -> String {
    std::iter::once(c.get_program())
        .chain(c.get_args())
        .map(|a| a.to_string_lossy())
        .collect::<Vec<_>>()
        .join(" ")
}

/// Cargo's target directory (honours CARGO_TARGET_DIR and config), from `cargo metadata`.
pub fn target_dir() -> Result<PathBuf, String> {
    Ok(PathBuf::from(
        metadata()?["target_directory"]
            .as_str()
            .ok_or("cargo metadata has no target_directory")?,
    ))
}

/// `cargo metadata --no-deps` as JSON.
pub fn metadata() -> Result<serde_json::Value, String> {
    let mut c = cargo();
    c.args(["metadata", "--format-version", "1", "--no-deps"]);
    let out = c
        .output()
        .map_err(|e| format!("running cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    serde_json::from_slice(&out.stdout).map_err(|e| format!("parsing cargo metadata: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_summed_from_test_result_lines() {
        let mut c = TestCounts::default();
        add_counts(
            &mut c,
            " ok. 7 passed; 0 failed; 1 ignored; 0 measured; 0 filtered out; finished in 0.09s",
        );
        add_counts(
            &mut c,
            " FAILED. 2 passed; 3 failed; 0 ignored; 0 measured; 0 filtered out",
        );
        assert_eq!((c.passed, c.failed, c.ignored), (9, 3, 1));
    }
}
