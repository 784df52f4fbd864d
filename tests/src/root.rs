//! The root check every privileged test starts with.

/// Panics with a clear message unless the process runs as root.
///
/// Privileged tests must fail loudly rather than skip: a test that silently returns when it
/// cannot create namespaces would report "passed" without proving anything.
pub fn require_root() {
    if !nix::unistd::geteuid().is_root() {
        panic!(
            "this test needs root (it creates network namespaces and programs nftables inside \
             them); run it as root, e.g. `sudo -E cargo test`, or run `cargo xtask test` as root"
        );
    }
}
