//! A backup restores to the node it was taken of; a damaged, partial or
//! foreign one is refused naming the file; a restored node appends nothing
//! of its own until its recovery ends.

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use super::*;
use crate::test_support::{opened_node, record_line};

fn lines(range: std::ops::Range<usize>) -> Vec<String> {
    range
        .map(|i| record_line(&format!("PDC-{i}"), &format!("Ice core {i}"), "public"))
        .collect()
}

/// A node with records, and a backup of it in `backup` beside it.
fn backed_up() -> (tempfile::TempDir, std::path::PathBuf, Manifest) {
    let (node, dir) = opened_node("polar");
    node.import_lines(1, &lines(0..20)).unwrap();
    let backup = dir.path().join("backup-1");
    let written = std::sync::atomic::AtomicU64::new(0);
    let manifest = create(&node, &backup, &written).unwrap();
    let bytes: u64 = manifest.files.values().map(|f| f.bytes).sum();
    assert_eq!(written.into_inner(), bytes, "progress counts every byte");
    (dir, backup, manifest)
}

/// Checks that `backup` is refused by `verify` and by a restore into
/// `dir/restored`, each naming `file`, and that nothing is written; returns
/// `verify`'s refusal.
fn refused_naming(dir: &Path, backup: &Path, file: &str) -> String {
    let err = verify(backup).unwrap_err().to_string();
    assert!(err.contains(file), "{err}");
    let target = dir.join("restored");
    let restored = restore(backup, &target, Recovery::FromPeers).unwrap_err();
    assert!(restored.to_string().contains(file), "{restored}");
    assert!(!target.exists(), "nothing is written from a refused backup");
    err
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_backup_restores_to_the_node_it_was_taken_of() {
    let (dir, backup, manifest) = backed_up();
    assert_eq!(manifest.node_id, "polar");
    assert_eq!(manifest.own_log_size, 21, "the key set and 20 records");
    assert_eq!(manifest.own_checkpoint_size, manifest.own_log_size);
    assert!(!manifest.files.contains_key("index"));
    assert_eq!(verify(&backup).unwrap(), manifest);

    let restored = dir.path().join("restored");
    restore(&backup, &restored, Recovery::Skip).unwrap();
    assert_eq!(mode(&restored), 0o700);
    for key in [KEY_FILE, TLS_KEY_FILE] {
        assert_eq!(mode(&restored.join(key)), 0o600, "{key}");
    }
    let node = Node::open(&restored, &BTreeMap::new()).unwrap();
    assert!(!node.recovering());
    assert_eq!(node.store().log_size("polar").unwrap(), 21);
    let report = crate::fsck::check(&node).unwrap();
    assert!(report.findings.is_empty(), "{:?}", report.findings);
    // Each record state came with its note of the latest public version.
    let state = node
        .store()
        .record_state("polar", "PDC-3")
        .unwrap()
        .unwrap();
    assert_eq!(
        state.last_public,
        crate::log::LastPublic::At(state.log_index)
    );
    // It signs on after the backup's end.
    let outcome = node.import_lines(1, &lines(20..21)).unwrap();
    assert_eq!(outcome.log_size, 22);
}

#[test]
fn a_flipped_byte_names_the_file_it_is_in() {
    for file in [STORE_DUMP, KEY_FILE, CONFIG_FILE] {
        let (dir, backup, _) = backed_up();
        let path = backup.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let at = bytes.len() / 2;
        bytes[at] ^= 0x01;
        std::fs::write(&path, &bytes).unwrap();
        let err = refused_naming(dir.path(), &backup, file);
        assert!(err.contains(&path.display().to_string()), "{file}: {err}");
        assert!(err.contains("SHA-256"), "{file}: {err}");
    }
}

#[test]
fn a_partial_or_foreign_backup_is_refused_clearly() {
    let (dir, backup, manifest) = backed_up();
    // Interrupted before its manifest.
    let partial = dir.path().join("partial");
    std::fs::create_dir(&partial).unwrap();
    std::fs::copy(backup.join(STORE_DUMP), partial.join(STORE_DUMP)).unwrap();
    let err = verify(&partial).unwrap_err().to_string();
    assert!(err.contains("manifest.json: missing"), "{err}");

    // A file cut short.
    let dump = backup.join(STORE_DUMP);
    let bytes = std::fs::read(&dump).unwrap();
    std::fs::write(&dump, &bytes[..bytes.len() - 1]).unwrap();
    let err = verify(&backup).unwrap_err().to_string();
    assert!(err.contains("store.dump") && err.contains("bytes"), "{err}");
    std::fs::write(&dump, &bytes).unwrap();

    // A file gone.
    std::fs::remove_file(backup.join(TLS_CERT_FILE)).unwrap();
    let err = verify(&backup).unwrap_err().to_string();
    assert!(err.contains("tls.crt") && err.contains("missing"), "{err}");

    // An unknown format, and a file name that leaves the directory.
    let mut newer = manifest.clone();
    newer.format = 99;
    std::fs::write(
        backup.join(MANIFEST_FILE),
        serde_json::to_vec(&newer).unwrap(),
    )
    .unwrap();
    let err = verify(&backup).unwrap_err().to_string();
    assert!(err.contains("version 99"), "{err}");
    // A backup of the layout before is still read.
    let (_whole_dir, whole, mut older) = backed_up();
    older.format = 1;
    std::fs::write(
        whole.join(MANIFEST_FILE),
        serde_json::to_vec(&older).unwrap(),
    )
    .unwrap();
    assert_eq!(verify(&whole).unwrap(), older);
    let mut escaping = manifest;
    let entry = escaping.files[KEY_FILE].clone();
    escaping.files.insert("../identity.key".into(), entry);
    std::fs::write(
        backup.join(MANIFEST_FILE),
        serde_json::to_vec(&escaping).unwrap(),
    )
    .unwrap();
    let err = verify(&backup).unwrap_err().to_string();
    assert!(err.contains("not a file a backup holds"), "{err}");
}

#[test]
fn a_restore_goes_only_into_an_empty_directory_and_a_backup_never_overwrites() {
    let (dir, backup, _) = backed_up();
    let (node, _keep) = opened_node("other");
    let err = restore(&backup, node.data_dir(), Recovery::Skip).unwrap_err();
    assert!(matches!(err, BackupError::NotEmpty(_)), "{err}");
    let err = create(&node, &backup, &Default::default()).unwrap_err();
    assert!(matches!(err, BackupError::Exists(_)), "{err}");
    let leftovers: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_recovering_node_appends_nothing_of_its_own_until_recovery_ends() {
    let (dir, backup, _) = backed_up();
    let restored = dir.path().join("restored");
    restore(&backup, &restored, Recovery::FromPeers).unwrap();
    let node = Node::open(&restored, &BTreeMap::new()).unwrap();
    assert!(node.recovering());
    let err = node.import_lines(1, &lines(20..21)).unwrap_err();
    assert!(matches!(err, NodeError::Recovering), "{err}");
    assert!(err.to_string().contains("recovering its own log"), "{err}");
    assert_eq!(node.store().log_size("polar").unwrap(), 21);
    assert!(node.finish_recovery().unwrap());
    assert!(!restored.join(RECOVERY_FILE).exists());
    assert_eq!(node.import_lines(1, &lines(20..21)).unwrap().log_size, 22);
}

/// The names in `dir`, sorted.
fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// `bytes` with every "Ice core 7" made "Ice core X": a dump of the same
/// length that loads, holding a title the node never signed.
fn tampered(bytes: &[u8]) -> Vec<u8> {
    let (from, to) = (b"Ice core 7", b"Ice core X");
    let mut out = bytes.to_vec();
    let mut found = 0;
    for at in 0..out.len() - from.len() {
        if &out[at..at + from.len()] == from {
            out[at..at + from.len()].copy_from_slice(to);
            found += 1;
        }
    }
    assert!(found > 0, "the dump holds the title");
    out
}

/// A dump that changes after `verify` read it (replaced on the backup's
/// storage, or read back differently) is refused once it is loaded, naming
/// it, and the target directory is left as it was found: nothing of the
/// changed store (its trust store, its records) is left for a node to open.
#[test]
fn a_dump_that_changes_after_it_was_verified_is_refused_and_nothing_stays() {
    let (dir, backup, _) = backed_up();
    let dump = backup.join(STORE_DUMP);
    let original = std::fs::read(&dump).unwrap();

    // Replaced between the check and the load.
    let target = dir.path().join("restored");
    let err = restore_reading(&backup, &target, Recovery::Skip, |path| {
        std::fs::write(path, tampered(&original))?;
        std::fs::File::open(path)
    })
    .unwrap_err();
    let message = err.to_string();
    assert!(matches!(err, BackupError::Damaged { .. }), "{message}");
    assert!(message.contains(&dump.display().to_string()), "{message}");
    assert!(
        message.contains("changed while it was restored"),
        "{message}"
    );
    assert!(message.contains("SHA-256"), "{message}");
    assert!(!target.exists(), "{:?}", names(&target));
    std::fs::write(&dump, &original).unwrap();

    // Read back differently while it is loaded (the file on disk is intact),
    // into an empty directory the operator made: it stays, empty.
    let made = dir.path().join("made");
    std::fs::create_dir(&made).unwrap();
    let err = restore_reading(&backup, &made, Recovery::FromPeers, |_| {
        Ok(std::io::Cursor::new(tampered(&original)))
    })
    .unwrap_err();
    assert!(err.to_string().contains("SHA-256"), "{err}");
    assert!(names(&made).is_empty(), "{:?}", names(&made));

    // Grown: the load refuses the bytes after its end, and the error says
    // the file changed.
    let mut longer = original.clone();
    longer.push(0);
    let err = restore_reading(&backup, &target, Recovery::Skip, |_| {
        Ok(std::io::Cursor::new(longer))
    })
    .unwrap_err();
    let message = err.to_string();
    assert!(
        message.contains("changed while it was restored"),
        "{message}"
    );
    assert!(message.contains("bytes, the manifest says"), "{message}");
    assert!(!target.exists());

    // The backup itself restores.
    restore(&backup, &target, Recovery::Skip).unwrap();
    let node = Node::open(&target, &BTreeMap::new()).unwrap();
    assert_eq!(node.store().log_size("polar").unwrap(), 21);
}

/// A restore refused once the store is loaded (here the manifest names
/// other log sizes) removes what it wrote: the directory is as it was.
#[test]
fn a_restore_refused_after_loading_leaves_nothing() {
    let (dir, backup, mut manifest) = backed_up();
    manifest.origins.insert("polar".into(), 999);
    std::fs::write(
        backup.join(MANIFEST_FILE),
        serde_json::to_vec(&manifest).unwrap(),
    )
    .unwrap();
    let restored = dir.path().join("restored");
    let err = restore(&backup, &restored, Recovery::Skip).unwrap_err();
    assert!(err.to_string().contains("differ in size"), "{err}");
    assert!(!restored.exists(), "{:?}", names(&restored));
}

/// A restore that stops before its end without undoing what it wrote (a
/// kill; here the load dies halfway through the dump, the store half
/// loaded) leaves a directory that no command opens as a node, saying
/// what happened and what to do; were it opened anyway, it would be
/// recovering, even when a finished restore would not have been. Removed,
/// the directory takes the same backup again.
#[test]
fn a_restore_cut_short_leaves_a_directory_no_command_opens() {
    /// The dump's first half, then a kill.
    struct Dies {
        dump: std::fs::File,
        left: u64,
    }
    impl Read for Dies {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            if self.left == 0 {
                panic!("killed while the dump is read");
            }
            let most = buf.len().min(self.left as usize);
            let n = self.dump.read(&mut buf[..most])?;
            self.left -= n as u64;
            Ok(n)
        }
    }
    let (dir, backup, manifest) = backed_up();
    let restored = dir.path().join("restored");
    let cut = std::panic::catch_unwind(|| {
        restore_reading(&backup, &restored, Recovery::Skip, |path| {
            Ok(Dies {
                dump: std::fs::File::open(path)?,
                left: manifest.files[STORE_DUMP].bytes / 2,
            })
        })
    });
    assert!(cut.is_err());
    assert!(
        restored.join(STORE_DIR).exists() && restored.join(RECOVERY_FILE).exists(),
        "{:?}",
        names(&restored)
    );
    for opened in [
        Node::open(&restored, &BTreeMap::new()).err(),
        Node::open_as_is(&restored, &BTreeMap::new()).err(),
    ] {
        let err = opened.expect("a directory a restore did not finish is refused");
        assert!(matches!(err, NodeError::RestoreUnfinished { .. }), "{err}");
        let message = err.to_string();
        assert!(
            message.contains("did not finish")
                && message.contains(&manifest.node_id)
                && message.contains("run `meridian restore` again"),
            "{message}"
        );
    }

    // Restored over, it is named as what it is, not as a node.
    let err = restore(&backup, &restored, Recovery::Skip).unwrap_err();
    assert!(
        matches!(err, BackupError::Node(NodeError::RestoreUnfinished { .. })),
        "{err}"
    );
    assert!(err.to_string().contains("did not finish"), "{err}");

    std::fs::remove_dir_all(&restored).unwrap();
    restore(&backup, &restored, Recovery::Skip).unwrap();
    assert!(!restored.join(RESTORE_UNFINISHED_FILE).exists());
    let node = Node::open(&restored, &BTreeMap::new()).unwrap();
    assert!(!node.recovering());
}

/// A key rotation cut short after its key set was stored, before the new
/// key replaced the key file, as a crash leaves it: a backup taken then
/// (offline, as the node was left) carries the new key, and the restored
/// node finishes the rotation and signs with it.
#[test]
fn a_backup_of_a_rotation_cut_short_restores_a_node_that_signs() {
    let (node, dir) = opened_node("polar");
    let data = node.data_dir().to_owned();
    let old_key = std::fs::read(data.join(KEY_FILE)).unwrap();
    node.rotate_keys(Vec::new(), false, 90).unwrap();
    let new_id = node.key().key_id().clone();
    drop(node);
    std::fs::rename(data.join(KEY_FILE), data.join(NEXT_KEY_FILE)).unwrap();
    std::fs::write(data.join(KEY_FILE), old_key).unwrap();
    std::fs::set_permissions(data.join(KEY_FILE), std::fs::Permissions::from_mode(0o600)).unwrap();

    let node = Node::open_as_is(&data, &BTreeMap::new()).unwrap();
    let backup = dir.path().join("backup");
    create(&node, &backup, &std::sync::atomic::AtomicU64::new(0)).unwrap();
    drop(node);
    let restored = dir.path().join("restored");
    restore(&backup, &restored, Recovery::Skip).unwrap();
    assert_eq!(mode(&restored.join(NEXT_KEY_FILE)), 0o600);
    let node = Node::open(&restored, &BTreeMap::new()).unwrap();
    assert_eq!(node.key().key_id(), &new_id);
    let outcome = node.import_lines(1, &lines(0..1)).unwrap();
    assert_eq!(outcome.stored, 1, "{outcome:?}");
}

/// A backup of a node still recovering its own log may lack entries the
/// node had signed: it is restored recovering, and a restore that would
/// start it as it was is refused, writing nothing.
#[test]
fn a_backup_taken_while_recovering_is_restored_only_recovering() {
    let (dir, backup, _) = backed_up();
    let recovering = dir.path().join("recovering");
    restore(&backup, &recovering, Recovery::FromPeers).unwrap();
    let node = Node::open(&recovering, &BTreeMap::new()).unwrap();
    assert!(node.recovering());
    let again = dir.path().join("backup-2");
    let manifest = create(&node, &again, &std::sync::atomic::AtomicU64::new(0)).unwrap();
    assert!(manifest.recovering);
    drop(node);

    let skipped = dir.path().join("skipped");
    let err = restore(&again, &skipped, Recovery::Skip).unwrap_err();
    assert!(err.to_string().contains("without --no-recover"), "{err}");
    assert!(!skipped.exists(), "nothing written");
    let restored = dir.path().join("restored");
    restore(&again, &restored, Recovery::FromPeers).unwrap();
    let node = Node::open(&restored, &BTreeMap::new()).unwrap();
    assert!(node.recovering());

    // A backup of a node that is not recovering says nothing of it.
    let json = std::fs::read_to_string(backup.join(MANIFEST_FILE)).unwrap();
    assert!(!json.contains("recovering"), "{json}");
}

/// A node made with its root key kept elsewhere and never started holds
/// its first key set, signed by that root, only as a file: a backup of it
/// carries the file, and the restored node starts its log with that set,
/// not with one where its identity key is its own root.
#[test]
fn a_backup_of_a_node_never_started_keeps_its_first_key_set() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("polar");
    let root_file = dir.path().join("offline-root.key");
    let config =
        crate::config::Config::new(&"polar".parse().unwrap(), "127.0.0.1:0".parse().unwrap());
    let identity =
        Node::create_with_root(&data, config, std::slice::from_ref(&root_file), 1, 30).unwrap();
    let root = crate::sign::NodeKey::load(&root_file).unwrap();

    let node = Node::open_as_is(&data, &BTreeMap::new()).unwrap();
    let backup = dir.path().join("backup");
    let manifest = create(&node, &backup, &std::sync::atomic::AtomicU64::new(0)).unwrap();
    drop(node);
    let restored = dir.path().join("restored");
    restore(&backup, &restored, Recovery::Skip).unwrap();

    let node = Node::open(&restored, &BTreeMap::new()).unwrap();
    let chain = node.own_chain();
    let first = &chain.links()[0];
    assert_eq!((first.index, first.set.version), (0, 1));
    let root_ids: Vec<_> = first.set.root_keys.iter().map(|k| &k.key_id).collect();
    assert_eq!(root_ids, [&root.key_id().to_string()]);
    assert_ne!(root.key_id(), &identity);
    // Peers pin the root, not the identity key.
    assert_eq!(node.invite().key_id, root.key_id().to_string());
    assert!(
        manifest.files.contains_key(crate::node::GENESIS_FILE),
        "{:?}",
        manifest.files.keys()
    );
}

