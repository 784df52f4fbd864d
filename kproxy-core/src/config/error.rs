//! Located configuration errors and warnings: every message says where a setting came from
//! (`file:line:column`, a command-line flag, or upstream's default) and which field it is.

use std::fmt;
use std::sync::Arc;

/// Where a setting came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A position in a configuration file; line and column count from 1.
    File {
        /// The file name as given to the parser (e.g. `/etc/kubernetes/kube-proxy.yaml`).
        source: Arc<str>,
        /// Line, from 1.
        line: usize,
        /// Column (in characters), from 1.
        column: usize,
    },
    /// A command-line flag, with its dashes (`--ipvs-scheduler`).
    Flag(String),
    /// Not set anywhere: upstream's default value.
    Default,
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::File { source, line, column } => write!(f, "{source}:{line}:{column}"),
            Origin::Flag(flag) => write!(f, "flag {flag}"),
            Origin::Default => f.write_str("default"),
        }
    }
}

/// One problem with one field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// Where the offending value (or unknown key) was written.
    pub origin: Origin,
    /// Dotted field path as written in YAML (`ipvs.scheduler`, `nodePortAddresses[1]`);
    /// empty for problems with the document as a whole.
    pub path: String,
    /// What is wrong and, where possible, what to write instead.
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            write!(f, "{}: {}", self.origin, self.message)
        } else {
            write!(f, "{}: {}: {}", self.origin, self.path, self.message)
        }
    }
}

/// A setting that is accepted but deserves the operator's attention (it has no effect in
/// kproxy, or is served differently than its name suggests).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// Where the setting was written.
    pub origin: Origin,
    /// Dotted field path.
    pub path: String,
    /// What happens and why.
    pub message: String,
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}: {}", self.origin, self.path, self.message)
    }
}

/// Why a configuration was rejected. Nothing of a rejected configuration should be applied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// The text is not valid YAML (or has more or fewer than one document).
    #[error("{origin}: invalid YAML: {message}")]
    Syntax {
        /// Where the parser stopped.
        origin: Origin,
        /// The parser's explanation.
        message: String,
    },
    /// The YAML does not have the shape of a KubeProxyConfiguration: wrong apiVersion or
    /// kind, unknown or duplicate fields, values of the wrong type. Every problem found.
    #[error("{}", join_lines(.0))]
    Decode(Vec<FieldError>),
    /// Well-formed, but values break upstream's validation rules. Every problem found.
    #[error("{}", join_lines(.0))]
    Validate(Vec<FieldError>),
}

impl ConfigError {
    /// The individual field problems (empty for [`ConfigError::Syntax`]).
    pub fn field_errors(&self) -> &[FieldError] {
        match self {
            ConfigError::Syntax { .. } => &[],
            ConfigError::Decode(errors) | ConfigError::Validate(errors) => errors,
        }
    }

    /// One line per problem, as printed to the operator.
    pub fn lines(&self) -> Vec<String> {
        match self {
            ConfigError::Syntax { .. } => vec![self.to_string()],
            ConfigError::Decode(errors) | ConfigError::Validate(errors) => {
                errors.iter().map(ToString::to_string).collect()
            }
        }
    }
}

fn join_lines(errors: &[FieldError]) -> String {
    errors.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n")
}
