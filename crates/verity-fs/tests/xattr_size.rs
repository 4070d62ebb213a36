// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The getxattr size the inner filesystem sees is bounded by `XATTR_SIZE_MAX`.
//!
//! fuse-backend-rs 0.14's `PassthroughFs::getxattr` reserves a buffer of the guest's size (up
//! to 4 GiB) before asking the host; the `fuse_requests` fuzz target hit a 2.7 GB allocation.
//! No xattr value exceeds 64 KiB, so `VerityFs` answers larger sizes with `E2BIG` itself.

use std::ffi::CStr;
use std::io;
use std::sync::Mutex;

use fuse_backend_rs::api::filesystem::{Context, FileSystem, GetxattrReply};
use verity_fs::VerityFs;

/// An inner filesystem that records the sizes it is asked for.
#[derive(Default)]
struct SizeProbe(Mutex<Vec<u32>>);

impl FileSystem for SizeProbe {
    type Inode = u64;
    type Handle = u64;

    fn getxattr(
        &self,
        _ctx: &Context,
        _inode: u64,
        _name: &CStr,
        size: u32,
    ) -> io::Result<GetxattrReply> {
        self.0.lock().unwrap().push(size);
        Ok(if size == 0 {
            GetxattrReply::Count(3)
        } else {
            GetxattrReply::Value(b"abc".to_vec())
        })
    }
}

#[test]
fn getxattr_sizes_above_xattr_size_max_never_reach_the_host() {
    let fs = VerityFs::new(SizeProbe::default(), false);
    let ctx = Context::new();
    for size in [0, 3, 100, 65_536] {
        match fs.getxattr(&ctx, 1, c"user.probe", size).unwrap() {
            GetxattrReply::Count(n) => assert_eq!((size, n), (0, 3)),
            GetxattrReply::Value(v) => assert_eq!(v, b"abc"),
        }
    }
    // The size fuzzing found (fuse-backend-rs reserved it before asking the host) and others
    // above XATTR_SIZE_MAX: E2BIG, and the host is never asked.
    for size in [65_537, 2_703_667_617, u32::MAX] {
        let errno = fs
            .getxattr(&ctx, 1, c"user.probe", size)
            .err()
            .map(|e| e.raw_os_error());
        assert_eq!(errno, Some(Some(libc::E2BIG)), "size {size}");
    }
    assert_eq!(*fs.inner().0.lock().unwrap(), [0, 3, 100, 65_536]);
}
