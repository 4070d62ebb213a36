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

use std::collections::BTreeMap;
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

/// The synthetic entries of [`META_DIR`].
#[derive(Debug)]
pub(crate) struct ShareMeta {
    /// Sorted by path, like a manifest's entries.
    entries: Vec<Entry>,
    kinds: Vec<MetaKind>,
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

fn file(path: String, size: u64, digest: FileDigest) -> Entry {
    Entry {
        path: path.into_bytes(),
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
        let params = manifest.params();
        let digests: BTreeMap<String, (FileDigest, u64)> = manifest
            .entries()
            .iter()
            .filter_map(|e| match &e.kind {
                EntryKind::File { size, digest } => {
                    Some((hex::encode(digest.as_bytes()), (*digest, *size)))
                }
                _ => None,
            })
            .collect();
        let alg = params.algorithm().name();
        // A placeholder digest for the entries that are not trees (never reported: see
        // `ManifestFs`, which answers digest requests only for manifest entries).
        let any = *manifest.digest();
        let mut entries = vec![
            dir(root.clone()),
            file(
                format!("{root}/{MANIFEST_NAME}"),
                manifest.encoded_len() as u64,
                any,
            ),
            dir(format!("{root}/{TREES_NAME}")),
            dir(format!("{root}/{TREES_NAME}/{alg}")),
        ];
        let mut kinds = vec![
            MetaKind::Directory,
            MetaKind::Manifest,
            MetaKind::Directory,
            MetaKind::Directory,
        ];
        for (hex, (digest, size)) in digests {
            let Ok(g) = Geometry::new(params, size) else {
                continue;
            };
            let blob = DESCRIPTOR_SIZE as u64 + g.tree_size();
            entries.push(file(
                format!("{root}/{TREES_NAME}/{alg}/{hex}"),
                blob,
                digest,
            ));
            kinds.push(MetaKind::Tree {
                digest,
                data_size: size,
            });
        }
        Some(ShareMeta {
            entries,
            kinds,
            manifest_bytes: Mutex::new(None),
        })
    }

    /// The entries, sorted by path.
    pub(crate) fn entries(&self) -> &[Entry] {
        &self.entries
    }

    /// What entry `i` serves.
    pub(crate) fn kind(&self, i: usize) -> Option<MetaKind> {
        self.kinds.get(i).copied()
    }

    /// The position of `path` among the entries.
    pub(crate) fn position(&self, path: &[u8]) -> Option<usize> {
        self.entries
            .binary_search_by(|e| e.path.as_slice().cmp(path))
            .ok()
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
                        size: 5,
                        digest: d(1),
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
                        size: 1 << 20,
                        digest: d(2),
                    },
                ),
            ],
        )
        .unwrap();
        let meta = ShareMeta::new(&m).unwrap();
        let paths: Vec<String> = meta
            .entries()
            .iter()
            .map(|e| String::from_utf8(e.path.clone()).unwrap())
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
        // 1 MiB at 4 KiB/SHA-256: 256 hashes fill two level-0 blocks, plus the root block.
        assert_eq!(meta.entries()[5].size(), 256 + 3 * 4096);
        assert_eq!(meta.entries()[1].size(), m.encoded_len() as u64);
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
