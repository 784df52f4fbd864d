//! Object metadata: names, and the labels that decide whether an object is ours.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;

use super::TranslateOptions;
use crate::diagnostic::Diagnostic;

/// Label naming the service proxy that should handle a Service (absent: the default proxy).
pub const LABEL_SERVICE_PROXY_NAME: &str = "service.kubernetes.io/service-proxy-name";
/// Label marking EndpointSlices of headless services.
pub const LABEL_HEADLESS: &str = "service.kubernetes.io/headless";
/// Label linking an EndpointSlice to its Service.
pub const LABEL_SERVICE_NAME: &str = "kubernetes.io/service-name";
/// The Node label carrying its zone.
pub const LABEL_TOPOLOGY_ZONE: &str = "topology.kubernetes.io/zone";
/// EndpointSlice annotation: when the change that produced this slice happened.
pub const ANNOTATION_LAST_CHANGE_TRIGGER_TIME: &str = "endpoints.kubernetes.io/last-change-trigger-time";

/// Namespace used when a namespaced object does not say (as kubectl does).
pub const DEFAULT_NAMESPACE: &str = "default";

/// `(namespace, name)` of an object; `None` (and a diagnostic) when the name is missing.
/// Cluster-scoped objects get an empty namespace.
pub(crate) fn names<'a>(
    kind: &str,
    meta: &'a ObjectMeta,
    namespaced: bool,
    out: &mut Vec<Diagnostic>,
) -> Option<(&'a str, &'a str)> {
    let namespace = if namespaced { namespace(meta) } else { "" };
    match meta.name.as_deref() {
        Some(name) if !name.is_empty() => Some((namespace, name)),
        _ => {
            out.push(Diagnostic::new(kind, namespace, "", "metadata.name is missing: object skipped"));
            None
        }
    }
}

/// The namespace of a namespaced object (`default` when unset).
pub(crate) fn namespace(meta: &ObjectMeta) -> &str {
    meta.namespace.as_deref().filter(|s| !s.is_empty()).unwrap_or(DEFAULT_NAMESPACE)
}

/// Whether this proxy handles the object: no service-proxy-name label, or the label equals
/// our configured name.
pub(crate) fn ours(meta: &ObjectMeta, options: &TranslateOptions) -> bool {
    match meta.labels.as_ref().and_then(|l| l.get(LABEL_SERVICE_PROXY_NAME)) {
        None => true,
        Some(name) => options.service_proxy_name.as_deref() == Some(name.as_str()),
    }
}

/// A label value.
pub(crate) fn label<'a>(meta: &'a ObjectMeta, key: &str) -> Option<&'a str> {
    meta.labels.as_ref().and_then(|l| l.get(key)).map(|s| s.as_str())
}
