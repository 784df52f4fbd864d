//! Manifest parsing: YAML multi-document, JSON, lists, and the diagnostics for everything else.

use kproxy_core::event::{ClusterEvent, Update};
use kproxy_core::manifest::parse_manifest;

const YAML: &str = r#"# a comment before the first document
---
apiVersion: v1
kind: Service
metadata:
  name: web
spec:
  clusterIP: 198.19.0.10
  ports:
  - name: http
    port: 80
---
# only a comment: not a document
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: prod
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: web-1
  namespace: prod
  labels:
    kubernetes.io/service-name: web
addressType: IPv4
ports:
- name: http
  port: 8080
endpoints:
- addresses: ["198.18.1.1"]
---
apiVersion: v1
kind: Service
metadata:
  name: broken
spec:
  ports:
  - port: "eighty"
---
apiVersion: discovery.k8s.io/v1beta1
kind: EndpointSlice
metadata:
  name: old
---
key: [unclosed
---
apiVersion: networking.k8s.io/v1
kind: ServiceCIDR
metadata:
  name: kubernetes
spec:
  cidrs: ["198.19.0.0/16"]
...
"#;

#[test]
fn yaml_multi_document() {
    let m = parse_manifest(YAML, "cluster.yaml");
    assert_eq!(m.events.len(), 3, "{:#?}", m.diagnostics);
    let ClusterEvent::Service(Update::Upsert(svc)) = &m.events[0] else { panic!("{:?}", m.events[0]) };
    assert_eq!(svc.metadata.namespace.as_deref(), Some("default"), "namespace defaulted as kubectl does");
    let ClusterEvent::EndpointSlice(Update::Upsert(slice)) = &m.events[1] else { panic!() };
    assert_eq!(slice.metadata.namespace.as_deref(), Some("prod"));
    assert!(matches!(&m.events[2], ClusterEvent::ServiceCidr(Update::Upsert(_))));

    let d: Vec<String> = m.diagnostics.iter().map(|d| d.to_string()).collect();
    assert_eq!(d.len(), 4, "{d:#?}");
    assert!(d[0].starts_with("cluster.yaml:15 (document 1): Deployment prod/web: apps/v1 Deployment is not a kind kproxy reads"), "{}", d[0]);
    assert!(d[1].starts_with("cluster.yaml:35 (document 3): Service default/broken: spec.ports[0].port: invalid type"), "{}", d[1]);
    assert!(d[2].contains("(document 4): EndpointSlice default/old: apiVersion discovery.k8s.io/v1beta1 is not supported for EndpointSlice: use discovery.k8s.io/v1"), "{}", d[2]);
    // The parser names the line of the unclosed `[` (libyaml, before serde-saphyr, named the
    // next line, where it gave up, and the `[` in its message).
    assert!(d[3].starts_with("cluster.yaml:48 (document 5): document <unnamed>: invalid YAML"), "{}", d[3]);
    assert!(d[3].contains("unclosed bracket '[' at line 48, column 6"), "{}", d[3]);
}

#[test]
fn json_list_and_typed_list() {
    let json = r#"{"apiVersion": "v1", "kind": "List", "items": [
        {"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n1"}},
        {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "c", "namespace": "x"}},
        {"apiVersion": "v1", "kind": "ServiceList", "items": [
            {"metadata": {"name": "a", "namespace": "x"}, "spec": {"clusterIP": "198.19.0.1"}}
        ]}
    ]}"#;
    let m = parse_manifest(json, "list.json");
    assert_eq!(m.events.len(), 2, "{:#?}", m.diagnostics);
    assert!(matches!(&m.events[0], ClusterEvent::Node(Update::Upsert(n)) if n.metadata.name.as_deref() == Some("n1")));
    assert!(matches!(&m.events[1], ClusterEvent::Service(Update::Upsert(s)) if s.metadata.name.as_deref() == Some("a")));
    assert_eq!(m.diagnostics.len(), 1);
    assert_eq!(m.diagnostics[0].location.as_ref().unwrap().item, Some(1));
    assert!(m.diagnostics[0].to_string().starts_with("list.json:1 (document 0, item 1): ConfigMap x/c:"), "{}", m.diagnostics[0]);
}

#[test]
fn yaml_list() {
    let yaml = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Service\n  metadata: {name: a}\n  spec: {clusterIP: 198.19.0.1}\n";
    let m = parse_manifest(yaml, "l.yaml");
    assert_eq!(m.events.len(), 1, "{:?}", m.diagnostics);
}

#[test]
fn json_stream_and_array_with_a_broken_tail() {
    let json = "{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {\"name\": \"n1\"}}\n[{\"apiVersion\": \"v1\", \"kind\": \"Node\", \"metadata\": {\"name\": \"n2\"}}]\n{\"apiVersion\": ";
    let m = parse_manifest(json, "s.json");
    assert_eq!(m.events.len(), 2);
    assert_eq!(m.diagnostics.len(), 1);
    assert!(m.diagnostics[0].to_string().starts_with("s.json:3 (document 2): document <unnamed>: invalid JSON"), "{}", m.diagnostics[0]);
}

