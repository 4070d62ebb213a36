// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! What a manifest-served share tells the guest about an entry, computed from the manifest
//! alone: inode numbers, attributes, directory entry types, permission checks and filesystem
//! statistics. Nothing here looks at the host.
//!
//! Fixed values (`docs/guest-abi.md`): inode number = manifest position + 1 (the root is 1,
//! stable across runs of the same manifest); `nlink` 1 (for directories too: "not counted",
//! as btrfs and many FUSE filesystems report, so `find` does not use the leaf optimisation);
//! all times 0 (the manifest does not record them); `st_dev` 0; `st_blksize` the Merkle block
//! size.

use std::time::Duration;

use fuse_backend_rs::abi::fuse_abi::{stat64, statvfs64, Attr};
use fuse_backend_rs::api::filesystem::{Context, Entry as FuseEntry, FileSystem};
use verity_manifest::{Entry, EntryKind, Manifest};

/// The FUSE inode number of manifest entry `index`.
pub(crate) fn inode_of(index: usize) -> u64 {
    index as u64 + 1
}

/// The manifest entry index of FUSE inode `inode` (`None` for 0).
pub(crate) fn index_of(inode: u64) -> Option<usize> {
    usize::try_from(inode.checked_sub(1)?).ok()
}

/// The `stat` of manifest entry `index`.
pub(crate) fn stat_of(index: usize, e: &Entry, block_size: u32) -> stat64 {
    let rdev = match e.kind {
        EntryKind::CharDevice { rdev } | EntryKind::BlockDevice { rdev } => rdev,
        _ => 0,
    };
    let size = e.size();
    let mut st: stat64 = Attr {
        ino: inode_of(index),
        size,
        blocks: size.div_ceil(512),
        mode: e.kind.file_type_bits() | e.mode,
        nlink: 1,
        uid: e.uid,
        gid: e.gid,
        blksize: block_size,
        ..Attr::default()
    }
    .into();
    // `Attr` carries a 32-bit rdev; the manifest records the full `st_rdev`.
    st.st_rdev = rdev;
    st
}

/// The LOOKUP / READDIRPLUS answer for manifest entry `index`.
pub(crate) fn entry_of(index: usize, e: &Entry, block_size: u32, timeout: Duration) -> FuseEntry {
    FuseEntry {
        inode: inode_of(index),
        generation: 0,
        attr: stat_of(index, e, block_size),
        attr_flags: 0,
        attr_timeout: timeout,
        entry_timeout: timeout,
    }
}

/// The `d_type` of an entry kind.
pub(crate) fn dirent_type(kind: &EntryKind) -> u32 {
    u32::from(match kind {
        EntryKind::Directory => libc::DT_DIR,
        EntryKind::File { .. } => libc::DT_REG,
        EntryKind::Symlink { .. } => libc::DT_LNK,
        EntryKind::Fifo => libc::DT_FIFO,
        EntryKind::Socket => libc::DT_SOCK,
        EntryKind::CharDevice { .. } => libc::DT_CHR,
        EntryKind::BlockDevice { .. } => libc::DT_BLK,
    })
}

/// ACCESS for `mask` (`R_OK | W_OK | X_OK`, or `F_OK`) by the caller in `ctx`, with the
/// classic Unix rules on the manifest's mode and owners (no supplementary groups: FUSE does
/// not send them). Write access is decided by the caller (the share is read-only).
pub(crate) fn may_access(ctx: &Context, e: &Entry, mask: u32) -> bool {
    let want = mask & 0o7;
    if want == 0 {
        return true;
    }
    let mode = e.mode;
    if ctx.uid == 0 {
        // Root reads anything; it executes only what someone may execute (or a directory).
        let any_exec = mode & 0o111 != 0 || e.kind == EntryKind::Directory;
        return want & 0o1 == 0 || any_exec;
    }
    let bits = if ctx.uid == e.uid {
        (mode >> 6) & 0o7
    } else if ctx.gid == e.gid {
        (mode >> 3) & 0o7
    } else {
        mode & 0o7
    };
    bits & want == want
}

