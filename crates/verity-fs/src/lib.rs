// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The FUSE filesystem layer of verityfsd.
//!
//! [`VerityFs`] wraps an inner fuse-backend-rs [`FileSystem`](fuse_backend_rs::api::filesystem::FileSystem)
//! (in practice a [`PassthroughFs`](fuse_backend_rs::passthrough::PassthroughFs) over the shared
//! directory) and makes it read-only by construction: every mutating request is answered with
//! `EROFS`, opens for writing are refused, DAX mappings are refused and the FUSE INIT reply is
//! adjusted (no writeback cache, no per-file DAX, plus the performance flags the passthrough
//! layer forgets to ask for). Given a manifest ([`Verity`]), it also verifies every byte it
//! serves against fs-verity Merkle trees and exposes the digests (`docs/guest-abi.md`).
//!
//! This crate never sees virtqueues or vhost-user: the daemon hands it to a
//! `fuse_backend_rs::api::server::Server`, which decodes FUSE requests.
//!
//! Errno values are decided here, at the FUSE boundary, and always built with
//! [`std::io::Error::from_raw_os_error`] so that fuse-backend-rs never logs them as internal
//! failures.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod binding;
mod budget;
mod config;
mod content;
mod errno;
mod init;
mod ioctl;
mod listing;
mod manifest_attr;
mod manifest_fs;
mod names;
mod open_flags;
mod open_handles;
pub mod ratelimit;
mod read_only;
mod share_meta;
mod size_caps;
mod tree_store;
mod trees;
pub use trees::{stored_tree_stays_open, STORED_TREE_IN_MEMORY_MAX};
mod verified_read;
mod verity;
mod verity_fs;
mod xattr;

pub use budget::{FsLimits, FD_RESERVE_BASE, FD_RESERVE_PER_THREAD, HANDLE_FLOOR};
pub use config::{new_passthrough, passthrough_config, CacheMode, FsConfig, FsConfigError};
pub use content::ContentDir;
pub use init::{negotiate_init, ADDED_INIT_FLAGS, FORBIDDEN_INIT_FLAGS};
pub use ioctl::{
    FS_IOC32_GETFLAGS, FS_IOC_ENABLE_VERITY, FS_IOC_FSGETXATTR, FS_IOC_FSSETXATTR, FS_IOC_GETFLAGS,
    FS_IOC_MEASURE_VERITY, FS_IOC_READ_VERITY_METADATA, FS_VERITY_FL, FS_XFLAG_VERITY,
    FUSE_IOCTL_UNRESTRICTED,
};
pub use manifest_fs::ManifestFs;
pub use names::check_name;
pub use open_flags::{check_create_flags, check_open_flags};
pub use share_meta::META_DIR;
pub use size_caps::{MAX_IO_SIZE, MAX_XATTR_SIZE};
pub use tree_store::TreeStore;
pub use verity::{UnlistedPolicy, VerifyMode, Verity, VerityOptions};
pub use verity_fs::VerityFs;
pub use xattr::{DIGEST_XATTR, MANIFEST_DIGEST_XATTR, RESERVED_PREFIX};
