// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Merkle trees of the served files: one [`Verifier`] per file digest, shared by every inode
//! with that content, all sharing one bounded [`TreeCache`] of verified tree blocks.
//!
//! A file of at most one block has no tree (its root hash is its block's hash): it is hashed,
//! never looked up in the store. A tree comes from the tree store (`--tree-store`) when it
//! holds an entry for the digest
//! whose descriptor hashes to that digest; otherwise (no store, no entry, or an entry with a bad
//! descriptor) it is built from the file itself and used only if its digest equals the
//! manifest's. Stored tree blocks stay on disk and are verified up to the root hash as they are
//! used, so a corrupted level fails the reads it covers. Built trees are kept in memory, and so
//! are stored trees of at most [`STORED_TREE_IN_MEMORY_MAX`] bytes (files of up to 7.5 MiB with
//! SHA-256 and 4 KiB blocks), read once when the file is first opened: only larger stored trees
//! keep their store file open, so most files of a rootfs cost the daemon no descriptor.

use std::collections::HashMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::sync::{Arc, Mutex, MutexGuard};

use verity_manifest::{split_store_blob, store_relative_path, StoreBlobError};
use verity_merkle::{
    build_parallel, BuildError, Descriptor, FileDigest, Geometry, GeometryError, MerkleParams,
    ReadAt, TreeCache, TreeSource, Verifier, DESCRIPTOR_SIZE,
};

use crate::tree_store::TreeStore;
use crate::warn_ratelimited;

/// Where a verifier reads tree blocks from.
#[derive(Debug)]
pub(crate) enum TreeBytes {
    /// A tree store entry: descriptor, then the tree (large trees).
    Store(File),
    /// The tree of a tree store entry, read into memory (small trees).
    StoreCopy(Vec<u8>),
    /// A tree built from the file.
    Memory(Vec<u8>),
}

impl TreeSource for TreeBytes {
    type Error = io::Error;

    fn read_tree_block(&self, index: u64, out: &mut [u8]) -> io::Result<()> {
        match self {
            TreeBytes::Store(f) => {
                let off = index
                    .checked_mul(out.len() as u64)
                    .and_then(|o| o.checked_add(DESCRIPTOR_SIZE as u64))
                    .ok_or_else(|| io::Error::from_raw_os_error(libc::EOVERFLOW))?;
                f.read_exact_at(out, off)
            }
            TreeBytes::StoreCopy(t) | TreeBytes::Memory(t) => t
                .read_tree_block(index, out)
                .map_err(|e| io::Error::new(io::ErrorKind::UnexpectedEof, e)),
        }
    }
}

/// Stored trees up to this size are read into memory when their file is first opened; larger
/// ones are read block by block from their store file, which then stays open.
pub const STORED_TREE_IN_MEMORY_MAX: u64 = 64 * 1024;

/// Whether the stored tree of a file of `size` bytes keeps its store file open once loaded
/// (one descriptor for the daemon's lifetime).
pub fn stored_tree_stays_open(params: &MerkleParams, size: u64) -> bool {
    Geometry::new(params, size).map_or(true, |g| g.tree_size() > STORED_TREE_IN_MEMORY_MAX)
}

/// The verifier of one file.
pub(crate) type FileVerifier = Verifier<TreeBytes>;

/// Why no tree could be set up for a file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum TreeError {
    /// Reading the file to build its tree failed (or its size is impossible).
    #[error("cannot build the Merkle tree: {0}")]
    Build(String),
    /// The file's content does not hash to the manifest digest.
    #[error("the file's fs-verity digest is {found}, the manifest says {expected}")]
    DigestMismatch {
        /// Digest from the manifest.
        expected: Box<FileDigest>,
        /// Digest of the file.
        found: Box<FileDigest>,
    },
    /// The tree geometry is impossible.
    #[error("invalid tree geometry")]
    Geometry(#[source] GeometryError),
}

type Slot = Arc<Mutex<Option<Arc<FileVerifier>>>>;

/// All trees of the share.
#[derive(Debug)]
pub(crate) struct Trees {
    store: Option<Arc<TreeStore>>,
    cache: Arc<TreeCache>,
    slots: Mutex<HashMap<FileDigest, Slot>>,
    threads: usize,
    /// Bytes of trees held in memory, bounded by `memory_budget` (least recently used out).
    resident: Mutex<Resident>,
    memory_budget: Option<u64>,
}

