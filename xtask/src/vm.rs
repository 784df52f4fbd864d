//! `cargo xtask vm`: boots Debian's cloud kernel (which has IPVS as modules) under qemu and
//! runs kproxy's IPVS tests inside it.
//!
//! Steps, each cached under `target/vm-cache/` (outside git):
//! 1. kernel: `apt-get download` the `linux-image-cloud-amd64` meta package and the
//!    `linux-image-6.1.*-cloud-amd64` package it depends on, `dpkg -x` them;
//! 2. test binaries: `cargo build` of the in-VM test programs (`vm/` lists what goes in);
//! 3. initramfs: busybox-static, the modules of `vm/modules.txt` with their dependencies
//!    (`modprobe --show-depends`, then `depmod` on the staging root), the host tools of
//!    `vm/tools.txt` and the test binaries with their shared libraries (`ldd`), `vm/init.sh`
//!    as `/init`; packed with `cpio -H newc | gzip`;
//! 4. `qemu-system-x86_64 -accel tcg` with a bounded timeout; the serial console is streamed
//!    to stdout and to `target/vm-cache/last-run.log`, and the run passes only when the
//!    console shows `KPROXY-VM-RESULT: PASS`.
//!
//! It never skips: anything missing (apt, qemu, cpio, a module) is an error saying what to
//! install or fix.

use std::collections::BTreeSet;
use std::fs;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The Debian meta package whose dependency is the versioned cloud kernel.
const KERNEL_META: &str = "linux-image-cloud-amd64";
/// Programs built for the VM: (cargo package, binary name, directory in the initramfs).
/// `/init` runs everything in `/tests`; `/usr/bin` holds programs the tests call (the
/// `kproxy` binary, run with the seed configs against `examples/manifests`).
const TEST_BINARIES: &[(&str, &str, &str)] = &[
    ("kproxy-ipvs", "kproxy-ipvs-vmtest", "/tests"),
    ("kproxy-bin", "kproxy", "/usr/bin"),
];
/// Repository directories copied into the initramfs at the same path under `/`.
const DATA_DIRS: &[&str] = &["examples"];
/// Printed by `/init` on success; anything else (or nothing) fails the run.
const PASS_MARKER: &str = "KPROXY-VM-RESULT: PASS";
const FAIL_MARKER: &str = "KPROXY-VM-RESULT: FAIL";

/// Options of `cargo xtask vm`.
struct Options {
    /// Only boot and run the smoke checks (no test binaries).
    smoke: bool,
    /// Build the test binaries optimised (for the timing lines of `sync_scale`).
    release: bool,
    /// Upper bound for the whole qemu run.
    timeout: Duration,
    /// Arguments passed to the test binaries (through the kernel command line).
    test_args: Vec<String>,
}

fn usage() -> String {
    "usage: cargo xtask vm [--smoke] [--release] [--timeout SECONDS] [-- TEST-ARGS...]\n\
     boots Debian's cloud kernel in qemu (software emulation) and runs the IPVS tests inside"
        .to_string()
}

fn parse(args: &[String]) -> Result<Options, String> {
    let mut opts = Options {
        smoke: false,
        release: false,
        timeout: Duration::from_secs(600),
        test_args: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--smoke" => opts.smoke = true,
            "--release" => opts.release = true,
            "--timeout" => {
                let v = it
                    .next()
                    .ok_or_else(|| format!("--timeout needs a value\n{}", usage()))?;
                let secs: u64 = v
                    .parse()
                    .map_err(|_| format!("--timeout {v}: not a number of seconds"))?;
                opts.timeout = Duration::from_secs(secs);
            }
            "--" => opts.test_args.extend(it.by_ref().cloned()),
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other:?}\n{}", usage())),
        }
    }
    Ok(opts)
}

