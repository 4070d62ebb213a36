// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `struct fsverity_descriptor`: 256 bytes, little-endian (spec §2.1, §2.4).

use crate::digest::FileDigest;
use crate::hash::plain_hash;
use crate::params::{HashAlgorithm, MerkleParams, ParamsError, MAX_DIGEST_SIZE, MAX_SALT_SIZE};

/// Size of the descriptor in bytes.
pub const DESCRIPTOR_SIZE: usize = 256;

// Field offsets (spec §2.1).
const OFF_VERSION: usize = 0;
const OFF_HASH_ALG: usize = 1;
const OFF_LOG_BLOCKSIZE: usize = 2;
const OFF_SALT_SIZE: usize = 3;
const OFF_SIG_SIZE: usize = 4;
const OFF_DATA_SIZE: usize = 8;
const OFF_ROOT_HASH: usize = 16;
const OFF_SALT: usize = 80;
const OFF_RESERVED: usize = 112;

/// Errors decoding a descriptor.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DescriptorError {
    /// Not exactly 256 bytes.
    #[error("descriptor is {0} bytes, expected 256")]
    WrongLength(usize),
    /// `version` is not 1.
    #[error("descriptor version {0} is not 1")]
    BadVersion(u8),
    /// Unknown `hash_algorithm`.
    #[error("descriptor hash algorithm {0} is unknown")]
    BadAlgorithm(u8),
    /// Block size or salt size out of range.
    #[error("descriptor parameters are invalid")]
    BadParams(#[source] ParamsError),
    /// A reserved or padding byte is not zero (non-canonical descriptor).
    #[error("descriptor byte {0} must be zero")]
    NonZeroPadding(usize),
}

/// A decoded, canonical fs-verity descriptor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Descriptor {
    params: MerkleParams,
    data_size: u64,
    root_hash: [u8; MAX_DIGEST_SIZE],
}

impl Descriptor {
    /// Builds a descriptor; `root_hash` must be `params.digest_size()` bytes.
    ///
    /// # Panics
    /// If `root_hash` has the wrong length (a programming error).
    pub fn new(params: MerkleParams, data_size: u64, root_hash: &[u8]) -> Self {
        assert_eq!(root_hash.len(), params.digest_size(), "root hash length");
        let mut r = [0u8; MAX_DIGEST_SIZE];
        r[..root_hash.len()].copy_from_slice(root_hash);
        Descriptor {
            params,
            data_size,
            root_hash: r,
        }
    }

    /// The Merkle tree parameters.
    pub fn params(&self) -> &MerkleParams {
        &self.params
    }

    /// The file size the descriptor covers.
    pub fn data_size(&self) -> u64 {
        self.data_size
    }

    /// The root hash (`digest_size` bytes).
    pub fn root_hash(&self) -> &[u8] {
        &self.root_hash[..self.params.digest_size()]
    }

    /// The 256 descriptor bytes, with `sig_size` zero, as fs-verity hashes them.
    pub fn to_bytes(&self) -> [u8; DESCRIPTOR_SIZE] {
        let mut b = [0u8; DESCRIPTOR_SIZE];
        b[OFF_VERSION] = 1;
        b[OFF_HASH_ALG] = self.params.algorithm().id();
        b[OFF_LOG_BLOCKSIZE] = self.params.log_block_size();
        // MerkleParams guarantees salt.len() <= 32.
        b[OFF_SALT_SIZE] = self.params.salt().len() as u8;
        // sig_size (4..8) stays zero.
        b[OFF_DATA_SIZE..OFF_DATA_SIZE + 8].copy_from_slice(&self.data_size.to_le_bytes());
        b[OFF_ROOT_HASH..OFF_ROOT_HASH + MAX_DIGEST_SIZE].copy_from_slice(&self.root_hash);
        let salt = self.params.salt();
        b[OFF_SALT..OFF_SALT + salt.len()].copy_from_slice(salt);
        b
    }

