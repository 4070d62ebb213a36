// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Checks on a request's FUSE framing, made before fuse-backend-rs sees the request.
//!
//! fuse-backend-rs 0.14 trusts parts of the framing: it decodes fixed-size arguments without
//! comparing them with `in_header.len`, answers some opcodes it cannot serve with EINVAL
//! instead of ENOSYS, does not dispatch COPY_FILE_RANGE at all, and silently cuts a name at
//! its first NUL. Everything here is decided on the request bytes alone.

use std::mem::size_of;

use fuse_backend_rs::abi::fuse_abi::{self, InHeader};

/// Size of `struct fuse_in_header`.
pub const IN_HEADER_LEN: usize = size_of::<InHeader>();
/// Largest request accepted: 1 MiB of payload plus one page for headers (the limit
/// fuse-backend-rs and virtiofsd apply; the guest never sends more than `max_pages`).
pub const MAX_REQUEST_LEN: usize = (1 << 20) + 4096;
/// Longest name component, without its NUL (`NAME_MAX`).
pub const NAME_MAX: usize = 255;

/// FUSE opcodes the daemon treats specially (include/uapi/linux/fuse.h).
pub mod opcode {
    /// `FUSE_LOOKUP`.
    pub const LOOKUP: u32 = 1;
    /// `FUSE_FORGET` (no reply).
    pub const FORGET: u32 = 2;
    /// `FUSE_INIT`.
    pub const INIT: u32 = 26;
    /// `FUSE_INTERRUPT` (no reply).
    pub const INTERRUPT: u32 = 36;
    /// `FUSE_DESTROY`.
    pub const DESTROY: u32 = 38;
    /// `FUSE_BATCH_FORGET` (no reply).
    pub const BATCH_FORGET: u32 = 42;
    /// `FUSE_COPY_FILE_RANGE`.
    pub const COPY_FILE_RANGE: u32 = 47;
    /// `FUSE_SETUPMAPPING` (DAX).
    pub const SETUPMAPPING: u32 = 48;
    /// `FUSE_REMOVEMAPPING` (DAX).
    pub const REMOVEMAPPING: u32 = 49;
    /// `FUSE_TMPFILE`.
    pub const TMPFILE: u32 = 51;
}

/// What to do with a request, by opcode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// Hand it to the FUSE server.
    Serve,
    /// Answer with this errno without involving the server.
    Refuse(i32),
}

/// Routes `op`.
///
/// fuse-backend-rs 0.14 dispatches 1..=49 except the holes 7 and 19 and COPY_FILE_RANGE (47);
/// its `Opcode::from` transmutes any number below 50 (undefined behaviour for the holes) when
/// trace logging is on, so nothing else may reach it. Mutations it does not know (47, 51) are
/// EROFS like every other mutation; DAX mappings (48, 49) would bypass `read` and are ENOSYS,
/// as is everything unknown.
pub fn route(op: u32) -> Route {
    match op {
        opcode::COPY_FILE_RANGE | opcode::TMPFILE => Route::Refuse(libc::EROFS),
        opcode::SETUPMAPPING | opcode::REMOVEMAPPING => Route::Refuse(libc::ENOSYS),
        1..=6 | 8..=18 | 20..=46 => Route::Serve,
        _ => Route::Refuse(libc::ENOSYS),
    }
}

/// Whether the guest waits for a reply to `op`.
pub fn expects_reply(op: u32) -> bool {
    !matches!(
        op,
        opcode::FORGET | opcode::BATCH_FORGET | opcode::INTERRUPT
    )
}

/// Checks `in_header.len` against the bytes the chain actually carries; returns the errno
/// of the error reply on failure.
pub fn check_length(header: &InHeader, readable: usize) -> Result<usize, i32> {
    let len = usize::try_from(header.len).map_err(|_| libc::ENOMEM)?;
    if len < IN_HEADER_LEN {
        return Err(libc::EINVAL);
    }
    if len > MAX_REQUEST_LEN {
        return Err(libc::ENOMEM);
    }
    if len > readable {
        return Err(libc::EINVAL);
    }
    Ok(len)
}

/// The FUSE major version spoken (the server's).
pub const FUSE_MAJOR: u32 = fuse_abi::KERNEL_VERSION;
/// Oldest FUSE minor version accepted: virtio-fs entered Linux (5.4) with 7.31, so no
/// virtio-fs guest sends less; older minors would need compatibility reply formats.
pub const MIN_MINOR: u32 = 31;

/// Checks the version of an INIT request. A major above ours is left to the server, which
/// answers with its own major so that the guest retries (and starts no session); an older
/// major or minor is `EPROTO`.
pub fn check_init_version(major: u32, minor: u32) -> Result<(), i32> {
    if major < FUSE_MAJOR || (major == FUSE_MAJOR && minor < MIN_MINOR) {
        return Err(libc::EPROTO);
    }
    Ok(())
}

/// Size of `struct fuse_batch_forget_in` and of one `struct fuse_forget_one`.
const BATCH_FORGET_IN_LEN: usize = size_of::<fuse_abi::BatchForgetIn>();
const FORGET_ONE_LEN: usize = size_of::<fuse_abi::ForgetOne>();

