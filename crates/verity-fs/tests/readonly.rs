// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `VerityFs` over a real `PassthroughFs` on a temporary directory: reads work, every
//! mutation is EROFS, and the INIT / statfs / xattr / ioctl answers are the read-only ones.

use std::ffi::CString;
use std::fs;
use std::io;
use std::os::unix::io::RawFd;
use std::path::Path;

use fuse_backend_rs::abi::fuse_abi::CreateIn;
use fuse_backend_rs::abi::virtio_fs::RemovemappingOne;
use fuse_backend_rs::api::filesystem::{
    Context, Entry, FileSystem, FsOptions, IoctlData, SetattrValid, ZeroCopyReader, ZeroCopyWriter,
    ROOT_ID,
};
use fuse_backend_rs::file_buf::FileVolatileSlice;
use fuse_backend_rs::file_traits::FileReadWriteVolatile;
use fuse_backend_rs::passthrough::PassthroughFs;
use fuse_backend_rs::transport::FsCacheReqHandler;
use verity_fs::{
    new_passthrough, CacheMode, FsConfig, VerityFs, ADDED_INIT_FLAGS, FORBIDDEN_INIT_FLAGS,
};
use vm_memory::VolatileSlice;

const CONTENT: &[u8] = b"hello, read-only world\n";

/// Collects read data in memory.
struct VecWriter(Vec<u8>);

impl io::Write for VecWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl ZeroCopyWriter for VecWriter {
    fn write_from(
        &mut self,
        f: &mut dyn FileReadWriteVolatile,
        count: usize,
        off: u64,
    ) -> io::Result<usize> {
        let mut tmp = vec![0u8; count];
        let slice = VolatileSlice::from(&mut tmp[..]);
        let n = f.read_at_volatile(FileVolatileSlice::from_volatile_slice(&slice), off)?;
        self.0.extend_from_slice(&tmp[..n]);
        Ok(n)
    }
    fn available_bytes(&self) -> usize {
        1 << 20
    }
}

/// A write payload that must never be consumed.
struct UntouchableReader;

impl io::Read for UntouchableReader {
    fn read(&mut self, _buf: &mut [u8]) -> io::Result<usize> {
        panic!("a refused write read its payload");
    }
}

impl ZeroCopyReader for UntouchableReader {
    fn read_to(
        &mut self,
        _f: &mut dyn FileReadWriteVolatile,
        _count: usize,
        _off: u64,
    ) -> io::Result<usize> {
        panic!("a refused write read its payload");
    }
}

/// A DAX handler that must never be called.
struct NoDax;

impl FsCacheReqHandler for NoDax {
    fn map(&mut self, _: u64, _: u64, _: u64, _: u64, _: RawFd) -> io::Result<()> {
        panic!("DAX mapping was attempted");
    }
    fn unmap(&mut self, _: Vec<RemovemappingOne>) -> io::Result<()> {
        panic!("DAX unmapping was attempted");
    }
}

struct Fixture {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    fs: VerityFs<PassthroughFs<()>>,
    ctx: Context,
}

fn fixture(cache: CacheMode, xattr: bool) -> Fixture {
    let dir = tempfile::tempdir().unwrap();
    let root = fs::canonicalize(dir.path()).unwrap();
    fs::write(root.join("file"), CONTENT).unwrap();
    fs::create_dir(root.join("sub")).unwrap();
    let cfg = FsConfig {
        shared_dir: root.clone(),
        cache,
        xattr,
    };
    let fs = VerityFs::new(new_passthrough(&cfg).unwrap(), cache.readdirplus());
    fs.init(FsOptions::all()).unwrap();
    Fixture {
        _dir: dir,
        root,
        fs,
        ctx: Context::new(),
    }
}

fn name(s: &str) -> CString {
    CString::new(s).unwrap()
}

fn errno<T>(res: io::Result<T>) -> Option<i32> {
    match res {
        Ok(_) => None,
        Err(e) => e.raw_os_error(),
    }
}

fn lookup(f: &Fixture, n: &str) -> Entry {
    f.fs.lookup(&f.ctx, ROOT_ID, &name(n)).unwrap()
}

fn assert_unchanged(root: &Path) {
    assert_eq!(fs::read(root.join("file")).unwrap(), CONTENT);
    let mut names: Vec<_> = fs::read_dir(root)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["file", "sub"]);
}

