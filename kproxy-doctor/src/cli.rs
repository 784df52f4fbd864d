//! Doctor's own options (`-o`, `--cni-conf-dir`, the hidden `--kproxy-conntrack-max`), taken
//! out of the arguments before the rest goes to kproxy's own parser, which then sees exactly
//! the daemon's flags.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::gather::DEFAULT_CNI_CONF_DIR;

/// `kproxy doctor --help`.
pub const USAGE: &str = "Usage: kproxy doctor [kproxy's flags: --config, --kubeconfig, --manifests, ...] [-o text|json] [--cni-conf-dir DIR]

Checks this node for the ways a service proxy fails and prints, per check, a verdict (ok, warn,
fail), what was seen and what to do. Give it the daemon's flags so it reads the same sources.
  -o, --output text|json   json: one JSON object on the last line of stdout
  --cni-conf-dir DIR       the CNI configuration directory (default /etc/cni/net.d)
Exit codes: 0 all ok, 1 warnings only, 2 a failure, 3 bad doctor arguments.
";

/// Doctor's own options, taken out of the arguments before the rest goes to kproxy's parser.
pub struct Options {
    /// `-o json`.
    pub json: bool,
    /// `--cni-conf-dir`.
    pub cni_dir: PathBuf,
    /// `--kproxy-conntrack-max` (tests: replaces the read of nf_conntrack_max).
    pub conntrack_max: Option<u64>,
}

/// Removes `--name VALUE` / `--name=VALUE` (and `-o VALUE`, `-oVALUE`) from `args`.
fn take(args: &mut Vec<OsString>, long: &str, short: Option<&str>) -> Result<Option<String>, String> {
    let mut found = None;
    let mut i = 0;
    while i < args.len() {
        let a = args[i].to_string_lossy().into_owned();
        let inline = a.strip_prefix(&format!("--{long}=")).or_else(|| short.and_then(|s| a.strip_prefix(&format!("-{s}=")).or_else(|| a.strip_prefix(&format!("-{s}")).filter(|v| !v.is_empty()))));
        if let Some(v) = inline {
            found = Some(v.to_string());
            args.remove(i);
        } else if a == format!("--{long}") || short.is_some_and(|s| a == format!("-{s}")) {
            args.remove(i);
            if i >= args.len() {
                return Err(format!("{a} needs a value"));
            }
            found = Some(args.remove(i).to_string_lossy().into_owned());
        } else {
            i += 1;
        }
    }
    Ok(found)
}

/// Takes doctor's options out of `args`; an error names the bad option.
pub fn options(args: &mut Vec<OsString>) -> Result<Options, String> {
    let json = match take(args, "output", Some("o"))?.as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => return Err(format!("-o {other:?}: expected text or json")),
    };
    let cni_dir = take(args, "cni-conf-dir", None)?.map_or_else(|| PathBuf::from(DEFAULT_CNI_CONF_DIR), PathBuf::from);
    // Hidden, for tests: a network namespace cannot change nf_conntrack_max.
    let conntrack_max = match take(args, "kproxy-conntrack-max", None)? {
        Some(v) => Some(v.parse().map_err(|_| format!("--kproxy-conntrack-max {v:?}: not a number"))?),
        None => None,
    };
    Ok(Options { json, cni_dir, conntrack_max })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn doctor_options_are_taken_out_and_the_rest_is_left_for_kproxy() {
        let mut a = args(&["--manifests", "/m", "-o", "json", "--cni-conf-dir=/c", "--cluster-cidr", "198.18.0.0/16"]);
        let o = options(&mut a).unwrap();
        assert!(o.json);
        assert_eq!(o.cni_dir, PathBuf::from("/c"));
        assert_eq!(a, args(&["--manifests", "/m", "--cluster-cidr", "198.18.0.0/16"]));
        let mut a = args(&["-ojson", "--kproxy-conntrack-max=21"]);
        let o = options(&mut a).unwrap();
        assert!(o.json && o.conntrack_max == Some(21) && a.is_empty());
        assert!(options(&mut args(&["-o", "yaml"])).is_err());
        assert!(options(&mut args(&["--cni-conf-dir"])).is_err());
    }
}
