// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The salted block-hash primitive `HB(x) = HASH(padded_salt || x)` (spec §1.2).

use sha2::{Digest, Sha256, Sha512};

use crate::params::{HashAlgorithm, MerkleParams, MAX_BLOCK_SIZE, MAX_DIGEST_SIZE};

/// Zero bytes used to pad a short last block without copying it.
static ZEROS: [u8; MAX_BLOCK_SIZE] = [0; MAX_BLOCK_SIZE];

#[derive(Clone)]
enum State {
    Sha256(Sha256),
    Sha512(Sha512),
}

/// Hashes Merkle blocks with the salt of a [`MerkleParams`].
///
/// The padded salt is exactly one compression-function block, so its state is
/// computed once and cloned for every block.
#[derive(Clone)]
pub struct BlockHasher {
    initial: State,
    block_size: usize,
    digest_size: usize,
}

impl std::fmt::Debug for BlockHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockHasher")
            .field("block_size", &self.block_size)
            .field("digest_size", &self.digest_size)
            .finish()
    }
}

impl BlockHasher {
    /// Makes a hasher for `params`.
    pub fn new(params: &MerkleParams) -> Self {
        let salt = params.salt();
        let mut padded = Vec::new();
        if !salt.is_empty() {
            // Pad to the compression block size (64 or 128), never to the Merkle block size.
            let unit = params.algorithm().compression_block_size();
            padded.extend_from_slice(salt);
            padded.resize(salt.len().div_ceil(unit) * unit, 0);
        }
        let initial = match params.algorithm() {
            HashAlgorithm::Sha256 => {
                let mut h = Sha256::new();
                h.update(&padded);
                State::Sha256(h)
            }
            HashAlgorithm::Sha512 => {
                let mut h = Sha512::new();
                h.update(&padded);
                State::Sha512(h)
            }
        };
        BlockHasher {
            initial,
            block_size: params.block_size(),
            digest_size: params.digest_size(),
        }
    }

    /// Digest size in bytes.
    pub fn digest_size(&self) -> usize {
        self.digest_size
    }

    /// Hashes `block` (at most one Merkle block; a shorter one is zero-padded
    /// to the block size) into `out[..digest_size]`.
    ///
    /// # Panics
    /// If `block` is longer than the block size or `out` shorter than the digest:
    /// both are programming errors, never input-dependent.
    pub fn hash_block_into(&self, block: &[u8], out: &mut [u8]) {
        assert!(
            block.len() <= self.block_size,
            "block longer than the Merkle block size"
        );
        let pad = &ZEROS[..self.block_size - block.len()];
        match &self.initial {
            State::Sha256(s) => {
                let mut h = s.clone();
                h.update(block);
                h.update(pad);
                out[..32].copy_from_slice(&h.finalize());
            }
            State::Sha512(s) => {
                let mut h = s.clone();
                h.update(block);
                h.update(pad);
                out[..64].copy_from_slice(&h.finalize());
            }
        }
    }

    /// Hashes one block and returns the digest in a fixed buffer (first
    /// `digest_size` bytes are valid).
    pub fn hash_block(&self, block: &[u8]) -> [u8; MAX_DIGEST_SIZE] {
        let mut out = [0u8; MAX_DIGEST_SIZE];
        self.hash_block_into(block, &mut out);
        out
    }
}

/// Unsalted hash of arbitrary bytes with `alg` (used for the descriptor digest).
pub(crate) fn plain_hash(alg: HashAlgorithm, data: &[u8]) -> [u8; MAX_DIGEST_SIZE] {
    let mut out = [0u8; MAX_DIGEST_SIZE];
    match alg {
        HashAlgorithm::Sha256 => out[..32].copy_from_slice(&Sha256::digest(data)),
        HashAlgorithm::Sha512 => out[..64].copy_from_slice(&Sha512::digest(data)),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unsalted_block_hash_is_plain_hash_of_padded_block() {
        let p = MerkleParams::default();
        let h = BlockHasher::new(&p);
        let mut padded = vec![0u8; 4096];
        padded[..3].copy_from_slice(b"abc");
        assert_eq!(h.hash_block(b"abc")[..32], Sha256::digest(&padded)[..]);
    }

    #[test]
    fn salt_is_padded_to_compression_block() {
        let p = MerkleParams::new(HashAlgorithm::Sha512, 1024, &[0, 0x11, 0x22, 0x33]).unwrap();
        let h = BlockHasher::new(&p);
        let mut input = vec![0u8; 128 + 1024];
        input[..4].copy_from_slice(&[0, 0x11, 0x22, 0x33]);
        input[128] = 7;
        assert_eq!(h.hash_block(&[7])[..], Sha512::digest(&input)[..]);
    }
}
