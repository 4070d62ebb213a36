// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The reserved directory [`META_DIR`] at the root of a manifest-served share: what a guest
//! needs besides the pin, served by the share itself.
//!
//! ```text
//! /.verityfsd/manifest              the manifest's canonical bytes (its SHA-256 is the pin)
//! /.verityfsd/trees/ALG/HEX         descriptor + Merkle tree of each distinct file content,
//!                                   the tree store layout (`docs/manifest.md`)
//! ```
//!
//! The directory is derived from the manifest alone: its entries, sizes and listing are known
//! without asking the host, like every other name of the share. Content comes from memory (the
//! manifest, encoded when first opened and shared by concurrent opens) or from the daemon's
//! tree store (an entry is served only when its descriptor matches the digest it is named by;
//! the tree bytes are relayed as they are, and the guest verifies every block it uses against
//! the root hash). A tree the store does not have is `EIO` on OPEN.
//!
//! The directory is not listed in the share root (a listing of the share is exactly the sealed
//! tree); LOOKUP finds it, and its own directories list normally.
//!
//! The entries are synthetic [`Entry`] values (read-only, owned by root) placed after the
//! manifest's, so inode numbers and directory offsets stay one sequence.

use std::borrow::Cow;
use std::fs::File;
use std::sync::{Arc, Mutex, Weak};

use verity_manifest::{Entry, EntryKind, Manifest};
use verity_merkle::{FileDigest, Geometry, DESCRIPTOR_SIZE};

/// The reserved name at the share root.
pub const META_DIR: &str = ".verityfsd";

const MANIFEST_NAME: &str = "manifest";
const TREES_NAME: &str = "trees";

/// What a synthetic entry serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum MetaKind {
    /// A directory.
    Directory,
    /// The manifest bytes.
    Manifest,
    /// The tree store entry of a digest (`data_size` bytes of file content).
    Tree {
        /// The digest the entry is named by.
        digest: FileDigest,
        /// The size of the files with that digest.
        data_size: u64,
    },
}

/// Positions of the fixed entries; tree `k` is at `TREES_FIRST + k`.
const ROOT: usize = 0;
const MANIFEST: usize = 1;
const TREES: usize = 2;
const TREES_ALG: usize = 3;
const TREES_FIRST: usize = 4;

/// The entries of [`META_DIR`]: four fixed ones, then one per distinct file digest, derived
/// from the manifest when asked for (8 bytes each here: the manifest position of the first
/// file with that digest, sorted by digest).
#[derive(Debug)]
pub(crate) struct ShareMeta {
    fixed: [Entry; TREES_FIRST],
    /// `/.verityfsd/trees/ALG/`.
    tree_prefix: Vec<u8>,
    trees: Vec<usize>,
    manifest_bytes: Mutex<Option<Weak<[u8]>>>,
}

fn dir(path: String) -> Entry {
    Entry {
        path: path.into_bytes(),
        kind: EntryKind::Directory,
        mode: 0o555,
        uid: 0,
        gid: 0,
    }
}

fn file(path: Vec<u8>, size: u64, digest: FileDigest) -> Entry {
    Entry {
        path,
        kind: EntryKind::File { size, digest },
        mode: 0o444,
        uid: 0,
        gid: 0,
    }
}

impl ShareMeta {
    /// The directory for `manifest`; `None` when the manifest itself lists the reserved name
    /// (then the sealed tree wins and nothing is added).
    pub(crate) fn new(manifest: &Manifest) -> Option<Self> {
        let root = format!("/{META_DIR}");
        if manifest.get(root.as_bytes()).is_some() {
            log::warn!(
                "the manifest lists {root}: the share does not serve its manifest and trees there"
            );
            return None;
        }
        let mut trees: Vec<usize> = manifest
            .entries()
            .iter()
            .enumerate()
            .filter(|(_, e)| matches!(e.kind, EntryKind::File { .. }))
            .map(|(i, _)| i)
            .collect();
        trees.sort_by(|a, b| digest_bytes(manifest, *a).cmp(digest_bytes(manifest, *b)));
        trees.dedup_by(|a, b| digest_bytes(manifest, *a) == digest_bytes(manifest, *b));
        trees.shrink_to_fit();
        let alg = manifest.params().algorithm().name();
        // A placeholder digest for the manifest file (never reported: `ManifestFs` answers
        // digest requests only for manifest entries).
        let fixed = [
            dir(root.clone()),
            file(
                format!("{root}/{MANIFEST_NAME}").into_bytes(),
                manifest.encoded_len() as u64,
                *manifest.digest(),
            ),
            dir(format!("{root}/{TREES_NAME}")),
            dir(format!("{root}/{TREES_NAME}/{alg}")),
        ];
        Some(ShareMeta {
            fixed,
            tree_prefix: format!("{root}/{TREES_NAME}/{alg}/").into_bytes(),
            trees,
            manifest_bytes: Mutex::new(None),
        })
    }

