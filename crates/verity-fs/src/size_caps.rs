// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Caps on the sizes a guest chooses: nothing is allocated or read for a guest-chosen size
//! beyond these.
//!
//! The inner filesystem allocates a buffer of the requested size for READDIR and GETXATTR,
//! and the verified read path reads whole blocks covering the requested size into a private
//! buffer, so an unbounded size (up to 4 GiB in a `u32`) would be an allocation the guest
//! controls. A Linux guest never asks for more than these (`max_pages` = 256 pages of 4 KiB,
//! which the INIT reply announces; `XATTR_SIZE_MAX` and `XATTR_LIST_MAX`).

use std::io;

/// Largest READ, READDIR and READDIRPLUS size served (1 MiB, as virtiofsd).
pub const MAX_IO_SIZE: u32 = 1 << 20;
/// Largest GETXATTR / LISTXATTR size served (`XATTR_SIZE_MAX`, `XATTR_LIST_MAX`).
pub const MAX_XATTR_SIZE: u32 = 65_536;

/// READ, READDIR, READDIRPLUS: `ENOMEM` above [`MAX_IO_SIZE`] (virtiofsd's answer).
pub(crate) fn check_io_size(size: u32) -> io::Result<()> {
    if size > MAX_IO_SIZE {
        return Err(io::Error::from_raw_os_error(libc::ENOMEM));
    }
    Ok(())
}

/// GETXATTR, LISTXATTR: `E2BIG` above [`MAX_XATTR_SIZE`] (what `getxattr(2)` says of a value
/// or list larger than the kernel allows).
pub(crate) fn check_xattr_size(size: u32) -> io::Result<()> {
    if size > MAX_XATTR_SIZE {
        return Err(io::Error::from_raw_os_error(libc::E2BIG));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caps() {
        for ok in [0, 1, 4096, MAX_IO_SIZE] {
            assert!(check_io_size(ok).is_ok(), "{ok}");
        }
        for bad in [MAX_IO_SIZE + 1, u32::MAX] {
            assert_eq!(
                check_io_size(bad).unwrap_err().raw_os_error(),
                Some(libc::ENOMEM)
            );
        }
        for ok in [0, 1, MAX_XATTR_SIZE] {
            assert!(check_xattr_size(ok).is_ok(), "{ok}");
        }
        for bad in [MAX_XATTR_SIZE + 1, u32::MAX] {
            assert_eq!(
                check_xattr_size(bad).unwrap_err().raw_os_error(),
                Some(libc::E2BIG)
            );
        }
    }
}