/// Checks that a BATCH_FORGET body of `body_len` bytes holds the `count` entries it announces,
/// so the server never reserves room for more entries than the request carries.
pub fn check_batch_forget(count: u32, body_len: usize) -> Result<(), i32> {
    let entries = usize::try_from(count)
        .ok()
        .and_then(|c| c.checked_mul(FORGET_ONE_LEN))
        .ok_or(libc::EOVERFLOW)?;
    if entries > body_len.saturating_sub(BATCH_FORGET_IN_LEN) {
        return Err(libc::EINVAL);
    }
    Ok(())
}

/// Checks the body of a LOOKUP: exactly one name component followed by exactly one NUL.
///
/// `body` is at most `NAME_MAX + 2` bytes of the request after the header; `body_len` is the
/// full body length from `in_header.len`.
pub fn check_lookup_name(body: &[u8], body_len: usize) -> Result<(), i32> {
    if body_len > NAME_MAX + 1 {
        return Err(libc::ENAMETOOLONG);
    }
    let Some((&last, name)) = body.split_last() else {
        return Err(libc::EINVAL);
    };
    if body.len() != body_len || last != 0 {
        return Err(libc::EINVAL);
    }
    if name.is_empty() || name.iter().any(|&b| b == 0 || b == b'/') {
        return Err(libc::EINVAL);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header(len: u32) -> InHeader {
        InHeader {
            len,
            ..Default::default()
        }
    }

    #[test]
    fn routes() {
        for op in [0, 7, 19, 48, 49, 50, 52, 60, 4095, 4096, 1 << 20, u32::MAX] {
            assert_eq!(route(op), Route::Refuse(libc::ENOSYS), "opcode {op}");
        }
        for op in [47, 51] {
            assert_eq!(route(op), Route::Refuse(libc::EROFS), "opcode {op}");
        }
        for op in [1, 2, 15, 26, 38, 39, 42, 43, 44, 46] {
            assert_eq!(route(op), Route::Serve, "opcode {op}");
        }
    }

    #[test]
    fn forgets_have_no_reply() {
        assert!(!expects_reply(opcode::FORGET));
        assert!(!expects_reply(opcode::BATCH_FORGET));
        assert!(!expects_reply(opcode::INTERRUPT));
        assert!(expects_reply(opcode::DESTROY));
        assert!(expects_reply(15));
    }

    #[test]
    fn lengths() {
        assert_eq!(check_length(&header(40), 56), Ok(40));
        assert_eq!(check_length(&header(56), 56), Ok(56));
        assert_eq!(check_length(&header(39), 56), Err(libc::EINVAL));
        assert_eq!(check_length(&header(0), 56), Err(libc::EINVAL));
        assert_eq!(check_length(&header(57), 56), Err(libc::EINVAL));
        assert_eq!(check_length(&header(2 << 20), 4 << 20), Err(libc::ENOMEM));
        assert_eq!(check_length(&header(u32::MAX), 56), Err(libc::ENOMEM));
    }

    #[test]
    fn init_versions() {
        assert_eq!(check_init_version(7, 31), Ok(()));
        assert_eq!(check_init_version(7, 45), Ok(()));
        assert_eq!(check_init_version(8, 0), Ok(()));
        assert_eq!(check_init_version(7, 30), Err(libc::EPROTO));
        assert_eq!(check_init_version(7, 0), Err(libc::EPROTO));
        assert_eq!(check_init_version(6, 99), Err(libc::EPROTO));
        assert_eq!(check_init_version(0, 0), Err(libc::EPROTO));
    }

    #[test]
    fn batch_forget_counts() {
        assert_eq!(check_batch_forget(0, 8), Ok(()));
        assert_eq!(check_batch_forget(2, 8 + 32), Ok(()));
        assert_eq!(check_batch_forget(3, 8 + 32), Err(libc::EINVAL));
        assert_eq!(check_batch_forget(1, 4), Err(libc::EINVAL));
        assert_eq!(check_batch_forget(u32::MAX, 1 << 20), Err(libc::EINVAL));
    }

    #[test]
    fn lookup_names() {
        assert_eq!(check_lookup_name(b"a\0", 2), Ok(()));
        assert_eq!(check_lookup_name(b"..\0", 3), Ok(()));
        assert_eq!(check_lookup_name(b"\0", 1), Err(libc::EINVAL));
        assert_eq!(check_lookup_name(b"", 0), Err(libc::EINVAL));
        assert_eq!(check_lookup_name(b"a/b\0", 4), Err(libc::EINVAL));
        assert_eq!(check_lookup_name(b"a\0b\0", 4), Err(libc::EINVAL));
        assert_eq!(check_lookup_name(b"ab", 2), Err(libc::EINVAL));
        assert_eq!(check_lookup_name(b"a\0\0", 3), Err(libc::EINVAL));
        let long = [b'x'; NAME_MAX + 2];
        assert_eq!(
            check_lookup_name(&long, NAME_MAX + 2),
            Err(libc::ENAMETOOLONG)
        );
        let mut max = vec![b'x'; NAME_MAX];
        max.push(0);
        assert_eq!(check_lookup_name(&max, NAME_MAX + 1), Ok(()));
    }
}
