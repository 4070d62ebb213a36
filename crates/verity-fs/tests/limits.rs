// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `VerityFs` budgets and size caps over a real `PassthroughFs`: inodes over the budget are
//! `ENFILE` (and FORGET frees them), open handles over the budget are `EMFILE` (and RELEASE
//! frees them), READDIRPLUS delivers entries over the budget without a node id, and
//! guest-chosen sizes above the caps are refused before anything is allocated.

use std::ffi::CString;
use std::fs;
use std::io;

use fuse_backend_rs::api::filesystem::{
    Context, DirEntry, Entry, FileSystem, FsOptions, ZeroCopyWriter, ROOT_ID,
};
use fuse_backend_rs::file_traits::FileReadWriteVolatile;
use fuse_backend_rs::passthrough::PassthroughFs;
use verity_fs::{
    new_passthrough, CacheMode, FsConfig, FsLimits, VerityFs, MAX_IO_SIZE, MAX_XATTR_SIZE,
};

/// Files in the share besides `sub/`.
const FILES: usize = 20;

struct Fixture {
    _dir: tempfile::TempDir,
    fs: VerityFs<PassthroughFs<()>>,
    ctx: Context,
}

fn fixture(limits: FsLimits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    for i in 0..FILES {
        fs::write(root.join(format!("f{i:02}")), format!("file {i}\n")).unwrap();
    }
    fs::create_dir(root.join("sub")).unwrap();
    let cfg = FsConfig {
        shared_dir: root,
        cache: CacheMode::Auto,
        xattr: true,
    };
    let fs = VerityFs::new(new_passthrough(&cfg).unwrap(), true).with_limits(limits);
    fs.init(FsOptions::all()).unwrap();
    Fixture {
        _dir: dir,
        fs,
        ctx: Context::new(),
    }
}

fn name(i: usize) -> CString {
    CString::new(format!("f{i:02}")).unwrap()
}

fn errno<T>(res: io::Result<T>) -> Option<i32> {
    res.err().and_then(|e| e.raw_os_error())
}

/// A writer that must never receive data.
struct NoWriter;

