//! Backups of a node and restores from them (`docs/operations.md`).
//!
//! A backup is a directory: the node's configuration, identity and TLS
//! keys and certificates as files, the whole store (records, logs, Merkle
//! nodes, checkpoints, the trust store and its audit trail) as one dump
//! ([`Store::dump`]), and `manifest.json`, written last, naming every file
//! with its SHA-256. The search index is not in it: a node re-derives it
//! from the store when it starts.
//!
//! Consistency: sled has no snapshot across trees, so the dump holds off
//! every store write while it reads (and the node's own-log writer, so the
//! own log and its signed checkpoint agree). The dump is the store at one
//! point between two writes: a state a crash could have left, which a node
//! opens as it opens after a crash. Searches and pulls go on meanwhile.
//!
//! Atomicity: everything is written into a hidden directory beside the
//! target, fsynced, and renamed into place; an interrupted backup leaves
//! no directory under the target's name, and the hidden one has no
//! manifest, so [`verify`] refuses it. A backup whose rename fails removes
//! the hidden directory: complete, it holds a manifest and the keys.
//!
//! A restore reads only what the manifest lists, and each listed file only
//! when it is a regular file of the listed size (a symbolic link is not
//! followed), never further than that size: a link to a device or a named
//! pipe in its place is refused, not read without end.
//!
//! A restored node may have signed and published entries after the backup
//! was taken; signing others at the same indices would fork its log. So a
//! restore leaves [`RECOVERY_FILE`] in the data directory: the node then
//! appends nothing of its own until it has pulled its own log back from its
//! peers ([`crate::sync`]) or the operator ends the recovery. Until its
//! last step a restore also leaves [`RESTORE_UNFINISHED_FILE`], so a
//! restore cut short (killed) leaves a directory no command opens: its
//! store may hold only part of the backup.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use prost::Message;
use sha2::{Digest, Sha256};

use crate::certificate::{
    PUBLIC_CERT_FILE, PUBLIC_KEY_FILE, TLS_CERT_FILE, TLS_KEY_FILE, TLS_NEXT_CERT_FILE,
    TLS_NEXT_KEY_FILE,
};
use crate::config::{CONFIG_FILE, KEY_FILE};
use crate::node::{Node, NodeError, INDEX_DIR, STORE_DIR};
use crate::store::{DumpError, Store, StoreError};

/// The manifest of a backup, written last.
pub const MANIFEST_FILE: &str = "manifest.json";
/// The store's dump inside a backup.
pub const STORE_DUMP: &str = "store.dump";
/// Version of the backup layout this build writes; it reads every one up
/// to it. Version 2 may carry `keyset-1.dsse` and the operator's files,
/// which a build reading only version 1 would refuse by name.
pub const FORMAT_VERSION: u32 = 2;
use crate::node::{GENESIS_FILE, NEXT_KEY_FILE, ROOT_KEY_FILE};
pub use crate::node::{RECOVERY_FILE, RESTORE_UNFINISHED_FILE};
/// The files of a data directory a backup carries, besides the store.
/// The first three every node has.
const NODE_FILES: [&str; 11] = [
    CONFIG_FILE,
    KEY_FILE,
    // The new signing key of a rotation cut short after its key set was
    // stored: the next start puts it in place of the key file.
    NEXT_KEY_FILE,
    // The root key, when the operator keeps it in the data directory.
    ROOT_KEY_FILE,
    // The first key set, signed by the root at `init`, which the first
    // start puts at entry 0: without it a node never started would start
    // its log with a key set where its identity key is its own root.
    GENESIS_FILE,
    TLS_KEY_FILE,
    TLS_CERT_FILE,
    PUBLIC_CERT_FILE,
    PUBLIC_KEY_FILE,
    // The next TLS key, while a TLS key rotation is under way.
    TLS_NEXT_KEY_FILE,
    TLS_NEXT_CERT_FILE,
];
/// Files that hold private keys: restored with mode 0600 whatever the
/// manifest says.
const PRIVATE_FILES: [&str; 6] = [
    KEY_FILE,
    NEXT_KEY_FILE,
    ROOT_KEY_FILE,
    TLS_KEY_FILE,
    PUBLIC_KEY_FILE,
    TLS_NEXT_KEY_FILE,
];
/// Largest manifest read.
const MANIFEST_MAX_BYTES: u64 = 1 << 20;
/// Largest node file (configuration, key, certificate, key set) a backup
/// may list and a restore reads.
const NODE_FILE_MAX_BYTES: u64 = 1 << 20;

