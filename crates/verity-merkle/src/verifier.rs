// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Block verification against a trusted descriptor (spec §1.7, §5.3).
//!
//! The descriptor (and so the root hash) is trusted; tree blocks come from an
//! untrusted [`TreeSource`] and are verified up to the root, or up to the
//! first block already verified and cached, before any of their hashes is
//! used. Data blocks are hashed on every call: only tree blocks are cached.

use std::sync::Arc;

use crate::cache::TreeCache;
use crate::descriptor::Descriptor;
use crate::geometry::{Geometry, GeometryError};
use crate::hash::BlockHasher;
use crate::params::MAX_DIGEST_SIZE;

/// Supplies blocks of the stored tree (root level first, spec §1.5).
pub trait TreeSource {
    /// The source's error type.
    type Error;
    /// Fills `out` (one Merkle block) with tree block `index` of the stream.
    fn read_tree_block(&self, index: u64, out: &mut [u8]) -> Result<(), Self::Error>;
}

/// Error of an in-memory tree that is shorter than the geometry says.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("tree block {0} is missing from the stored tree")]
pub struct MissingTreeBlock(pub u64);

impl TreeSource for [u8] {
    type Error = MissingTreeBlock;

    fn read_tree_block(&self, index: u64, out: &mut [u8]) -> Result<(), Self::Error> {
        let start = usize::try_from(index)
            .ok()
            .and_then(|i| i.checked_mul(out.len()))
            .ok_or(MissingTreeBlock(index))?;
        let block = self
            .get(start..start.saturating_add(out.len()))
            .ok_or(MissingTreeBlock(index))?;
        out.copy_from_slice(block);
        Ok(())
    }
}

impl<T: TreeSource + ?Sized> TreeSource for Arc<T> {
    type Error = T::Error;

    fn read_tree_block(&self, index: u64, out: &mut [u8]) -> Result<(), Self::Error> {
        (**self).read_tree_block(index, out)
    }
}

impl TreeSource for Vec<u8> {
    type Error = MissingTreeBlock;

    fn read_tree_block(&self, index: u64, out: &mut [u8]) -> Result<(), Self::Error> {
        self.as_slice().read_tree_block(index, out)
    }
}

/// Why a block failed verification.
#[derive(Debug, thiserror::Error)]
pub enum VerifyError<E> {
    /// A data block's hash differs from the tree.
    #[error("data block {block} does not match the Merkle tree")]
    DataMismatch {
        /// Data block index.
        block: u64,
    },
    /// A tree block's hash differs from its parent or the root hash.
    #[error("tree block {tree_block} (level {level}) does not match its parent")]
    TreeMismatch {
        /// Tree level (0 = just above the data).
        level: usize,
        /// Block index in the stored tree.
        tree_block: u64,
    },
    /// A data block has the wrong length (a truncated file).
    #[error("data block {block} is {got} bytes, expected {expected}")]
    WrongLength {
        /// Data block index.
        block: u64,
        /// Bytes supplied.
        got: usize,
        /// Bytes the verified size implies.
        expected: usize,
    },
    /// The block lies past the verified end of the file.
    #[error("data block {block} is past the end of the verified file ({data_size} bytes)")]
    PastEnd {
        /// Data block index.
        block: u64,
        /// Verified file size.
        data_size: u64,
    },
    /// The file's size differs from the verified size (truncated or extended).
    #[error("file is {actual} bytes, the verified size is {expected}")]
    SizeMismatch {
        /// Size found.
        actual: u64,
        /// Size in the descriptor.
        expected: u64,
    },
    /// Reading a tree block failed.
    #[error("reading tree block {tree_block} failed")]
    TreeSource {
        /// Block index in the stored tree.
        tree_block: u64,
        /// The source's error.
        #[source]
        source: E,
    },
}

/// Verifies data blocks of one file against its trusted descriptor.
#[derive(Debug)]
pub struct Verifier<S> {
    geometry: Geometry,
    hasher: BlockHasher,
    root: [u8; MAX_DIGEST_SIZE],
    digest_size: usize,
    source: S,
    cache: Arc<TreeCache>,
    tree_id: u64,
}

