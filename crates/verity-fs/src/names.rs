// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Validation of the names a guest sends with LOOKUP and CREATE.
//!
//! A name is one path component: not empty and without `/` (a `CStr` has no interior NUL).
//! `.` and `..` stay allowed in LOOKUP (the guest kernel asks for `..` to find the parent
//! of an exported dentry); the inner filesystem maps `..` at the root to the root itself.

use std::ffi::CStr;
use std::io;

/// Checks that `name` is a single, non-empty path component; `EINVAL` otherwise.
pub fn check_name(name: &CStr) -> io::Result<()> {
    let bytes = name.to_bytes();
    if bytes.is_empty() || bytes.contains(&b'/') {
        return Err(io::Error::from_raw_os_error(libc::EINVAL));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn errno(name: &[u8]) -> Option<i32> {
        let c = CStr::from_bytes_with_nul(name).unwrap();
        check_name(c).err().and_then(|e| e.raw_os_error())
    }

    #[test]
    fn single_components_only() {
        assert_eq!(errno(b"file\0"), None);
        assert_eq!(errno(b".\0"), None);
        assert_eq!(errno(b"..\0"), None);
        assert_eq!(errno(b".hidden\0"), None);
        assert_eq!(errno(b"\0"), Some(libc::EINVAL));
        assert_eq!(errno(b"a/b\0"), Some(libc::EINVAL));
        assert_eq!(errno(b"/etc\0"), Some(libc::EINVAL));
        assert_eq!(errno(b"../x\0"), Some(libc::EINVAL));
    }
}