/// Why a backup or restore failed. Every variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The target of a backup is already there.
    #[error("{0}: already exists; a backup never overwrites one (choose a new directory)")]
    Exists(PathBuf),
    /// A restore target that is not empty.
    #[error(
        "{0}: not empty; a backup is restored only into an empty directory, never over a node"
    )]
    NotEmpty(PathBuf),
    /// Reading or writing a file failed.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The backup has no manifest: it was interrupted, or is not a backup.
    #[error("{0}: missing; this is not a complete backup (an interrupted backup has no manifest)")]
    NoManifest(PathBuf),
    /// The manifest does not parse or breaks a rule.
    #[error("{path}: {message}")]
    Manifest { path: PathBuf, message: String },
    /// A file of the backup is missing or does not match its digest.
    #[error("{path}: {message}; the backup is damaged or partial, refusing it")]
    Damaged { path: PathBuf, message: String },
    /// The store could not be dumped or loaded.
    #[error("{path}: {source}")]
    Dump {
        path: PathBuf,
        #[source]
        source: DumpError,
    },
    #[error(transparent)]
    Node(#[from] NodeError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BackupError + '_ {
    move |source| BackupError::Io {
        path: path.to_owned(),
        source,
    }
}

/// One file of a backup.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileEntry {
    /// SHA-256 of the content, hex.
    pub sha256: String,
    pub bytes: u64,
    /// Unix mode the file had in the data directory.
    pub mode: u32,
}

/// What a backup holds, written last as `manifest.json`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// [`FORMAT_VERSION`] of the writer.
    pub format: u32,
    pub node_id: String,
    /// When the backup was taken (RFC 3339, UTC).
    pub created: String,
    /// This node's own log size in the backup.
    pub own_log_size: u64,
    /// The size the own signed checkpoint in the backup covers.
    pub own_checkpoint_size: u64,
    /// The own signed checkpoint envelope, hex.
    pub own_checkpoint: String,
    /// Every origin's log size in the backup.
    pub origins: BTreeMap<String, u64>,
    /// Every file of the backup but the manifest and the operator's, by
    /// name.
    pub files: BTreeMap<String, FileEntry>,
    /// The operator's own certificate and key (`tls.public_cert`,
    /// `tls.public_key`), when the configuration names files directly in
    /// the data directory ([`operator_files`]), by name: restored there
    /// with mode 0600.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub operator_files: BTreeMap<String, FileEntry>,
    /// The node was recovering its own log from its peers when the backup
    /// was taken: the backup may lack entries it had signed, so it is
    /// restored recovering, never with [`Recovery::Skip`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recovering: bool,
}

impl FileEntry {
    /// How a file of `bytes` bytes hashed into `hash` differs from this
    /// entry of the manifest; `None` when it does not.
    fn differs(&self, bytes: u64, hash: Sha256) -> Option<String> {
        if bytes != self.bytes {
            return Some(format!("{bytes} bytes, the manifest says {}", self.bytes));
        }
        (hex::encode(hash.finalize()) != self.sha256)
            .then(|| "its SHA-256 differs from the manifest's".to_owned())
    }
}

/// A reader or writer that hashes and counts what passes through it, and
/// adds the count to `progress` when there is one (for progress reports).
struct Hashing<'a, T> {
    inner: T,
    hash: Sha256,
    bytes: u64,
    progress: Option<&'a AtomicU64>,
}

impl<'a, T> Hashing<'a, T> {
    fn new(inner: T, progress: Option<&'a AtomicU64>) -> Self {
        Self {
            inner,
            hash: Sha256::new(),
            bytes: 0,
            progress,
        }
    }