/// The in-memory trees and when each was last used.
#[derive(Debug, Default)]
struct Resident {
    bytes: u64,
    clock: u64,
    trees: HashMap<FileDigest, (u64, u64)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Trees {
    /// Trees read from `store` (if any), verified blocks cached in a cache of `cache_blocks`;
    /// trees held in memory (built, or small stored ones) total at most `memory_budget` bytes
    /// when set: the least recently used are dropped (an open file keeps its own).
    pub(crate) fn new(
        store: Option<Arc<TreeStore>>,
        cache_blocks: usize,
        memory_budget: Option<u64>,
    ) -> Self {
        let threads = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
            .min(4);
        Trees {
            store,
            cache: Arc::new(TreeCache::new(cache_blocks)),
            slots: Mutex::new(HashMap::new()),
            threads,
            resident: Mutex::new(Resident::default()),
            memory_budget,
        }
    }

    /// Notes a use of the tree of `digest` (`bytes` in memory, 0 for one read from its store
    /// file) and drops the least recently used others while over the budget.
    fn touch(&self, digest: &FileDigest, bytes: u64) {
        let Some(budget) = self.memory_budget else {
            return;
        };
        let mut r = lock(&self.resident);
        r.clock += 1;
        let now = r.clock;
        match r.trees.get_mut(digest) {
            Some(e) => e.1 = now,
            None if bytes > 0 => {
                r.trees.insert(*digest, (bytes, now));
                r.bytes += bytes;
            }
            None => {}
        }
        while r.bytes > budget {
            let Some((&oldest, &(size, _))) = r
                .trees
                .iter()
                .filter(|(d, _)| *d != digest)
                .min_by_key(|(_, (_, used))| *used)
            else {
                break;
            };
            r.trees.remove(&oldest);
            r.bytes -= size;
            lock(&self.slots).remove(&oldest);
            log::debug!("tree of {oldest} dropped from memory (--tree-memory)");
        }
    }

    /// Bytes of trees held in memory under the budget (0 without one).
    #[cfg(test)]
    pub(crate) fn resident_bytes(&self) -> u64 {
        lock(&self.resident).bytes
    }

    fn slot(&self, digest: &FileDigest) -> Slot {
        lock(&self.slots).entry(*digest).or_default().clone()
    }

    /// The tree store entry of a file of `size` bytes with `digest` (descriptor then tree), open,
    /// with its descriptor checked against the digest and the size; `None` without a store or a
    /// usable entry. The tree bytes after the descriptor are not checked here.
    pub(crate) fn store_entry(&self, digest: &FileDigest, size: u64) -> Option<File> {
        let store = self.store.as_ref()?;
        let file = store.open_entry(&store_relative_path(digest)).ok()?;
        check_store_entry(&file, digest, size).ok().map(|_| file)
    }

    /// The verifier for `digest` if it is already set up.
    pub(crate) fn get(&self, digest: &FileDigest) -> Option<Arc<FileVerifier>> {
        let slot = lock(&self.slots).get(digest).cloned()?;
        let v = lock(&slot).clone();
        v
    }

    /// The verifier for a file of `size` bytes with `digest`, set up on first use from the
    /// tree store or by building the tree from `file`.
    pub(crate) fn load<R>(
        &self,
        digest: &FileDigest,
        size: u64,
        params: &MerkleParams,
        file: &R,
    ) -> Result<Arc<FileVerifier>, TreeError>
    where
        R: ReadAt<Error = io::Error> + Sync + ?Sized,
    {
        let slot = self.slot(digest);
        // Held while building: a second open of the same content waits for the first.
        let mut guard = lock(&slot);
        if let Some(v) = guard.as_ref() {
            let v = v.clone();
            drop(guard);
            self.touch(digest, 0);
            return Ok(v);
        }
        // A file of at most one block has no tree: hashing its one block costs less than
        // opening and reading a store entry (most files of a rootfs are that small).
        let stored = if size <= params.block_size() as u64 {
            None
        } else {
            self.stored(digest, size)
        };
        let (verifier, in_memory) = match stored {
            Some(v) => v,
            None => (self.build(digest, size, params, file)?, true),
        };
        let v = Arc::new(verifier);
        *guard = Some(v.clone());
        drop(guard);
        let bytes = if in_memory {
            Geometry::new(params, size).map_or(0, |g| g.tree_size())
        } else {
            0
        };
        self.touch(digest, bytes);
        Ok(v)
    }

    /// The stored tree of `digest`, if the store has a usable entry.
    fn stored(&self, digest: &FileDigest, size: u64) -> Option<(FileVerifier, bool)> {
        let store = self.store.as_ref()?;
        let relative = store_relative_path(digest);
        let path = store.path().join(&relative);
        let file = match store.open_entry(&relative) {
            Ok(f) => f,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                log::debug!("no tree store entry for {digest}; building the tree");
                return None;
            }
            Err(e) => {
                warn_ratelimited!(
                    "tree store entry {}: {e}; building the tree",
                    path.display()
                );
                return None;
            }
        };
        let checked = check_store_entry(&file, digest, size).and_then(|(desc, tree_len)| {
            let bytes = if tree_len <= STORED_TREE_IN_MEMORY_MAX {
                let mut tree = vec![0u8; usize::try_from(tree_len).unwrap_or(0)];
                file.read_exact_at(&mut tree, DESCRIPTOR_SIZE as u64)
                    .map_err(StoreEntryError::Io)?;
                TreeBytes::StoreCopy(tree)
            } else {
                TreeBytes::Store(file)
            };
            Ok((desc, bytes))
        });
        match checked {
            Ok((desc, bytes)) => {
                let in_memory = matches!(bytes, TreeBytes::StoreCopy(_));
                match Verifier::with_cache(&desc, bytes, self.cache.clone()) {
                    Ok(v) => Some((v, in_memory)),
                    Err(e) => {
                        warn_ratelimited!(
                            "tree store entry {}: {e}; building the tree",
                            path.display()
                        );
                        None
                    }
                }
            }
            Err(e) => {
                warn_ratelimited!(
                    "tree store entry {} is unusable ({e}); building the tree from the file",
                    path.display()
                );
                None
            }
        }
    }

