//! Kubernetes manifests (YAML, multi-document, or JSON; `kind: List` included) to
//! [`ClusterEvent`]s, for the `--manifests` source.
//!
//! Pure: takes the text and a source name (for messages), reads no file. Kinds read: v1
//! Service, discovery.k8s.io/v1 EndpointSlice, v1 Node, networking.k8s.io/v1 ServiceCIDR. Each
//! becomes an [`Update::Upsert`]; namespaced objects without a namespace get `default` (as
//! kubectl does). Other kinds, other API versions and documents that do not decode become
//! [`Diagnostic`]s with the source, document index and line; every other document is kept.

use k8s_openapi::api::core::v1::{Node, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::networking::v1::ServiceCIDR;
use std::borrow::Cow;

use serde_json::value::RawValue;
use serde_json::{Map, Value};

use crate::diagnostic::{Diagnostic, SourceLocation};
use crate::event::{ClusterEvent, Update};
use crate::translate::meta::DEFAULT_NAMESPACE;

/// What a manifest held.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Manifest {
    /// One upsert per object read, in file order.
    pub events: Vec<ClusterEvent>,
    /// Documents or items that were skipped, and why.
    pub diagnostics: Vec<Diagnostic>,
}

/// Deepest YAML nesting read: Kubernetes objects need about 10 levels; deeper documents are
/// skipped before their parse time and memory can grow with the depth.
pub const MAX_DEPTH: usize = 64;

/// The kinds kproxy reads, for messages.
const SUPPORTED: &str = "v1 Service, discovery.k8s.io/v1 EndpointSlice, v1 Node, networking.k8s.io/v1 ServiceCIDR";

/// Parse a manifest. JSON is recognised by its first character (`{` or `[`); anything else is
/// YAML.
pub fn parse_manifest(text: &str, source: &str) -> Manifest {
    let mut m = Manifest::default();
    let trimmed = text.trim_start();
    if trimmed.starts_with('{') || trimmed.starts_with('[') {
        parse_json(text, source, &mut m);
    } else {
        parse_yaml(text, source, &mut m);
    }
    m
}

fn parse_json(text: &str, source: &str, m: &mut Manifest) {
    let mut stream = serde_json::Deserializer::from_str(text).into_iter::<&RawValue>();
    let mut document = 0;
    loop {
        let line = line_of(text, stream.byte_offset());
        let loc = SourceLocation { source: source.to_string(), document, item: None, line: Some(line) };
        match stream.next() {
            None => break,
            Some(Ok(raw)) => raw_document(raw.get(), &loc, m),
            Some(Err(e)) => {
                let message = format!("invalid JSON at column {}: {e}; the rest of the file is skipped", e.column());
                m.diagnostics.push(Diagnostic::new("document", "", "", message).at(SourceLocation { line: Some(e.line()), ..loc }));
                break;
            }
        }
        document += 1;
    }
}

/// The fields that identify a JSON document, read without building the rest (large
/// `kind: List` manifests are decoded straight from the text into the typed objects).
#[derive(serde::Deserialize)]
struct Peek<'a> {
    #[serde(rename = "apiVersion", default)]
    api_version: Option<String>,
    #[serde(default)]
    kind: Option<String>,
    #[serde(default)]
    metadata: Option<PeekMeta>,
    #[serde(default, borrow)]
    items: Option<Vec<&'a RawValue>>,
}

#[derive(serde::Deserialize)]
struct PeekMeta {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
}

/// One JSON document: an object, or an array of objects.
fn raw_document(raw: &str, loc: &SourceLocation, m: &mut Manifest) {
    if raw.trim_start().starts_with('[') {
        match serde_json::from_str::<Vec<&RawValue>>(raw) {
            Ok(items) => {
                for (i, item) in items.into_iter().enumerate() {
                    raw_object(item.get(), &SourceLocation { item: Some(i), ..loc.clone() }, m);
                }
            }
            Err(e) => m.diagnostics.push(Diagnostic::new("document", "", "", format!("invalid JSON: {e}; skipped")).at(loc.clone())),
        }
        return;
    }
    raw_object(raw, loc, m);
}

