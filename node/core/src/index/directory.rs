//! The index directory: memory-mapped, except the document stores, which
//! are read with `pread` (and mapped only for reads of a megabyte or more,
//! for as long as their bytes are held).
//!
//! A search reads its postings, norms and columns over and over, and maps
//! them; it reads stored documents only for the page's hits, a block of a
//! segment's store each, seldom the same twice. Mapped, every block read
//! stayed in the node's resident memory, with the pages the kernel maps
//! around a fault: after 2,000 searches of a 10,000,000-record index,
//! 947 MiB of the 2.6 GB of stores, nearly half of the node's RSS. Read with
//! `pread`, a block is copied out of the page cache, which the kernel
//! reclaims as it reclaims any cache, and the node holds only tantivy's
//! cache of decompressed blocks. (Elasticsearch's `hybridfs` draws the
//! same line: its stored fields are read, not mapped.)

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};

use tantivy::directory::error::{
    DeleteError, LockError, OpenDirectoryError, OpenReadError, OpenWriteError,
};
use tantivy::directory::{
    Directory, DirectoryLock, FileHandle, Lock, MmapDirectory, OwnedBytes, WatchCallback,
    WatchHandle, WritePtr,
};
use tantivy::HasLen;

/// The extension of a segment's document store.
const STORE: &str = "store";

/// An [`MmapDirectory`] whose document stores are read, not mapped.
#[derive(Clone, Debug)]
pub(crate) struct IndexDirectory {
    mapped: MmapDirectory,
    root: PathBuf,
    /// Stores open now, shared by every reader of a segment: a reader
    /// opens its segment's store on each reload, and a file descriptor
    /// each would add up with the snapshots a cursor holds.
    stores: Arc<Mutex<HashMap<PathBuf, Weak<ReadFile>>>>,
}

impl IndexDirectory {
    pub fn open(root: &Path) -> Result<Self, OpenDirectoryError> {
        Ok(Self {
            mapped: MmapDirectory::open(root)?,
            root: root.to_owned(),
            stores: Arc::default(),
        })
    }

    fn store(&self, path: &Path) -> Result<Arc<ReadFile>, OpenReadError> {
        let mut stores = self.stores.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(file) = stores.get(path).and_then(Weak::upgrade) {
            return Ok(file);
        }
        let full = self.root.join(path);
        let opened = File::open(&full).and_then(|file| {
            let len = file.metadata()?.len();
            Ok(ReadFile {
                file,
                len: usize::try_from(len).map_err(io::Error::other)?,
            })
        });
        let file = Arc::new(opened.map_err(|error| match error.kind() {
            io::ErrorKind::NotFound => OpenReadError::FileDoesNotExist(path.to_owned()),
            _ => OpenReadError::wrap_io_error(error, full),
        })?);
        stores.retain(|_, file| file.strong_count() > 0);
        stores.insert(path.to_owned(), Arc::downgrade(&file));
        Ok(file)
    }
}

impl Directory for IndexDirectory {
    fn get_file_handle(&self, path: &Path) -> Result<Arc<dyn FileHandle>, OpenReadError> {
        if path.extension().is_some_and(|ext| ext == STORE) {
            return Ok(self.store(path)?);
        }
        self.mapped.get_file_handle(path)
    }

    fn delete(&self, path: &Path) -> Result<(), DeleteError> {
        self.mapped.delete(path)
    }

    fn exists(&self, path: &Path) -> Result<bool, OpenReadError> {
        self.mapped.exists(path)
    }

    fn open_write(&self, path: &Path) -> Result<WritePtr, OpenWriteError> {
        self.mapped.open_write(path)
    }

    fn atomic_read(&self, path: &Path) -> Result<Vec<u8>, OpenReadError> {
        self.mapped.atomic_read(path)
    }

    fn atomic_write(&self, path: &Path, data: &[u8]) -> io::Result<()> {
        self.mapped.atomic_write(path, data)
    }

    fn sync_directory(&self) -> io::Result<()> {
        self.mapped.sync_directory()
    }

    fn acquire_lock(&self, lock: &Lock) -> Result<DirectoryLock, LockError> {
        self.mapped.acquire_lock(lock)
    }

    fn watch(&self, callback: WatchCallback) -> tantivy::Result<WatchHandle> {
        self.mapped.watch(callback)
    }
}

/// Reads at least this long are mapped for as long as their bytes are
/// held, not copied: a merge reads a segment's whole store at once to
/// append it to the merged one (hundreds of megabytes at 10M records).
const MAP_FROM: usize = 1 << 20;