/// Runs `f` on another thread and returns what it returns, failing the
/// test when it takes longer than ten seconds (a read that never ends).
fn within_ten_seconds<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    let (send, receive) = std::sync::mpsc::channel();
    std::thread::spawn(move || send.send(f()));
    receive
        .recv_timeout(std::time::Duration::from_secs(10))
        .expect("returned within ten seconds")
}

/// A file of a backup is read only when it is a regular file of the size
/// the manifest lists: a key file replaced by a symbolic link (to an
/// endless device or a large file) or by a named pipe is refused at once,
/// naming it, and nothing is written to the target.
#[test]
fn a_backup_file_that_is_not_a_regular_file_is_refused_at_once_naming_it() {
    let (dir, backup, manifest) = backed_up();
    let key = backup.join(KEY_FILE);
    let large = dir.path().join("large");
    std::fs::write(&large, vec![7u8; 3 << 20]).unwrap();
    let fifo = dir.path().join("fifo");
    let c_path = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).unwrap();
    // SAFETY: a valid NUL-terminated path.
    assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);

    let replacements: [(&str, &dyn Fn()); 3] = [
        ("a symbolic link to /dev/zero", &|| {
            std::os::unix::fs::symlink("/dev/zero", &key).unwrap()
        }),
        ("a symbolic link to a large file", &|| {
            std::os::unix::fs::symlink(&large, &key).unwrap()
        }),
        ("a named pipe", &|| std::fs::rename(&fifo, &key).unwrap()),
    ];
    for (what, replace) in replacements {
        std::fs::remove_file(&key).unwrap();
        replace();
        let (checked, target) = (backup.clone(), dir.path().join("restored"));
        let (verified, restored) = within_ten_seconds(move || {
            let verified = verify(&checked).map(|_| ());
            let restored = restore(&checked, &target, Recovery::FromPeers).map(|_| ());
            (verified, restored)
        });
        for err in [verified.unwrap_err(), restored.unwrap_err()] {
            let message = err.to_string();
            assert!(
                matches!(err, BackupError::Damaged { .. }),
                "{what}: {message}"
            );
            assert!(
                message.contains(&key.display().to_string()),
                "{what}: {message}"
            );
            assert!(message.contains("not a regular file"), "{what}: {message}");
        }
        assert!(
            !dir.path().join("restored").exists(),
            "{what}: nothing written"
        );
    }

    // A regular key file larger than a node file can be, listed so.
    std::fs::remove_file(&key).unwrap();
    std::fs::copy(&large, &key).unwrap();
    let mut listed = manifest;
    let entry = listed.files.get_mut(KEY_FILE).unwrap();
    entry.bytes = 3 << 20;
    entry.sha256 = hex::encode(Sha256::digest(std::fs::read(&key).unwrap()));
    std::fs::write(
        backup.join(MANIFEST_FILE),
        serde_json::to_vec(&listed).unwrap(),
    )
    .unwrap();
    let err = refused_naming(dir.path(), &backup, KEY_FILE);
    assert!(err.contains("larger than"), "{err}");
}

