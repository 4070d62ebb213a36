// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Tree geometry: how many levels and blocks a file of a given size has, and
//! where the hash of a block is stored (spec §1.3, §1.5, §1.7).

use crate::params::MerkleParams;

/// Most levels a tree may have. fsverity-utils allows 64; with the smallest
/// arity (16) that still covers every `u64` file size.
pub const MAX_LEVELS: usize = 64;

/// Errors computing a tree's geometry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GeometryError {
    /// The tree would need more than [`MAX_LEVELS`] levels or overflow `u64`.
    #[error("file of {0} bytes is too large for a Merkle tree")]
    TooLarge(u64),
}

/// The shape of the Merkle tree of a file of `data_size` bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Geometry {
    data_size: u64,
    block_size: u64,
    log_block_size: u32,
    log_arity: u32,
    digest_size: usize,
    /// Blocks per level; index 0 is the level right above the data.
    level_blocks: Vec<u64>,
    /// Offset of each level in the stored tree, in blocks (root level at 0).
    level_start: Vec<u64>,
}

/// Where the hash of a child block is stored in the tree.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HashLocation {
    /// Index of the tree block in the stored tree stream, in blocks.
    pub tree_block: u64,
    /// Byte offset of the hash inside that block.
    pub offset: usize,
}

impl Geometry {
    /// Computes the geometry of a `data_size`-byte file under `params`.
    pub fn new(params: &MerkleParams, data_size: u64) -> Result<Self, GeometryError> {
        let block_size = params.block_size() as u64;
        let arity = params.arity() as u64;
        let mut level_blocks = Vec::new();
        let mut blocks = data_size.div_ceil(block_size);
        while blocks > 1 {
            blocks = blocks.div_ceil(arity);
            level_blocks.push(blocks);
            if level_blocks.len() > MAX_LEVELS {
                return Err(GeometryError::TooLarge(data_size));
            }
        }
        let mut level_start = vec![0u64; level_blocks.len()];
        let mut offset = 0u64;
        for level in (0..level_blocks.len()).rev() {
            level_start[level] = offset;
            offset = offset
                .checked_add(level_blocks[level])
                .ok_or(GeometryError::TooLarge(data_size))?;
        }
        offset
            .checked_mul(block_size)
            .ok_or(GeometryError::TooLarge(data_size))?;
        Ok(Geometry {
            data_size,
            block_size,
            log_block_size: u32::from(params.log_block_size()),
            log_arity: params.arity().trailing_zeros(),
            digest_size: params.digest_size(),
            level_blocks,
            level_start,
        })
    }

    /// File size in bytes.
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    /// Merkle block size in bytes.
    pub fn block_size(&self) -> u64 {
        self.block_size
    }

    /// Number of data blocks (`ceil(size / block_size)`).
    pub fn data_blocks(&self) -> u64 {
        self.data_size.div_ceil(self.block_size)
    }

    /// Number of tree levels (0 for files of at most one block).
    pub fn levels(&self) -> usize {
        self.level_blocks.len()
    }

    /// Blocks in `level` (0 = just above the data).
    pub fn level_blocks(&self, level: usize) -> u64 {
        self.level_blocks[level]
    }

    /// Start of `level` in the stored tree, in blocks.
    pub fn level_start(&self, level: usize) -> u64 {
        self.level_start[level]
    }

    /// Total blocks in the stored tree.
    pub fn tree_blocks(&self) -> u64 {
        self.level_blocks.iter().sum()
    }

    /// Size of the stored tree in bytes.
    pub fn tree_size(&self) -> u64 {
        // Checked in `new`.
        self.tree_blocks() * self.block_size
    }

    /// Length of data block `index` before padding (the last one may be short).
    /// Returns `None` past the end of the file.
    pub fn data_block_len(&self, index: u64) -> Option<usize> {
        let start = index.checked_mul(self.block_size)?;
        if start >= self.data_size {
            return None;
        }
        let len = (self.data_size - start).min(self.block_size);
        // len <= block_size <= 65536
        Some(len as usize)
    }

    /// Where the hash of the block `index` of level `level - 1` is stored,
    /// `level` being a tree level; level 0's children are the data blocks.
    pub fn hash_location(&self, level: usize, index: u64) -> HashLocation {
        let arity_mask = (1u64 << self.log_arity) - 1;
        HashLocation {
            tree_block: self.level_start[level] + (index >> self.log_arity),
            // (index & mask) < arity, times digest_size <= block_size: fits.
            offset: ((index & arity_mask) as usize) * self.digest_size,
        }
    }

    /// Index, within its level, of the tree block that holds the hash of
    /// `index` (of the level below); the parent index in tree terms.
    pub fn parent_index(&self, index: u64) -> u64 {
        index >> self.log_arity
    }

    /// log2 of the block size.
    pub fn log_block_size(&self) -> u32 {
        self.log_block_size
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::HashAlgorithm;

    fn tree_size(alg: HashAlgorithm, bs: u64, size: u64) -> u64 {
        Geometry::new(&MerkleParams::new(alg, bs, b"").unwrap(), size)
            .unwrap()
            .tree_size()
    }

    #[test]
    fn tree_sizes_match_fsverity_utils() {
        use HashAlgorithm::*;
        // Table from the vectors' README (affine251 inputs).
        let table: &[(u64, [u64; 5])] = &[
            (0, [0, 0, 0, 0, 0]),
            (100, [0, 0, 0, 0, 0]),
            (4096, [0, 1024, 0, 0, 1024]),
            (4097, [4096, 1024, 0, 4096, 1024]),
            (65536, [4096, 3072, 0, 4096, 5120]),
            (1048576, [12288, 33792, 65536, 20480, 70656]),
            (1048577, [16384, 36864, 65536, 24576, 72704]),
            (5000000, [45056, 162816, 65536, 86016, 336896]),
            (33554433, [270336, 1086464, 65536, 544768, 2240512]),
        ];
        for (size, want) in table {
            let got = [
                tree_size(Sha256, 4096, *size),
                tree_size(Sha256, 1024, *size),
                tree_size(Sha256, 65536, *size),
                tree_size(Sha512, 4096, *size),
                tree_size(Sha512, 1024, *size),
            ];
            assert_eq!(&got, want, "size {size}");
        }
    }

    #[test]
    fn root_level_comes_first() {
        let g = Geometry::new(&MerkleParams::default(), 1 << 20).unwrap();
        assert_eq!(g.levels(), 2);
        assert_eq!(g.level_start(1), 0);
        assert_eq!(g.level_start(0), 1);
        assert_eq!(
            g.hash_location(0, 129),
            HashLocation {
                tree_block: 2,
                offset: 32
            }
        );
        assert_eq!(
            g.hash_location(1, 1),
            HashLocation {
                tree_block: 0,
                offset: 32
            }
        );
    }

    #[test]
    fn huge_sizes_do_not_overflow() {
        let g = Geometry::new(&MerkleParams::default(), u64::MAX).unwrap();
        assert!(g.levels() <= 8);
        let p = MerkleParams::new(HashAlgorithm::Sha512, 1024, b"").unwrap();
        assert!(Geometry::new(&p, u64::MAX).is_ok());
    }

    #[test]
    fn data_block_lengths() {
        let g = Geometry::new(&MerkleParams::default(), 4097).unwrap();
        assert_eq!(g.data_blocks(), 2);
        assert_eq!(g.data_block_len(0), Some(4096));
        assert_eq!(g.data_block_len(1), Some(1));
        assert_eq!(g.data_block_len(2), None);
        assert_eq!(g.data_block_len(u64::MAX), None);
    }
}