#[test]
fn reads_are_served() {
    let f = fixture(CacheMode::Auto, false);
    let entry = lookup(&f, "file");
    let (handle, _, _) =
        f.fs.open(&f.ctx, entry.inode, libc::O_RDONLY as u32, 0)
            .unwrap();
    let handle = handle.unwrap();
    let mut w = VecWriter(Vec::new());
    let n =
        f.fs.read(&f.ctx, entry.inode, handle, &mut w, 4096, 0, None, 0)
            .unwrap();
    assert_eq!(n, CONTENT.len());
    assert_eq!(w.0, CONTENT);
    let mut w = VecWriter(Vec::new());
    f.fs.read(&f.ctx, entry.inode, handle, &mut w, 4, 7, None, 0)
        .unwrap();
    assert_eq!(w.0, &CONTENT[7..11]);
    f.fs.release(&f.ctx, entry.inode, 0, handle, false, false, None)
        .unwrap();
    let (attr, _) = f.fs.getattr(&f.ctx, entry.inode, None).unwrap();
    assert_eq!(attr.st_size, i64::try_from(CONTENT.len()).unwrap());
}

#[test]
fn directories_can_be_listed() {
    let f = fixture(CacheMode::Auto, false);
    let (handle, _) =
        f.fs.opendir(&f.ctx, ROOT_ID, libc::O_RDONLY as u32)
            .unwrap();
    let handle = handle.unwrap();
    let mut names = Vec::new();
    f.fs.readdir(&f.ctx, ROOT_ID, handle, 4096, 0, &mut |e| {
        names.push(String::from_utf8_lossy(e.name).into_owned());
        Ok(1)
    })
    .unwrap();
    names.sort();
    assert_eq!(names, ["file", "sub"]);
    f.fs.releasedir(&f.ctx, ROOT_ID, 0, handle).unwrap();
}

#[test]
fn lookup_names_are_single_components() {
    let f = fixture(CacheMode::Auto, false);
    for n in ["", "sub/../file", "/etc", "../file"] {
        let res = f.fs.lookup(&f.ctx, ROOT_ID, &name(n));
        assert_eq!(errno(res), Some(libc::EINVAL), "lookup {n:?}");
    }
    // `..` at the root is the root.
    let up = lookup(&f, "..");
    assert_eq!(up.inode, ROOT_ID);
}

#[test]
fn write_opens_are_erofs() {
    let f = fixture(CacheMode::Auto, false);
    let entry = lookup(&f, "file");
    for flags in [
        libc::O_WRONLY,
        libc::O_RDWR,
        libc::O_RDONLY | libc::O_TRUNC,
        libc::O_WRONLY | libc::O_APPEND,
    ] {
        let res = f.fs.open(&f.ctx, entry.inode, flags as u32, 0);
        assert_eq!(errno(res), Some(libc::EROFS), "open flags {flags:#x}");
    }
    // CREATE of a missing name, and with O_EXCL or write access, is EROFS ...
    for (n, flags) in [
        ("new", libc::O_RDONLY | libc::O_CREAT),
        ("file", libc::O_RDONLY | libc::O_CREAT | libc::O_EXCL),
        ("file", libc::O_WRONLY | libc::O_CREAT),
        ("sub/../file", libc::O_RDONLY | libc::O_CREAT),
        ("", libc::O_RDONLY | libc::O_CREAT),
    ] {
        let args = CreateIn {
            flags: flags as u32,
            mode: 0o644,
            ..Default::default()
        };
        let res = f.fs.create(&f.ctx, ROOT_ID, &name(n), args);
        assert_eq!(errno(res), Some(libc::EROFS), "create {n} {flags:#x}");
    }
    // ... but a read-only O_CREAT of an existing name opens it.
    let args = CreateIn {
        flags: (libc::O_RDONLY | libc::O_CREAT) as u32,
        mode: 0o644,
        ..Default::default()
    };
    let (entry, handle, _, _) = f.fs.create(&f.ctx, ROOT_ID, &name("file"), args).unwrap();
    assert!(handle.is_some());
    assert_eq!(entry.attr.st_size, i64::try_from(CONTENT.len()).unwrap());
    assert_unchanged(&f.root);
}

