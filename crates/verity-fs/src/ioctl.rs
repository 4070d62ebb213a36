// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! FUSE_IOCTL handling: the single place where ioctl commands are decided.
//!
//! No command is supported yet, so every request is answered with `ENOTTY` (what the guest
//! kernel reports for an unknown ioctl). Host ioctls are never forwarded: the inner filesystem
//! is not asked, so a guest cannot reach host-side ioctls on the shared files.

use std::io;

use fuse_backend_rs::api::filesystem::IoctlData;

use crate::errno::enotty;

/// One FUSE_IOCTL request, as the server decoded it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct IoctlRequest {
    /// The ioctl command number (`cmd` in `fuse_ioctl_in`).
    pub(crate) cmd: u32,
    /// `FUSE_IOCTL_*` flags (for example `FUSE_IOCTL_DIR`).
    pub(crate) flags: u32,
    /// How many bytes the guest accepts in the reply.
    pub(crate) out_size: u32,
}

/// Decides the answer to `req`. `input` is the request's input payload.
pub(crate) fn handle_ioctl(req: IoctlRequest, input: &[u8]) -> io::Result<IoctlData<'static>> {
    log::debug!(
        "ioctl cmd={:#x} flags={:#x} in_len={} out_size={}: not supported",
        req.cmd,
        req.flags,
        input.len(),
        req.out_size
    );
    Err(enotty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_command_is_enotty() {
        // FS_IOC_MEASURE_VERITY, FS_IOC_GETFLAGS, FS_IOC_ENABLE_VERITY, an arbitrary number.
        for cmd in [0xc004_6686_u32, 0x8008_6601, 0x4080_6685, 0x1234] {
            let req = IoctlRequest {
                cmd,
                flags: 0,
                out_size: 68,
            };
            match handle_ioctl(req, &[0u8; 4]) {
                Err(err) => assert_eq!(err.raw_os_error(), Some(libc::ENOTTY)),
                Ok(_) => panic!("ioctl {cmd:#x} was answered"),
            }
        }
    }
}
