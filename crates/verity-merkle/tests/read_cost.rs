// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Cost of random small reads of a huge sparse file (security.md case 40):
//! each read hashes its one data block plus at most one tree block per level
//! (fewer when ancestors are cached), never the rest of the file, and the
//! tree-block cache stays within its capacity.
//!
//! A 64 GiB all-zero (sparse) file has a tree in which every block of a level
//! is the same, except the last one of each level. [`ZeroFileTree`] serves
//! that tree block by block without building it; it is checked against the
//! real builder on small files first. The cost is counted (tree blocks read
//! from the source, each of which the verifier hashes once), never timed.

use std::cell::Cell;
use std::sync::Arc;

use verity_merkle::{
    build_from_bytes, BlockHasher, Descriptor, Geometry, HashAlgorithm, MerkleParams,
    MissingTreeBlock, TreeCache, TreeSource, Verifier, VerifyError,
};

/// The stored Merkle tree of an all-zero file, computed per level.
struct ZeroFileTree {
    geometry: Geometry,
    /// Per level: (a block that is not the level's last, the level's last block).
    levels: Vec<(Vec<u8>, Vec<u8>)>,
    root: Vec<u8>,
}

impl ZeroFileTree {
    fn new(params: &MerkleParams, data_size: u64) -> ZeroFileTree {
        let geometry = Geometry::new(params, data_size).unwrap();
        let hasher = BlockHasher::new(params);
        let bs = params.block_size();
        let d = params.digest_size();
        let per = (bs / d) as u64;
        let hash = |b: &[u8]| hasher.hash_block(b)[..d].to_vec();
        // A data block of zeros, full or not, hashes as the zero-padded block.
        let zero = hash(&vec![0u8; bs]);
        let (mut full_child, mut last_child) = (zero.clone(), zero);
        let mut children = geometry.data_blocks();
        let mut levels = Vec::new();
        for level in 0..geometry.levels() {
            let blocks = geometry.level_blocks(level);
            let full = full_child.repeat(per as usize);
            let in_last = (children - (blocks - 1) * per) as usize;
            let mut last = full_child.repeat(in_last - 1);
            last.extend_from_slice(&last_child);
            last.resize(bs, 0);
            (full_child, last_child) = (hash(&full), hash(&last));
            levels.push((full, last));
            children = blocks;
        }
        ZeroFileTree {
            geometry,
            levels,
            root: last_child,
        }
    }

    /// All tree blocks in stored order (small files only).
    fn bytes(&self) -> Vec<u8> {
        let bs = self.geometry.block_size() as usize;
        let mut out = vec![0u8; self.geometry.tree_size() as usize];
        for (i, block) in out.chunks_mut(bs).enumerate() {
            self.read_tree_block(i as u64, block).unwrap();
        }
        out
    }
}

impl TreeSource for ZeroFileTree {
    type Error = MissingTreeBlock;

    fn read_tree_block(&self, index: u64, out: &mut [u8]) -> Result<(), Self::Error> {
        let g = &self.geometry;
        let level = (0..g.levels())
            .find(|&l| (g.level_start(l)..g.level_start(l) + g.level_blocks(l)).contains(&index))
            .ok_or(MissingTreeBlock(index))?;
        let (full, last) = &self.levels[level];
        let is_last = index - g.level_start(level) == g.level_blocks(level) - 1;
        out.copy_from_slice(if is_last { last } else { full });
        Ok(())
    }
}

/// A tree source that counts the blocks read through it.
struct Counting<S> {
    inner: S,
    reads: Cell<u64>,
}

impl<S: TreeSource> TreeSource for Counting<S> {
    type Error = S::Error;

    fn read_tree_block(&self, index: u64, out: &mut [u8]) -> Result<(), Self::Error> {
        self.reads.set(self.reads.get() + 1);
        self.inner.read_tree_block(index, out)
    }
}

/// SplitMix64: a reproducible sequence of offsets.
fn next(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

#[test]
fn the_zero_file_tree_equals_the_built_tree() {
    let p1k = MerkleParams::new(HashAlgorithm::Sha256, 1024, b"").unwrap();
    let p4k = MerkleParams::default();
    let p512 = MerkleParams::new(HashAlgorithm::Sha512, 1024, b"salt").unwrap();
    for (params, size) in [
        (&p1k, 1025),
        (&p1k, 32 * 1024),
        (&p1k, 33 * 1024 - 7),
        (&p1k, 32 * 32 * 1024 + 1),
        (&p1k, 3 * 32 * 32 * 1024 + 5000),
        (&p4k, 129 * 4096 + 5),
        (&p512, 16 * 16 * 1024 + 3),
    ] {
        let built = build_from_bytes(params.clone(), &vec![0u8; size]).unwrap();
        let zero = ZeroFileTree::new(params, size as u64);
        assert_eq!(zero.root, built.root_hash(), "root, size {size}");
        assert_eq!(zero.bytes(), built.tree_bytes(), "tree, size {size}");
    }
}

/// Random 1-byte reads of a 64 GiB sparse file (4 KiB blocks, SHA-256: four
/// tree levels, 132,105 tree blocks) through a cache far smaller than the tree.
#[test]
fn random_small_reads_of_a_64_gib_file_cost_one_tree_path() {
    const SIZE: u64 = 64 << 30;
    const CAPACITY: usize = 256;
    let params = MerkleParams::default();
    let tree = ZeroFileTree::new(&params, SIZE);
    let levels = tree.geometry.levels() as u64;
    assert_eq!(levels, 4);
    assert!(tree.geometry.tree_blocks() > 100 * CAPACITY as u64);
    let descriptor = Descriptor::new(params, SIZE, &tree.root.clone());
    let cache = Arc::new(TreeCache::new(CAPACITY));
    let source = Counting {
        inner: tree,
        reads: Cell::new(0),
    };
    let verifier = Verifier::with_cache(&descriptor, source, cache.clone()).unwrap();
    let bs = verifier.geometry().block_size();
    let zeros = vec![0u8; bs as usize];
    let mut state = 40;
    let mut total = 0;
    for i in 0..5000 {
        // A 1-byte read at a random offset widens to its one block.
        let block = next(&mut state) % SIZE / bs;
        let before = verifier.source().reads.get();
        verifier.verify_blocks(block, &zeros).unwrap();
        let read = verifier.source().reads.get() - before;
        assert!(
            read <= levels,
            "read {i} (block {block}) hashed {read} tree blocks, depth is {levels}"
        );
        assert!(cache.len() <= CAPACITY);
        // The same block again: its path is cached, nothing is read.
        let before = verifier.source().reads.get();
        verifier.verify_blocks(block, &zeros).unwrap();
        assert_eq!(
            verifier.source().reads.get(),
            before,
            "block {block} re-read"
        );
        total += read;
    }
    // Most reads share the upper levels: far fewer than depth x reads.
    assert!(total < 5000 * levels, "{total} tree blocks for 5000 reads");
    // The counted blocks are really checked: a non-zero byte is refused.
    let mut bad = zeros.clone();
    bad[100] = 1;
    assert!(matches!(
        verifier.verify_blocks(12_345_678, &bad),
        Err(VerifyError::DataMismatch { block: 12_345_678 })
    ));
    // The last (partial-level) blocks of the file verify too.
    let last = verifier.geometry().data_blocks() - 1;
    verifier.verify_blocks(last, &zeros).unwrap();
}