    /// How many entries there are.
    pub(crate) fn len(&self) -> usize {
        TREES_FIRST + self.trees.len()
    }

    /// The digest and size of tree `k`.
    fn tree(&self, manifest: &Manifest, k: usize) -> Option<(FileDigest, u64)> {
        let e = manifest.entries().get(*self.trees.get(k)?)?;
        Some((*e.digest()?, e.size()))
    }

    /// Entry `i`: a fixed one borrowed, a tree's built from the manifest.
    pub(crate) fn entry<'a>(&'a self, manifest: &Manifest, i: usize) -> Option<Cow<'a, Entry>> {
        if let Some(e) = self.fixed.get(i) {
            return Some(Cow::Borrowed(e));
        }
        let (digest, size) = self.tree(manifest, i - TREES_FIRST)?;
        let blob =
            DESCRIPTOR_SIZE as u64 + Geometry::new(manifest.params(), size).ok()?.tree_size();
        let mut path = self.tree_prefix.clone();
        path.extend_from_slice(digest.to_hex().as_bytes());
        Some(Cow::Owned(file(path, blob, digest)))
    }

    /// What entry `i` serves.
    pub(crate) fn kind(&self, manifest: &Manifest, i: usize) -> Option<MetaKind> {
        match i {
            MANIFEST => Some(MetaKind::Manifest),
            ROOT | TREES | TREES_ALG => Some(MetaKind::Directory),
            _ => {
                let (digest, data_size) = self.tree(manifest, i - TREES_FIRST)?;
                Some(MetaKind::Tree { digest, data_size })
            }
        }
    }

    /// The position of `path` among the entries.
    pub(crate) fn position(&self, manifest: &Manifest, path: &[u8]) -> Option<usize> {
        if let Some(i) = self.fixed.iter().position(|e| e.path == path) {
            return Some(i);
        }
        let hex = path.strip_prefix(self.tree_prefix.as_slice())?;
        let want: FileDigest = std::str::from_utf8(hex)
            .ok()
            .map(|h| format!("{}:{h}", manifest.params().algorithm().name()))?
            .parse()
            .ok()?;
        if want.to_hex().as_bytes() != hex {
            // Only the canonical (lowercase) name is an entry.
            return None;
        }
        self.trees
            .binary_search_by(|&i| digest_bytes(manifest, i).cmp(want.as_bytes()))
            .ok()
            .map(|k| TREES_FIRST + k)
    }

    /// The children of directory entry `dir` at or after entry `from`, with their positions.
    pub(crate) fn children<'a>(
        &'a self,
        manifest: &'a Manifest,
        dir: usize,
        from: usize,
    ) -> impl Iterator<Item = (usize, Cow<'a, Entry>)> + 'a {
        let range = match dir {
            ROOT => MANIFEST..TREES + 1,
            TREES => TREES_ALG..TREES_ALG + 1,
            TREES_ALG => TREES_FIRST..self.len(),
            _ => 0..0,
        };
        let start = range.start.max(from);
        (start..range.end)
            .filter(move |&i| dir != ROOT || i != TREES_ALG)
            .filter_map(move |i| self.entry(manifest, i).map(|e| (i, e)))
    }

    /// The manifest's bytes, encoded once for all concurrent opens.
    pub(crate) fn manifest_bytes(&self, manifest: &Manifest) -> Arc<[u8]> {
        let mut cached = self
            .manifest_bytes
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(bytes) = cached.as_ref().and_then(Weak::upgrade) {
            return bytes;
        }
        let bytes: Arc<[u8]> = manifest.to_bytes().into();
        *cached = Some(Arc::downgrade(&bytes));
        bytes
    }
}

