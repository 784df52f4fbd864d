//! A YAML document as a tree that remembers where every key and value was written.
//!
//! yaml-rust2's event parser is used because it reports a [`Marker`] (line, column) for every
//! event, is pure Rust without unsafe code, and is actively maintained (serde_yaml is
//! deprecated, and its errors only locate syntax problems, not the value a validation rule
//! rejects). The tree is also the "partial" configuration: it holds only what a source set,
//! so layers (files, flags) merge field by field before defaults apply.

use std::collections::HashMap;
use std::sync::Arc;

use yaml_rust2::parser::{Event, MarkedEventReceiver, Parser, Tag};
use yaml_rust2::scanner::{Marker, TScalarStyle};

use super::error::{ConfigError, FieldError, Origin};

/// How a scalar was written, which decides how it is typed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ScalarStyle {
    /// Unquoted YAML: typed by YAML's rules (`true`, `10`, `null` are not strings).
    Plain,
    /// Quoted or block YAML, or tagged `!!str`: always a string.
    Quoted,
    /// A command-line flag value: parsed as whatever the field needs.
    Flag,
}

/// A value in the tree.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    /// `null`, `~` or nothing.
    Null,
    /// A scalar's text.
    Scalar(String, ScalarStyle),
    /// A sequence.
    Seq(Vec<Node>),
    /// A mapping, in document order.
    Map(Vec<Entry>),
}

/// A value and where it was written.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Node {
    pub origin: Origin,
    pub value: Value,
}

/// One key of a mapping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Entry {
    pub key: String,
    pub key_origin: Origin,
    pub value: Node,
}

impl Node {
    /// An empty mapping (an empty layer).
    pub fn empty_map(origin: Origin) -> Node {
        Node { origin, value: Value::Map(Vec::new()) }
    }

    /// The entries if this is a mapping.
    pub fn entries(&self) -> Option<&[Entry]> {
        match &self.value {
            Value::Map(entries) => Some(entries),
            _ => None,
        }
    }

    /// Whether YAML `null` (or an empty value).
    pub fn is_null(&self) -> bool {
        match &self.value {
            Value::Null => true,
            Value::Scalar(text, ScalarStyle::Plain) => is_yaml_null(text),
            _ => false,
        }
    }
}

/// YAML 1.1/1.2 spellings of null for an unquoted scalar.
pub(crate) fn is_yaml_null(text: &str) -> bool {
    matches!(text, "" | "~" | "null" | "Null" | "NULL")
}

fn origin_of(source: &Arc<str>, mark: &Marker) -> Origin {
    // yaml-rust2 counts lines from 1 and columns from 0.
    Origin::File { source: source.clone(), line: mark.line(), column: mark.col() + 1 }
}

/// What the builder is in the middle of.
enum Frame {
    Seq { origin: Origin, anchor: usize, items: Vec<Node> },
    Map { origin: Origin, anchor: usize, entries: Vec<Entry>, pending_key: Option<(String, Origin)> },
}

struct Builder {
    source: Arc<str>,
    stack: Vec<Frame>,
    documents: Vec<Node>,
    anchors: HashMap<usize, Node>,
    errors: Vec<FieldError>,
}

impl Builder {
    fn complete(&mut self, node: Node, anchor: usize) {
        if anchor != 0 {
            self.anchors.insert(anchor, node.clone());
        }
        match self.stack.last_mut() {
            None => self.documents.push(node),
            Some(Frame::Seq { items, .. }) => items.push(node),
            Some(Frame::Map { entries, pending_key, .. }) => match pending_key.take() {
                Some((key, key_origin)) => entries.push(Entry { key, key_origin, value: node }),
                None => match node.value {
                    Value::Scalar(key, _) => *pending_key = Some((key, node.origin)),
                    Value::Null => *pending_key = Some((String::new(), node.origin)),
                    _ => {
                        self.errors.push(FieldError {
                            origin: node.origin,
                            path: String::new(),
                            message: "a mapping key must be a plain string, not a list or mapping".into(),
                        });
                        // Keep the structure aligned: the value that follows is dropped.
                        *pending_key = Some((String::new(), Origin::Default));
                    }
                },
            },
        }
    }
}

fn position(origin: &Origin) -> (usize, usize) {
    match origin {
        Origin::File { line, column, .. } => (*line, *column),
        _ => (usize::MAX, usize::MAX),
    }
}

fn is_str_tag(tag: &Option<Tag>) -> bool {
    tag.as_ref().is_some_and(|t| t.suffix == "str" || t.suffix.ends_with(":str"))
}

impl MarkedEventReceiver for Builder {
    fn on_event(&mut self, event: Event, mark: Marker) {
        let origin = origin_of(&self.source, &mark);
        match event {
            Event::Scalar(text, style, anchor, tag) => {
                let style = if style == TScalarStyle::Plain && !is_str_tag(&tag) {
                    ScalarStyle::Plain
                } else {
                    ScalarStyle::Quoted
                };
                let value = if style == ScalarStyle::Plain && is_yaml_null(&text) {
                    Value::Null
                } else {
                    Value::Scalar(text, style)
                };
                self.complete(Node { origin, value }, anchor);
            }
            Event::Alias(anchor) => {
                let node = match self.anchors.get(&anchor) {
                    Some(n) => Node { origin, value: n.value.clone() },
                    None => Node { origin, value: Value::Null },
                };
                self.complete(node, 0);
            }
            Event::SequenceStart(anchor, _) => self.stack.push(Frame::Seq { origin, anchor, items: Vec::new() }),
            Event::MappingStart(anchor, _) => {
                self.stack.push(Frame::Map { origin, anchor, entries: Vec::new(), pending_key: None })
            }
            Event::SequenceEnd | Event::MappingEnd => match self.stack.pop() {
                Some(Frame::Seq { origin, anchor, items }) => {
                    self.complete(Node { origin, value: Value::Seq(items) }, anchor)
                }
                Some(Frame::Map { origin, anchor, entries, .. }) => {
                    let entries: Vec<Entry> = entries.into_iter().filter(|e| e.key_origin != Origin::Default).collect();
                    // A block mapping's start event is marked after its first key; point at
                    // whichever comes first (the first key, or a flow mapping's `{`).
                    let origin = match entries.first() {
                        Some(first) if position(&first.key_origin) < position(&origin) => first.key_origin.clone(),
                        _ => origin,
                    };
                    self.complete(Node { origin, value: Value::Map(entries) }, anchor)
                }
                None => {}
            },
            Event::Nothing | Event::StreamStart | Event::StreamEnd | Event::DocumentStart | Event::DocumentEnd => {}
        }
    }
}