/// A backup whose directory name is taken just before the rename (another
/// backup to the same name finished first) is refused, and leaves no
/// hidden directory behind with a manifest and copies of the keys.
#[test]
fn a_backup_that_cannot_be_renamed_into_place_leaves_nothing_behind() {
    let (node, dir) = opened_node("polar");
    let dest = dir.path().join("backup");
    let err = create_then_rename(&node, &dest, &Default::default(), || {
        std::fs::create_dir(&dest).unwrap();
        std::fs::write(dest.join("other"), b"another backup").unwrap();
    })
    .unwrap_err();
    assert!(matches!(err, BackupError::Exists(_)), "{err}");
    assert!(err.to_string().contains("already exists"), "{err}");
    assert_eq!(
        names(&dest),
        ["other"],
        "the other directory is left as it was"
    );
    let leftovers: Vec<_> = names(dir.path())
        .into_iter()
        .filter(|name| name.contains("partial"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

/// Names `cert` and `key` as the public certificate and key in the
/// configuration of the node in `data`.
fn name_public_identity(data: &Path, cert: &str, key: &str) {
    let config = data.join(CONFIG_FILE);
    let mut table: toml::Table = std::fs::read_to_string(&config).unwrap().parse().unwrap();
    let tls = [("public_cert", cert), ("public_key", key)]
        .into_iter()
        .map(|(name, value)| (name.to_owned(), toml::Value::from(value)))
        .collect();
    table.insert("tls".into(), toml::Value::Table(tls));
    std::fs::write(&config, table.to_string()).unwrap();
}

/// The operator's own certificate and key, named by the configuration as
/// files in the data directory, come back with the node (mode 0600); a
/// manifest that names an operator's file outside it, or one of the
/// node's own, is refused.
#[test]
fn an_operators_certificate_in_the_data_directory_is_carried() {
    let (dir, data) = crate::test_support::created_node("polar");
    name_public_identity(&data, "site.crt", "site.key");
    std::fs::write(data.join("site.crt"), "the operator's certificate").unwrap();
    std::fs::write(data.join("site.key"), "the operator's key").unwrap();
    let node = Node::open(&data, &BTreeMap::new()).unwrap();
    let backup = dir.path().join("backup-1");
    let manifest = create(&node, &backup, &Default::default()).unwrap();
    drop(node);
    let carried: Vec<&str> = manifest.operator_files.keys().map(String::as_str).collect();
    assert_eq!(carried, ["site.crt", "site.key"]);

    let restored = dir.path().join("restored");
    restore(&backup, &restored, Recovery::Skip).unwrap();
    for (file, text) in [
        ("site.crt", "the operator's certificate"),
        ("site.key", "the operator's key"),
    ] {
        assert_eq!(std::fs::read_to_string(restored.join(file)).unwrap(), text);
        assert_eq!(mode(&restored.join(file)), 0o600, "{file}");
    }
    Node::open(&restored, &BTreeMap::new()).unwrap();

    // One file holding both, named twice: carried once.
    let (other_dir, data) = crate::test_support::created_node("uni");
    name_public_identity(&data, "site.pem", "site.pem");
    std::fs::write(data.join("site.pem"), "certificate and key").unwrap();
    let both = Node::open(&data, &BTreeMap::new()).unwrap();
    let carried = create(&both, &other_dir.path().join("backup"), &Default::default()).unwrap();
    let names: Vec<&str> = carried.operator_files.keys().map(String::as_str).collect();
    assert_eq!(names, ["site.pem"]);

    for name in [
        "admin.sock",
        "../site.key",
        "sub/site.key",
        ".hidden",
        KEY_FILE,
        STORE_DIR,
    ] {
        let mut listed = manifest.clone();
        let entry = listed.operator_files["site.key"].clone();
        listed.operator_files.insert(name.into(), entry);
        std::fs::write(
            backup.join(MANIFEST_FILE),
            serde_json::to_vec(&listed).unwrap(),
        )
        .unwrap();
        let err = verify(&backup).unwrap_err().to_string();
        assert!(
            err.contains("not a name a restore may write"),
            "{name}: {err}"
        );
    }
}
