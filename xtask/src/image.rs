//! `cargo xtask image`: the kproxy container image, built here without pulling a base image.
//!
//! No registry serves base images to these machines, so the image is distroless-style,
//! `FROM scratch`: the `kproxy` binary (`cargo build --release --locked`), the shared
//! libraries it links and the dynamic loader (as `ldd` lists them), and the
//! `/usr/local/bin/kube-proxy` link, so DaemonSets whose command is kube-proxy's run it
//! unchanged; and the tools kproxy runs to remove kube-proxy's iptables-mode and IPVS-mode
//! leftovers (kproxy-takeover): iptables-nft and iptables-legacy (`*-save`/`*-restore`, both
//! families, with their extension modules) and ipset, copied from this machine's Debian
//! packages with the libraries they link. There is no shell in it.
//!
//! Usage: `cargo xtask image [--tag NAME] [--debug] [--check]`
//! - `--tag`: the image name (default `kproxy:<version>`);
//! - `--debug`: package the debug build (what the test suite does, to avoid a release build);
//! - `--check`: after building, export the image's file system and run its
//!   `/usr/local/bin/kube-proxy --version` and `kproxy validate` on the shipped ConfigMap's
//!   configuration inside it (chroot: this sandbox's container runtime cannot set rlimits),
//!   then remove the image.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{cmd, deps};

/// What building the image needs besides the build packages.
pub const PACKAGES: &[&str] = &["podman", "iptables", "ipset"];

struct Args {
    tag: String,
    debug: bool,
    check: bool,
}

fn parse(args: &[String]) -> Result<Args, String> {
    let mut a = Args { tag: format!("kproxy:{}", env!("CARGO_PKG_VERSION")), debug: false, check: false };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--tag" => a.tag = it.next().ok_or("--tag needs an image name")?.clone(),
            "--debug" => a.debug = true,
            "--check" => a.check = true,
            other => return Err(format!("unknown argument {other:?} (usage: cargo xtask image [--tag NAME] [--debug] [--check])")),
        }
    }
    Ok(a)
}

/// Entry point.
pub fn run(args: &[String]) -> Result<(), String> {
    let args = parse(args)?;
    deps::require_root("cargo xtask image")?;
    deps::ensure(&[deps::BUILD, PACKAGES].concat())?;
    let mut build = cmd::cargo();
    // --workspace: the same feature set as the test command's workspace build, so the debug
    // binary it built is reused instead of rebuilding the dependency tree.
    build.args(["build", "--locked", "--workspace", "--bin", "kproxy"]);
    if !args.debug {
        build.arg("--release");
    }
    cmd::status(&mut build)?;
    let binary = cmd::target_dir()?.join(if args.debug { "debug" } else { "release" }).join("kproxy");
    let context = cmd::target_dir()?.join("image");
    stage(&binary, &context)?;
    let containerfile = cmd::root().join("deploy").join("Containerfile");
    cmd::status(
        Command::new("podman").args(["build", "--quiet", "--file"]).arg(&containerfile).args(["--tag", &args.tag]).arg(&context),
    )?;
    println!("image: built {} from {}", args.tag, context.display());
    if args.check {
        let checked = check(&args.tag);
        let _ = Command::new("podman").args(["rmi", "--force", &args.tag]).output();
        checked?;
        println!("image: {} checked (kube-proxy link and kproxy validate run inside it) and removed", args.tag);
    }
    Ok(())
}

/// Lays out `context/root/` (the image's file system) from `binary` and what it links.
fn stage(binary: &Path, context: &Path) -> Result<(), String> {
    let root = context.join("root");
    if root.exists() {
        std::fs::remove_dir_all(&root).map_err(|e| format!("clearing {}: {e}", root.display()))?;
    }
    let bin = root.join("usr/local/bin");
    std::fs::create_dir_all(&bin).map_err(|e| format!("creating {}: {e}", bin.display()))?;
    copy(binary, &bin.join("kproxy"))?;
    std::os::unix::fs::symlink("kproxy", bin.join("kube-proxy")).map_err(|e| format!("kube-proxy link: {e}"))?;
    let mut linked = linked_libraries(binary)?;
    for tool in TOOLS {
        let path = Path::new("/usr/sbin").join(tool);
        if !path.exists() {
            return Err(format!("{} is missing: install Debian's iptables and ipset packages", path.display()));
        }
        copy(&path, &root.join("usr/sbin").join(tool))?;
        linked.extend(linked_libraries(&path)?);
    }
    for name in TOOL_LINKS {
        let target = if name.contains("legacy") { "xtables-legacy-multi" } else { "xtables-nft-multi" };
        std::os::unix::fs::symlink(target, root.join("usr/sbin").join(name)).map_err(|e| format!("{name} link: {e}"))?;
    }
    // iptables loads its match/target extensions at run time (comment, conntrack, mark, ...).
    let extensions = Path::new(XTABLES);
    for entry in std::fs::read_dir(extensions).map_err(|e| format!("reading {XTABLES}: {e}"))?.flatten() {
        let path = entry.path();
        copy(&path, &root.join(path.strip_prefix("/").unwrap_or(&path)))?;
        linked.extend(linked_libraries(&path).unwrap_or_default());
    }
    linked.sort();
    linked.dedup();
    for lib in linked {
        copy(&lib, &root.join(lib.strip_prefix("/").unwrap_or(&lib)))?;
    }
    // Scratch has no /tmp, /etc or /var; kproxy writes none of them, but tools (and
    // `--write-config-to` into /tmp) expect a writable /tmp.
    for dir in ["tmp", "etc", "run", "var/lib/kube-proxy"] {
        std::fs::create_dir_all(root.join(dir)).map_err(|e| format!("creating {dir}: {e}"))?;
    }
    Ok(())
}

