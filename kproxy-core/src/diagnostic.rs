//! Problems found in cluster objects or manifests: what is wrong, with which object, and what
//! kproxy did about it.
//!
//! Bad input never stops translation: the malformed object (or only the malformed port or
//! endpoint, where that is what upstream does) is skipped, a [`Diagnostic`] says so, and every
//! other object is still programmed. Callers log diagnostics; the core never does.

use std::fmt;

/// Where in a manifest a problem was found.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SourceLocation {
    /// The source name given by the caller (usually a file path).
    pub source: String,
    /// 0-based index of the document in a multi-document YAML file (or JSON stream).
    pub document: usize,
    /// 0-based index of the item inside a `kind: List` document.
    pub item: Option<usize>,
    /// 1-based line, when known.
    pub line: Option<usize>,
}

impl fmt::Display for SourceLocation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        write!(f, " (document {}", self.document)?;
        if let Some(item) = self.item {
            write!(f, ", item {item}")?;
        }
        f.write_str(")")
    }
}

/// One problem with one object.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Diagnostic {
    /// Kind of the object (`Service`, `EndpointSlice`, `ServiceCIDR`, `Node`, or whatever a
    /// manifest document claimed to be; `document` when not even that is known).
    pub kind: String,
    /// Namespace of the object (empty for cluster-scoped kinds or when unknown).
    pub namespace: String,
    /// Name of the object (empty when unknown).
    pub name: String,
    /// What is wrong, with the field path, and what was skipped.
    pub message: String,
    /// Where it was read from, for manifests.
    pub location: Option<SourceLocation>,
}

impl Diagnostic {
    /// A diagnostic about a cluster object (no manifest location).
    pub fn new(kind: &str, namespace: &str, name: &str, message: impl Into<String>) -> Diagnostic {
        Diagnostic {
            kind: kind.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
            message: message.into(),
            location: None,
        }
    }

    /// The same diagnostic, located in a manifest.
    pub fn at(mut self, location: SourceLocation) -> Diagnostic {
        self.location = Some(location);
        self
    }

    /// `namespace/name`, or `name` for cluster-scoped objects, or `<unnamed>`.
    pub fn object(&self) -> String {
        match (self.namespace.is_empty(), self.name.is_empty()) {
            (_, true) => "<unnamed>".to_string(),
            (true, false) => self.name.clone(),
            (false, false) => format!("{}/{}", self.namespace, self.name),
        }
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(location) = &self.location {
            write!(f, "{location}: ")?;
        }
        write!(f, "{} {}: {}", self.kind, self.object(), self.message)
    }
}

/// Collects diagnostics about one object while it is being translated.
#[derive(Debug)]
pub(crate) struct Reporter<'a> {
    kind: &'static str,
    namespace: &'a str,
    name: &'a str,
    out: &'a mut Vec<Diagnostic>,
}

impl<'a> Reporter<'a> {
    pub(crate) fn new(kind: &'static str, namespace: &'a str, name: &'a str, out: &'a mut Vec<Diagnostic>) -> Self {
        Reporter { kind, namespace, name, out }
    }

    /// Record one problem.
    pub(crate) fn report(&mut self, message: impl Into<String>) {
        self.out.push(Diagnostic::new(self.kind, self.namespace, self.name, message));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_location_object_and_message() {
        let d = Diagnostic::new("Service", "default", "web", "spec.ports[0].port: 0 is not a valid port")
            .at(SourceLocation { source: "a.yaml".into(), document: 2, item: Some(1), line: Some(14) });
        assert_eq!(
            d.to_string(),
            "a.yaml:14 (document 2, item 1): Service default/web: spec.ports[0].port: 0 is not a valid port"
        );
        assert_eq!(Diagnostic::new("Node", "", "n1", "x").to_string(), "Node n1: x");
        assert_eq!(Diagnostic::new("document", "", "", "x").object(), "<unnamed>");
    }
}