/// The digest bytes of manifest entry `i` (empty for a non-file).
fn digest_bytes(manifest: &Manifest, i: usize) -> &[u8] {
    manifest.entries()[i]
        .digest()
        .map_or(&[][..], |d| d.as_bytes())
}

/// The content of an open synthetic file.
#[derive(Debug)]
pub(crate) enum MetaContent {
    /// Bytes in memory (the manifest).
    Bytes(Arc<[u8]>),
    /// A tree store entry.
    Store(File),
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_merkle::{HashAlgorithm, MerkleParams};

    fn entry(path: &str, kind: EntryKind) -> Entry {
        Entry {
            path: path.as_bytes().to_vec(),
            kind,
            mode: 0o755,
            uid: 0,
            gid: 0,
        }
    }

    #[test]
    fn one_tree_per_distinct_content_under_the_algorithm() {
        let d = |b: u8| FileDigest::new(HashAlgorithm::Sha256, &[b; 32]).unwrap();
        let m = Manifest::new(
            MerkleParams::default(),
            vec![
                entry("/", EntryKind::Directory),
                entry(
                    "/a",
                    EntryKind::File {
                        size: 1 << 20,
                        digest: d(2),
                    },
                ),
                entry(
                    "/b",
                    EntryKind::File {
                        size: 5,
                        digest: d(1),
                    },
                ),
                entry(
                    "/c",
                    EntryKind::File {
                        size: 5,
                        digest: d(1),
                    },
                ),
            ],
        )
        .unwrap();
        let meta = ShareMeta::new(&m).unwrap();
        let paths: Vec<String> = (0..meta.len())
            .map(|i| String::from_utf8(meta.entry(&m, i).unwrap().path.clone()).unwrap())
            .collect();
        let h = |b: u8| hex::encode([b; 32]);
        assert_eq!(
            paths,
            [
                "/.verityfsd".to_owned(),
                "/.verityfsd/manifest".into(),
                "/.verityfsd/trees".into(),
                "/.verityfsd/trees/sha256".into(),
                format!("/.verityfsd/trees/sha256/{}", h(1)),
                format!("/.verityfsd/trees/sha256/{}", h(2)),
            ]
        );
        assert!(paths.windows(2).all(|w| w[0].as_bytes() < w[1].as_bytes()));
        for (i, p) in paths.iter().enumerate() {
            assert_eq!(meta.position(&m, p.as_bytes()), Some(i), "{p}");
        }
        assert_eq!(
            meta.position(&m, format!("/.verityfsd/trees/sha256/{}", h(3)).as_bytes()),
            None
        );
        assert_eq!(meta.position(&m, b"/.verityfsd/trees/sha256/zz"), None);
        // 1 MiB at 4 KiB/SHA-256: 256 hashes fill two level-0 blocks, plus the root block.
        assert_eq!(meta.entry(&m, 5).unwrap().size(), 256 + 3 * 4096);
        assert_eq!(meta.entry(&m, 1).unwrap().size(), m.encoded_len() as u64);
        assert_eq!(
            meta.kind(&m, 4),
            Some(MetaKind::Tree {
                digest: d(1),
                data_size: 5
            })
        );
        let children = |dir| -> Vec<usize> { meta.children(&m, dir, 0).map(|(i, _)| i).collect() };
        assert_eq!(children(ROOT), [MANIFEST, TREES]);
        assert_eq!(children(TREES), [TREES_ALG]);
        assert_eq!(children(TREES_ALG), [4, 5]);
        assert_eq!(meta.children(&m, TREES_ALG, 5).count(), 1);
        assert_eq!(&*meta.manifest_bytes(&m), &m.to_bytes()[..]);
        // A manifest that lists the name itself gets nothing added.
        let taken = Manifest::new(
            MerkleParams::default(),
            vec![
                entry("/", EntryKind::Directory),
                entry("/.verityfsd", EntryKind::Directory),
            ],
        )
        .unwrap();
        assert!(ShareMeta::new(&taken).is_none());
    }
}