fn raw_object(raw: &str, loc: &SourceLocation, m: &mut Manifest) {
    // Anything unusual (not an object, identifying fields of the wrong type, typed lists whose
    // items omit their kind) takes the general path through a JSON value, which reports it.
    let general = |m: &mut Manifest| match serde_json::from_str::<Value>(raw) {
        Ok(value) => object(value, loc, None, m),
        Err(e) => m.diagnostics.push(Diagnostic::new("document", "", "", format!("invalid JSON: {e}; skipped")).at(loc.clone())),
    };
    let Ok(peek) = serde_json::from_str::<Peek<'_>>(raw) else {
        general(m);
        return;
    };
    let (namespace, name) = peek.metadata.map_or((None, None), |meta| (meta.namespace, meta.name));
    let header = Header {
        api_version: peek.api_version.unwrap_or_default(),
        kind: peek.kind.unwrap_or_default(),
        namespace: namespace.unwrap_or_default(),
        name: name.unwrap_or_default(),
    };
    if header.kind.ends_with("List") && !header.api_version.is_empty() {
        match peek.items {
            Some(items) if header.kind == "List" => {
                for (i, item) in items.into_iter().enumerate() {
                    raw_object(item.get(), &SourceLocation { item: Some(i), ..loc.clone() }, m);
                }
            }
            None if header.kind == "List" => {}
            _ => general(m),
        }
        return;
    }
    match classify(&header) {
        Ok(known) => {
            let mut de = serde_json::Deserializer::from_str(raw);
            push_decoded(decode(known, &mut de), &header, loc, m);
        }
        Err(message) => header.report(m, loc, message),
    }
}

/// 1-based line of a byte offset, skipping the whitespace before the next value.
fn line_of(text: &str, offset: usize) -> usize {
    let rest = &text[offset.min(text.len())..];
    let skipped = rest.len() - rest.trim_start().len();
    text[..(offset + skipped).min(text.len())].matches('\n').count() + 1
}

/// `line` with marker `m` (`---` or `...`) at column 0: what follows the marker.
fn marker<'a>(line: &'a str, m: &str) -> Option<&'a str> {
    let rest = line.strip_prefix(m)?;
    (rest.is_empty() || rest.starts_with(char::is_whitespace)).then_some(rest)
}

/// Whether a line of a document holds content (not blank, a comment or a bare `---`).
fn is_content(line: &str) -> bool {
    let trimmed = line.trim();
    !trimmed.is_empty() && !trimmed.starts_with('#') && marker(line, "---").is_none_or(|rest| !rest.trim().is_empty() && !rest.trim().starts_with('#'))
}

/// One YAML document: its text (borrowed from the file's text unless a `--- ` line carries
/// content, so a large file is not copied) and the 1-based line it starts on.
struct YamlDocument<'a> {
    text: Cow<'a, str>,
    first_line: usize,
}

/// Split at `---` and `...` lines (a marker at column 0 ends a document even inside a block
/// scalar, so splitting by lines is exact).
fn split_yaml(text: &str) -> Vec<YamlDocument<'_>> {
    // Each document: its first line (the marker line), the byte offset where it starts (the
    // marker line itself, which YAML reads as a document start), and whether the marker line
    // must be rewritten (`...`, or `--- ` followed by content, which YAML does not allow there).
    let mut pieces: Vec<(usize, usize, Option<&str>)> = vec![(1, 0, None)];
    let mut offset = 0;
    for (i, line) in text.split_inclusive('\n').enumerate() {
        let bare = line.strip_suffix('\n').unwrap_or(line);
        let bare = bare.strip_suffix('\r').unwrap_or(bare);
        if let Some(rest) = marker(bare, "---").or_else(|| marker(bare, "...")) {
            let rest = rest.trim();
            let rewrite = if bare.starts_with("...") {
                Some("")
            } else if !rest.is_empty() && !rest.starts_with('#') {
                // Content after `--- ` on the same line belongs to the new document.
                Some(rest)
            } else {
                None
            };
            pieces.push((i + 1, offset, rewrite));
        }
        offset += line.len();
    }
    let mut docs = Vec::with_capacity(pieces.len());
    for (n, &(first_line, start, rewrite)) in pieces.iter().enumerate() {
        let end = pieces.get(n + 1).map_or(text.len(), |p| p.1);
        let piece = &text[start..end];
        let text = match rewrite {
            Some(head) => {
                let body = piece.split_once('\n').map_or("", |(_, body)| body);
                Cow::Owned(format!("{head}\n{body}"))
            }
            None => Cow::Borrowed(piece),
        };
        docs.push(YamlDocument { text, first_line });
    }
    docs.retain(|d| d.text.lines().any(is_content));
    docs
}

