//! Reading configuration files (the only I/O of configuration handling; parsing and
//! merging are in `kproxy_core::config`) and writing `--write-config-to`.
//!
//! Without `--config`, the guide's layout applies: `/var/lib/kube-proxy/config.conf` (proxy
//! config), then `/etc/kubernetes/kube-proxy.yaml` (main config) over it, field by field;
//! a missing default file is skipped. An explicit `--config` that cannot be read is an
//! error.

use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use kproxy_core::config::{KubeProxyConfiguration, Layer};

use crate::error::CliError;

/// Main configuration file read without `--config` (overrides the proxy config).
pub const DEFAULT_MAIN_CONFIG: &str = "/etc/kubernetes/kube-proxy.yaml";
/// Proxy configuration file read without `--config` (lowest precedence).
pub const DEFAULT_PROXY_CONFIG: &str = "/var/lib/kube-proxy/config.conf";
/// Environment variable overriding [`DEFAULT_MAIN_CONFIG`] (for tests).
pub const MAIN_CONFIG_ENV: &str = "KPROXY_MAIN_CONFIG";
/// Environment variable overriding [`DEFAULT_PROXY_CONFIG`] (for tests).
pub const PROXY_CONFIG_ENV: &str = "KPROXY_PROXY_CONFIG";

/// Which files to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigSources {
    /// `--config`: when set, the only file, and it must exist.
    pub explicit: Option<PathBuf>,
    /// The main config (used without `--config`).
    pub main: PathBuf,
    /// The proxy config (used without `--config`).
    pub proxy: PathBuf,
}

/// One file that was read.
#[derive(Debug, Clone)]
pub struct LoadedFile {
    /// Where it was read from.
    pub path: PathBuf,
    /// What it sets.
    pub layer: Layer,
}

/// [`DEFAULT_MAIN_CONFIG`], or `$KPROXY_MAIN_CONFIG`.
pub fn main_config_path() -> PathBuf {
    std::env::var_os(MAIN_CONFIG_ENV).map_or_else(|| PathBuf::from(DEFAULT_MAIN_CONFIG), PathBuf::from)
}

/// [`DEFAULT_PROXY_CONFIG`], or `$KPROXY_PROXY_CONFIG`.
pub fn proxy_config_path() -> PathBuf {
    std::env::var_os(PROXY_CONFIG_ENV).map_or_else(|| PathBuf::from(DEFAULT_PROXY_CONFIG), PathBuf::from)
}

/// Read and parse the files, lowest precedence first.
///
/// Errors: [`CliError::ReadConfig`] if `--config` (or an existing default file) cannot be
/// read; [`CliError::InvalidConfig`] with located messages if a file is malformed.
pub fn read_files(sources: &ConfigSources) -> Result<Vec<LoadedFile>, CliError> {
    if let Some(path) = &sources.explicit {
        let text = read(path)?.ok_or_else(|| CliError::ReadConfig {
            path: path.clone(),
            source: std::io::Error::new(ErrorKind::NotFound, "no such file (given with --config)"),
        })?;
        return Ok(vec![parse_file(path, &text)?]);
    }
    let mut out = Vec::new();
    for path in [&sources.proxy, &sources.main] {
        if let Some(text) = read(path)? {
            out.push(parse_file(path, &text)?);
        }
    }
    Ok(out)
}

/// The file's text, `None` if it does not exist.
fn read(path: &Path) -> Result<Option<String>, CliError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
        Err(source) => Err(CliError::ReadConfig { path: path.to_path_buf(), source }),
    }
}

fn parse_file(path: &Path, text: &str) -> Result<LoadedFile, CliError> {
    let layer = Layer::from_yaml(text, &path.display().to_string())?;
    Ok(LoadedFile { path: path.to_path_buf(), layer })
}

/// Write the effective configuration as YAML (`--write-config-to`).
pub fn write_config(path: &Path, config: &KubeProxyConfiguration) -> Result<(), CliError> {
    std::fs::write(path, config.to_yaml()).map_err(|source| CliError::WriteConfig { path: path.to_path_buf(), source })
}
