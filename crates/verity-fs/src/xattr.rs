// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The digest xattrs (`docs/guest-abi.md`): a read-only fallback for guests and tools that
//! cannot use `FS_IOC_MEASURE_VERITY`.
//!
//! Names under `user.verity.` belong to this layer: host xattrs with that prefix are never
//! passed through, so a host cannot plant a digest the guest would believe.

use std::io;

use fuse_backend_rs::api::filesystem::{GetxattrReply, ListxattrReply};

/// The fs-verity digest of a verified regular file, `sha256:HEX` (or `sha512:HEX`).
pub const DIGEST_XATTR: &str = "user.verity.digest";
/// The manifest digest, `sha256:HEX`, on the share root.
pub const MANIFEST_DIGEST_XATTR: &str = "user.verity.manifest_digest";
/// The reserved prefix.
pub const RESERVED_PREFIX: &str = "user.verity.";

/// Largest list asked from the host (the kernel's `XATTR_LIST_MAX`).
pub(crate) const HOST_LIST_MAX: u32 = 65_536;
/// True for names this layer owns.
pub(crate) fn is_reserved(name: &[u8]) -> bool {
    name.starts_with(RESERVED_PREFIX.as_bytes())
}

fn erange() -> io::Error {
    io::Error::from_raw_os_error(libc::ERANGE)
}

/// The GETXATTR answer for one of our values: the length for a size-0 probe, `ERANGE` if
/// `size` is too small, else the value.
pub(crate) fn value_reply(value: &[u8], size: u32) -> io::Result<GetxattrReply> {
    let len = u32::try_from(value.len()).map_err(|_| erange())?;
    if size == 0 {
        Ok(GetxattrReply::Count(len))
    } else if size < len {
        Err(erange())
    } else {
        Ok(GetxattrReply::Value(value.to_vec()))
    }
}

/// Removes reserved names from a NUL-separated host list.
pub(crate) fn filter_host_list(list: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(list.len());
    for name in list.split(|&b| b == 0).filter(|n| !n.is_empty()) {
        if !is_reserved(name) {
            out.extend_from_slice(name);
            out.push(0);
        }
    }
    out
}

/// The LISTXATTR answer for `list` (NUL-separated names) and the guest's `size`.
pub(crate) fn list_reply(list: Vec<u8>, size: u32) -> io::Result<ListxattrReply> {
    let len = u32::try_from(list.len()).map_err(|_| erange())?;
    if size == 0 {
        Ok(ListxattrReply::Count(len))
    } else if size < len {
        Err(erange())
    } else {
        Ok(ListxattrReply::Names(list))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn values_and_lists() {
        assert!(matches!(
            value_reply(b"abc", 0),
            Ok(GetxattrReply::Count(3))
        ));
        assert!(matches!(value_reply(b"abc", 2), Err(e) if e.raw_os_error() == Some(libc::ERANGE)));
        assert!(matches!(value_reply(b"abc", 3), Ok(GetxattrReply::Value(v)) if v == b"abc"));
        let host = b"user.a\0user.verity.digest\0user.verity.x\0security.b\0";
        assert_eq!(filter_host_list(host), b"user.a\0security.b\0".to_vec());
        assert!(matches!(
            list_reply(b"a\0".to_vec(), 0),
            Ok(ListxattrReply::Count(2))
        ));
        assert!(
            matches!(list_reply(b"a\0".to_vec(), 1), Err(e) if e.raw_os_error() == Some(libc::ERANGE))
        );
        assert!(is_reserved(DIGEST_XATTR.as_bytes()));
        assert!(is_reserved(MANIFEST_DIGEST_XATTR.as_bytes()));
        assert!(!is_reserved(b"user.verityx"));
    }
}
