//! Layers: one source of settings each (a file, the command line) holding only what it set.
//! Layers merge field by field (a higher layer wins per field), then defaults apply, then
//! validation runs on the result.

use super::decode::{decode, Origins};
use super::error::{ConfigError, ConfigWarning, FieldError, Origin};
use super::tree::{merge, parse_document, Entry, Node, ScalarStyle, Value};
use super::types::{KubeProxyConfiguration, API_VERSION, KIND};
use super::validate::validate;
use super::warnings::warnings;

/// What a source set, before defaults: the "partial" configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct Layer {
    root: Node,
}

/// A command-line value for [`Layer::set_flag`]; parsed later as the field's type needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum FlagValue {
    /// One value (`--ipvs-scheduler=rr`, `--kube-api-qps=10`, `--masquerade-all=true`).
    Scalar(String),
    /// A list (`--nodeport-addresses=10.0.0.0/8,192.168.0.0/16`, already split).
    List(Vec<String>),
    /// A map of names to values (`--feature-gates=A=true,B=false`, already split).
    Map(Vec<(String, String)>),
    /// A list of records (`--vmodule=proxier=4,sync*=5` as
    /// `[[("filePattern","proxier"),("verbosity","4")], ...]`).
    Records(Vec<Vec<(String, String)>>),
}

/// A configuration that parsed, defaulted and validated.
#[derive(Debug, Clone, PartialEq)]
pub struct ParsedConfig {
    /// The effective configuration, defaults applied.
    pub config: KubeProxyConfiguration,
    /// Accepted settings that deserve the operator's attention; print each once.
    pub warnings: Vec<ConfigWarning>,
    /// Where each set field came from.
    pub origins: Origins,
}

impl Default for Layer {
    fn default() -> Self {
        Layer::empty()
    }
}

impl Layer {
    /// A layer that sets nothing.
    pub fn empty() -> Layer {
        Layer { root: Node::empty_map(Origin::Default) }
    }

    /// Parse one configuration document. `source` names it in messages (usually the path).
    ///
    /// Checks YAML syntax, that the document is a mapping with `apiVersion:
    /// kubeproxy.config.k8s.io/v1alpha1` and `kind: KubeProxyConfiguration`, and that every
    /// field exists and has the right type. Values are validated only after merging
    /// ([`resolve`]), since another layer may override them.
    pub fn from_yaml(text: &str, source: &str) -> Result<Layer, ConfigError> {
        let root = parse_document(text, source)?;
        let Some(entries) = root.entries() else {
            return Err(ConfigError::Decode(vec![FieldError {
                origin: root.origin.clone(),
                path: String::new(),
                message: "expected a KubeProxyConfiguration mapping (apiVersion, kind, fields)".into(),
            }]));
        };
        let mut errors = Vec::new();
        for (field, expected) in [("apiVersion", API_VERSION), ("kind", KIND)] {
            if !entries.iter().any(|e| e.key == field) {
                errors.push(FieldError {
                    origin: root.origin.clone(),
                    path: field.to_string(),
                    message: format!("missing; add `{field}: {expected}`"),
                });
            }
        }
        let (_, decoder) = decode(&root);
        errors.extend(decoder.errors);
        if errors.is_empty() {
            Ok(Layer { root })
        } else {
            Err(ConfigError::Decode(errors))
        }
    }

    /// Set `path` (dotted, e.g. `ipvs.scheduler`) from command-line flag `flag`
    /// (e.g. `--ipvs-scheduler`), replacing what this layer had there.
    pub fn set_flag(&mut self, path: &str, value: FlagValue, flag: &str) {
        let origin = Origin::Flag(flag.to_string());
        let scalar = |text: String| Node { origin: origin.clone(), value: Value::Scalar(text, ScalarStyle::Flag) };
        let map = |pairs: Vec<(String, String)>| Node {
            origin: origin.clone(),
            value: Value::Map(
                pairs.into_iter().map(|(key, v)| Entry { key, key_origin: origin.clone(), value: scalar(v) }).collect(),
            ),
        };
        let node = match value {
            FlagValue::Scalar(text) => scalar(text),
            FlagValue::List(items) => {
                Node { origin: origin.clone(), value: Value::Seq(items.into_iter().map(scalar).collect()) }
            }
            FlagValue::Map(pairs) => map(pairs),
            FlagValue::Records(records) => {
                Node { origin: origin.clone(), value: Value::Seq(records.into_iter().map(map).collect()) }
            }
        };
        let mut current = &mut self.root;
        let keys: Vec<&str> = path.split('.').collect();
        for (i, key) in keys.iter().enumerate() {
            if !matches!(current.value, Value::Map(_)) {
                current.value = Value::Map(Vec::new());
            }
            let Value::Map(entries) = &mut current.value else { unreachable!("made a map just above") };
            let pos = match entries.iter().position(|e| e.key == *key) {
                Some(pos) => pos,
                None => {
                    entries.push(Entry {
                        key: key.to_string(),
                        key_origin: origin.clone(),
                        value: Node::empty_map(origin.clone()),
                    });
                    entries.len() - 1
                }
            };
            let entry = &mut entries[pos];
            entry.key_origin = origin.clone();
            if i + 1 == keys.len() {
                entry.value = node;
                return;
            }
            current = &mut entry.value;
        }
    }

    /// Whether this layer sets `path`.
    pub fn is_set(&self, path: &str) -> bool {
        let mut current = &self.root;
        for key in path.split('.') {
            let Some(entry) = current.entries().and_then(|e| e.iter().rev().find(|e| e.key == key)) else {
                return false;
            };
            current = &entry.value;
        }
        !current.is_null()
    }

    /// Put `higher` on top of this layer: every field `higher` sets wins, mappings merge
    /// key by key, lists are replaced whole.
    pub fn merge(&mut self, higher: &Layer) {
        merge(&mut self.root, &higher.root);
    }

    /// `layers` merged in order, the last one winning.
    pub fn merged<'a>(layers: impl IntoIterator<Item = &'a Layer>) -> Layer {
        let mut out = Layer::empty();
        for layer in layers {
            out.merge(layer);
        }
        out
    }
}

/// Apply defaults to a (merged) layer, validate, and collect warnings.
///
/// Errors: [`ConfigError::Decode`] for type problems introduced by flags, and
/// [`ConfigError::Validate`] with every broken rule, each located.
pub fn resolve(layer: &Layer) -> Result<ParsedConfig, ConfigError> {
    let (config, decoder) = decode(&layer.root);
    if !decoder.errors.is_empty() {
        return Err(ConfigError::Decode(decoder.errors));
    }
    let origins = decoder.origins;
    let mut errors = validate(&config, &origins);
    if !errors.is_empty() {
        // In reading order: file positions first (by file, line, column), then flags and
        // defaults, each group keeping rule order.
        errors.sort_by_key(|e| match &e.origin {
            Origin::File { source, line, column } => (0, source.to_string(), *line, *column),
            Origin::Flag(_) => (1, String::new(), 0, 0),
            Origin::Default => (2, String::new(), 0, 0),
        });
        return Err(ConfigError::Validate(errors));
    }
    let warnings = warnings(&config, &origins);
    Ok(ParsedConfig { config, warnings, origins })
}

/// Parse, default and validate one configuration document ([`Layer::from_yaml`] then
/// [`resolve`]). `source_name` prefixes every message (`config.yaml:7:14: ...`).
pub fn parse(text: &str, source_name: &str) -> Result<ParsedConfig, ConfigError> {
    resolve(&Layer::from_yaml(text, source_name)?)
}
