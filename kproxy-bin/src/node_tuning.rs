//! Process tuning kube-proxy does on start: `oomScoreAdj` (default -999, so the kernel's OOM
//! killer picks kproxy last and the node keeps its service rules' owner).

use std::path::Path;

/// Where the current process's OOM score adjustment lives.
pub const OOM_SCORE_ADJ_PATH: &str = "/proc/self/oom_score_adj";

/// Write `value` (-1000..=1000) to `path` (normally [`OOM_SCORE_ADJ_PATH`]). Failing is not
/// fatal, as upstream: a warning is logged (e.g. lowering the score needs CAP_SYS_RESOURCE)
/// and `false` returned.
pub fn apply_oom_score_adj(path: &Path, value: i32) -> bool {
    match std::fs::write(path, format!("{value}\n")) {
        Ok(()) => {
            tracing::info!(value, "Set oom_score_adj");
            true
        }
        Err(err) => {
            tracing::warn!(
                error = %err,
                path = %path.display(),
                value,
                "Failed to apply oomScoreAdj (needs CAP_SYS_RESOURCE to lower it); continuing"
            );
            false
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_value_and_survives_failure() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("oom_score_adj");
        assert!(apply_oom_score_adj(&file, -999));
        assert_eq!(std::fs::read_to_string(&file).unwrap(), "-999\n");
        assert!(!apply_oom_score_adj(&dir.path().join("missing/dir/oom_score_adj"), -999));
    }

    #[test]
    fn applies_to_this_process() {
        // Raising our own score is always allowed; read it back from the kernel.
        let before = std::fs::read_to_string(OOM_SCORE_ADJ_PATH).unwrap();
        let target: i32 = before.trim().parse::<i32>().unwrap().max(0) + 1;
        assert!(apply_oom_score_adj(Path::new(OOM_SCORE_ADJ_PATH), target.min(1000)));
        assert_eq!(std::fs::read_to_string(OOM_SCORE_ADJ_PATH).unwrap().trim(), target.min(1000).to_string());
    }
}