#[test]
fn every_mutation_is_erofs() {
    let f = fixture(CacheMode::Auto, true);
    let file = lookup(&f, "file");
    let (attr, _) = f.fs.getattr(&f.ctx, file.inode, None).unwrap();
    let (handle, _, _) =
        f.fs.open(&f.ctx, file.inode, libc::O_RDONLY as u32, 0)
            .unwrap();
    let handle = handle.unwrap();
    let ctx = &f.ctx;
    let fs = &f.fs;
    let results = [
        (
            "setattr",
            errno(fs.setattr(ctx, file.inode, attr, None, SetattrValid::SIZE)),
        ),
        (
            "setattr mode",
            errno(fs.setattr(ctx, file.inode, attr, None, SetattrValid::MODE)),
        ),
        (
            "symlink",
            errno(fs.symlink(ctx, &name("/etc"), ROOT_ID, &name("l"))),
        ),
        (
            "mknod",
            errno(fs.mknod(ctx, ROOT_ID, &name("n"), libc::S_IFREG | 0o644, 0, 0)),
        ),
        ("mkdir", errno(fs.mkdir(ctx, ROOT_ID, &name("d"), 0o755, 0))),
        ("unlink", errno(fs.unlink(ctx, ROOT_ID, &name("file")))),
        ("rmdir", errno(fs.rmdir(ctx, ROOT_ID, &name("sub")))),
        (
            "rename",
            errno(fs.rename(ctx, ROOT_ID, &name("file"), ROOT_ID, &name("x"), 0)),
        ),
        ("link", errno(fs.link(ctx, file.inode, ROOT_ID, &name("h")))),
        (
            "write",
            errno(fs.write(
                ctx,
                file.inode,
                handle,
                &mut UntouchableReader,
                4,
                0,
                None,
                false,
                0,
                0,
            )),
        ),
        (
            "fallocate",
            errno(fs.fallocate(ctx, file.inode, handle, 0, 0, 4096)),
        ),
        (
            "setxattr",
            errno(fs.setxattr(ctx, file.inode, &name("user.x"), b"v", 0)),
        ),
        (
            "removexattr",
            errno(fs.removexattr(ctx, file.inode, &name("user.x"))),
        ),
        (
            "access W_OK",
            errno(fs.access(ctx, file.inode, libc::W_OK as u32)),
        ),
    ];
    for (op, res) in results {
        assert_eq!(res, Some(libc::EROFS), "{op}");
    }
    // Read permission checks still reach the host.
    fs.access(ctx, file.inode, libc::R_OK as u32).unwrap();
    assert_unchanged(&f.root);
}

#[test]
fn dax_mappings_are_refused() {
    let f = fixture(CacheMode::Always, false);
    let file = lookup(&f, "file");
    let (handle, _, _) =
        f.fs.open(&f.ctx, file.inode, libc::O_RDONLY as u32, 0)
            .unwrap();
    let res = f.fs.setupmapping(
        &f.ctx,
        file.inode,
        handle.unwrap(),
        0,
        4096,
        0,
        0,
        &mut NoDax,
    );
    assert_eq!(errno(res), Some(libc::ENOSYS));
    let res =
        f.fs.removemapping(&f.ctx, file.inode, Vec::new(), &mut NoDax);
    assert_eq!(errno(res), Some(libc::ENOSYS));
}

#[test]
fn statfs_reports_read_only() {
    let f = fixture(CacheMode::Auto, false);
    let st = f.fs.statfs(&f.ctx, ROOT_ID).unwrap();
    assert_ne!(st.f_flag & libc::ST_RDONLY, 0);
}

#[test]
fn init_flags_are_read_only_and_fast() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = FsConfig {
        shared_dir: fs::canonicalize(dir.path()).unwrap(),
        cache: CacheMode::Auto,
        xattr: false,
    };
    let fs = VerityFs::new(new_passthrough(&cfg).unwrap(), true);
    let reply = fs.init(FsOptions::all()).unwrap();
    assert!(reply.contains(ADDED_INIT_FLAGS));
    assert!(reply.contains(FsOptions::ASYNC_READ | FsOptions::MAX_PAGES));
    assert!(reply.contains(FsOptions::DO_READDIRPLUS));
    assert!(!reply.intersects(FORBIDDEN_INIT_FLAGS));
    assert!(!reply.contains(FsOptions::WRITEBACK_CACHE));
    assert!(!reply.contains(FsOptions::PERFILE_DAX));

    let never = VerityFs::new(
        new_passthrough(&cfg).unwrap(),
        CacheMode::Never.readdirplus(),
    );
    let reply = never.init(FsOptions::all()).unwrap();
    assert!(!reply.contains(FsOptions::DO_READDIRPLUS));
}