impl<S: TreeSource> Verifier<S> {
    /// A verifier with a private cache of default size.
    pub fn new(descriptor: &Descriptor, source: S) -> Result<Self, GeometryError> {
        Self::with_cache(descriptor, source, Arc::new(TreeCache::default()))
    }

    /// A verifier that keeps its verified tree blocks in a shared `cache`.
    pub fn with_cache(
        descriptor: &Descriptor,
        source: S,
        cache: Arc<TreeCache>,
    ) -> Result<Self, GeometryError> {
        let params = descriptor.params();
        let mut root = [0u8; MAX_DIGEST_SIZE];
        root[..params.digest_size()].copy_from_slice(descriptor.root_hash());
        Ok(Verifier {
            geometry: Geometry::new(params, descriptor.data_size())?,
            hasher: BlockHasher::new(params),
            root,
            digest_size: params.digest_size(),
            source,
            tree_id: cache.new_tree_id(),
            cache,
        })
    }

    /// The tree's geometry.
    pub fn geometry(&self) -> &Geometry {
        &self.geometry
    }

    /// The tree source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// Checks a file size against the verified size.
    pub fn check_size(&self, actual: u64) -> Result<(), VerifyError<S::Error>> {
        let expected = self.geometry.data_size();
        if actual == expected {
            Ok(())
        } else {
            Err(VerifyError::SizeMismatch { actual, expected })
        }
    }

    /// Verifies data block `index`; `data` is its unpadded content.
    pub fn verify_block(&self, index: u64, data: &[u8]) -> Result<(), VerifyError<S::Error>> {
        self.verify_blocks(index, data)
    }

    /// Verifies consecutive data blocks starting at `first`; `data` holds them
    /// back to back (the file's last block may be short).
    pub fn verify_blocks(&self, first: u64, data: &[u8]) -> Result<(), VerifyError<S::Error>> {
        let bs = self.geometry.block_size() as usize;
        let d = self.digest_size;
        let mut rest = data;
        let mut index = first;
        // The level-0 tree block in use, with its index in level 0.
        let mut leaf: Option<(u64, Arc<[u8]>)> = None;
        while !rest.is_empty() || index == first {
            let expected = self
                .geometry
                .data_block_len(index)
                .ok_or(VerifyError::PastEnd {
                    block: index,
                    data_size: self.geometry.data_size(),
                })?;
            let got = rest.len().min(bs);
            if got != expected {
                return Err(VerifyError::WrongLength {
                    block: index,
                    got,
                    expected,
                });
            }
            let hash = self.hasher.hash_block(&rest[..got]);
            let matches = if self.geometry.levels() == 0 {
                hash[..d] == self.root[..d]
            } else {
                let parent = self.geometry.parent_index(index);
                let block = match &leaf {
                    Some((i, b)) if *i == parent => b.clone(),
                    _ => self.verified_tree_block(0, parent)?,
                };
                let off = self.geometry.hash_location(0, index).offset;
                let ok = hash[..d] == block[off..off + d];
                leaf = Some((parent, block));
                ok
            };
            if !matches {
                return Err(VerifyError::DataMismatch { block: index });
            }
            rest = &rest[got..];
            index += 1;
        }
        Ok(())
    }

