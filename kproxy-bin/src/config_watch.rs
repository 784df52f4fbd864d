//! Exit when a loaded configuration file changes, as upstream kube-proxy does: the DaemonSet
//! (or systemd) restarts the process, which then loads the new configuration. Without this a
//! ConfigMap edit would silently do nothing until someone restarts the pod.
//!
//! Polled once a second by content, not by inotify: a ConfigMap update swaps a `..data`
//! symlink in the mounted directory, which an inotify watch on the file's path does not see
//! reliably; reading through the path always sees what a restart would load. The files are a
//! few kilobytes, so the cost is negligible.

use std::path::{Path, PathBuf};
use std::time::Duration;

/// How often the files are compared with what was loaded.
pub const POLL: Duration = Duration::from_secs(1);

/// What changed about a watched file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigChange {
    /// The file, as given on the command line or by the default path.
    pub path: PathBuf,
    /// `true` when it can no longer be read (deleted, or a dangling symlink).
    pub unreadable: bool,
}

impl std::fmt::Display for ConfigChange {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = if self.unreadable { "was removed or can no longer be read" } else { "changed" };
        write!(
            f,
            "the configuration file {} {what}: exiting so that the new configuration is loaded on restart (as kube-proxy does)",
            self.path.display()
        )
    }
}

/// The loaded files' contents, to compare against.
#[derive(Debug)]
pub struct ConfigWatch {
    files: Vec<(PathBuf, Option<Vec<u8>>)>,
}

impl ConfigWatch {
    /// Remembers the current contents of `paths` (the files the configuration was read from).
    pub fn new(paths: &[PathBuf]) -> ConfigWatch {
        ConfigWatch { files: paths.iter().map(|p| (p.clone(), read(p))).collect() }
    }

    /// The first file whose content differs from what was remembered, if any.
    pub fn check(&self) -> Option<ConfigChange> {
        self.files.iter().find_map(|(path, before)| {
            let now = read(path);
            (now != *before).then(|| ConfigChange { path: path.clone(), unreadable: now.is_none() })
        })
    }

    /// Completes when a file changes (never, when no file was loaded).
    pub async fn changed(self) -> ConfigChange {
        if self.files.is_empty() {
            return std::future::pending().await;
        }
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tick.tick().await;
            if let Some(change) = self.check() {
                return change;
            }
        }
    }
}

fn read(path: &Path) -> Option<Vec<u8>> {
    std::fs::read(path).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_changes_symlink_swaps_and_removal_are_seen() {
        let dir = tempfile::tempdir().unwrap();
        // A ConfigMap volume: config.conf -> ..data/config.conf, ..data -> ..v1.
        for v in ["..v1", "..v2"] {
            std::fs::create_dir(dir.path().join(v)).unwrap();
        }
        std::fs::write(dir.path().join("..v1/config.conf"), "mode: nftables\n").unwrap();
        std::fs::write(dir.path().join("..v2/config.conf"), "mode: ipvs\n").unwrap();
        std::os::unix::fs::symlink("..v1", dir.path().join("..data")).unwrap();
        std::os::unix::fs::symlink("..data/config.conf", dir.path().join("config.conf")).unwrap();
        let path = dir.path().join("config.conf");

        let watch = ConfigWatch::new(std::slice::from_ref(&path));
        assert_eq!(watch.check(), None);
        // Touching without a change is no change.
        std::fs::write(dir.path().join("..v1/config.conf"), "mode: nftables\n").unwrap();
        assert_eq!(watch.check(), None);
        // The kubelet's atomic update: a new ..data link renamed over the old one.
        std::os::unix::fs::symlink("..v2", dir.path().join("..data_tmp")).unwrap();
        std::fs::rename(dir.path().join("..data_tmp"), dir.path().join("..data")).unwrap();
        assert_eq!(watch.check(), Some(ConfigChange { path: path.clone(), unreadable: false }));

        let watch = ConfigWatch::new(std::slice::from_ref(&path));
        std::fs::remove_file(dir.path().join("..v2/config.conf")).unwrap();
        let change = watch.check().unwrap();
        assert!(change.unreadable);
        assert!(change.to_string().contains("was removed or can no longer be read"), "{change}");
    }
}