    fn passed(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
        self.bytes += bytes.len() as u64;
        if let Some(progress) = self.progress {
            progress.fetch_add(bytes.len() as u64, Ordering::Relaxed);
        }
    }
}

impl<W: Write> Write for Hashing<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.passed(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

impl<R: Read> Read for Hashing<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.passed(&buf[..n]);
        Ok(n)
    }
}

fn create_private(path: &Path) -> Result<std::fs::File, BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))
}

/// The names, in the data directory, of the operator's own certificate
/// and key (`tls.public_cert`, `tls.public_key`) when the configuration
/// names files directly in it (a relative path of one name, or an
/// absolute one there): a restored node reads them where it did.
fn operator_files(node: &Node) -> std::collections::BTreeSet<String> {
    let tls = &node.config().tls;
    [&tls.public_cert, &tls.public_key]
        .into_iter()
        .flatten()
        .filter_map(|path| {
            let inside = match path.strip_prefix(node.data_dir()) {
                Ok(inside) => inside,
                Err(_) if path.is_relative() => path,
                Err(_) => return None,
            };
            // `public.crt` named as the operator's own: carried anyway.
            if inside
                .to_str()
                .is_some_and(|name| NODE_FILES.contains(&name))
            {
                return None;
            }
            let name = operator_file_name(inside);
            if name.is_none() {
                tracing::warn!(
                    path = %path.display(),
                    "the backup does not carry this file of tls: only files directly in the \
                     data directory, by names the node does not use, are carried; copy it yourself"
                );
            }
            name.map(str::to_owned)
        })
        .collect()
}

/// `path` as the name of an operator's file a backup may carry and a
/// restore write: one plain name, not hidden, and none the node uses.
fn operator_file_name(path: &Path) -> Option<&str> {
    let mut components = path.components();
    let (Some(std::path::Component::Normal(name)), None) = (components.next(), components.next())
    else {
        return None;
    };
    let name = name.to_str()?;
    let reserved = NODE_FILES.contains(&name)
        || [
            STORE_DUMP,
            MANIFEST_FILE,
            STORE_DIR,
            INDEX_DIR,
            RECOVERY_FILE,
            RESTORE_UNFINISHED_FILE,
            crate::config::ADMIN_SOCKET,
        ]
        .contains(&name);
    (!name.starts_with('.') && !reserved).then_some(name)
}

/// Copies `source` into the backup at `target` (mode 0600), counting its
/// bytes in `written`; `None` when there is no such file. A file larger
/// than a restore takes is refused, as a restore would refuse it: a backup
/// that cannot be restored is refused when it is taken.
fn carry(
    source: &Path,
    target: &Path,
    written: &AtomicU64,
) -> Result<Option<FileEntry>, BackupError> {
    use std::os::unix::fs::PermissionsExt;
    let Ok(meta) = std::fs::metadata(source) else {
        return Ok(None);
    };
    if meta.len() > NODE_FILE_MAX_BYTES {
        return Err(BackupError::Damaged {
            path: source.to_owned(),
            message: format!(
                "{} bytes, larger than a node's file may be ({NODE_FILE_MAX_BYTES} bytes)",
                meta.len()
            ),
        });
    }
    let bytes = std::fs::read(source).map_err(io(source))?;
    let mut out = create_private(target)?;
    out.write_all(&bytes)
        .and_then(|()| out.sync_all())
        .map_err(io(target))?;
    written.fetch_add(bytes.len() as u64, Ordering::Relaxed);
    Ok(Some(FileEntry {
        sha256: hex::encode(Sha256::digest(&bytes)),
        bytes: bytes.len() as u64,
        mode: meta.permissions().mode() & 0o777,
    }))
}

fn sync_dir(dir: &Path) -> Result<(), BackupError> {
    std::fs::File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io(dir))
}

/// Why a file of a backup with metadata `meta` is not what the manifest
/// lists as `entry` (a regular file of `entry.bytes` bytes); `None` when
/// it is.
fn not_as_listed(meta: &std::fs::Metadata, entry: &FileEntry) -> Option<String> {
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Some(
            "a symbolic link, not a regular file: a backup holds only regular files".into(),
        );
    }
    if !kind.is_file() {
        return Some("not a regular file: a backup holds only regular files".into());
    }
    (meta.len() != entry.bytes)
        .then(|| format!("{} bytes, the manifest says {}", meta.len(), entry.bytes))
}

