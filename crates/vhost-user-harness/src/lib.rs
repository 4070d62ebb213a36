// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A test-only vhost-user frontend and virtio-fs driver.
//!
//! The harness plays the VMM and the guest driver at once, over a real unix
//! socket, so that a vhost-user-fs daemon can be tested (and benchmarked)
//! without a virtual machine:
//!
//! - [`memory`]: guest RAM in a `memfd`, shared with the daemon through
//!   `VHOST_USER_SET_MEM_TABLE`, with an allocator for buffers.
//! - [`frontend`]: the vhost-user control plane (feature negotiation, memory
//!   table, vring setup) on top of `vhost::vhost_user::Frontend`.
//! - [`descriptor`] / [`virtqueue`]: split virtqueues written by hand, including a raw API for
//!   malformed descriptor chains.
//! - [`harness`]: ties the above together; submit a request chain, wait for
//!   the reply with a timeout, many requests in flight.
//! - [`fuse_client`] / [`fuse_wire`]: a FUSE client (INIT, LOOKUP, READ,
//!   READDIR, xattrs, IOCTL, every mutation, raw opcodes).
//! - [`watchdog`]: the deadline that bounds blocking control-plane calls.
//! - [`process`]: spawning the daemon binary with a private socket path.
//! - [`raw_control`]: raw vhost-user control messages (malformed framing,
//!   wrong file descriptors, hang-ups) for control-plane abuse tests.
//!
//! Specifications: virtio 1.2 §2.7 (split virtqueues) and §5.11 (file system
//! device); the vhost-user protocol in QEMU's `docs/interop/vhost-user.rst`;
//! the FUSE ABI in Linux `include/uapi/linux/fuse.h`.
//!
//! Every wait is bounded: control messages have a socket timeout, replies
//! have [`HarnessConfig::request_timeout`], process waits take a timeout.
//!
//! ```no_run
//! use std::time::Duration;
//! use vhost_user_harness::{DaemonProcess, VirtioFsClient};
//!
//! let mut daemon = DaemonProcess::spawn(
//!     "verityfsd",
//!     ["--shared-dir=/srv/share", "--sandbox=none", "--readonly"],
//! )?;
//! let mut fs = VirtioFsClient::connect_and_init(daemon.socket_path())?;
//! let bytes = fs.read_file("etc/hostname")?;
//! drop(fs); // disconnect
//! assert!(daemon.wait_exit(Duration::from_secs(10))?.success());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![deny(missing_docs)]

pub mod allocator;
pub mod descriptor;
pub mod frontend;
pub mod fuse_client;
mod fuse_mutations;
pub mod fuse_wire;
pub mod harness;
pub mod memory;
pub mod process;
pub mod raw_control;
pub mod virtqueue;
pub mod watchdog;

/// The FUSE ABI structs used on the wire (`InitIn`, `SetattrIn`, `Attr`...).
pub use fuse_backend_rs::abi::fuse_abi as abi;
pub use fuse_backend_rs::abi::fuse_abi::{Opcode, ROOT_ID};
pub use fuse_client::{PendingFuse, VirtioFsClient, HIPRIO_QUEUE, REQUEST_QUEUE};
pub use fuse_wire::{
    DirEntry, DirEntryPlus, Entry, FuseError, FuseReply, InitInfo, IoctlReply, XattrReply,
};
pub use harness::{ChainLayout, Harness, HarnessConfig, HarnessError, PendingRequest};
pub use process::{DaemonProcess, ProcessError};
pub use vm_memory::GuestAddress;
