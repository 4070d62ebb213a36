// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Which `open(2)` flags a read-only share accepts.
//!
//! The rules follow virtiofsd's `rofs_open` (`passthrough/read_only.rs`) and the Linux
//! behaviour of a read-only mount: anything that could modify the file or the directory is
//! refused with `EROFS`.

use std::ffi::CStr;
use std::io;

use fuse_backend_rs::abi::fuse_abi::CreateIn;
use fuse_backend_rs::api::filesystem::{Context, Entry, FileSystem, OpenOptions};

use crate::errno::erofs;
use crate::names::check_name;

/// CREATE on a read-only share, through `fs`'s own LOOKUP and OPEN (so its checks apply).
///
/// The guest sends CREATE for names it believes are missing. Nothing can be created, but an
/// `O_CREAT` open (without `O_EXCL`, read-only) of a name that does exist is served as a plain
/// open, like virtiofsd's read-only mode; any other name is `EROFS`. When the open fails, the
/// lookup reference is dropped again: the guest never learns the entry.
pub(crate) fn create_as_open<F: FileSystem<Inode = u64, Handle = u64>>(
    fs: &F,
    ctx: &Context,
    parent: u64,
    name: &CStr,
    args: CreateIn,
) -> io::Result<(Entry, Option<u64>, OpenOptions, Option<u32>)> {
    let flags = check_create_flags(args.flags)?;
    // No file can exist under a name that is not a single component.
    check_name(name).map_err(|_| erofs())?;
    let entry = match fs.lookup(ctx, parent, name) {
        Ok(entry) => entry,
        Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(erofs()),
        Err(e) => return Err(e),
    };
    match fs.open(ctx, entry.inode, flags, args.fuse_flags) {
        Ok((handle, opts, passthrough)) => Ok((entry, handle, opts, passthrough)),
        Err(e) => {
            fs.forget(ctx, entry.inode, 1);
            Err(e)
        }
    }
}

/// Checks the flags of a FUSE OPEN / OPENDIR request.
///
/// Returns the flags to pass on to the inner filesystem, or `EROFS` when the request asks for
/// write access (`O_WRONLY`, `O_RDWR`), truncation (`O_TRUNC`), an anonymous temporary file
/// (`O_TMPFILE`) or creation (`O_CREAT`, `O_EXCL`). `O_PATH` opens pass unchanged.
pub fn check_open_flags(flags: u32) -> io::Result<u32> {
    // FUSE carries the guest's `int` open flags in a u32; reinterpret the bits.
    let signed = i32::from_ne_bytes(flags.to_ne_bytes());
    if signed & libc::O_PATH != 0 {
        return Ok(flags);
    }
    if signed & libc::O_ACCMODE != libc::O_RDONLY {
        return Err(erofs());
    }
    if signed & (libc::O_TRUNC | libc::O_CREAT | libc::O_EXCL) != 0 {
        return Err(erofs());
    }
    // O_TMPFILE contains the O_DIRECTORY bit, so test for all of its bits.
    if signed & libc::O_TMPFILE == libc::O_TMPFILE {
        return Err(erofs());
    }
    Ok(flags)
}

/// Checks the flags of a FUSE CREATE request.
///
/// The guest sends CREATE when it believes the name does not exist. Like virtiofsd, a
/// read-only `O_CREAT` open (without `O_EXCL`) of a name that does exist is allowed, and is
/// turned into a plain open: this returns the flags without `O_CREAT`. Everything else is
/// `EROFS`.
pub fn check_create_flags(flags: u32) -> io::Result<u32> {
    let signed = i32::from_ne_bytes(flags.to_ne_bytes());
    if signed & libc::O_EXCL != 0 {
        return Err(erofs());
    }
    let without_creat = signed & !libc::O_CREAT;
    check_open_flags(u32::from_ne_bytes(without_creat.to_ne_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bits(flags: i32) -> u32 {
        u32::from_ne_bytes(flags.to_ne_bytes())
    }

    #[test]
    fn open_rules_table() {
        let allowed = [
            libc::O_RDONLY,
            libc::O_RDONLY | libc::O_NOFOLLOW,
            libc::O_RDONLY | libc::O_DIRECTORY,
            libc::O_RDONLY | libc::O_DIRECT,
            libc::O_RDONLY | libc::O_NONBLOCK | libc::O_CLOEXEC,
            libc::O_PATH,
            libc::O_PATH | libc::O_WRONLY,
        ];
        for f in allowed {
            assert_eq!(check_open_flags(bits(f)).unwrap(), bits(f), "flags {f:#x}");
        }
        let refused = [
            libc::O_WRONLY,
            libc::O_RDWR,
            libc::O_RDWR | libc::O_APPEND,
            libc::O_RDONLY | libc::O_TRUNC,
            libc::O_RDONLY | libc::O_CREAT,
            libc::O_RDONLY | libc::O_EXCL,
            libc::O_RDWR | libc::O_TMPFILE,
            libc::O_RDONLY | libc::O_TMPFILE,
            libc::O_ACCMODE,
        ];
        for f in refused {
            let err = check_open_flags(bits(f)).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EROFS), "flags {f:#x}");
        }
    }

    #[test]
    fn create_rules_table() {
        assert_eq!(
            check_create_flags(bits(libc::O_RDONLY | libc::O_CREAT)).unwrap(),
            bits(libc::O_RDONLY)
        );
        for f in [
            libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL,
            libc::O_WRONLY | libc::O_CREAT,
            libc::O_RDWR | libc::O_CREAT | libc::O_TRUNC,
        ] {
            let err = check_create_flags(bits(f)).unwrap_err();
            assert_eq!(err.raw_os_error(), Some(libc::EROFS), "flags {f:#x}");
        }
    }
}
