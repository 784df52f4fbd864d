//! Finding the binaries tests run: the test server and kproxy itself.

use std::path::PathBuf;

use crate::HarnessError;

/// Path of the `kproxy-testserver` binary: `$KPROXY_TESTSERVER` if set, else next to the
/// running test executable (cargo builds it before this package's integration tests).
pub fn testserver_binary() -> Result<PathBuf, HarnessError> {
    locate(
        "kproxy-testserver",
        "KPROXY_TESTSERVER",
        "build it with `cargo build -p kproxy-tests --bin kproxy-testserver` or set KPROXY_TESTSERVER",
    )
}

/// Path of the `kproxy` binary: `$KPROXY_BIN` if set, else in the target directory of the
/// running test executable. Cargo does not build other packages' binaries for a test, so it
/// must have been built first (`cargo xtask test` runs `cargo build --workspace` before
/// the tests).
pub fn kproxy_binary() -> Result<PathBuf, HarnessError> {
    locate(
        "kproxy",
        "KPROXY_BIN",
        "build it first with `cargo build -p kproxy-bin` (same target dir as the tests) or set KPROXY_BIN",
    )
}

fn locate(name: &str, env: &str, hint: &str) -> Result<PathBuf, HarnessError> {
    if let Some(path) = std::env::var_os(env) {
        let path = PathBuf::from(path);
        if path.is_file() {
            return Ok(path);
        }
        return Err(HarnessError::BinaryNotFound {
            name: name.into(),
            looked: format!("${env}={}", path.display()),
            hint: format!("${env} does not name a file"),
        });
    }
    let mut looked = Vec::new();
    if let Ok(exe) = std::env::current_exe() {
        // Test executables live in target/<profile>/deps, binaries in target/<profile>.
        for dir in exe.ancestors().skip(1).take(2) {
            let candidate = dir.join(name);
            if candidate.is_file() {
                return Ok(candidate);
            }
            looked.push(candidate.display().to_string());
        }
    }
    Err(HarnessError::BinaryNotFound {
        name: name.into(),
        looked: looked.join(", "),
        hint: hint.into(),
    })
}