/// Refuses the file of a backup at `path` unless it is a regular file of
/// the size the manifest lists as `entry`, reading none of it: a symbolic
/// link is not followed.
fn check_listed(path: &Path, entry: &FileEntry) -> Result<(), BackupError> {
    let damaged = |message: String| BackupError::Damaged {
        path: path.to_owned(),
        message,
    };
    match std::fs::symlink_metadata(path) {
        Ok(meta) => not_as_listed(&meta, entry).map_or(Ok(()), |why| Err(damaged(why))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(damaged("missing".into())),
        Err(e) => Err(io(path)(e)),
    }
}

/// Opens `path` to read it if it is a regular file. A symbolic link put in
/// its place is not followed and a named pipe not waited on: either is
/// refused.
fn open_regular(path: &Path) -> std::io::Result<std::fs::File> {
    use std::os::unix::fs::OpenOptionsExt;
    let not_regular = |what: &str| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("{what}, not a regular file: a backup holds only regular files"),
        )
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => not_regular("a symbolic link"),
            _ => e,
        })?;
    if !file.metadata()?.file_type().is_file() {
        return Err(not_regular("a special file"));
    }
    Ok(file)
}

/// Opens the file of a backup at `path` that the manifest lists as
/// `entry`, once [`check_listed`] and [`open_regular`] find it a regular
/// file of the listed size. What is read of it ends one byte past that
/// size, so a file that grew since is told from the listed one without
/// reading the rest.
fn open_listed(
    path: &Path,
    entry: &FileEntry,
) -> Result<std::io::Take<std::fs::File>, BackupError> {
    check_listed(path, entry)?;
    let file = open_regular(path).map_err(io(path))?;
    Ok(file.take(entry.bytes + 1))
}

/// Writes a backup of `node` into `dest`, which must not exist. The node
/// may be serving meanwhile: only its store writes wait for the dump.
/// Adds the bytes it writes to `written` as it goes.
pub fn create(node: &Node, dest: &Path, written: &AtomicU64) -> Result<Manifest, BackupError> {
    create_then_rename(node, dest, written, || {})
}

/// [`create`], calling `before_rename` once the backup is complete, just
/// before it is renamed into place.
fn create_then_rename(
    node: &Node,
    dest: &Path,
    written: &AtomicU64,
    before_rename: impl FnOnce(),
) -> Result<Manifest, BackupError> {
    use std::os::unix::fs::DirBuilderExt;
    if dest.exists() {
        return Err(BackupError::Exists(dest.to_owned()));
    }
    let name = dest
        .file_name()
        .ok_or_else(|| BackupError::Manifest {
            path: dest.to_owned(),
            message: "a backup needs a directory name".into(),
        })?
        .to_string_lossy()
        .into_owned();
    let parent = match dest.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
        _ => PathBuf::from("."),
    };
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let partial = parent.join(format!(".{name}.partial-{}-{nanos}", std::process::id()));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&partial)
        .map_err(io(&partial))?;
    let (manifest, writes_held) = match write_into(node, &partial, written) {
        Ok(done) => done,
        Err(e) => {
            // A failed backup leaves nothing behind (a killed one leaves a
            // hidden directory without a manifest, which restore refuses).
            let _ = std::fs::remove_dir_all(&partial);
            return Err(e);
        }
    };
    if dest.exists() {
        let _ = std::fs::remove_dir_all(&partial);
        return Err(BackupError::Exists(dest.to_owned()));
    }
    before_rename();
    if let Err(e) = std::fs::rename(&partial, dest) {
        // Complete, the hidden directory holds a manifest and copies of the
        // keys: it is not left behind.
        if let Err(removal) = std::fs::remove_dir_all(&partial) {
            tracing::warn!(
                dir = %partial.display(),
                error = %removal,
                "could not remove a backup that was not renamed into place; it holds the node's keys"
            );
        }
        use std::io::ErrorKind::{AlreadyExists, DirectoryNotEmpty, NotADirectory};
        return Err(match e.kind() {
            AlreadyExists | DirectoryNotEmpty | NotADirectory => {
                BackupError::Exists(dest.to_owned())
            }
            _ => io(dest)(e),
        });
    }
    // The backup is complete and in place: a rename that may not survive a
    // crash yet is no reason to report it failed.
    if let Err(e) = sync_dir(&parent) {
        tracing::warn!(
            dir = %dest.display(),
            error = %e,
            "backup written, but its directory could not be synced"
        );
    }
    tracing::info!(
        dir = %dest.display(),
        own_log_size = manifest.own_log_size,
        origins = manifest.origins.len(),
        writes_held_ms = writes_held.as_millis() as u64,
        "backup written"
    );
    Ok(manifest)
}