#[test]
fn non_objects_and_missing_kind() {
    let m = parse_manifest("- 1\n- 2\n---\nmetadata: {name: x}\n---\n", "x.yaml");
    assert!(m.events.is_empty());
    assert_eq!(m.diagnostics.len(), 2, "{:?}", m.diagnostics);
    assert!(m.diagnostics[0].message.contains("not a Kubernetes object"));
    assert!(m.diagnostics[1].message.contains("apiVersion or kind is missing"));
    assert!(parse_manifest("", "empty.yaml").diagnostics.is_empty());
    assert!(parse_manifest("# nothing\n---\n", "c.yaml").events.is_empty());
}

#[test]
fn endpoints_kind_gets_a_pointer_to_endpoint_slices() {
    let m = parse_manifest("apiVersion: v1\nkind: Endpoints\nmetadata: {name: e}\n", "e.yaml");
    assert!(m.diagnostics[0].message.contains("write a discovery.k8s.io/v1 EndpointSlice"), "{:?}", m.diagnostics);
}

/// Issue 12 item 3: what the API server would reject is skipped with a named diagnostic.
#[test]
fn invalid_names_and_oversized_objects_are_skipped_with_a_reason() {
    let ports: String = (0..1001).map(|p| format!("  - {{port: {}, protocol: TCP}}\n", 1000 + p)).collect();
    let text = format!(
        "apiVersion: v1\nkind: Service\nmetadata: {{name: Bad_Name, namespace: t}}\nspec:\n  clusterIP: 198.19.0.1\n  ports:\n  - {{port: 80}}\n\
         ---\napiVersion: v1\nkind: Service\nmetadata: {{name: many, namespace: t}}\nspec:\n  clusterIP: 198.19.0.2\n  ports:\n{ports}\
         ---\napiVersion: v1\nkind: Service\nmetadata: {{name: ok, namespace: Bad.NS}}\nspec:\n  clusterIP: 198.19.0.3\n\
         ---\napiVersion: v1\nkind: Node\nmetadata: {{name: node-1.example.com}}\n"
    );
    let m = kproxy_core::manifest::parse_manifest(&text, "bad.yaml");
    assert_eq!(m.events.len(), 1, "only the Node is valid: {:#?}", m.diagnostics);
    let messages: Vec<String> = m.diagnostics.iter().map(ToString::to_string).collect();
    assert_eq!(messages.len(), 3, "{messages:#?}");
    assert!(messages[0].contains("metadata.name \"Bad_Name\" is not a valid Kubernetes name: a DNS-1035 label"), "{messages:#?}");
    assert!(messages[1].contains("spec.ports has 1001 entries; at most 1000 are accepted; skipped"), "{messages:#?}");
    assert!(messages[2].contains("metadata.namespace \"Bad.NS\" is not a valid Kubernetes name"), "{messages:#?}");
}

/// Issue 12 item 3: deep nesting stops at the depth limit quickly, with a named error.
#[test]
fn deeply_nested_yaml_fails_fast_naming_the_depth() {
    let deep = format!("a: {}\n", "[".repeat(100_000));
    let start = std::time::Instant::now();
    let m = kproxy_core::manifest::parse_manifest(&deep, "deep.yaml");
    let took = start.elapsed();
    assert!(m.events.is_empty());
    let message = m.diagnostics.first().map(ToString::to_string).unwrap_or_default();
    assert!(message.contains("depth"), "{message}");
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    eprintln!("200 kB of nesting rejected in {took:?}: {message}");
    // 200 kB of balanced nesting just over the limit, line after line.
    let line = format!("- {}{}\n", "[".repeat(65), "]".repeat(65));
    let many = format!("a:\n{}", line.repeat(200_000 / line.len()));
    let start = std::time::Instant::now();
    let m = kproxy_core::manifest::parse_manifest(&many, "many.yaml");
    let took = start.elapsed();
    assert_eq!(m.diagnostics.len(), 1, "{:#?}", m.diagnostics);
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
    eprintln!("200 kB of lines nested 65 deep rejected in {took:?}");
}

/// Issue 12 item 3: problems across objects are named, the objects kept.
#[test]
fn cross_checks_name_missing_services_and_foreign_cluster_ips() {
    let text = "apiVersion: networking.k8s.io/v1\nkind: ServiceCIDR\nmetadata: {name: kubernetes}\nspec: {cidrs: [198.19.0.0/16]}\n\
---\napiVersion: v1\nkind: Service\nmetadata: {name: in, namespace: t}\nspec: {clusterIP: 198.19.0.1, ports: [{port: 80}]}\n\
---\napiVersion: v1\nkind: Service\nmetadata: {name: out, namespace: t}\nspec: {clusterIP: 198.18.5.1, ports: [{port: 80}]}\n\
---\napiVersion: discovery.k8s.io/v1\nkind: EndpointSlice\nmetadata: {name: lost-1, namespace: t, labels: {kubernetes.io/service-name: lost}}\naddressType: IPv4\nendpoints: []\n";
    let m = kproxy_core::manifest::parse_manifest(text, "x.yaml");
    assert_eq!(m.events.len(), 4, "{:#?}", m.diagnostics);
    let found: Vec<String> =
        kproxy_core::manifest_check::cross_check(&m.events).iter().map(|d| format!("{} {}: {}", d.kind, d.object(), d.message)).collect();
    assert_eq!(found.len(), 2, "{found:#?}");
    assert!(found[0].starts_with("EndpointSlice t/lost-1: its Service t/lost is in no manifest file"), "{found:#?}");
    assert!(found[1].starts_with("Service t/out: spec.clusterIP 198.18.5.1 is outside every ServiceCIDR (198.19.0.0/16)"), "{found:#?}");
}
