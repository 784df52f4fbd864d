//! Verdicts, checks and their rendering (text for people, one JSON line for scripts).

/// How one check came out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Verdict {
    /// Nothing to do.
    Ok,
    /// Works, but deserves a look (or could not be verified).
    Warn,
    /// Broken: traffic is or will be affected.
    Fail,
}

impl Verdict {
    /// `ok`, `warn` or `fail`.
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Ok => "ok",
            Verdict::Warn => "warn",
            Verdict::Fail => "fail",
        }
    }
}

/// One check's result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Check {
    /// Stable identifier for scripts (e.g. `cluster-cidr`).
    pub id: &'static str,
    /// The verdict.
    pub verdict: Verdict,
    /// What was seen (facts, not guesses).
    pub seen: String,
    /// What to do; empty when the verdict is ok.
    pub action: String,
}

impl Check {
    /// An ok check.
    pub fn ok(id: &'static str, seen: impl Into<String>) -> Check {
        Check { id, verdict: Verdict::Ok, seen: seen.into(), action: String::new() }
    }

    /// A warning.
    pub fn warn(id: &'static str, seen: impl Into<String>, action: impl Into<String>) -> Check {
        Check { id, verdict: Verdict::Warn, seen: seen.into(), action: action.into() }
    }

    /// A failure.
    pub fn fail(id: &'static str, seen: impl Into<String>, action: impl Into<String>) -> Check {
        Check { id, verdict: Verdict::Fail, seen: seen.into(), action: action.into() }
    }
}

/// Every check of one run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// In the order they ran.
    pub checks: Vec<Check>,
}

impl Report {
    /// The worst verdict (ok for no checks).
    pub fn verdict(&self) -> Verdict {
        self.checks.iter().map(|c| c.verdict).max().unwrap_or(Verdict::Ok)
    }

    /// The process exit code: 0 all ok, 1 warnings only, 2 at least one failure.
    pub fn exit_code(&self) -> u8 {
        match self.verdict() {
            Verdict::Ok => 0,
            Verdict::Warn => 1,
            Verdict::Fail => 2,
        }
    }

    /// One block per check, then a summary line.
    pub fn text(&self) -> String {
        let mut out = String::new();
        for c in &self.checks {
            out.push_str(&format!("[{:<4}] {}: {}\n", c.verdict.as_str(), c.id, c.seen));
            if !c.action.is_empty() {
                out.push_str(&format!("       -> {}\n", c.action));
            }
        }
        let count = |v| self.checks.iter().filter(|c| c.verdict == v).count();
        out.push_str(&format!(
            "{}: {} ok, {} warn, {} fail\n",
            self.verdict().as_str(),
            count(Verdict::Ok),
            count(Verdict::Warn),
            count(Verdict::Fail)
        ));
        out
    }

    /// The one-line JSON object of `-o json`.
    pub fn json(&self) -> String {
        let checks: Vec<_> = self
            .checks
            .iter()
            .map(|c| serde_json::json!({"id": c.id, "verdict": c.verdict.as_str(), "seen": c.seen, "action": c.action}))
            .collect();
        serde_json::json!({"verdict": self.verdict().as_str(), "checks": checks}).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worst_verdict_decides_the_exit_code_and_json() {
        let mut r = Report::default();
        assert_eq!(r.exit_code(), 0);
        r.checks.push(Check::ok("a", "fine"));
        assert_eq!(r.exit_code(), 0);
        r.checks.push(Check::warn("b", "hm", "look"));
        assert_eq!(r.exit_code(), 1);
        r.checks.push(Check::fail("c", "broken", "fix"));
        assert_eq!(r.exit_code(), 2);
        let v: serde_json::Value = serde_json::from_str(&r.json()).unwrap();
        assert_eq!(v["verdict"], "fail");
        assert_eq!(v["checks"][1]["id"], "b");
        assert_eq!(v["checks"][2]["action"], "fix");
        assert!(r.text().contains("[fail] c: broken\n       -> fix\n"), "{}", r.text());
        assert!(r.text().ends_with("fail: 1 ok, 1 warn, 1 fail\n"));
    }
}