/// Writes the files of a backup of `node` into the new directory `partial`,
/// the manifest last, each fsynced. Returns the manifest and how long store
/// writes were held.
fn write_into(
    node: &Node,
    partial: &Path,
    written: &AtomicU64,
) -> Result<(Manifest, std::time::Duration), BackupError> {
    let own = node.node_id().as_str();
    let dump_started = std::time::Instant::now();
    // Key changes (a rotation stores its key set, then puts the new key in
    // place of the key file) and own appends (they sign a checkpoint after
    // their commit) happen under this lock: held while the files are
    // copied and the store dumped, the keys, the own log and its
    // checkpoint agree.
    let writer = node.writer.lock().unwrap_or_else(|p| p.into_inner());
    // Recovery ends under the same lock: read here, the flag is the one
    // that holds for the dump taken below.
    let recovering = node.recovering();
    let mut files = BTreeMap::new();
    for file in NODE_FILES {
        let source = node.data_dir().join(file);
        if let Some(entry) = carry(&source, &partial.join(file), written)? {
            files.insert(file.to_owned(), entry);
        }
    }
    let mut operator = BTreeMap::new();
    for file in operator_files(node) {
        let source = node.data_dir().join(&file);
        if let Some(entry) = carry(&source, &partial.join(&file), written)? {
            operator.insert(file, entry);
        }
    }
    let dump_path = partial.join(STORE_DUMP);
    let mut out = Hashing::new(
        std::io::BufWriter::new(create_private(&dump_path)?),
        Some(written),
    );
    let (summary, checkpoint) = node
        .store()
        .dump(&mut out, |store| store.checkpoint(own))
        .map_err(|source| BackupError::Dump {
            path: dump_path.clone(),
            source,
        })?;
    drop(writer);
    let writes_held = dump_started.elapsed();
    let Hashing {
        inner, hash, bytes, ..
    } = out;
    inner
        .into_inner()
        .map_err(|e| e.into_error())
        .and_then(|file| file.sync_all())
        .map_err(io(&dump_path))?;
    files.insert(
        STORE_DUMP.to_owned(),
        FileEntry {
            sha256: hex::encode(hash.finalize()),
            bytes,
            mode: 0o600,
        },
    );
    let own_checkpoint_size = match &checkpoint {
        Some(bytes) => {
            let envelope = crate::proto::Envelope::decode(bytes.as_slice()).map_err(|e| {
                StoreError::Corrupt {
                    tree: crate::store::tree::CHECKPOINTS,
                    detail: format!("{own}: {e}"),
                }
            })?;
            node.own_chain()
                .open_checkpoint(&envelope)
                .map_err(NodeError::from)?
                .size
        }
        None => 0,
    };
    let manifest = Manifest {
        format: FORMAT_VERSION,
        node_id: own.to_owned(),
        created: crate::date::now_rfc3339(),
        own_log_size: summary.origins.get(own).copied().unwrap_or(0),
        own_checkpoint_size,
        own_checkpoint: checkpoint.map(hex::encode).unwrap_or_default(),
        origins: summary.origins,
        files,
        operator_files: operator,
        recovering,
    };
    let manifest_path = partial.join(MANIFEST_FILE);
    let mut out = create_private(&manifest_path)?;
    let json = serde_json::to_vec_pretty(&manifest).expect("a manifest serialises");
    out.write_all(&json)
        .and_then(|()| out.sync_all())
        .map_err(io(&manifest_path))?;
    sync_dir(partial)?;
    Ok((manifest, writes_held))
}

