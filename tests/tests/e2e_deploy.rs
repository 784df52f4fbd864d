//! `deploy/*.yaml` against the real API server: every object passes a server-side dry run
//! (server-side apply with `dryRun=All`: schema validation, defaulting and admission, nothing
//! stored), and the shipped RBAC is what the harness bootstrapped kproxy's ServiceAccount
//! with (`cargo xtask e2e` applies `deploy/rbac.yaml` when it exists), so the other e2e
//! tests running as that ServiceAccount prove its permissions are enough.
//!
//! `deploy/prometheusrule.yaml` is a Prometheus Operator object: the test installs a trimmed
//! PrometheusRule CRD (`tests/fixtures/prometheusrule-crd.yaml`) first, so that manifest is
//! validated against a structural schema too instead of failing discovery. The dry run uses
//! `fieldValidation=Strict`: a misspelt field fails the test instead of being pruned.
//!
//! Run with `cargo xtask e2e` (ignored under plain `cargo test`).

mod e2e_support;

use std::path::PathBuf;

use e2e_support::{admin_client, E2eEnv};
use std::time::{Duration, Instant};

use k8s_openapi::api::rbac::v1::ClusterRole;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, DynamicObject, GroupVersionKind, Patch, PatchParams, ValidationDirective};
use kube::discovery::{Discovery, Scope};
use kube::Client;

fn deploy_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join("deploy")
}

/// Every YAML document in `deploy/*.yaml`, with the file it came from.
fn manifests() -> Vec<(String, DynamicObject)> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(deploy_dir())
        .expect("deploy/ exists")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    files.sort();
    let mut out = Vec::new();
    for file in files {
        let text = std::fs::read_to_string(&file).expect("read manifest");
        // Empty documents (comments only, or a trailing ---) are skipped by the parser.
        let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).expect("YAML documents");
        for value in docs {
            let obj: DynamicObject = serde_json::from_value(value)
                .unwrap_or_else(|e| panic!("{}: not a Kubernetes object: {e}", file.display()));
            out.push((file.display().to_string(), obj));
        }
    }
    out
}

/// The CRDs deploy/ relies on that a bare API server does not serve.
const FIXTURE_CRDS: &str = include_str!("../fixtures/prometheusrule-crd.yaml");

/// Applies the fixture CRDs (for real: a dry-run CRD serves nothing) and waits, bounded, until
/// each is Established, so discovery afterwards lists their kinds.
async fn install_fixture_crds(client: &Client) {
    let crds: Api<CustomResourceDefinition> = Api::all(client.clone());
    let crd: CustomResourceDefinition = serde_saphyr::from_str(FIXTURE_CRDS).expect("fixture CRD parses");
    let name = crd.metadata.name.clone().expect("fixture CRD has a name");
    crds.patch(&name, &PatchParams::apply("kproxy-e2e-fixtures").force(), &Patch::Apply(&crd))
        .await
        .unwrap_or_else(|e| panic!("installing fixture CRD {name}: {e}"));
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = crds.get(&name).await.unwrap_or_else(|e| panic!("reading CRD {name}: {e}"));
        let established = got
            .status
            .and_then(|s| s.conditions)
            .unwrap_or_default()
            .iter()
            .any(|c| c.type_ == "Established" && c.status == "True");
        if established {
            return;
        }
        assert!(Instant::now() < deadline, "CRD {name} not Established within 30 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
#[ignore = "needs the real API server: run `cargo xtask e2e`"]
async fn deploy_manifests_pass_server_side_dry_run() {
    let env = E2eEnv::require();
    let client = admin_client(&env).await;
    install_fixture_crds(&client).await;
    let discovery = Discovery::new(client.clone()).run().await.expect("API discovery");
    let objects = manifests();
    assert!(!objects.is_empty(), "no manifests under {}", deploy_dir().display());
    let params = PatchParams::apply("kproxy-e2e-dry-run").force().dry_run().validation(ValidationDirective::Strict);
    for (file, obj) in &objects {
        let types = obj.types.clone().unwrap_or_else(|| panic!("{file}: object without apiVersion/kind"));
        let gvk = GroupVersionKind::try_from(&types).unwrap_or_else(|e| panic!("{file}: {e}"));
        let (resource, caps) =
            discovery.resolve_gvk(&gvk).unwrap_or_else(|| panic!("{file}: {gvk:?} is not served by Kubernetes 1.34 (nor by a fixture CRD under tests/fixtures/)"));
        let name = obj.metadata.name.clone().unwrap_or_else(|| panic!("{file}: {} without a name", gvk.kind));
        let api: Api<DynamicObject> = match caps.scope {
            Scope::Namespaced => {
                let ns = obj.metadata.namespace.as_deref().unwrap_or("default");
                Api::namespaced_with(client.clone(), ns, &resource)
            }
            Scope::Cluster => Api::all_with(client.clone(), &resource),
        };
        api.patch(&name, &params, &Patch::Apply(obj))
            .await
            .unwrap_or_else(|e| panic!("{file}: server-side dry run of {} {name} rejected: {e}", gvk.kind));
        println!("dry run ok: {file}: {} {name}", gvk.kind);
    }

    // The harness bootstrapped from deploy/rbac.yaml: the stored ClusterRole has its rules.
    let shipped = objects
        .iter()
        .find(|(_, o)| o.types.as_ref().is_some_and(|t| t.kind == "ClusterRole"))
        .map(|(_, o)| o.clone())
        .expect("deploy/ ships a ClusterRole");
    let shipped: ClusterRole = serde_json::from_value(serde_json::to_value(shipped).expect("to JSON")).expect("ClusterRole");
    let name = shipped.metadata.name.clone().expect("ClusterRole name");
    let stored = Api::<ClusterRole>::all(client).get(&name).await.expect("bootstrapped ClusterRole");
    assert_eq!(stored.rules, shipped.rules, "the harness's kproxy ClusterRole differs from deploy/rbac.yaml");
}