#[test]
fn xattrs_without_support_do_not_return_enosys() {
    let f = fixture(CacheMode::Auto, false);
    let file = lookup(&f, "file");
    let res = f.fs.getxattr(&f.ctx, file.inode, &name("user.x"), 64);
    assert_eq!(errno(res), Some(libc::ENODATA));
    let res = f.fs.listxattr(&f.ctx, file.inode, 64);
    assert_eq!(errno(res), Some(libc::EOPNOTSUPP));
}

#[test]
fn ioctls_without_manifest() {
    let f = fixture(CacheMode::Auto, false);
    let file = lookup(&f, "file");
    let (handle, _, _) =
        f.fs.open(&f.ctx, file.inode, libc::O_RDONLY as u32, 0)
            .unwrap();
    let handle = handle.unwrap();
    let input = [0u8; 68];
    let call = |cmd: u32, out_size: u32| {
        let data = IoctlData {
            result: 0,
            data: Some(&input),
        };
        f.fs.ioctl(&f.ctx, file.inode, handle, 0, cmd, data, out_size)
            .map(|d| (d.result, d.data.map(<[u8]>::to_vec)))
    };
    // FS_IOC_MEASURE_VERITY as the guest sends it: an unverified file has no digest.
    assert_eq!(call(0xc004_6686, 68).ok(), Some((-libc::ENODATA, None)));
    // FS_IOC_GETFLAGS: no flags.
    assert_eq!(call(0x8008_6601, 4).ok(), Some((0, Some(vec![0; 4]))));
    // FS_IOC_ENABLE_VERITY: read-only share.
    assert_eq!(call(0x4080_6685, 0).ok(), Some((-libc::EROFS, None)));
    // FS_IOC_READ_VERITY_METADATA and anything else: ENOTTY.
    for cmd in [0xc028_6687, 0x1234] {
        let res = call(cmd, 40);
        assert_eq!(res.err().and_then(|e| e.raw_os_error()), Some(libc::ENOTTY));
    }
}

/// fuse-backend-rs 0.14 passes the READ's `flags` to `fcntl(F_SETFL)` and, when that fails,
/// closes the handle's descriptor (found by the `fuse_requests` fuzz target). The handle then
/// read whatever file reused the number. The guest's READ flags must never reach `fcntl`.
#[test]
fn a_failed_read_never_closes_the_handles_descriptor() {
    let f = fixture(CacheMode::Auto, false);
    let entry = lookup(&f, "file");
    // O_PATH opens are allowed; F_SETFL on their descriptor fails with EBADF.
    let path_flags = (libc::O_PATH | libc::O_RDONLY) as u32;
    let (path_handle, _, _) = f.fs.open(&f.ctx, entry.inode, path_flags, 0).unwrap();
    let path_handle = path_handle.unwrap();
    let mut w = VecWriter(Vec::new());
    let guest_flags = libc::O_NONBLOCK as u32;
    assert!(f
        .fs
        .read(
            &f.ctx,
            entry.inode,
            path_handle,
            &mut w,
            64,
            0,
            None,
            guest_flags
        )
        .is_err());
    // A new descriptor gets the lowest free number: the O_PATH handle's, had it been closed.
    let (data_handle, _, _) =
        f.fs.open(&f.ctx, entry.inode, libc::O_RDONLY as u32, 0)
            .unwrap();
    let data_handle = data_handle.unwrap();
    let mut w = VecWriter(Vec::new());
    let res =
        f.fs.read(&f.ctx, entry.inode, path_handle, &mut w, 64, 0, None, 0);
    assert_eq!(errno(res), Some(libc::EBADF), "read {:?}", w.0);
    let mut w = VecWriter(Vec::new());
    f.fs.read(
        &f.ctx,
        entry.inode,
        data_handle,
        &mut w,
        64,
        0,
        None,
        guest_flags,
    )
    .unwrap();
    assert_eq!(w.0, CONTENT);
    for h in [data_handle, path_handle] {
        f.fs.release(&f.ctx, entry.inode, 0, h, false, false, None)
            .unwrap();
    }
    // A released handle is gone.
    let mut w = VecWriter(Vec::new());
    let res =
        f.fs.read(&f.ctx, entry.inode, data_handle, &mut w, 64, 0, None, 0);
    assert_eq!(errno(res), Some(libc::EBADF));
}
