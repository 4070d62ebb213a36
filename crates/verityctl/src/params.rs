// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The fs-verity parameter options shared by commands that build manifests.

use clap::Args;
use verity_merkle::{HashAlgorithm, MerkleParams, ParamsError};

/// `--hash-alg`, `--block-size`, `--salt`, as in `fsverity digest`.
#[derive(Debug, Args)]
pub struct ParamArgs {
    /// Hash algorithm: sha256 or sha512.
    #[arg(long, default_value = "sha256", value_name = "HASH_ALG")]
    hash_alg: String,
    /// Merkle tree block size in bytes: a power of 2 from 1024 to 65536.
    #[arg(long, default_value_t = 4096, value_name = "BLOCK_SIZE")]
    block_size: u64,
    /// Salt as hex, at most 32 bytes.
    #[arg(long, value_name = "SALT")]
    salt: Option<String>,
}

/// Errors in the parameter options.
#[derive(Debug, thiserror::Error)]
pub enum ParamArgsError {
    /// `--salt` is not hex.
    #[error("--salt {0:?} is not a valid hex string")]
    BadSaltHex(String),
    /// Parameters out of range.
    #[error("invalid parameters")]
    Params(#[source] ParamsError),
}

impl ParamArgs {
    /// The parameters the options select.
    pub fn params(&self) -> Result<MerkleParams, ParamArgsError> {
        let alg: HashAlgorithm = self.hash_alg.parse().map_err(ParamArgsError::Params)?;
        let salt = match &self.salt {
            None => Vec::new(),
            Some(s) => hex::decode(s).map_err(|_| ParamArgsError::BadSaltHex(s.clone()))?,
        };
        MerkleParams::new(alg, self.block_size, &salt).map_err(ParamArgsError::Params)
    }
}