impl io::Write for NoWriter {
    fn write(&mut self, _: &[u8]) -> io::Result<usize> {
        panic!("a refused read wrote data");
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ZeroCopyWriter for NoWriter {
    fn write_from(
        &mut self,
        _: &mut dyn FileReadWriteVolatile,
        _: usize,
        _: u64,
    ) -> io::Result<usize> {
        panic!("a refused read wrote data");
    }
    fn available_bytes(&self) -> usize {
        usize::MAX
    }
}

#[test]
fn lookups_over_the_inode_budget_are_enfile_until_forgotten() {
    let f = fixture(FsLimits {
        max_inodes: 5,
        max_handles: 100,
        max_total: usize::MAX,
    });
    let mut held = Vec::new();
    for i in 0..5 {
        held.push(f.fs.lookup(&f.ctx, ROOT_ID, &name(i)).unwrap().inode);
    }
    assert_eq!(f.fs.live_inodes(), 5);
    assert_eq!(
        errno(f.fs.lookup(&f.ctx, ROOT_ID, &name(5))),
        Some(libc::ENFILE)
    );
    // A known inode needs no new slot; the root is never counted; GETATTR still works.
    assert_eq!(
        f.fs.lookup(&f.ctx, ROOT_ID, &name(0)).unwrap().inode,
        held[0]
    );
    assert!(f.fs.lookup(&f.ctx, ROOT_ID, c"..").is_ok());
    for &ino in &held {
        f.fs.getattr(&f.ctx, ino, None).unwrap();
    }
    // The refused inode was dropped by the inner filesystem as well.
    assert_eq!(f.fs.live_inodes(), 5);
    // f00 has two references: one FORGET keeps its slot, the second frees it.
    f.fs.forget(&f.ctx, held[0], 1);
    assert_eq!(
        errno(f.fs.lookup(&f.ctx, ROOT_ID, &name(5))),
        Some(libc::ENFILE)
    );
    f.fs.batch_forget(&f.ctx, vec![(held[0], 1), (held[1], u64::MAX)]);
    assert_eq!(f.fs.live_inodes(), 3);
    f.fs.lookup(&f.ctx, ROOT_ID, &name(5)).unwrap();
    f.fs.lookup(&f.ctx, ROOT_ID, &name(6)).unwrap();
    assert_eq!(
        errno(f.fs.lookup(&f.ctx, ROOT_ID, &name(7))),
        Some(libc::ENFILE)
    );
    // DESTROY drops everything.
    f.fs.destroy();
    assert_eq!(f.fs.live_inodes(), 0);
}

#[test]
fn opens_over_the_handle_budget_are_emfile_until_released() {
    let f = fixture(FsLimits {
        max_inodes: 100,
        max_handles: 3,
        max_total: usize::MAX,
    });
    let file = f.fs.lookup(&f.ctx, ROOT_ID, &name(0)).unwrap().inode;
    let sub =
        f.fs.lookup(&f.ctx, ROOT_ID, &CString::new("sub").unwrap())
            .unwrap()
            .inode;
    let h1 = f.fs.open(&f.ctx, file, 0, 0).unwrap().0.unwrap();
    let h2 = f.fs.open(&f.ctx, file, 0, 0).unwrap().0.unwrap();
    let d1 = f.fs.opendir(&f.ctx, sub, 0).unwrap().0.unwrap();
    assert_eq!(f.fs.open_handles(), 3);
    assert_eq!(errno(f.fs.open(&f.ctx, file, 0, 0)), Some(libc::EMFILE));
    assert_eq!(errno(f.fs.opendir(&f.ctx, sub, 0)), Some(libc::EMFILE));
    // Refused opens take no slot; write opens are EROFS before any slot is taken.
    assert_eq!(
        errno(f.fs.open(&f.ctx, file, libc::O_RDWR as u32, 0)),
        Some(libc::EROFS)
    );
    // A release of an unknown handle frees nothing.
    assert!(f
        .fs
        .release(&f.ctx, file, 0, 999, false, false, None)
        .is_err());
    assert_eq!(errno(f.fs.open(&f.ctx, file, 0, 0)), Some(libc::EMFILE));
    f.fs.release(&f.ctx, file, 0, h1, false, false, None)
        .unwrap();
    let h3 = f.fs.open(&f.ctx, file, 0, 0).unwrap().0.unwrap();
    assert_eq!(errno(f.fs.open(&f.ctx, file, 0, 0)), Some(libc::EMFILE));
    f.fs.releasedir(&f.ctx, sub, 0, d1).unwrap();
    assert_eq!(f.fs.open_handles(), 2);
    f.fs.release(&f.ctx, file, 0, h2, false, false, None)
        .unwrap();
    f.fs.release(&f.ctx, file, 0, h3, false, false, None)
        .unwrap();
    assert_eq!(f.fs.open_handles(), 0);
}

#[test]
fn readdirplus_over_the_inode_budget_lists_names_without_node_ids() {
    let f = fixture(FsLimits {
        max_inodes: 4,
        max_handles: 10,
        max_total: usize::MAX,
    });
    let dir = f.fs.opendir(&f.ctx, ROOT_ID, 0).unwrap().0.unwrap();
    let mut entries: Vec<(Vec<u8>, u64)> = Vec::new();
    f.fs.readdirplus(
        &f.ctx,
        ROOT_ID,
        dir,
        65_536,
        0,
        &mut |d: DirEntry, e: Entry| {
            entries.push((d.name.to_vec(), e.inode));
            Ok(1)
        },
    )
    .unwrap();
    let names = entries
        .iter()
        .filter(|(n, _)| n != b"." && n != b"..")
        .count();
    assert_eq!(names, FILES + 1, "every name is listed");
    let with_ids: Vec<u64> = entries
        .iter()
        .filter(|(n, i)| *i != 0 && *i != ROOT_ID && n != b"." && n != b"..")
        .map(|(_, i)| *i)
        .collect();
    assert_eq!(with_ids.len(), 4, "node ids beyond the budget: {entries:?}");
    assert_eq!(f.fs.live_inodes(), 4);
    // The entries delivered without a node id hold nothing in the inner filesystem either:
    // forgetting the delivered ones frees the budget for new lookups.
    for ino in with_ids {
        f.fs.forget(&f.ctx, ino, 1);
    }
    assert_eq!(f.fs.live_inodes(), 0);
    for i in 0..4 {
        f.fs.lookup(&f.ctx, ROOT_ID, &name(i)).unwrap();
    }
    f.fs.releasedir(&f.ctx, ROOT_ID, 0, dir).unwrap();
}

#[test]
fn sizes_above_the_caps_are_refused() {
    let f = fixture(FsLimits::UNLIMITED);
    let file = f.fs.lookup(&f.ctx, ROOT_ID, &name(0)).unwrap().inode;
    let fh = f.fs.open(&f.ctx, file, 0, 0).unwrap().0.unwrap();
    let read = |size| f.fs.read(&f.ctx, file, fh, &mut NoWriter, size, 0, None, 0);
    assert_eq!(errno(read(MAX_IO_SIZE + 1)), Some(libc::ENOMEM));
    assert_eq!(errno(read(u32::MAX)), Some(libc::ENOMEM));
    let dir = f.fs.opendir(&f.ctx, ROOT_ID, 0).unwrap().0.unwrap();
    let listed = f.fs.readdir(&f.ctx, ROOT_ID, dir, u32::MAX, 0, &mut |_| {
        panic!("an over-size READDIR listed entries")
    });
    assert_eq!(errno(listed), Some(libc::ENOMEM));
    let listed =
        f.fs.readdirplus(&f.ctx, ROOT_ID, dir, MAX_IO_SIZE + 1, 0, &mut |_, _| {
            panic!("an over-size READDIRPLUS listed entries")
        });
    assert_eq!(errno(listed), Some(libc::ENOMEM));
    let xname = CString::new("user.x").unwrap();
    for size in [MAX_XATTR_SIZE + 1, u32::MAX] {
        assert_eq!(
            errno(f.fs.getxattr(&f.ctx, file, &xname, size)),
            Some(libc::E2BIG)
        );
        assert_eq!(errno(f.fs.listxattr(&f.ctx, file, size)), Some(libc::E2BIG));
    }
    // At the cap the request is served.
    assert!(f.fs.listxattr(&f.ctx, file, MAX_XATTR_SIZE).is_ok());
    assert_ne!(
        errno(f.fs.getxattr(&f.ctx, file, &xname, MAX_XATTR_SIZE)),
        Some(libc::E2BIG)
    );
    f.fs.release(&f.ctx, file, 0, fh, false, false, None)
        .unwrap();
    f.fs.releasedir(&f.ctx, ROOT_ID, 0, dir).unwrap();
}

/// Listing a directory again and again pins nothing: once the guest forgets what the
/// listings and its LOOKUP gave it, the directory's slot and descriptor are gone.
#[test]
fn repeated_readdirplus_pins_nothing() {
    let f = fixture(FsLimits {
        max_inodes: 3,
        max_handles: 10,
        max_total: usize::MAX,
    });
    let sub =
        f.fs.lookup(&f.ctx, ROOT_ID, &CString::new("sub").unwrap())
            .unwrap()
            .inode;
    fs::write(f._dir.path().join("sub/inner"), b"x").unwrap();
    let dir = f.fs.opendir(&f.ctx, sub, 0).unwrap().0.unwrap();
    for _ in 0..3 {
        let mut delivered = Vec::new();
        f.fs.readdirplus(&f.ctx, sub, dir, 65_536, 0, &mut |_: DirEntry, e: Entry| {
            delivered.push(e.inode);
            Ok(1)
        })
        .unwrap();
        assert!(!delivered.is_empty());
        for ino in delivered.into_iter().filter(|&i| i != 0) {
            f.fs.forget(&f.ctx, ino, 1);
        }
    }
    f.fs.releasedir(&f.ctx, sub, 0, dir).unwrap();
    assert_eq!(f.fs.live_inodes(), 1);
    f.fs.forget(&f.ctx, sub, 1);
    assert_eq!(f.fs.live_inodes(), 0);
    assert_eq!(
        errno(f.fs.getattr(&f.ctx, sub, None)),
        Some(libc::EBADF),
        "the inner filesystem still holds `sub`"
    );
}
