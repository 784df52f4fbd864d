//! The `--manifests PATH` source: Services, EndpointSlices, ServiceCIDRs and Nodes read from a
//! file or a directory of `*.yaml` / `*.yml` / `*.json` files (not recursive; dot-files and
//! editor backups `*~` skipped), parsed by [`kproxy_core::manifest::parse_manifest`].
//!
//! The first read sends an upsert per object and then [`ClusterEvent::Synced`] for every kind.
//! Afterwards (unless `--once`) the path is polled every `poll_interval` (default 500 ms, so
//! edits are picked up within a second) and only differences are sent: upserts for new or
//! changed objects, deletes for objects no file holds any more. A file is re-read when its
//! size, modification time or inode changes, or while its modification time is within the last
//! two seconds (an edit in the same timestamp tick would otherwise go unseen).
//!
//! A file whose content (size and hash) is unchanged is not parsed again, and when no file
//! changed nothing else is done either: an idle daemon with 10k services costs almost nothing.
//!
//! A file that cannot be read keeps contributing what it held before (a warning is logged), and
//! if the whole path disappears nothing is deleted: a transient rename must not withdraw every
//! service. A file larger than [`MAX_FILE_BYTES`] is not read (it contributes nothing); one
//! that is not UTF-8 contributes nothing. Every warning is logged once per file content (or,
//! for an object defined twice or a cross-object problem, once while it lasts).

use std::collections::{BTreeMap, BTreeSet};
use std::hash::{Hash, Hasher};
use std::io::Read;
use std::os::unix::fs::MetadataExt;
use std::sync::Arc;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use kproxy_core::event::{ClusterEvent, ObjectKind, Update};
use kproxy_core::manifest::parse_manifest;
use kproxy_core::manifest_check::cross_check;
use tokio::sync::mpsc::Sender;

/// Default polling interval.
pub const DEFAULT_POLL_INTERVAL: Duration = Duration::from_millis(500);

/// Largest manifest file read: 32 MiB, about 60k Services with their slices as YAML (10k take
/// 5 MB). Larger files are skipped unread, so a huge junk file cannot take the daemon's
/// memory; parsing a file just under the limit peaks at a few times its size (measured: 31 MB
/// of junk peaked at 148 MB RSS).
pub const MAX_FILE_BYTES: u64 = 32 << 20;

/// Files modified this recently are re-read on every poll.
const RACY_WINDOW: Duration = Duration::from_secs(2);

/// Why the manifest source cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// The path given to `--manifests` cannot be read at start.
    #[error("cannot read --manifests {path}: {source}; give an existing file or directory")]
    ReadPath {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Options of the source.
#[derive(Debug, Clone)]
pub struct ManifestOptions {
    /// A file or a directory.
    pub path: PathBuf,
    /// How often to look for changes.
    pub poll_interval: Duration,
    /// Read once, send `Synced`, and stop.
    pub once: bool,
}

impl ManifestOptions {
    /// Watch `path` with the default interval.
    pub fn new(path: impl Into<PathBuf>) -> ManifestOptions {
        ManifestOptions { path: path.into(), poll_interval: DEFAULT_POLL_INTERVAL, once: false }
    }
}

/// Kind, namespace, name: an object's identity across files.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct ObjectKey {
    kind: ObjectKind,
    namespace: String,
    name: String,
}

fn key_of(event: &ClusterEvent) -> Option<ObjectKey> {
    let (kind, meta) = match event {
        ClusterEvent::Service(Update::Upsert(o)) => (ObjectKind::Service, &o.metadata),
        ClusterEvent::EndpointSlice(Update::Upsert(o)) => (ObjectKind::EndpointSlice, &o.metadata),
        ClusterEvent::ServiceCidr(Update::Upsert(o)) => (ObjectKind::ServiceCidr, &o.metadata),
        ClusterEvent::Node(Update::Upsert(o)) => (ObjectKind::Node, &o.metadata),
        _ => return None,
    };
    Some(ObjectKey {
        kind,
        namespace: meta.namespace.clone().unwrap_or_default(),
        name: meta.name.clone().unwrap_or_default(),
    })
}