/// Reads the manifest of the backup in `dir` and checks every file it
/// names against its size and digest. Refuses a backup without a manifest
/// (interrupted), of an unknown format, or with a file missing or changed,
/// naming the file.
pub fn verify(dir: &Path) -> Result<Manifest, BackupError> {
    let path = dir.join(MANIFEST_FILE);
    let manifest_error = |message: String| BackupError::Manifest {
        path: path.clone(),
        message,
    };
    let file = match open_regular(&path) {
        Ok(file) => file,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Err(BackupError::NoManifest(path))
        }
        Err(e) => return Err(io(&path)(e)),
    };
    let mut text = Vec::new();
    file.take(MANIFEST_MAX_BYTES + 1)
        .read_to_end(&mut text)
        .map_err(io(&path))?;
    if text.len() as u64 > MANIFEST_MAX_BYTES {
        return Err(manifest_error(format!(
            "larger than {MANIFEST_MAX_BYTES} bytes"
        )));
    }
    // The format first, so an unknown one is named as such.
    let value: serde_json::Value =
        serde_json::from_slice(&text).map_err(|e| manifest_error(format!("not JSON: {e}")))?;
    match value.get("format").and_then(serde_json::Value::as_u64) {
        Some(found) if (1..=u64::from(FORMAT_VERSION)).contains(&found) => {}
        Some(found) => {
            return Err(manifest_error(format!(
                "format: version {found}, this meridian reads versions 1 to {FORMAT_VERSION}; \
                 use the matching meridian release"
            )))
        }
        None => return Err(manifest_error("format: missing".into())),
    }
    let manifest: Manifest =
        serde_json::from_value(value).map_err(|e| manifest_error(e.to_string()))?;
    for required in [
        STORE_DUMP,
        CONFIG_FILE,
        KEY_FILE,
        TLS_KEY_FILE,
        TLS_CERT_FILE,
    ] {
        if !manifest.files.contains_key(required) {
            return Err(manifest_error(format!("files: {required} is not listed")));
        }
    }
    for name in manifest.operator_files.keys() {
        if operator_file_name(Path::new(name)) != Some(name.as_str()) {
            return Err(manifest_error(format!(
                "operator_files: {name:?} is not a name a restore may write"
            )));
        }
    }
    for name in manifest.files.keys() {
        if !NODE_FILES.contains(&name.as_str()) && name != STORE_DUMP {
            return Err(manifest_error(format!(
                "files: {name:?} is not a file a backup holds"
            )));
        }
    }
    for (name, entry) in manifest.files.iter().chain(&manifest.operator_files) {
        if name != STORE_DUMP && entry.bytes > NODE_FILE_MAX_BYTES {
            return Err(manifest_error(format!(
                "files: {name} of {} bytes, larger than a node's file may be \
                 ({NODE_FILE_MAX_BYTES} bytes)",
                entry.bytes
            )));
        }
        let file_path = dir.join(name);
        let mut file = open_listed(&file_path, entry)?;
        let mut hash = Sha256::new();
        let bytes = std::io::copy(&mut file, &mut hash).map_err(io(&file_path))?;
        if let Some(difference) = entry.differs(bytes, hash) {
            return Err(BackupError::Damaged {
                path: file_path,
                message: difference,
            });
        }
    }
    Ok(manifest)
}

/// Writes the recovery marker `path` with `note`, durably.
fn write_marker(path: &Path, note: &str) -> Result<(), BackupError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut out = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .map_err(io(path))?;
    out.write_all(note.as_bytes())
        .and_then(|()| out.sync_all())
        .map_err(io(path))
}

/// How a restore ends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recovery {
    /// The node starts recovering its own log from its peers (the default).
    FromPeers,
    /// The operator knows no peer holds more of the own log than the
    /// backup: the node starts as it was.
    Skip,
}

