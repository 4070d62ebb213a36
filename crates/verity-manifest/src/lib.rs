// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The manifest of a sealed share (format: `docs/manifest.md`).
//!
//! A manifest lists every entry of a directory tree (path, type, permission
//! bits, owner, size, and the fs-verity digest of each regular file or the
//! target of each symlink) in one canonical text form. Its SHA-256, the
//! *manifest digest*, pins names, metadata and content of the whole share: it
//! is the one value a relying party needs. Pure code: no I/O, no unsafe.
#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod entry;
mod escape;
mod manifest;
mod tree_store;

pub use entry::{Entry, EntryKind};
pub use escape::{escape_bytes, unescape_bytes};
pub use manifest::{join, Manifest, ManifestError, FORMAT_HEADER};
pub use tree_store::{
    object_relative_path, split_store_blob, store_blob, store_relative_path, StoreBlobError,
};