    fn build<R>(
        &self,
        digest: &FileDigest,
        size: u64,
        params: &MerkleParams,
        file: &R,
    ) -> Result<FileVerifier, TreeError>
    where
        R: ReadAt<Error = io::Error> + Sync + ?Sized,
    {
        let tree =
            build_parallel(params.clone(), file, size, self.threads).map_err(|e| match e {
                BuildError::Geometry(g) => TreeError::Geometry(g),
                other => TreeError::Build(other.to_string()),
            })?;
        let found = tree.digest();
        if found != *digest {
            return Err(TreeError::DigestMismatch {
                expected: Box::new(*digest),
                found: Box::new(found),
            });
        }
        let desc = tree.descriptor().clone();
        Verifier::with_cache(
            &desc,
            TreeBytes::Memory(tree.into_tree_bytes()),
            self.cache.clone(),
        )
        .map_err(TreeError::Geometry)
    }
}

/// Why a tree store entry was not used.
#[derive(Debug, thiserror::Error)]
enum StoreEntryError {
    #[error("cannot read it")]
    Io(#[source] io::Error),
    #[error(transparent)]
    Blob(#[from] StoreBlobError),
    #[error("its descriptor says {found} bytes, the manifest {expected}")]
    Size { found: u64, expected: u64 },
}

/// The descriptor of a store entry and the length of the tree that follows it.
fn check_store_entry(
    file: &File,
    digest: &FileDigest,
    size: u64,
) -> Result<(Descriptor, u64), StoreEntryError> {
    let len = file.metadata().map_err(StoreEntryError::Io)?.len();
    let mut head = [0u8; DESCRIPTOR_SIZE];
    file.read_exact_at(&mut head, 0)
        .map_err(StoreEntryError::Io)?;
    let desc = split_store_blob(digest, &head, len)?;
    if desc.data_size() != size {
        return Err(StoreEntryError::Size {
            found: desc.data_size(),
            expected: size,
        });
    }
    Ok((desc, len.saturating_sub(DESCRIPTOR_SIZE as u64)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_manifest::store_blob;
    use verity_merkle::build_from_bytes;

    struct Bytes(Vec<u8>);

    impl ReadAt for Bytes {
        type Error = io::Error;
        fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(self.0.len());
            let n = buf.len().min(self.0.len() - start);
            buf[..n].copy_from_slice(&self.0[start..start + n]);
            Ok(n)
        }
    }

    #[test]
    fn trees_beyond_the_memory_budget_are_dropped_least_recently_used_first() {
        let params = MerkleParams::default();
        // 1 MiB files: a 3-block (12 KiB) tree each at 4 KiB / SHA-256.
        let files: Vec<Bytes> = (0..3u8).map(|i| Bytes(vec![i; 1 << 20])).collect();
        let digests: Vec<FileDigest> = files
            .iter()
            .map(|f| build_from_bytes(params.clone(), &f.0).unwrap().digest())
            .collect();
        let one = Geometry::new(&params, 1 << 20).unwrap().tree_size();
        let trees = Trees::new(None, 64, Some(2 * one));
        let held = trees
            .load(&digests[0], 1 << 20, &params, &files[0])
            .unwrap();
        trees
            .load(&digests[1], 1 << 20, &params, &files[1])
            .unwrap();
        // A use of the first makes the second the least recently used.
        trees
            .load(&digests[0], 1 << 20, &params, &files[0])
            .unwrap();
        trees
            .load(&digests[2], 1 << 20, &params, &files[2])
            .unwrap();
        assert_eq!(trees.resident_bytes(), 2 * one);
        assert!(trees.get(&digests[0]).is_some());
        assert!(
            trees.get(&digests[1]).is_none(),
            "the least recently used stays"
        );
        assert!(trees.get(&digests[2]).is_some());
        // A dropped tree is set up again at its next use; a held one keeps working.
        held.verify_blocks(0, &files[0].0[..4096]).unwrap();
        trees
            .load(&digests[1], 1 << 20, &params, &files[1])
            .unwrap();
        assert_eq!(trees.resident_bytes(), 2 * one);
    }

    #[test]
    fn builds_checks_and_caches() {
        let data = Bytes(vec![7u8; 50_000]);
        let params = MerkleParams::default();
        let digest = build_from_bytes(params.clone(), &data.0).unwrap().digest();
        let trees = Trees::new(None, 64, None);
        assert!(trees.get(&digest).is_none());
        let v = trees.load(&digest, 50_000, &params, &data).unwrap();
        v.verify_blocks(0, &data.0[..4096]).unwrap();
        assert!(Arc::ptr_eq(&v, &trees.get(&digest).unwrap()));
        let other = Bytes(vec![8u8; 50_000]);
        let wrong = build_from_bytes(params.clone(), &other.0).unwrap().digest();
        assert!(matches!(
            trees.load(&wrong, 50_000, &params, &data),
            Err(TreeError::DigestMismatch { .. })
        ));
    }

    #[test]
    fn store_entries_are_used_and_bad_ones_rebuilt() {
        let data = Bytes((0..200_000u32).map(|i| (i % 251) as u8).collect());
        let params = MerkleParams::default();
        let tree = build_from_bytes(params.clone(), &data.0).unwrap();
        let digest = tree.digest();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(store_relative_path(&digest));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        let mut blob = store_blob(&tree);
        std::fs::write(&path, &blob).unwrap();
        let trees = Trees::new(
            Some(Arc::new(TreeStore::open(dir.path()).unwrap())),
            64,
            None,
        );
        let v = trees.load(&digest, 200_000, &params, &data).unwrap();
        // A one-block tree is read into memory: no descriptor stays open for it.
        assert!(matches!(v.source(), TreeBytes::StoreCopy(t) if t.len() == 4096));
        v.verify_blocks(3, &data.0[3 * 4096..4 * 4096]).unwrap();
        // A corrupted descriptor: the tree is rebuilt from the file.
        blob[20] ^= 1;
        std::fs::write(&path, &blob).unwrap();
        let trees = Trees::new(
            Some(Arc::new(TreeStore::open(dir.path()).unwrap())),
            64,
            None,
        );
        let v = trees.load(&digest, 200_000, &params, &data).unwrap();
        assert!(matches!(v.source(), TreeBytes::Memory(_)));
        v.verify_blocks(3, &data.0[3 * 4096..4 * 4096]).unwrap();
    }

    #[test]
    fn large_stored_trees_are_read_from_their_file() {
        let params = MerkleParams::default();
        // 9 MiB: 2,304 data blocks, a 19-block tree (76 KiB), over the in-memory limit.
        let data = Bytes((0..9 * 1024 * 1024u32).map(|i| (i % 253) as u8).collect());
        let size = data.0.len() as u64;
        assert!(stored_tree_stays_open(&params, size));
        // 7.5 MiB: 15 level-0 blocks and a root block, 64 KiB.
        assert!(!stored_tree_stays_open(&params, 15 * 128 * 4096));
        assert!(stored_tree_stays_open(&params, 15 * 128 * 4096 + 1));
        let tree = build_from_bytes(params.clone(), &data.0).unwrap();
        let digest = tree.digest();
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(store_relative_path(&digest));
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, store_blob(&tree)).unwrap();
        let trees = Trees::new(
            Some(Arc::new(TreeStore::open(dir.path()).unwrap())),
            64,
            None,
        );
        let v = trees.load(&digest, size, &params, &data).unwrap();
        assert!(matches!(v.source(), TreeBytes::Store(_)));
        let last = size / 4096 - 1;
        let at = usize::try_from(last * 4096).unwrap();
        v.verify_blocks(last, &data.0[at..at + 4096]).unwrap();
    }
}