/// Restores the backup in `backup` into `data_dir`, which must be empty
/// or absent: verifies it ([`verify`]), writes the files with the modes
/// `meridian init` gives them, loads the store, and (with
/// [`Recovery::FromPeers`]) marks the node as recovering.
///
/// Every file is hashed again as it is restored, the dump as it is loaded:
/// a backup that changed since [`verify`] read it (flaky or shared storage,
/// a file replaced meanwhile) is refused, naming the file. A refused
/// restore removes what it wrote and leaves `data_dir` as it found it.
pub fn restore(
    backup: &Path,
    data_dir: &Path,
    recovery: Recovery,
) -> Result<Manifest, BackupError> {
    restore_reading(backup, data_dir, recovery, open_regular)
}

/// [`restore`], reading the store's dump from what `open_dump` opens.
fn restore_reading<R: Read>(
    backup: &Path,
    data_dir: &Path,
    recovery: Recovery,
    open_dump: impl FnOnce(&Path) -> std::io::Result<R>,
) -> Result<Manifest, BackupError> {
    // A fast refusal of a damaged or partial backup before anything is
    // written; the digests are checked again on what is restored.
    let manifest = verify(backup)?;
    if manifest.recovering && recovery == Recovery::Skip {
        return Err(BackupError::Manifest {
            path: backup.join(MANIFEST_FILE),
            message: "the backup was taken while the node was recovering its own log from its \
                      peers, so it may lack entries the node had signed: restore it without \
                      --no-recover"
                .into(),
        });
    }
    let created = !data_dir.exists();
    if !created {
        let mut entries = std::fs::read_dir(data_dir).map_err(io(data_dir))?;
        if entries.next().is_some() {
            // What a restore cut short left is named as such.
            crate::node::refuse_unfinished_restore(data_dir)?;
            return Err(BackupError::NotEmpty(data_dir.to_owned()));
        }
    }
    std::fs::create_dir_all(data_dir).map_err(io(data_dir))?;
    let mut written = Vec::new();
    match write_restored(
        backup,
        data_dir,
        &manifest,
        recovery,
        open_dump,
        &mut written,
    ) {
        Ok(()) => Ok(manifest),
        Err(e) => {
            undo_restore(data_dir, created, &written);
            Err(e)
        }
    }
}

