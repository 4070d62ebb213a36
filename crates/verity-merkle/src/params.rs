// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Merkle tree parameters: hash algorithm, block size and salt.

use std::fmt;
use std::str::FromStr;

/// Smallest Merkle block size accepted (the Linux kernel's lower limit since 6.3).
pub const MIN_BLOCK_SIZE: usize = 1024;
/// Largest Merkle block size accepted.
pub const MAX_BLOCK_SIZE: usize = 65536;
/// Block size used when none is given (fsverity-utils' and the kernel's default).
pub const DEFAULT_BLOCK_SIZE: usize = 4096;
/// Longest salt the 32-byte descriptor field can hold.
pub const MAX_SALT_SIZE: usize = 32;
/// Largest digest of any supported algorithm (`FS_VERITY_MAX_DIGEST_SIZE`).
pub const MAX_DIGEST_SIZE: usize = 64;

/// Errors in Merkle tree parameters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParamsError {
    /// The hash algorithm name or id is not SHA-256 or SHA-512.
    #[error("unknown hash algorithm {0:?} (expected sha256 or sha512)")]
    UnknownAlgorithm(String),
    /// The block size is not a power of two in the supported range.
    #[error("invalid block size {0}: must be a power of 2 from 1024 to 65536")]
    InvalidBlockSize(u64),
    /// The salt is longer than the descriptor's salt field.
    #[error("salt is {0} bytes, at most 32 are allowed")]
    SaltTooLong(usize),
}

/// An fs-verity hash algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum HashAlgorithm {
    /// SHA-256, fs-verity id 1, 32-byte digests.
    Sha256,
    /// SHA-512, fs-verity id 2, 64-byte digests.
    Sha512,
}

impl HashAlgorithm {
    /// The fs-verity algorithm id (`FS_VERITY_HASH_ALG_*`).
    pub fn id(self) -> u8 {
        match self {
            HashAlgorithm::Sha256 => 1,
            HashAlgorithm::Sha512 => 2,
        }
    }

    /// The algorithm with fs-verity id `id`, if it exists.
    pub fn from_id(id: u8) -> Option<Self> {
        match id {
            1 => Some(HashAlgorithm::Sha256),
            2 => Some(HashAlgorithm::Sha512),
            _ => None,
        }
    }

    /// Digest size in bytes.
    pub fn digest_size(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 32,
            HashAlgorithm::Sha512 => 64,
        }
    }

    /// Input block size of the compression function; the salt is padded to it.
    pub fn compression_block_size(self) -> usize {
        match self {
            HashAlgorithm::Sha256 => 64,
            HashAlgorithm::Sha512 => 128,
        }
    }

    /// The name used by fsverity-utils (`sha256`, `sha512`).
    pub fn name(self) -> &'static str {
        match self {
            HashAlgorithm::Sha256 => "sha256",
            HashAlgorithm::Sha512 => "sha512",
        }
    }
}

impl fmt::Display for HashAlgorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for HashAlgorithm {
    type Err = ParamsError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "sha256" => Ok(HashAlgorithm::Sha256),
            "sha512" => Ok(HashAlgorithm::Sha512),
            other => Err(ParamsError::UnknownAlgorithm(other.to_owned())),
        }
    }
}

/// Validated Merkle tree parameters.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MerkleParams {
    algorithm: HashAlgorithm,
    log_block_size: u8,
    salt: Vec<u8>,
}

impl MerkleParams {
    /// Checks and builds parameters; `block_size` must be a power of two in
    /// `MIN_BLOCK_SIZE..=MAX_BLOCK_SIZE` and the salt at most 32 bytes.
    pub fn new(
        algorithm: HashAlgorithm,
        block_size: u64,
        salt: &[u8],
    ) -> Result<Self, ParamsError> {
        if !block_size.is_power_of_two()
            || block_size < MIN_BLOCK_SIZE as u64
            || block_size > MAX_BLOCK_SIZE as u64
        {
            return Err(ParamsError::InvalidBlockSize(block_size));
        }
        if salt.len() > MAX_SALT_SIZE {
            return Err(ParamsError::SaltTooLong(salt.len()));
        }
        // A power of two in 2^10..=2^16 has trailing_zeros in 10..=16: fits in u8.
        let log_block_size = block_size.trailing_zeros() as u8;
        Ok(MerkleParams {
            algorithm,
            log_block_size,
            salt: salt.to_vec(),
        })
    }

    /// The hash algorithm.
    pub fn algorithm(&self) -> HashAlgorithm {
        self.algorithm
    }

    /// The Merkle block size in bytes.
    pub fn block_size(&self) -> usize {
        1usize << self.log_block_size
    }

    /// log2 of the block size, as stored in the descriptor.
    pub fn log_block_size(&self) -> u8 {
        self.log_block_size
    }

    /// The raw (unpadded) salt.
    pub fn salt(&self) -> &[u8] {
        &self.salt
    }

    /// Digest size of the algorithm in bytes.
    pub fn digest_size(&self) -> usize {
        self.algorithm.digest_size()
    }

    /// Hashes per tree block (the tree's arity); always a power of two.
    pub fn arity(&self) -> usize {
        self.block_size() / self.digest_size()
    }
}

impl Default for MerkleParams {
    /// SHA-256, 4096-byte blocks, no salt: what `fsverity digest` does with no options.
    fn default() -> Self {
        MerkleParams {
            algorithm: HashAlgorithm::Sha256,
            log_block_size: 12,
            salt: Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_supported_block_sizes() {
        for shift in 10..=16 {
            let p = MerkleParams::new(HashAlgorithm::Sha512, 1 << shift, b"").unwrap();
            assert_eq!(p.block_size(), 1 << shift);
            assert_eq!(p.log_block_size(), shift);
        }
    }

    #[test]
    fn rejects_bad_block_sizes_and_salts() {
        for bs in [0u64, 1, 512, 3000, 4095, 4097, 131072, u64::MAX] {
            assert_eq!(
                MerkleParams::new(HashAlgorithm::Sha256, bs, b""),
                Err(ParamsError::InvalidBlockSize(bs))
            );
        }
        assert!(MerkleParams::new(HashAlgorithm::Sha256, 4096, &[0; 32]).is_ok());
        assert_eq!(
            MerkleParams::new(HashAlgorithm::Sha256, 4096, &[0; 33]),
            Err(ParamsError::SaltTooLong(33))
        );
    }

    #[test]
    fn algorithm_names_and_ids_round_trip() {
        for alg in [HashAlgorithm::Sha256, HashAlgorithm::Sha512] {
            assert_eq!(alg.name().parse::<HashAlgorithm>().unwrap(), alg);
            assert_eq!(HashAlgorithm::from_id(alg.id()), Some(alg));
        }
        assert!("sha1".parse::<HashAlgorithm>().is_err());
        assert_eq!(HashAlgorithm::from_id(0), None);
        assert_eq!(HashAlgorithm::from_id(3), None);
    }

    #[test]
    fn arity_matches_spec() {
        let p = |a, b| MerkleParams::new(a, b, b"").unwrap().arity();
        assert_eq!(p(HashAlgorithm::Sha256, 4096), 128);
        assert_eq!(p(HashAlgorithm::Sha256, 1024), 32);
        assert_eq!(p(HashAlgorithm::Sha256, 65536), 2048);
        assert_eq!(p(HashAlgorithm::Sha512, 4096), 64);
        assert_eq!(p(HashAlgorithm::Sha512, 1024), 16);
    }
}
