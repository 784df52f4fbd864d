//! Manifest source tests on temp dirs.

use super::*;
use std::fs;

fn service_yaml(name: &str, port: u16) -> String {
    format!(
        "apiVersion: v1\nkind: Service\nmetadata:\n  name: {name}\n  namespace: shop\nspec:\n  clusterIP: 198.19.160.10\n  ports:\n  - port: {port}\n    protocol: TCP\n"
    )
}

const SLICE: &str = r#"{"apiVersion":"discovery.k8s.io/v1","kind":"EndpointSlice","metadata":{"name":"web-1","namespace":"shop","labels":{"kubernetes.io/service-name":"web"}},"addressType":"IPv4","endpoints":[{"addresses":["198.18.0.10"]}],"ports":[{"port":8080}]}"#;

fn names(events: &[ClusterEvent]) -> Vec<String> {
    events
        .iter()
        .map(|e| match e {
            ClusterEvent::Service(Update::Upsert(s)) => {
                format!("upsert Service {}", s.metadata.name.clone().unwrap_or_default())
            }
            ClusterEvent::Service(Update::Delete { name, .. }) => format!("delete Service {name}"),
            ClusterEvent::EndpointSlice(Update::Upsert(s)) => {
                format!("upsert EndpointSlice {}", s.metadata.name.clone().unwrap_or_default())
            }
            ClusterEvent::EndpointSlice(Update::Delete { name, .. }) => format!("delete EndpointSlice {name}"),
            ClusterEvent::Synced(kind) => format!("synced {kind:?}"),
            other => format!("{other:?}"),
        })
        .collect()
}

/// Make a file look old enough to be trusted by its stamp.
fn age(path: &Path) {
    let old = SystemTime::now() - Duration::from_secs(60);
    fs::File::options().write(true).open(path).unwrap().set_modified(old).unwrap();
}

#[test]
fn directory_changes_become_differences() {
    let dir = tempfile::tempdir().unwrap();
    let svc = dir.path().join("web.yaml");
    fs::write(&svc, service_yaml("web", 80)).unwrap();
    fs::write(dir.path().join("notes.txt"), "not a manifest").unwrap();
    fs::write(dir.path().join(".web.yaml.swp"), "editor junk").unwrap();
    let mut s = Scanner::new(dir.path());
    assert_eq!(names(&s.scan().unwrap()), ["upsert Service web"]);
    assert!(s.scan().unwrap().is_empty(), "nothing changed");

    // Edited in the same second it was written: still seen.
    fs::write(&svc, service_yaml("web", 81)).unwrap();
    assert_eq!(names(&s.scan().unwrap()), ["upsert Service web"]);
    age(&svc);
    assert!(s.scan().unwrap().is_empty());

    let slice = dir.path().join("web-slice.json");
    fs::write(&slice, SLICE).unwrap();
    assert_eq!(names(&s.scan().unwrap()), ["upsert EndpointSlice web-1"]);

    // The Service moves to another file: no delete, no upsert.
    fs::remove_file(&svc).unwrap();
    fs::write(dir.path().join("all.yml"), service_yaml("web", 81)).unwrap();
    assert!(s.scan().unwrap().is_empty(), "an object that moved between files is unchanged");

    fs::remove_file(&slice).unwrap();
    assert_eq!(names(&s.scan().unwrap()), ["delete EndpointSlice web-1"]);
}

#[test]
fn bad_documents_are_skipped_and_the_rest_kept() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("mixed.yaml");
    fs::write(
        &file,
        format!(
            "{}---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm\n---\n{}",
            service_yaml("a", 80),
            service_yaml("b", 80)
        ),
    )
    .unwrap();
    let mut s = Scanner::new(&file);
    assert_eq!(names(&s.scan().unwrap()), ["upsert Service a", "upsert Service b"]);
}

#[test]
fn a_missing_path_fails_at_start_only() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope");
    let err = Scanner::new(&missing).scan().unwrap_err();
    assert!(err.to_string().contains("nope"), "{err}");

    let file = dir.path().join("svc.yaml");
    fs::write(&file, service_yaml("web", 80)).unwrap();
    let mut s = Scanner::new(&file);
    assert_eq!(s.scan().unwrap().len(), 1);
    fs::remove_file(&file).unwrap();
    assert!(s.scan().unwrap().is_empty(), "a vanished path deletes nothing");
}

#[tokio::test]
async fn once_reads_sends_synced_and_ends() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("web.yaml"), service_yaml("web", 80)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let options = ManifestOptions { once: true, ..ManifestOptions::new(dir.path()) };
    tokio::time::timeout(Duration::from_secs(5), run(options, tx)).await.expect("returns").expect("ok");
    let mut got = Vec::new();
    while let Some(e) = rx.recv().await {
        got.push(e);
    }
    assert_eq!(
        names(&got),
        ["upsert Service web", "synced Service", "synced EndpointSlice", "synced ServiceCidr", "synced Node"]
    );
}

#[tokio::test]
async fn polling_picks_up_an_edit_within_a_second() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("web.yaml");
    fs::write(&file, service_yaml("web", 80)).unwrap();
    let (tx, mut rx) = tokio::sync::mpsc::channel(16);
    let task = tokio::spawn(run(ManifestOptions::new(dir.path()), tx));
    for _ in 0..5 {
        tokio::time::timeout(Duration::from_secs(5), rx.recv()).await.expect("initial events").expect("open");
    }
    fs::write(dir.path().join("other.yaml"), service_yaml("other", 80)).unwrap();
    let event =
        tokio::time::timeout(Duration::from_secs(1), rx.recv()).await.expect("change seen within 1 s").expect("open");
    assert_eq!(names(&[event]), ["upsert Service other"]);
    drop(rx);
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("stops when the receiver is gone")
        .unwrap()
        .unwrap();
}

/// Issue 12 item 3: a file over the size limit is skipped unread (sparse here, so nothing is
/// written), binary garbage contributes nothing, and neither holds up the good file; with
/// nothing changed a scan does nothing.
#[test]
fn oversized_and_binary_files_are_skipped_without_holding_up_others() {
    let dir = tempfile::tempdir().unwrap();
    let huge = fs::File::create(dir.path().join("huge.yaml")).unwrap();
    huge.set_len(MAX_FILE_BYTES + 1).unwrap();
    drop(huge);
    fs::write(dir.path().join("garbage.yaml"), [0xff_u8, 0xfe, 0x00, 0x80]).unwrap();
    let svc = dir.path().join("web.yaml");
    fs::write(&svc, service_yaml("web", 80)).unwrap();
    let mut s = Scanner::new(dir.path());
    assert_eq!(names(&s.scan().unwrap()), ["upsert Service web"]);
    assert!(matches!(s.files[&dir.path().join("huge.yaml")].content, Content::TooLarge { .. }));
    assert!(s.files[&dir.path().join("garbage.yaml")].objects.is_empty());
    for path in ["huge.yaml", "garbage.yaml", "web.yaml"] {
        age(&dir.path().join(path));
    }
    assert!(s.scan().unwrap().is_empty());
    // A dangling link is reported once, then remembered.
    std::os::unix::fs::symlink(dir.path().join("nowhere"), dir.path().join("gone.yaml")).unwrap();
    assert!(s.scan().unwrap().is_empty());
    assert!(s.read_errors.contains_key(&dir.path().join("gone.yaml")));
    assert!(!s.read_error(&dir.path().join("gone.yaml"), &std::io::Error::from_raw_os_error(2)));
}