fn parse_yaml(text: &str, source: &str, m: &mut Manifest) {
    for (document, doc) in split_yaml(text).into_iter().enumerate() {
        let content_line = doc
            .text
            .lines()
            .position(is_content)
            .map_or(doc.first_line, |p| doc.first_line + p);
        let loc = SourceLocation { source: source.to_string(), document, item: None, line: Some(content_line) };
        let options = serde_saphyr::options! {
            budget: serde_saphyr::budget! { max_depth: MAX_DEPTH, flow_nesting_limit: MAX_DEPTH },
        };
        match serde_saphyr::from_str_with_options::<Value>(&doc.text, options) {
            Ok(Value::Null) => {}
            Ok(value) => object(value, &loc, None, m),
            Err(e) => {
                let line = e.location().map_or(content_line, |l| doc.first_line + l.line() as usize - 1);
                let mut message = shift_lines(&e.without_snippet().to_string(), doc.first_line - 1);
                if message.contains("recursion limit") || message.contains("depth") {
                    message = format!("nesting deeper than the depth limit of {MAX_DEPTH} levels ({message})");
                }
                m.diagnostics.push(
                    Diagnostic::new("document", "", "", format!("invalid YAML: {message}; document skipped"))
                        .at(SourceLocation { line: Some(line), ..loc }),
                );
            }
        }
    }
}

/// Rewrite the document-relative `line N` references of a YAML error to file lines.
fn shift_lines(message: &str, offset: usize) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(at) = rest.find("line ") {
        let (before, after) = rest.split_at(at + "line ".len());
        out.push_str(before);
        let digits = after.bytes().take_while(u8::is_ascii_digit).count();
        match after[..digits].parse::<usize>() {
            Ok(n) => out.push_str(&(n + offset).to_string()),
            Err(_) => out.push_str(&after[..digits]),
        }
        rest = &after[digits..];
    }
    out.push_str(rest);
    out
}

/// `(apiVersion, kind)` a list item inherits from a typed list (`ServiceList` -> `Service`).
type Inherited<'a> = Option<(&'a str, &'a str)>;

fn object(mut value: Value, loc: &SourceLocation, inherited: Inherited<'_>, m: &mut Manifest) {
    let Value::Object(map) = &mut value else {
        m.diagnostics.push(
            Diagnostic::new("document", "", "", "not a Kubernetes object (a mapping with apiVersion and kind): skipped").at(loc.clone()),
        );
        return;
    };
    if let Some((api_version, kind)) = inherited {
        map.entry("apiVersion").or_insert_with(|| Value::String(api_version.to_string()));
        map.entry("kind").or_insert_with(|| Value::String(kind.to_string()));
    }
    let (namespace, name) = names(map);
    let api_version = map.get("apiVersion").and_then(Value::as_str).unwrap_or_default().to_string();
    let kind = map.get("kind").and_then(Value::as_str).unwrap_or_default().to_string();
    let header = Header { api_version, kind, namespace, name };
    if header.kind.ends_with("List") && !header.api_version.is_empty() {
        list(map, &header.api_version, &header.kind, loc, m);
        return;
    }
    match classify(&header) {
        Ok(known) => push_decoded(decode(known, value), &header, loc, m),
        Err(message) => header.report(m, loc, message),
    }
}

/// What identifies a document, read before decoding it.
struct Header {
    api_version: String,
    kind: String,
    namespace: String,
    name: String,
}

impl Header {
    fn report(&self, m: &mut Manifest, loc: &SourceLocation, message: String) {
        let kind = if self.kind.is_empty() { "document" } else { self.kind.as_str() };
        let namespace = if self.namespace.is_empty() && namespaced(&self.kind) { DEFAULT_NAMESPACE } else { &self.namespace };
        m.diagnostics.push(Diagnostic::new(kind, namespace, &self.name, message).at(loc.clone()));
    }
}

fn namespaced(kind: &str) -> bool {
    matches!(kind, "Service" | "EndpointSlice")
}

/// The kinds kproxy reads.
#[derive(Debug, Clone, Copy)]
enum Known {
    Service,
    EndpointSlice,
    Node,
    ServiceCidr,
}