/// Entry point for `cargo xtask vm [ARGS]`.
pub fn run(args: &[String]) -> Result<(), String> {
    let opts = parse(args)?;
    let started = Instant::now();
    let root = workspace_root()?;
    let cache = root.join("target/vm-cache");
    fs::create_dir_all(&cache).map_err(|e| format!("creating {}: {e}", cache.display()))?;

    let kernel = ensure_kernel(&cache)?;
    let binaries = if opts.smoke {
        Vec::new()
    } else {
        build_test_binaries(&root, opts.release)?
    };
    let initrd = build_initramfs(&root, &cache, &kernel, &binaries)?;
    let prepared = started.elapsed();
    let booted = Instant::now();
    let outcome = boot(&cache, &kernel, &initrd, &opts);
    eprintln!(
        "xtask vm: preparation {:.1}s, VM run {:.1}s",
        prepared.as_secs_f64(),
        booted.elapsed().as_secs_f64()
    );
    outcome
}

fn workspace_root() -> Result<PathBuf, String> {
    // xtask lives in <root>/xtask; CARGO_MANIFEST_DIR is set by `cargo run`.
    let manifest = std::env::var_os("CARGO_MANIFEST_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")));
    manifest.parent().map(Path::to_path_buf).ok_or_else(|| {
        format!(
            "cannot find the workspace root above {}",
            manifest.display()
        )
    })
}

/// Run a command, failing with its stderr and a hint when it is missing or fails.
fn sh(cmd: &mut Command, what: &str) -> Result<String, String> {
    let out = cmd
        .output()
        .map_err(|e| format!("{what}: cannot run {cmd:?}: {e} (is it installed?)"))?;
    if !out.status.success() {
        return Err(format!(
            "{what}: {cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// An extracted kernel: its version and the root it was extracted to.
struct Kernel {
    version: String,
    root: PathBuf,
}

impl Kernel {
    fn vmlinuz(&self) -> PathBuf {
        self.root.join(format!("boot/vmlinuz-{}", self.version))
    }
    fn modules(&self) -> PathBuf {
        self.root.join(format!("lib/modules/{}", self.version))
    }
}

/// Download (once) and extract Debian's cloud kernel.
fn ensure_kernel(cache: &Path) -> Result<Kernel, String> {
    let kroot = cache.join("kernel");
    let stamp = kroot.join(".version");
    if let Ok(version) = fs::read_to_string(&stamp) {
        let kernel = Kernel {
            version: version.trim().to_string(),
            root: kroot.clone(),
        };
        if kernel.vmlinuz().is_file() && kernel.modules().is_dir() {
            return Ok(kernel);
        }
    }
    let debs = cache.join("debs");
    fs::create_dir_all(&debs).map_err(|e| format!("creating {}: {e}", debs.display()))?;
    eprintln!("xtask vm: downloading {KERNEL_META} with apt-get");
    apt_download(KERNEL_META, &debs)?;
    let meta = find_deb(&debs, KERNEL_META)?;
    let depends = sh(
        Command::new("dpkg-deb")
            .args(["-f"])
            .arg(&meta)
            .arg("Depends"),
        "reading Depends",
    )?;
    let image = depends
        .split(',')
        .map(|d| d.trim().split_whitespace().next().unwrap_or(""))
        .find(|d| d.starts_with("linux-image-") && d.ends_with("-cloud-amd64"))
        .ok_or_else(|| {
            format!(
                "{}: no linux-image-*-cloud-amd64 in Depends: {depends}",
                meta.display()
            )
        })?
        .to_string();
    apt_download(&image, &debs)?;
    let image_deb = find_deb(&debs, &image)?;
    let version = image.trim_start_matches("linux-image-").to_string();
    let _ = fs::remove_dir_all(&kroot);
    fs::create_dir_all(&kroot).map_err(|e| format!("creating {}: {e}", kroot.display()))?;
    sh(
        Command::new("dpkg").arg("-x").arg(&image_deb).arg(&kroot),
        "dpkg -x",
    )?;
    let kernel = Kernel {
        version,
        root: kroot,
    };
    if !kernel.vmlinuz().is_file() {
        return Err(format!(
            "{} has no {}",
            image_deb.display(),
            kernel.vmlinuz().display()
        ));
    }
    sh(
        Command::new("depmod")
            .arg("-b")
            .arg(&kernel.root)
            .arg(&kernel.version),
        "depmod (package kmod)",
    )?;
    fs::write(&stamp, &kernel.version).map_err(|e| format!("writing {}: {e}", stamp.display()))?;
    Ok(kernel)
}

/// `apt-get download PACKAGE` into `dir`; on a fresh machine the package lists may be
/// missing, so a failure is retried once after `apt-get update`.
fn apt_download(package: &str, dir: &Path) -> Result<(), String> {
    let download = || sh(Command::new("apt-get").arg("download").arg(package).current_dir(dir), "apt-get download");
    if download().is_ok() {
        return Ok(());
    }
    eprintln!("xtask vm: apt-get download {package} failed; running apt-get update and retrying once");
    sh(Command::new("apt-get").arg("update"), "apt-get update")?;
    download().map(|_| ())
}

fn find_deb(dir: &Path, package: &str) -> Result<PathBuf, String> {
    let prefix = format!("{package}_");
    let entries = fs::read_dir(dir).map_err(|e| format!("reading {}: {e}", dir.display()))?;
    entries
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&prefix) && n.ends_with(".deb"))
        })
        .ok_or_else(|| {
            format!(
                "apt-get download left no {package}_*.deb in {}",
                dir.display()
            )
        })
}

