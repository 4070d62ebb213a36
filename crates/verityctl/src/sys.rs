// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The one system call of verityctl that has no safe wrapper:
//! `FS_IOC_MEASURE_VERITY`.
#![allow(unsafe_code)]

use std::fs::File;
use std::io;
use std::os::fd::AsRawFd;

use verity_merkle::{FileDigest, HashAlgorithm, MAX_DIGEST_SIZE};

/// `_IOWR('f', 134, struct fsverity_digest)` (generic ioctl encoding).
const FS_IOC_MEASURE_VERITY: libc::c_ulong = 0xC004_6686;

/// `struct fsverity_digest` with room for the largest digest.
#[repr(C)]
struct FsverityDigest {
    digest_algorithm: u16,
    digest_size: u16,
    digest: [u8; MAX_DIGEST_SIZE],
}

/// Asks the kernel (or, through FUSE, the file server) for the file's
/// fs-verity digest. Returns the OS error on failure (ENOTTY: no fs-verity
/// on this filesystem; ENODATA: not a verity file; EOVERFLOW: digest larger
/// than the buffer).
pub fn measure_verity(file: &File) -> io::Result<FileDigest> {
    let mut arg = FsverityDigest {
        digest_algorithm: 0,
        // MAX_DIGEST_SIZE is 64.
        digest_size: MAX_DIGEST_SIZE as u16,
        digest: [0; MAX_DIGEST_SIZE],
    };
    // SAFETY: the fd is open and owned by `file` for the whole call; `arg` is
    // a properly aligned `struct fsverity_digest` whose `digest_size` (64)
    // matches the room in `digest`, so the kernel writes at most
    // 4 + 64 bytes inside it; `arg` outlives the call.
    let ret = unsafe {
        libc::ioctl(
            file.as_raw_fd(),
            FS_IOC_MEASURE_VERITY as _,
            &mut arg as *mut FsverityDigest,
        )
    };
    if ret != 0 {
        return Err(io::Error::last_os_error());
    }
    let alg = u8::try_from(arg.digest_algorithm)
        .ok()
        .and_then(HashAlgorithm::from_id)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("unknown fs-verity algorithm {}", arg.digest_algorithm),
            )
        })?;
    let size = usize::from(arg.digest_size);
    arg.digest
        .get(..size)
        .and_then(|d| FileDigest::new(alg, d))
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("digest size {size} does not match {alg}"),
            )
        })
}
