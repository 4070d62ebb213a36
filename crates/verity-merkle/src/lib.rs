// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Pure fs-verity: Merkle tree geometry, builders, the 256-byte descriptor,
//! the file digest and a caching block verifier, byte-identical to the Linux
//! kernel and fsverity-utils.
//!
//! The crate does no I/O of its own and has no unsafe code: data and tree
//! bytes come in through [`ReadAt`], [`std::io::Read`] and [`TreeSource`],
//! which callers implement over files. Format reference: the kernel's
//! `Documentation/filesystems/fsverity.rst`.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod builder;
mod cache;
mod descriptor;
mod digest;
mod geometry;
mod hash;
mod params;
mod tree;
mod verifier;

pub use builder::{
    build_from_bytes, build_from_reader, build_parallel, BuildError, ReadAt, TreeBuilder,
};
pub use cache::{TreeCache, DEFAULT_CACHE_BLOCKS};
pub use descriptor::{Descriptor, DescriptorError, DESCRIPTOR_SIZE};
pub use digest::{DigestParseError, FileDigest};
pub use geometry::{Geometry, GeometryError, HashLocation, MAX_LEVELS};
pub use hash::BlockHasher;
pub use params::{
    HashAlgorithm, MerkleParams, ParamsError, DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, MAX_DIGEST_SIZE,
    MAX_SALT_SIZE, MIN_BLOCK_SIZE,
};
pub use tree::MerkleTree;
pub use verifier::{MissingTreeBlock, TreeSource, Verifier, VerifyError};
