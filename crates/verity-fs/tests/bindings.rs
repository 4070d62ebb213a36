// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `VerityFs` with a manifest over a real `PassthroughFs`: bindings follow the
//! guest's lookup references (FORGET, BATCH_FORGET, DESTROY drop them, a lookup
//! over the inode budget makes none), and CREATE of an existing name goes through
//! the same checks as LOOKUP.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;

use fuse_backend_rs::abi::fuse_abi::CreateIn;
use fuse_backend_rs::api::filesystem::{Context, FileSystem, FsOptions, ROOT_ID};
use fuse_backend_rs::passthrough::PassthroughFs;
use verity_fs::{new_passthrough, CacheMode, FsConfig, FsLimits, Verity, VerityFs, VerityOptions};
use verity_manifest::{Entry, EntryKind, Manifest};
use verity_merkle::{build_from_bytes, MerkleParams};

const CONTENT: &[u8] = b"sealed content\n";

struct Fixture {
    _dir: tempfile::TempDir,
    fs: VerityFs<PassthroughFs<()>>,
    ctx: Context,
}

fn entry(path: &str, meta: &fs::Metadata, kind: EntryKind) -> Entry {
    Entry {
        path: path.as_bytes().to_vec(),
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
    }
}

fn fixture() -> Fixture {
    fixture_with(&["file"], FsLimits::UNLIMITED)
}

/// A share of `files` (each holding `CONTENT`), all listed, served with `limits`.
fn fixture_with(files: &[&str], limits: FsLimits) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    let params = MerkleParams::default();
    let digest = build_from_bytes(params.clone(), CONTENT).unwrap().digest();
    let mut entries = vec![entry(
        "/",
        &fs::metadata(&root).unwrap(),
        EntryKind::Directory,
    )];
    for name in files {
        fs::write(root.join(name), CONTENT).unwrap();
        entries.push(entry(
            &format!("/{name}"),
            &fs::metadata(root.join(name)).unwrap(),
            EntryKind::File {
                size: CONTENT.len() as u64,
                digest,
            },
        ));
    }
    let manifest = Manifest::new(params, entries).unwrap();
    let cfg = FsConfig {
        shared_dir: root,
        cache: CacheMode::Auto,
        xattr: false,
    };
    let verity = Verity::new(manifest, VerityOptions::default());
    let fs = VerityFs::verified(new_passthrough(&cfg).unwrap(), true, verity).with_limits(limits);
    fs.init(FsOptions::all()).unwrap();
    Fixture {
        _dir: dir,
        fs,
        ctx: Context::new(),
    }
}

fn errno<T>(res: io::Result<T>) -> Option<i32> {
    res.err().and_then(|e| e.raw_os_error())
}

fn open(f: &Fixture, inode: u64) -> io::Result<u64> {
    f.fs.open(&f.ctx, inode, libc::O_RDONLY as u32, 0)
        .map(|(h, _, _)| h.unwrap_or(0))
}

#[test]
fn forget_drops_the_binding() {
    let f = fixture();
    let name = CString::new("file").unwrap();
    let a = f.fs.lookup(&f.ctx, ROOT_ID, &name).unwrap();
    let b = f.fs.lookup(&f.ctx, ROOT_ID, &name).unwrap();
    assert_eq!(a.inode, b.inode);
    f.fs.forget(&f.ctx, a.inode, 1);
    // One reference left: still bound.
    let h = open(&f, a.inode).unwrap();
    f.fs.release(&f.ctx, a.inode, 0, h, false, false, None)
        .unwrap();
    f.fs.batch_forget(&f.ctx, vec![(a.inode, 1)]);
    // No reference left: the inode means nothing any more.
    assert_eq!(errno(open(&f, a.inode)), Some(libc::EIO));
    // A new lookup binds again; DESTROY drops it, the root stays.
    let c = f.fs.lookup(&f.ctx, ROOT_ID, &name).unwrap();
    f.fs.destroy();
    assert_eq!(errno(open(&f, c.inode)), Some(libc::EIO));
    f.fs.init(FsOptions::all()).unwrap();
    let d = f.fs.lookup(&f.ctx, ROOT_ID, &name).unwrap();
    assert!(open(&f, d.inode).is_ok());
}

#[test]
fn create_of_an_existing_name_is_checked_like_lookup() {
    let f = fixture();
    let args = CreateIn {
        flags: libc::O_RDONLY as u32,
        mode: 0o644,
        umask: 0,
        fuse_flags: 0,
    };
    let name = CString::new("file").unwrap();
    let (entry, handle, _, _) = f.fs.create(&f.ctx, ROOT_ID, &name, args).unwrap();
    assert_eq!(entry.attr.st_size, CONTENT.len() as i64);
    assert!(handle.is_some());
    let unlisted = CString::new("other").unwrap();
    assert_eq!(
        errno(f.fs.create(&f.ctx, ROOT_ID, &unlisted, args)),
        Some(libc::EROFS)
    );
}

#[test]
fn a_lookup_over_the_inode_budget_leaves_no_binding() {
    let f = fixture_with(
        &["a", "b"],
        FsLimits {
            max_inodes: 1,
            max_handles: 4,
            max_total: usize::MAX,
        },
    );
    let (a, b) = (CString::new("a").unwrap(), CString::new("b").unwrap());
    let ia = f.fs.lookup(&f.ctx, ROOT_ID, &a).unwrap().inode;
    assert_eq!(errno(f.fs.lookup(&f.ctx, ROOT_ID, &b)), Some(libc::ENFILE));
    assert_eq!(f.fs.live_inodes(), 1);
    // The refused inode was neither kept by the inner filesystem nor bound: once `a` is
    // forgotten, `b` is looked up, bound and opened normally.
    f.fs.forget(&f.ctx, ia, 1);
    assert_eq!(errno(open(&f, ia)), Some(libc::EIO));
    let ib = f.fs.lookup(&f.ctx, ROOT_ID, &b).unwrap().inode;
    let h = open(&f, ib).unwrap();
    f.fs.release(&f.ctx, ib, 0, h, false, false, None).unwrap();
    assert_eq!(f.fs.live_inodes(), 1);
    assert_eq!(f.fs.open_handles(), 0);
}
