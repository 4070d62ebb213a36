// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A built Merkle tree: descriptor plus the stored tree bytes.

use crate::descriptor::Descriptor;
use crate::digest::FileDigest;
use crate::geometry::Geometry;

/// The result of building a tree: everything `fsverity digest` can output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MerkleTree {
    descriptor: Descriptor,
    tree: Vec<u8>,
}

impl MerkleTree {
    pub(crate) fn new(descriptor: Descriptor, tree: Vec<u8>) -> Self {
        MerkleTree { descriptor, tree }
    }

    /// The descriptor (parameters, size, root hash).
    pub fn descriptor(&self) -> &Descriptor {
        &self.descriptor
    }

    /// The root hash.
    pub fn root_hash(&self) -> &[u8] {
        self.descriptor.root_hash()
    }

    /// The stored tree, root level first, as `fsverity digest --out-merkle-tree`
    /// writes it and `FS_IOC_READ_VERITY_METADATA` returns it.
    pub fn tree_bytes(&self) -> &[u8] {
        &self.tree
    }

    /// Takes the stored tree bytes.
    pub fn into_tree_bytes(self) -> Vec<u8> {
        self.tree
    }

    /// The file digest.
    pub fn digest(&self) -> FileDigest {
        self.descriptor.digest()
    }

    /// The tree's geometry.
    pub fn geometry(&self) -> Geometry {
        Geometry::new(self.descriptor.params(), self.descriptor.data_size())
            .expect("a built tree has a valid geometry")
    }
}
