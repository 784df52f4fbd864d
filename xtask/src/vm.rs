//! `cargo xtask vm`: boots Debian's cloud kernel in qemu and runs the IPVS tests inside it.
//!
//! Work in progress; see kproxy-ipvs/README.md.

/// Entry point for `cargo xtask vm [ARGS]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let _ = args;
    Err("cargo xtask vm: not implemented yet (being written by the ipvs helper)".to_string())
}
