//! `cargo xtask`: the commands a new machine needs, each installing what it needs first.
//!
//! - `demo`: kproxy's main job on an embedded example cluster, in network namespaces.
//! - `test`: every test suite (workspace tests as root, IPVS in a VM, API-server e2e).
//! - `vm ARGS` / `e2e ARGS`: the IPVS VM tests / the API-server e2e tests alone.
//! - `bench`: criterion benchmarks and the end-to-end nftables apply benchmark; `bench soak`:
//!   the daemon under a steady stream of endpoint changes (issue 12 item 6).
//! - `lab`: kproxy beside upstream kube-proxy in network namespaces, one real API server
//!   (issue 10): `--serve` for manual work, `--differential` to compare them probe by probe.
//! - `image`: the container image (FROM scratch, built with podman).
//! - `fuzz`: the coverage-guided fuzz targets (installs nightly and cargo-fuzz).
//! - `deps`: only install the system packages.

mod apiserver;
mod bench;
mod bench_soak;
mod cmd;
mod demo;
mod deps;
mod fuzz;
mod image;
mod lab;
mod test;
mod vm;

const USAGE: &str = "usage: cargo xtask <command> [args]

commands:
  demo    run kproxy --once on the example manifests in network namespaces and send traffic
  test    run every test suite (needs root): workspace tests, IPVS VM tests, API-server e2e
  vm      run the IPVS tests in a qemu VM (args passed on)
  e2e     run the end-to-end tests against a real kube-apiserver (args passed on)
  bench   run the criterion benchmarks and the nftables apply benchmark
  bench soak [--services N] [--rate R] [--minutes M]
          the real daemon under endpoint changes: latency per minute, VmRSS slope, final = --once
  lab     kproxy beside upstream kube-proxy on twin nodes, one API server (`lab --help`):
          --serve (stay up), --differential [--seed N] [--services N] (compare probe by probe)
  image   build the kproxy container image with podman ([--tag NAME] [--debug] [--check])
  fuzz    run the fuzz targets ([TARGET...] [--time SECONDS], default all, 60 s each);
          installs the nightly toolchain and cargo-fuzz if missing, prints execs and coverage
  deps    install the Debian packages the other commands need";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (command, rest) = match args.split_first() {
        Some((c, rest)) => (c.as_str(), rest),
        None => {
            eprintln!("{USAGE}");
            std::process::exit(2);
        }
    };
    let result = match command {
        "demo" => demo::run(rest),
        "test" => test::run(rest),
        "vm" => deps::ensure(&deps::all()).and_then(|()| vm::run(rest)),
        "e2e" => deps::ensure(deps::BUILD).and_then(|()| apiserver::run(rest)),
        "bench" if rest.first().is_some_and(|a| a == "soak") => bench_soak::run(&rest[1..]),
        "bench" => bench::run(rest),
        "lab" => lab::run(rest),
        "image" => image::run(rest),
        "fuzz" => fuzz::run(rest),
        "deps" => deps::ensure(&deps::all()),
        "help" | "-h" | "--help" => {
            println!("{USAGE}");
            Ok(())
        }
        other => Err(format!("unknown command {other:?}\n{USAGE}")),
    };
    if let Err(e) = result {
        eprintln!("xtask {command}: {e}");
        std::process::exit(1);
    }
}