    /// Returns tree block `index` of `level`, verified up to the root or to
    /// a cached ancestor.
    fn verified_tree_block(
        &self,
        level: usize,
        index: u64,
    ) -> Result<Arc<[u8]>, VerifyError<S::Error>> {
        let tree_block = self.geometry.level_start(level) + index;
        if let Some(b) = self.cache.get(self.tree_id, tree_block) {
            return Ok(b);
        }
        // Read straight into the block the cache will hold: one allocation, no copy.
        let mut block: Arc<[u8]> =
            std::iter::repeat_n(0u8, self.geometry.block_size() as usize).collect();
        let buf = Arc::get_mut(&mut block).expect("a new Arc has no other owner");
        self.source
            .read_tree_block(tree_block, buf)
            .map_err(|source| VerifyError::TreeSource { tree_block, source })?;
        let d = self.digest_size;
        let hash = self.hasher.hash_block(buf);
        let ok = if level + 1 == self.geometry.levels() {
            hash[..d] == self.root[..d]
        } else {
            let parent = self.verified_tree_block(level + 1, self.geometry.parent_index(index))?;
            let off = self.geometry.hash_location(level + 1, index).offset;
            hash[..d] == parent[off..off + d]
        };
        if !ok {
            return Err(VerifyError::TreeMismatch { level, tree_block });
        }
        Ok(self.cache.insert(self.tree_id, tree_block, block))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builder::build_from_bytes;
    use crate::params::{HashAlgorithm, MerkleParams};

    fn data(n: usize) -> Vec<u8> {
        (0..n).map(|i| ((31 * (i % 251) + 7) % 251) as u8).collect()
    }

    fn setup(n: usize, p: MerkleParams) -> (Vec<u8>, Descriptor, Vec<u8>) {
        let input = data(n);
        let t = build_from_bytes(p, &input).unwrap();
        (input, t.descriptor().clone(), t.into_tree_bytes())
    }

    #[test]
    fn accepts_every_block_of_a_good_file() {
        for n in [1usize, 100, 4096, 4097, 1 << 20, (1 << 20) + 1, 3_000_000] {
            let (input, desc, tree) = setup(n, MerkleParams::default());
            let v = Verifier::new(&desc, tree).unwrap();
            v.verify_blocks(0, &input).unwrap();
            for (i, block) in input.chunks(4096).enumerate() {
                v.verify_block(i as u64, block).unwrap();
            }
            v.check_size(n as u64).unwrap();
            assert!(v.check_size(n as u64 + 1).is_err());
        }
    }

    #[test]
    fn empty_file_has_no_blocks() {
        let (_, desc, tree) = setup(0, MerkleParams::default());
        let v = Verifier::new(&desc, tree).unwrap();
        assert!(matches!(
            v.verify_blocks(0, &[]),
            Err(VerifyError::PastEnd { block: 0, .. })
        ));
        v.check_size(0).unwrap();
    }

    #[test]
    fn detects_corrupt_data_and_wrong_lengths() {
        let (mut input, desc, tree) = setup(10_000, MerkleParams::default());
        let v = Verifier::new(&desc, tree).unwrap();
        input[5000] ^= 1;
        assert!(matches!(
            v.verify_blocks(0, &input),
            Err(VerifyError::DataMismatch { block: 1 })
        ));
        v.verify_block(0, &input[..4096]).unwrap();
        assert!(matches!(
            v.verify_block(2, &input[8192..9000]),
            Err(VerifyError::WrongLength { .. })
        ));
        assert!(matches!(
            v.verify_block(2, &[0; 4096]),
            Err(VerifyError::WrongLength { .. })
        ));
        assert!(matches!(
            v.verify_block(3, &[0; 1]),
            Err(VerifyError::PastEnd { .. })
        ));
    }

    #[test]
    fn detects_corrupt_tree_at_every_level() {
        let p = MerkleParams::new(HashAlgorithm::Sha256, 1024, b"").unwrap();
        let (input, desc, tree) = setup(3_000_000, p);
        let g = Geometry::new(desc.params(), desc.data_size()).unwrap();
        assert!(g.levels() >= 3);
        for level in 0..g.levels() {
            let mut bad = tree.clone();
            let at = (g.level_start(level) as usize) * 1024 + 5;
            bad[at] ^= 0x80;
            let v = Verifier::new(&desc, bad).unwrap();
            assert!(
                matches!(v.verify_blocks(0, &input), Err(VerifyError::TreeMismatch { level: l, .. }) if l == level),
                "level {level}"
            );
        }
        let v = Verifier::new(&desc, tree[..tree.len() - 1024].to_vec()).unwrap();
        assert!(matches!(
            v.verify_blocks(0, &input),
            Err(VerifyError::TreeSource { .. })
        ));
    }
}