/// Build the in-VM test programs and return their paths.
fn build_test_binaries(root: &Path, release: bool) -> Result<Vec<(PathBuf, &'static str)>, String> {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("target"));
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut paths = Vec::new();
    for (package, bin, dest) in TEST_BINARIES {
        eprintln!("xtask vm: building {package} --bin {bin}");
        let status = Command::new(&cargo)
            .args(["build", "-p", package, "--bin", bin])
            .args(release.then_some("--release"))
            .current_dir(root)
            .status()
            .map_err(|e| format!("cannot run cargo: {e}"))?;
        if !status.success() {
            return Err(format!(
                "cargo build -p {package} --bin {bin} failed ({status})"
            ));
        }
        let path = target
            .join(if release { "release" } else { "debug" })
            .join(bin);
        if !path.is_file() {
            return Err(format!(
                "cargo built {bin} but {} does not exist",
                path.display()
            ));
        }
        paths.push((path, *dest));
    }
    Ok(paths)
}

/// Read a list file of `vm/`: one entry per line, `#` comments.
fn read_list(path: &Path) -> Result<Vec<String>, String> {
    let text = fs::read_to_string(path).map_err(|e| format!("reading {}: {e}", path.display()))?;
    Ok(text
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect())
}

/// Copy `src` to `staging/<dest>` (creating directories), keeping the mode.
fn install(src: &Path, staging: &Path, dest: &Path) -> Result<(), String> {
    let target = staging.join(dest.strip_prefix("/").unwrap_or(dest));
    if let Some(dir) = target.parent() {
        fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    }
    fs::copy(src, &target)
        .map_err(|e| format!("copying {} to {}: {e}", src.display(), target.display()))?;
    Ok(())
}

/// Copy a directory tree (regular files only).
fn copy_tree(src: &Path, dest: &Path) -> Result<(), String> {
    fs::create_dir_all(dest).map_err(|e| format!("creating {}: {e}", dest.display()))?;
    let entries = fs::read_dir(src).map_err(|e| format!("reading {}: {e}", src.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("reading {}: {e}", src.display()))?;
        let path = entry.path();
        let target = dest.join(entry.file_name());
        if path.is_dir() {
            copy_tree(&path, &target)?;
        } else if path.is_file() {
            fs::copy(&path, &target).map_err(|e| format!("copying {}: {e}", path.display()))?;
        }
    }
    Ok(())
}

