// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Errno constructors: the one place where this layer turns a decision into an `io::Error`.

use std::io;

/// `EIO`: what the host has differs from what is sealed (the errno of a failed fs-verity
/// check), or there is no verified way to answer.
pub(crate) fn eio() -> io::Error {
    io::Error::from_raw_os_error(libc::EIO)
}

/// Any other errno decided at this boundary.
pub(crate) fn errno(e: i32) -> io::Error {
    io::Error::from_raw_os_error(e)
}

/// `EROFS`: the share is read-only.
pub(crate) fn erofs() -> io::Error {
    io::Error::from_raw_os_error(libc::EROFS)
}

/// `ENOSYS`: the request is not implemented.
pub(crate) fn enosys() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOSYS)
}

/// `ENOTTY`: the ioctl command is not supported.
pub(crate) fn enotty() -> io::Error {
    io::Error::from_raw_os_error(libc::ENOTTY)
}

/// Replaces an `ENOSYS` from the inner filesystem with `replacement`.
///
/// A FUSE `ENOSYS` reply to GETXATTR / LISTXATTR makes the guest kernel disable the operation
/// for the whole mount (it sets `no_getxattr` / `no_listxattr`), so a later digest xattr served
/// by this layer would never be asked for. Other errors pass through unchanged.
pub(crate) fn replace_enosys(err: io::Error, replacement: i32) -> io::Error {
    if err.raw_os_error() == Some(libc::ENOSYS) {
        io::Error::from_raw_os_error(replacement)
    } else {
        err
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn constructors_carry_the_errno() {
        assert_eq!(erofs().raw_os_error(), Some(libc::EROFS));
        assert_eq!(enosys().raw_os_error(), Some(libc::ENOSYS));
        assert_eq!(enotty().raw_os_error(), Some(libc::ENOTTY));
    }

    #[test]
    fn replace_enosys_only_touches_enosys() {
        let mapped = replace_enosys(enosys(), libc::ENODATA);
        assert_eq!(mapped.raw_os_error(), Some(libc::ENODATA));
        let kept = replace_enosys(io::Error::from_raw_os_error(libc::EACCES), libc::ENODATA);
        assert_eq!(kept.raw_os_error(), Some(libc::EACCES));
    }
}