fn delete_event(key: &ObjectKey) -> ClusterEvent {
    let (namespace, name) = (key.namespace.clone(), key.name.clone());
    match key.kind {
        ObjectKind::Service => ClusterEvent::Service(Update::Delete { namespace, name }),
        ObjectKind::EndpointSlice => ClusterEvent::EndpointSlice(Update::Delete { namespace, name }),
        ObjectKind::ServiceCidr => ClusterEvent::ServiceCidr(Update::Delete { namespace, name }),
        ObjectKind::Node => ClusterEvent::Node(Update::Delete { namespace, name }),
    }
}

/// What identifies one version of a file without reading it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Stamp {
    len: u64,
    modified: SystemTime,
    inode: u64,
}

/// What a file held, identified without keeping a copy of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Content {
    /// Its length and a hash of its bytes.
    Read { len: u64, hash: u64 },
    /// Larger than [`MAX_FILE_BYTES`]: not read.
    TooLarge { len: u64 },
}

/// A warning to log, if not logged already.
type Warning = Box<dyn FnOnce()>;

/// One object, shared between the file that holds it and what was sent.
type Object = Arc<ClusterEvent>;

#[derive(Debug)]
struct FileState {
    stamp: Stamp,
    content: Content,
    objects: Vec<(ObjectKey, Object)>,
}

/// The polling state: files seen, objects sent. Blocking I/O; the async [`run`] calls it on a
/// blocking thread.
#[derive(Debug)]
pub struct Scanner {
    path: PathBuf,
    files: BTreeMap<PathBuf, FileState>,
    sent: BTreeMap<ObjectKey, Object>,
    started: bool,
    /// Problems across files already warned about (warned again only after they went away).
    warned: BTreeSet<String>,
    /// The last read error of each path (the directory itself included), so a file that stays
    /// unreadable is warned about once, not on every poll.
    read_errors: BTreeMap<PathBuf, String>,
}

fn is_manifest(path: &Path) -> bool {
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else { return false };
    !name.starts_with('.') && !name.ends_with('~') && [".yaml", ".yml", ".json"].iter().any(|ext| name.ends_with(ext))
}

fn stamp(meta: &std::fs::Metadata) -> Stamp {
    Stamp { len: meta.len(), modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH), inode: meta.ino() }
}

impl Scanner {
    /// A scanner of `path` (nothing read yet).
    pub fn new(path: impl Into<PathBuf>) -> Scanner {
        Scanner {
            path: path.into(),
            files: BTreeMap::new(),
            sent: BTreeMap::new(),
            started: false,
            warned: BTreeSet::new(),
            read_errors: BTreeMap::new(),
        }
    }

