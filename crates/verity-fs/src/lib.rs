// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The FUSE filesystem layer of verityfsd.
//!
//! [`VerityFs`] wraps an inner fuse-backend-rs [`FileSystem`](fuse_backend_rs::api::filesystem::FileSystem)
//! (in practice a [`PassthroughFs`](fuse_backend_rs::passthrough::PassthroughFs) over the shared
//! directory) and makes it read-only by construction: every mutating request is answered with
//! `EROFS`, opens for writing are refused, DAX mappings are refused and the FUSE INIT reply is
//! adjusted (no writeback cache, no per-file DAX, plus the performance flags the passthrough
//! layer forgets to ask for). The wrapper is also the seam where block verification and digest
//! exposure are added later.
//!
//! This crate never sees virtqueues or vhost-user: the daemon hands it to a
//! `fuse_backend_rs::api::server::Server`, which decodes FUSE requests.
//!
//! Errno values are decided here, at the FUSE boundary, and always built with
//! [`std::io::Error::from_raw_os_error`] so that fuse-backend-rs never logs them as internal
//! failures.

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod config;
mod errno;
mod init;
mod ioctl;
mod names;
mod open_flags;
mod verity_fs;

pub use config::{new_passthrough, passthrough_config, CacheMode, FsConfig, FsConfigError};
pub use init::{negotiate_init, ADDED_INIT_FLAGS, FORBIDDEN_INIT_FLAGS};
pub use names::check_name;
pub use open_flags::{check_create_flags, check_open_flags};
pub use verity_fs::VerityFs;