    /// Decodes and validates a descriptor, accepting only the canonical form
    /// that the kernel and fsverity-utils produce (spec §2.4).
    pub fn from_bytes(b: &[u8]) -> Result<Self, DescriptorError> {
        if b.len() != DESCRIPTOR_SIZE {
            return Err(DescriptorError::WrongLength(b.len()));
        }
        if b[OFF_VERSION] != 1 {
            return Err(DescriptorError::BadVersion(b[OFF_VERSION]));
        }
        let alg = HashAlgorithm::from_id(b[OFF_HASH_ALG])
            .ok_or(DescriptorError::BadAlgorithm(b[OFF_HASH_ALG]))?;
        let log_bs = b[OFF_LOG_BLOCKSIZE];
        let block_size = 1u64.checked_shl(u32::from(log_bs)).unwrap_or(0);
        let salt_size = usize::from(b[OFF_SALT_SIZE]);
        if salt_size > MAX_SALT_SIZE {
            return Err(DescriptorError::BadParams(ParamsError::SaltTooLong(
                salt_size,
            )));
        }
        let params = MerkleParams::new(alg, block_size, &b[OFF_SALT..OFF_SALT + salt_size])
            .map_err(DescriptorError::BadParams)?;
        let zero_ranges = [
            OFF_SIG_SIZE..OFF_DATA_SIZE,
            OFF_ROOT_HASH + alg.digest_size()..OFF_SALT,
            OFF_SALT + salt_size..OFF_RESERVED,
            OFF_RESERVED..DESCRIPTOR_SIZE,
        ];
        for range in zero_ranges {
            if let Some(i) = range.clone().find(|&i| b[i] != 0) {
                return Err(DescriptorError::NonZeroPadding(i));
            }
        }
        let mut size = [0u8; 8];
        size.copy_from_slice(&b[OFF_DATA_SIZE..OFF_DATA_SIZE + 8]);
        Ok(Descriptor::new(
            params,
            u64::from_le_bytes(size),
            &b[OFF_ROOT_HASH..OFF_ROOT_HASH + alg.digest_size()],
        ))
    }

    /// The fs-verity file digest: the unsalted hash of the 256 bytes.
    pub fn digest(&self) -> FileDigest {
        let alg = self.params.algorithm();
        let h = plain_hash(alg, &self.to_bytes());
        FileDigest::new(alg, &h[..alg.digest_size()]).expect("hash length matches algorithm")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_descriptor_matches_spec_example() {
        let d = Descriptor::new(MerkleParams::default(), 0, &[0; 32]);
        let b = d.to_bytes();
        assert_eq!(&b[..4], &[1, 1, 12, 0]);
        assert!(b[4..].iter().all(|&x| x == 0));
        assert_eq!(
            d.digest().to_string(),
            "sha256:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95"
        );
        assert_eq!(Descriptor::from_bytes(&b).unwrap(), d);
    }

    #[test]
    fn round_trips_salted_sha512() {
        let p = MerkleParams::new(HashAlgorithm::Sha512, 1024, &[0, 0x11, 0x22, 0x33]).unwrap();
        let d = Descriptor::new(p, 123_456_789, &[0xab; 64]);
        assert_eq!(Descriptor::from_bytes(&d.to_bytes()).unwrap(), d);
    }

    #[test]
    fn rejects_non_canonical_descriptors() {
        let good = Descriptor::new(MerkleParams::default(), 4097, &[7; 32]).to_bytes();
        assert!(Descriptor::from_bytes(&good[..255]).is_err());
        let cases: &[(usize, u8)] = &[
            (0, 2),   // version
            (1, 3),   // algorithm
            (2, 9),   // 512-byte blocks
            (2, 17),  // 128 KiB blocks
            (2, 200), // shift overflow
            (3, 33),  // salt size
            (4, 1),   // sig_size
            (48, 1),  // root hash tail for sha256
            (80, 1),  // salt byte beyond salt_size 0
            (112, 1), // reserved
            (255, 1), // reserved
        ];
        for &(off, val) in cases {
            let mut b = good;
            b[off] = val;
            assert!(Descriptor::from_bytes(&b).is_err(), "offset {off} = {val}");
        }
    }
}
