// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Layout of a tree store: Merkle trees content-addressed by file digest.
//!
//! The tree of a file with digest `sha256:HEX` lives at `sha256/HEX` under
//! the store directory; the file holds the 256-byte fs-verity descriptor
//! followed by the stored tree (root level first). A store is untrusted
//! input: a reader checks that the descriptor hashes to the digest it looked
//! up, and verifies every tree block against the root hash before use.

use std::path::PathBuf;

use verity_merkle::{Descriptor, DescriptorError, FileDigest, MerkleTree, DESCRIPTOR_SIZE};

/// Errors checking a tree store blob.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StoreBlobError {
    /// Shorter than a descriptor.
    #[error("tree store entry is {0} bytes, shorter than a descriptor")]
    TooShort(usize),
    /// The descriptor is malformed.
    #[error("tree store entry has an invalid descriptor")]
    Descriptor(#[source] DescriptorError),
    /// The descriptor does not hash to the digest it is stored under.
    #[error("tree store entry's descriptor has digest {found}, expected {expected}")]
    DigestMismatch {
        /// The digest looked up.
        expected: Box<FileDigest>,
        /// The digest of the stored descriptor.
        found: Box<FileDigest>,
    },
    /// The tree length does not match the geometry the descriptor implies.
    #[error("tree store entry holds {found} tree bytes, the descriptor implies {expected}")]
    WrongTreeSize {
        /// Bytes implied by the descriptor.
        expected: u64,
        /// Bytes present.
        found: u64,
    },
}

/// Path of the store entry for `digest`, relative to the store directory.
pub fn store_relative_path(digest: &FileDigest) -> PathBuf {
    PathBuf::from(digest.algorithm().name()).join(digest.to_hex())
}

/// Path of the content object of `digest` in a content-addressed store (`seal --objects`),
/// relative to the store directory: `ALG/XX/REST` with the hex digest split after its first
/// byte, as composefs lays out its objects.
pub fn object_relative_path(digest: &FileDigest) -> PathBuf {
    let hex = digest.to_hex();
    let (head, rest) = hex.split_at(2);
    PathBuf::from(digest.algorithm().name())
        .join(head)
        .join(rest)
}

/// The bytes of a store entry: descriptor, then tree.
pub fn store_blob(tree: &MerkleTree) -> Vec<u8> {
    let mut out = Vec::with_capacity(DESCRIPTOR_SIZE + tree.tree_bytes().len());
    out.extend_from_slice(&tree.descriptor().to_bytes());
    out.extend_from_slice(tree.tree_bytes());
    out
}

/// Checks the header of a store entry of `total_len` bytes whose first 256
/// bytes are `head`, against the digest it was looked up by. Returns the
/// trusted descriptor; tree blocks start at byte 256 and are still to be
/// verified block by block.
pub fn split_store_blob(
    expected: &FileDigest,
    head: &[u8],
    total_len: u64,
) -> Result<Descriptor, StoreBlobError> {
    let d = head
        .get(..DESCRIPTOR_SIZE)
        .ok_or(StoreBlobError::TooShort(head.len()))?;
    let desc = Descriptor::from_bytes(d).map_err(StoreBlobError::Descriptor)?;
    let found = desc.digest();
    if found != *expected {
        return Err(StoreBlobError::DigestMismatch {
            expected: Box::new(*expected),
            found: Box::new(found),
        });
    }
    let geometry = verity_merkle::Geometry::new(desc.params(), desc.data_size()).map_err(|_| {
        StoreBlobError::WrongTreeSize {
            expected: u64::MAX,
            found: total_len,
        }
    })?;
    let tree_len = total_len.saturating_sub(DESCRIPTOR_SIZE as u64);
    if tree_len != geometry.tree_size() {
        return Err(StoreBlobError::WrongTreeSize {
            expected: geometry.tree_size(),
            found: tree_len,
        });
    }
    Ok(desc)
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_merkle::{build_from_bytes, MerkleParams};

    #[test]
    fn blob_round_trip_and_tamper() {
        let t = build_from_bytes(MerkleParams::default(), &vec![5u8; 100_000]).unwrap();
        let blob = store_blob(&t);
        let d = t.digest();
        assert_eq!(
            store_relative_path(&d),
            PathBuf::from(format!("sha256/{}", d.to_hex()))
        );
        let desc = split_store_blob(&d, &blob, blob.len() as u64).unwrap();
        assert_eq!(&desc, t.descriptor());
        assert!(matches!(
            split_store_blob(&d, &blob, blob.len() as u64 - 1),
            Err(StoreBlobError::WrongTreeSize { .. })
        ));
        let mut bad = blob.clone();
        bad[9] ^= 1; // data_size
        assert!(matches!(
            split_store_blob(&d, &bad, bad.len() as u64),
            Err(StoreBlobError::DigestMismatch { .. })
        ));
        assert!(matches!(
            split_store_blob(&d, &blob[..10], 10),
            Err(StoreBlobError::TooShort(10))
        ));
    }
}
