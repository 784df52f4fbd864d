//! `kproxy-testserver`: answers TCP and UDP with `"<name> <peer>"`; see `kproxy_tests::serve`.

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match kproxy_tests::serve::ServeArgs::parse(&args) {
        Ok(parsed) => parsed,
        Err(e) => {
            eprintln!("kproxy-testserver: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = kproxy_tests::serve::main(&parsed) {
        eprintln!("kproxy-testserver {}: {e}", parsed.name);
        std::process::exit(1);
    }
}