/// A file read with `pread`, or mapped for a read of [`MAP_FROM`] bytes or
/// more. Segment files never change once written.
#[derive(Debug)]
struct ReadFile {
    file: File,
    len: usize,
}

impl FileHandle for ReadFile {
    fn read_bytes(&self, range: Range<usize>) -> io::Result<OwnedBytes> {
        if range.start > range.end || range.end > self.len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("bytes {range:?} of a file of {} bytes", self.len),
            ));
        }
        if range.len() >= MAP_FROM {
            // SAFETY: segment files are written once, before any reader
            // opens them, and never changed: the mapped bytes stay as
            // they are for as long as the mapping lives.
            let mapped = unsafe {
                memmap2::MmapOptions::new()
                    .offset(range.start as u64)
                    .len(range.len())
                    .map(&self.file)?
            };
            return Ok(OwnedBytes::new(mapped));
        }
        let mut bytes = vec![0; range.len()];
        self.file.read_exact_at(&mut bytes, range.start as u64)?;
        Ok(OwnedBytes::new(bytes))
    }
}

impl HasLen for ReadFile {
    fn len(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tantivy::collector::TopDocs;
    use tantivy::query::AllQuery;
    use tantivy::schema::{Schema, Value, STORED, STRING};
    use tantivy::{doc, Index, IndexWriter, TantivyDocument};

    /// Stored documents come back whole through reads, across segments and
    /// after a merge removed the stores they were read from.
    #[test]
    fn stored_documents_are_read_through_the_file() {
        let root = tempfile::tempdir().unwrap();
        let mut builder = Schema::builder();
        let name = builder.add_text_field("name", STRING | STORED);
        let directory = IndexDirectory::open(root.path()).unwrap();
        let index = Index::create(directory.clone(), builder.build(), Default::default()).unwrap();
        let mut writer: IndexWriter = index.writer_with_num_threads(1, 15_000_000).unwrap();
        for n in 0..3_000u32 {
            writer
                .add_document(doc!(name => format!("record {n}")))
                .unwrap();
            if n % 1_000 == 999 {
                writer.commit().unwrap();
            }
        }
        let reader = index.reader().unwrap();
        let names = |searcher: &tantivy::Searcher| {
            let mut names: Vec<String> = searcher
                .search(&AllQuery, &TopDocs::with_limit(10_000))
                .unwrap()
                .into_iter()
                .map(|(_, address)| {
                    let stored: TantivyDocument = searcher.doc(address).unwrap();
                    stored.get_first(name).unwrap().as_str().unwrap().to_owned()
                })
                .collect();
            names.sort();
            names
        };
        let mut expected: Vec<String> = (0..3_000).map(|n| format!("record {n}")).collect();
        expected.sort();
        let before = reader.searcher();
        assert_eq!(before.segment_readers().len(), 3);
        assert_eq!(names(&before), expected);
        // One descriptor per store, shared by the readers of a segment.
        assert_eq!(directory.stores.lock().unwrap().len(), 3);
        let held = directory
            .stores
            .lock()
            .unwrap()
            .keys()
            .next()
            .unwrap()
            .clone();
        assert!(Arc::ptr_eq(
            &directory.store(&held).unwrap(),
            &directory.store(&held).unwrap()
        ));

        let segments = index.searchable_segment_ids().unwrap();
        writer.merge(&segments).wait().unwrap();
        writer.commit().unwrap();
        writer.wait_merging_threads().unwrap();
        reader.reload().unwrap();
        let after = reader.searcher();
        assert_eq!(after.segment_readers().len(), 1);
        assert_eq!(names(&after), expected);
        // The searcher of before still reads the stores merged away.
        assert_eq!(names(&before), expected);

        let store = directory
            .stores
            .lock()
            .unwrap()
            .values()
            .find_map(Weak::upgrade)
            .unwrap();
        let end = store.len();
        assert!(store.read_bytes(0..end).is_ok());
        assert!(store.read_bytes(end - 1..end + 1).is_err());

        // A read of a megabyte or more is mapped, at any offset, and reads
        // the same bytes as a copy.
        let path = root.path().join("large.store");
        let content: Vec<u8> = (0..3 * MAP_FROM as u32).map(|n| (n % 251) as u8).collect();
        std::fs::write(&path, &content).unwrap();
        let large = directory.store(Path::new("large.store")).unwrap();
        for range in [0..MAP_FROM, 4097..4097 + MAP_FROM + 3, 10..MAP_FROM - 1] {
            let bytes = large.read_bytes(range.clone()).unwrap();
            assert_eq!(bytes.as_slice(), &content[range]);
        }
    }
}