/// Which known kind a document is, or why it is skipped.
fn classify(h: &Header) -> Result<Known, String> {
    let (api_version, kind) = (h.api_version.as_str(), h.kind.as_str());
    if kind.is_empty() || api_version.is_empty() {
        return Err("apiVersion or kind is missing: skipped".to_string());
    }
    match (api_version, kind) {
        ("v1", "Service") => Ok(Known::Service),
        ("discovery.k8s.io/v1", "EndpointSlice") => Ok(Known::EndpointSlice),
        ("v1", "Node") => Ok(Known::Node),
        ("networking.k8s.io/v1", "ServiceCIDR") => Ok(Known::ServiceCidr),
        (_, "Service" | "EndpointSlice" | "Node" | "ServiceCIDR") => {
            let wanted = match kind {
                "EndpointSlice" => "discovery.k8s.io/v1",
                "ServiceCIDR" => "networking.k8s.io/v1",
                _ => "v1",
            };
            Err(format!("apiVersion {api_version} is not supported for {kind}: use {wanted}; skipped"))
        }
        ("v1", "Endpoints") => Err(
            "v1 Endpoints are not read (upstream reads EndpointSlices): write a discovery.k8s.io/v1 EndpointSlice; skipped".into(),
        ),
        _ => Err(format!("{api_version} {kind} is not a kind kproxy reads ({SUPPORTED}): skipped")),
    }
}

/// Decode a known kind from any deserializer (a JSON value, or JSON text directly).
fn decode<'de, D: serde::Deserializer<'de>>(known: Known, d: D) -> Result<ClusterEvent, String> {
    Ok(match known {
        Known::Service => ClusterEvent::Service(Update::Upsert(typed::<Service, D>(d)?)),
        Known::EndpointSlice => ClusterEvent::EndpointSlice(Update::Upsert(typed::<EndpointSlice, D>(d)?)),
        Known::Node => ClusterEvent::Node(Update::Upsert(typed::<Node, D>(d)?)),
        Known::ServiceCidr => ClusterEvent::ServiceCidr(Update::Upsert(typed::<ServiceCIDR, D>(d)?)),
    })
}

/// Keep a decoded object (namespaced ones without a namespace get `default`), or report why not.
fn push_decoded(decoded: Result<ClusterEvent, String>, header: &Header, loc: &SourceLocation, m: &mut Manifest) {
    match decoded {
        Ok(mut event) => {
            let meta = match &mut event {
                ClusterEvent::Service(Update::Upsert(o)) => Some(&mut o.metadata),
                ClusterEvent::EndpointSlice(Update::Upsert(o)) => Some(&mut o.metadata),
                _ => None,
            };
            if let Some(meta) = meta {
                if meta.namespace.as_deref().is_none_or(str::is_empty) {
                    meta.namespace = Some(DEFAULT_NAMESPACE.to_string());
                }
            }
            // What the API server would have rejected is skipped, as it never reaches kube-proxy.
            match crate::manifest_check::check_object(&event) {
                Ok(()) => m.events.push(event),
                Err(message) => header.report(m, loc, format!("{message}; skipped")),
            }
        }
        Err(message) => header.report(m, loc, format!("{message}; skipped")),
    }
}

fn names(map: &Map<String, Value>) -> (String, String) {
    let meta = map.get("metadata");
    let get = |k: &str| meta.and_then(|m| m.get(k)).and_then(Value::as_str).unwrap_or_default().to_string();
    (get("namespace"), get("name"))
}

fn list(map: &mut Map<String, Value>, api_version: &str, kind: &str, loc: &SourceLocation, m: &mut Manifest) {
    // `kind: List` (apiVersion v1) holds any objects; a typed list (`ServiceList`) holds items
    // that may omit their own apiVersion and kind, as the API server returns them.
    let item_kind = kind.strip_suffix("List").unwrap_or_default().to_string();
    let inherited = (!item_kind.is_empty()).then_some((api_version, item_kind.as_str()));
    match map.remove("items") {
        Some(Value::Array(items)) => {
            for (i, item) in items.into_iter().enumerate() {
                object(item, &SourceLocation { item: Some(i), ..loc.clone() }, inherited, m);
            }
        }
        None | Some(Value::Null) => {}
        Some(_) => m.diagnostics.push(
            Diagnostic::new(kind, "", "", "items is not a list: skipped").at(loc.clone()),
        ),
    }
}

/// Decode one type, naming the failing field path.
fn typed<'de, T: serde::Deserialize<'de>, D: serde::Deserializer<'de>>(d: D) -> Result<T, String> {
    serde_path_to_error::deserialize::<D, T>(d).map_err(|e| {
        let path = e.path().to_string();
        if path.is_empty() || path == "." {
            format!("does not decode: {}", e.inner())
        } else {
            format!("{path}: {}", e.inner())
        }
    })
}