/// Parse one YAML document into a located tree.
///
/// Errors: [`ConfigError::Syntax`] for invalid YAML, no document or more than one document;
/// [`ConfigError::Decode`] for non-string mapping keys.
pub(crate) fn parse_document(text: &str, source: &str) -> Result<Node, ConfigError> {
    let source: Arc<str> = Arc::from(source);
    let mut builder = Builder {
        source: source.clone(),
        stack: Vec::new(),
        documents: Vec::new(),
        anchors: HashMap::new(),
        errors: Vec::new(),
    };
    let mut parser = Parser::new_from_str(text);
    if let Err(e) = parser.load(&mut builder, true) {
        return Err(ConfigError::Syntax { origin: origin_of(&source, e.marker()), message: e.info().to_string() });
    }
    // Empty documents (a trailing `---`) are ignored, as Go's YAML reader does.
    builder.documents.retain(|d| !d.is_null());
    if builder.documents.len() > 1 {
        let origin = builder.documents[1].origin.clone();
        return Err(ConfigError::Syntax {
            origin,
            message: "a configuration file holds exactly one document; found a second one (remove the extra `---`)"
                .into(),
        });
    }
    if !builder.errors.is_empty() {
        return Err(ConfigError::Decode(builder.errors));
    }
    match builder.documents.pop() {
        Some(doc) if !doc.is_null() => Ok(doc),
        _ => Err(ConfigError::Syntax {
            origin: Origin::File { source, line: 1, column: 1 },
            message: "the file is empty; expected a KubeProxyConfiguration document".into(),
        }),
    }
}

/// Merge `higher` over `lower`, field by field: mappings merge key by key (recursively),
/// anything else in `higher` replaces what `lower` has; a null in `higher` means "not set"
/// and keeps `lower`'s value.
pub(crate) fn merge(lower: &mut Node, higher: &Node) {
    if higher.is_null() {
        return;
    }
    match (&mut lower.value, &higher.value) {
        (Value::Map(lower_entries), Value::Map(higher_entries)) => {
            for h in higher_entries {
                match lower_entries.iter_mut().rev().find(|l| l.key == h.key) {
                    Some(l) => {
                        l.key_origin = h.key_origin.clone();
                        merge(&mut l.value, &h.value);
                    }
                    None => lower_entries.push(h.clone()),
                }
            }
        }
        _ => *lower = higher.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(line: usize, column: usize) -> Origin {
        Origin::File { source: Arc::from("t.yaml"), line, column }
    }

    #[test]
    fn keeps_positions_of_keys_and_values() {
        let doc = parse_document("a: 1\nb:\n  c: \"x\"\n  d: [1, 2]\n", "t.yaml").unwrap();
        let entries = doc.entries().unwrap();
        assert_eq!(entries[0].key, "a");
        assert_eq!(entries[0].key_origin, at(1, 1));
        assert_eq!(entries[0].value.origin, at(1, 4));
        let b = entries[1].value.entries().unwrap();
        assert_eq!(b[0].value, Node { origin: at(3, 6), value: Value::Scalar("x".into(), ScalarStyle::Quoted) });
        assert_eq!(b[1].value.origin, at(4, 6));
    }

    #[test]
    fn syntax_error_is_located() {
        let err = parse_document("a: 1\nb: [1, 2\n", "t.yaml").unwrap_err();
        match err {
            ConfigError::Syntax { origin: Origin::File { line, .. }, .. } => assert!(line >= 2),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn rejects_empty_and_multi_document_input() {
        assert!(matches!(parse_document("", "t.yaml"), Err(ConfigError::Syntax { .. })));
        let err = parse_document("a: 1\n---\nb: 2\n", "t.yaml").unwrap_err();
        assert!(err.to_string().starts_with("t.yaml:3:1:"), "{err}");
        assert!(parse_document("---\na: 1\n---\n", "t.yaml").is_ok());
    }

    #[test]
    fn merge_is_field_by_field() {
        let mut lower = parse_document("a: 1\nm:\n  x: 1\n  y: 2\nl: [1]\n", "low").unwrap();
        let higher = parse_document("m:\n  y: 3\nl: [2, 3]\nz: null\n", "high").unwrap();
        merge(&mut lower, &higher);
        let e = lower.entries().unwrap();
        assert_eq!(e.iter().map(|e| e.key.as_str()).collect::<Vec<_>>(), ["a", "m", "l", "z"]);
        let m = e[1].value.entries().unwrap();
        assert_eq!(m[0].value.value, Value::Scalar("1".into(), ScalarStyle::Plain));
        assert_eq!(m[1].value.value, Value::Scalar("3".into(), ScalarStyle::Plain));
        assert!(matches!(&e[2].value.value, Value::Seq(items) if items.len() == 2));
    }
}