/// Writes the restored node into the empty directory `data_dir`, adding
/// each path it creates to `written` before it writes there.
fn write_restored<R: Read>(
    backup: &Path,
    data_dir: &Path,
    manifest: &Manifest,
    recovery: Recovery,
    open_dump: impl FnOnce(&Path) -> std::io::Result<R>,
    written: &mut Vec<PathBuf>,
) -> Result<(), BackupError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    std::fs::set_permissions(data_dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(data_dir))?;
    // Marked recovering before anything else is written: a restore cut
    // short (killed) leaves a node that takes its own log back from its
    // peers before it signs, never one that signs again at positions its
    // peers already hold (they would freeze it as a fork). A refused
    // restore removes the marker last.
    let marker = data_dir.join(RECOVERY_FILE);
    written.push(marker.clone());
    write_marker(
        &marker,
        &format!(
            "a restore of the backup of {} taken {} began and did not finish\n",
            manifest.node_id, manifest.created
        ),
    )?;
    // Then the mark of a restore under way, removed last: a directory a
    // restore did not finish is refused by every command that opens it.
    let unfinished = data_dir.join(RESTORE_UNFINISHED_FILE);
    written.push(unfinished.clone());
    write_marker(
        &unfinished,
        &format!(
            "of the backup of {} taken {}\n",
            manifest.node_id, manifest.created
        ),
    )?;
    sync_dir(data_dir)?;
    for (name, entry) in manifest.files.iter().chain(&manifest.operator_files) {
        if name == STORE_DUMP {
            continue;
        }
        let mode = if PRIVATE_FILES.contains(&name.as_str())
            || manifest.operator_files.contains_key(name)
        {
            0o600
        } else {
            entry.mode & 0o644
        };
        let (source, target) = (backup.join(name), data_dir.join(name));
        let mut bytes = Vec::new();
        open_listed(&source, entry)
            .map_err(changed_since_verified)?
            .read_to_end(&mut bytes)
            .map_err(io(&source))?;
        let mut hash = Sha256::new();
        hash.update(&bytes);
        if let Some(difference) = entry.differs(bytes.len() as u64, hash) {
            return Err(BackupError::Damaged {
                path: source,
                message: format!("changed while it was restored: {difference}"),
            });
        }
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&target)
            .map_err(io(&target))?;
        written.push(target.clone());
        out.write_all(&bytes)
            .and_then(|()| out.set_permissions(std::fs::Permissions::from_mode(mode)))
            .and_then(|()| out.sync_all())
            .map_err(io(&target))?;
    }
    let dump_path = backup.join(STORE_DUMP);
    let entry = &manifest.files[STORE_DUMP];
    let changed = |message: String| BackupError::Damaged {
        path: dump_path.clone(),
        message: format!("changed while it was restored: {message}"),
    };
    check_listed(&dump_path, entry).map_err(changed_since_verified)?;
    let opened = open_dump(&dump_path).map_err(io(&dump_path))?;
    // One byte past the listed size tells a dump that grew from the listed
    // one; a dump replaced by an endless one is read no further.
    let mut dump = Hashing::new(opened.take(entry.bytes + 1), None);
    let store_dir = data_dir.join(STORE_DIR);
    written.push(store_dir.clone());
    let loaded = Store::load_dump(&store_dir, &mut std::io::BufReader::new(&mut dump));
    // What was loaded is what was hashed: the rest of the file (a dump that
    // grew, or one the load stopped reading) is hashed too, so a dump that
    // changed is named as such, whatever the load made of it.
    let rest = std::io::copy(&mut dump, &mut std::io::sink());
    if rest.is_ok() {
        if let Some(difference) = entry.differs(dump.bytes, dump.hash) {
            return Err(changed(difference));
        }
    }
    let summary = loaded.map_err(|source| BackupError::Dump {
        path: dump_path.clone(),
        source,
    })?;
    rest.map_err(io(&dump_path))?;
    if summary.origins != manifest.origins {
        return Err(BackupError::Damaged {
            path: dump_path,
            message: "its logs differ in size from the manifest's".into(),
        });
    }
    match recovery {
        Recovery::FromPeers => write_marker(
            &marker,
            &format!(
                "restored from the backup of {} taken {} (own log {} entries)\n",
                manifest.node_id, manifest.created, manifest.own_log_size
            ),
        )?,
        Recovery::Skip => std::fs::remove_file(&marker).map_err(io(&marker))?,
    }
    sync_dir(data_dir)?;
    std::fs::remove_file(&unfinished).map_err(io(&unfinished))?;
    sync_dir(data_dir)
}

/// `e`, said of a file that [`verify`] found as listed.
fn changed_since_verified(e: BackupError) -> BackupError {
    match e {
        BackupError::Damaged { path, message } => BackupError::Damaged {
            path,
            message: format!("changed while it was restored: {message}"),
        },
        e => e,
    }
}

/// Removes what a refused restore wrote into `data_dir` (`written`, in the
/// order it was written: the recovery marker first), the marker last, so
/// that a removal cut short still leaves a recovering node; and `data_dir`
/// itself when the restore `created` it.
fn undo_restore(data_dir: &Path, created: bool, written: &[PathBuf]) {
    let mut failed = false;
    for path in written.iter().rev() {
        let removed = if path.is_dir() {
            std::fs::remove_dir_all(path)
        } else {
            std::fs::remove_file(path)
        };
        match removed {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "could not remove what a refused restore wrote");
                failed = true;
                break;
            }
        }
    }
    if created && !failed {
        if let Err(e) = std::fs::remove_dir(data_dir) {
            tracing::warn!(path = %data_dir.display(), error = %e, "could not remove the directory of a refused restore");
        }
    }
    let synced = if data_dir.exists() {
        data_dir.to_owned()
    } else {
        match data_dir.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_owned(),
            _ => PathBuf::from("."),
        }
    };
    if let Err(e) = sync_dir(&synced) {
        tracing::warn!(error = %e, "could not sync after a refused restore");
    }
}

#[cfg(test)]
mod tests;