    /// The manifest files under the path right now, with their stamps.
    fn list(&mut self) -> std::io::Result<Vec<(PathBuf, Stamp)>> {
        let meta = std::fs::metadata(&self.path)?;
        if meta.is_file() {
            return Ok(vec![(self.path.clone(), stamp(&meta))]);
        }
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&self.path)? {
            let path = entry?.path();
            if !is_manifest(&path) {
                continue;
            }
            // Follow symlinks (ConfigMap volumes are symlinks into a `..data` directory).
            match std::fs::metadata(&path) {
                Ok(meta) if meta.is_file() => out.push((path, stamp(&meta))),
                Ok(_) => {}
                Err(err) => {
                    if self.read_error(&path, &err) {
                        tracing::warn!(path = %path.display(), error = %err, "Cannot stat manifest file; skipping it")
                    }
                }
            }
        }
        out.sort_by(|a, b| a.0.cmp(&b.0));
        Ok(out)
    }

    /// Read what changed and return the events that bring the receiver up to date. The first
    /// call fails if the path cannot be read; later calls log and keep the last known objects.
    pub fn scan(&mut self) -> Result<Vec<ClusterEvent>, ManifestError> {
        let first = !self.started;
        let listed = match self.list() {
            Ok(listed) => listed,
            Err(source) if first => return Err(ManifestError::ReadPath { path: self.path.clone(), source }),
            Err(err) => {
                if self.read_error(&self.path.clone(), &err) {
                    tracing::warn!(path = %self.path.display(), error = %err, "Cannot read --manifests path; keeping the objects read before");
                }
                return Ok(Vec::new());
            }
        };
        self.read_errors.remove(&self.path);
        let now = SystemTime::now();
        let mut files = BTreeMap::new();
        // Whether anything the objects depend on changed: a file added, removed or with new
        // content. When nothing did, there is nothing to compare or send.
        let mut changed = first;
        for (path, stamp) in listed {
            let previous = self.files.remove(&path);
            let recent = now.duration_since(stamp.modified).map_or(true, |age| age < RACY_WINDOW);
            match previous {
                Some(prev) if prev.stamp == stamp && !recent => {
                    files.insert(path, prev);
                }
                prev => match read_limited(&path, MAX_FILE_BYTES) {
                    Ok(read) => {
                        self.read_errors.remove(&path);
                        let content = read.content();
                        let state = match prev {
                            Some(prev) if prev.content == content => FileState { stamp, ..prev },
                            _ => {
                                changed = true;
                                load(&path, stamp, read)
                            }
                        };
                        files.insert(path, state);
                    }
                    Err(err) => {
                        if self.read_error(&path, &err) {
                            tracing::warn!(path = %path.display(), error = %err, "Cannot read manifest file; keeping what it held before");
                        }
                        // A file never read contributed nothing before and nothing now.
                        if let Some(prev) = prev {
                            files.insert(path, prev);
                        }
                    }
                },
            }
        }
        // Files that vanished are in what is left of `self.files`.
        changed |= !self.files.is_empty();
        self.files = files;
        self.started = true;
        if !changed {
            return Ok(Vec::new());
        }
        Ok(self.differences())
    }

    /// Record `err` for `path`; whether it is new (and so worth a warning).
    fn read_error(&mut self, path: &Path, err: &std::io::Error) -> bool {
        let text = err.to_string();
        let new = self.read_errors.get(path) != Some(&text);
        self.read_errors.insert(path.to_path_buf(), text);
        new
    }

    /// Log each problem of `found` not warned about yet; forget those that went away.
    fn warn_new(&mut self, found: BTreeMap<String, Warning>) {
        let keys: BTreeSet<String> = found.keys().cloned().collect();
        for (key, warn) in found {
            if !self.warned.contains(&key) {
                warn();
            }
        }
        self.warned = keys;
    }

    /// Events from what was sent to what the files hold now.
    fn differences(&mut self) -> Vec<ClusterEvent> {
        let mut now: BTreeMap<ObjectKey, (&Path, &Object)> = BTreeMap::new();
        let mut problems: BTreeMap<String, Warning> = BTreeMap::new();
        for (path, file) in &self.files {
            for (key, event) in &file.objects {
                if let Some((other, _)) = now.insert(key.clone(), (path, event)) {
                    let object = format!("{:?} {}/{}", key.kind, key.namespace, key.name);
                    let (first, second) = (other.display().to_string(), path.display().to_string());
                    problems.insert(
                        format!("duplicate {object} {first} {second}"),
                        Box::new(move || {
                            tracing::warn!(
                                object = %object,
                                first = %first,
                                second = %second,
                                "Object defined in two manifest files; the later file wins"
                            )
                        }),
                    );
                }
            }
        }
        for diagnostic in cross_check(now.values().map(|(_, e)| e.as_ref())) {
            problems.insert(
                format!("{diagnostic:?}"),
                Box::new(move || tracing::warn!(object = %diagnostic.object(), kind = %diagnostic.kind, "{}", diagnostic.message)),
            );
        }
        let mut events = Vec::new();
        for key in self.sent.keys() {
            if !now.contains_key(key) {
                events.push(delete_event(key));
            }
        }
        for (key, (_, event)) in &now {
            let same = self.sent.get(key).is_some_and(|sent| Arc::ptr_eq(sent, event) || sent == *event);
            if !same {
                events.push(ClusterEvent::clone(event));
            }
        }
        self.sent = now.into_iter().map(|(k, (_, e))| (k, Arc::clone(e))).collect();
        self.warn_new(problems);
        events
    }
}