/// The multi-call binaries (and ipset) kproxy-takeover runs, from /usr/sbin.
const TOOLS: &[&str] = &["xtables-nft-multi", "xtables-legacy-multi", "ipset"];

/// The names kproxy-takeover calls them by, as links to the multi-call binaries.
const TOOL_LINKS: &[&str] = &[
    "iptables-nft-save",
    "iptables-nft-restore",
    "ip6tables-nft-save",
    "ip6tables-nft-restore",
    "iptables-legacy-save",
    "iptables-legacy-restore",
    "ip6tables-legacy-save",
    "ip6tables-legacy-restore",
];

/// iptables' extension modules.
const XTABLES: &str = "/usr/lib/x86_64-linux-gnu/xtables";

/// Absolute paths of the shared objects `ldd` resolves for `binary` (the loader included).
fn linked_libraries(binary: &Path) -> Result<Vec<PathBuf>, String> {
    let out = Command::new("ldd").arg(binary).output().map_err(|e| format!("running ldd: {e}"))?;
    if !out.status.success() {
        return Err(format!("ldd {} failed: {}", binary.display(), String::from_utf8_lossy(&out.stderr)));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let libs: Vec<PathBuf> = text
        .lines()
        .filter_map(|l| l.split_whitespace().find(|w| w.starts_with('/')).map(PathBuf::from))
        .collect();
    let shared_object = binary.extension().is_some_and(|e| e == "so");
    if !shared_object && !libs.iter().any(|l| l.to_string_lossy().contains("ld-linux")) {
        return Err(format!("ldd found no dynamic loader for {}:\n{text}", binary.display()));
    }
    Ok(libs)
}

/// Copies `from` (following links) to `to`, creating parents, keeping the mode.
fn copy(from: &Path, to: &Path) -> Result<(), String> {
    if let Some(parent) = to.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("creating {}: {e}", parent.display()))?;
    }
    std::fs::copy(from, to).map(drop).map_err(|e| format!("copying {} to {}: {e}", from.display(), to.display()))
}

/// Exports `tag`'s file system and runs the binary inside it with chroot.
fn check(tag: &str) -> Result<(), String> {
    let dir = cmd::target_dir()?.join("image-check");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let id = output(Command::new("podman").args(["create", tag]))?;
    let tar = dir.join("rootfs.tar");
    let exported = cmd::status(Command::new("podman").args(["export", "--output"]).arg(&tar).arg(id.trim()));
    let _ = Command::new("podman").args(["rm", id.trim()]).output();
    exported?;
    let rootfs = dir.join("rootfs");
    std::fs::create_dir_all(&rootfs).map_err(|e| e.to_string())?;
    cmd::status(Command::new("tar").arg("-xf").arg(&tar).arg("-C").arg(&rootfs))?;
    let version = output(Command::new("chroot").arg(&rootfs).args(["/usr/local/bin/kube-proxy", "--version"]))?;
    if !version.starts_with("kproxy ") {
        return Err(format!("the image's kube-proxy link printed {version:?}, expected kproxy's version"));
    }
    // The shipped configuration validates inside the image (no files beyond the image's own).
    let config = shipped_config()?;
    std::fs::write(rootfs.join("var/lib/kube-proxy/config.conf"), config).map_err(|e| e.to_string())?;
    output(Command::new("chroot").arg(&rootfs).args(["/usr/local/bin/kube-proxy", "validate", "--config=/var/lib/kube-proxy/config.conf"]))?;
    println!("image: {tag}: `kube-proxy --version` -> {}", version.trim());
    // The leftover-removal tools start (--version touches no rules of this machine).
    for tool in ["iptables-nft-save", "ip6tables-legacy-restore", "ipset"] {
        let out = output(Command::new("chroot").arg(&rootfs).arg(format!("/usr/sbin/{tool}")).arg("--version"))?;
        println!("image: {tag}: `{tool} --version` -> {}", out.lines().next().unwrap_or("").trim());
    }
    std::fs::remove_dir_all(&dir).map_err(|e| format!("removing {}: {e}", dir.display()))
}

/// `config.conf` of deploy/configmap.yaml (the block under that key).
fn shipped_config() -> Result<String, String> {
    let path = cmd::root().join("deploy/configmap.yaml");
    let text = std::fs::read_to_string(&path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    let mut lines = text.lines().skip_while(|l| l.trim() != "config.conf: |").skip(1);
    let mut out = String::new();
    for line in lines.by_ref() {
        match line.strip_prefix("    ") {
            Some(body) => {
                out.push_str(body);
                out.push('\n');
            }
            None if line.trim().is_empty() => out.push('\n'),
            None => break,
        }
    }
    if out.trim().is_empty() {
        return Err(format!("{}: no config.conf block", path.display()));
    }
    Ok(out)
}

fn output(c: &mut Command) -> Result<String, String> {
    let line = cmd::describe(c);
    let out = c.output().map_err(|e| format!("starting `{line}`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{line}` failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr)));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}