/// A `FileSystem` with only the trait's defaults: its STATFS is the zeroed `statvfs64`
/// libfuse also answers with, built without `unsafe`.
struct Defaults;

impl FileSystem for Defaults {
    type Inode = u64;
    type Handle = u64;
}

/// STATFS of a manifest-served share: read-only, sized by the manifest.
pub(crate) fn statfs_of(manifest: &Manifest) -> statvfs64 {
    let block = manifest.params().block_size() as u64;
    let bytes: u64 = manifest
        .entries()
        .iter()
        .map(|e| e.size().div_ceil(block).saturating_mul(block))
        .fold(0u64, u64::saturating_add);
    let mut st = Defaults
        .statfs(&Context::new(), 1)
        .unwrap_or_else(|_| unreachable!("the default STATFS cannot fail"));
    st.f_bsize = block;
    st.f_frsize = block;
    st.f_blocks = bytes / block;
    st.f_bfree = 0;
    st.f_bavail = 0;
    st.f_files = manifest.entries().len() as u64;
    st.f_ffree = 0;
    st.f_favail = 0;
    st.f_namemax = 255;
    st.f_flag = libc::ST_RDONLY | libc::ST_NOSUID | libc::ST_NODEV;
    st
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(kind: EntryKind, mode: u32, uid: u32, gid: u32) -> Entry {
        Entry {
            path: b"/x".to_vec(),
            kind,
            mode,
            uid,
            gid,
        }
    }

    fn ctx(uid: u32, gid: u32) -> Context {
        let mut c = Context::new();
        c.uid = uid;
        c.gid = gid;
        c
    }

    #[test]
    fn stat_comes_from_the_entry() {
        let e = entry(
            EntryKind::CharDevice {
                rdev: 0x1_0000_0305,
            },
            0o4750,
            7,
            8,
        );
        let st = stat_of(4, &e, 4096);
        assert_eq!(st.st_ino, 5);
        assert_eq!(st.st_mode, libc::S_IFCHR | 0o4750);
        assert_eq!((st.st_uid, st.st_gid, st.st_nlink), (7, 8, 1));
        assert_eq!(st.st_rdev, 0x1_0000_0305);
        assert_eq!((st.st_mtime, st.st_ctime, st.st_atime), (0, 0, 0));
        let l = entry(
            EntryKind::Symlink {
                target: b"abc".to_vec(),
            },
            0o777,
            0,
            0,
        );
        assert_eq!(stat_of(0, &l, 4096).st_size, 3);
        assert_eq!(index_of(inode_of(41)), Some(41));
        assert_eq!(index_of(0), None);
    }

    #[test]
    fn access_follows_unix_rules() {
        let f = entry(
            EntryKind::File {
                size: 0,
                digest: verity_merkle::FileDigest::new(
                    verity_merkle::HashAlgorithm::Sha256,
                    &[0; 32],
                )
                .unwrap(),
            },
            0o640,
            10,
            20,
        );
        let (r, x) = (libc::R_OK as u32, libc::X_OK as u32);
        assert!(may_access(&ctx(10, 0), &f, r));
        assert!(may_access(&ctx(11, 20), &f, r));
        assert!(!may_access(&ctx(11, 21), &f, r));
        assert!(may_access(&ctx(11, 21), &f, 0));
        assert!(may_access(&ctx(0, 0), &f, r));
        assert!(!may_access(&ctx(0, 0), &f, x));
        assert!(!may_access(&ctx(10, 20), &f, x));
        let d = entry(EntryKind::Directory, 0o700, 10, 20);
        assert!(may_access(&ctx(0, 0), &d, x));
        assert!(!may_access(&ctx(11, 20), &d, x));
    }
}