/// The shared libraries (and the loader) an executable needs, as absolute paths.
fn shared_libraries(exe: &Path) -> Result<BTreeSet<PathBuf>, String> {
    let out = Command::new("ldd")
        .arg(exe)
        .output()
        .map_err(|e| format!("cannot run ldd: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout);
    if !out.status.success() && !text.contains("not a dynamic executable") {
        return Err(format!(
            "ldd {} failed: {}",
            exe.display(),
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let mut libs = BTreeSet::new();
    for line in text.lines() {
        if line.contains("not found") {
            return Err(format!("ldd {}: {}", exe.display(), line.trim()));
        }
        // "libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "/lib64/ld-linux... (0x...)"
        if let Some(path) = line.split_whitespace().find(|w| w.starts_with('/')) {
            libs.insert(PathBuf::from(path));
        }
    }
    Ok(libs)
}

/// Stage and pack the initramfs; returns the path of `initrd.gz`.
fn build_initramfs(
    root: &Path,
    cache: &Path,
    kernel: &Kernel,
    binaries: &[(PathBuf, &str)],
) -> Result<PathBuf, String> {
    let staging = cache.join("initramfs");
    let _ = fs::remove_dir_all(&staging);
    fs::create_dir_all(&staging).map_err(|e| format!("creating {}: {e}", staging.display()))?;
    let vm = root.join("vm");

    // busybox (static) provides sh, mount, modprobe, poweroff...
    let busybox = Path::new("/usr/bin/busybox");
    if !busybox.is_file() {
        return Err("no /usr/bin/busybox: apt-get install busybox-static".to_string());
    }
    install(busybox, &staging, Path::new("/bin/busybox"))?;
    install(&vm.join("init.sh"), &staging, Path::new("/init"))?;

    // Modules with their dependencies, at the same relative paths, then depmod on the
    // staging root so the VM's modprobe sees exactly what is there.
    let modules = read_list(&vm.join("modules.txt"))?;
    let mut files = BTreeSet::new();
    for m in &modules {
        let out = sh(
            Command::new("modprobe")
                .arg("-d")
                .arg(&kernel.root)
                .arg("-S")
                .arg(&kernel.version)
                .arg("--show-depends")
                .arg(m),
            &format!("resolving module {m} (vm/modules.txt)"),
        )?;
        for line in out.lines() {
            if let Some(path) = line.strip_prefix("insmod ") {
                files.insert(PathBuf::from(path.split_whitespace().next().unwrap_or("")));
            }
        }
    }
    let kroot =
        fs::canonicalize(&kernel.root).map_err(|e| format!("{}: {e}", kernel.root.display()))?;
    for file in &files {
        let canon =
            fs::canonicalize(file).map_err(|e| format!("module {}: {e}", file.display()))?;
        let rel = canon
            .strip_prefix(&kroot)
            .map_err(|_| format!("module {} outside the kernel root", file.display()))?;
        install(&canon, &staging, &Path::new("/").join(rel))?;
    }
    for meta in [
        "modules.order",
        "modules.builtin",
        "modules.builtin.modinfo",
    ] {
        let src = kernel.modules().join(meta);
        if src.is_file() {
            install(
                &src,
                &staging,
                &Path::new("/lib/modules").join(&kernel.version).join(meta),
            )?;
        }
    }
    sh(
        Command::new("depmod")
            .arg("-b")
            .arg(&staging)
            .arg(&kernel.version),
        "depmod on the initramfs",
    )?;
    let list = staging.join("etc/kproxy-modules");
    fs::create_dir_all(staging.join("etc")).map_err(|e| format!("creating etc: {e}"))?;
    fs::write(&list, modules.join("\n") + "\n")
        .map_err(|e| format!("writing {}: {e}", list.display()))?;

    // Host tools and test binaries with their libraries.
    let mut libs = BTreeSet::new();
    for tool in read_list(&vm.join("tools.txt"))? {
        let path = PathBuf::from(&tool);
        if !path.is_file() {
            return Err(format!("{tool} (vm/tools.txt) is missing on this host: install iproute2, ipvsadm, nftables"));
        }
        install(&path, &staging, &path)?;
        libs.extend(shared_libraries(&path)?);
    }
    for (bin, dir) in binaries {
        let name = bin
            .file_name()
            .ok_or_else(|| format!("{}: no file name", bin.display()))?;
        let dest = Path::new(dir).join(name);
        install(bin, &staging, &dest)?;
        // Debug info only inflates the initramfs (and its gzip time); strip the copy.
        let _ = Command::new("strip")
            .arg(staging.join(dest.strip_prefix("/").unwrap_or(&dest)))
            .status();
        libs.extend(shared_libraries(bin)?);
    }
    for dir in DATA_DIRS {
        copy_tree(&root.join(dir), &staging.join(dir))?;
    }
    for lib in &libs {
        install(lib, &staging, lib)?;
    }

    let initrd = cache.join("initrd.gz");
    let pack = format!(
        "cd '{}' && find . | cpio --quiet -o -H newc | gzip -1 > '{}'",
        staging.display(),
        initrd.display()
    );
    sh(
        Command::new("sh").arg("-c").arg(&pack),
        "packing the initramfs (cpio, gzip)",
    )?;
    Ok(initrd)
}

/// Boot the VM, stream its console, and decide from the result marker.
fn boot(cache: &Path, kernel: &Kernel, initrd: &Path, opts: &Options) -> Result<(), String> {
    let mut append = "console=ttyS0 quiet panic=-1".to_string();
    if !opts.test_args.is_empty() {
        // Everything after `--` on the kernel command line reaches /init as arguments.
        append.push_str(" -- ");
        append.push_str(&opts.test_args.join(" "));
    }
    let log_path = cache.join("last-run.log");
    let mut log =
        fs::File::create(&log_path).map_err(|e| format!("creating {}: {e}", log_path.display()))?;
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-m",
            "1024",
            "-smp",
            "1",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
        ])
        .arg("-kernel")
        .arg(kernel.vmlinuz())
        .arg("-initrd")
        .arg(initrd)
        .arg("-append")
        .arg(&append)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            format!("cannot start qemu-system-x86_64: {e} (apt-get install qemu-system-x86)")
        })?;
    let stdout = child.stdout.take().ok_or("qemu stdout was not captured")?;
    let stderr = child.stderr.take().ok_or("qemu stderr was not captured")?;
    let (tx, rx) = std::sync::mpsc::channel::<String>();
    let tx2 = tx.clone();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx2.send(format!("qemu: {line}")).is_err() {
                break;
            }
        }
    });

    let deadline = Instant::now() + opts.timeout;
    let mut verdict: Option<bool> = None;
    loop {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(line) => {
                let line = line.trim_end_matches('\r').to_string();
                println!("{line}");
                let _ = writeln!(log, "{line}");
                if line.contains(PASS_MARKER) {
                    verdict = Some(true);
                } else if line.contains(FAIL_MARKER) {
                    verdict = Some(false);
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                // Both pipes closed: qemu exited.
                let _ = child.wait();
                break;
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(format!(
                "VM did not finish within {}s (console in {}); raise --timeout or look for a hang",
                opts.timeout.as_secs(),
                log_path.display()
            ));
        }
    }
    match verdict {
        Some(true) => Ok(()),
        Some(false) => Err(format!(
            "VM tests failed (console in {})",
            log_path.display()
        )),
        None => Err(format!(
            "VM exited without a result marker: it did not boot or /init crashed (console in {})",
            log_path.display()
        )),
    }
}