/// A file's bytes, or its size when it is too large to read.
enum Loaded {
    Bytes(Vec<u8>),
    TooLarge(u64),
}

impl Loaded {
    fn content(&self) -> Content {
        match self {
            Loaded::Bytes(bytes) => {
                let mut hasher = std::collections::hash_map::DefaultHasher::new();
                bytes.hash(&mut hasher);
                Content::Read { len: bytes.len() as u64, hash: hasher.finish() }
            }
            Loaded::TooLarge(len) => Content::TooLarge { len: *len },
        }
    }
}

/// Read at most `limit` bytes; a larger file (even one that grew while read) is not kept.
fn read_limited(path: &Path, limit: u64) -> std::io::Result<Loaded> {
    let file = std::fs::File::open(path)?;
    let len = file.metadata()?.len();
    if len > limit {
        return Ok(Loaded::TooLarge(len));
    }
    let mut bytes = Vec::with_capacity(len as usize); // at most `limit`: checked above
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Ok(Loaded::TooLarge(bytes.len() as u64));
    }
    Ok(Loaded::Bytes(bytes))
}

/// Parse a file's new content, logging its problems (once: only new content is parsed).
fn load(path: &Path, stamp: Stamp, read: Loaded) -> FileState {
    let content = read.content();
    let source = path.display().to_string();
    let empty = FileState { stamp, content, objects: Vec::new() };
    let bytes = match read {
        Loaded::Bytes(bytes) => bytes,
        Loaded::TooLarge(len) => {
            tracing::warn!(
                file = %source,
                size = len,
                limit = MAX_FILE_BYTES,
                "Manifest file too large: not read, its objects are not used; split it into smaller files"
            );
            return empty;
        }
    };
    let text = match String::from_utf8(bytes) {
        Ok(text) => text,
        Err(err) => {
            let at = err.utf8_error().valid_up_to();
            tracing::warn!(
                file = %source,
                byte = at,
                "Manifest file is not UTF-8 text (binary data?): its objects are not used; fix or remove it"
            );
            return empty;
        }
    };
    let manifest = parse_manifest(&text, &source);
    drop(text);
    for diagnostic in &manifest.diagnostics {
        tracing::warn!(file = %source, object = %diagnostic.object(), "{diagnostic}");
    }
    let objects = manifest.events.into_iter().filter_map(|e| key_of(&e).map(|k| (k, Arc::new(e)))).collect();
    FileState { objects, ..empty }
}

const ALL_KINDS: [ObjectKind; 4] =
    [ObjectKind::Service, ObjectKind::EndpointSlice, ObjectKind::ServiceCidr, ObjectKind::Node];

/// Run the source: first read, `Synced` for every kind, then (unless `once`) poll until the
/// receiver goes away. Fails only when the first read cannot read the path.
pub async fn run(options: ManifestOptions, events: Sender<ClusterEvent>) -> Result<(), ManifestError> {
    let mut scanner = Scanner::new(&options.path);
    let mut first = true;
    loop {
        let (back, result) = tokio::task::spawn_blocking(move || {
            let result = scanner.scan();
            (scanner, result)
        })
        .await
        .unwrap_or_else(|panic| std::panic::resume_unwind(panic.into_panic()));
        scanner = back;
        let mut batch = result?;
        if first {
            tracing::info!(path = %options.path.display(), objects = batch.len(), "Read manifests");
            batch.extend(ALL_KINDS.map(ClusterEvent::Synced));
            first = false;
        }
        for event in batch {
            if events.send(event).await.is_err() {
                return Ok(());
            }
        }
        if options.once {
            return Ok(());
        }
        tokio::select! {
            () = tokio::time::sleep(options.poll_interval) => {}
            () = events.closed() => return Ok(()),
        }
    }
}

#[cfg(test)]
#[path = "manifests_tests.rs"]
mod tests;
