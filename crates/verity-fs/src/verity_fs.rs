// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! [`VerityFs`]: the read-only wrapper around the inner filesystem.
//!
//! Every method of fuse-backend-rs's `FileSystem` trait is listed here explicitly: the trait's
//! defaults answer `ENOSYS`, so a forgotten forward would silently break a request, and a
//! forgotten refusal must never silently forward a mutation. Methods fall in four groups:
//! - forwarded unchanged (lookups after name validation, attributes, reads, directory listing,
//!   release, locks);
//! - refused with `EROFS` (every mutation);
//! - adjusted (`init`, `open`, `opendir`, `create`, `access`, `statfs`, `getxattr`,
//!   `listxattr`);
//! - answered here without the inner filesystem (`ioctl`, DAX mappings).
//!
//! fuse-backend-rs 0.14 has no trait method for COPY_FILE_RANGE or TMPFILE: the daemon answers
//! those with `EROFS` before the server sees them.

use std::ffi::CStr;
use std::io;
use std::time::Duration;

use fuse_backend_rs::abi::fuse_abi::{stat64, statvfs64, CreateIn};
use fuse_backend_rs::abi::virtio_fs::RemovemappingOne;
use fuse_backend_rs::api::filesystem::{
    Context, DirEntry, Entry, FileLock, FileSystem, FsOptions, GetxattrReply, IoctlData,
    ListxattrReply, OpenOptions, SetattrValid, ZeroCopyReader, ZeroCopyWriter,
};
use fuse_backend_rs::transport::FsCacheReqHandler;

use crate::errno::{enosys, erofs, replace_enosys};
use crate::init::negotiate_init;
use crate::ioctl::{handle_ioctl, IoctlRequest};
use crate::names::check_name;
use crate::open_flags::{check_create_flags, check_open_flags};

/// Read-only filesystem wrapper around `F` (normally `PassthroughFs`).
///
/// This is the seam where later verification is added: the wrapper sees every lookup, open,
/// read and ioctl before the inner filesystem does.
#[derive(Debug)]
pub struct VerityFs<F> {
    inner: F,
    readdirplus: bool,
}

impl<F> VerityFs<F> {
    /// Wraps `inner`. With `readdirplus == false` the readdirplus INIT flags are never enabled
    /// (virtiofsd does this for `cache=never`).
    pub fn new(inner: F, readdirplus: bool) -> Self {
        VerityFs { inner, readdirplus }
    }

    /// The wrapped filesystem.
    pub fn inner(&self) -> &F {
        &self.inner
    }
}

impl<F: FileSystem> FileSystem for VerityFs<F> {
    type Inode = F::Inode;
    type Handle = F::Handle;

    // ---- lifecycle ----------------------------------------------------------------------

    fn init(&self, capable: FsOptions) -> io::Result<FsOptions> {
        negotiate_init(capable, self.readdirplus, |c| self.inner.init(c))
    }

    fn destroy(&self) {
        self.inner.destroy()
    }

    // ---- forwarded: names, attributes, lifetime ---------------------------------------

    fn lookup(&self, ctx: &Context, parent: Self::Inode, name: &CStr) -> io::Result<Entry> {
        check_name(name)?;
        self.inner.lookup(ctx, parent, name)
    }

    fn forget(&self, ctx: &Context, inode: Self::Inode, count: u64) {
        self.inner.forget(ctx, inode, count)
    }

    fn batch_forget(&self, ctx: &Context, requests: Vec<(Self::Inode, u64)>) {
        self.inner.batch_forget(ctx, requests)
    }

    fn getattr(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        handle: Option<Self::Handle>,
    ) -> io::Result<(stat64, Duration)> {
        self.inner.getattr(ctx, inode, handle)
    }

    fn readlink(&self, ctx: &Context, inode: Self::Inode) -> io::Result<Vec<u8>> {
        self.inner.readlink(ctx, inode)
    }

    fn access(&self, ctx: &Context, inode: Self::Inode, mask: u32) -> io::Result<()> {
        // Like a read-only mount: asking for write permission fails with EROFS.
        if mask & u32::from_ne_bytes(libc::W_OK.to_ne_bytes()) != 0 {
            return Err(erofs());
        }
        self.inner.access(ctx, inode, mask)
    }

    fn statfs(&self, ctx: &Context, inode: Self::Inode) -> io::Result<statvfs64> {
        let mut st = self.inner.statfs(ctx, inode)?;
        st.f_flag |= libc::ST_RDONLY;
        Ok(st)
    }

    // ---- adjusted: opens ----------------------------------------------------------------

    fn open(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        flags: u32,
        fuse_flags: u32,
    ) -> io::Result<(Option<Self::Handle>, OpenOptions, Option<u32>)> {
        let flags = check_open_flags(flags)?;
        self.inner.open(ctx, inode, flags, fuse_flags)
    }

    fn create(
        &self,
        ctx: &Context,
        parent: Self::Inode,
        name: &CStr,
        args: CreateIn,
    ) -> io::Result<(Entry, Option<Self::Handle>, OpenOptions, Option<u32>)> {
        // The guest sends CREATE for names it believes are missing. Nothing can be created,
        // but an O_CREAT open (without O_EXCL, read-only) of a name that does exist on the
        // host is served as a plain open, like virtiofsd's read-only mode.
        let flags = check_create_flags(args.flags)?;
        // No file can exist under a name that is not a single component.
        check_name(name).map_err(|_| erofs())?;
        let entry = match self.inner.lookup(ctx, parent, name) {
            Ok(entry) => entry,
            Err(e) if e.raw_os_error() == Some(libc::ENOENT) => return Err(erofs()),
            Err(e) => return Err(e),
        };
        match self
            .inner
            .open(ctx, Self::Inode::from(entry.inode), flags, args.fuse_flags)
        {
            Ok((handle, opts, passthrough)) => Ok((entry, handle, opts, passthrough)),
            Err(e) => {
                // Drop the lookup reference taken above: the guest never learns this entry.
                self.inner.forget(ctx, Self::Inode::from(entry.inode), 1);
                Err(e)
            }
        }
    }

    fn opendir(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        flags: u32,
    ) -> io::Result<(Option<Self::Handle>, OpenOptions)> {
        let flags = check_open_flags(flags)?;
        self.inner.opendir(ctx, inode, flags)
    }

    // ---- forwarded: data and directory reads ----------------------------------------------

    fn read(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        handle: Self::Handle,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        lock_owner: Option<u64>,
        flags: u32,
    ) -> io::Result<usize> {
        self.inner
            .read(ctx, inode, handle, w, size, offset, lock_owner, flags)
    }

    fn readdir(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        handle: Self::Handle,
        size: u32,
        offset: u64,
        add_entry: &mut dyn FnMut(DirEntry) -> io::Result<usize>,
    ) -> io::Result<()> {
        self.inner
            .readdir(ctx, inode, handle, size, offset, add_entry)
    }

    fn readdirplus(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        handle: Self::Handle,
        size: u32,
        offset: u64,
        add_entry: &mut dyn FnMut(DirEntry, Entry) -> io::Result<usize>,
    ) -> io::Result<()> {
        self.inner
            .readdirplus(ctx, inode, handle, size, offset, add_entry)
    }

    fn lseek(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        handle: Self::Handle,
        offset: u64,
        whence: u32,
    ) -> io::Result<u64> {
        self.inner.lseek(ctx, inode, handle, offset, whence)
    }

    fn bmap(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        block: u64,
        blocksize: u32,
    ) -> io::Result<u64> {
        self.inner.bmap(ctx, inode, block, blocksize)
    }

    fn poll(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        handle: Self::Handle,
        khandle: Self::Handle,
        flags: u32,
        events: u32,
    ) -> io::Result<u32> {
        self.inner.poll(ctx, inode, handle, khandle, flags, events)
    }

    // ---- forwarded: closing, syncing, locks (nothing is modified) -------------------------

    fn flush(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        handle: Self::Handle,
        lock_owner: u64,
    ) -> io::Result<()> {
        self.inner.flush(ctx, inode, handle, lock_owner)
    }

    fn fsync(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        datasync: bool,
        handle: Self::Handle,
    ) -> io::Result<()> {
        self.inner.fsync(ctx, inode, datasync, handle)
    }

    fn release(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        flags: u32,
        handle: Self::Handle,
        flush: bool,
        flock_release: bool,
        lock_owner: Option<u64>,
    ) -> io::Result<()> {
        self.inner
            .release(ctx, inode, flags, handle, flush, flock_release, lock_owner)
    }

    fn fsyncdir(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        datasync: bool,
        handle: Self::Handle,
    ) -> io::Result<()> {
        self.inner.fsyncdir(ctx, inode, datasync, handle)
    }

    fn releasedir(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        flags: u32,
        handle: Self::Handle,
    ) -> io::Result<()> {
        self.inner.releasedir(ctx, inode, flags, handle)
    }

    fn getlk(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        handle: Self::Handle,
        owner: u64,
        lock: FileLock,
        flags: u32,
    ) -> io::Result<FileLock> {
        self.inner.getlk(ctx, inode, handle, owner, lock, flags)
    }

    fn setlk(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        handle: Self::Handle,
        owner: u64,
        lock: FileLock,
        flags: u32,
    ) -> io::Result<()> {
        self.inner.setlk(ctx, inode, handle, owner, lock, flags)
    }

    fn setlkw(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        handle: Self::Handle,
        owner: u64,
        lock: FileLock,
        flags: u32,
    ) -> io::Result<()> {
        self.inner.setlkw(ctx, inode, handle, owner, lock, flags)
    }

    fn notify_reply(&self) -> io::Result<()> {
        self.inner.notify_reply()
    }

    fn id_remap(&self, ctx: &mut Context) -> io::Result<()> {
        self.inner.id_remap(ctx)
    }

    // ---- adjusted: extended attributes ----------------------------------------------------

    fn getxattr(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        name: &CStr,
        size: u32,
    ) -> io::Result<GetxattrReply> {
        // Without --xattr the inner filesystem says ENOSYS; the guest would then stop asking
        // for xattrs for the life of the mount. "No such attribute" keeps the door open.
        self.inner
            .getxattr(ctx, inode, name, size)
            .map_err(|e| replace_enosys(e, libc::ENODATA))
    }

    fn listxattr(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        size: u32,
    ) -> io::Result<ListxattrReply> {
        self.inner
            .listxattr(ctx, inode, size)
            .map_err(|e| replace_enosys(e, libc::EOPNOTSUPP))
    }

    // ---- answered here: ioctl and DAX -----------------------------------------------------

    fn ioctl(
        &self,
        _ctx: &Context,
        _inode: Self::Inode,
        _handle: Self::Handle,
        flags: u32,
        cmd: u32,
        data: IoctlData,
        out_size: u32,
    ) -> io::Result<IoctlData<'_>> {
        let req = IoctlRequest {
            cmd,
            flags,
            out_size,
        };
        handle_ioctl(req, data.data.unwrap_or_default())
    }

    fn setupmapping(
        &self,
        _ctx: &Context,
        _inode: Self::Inode,
        _handle: Self::Handle,
        _foffset: u64,
        _len: u64,
        _flags: u64,
        _moffset: u64,
        _vu_req: &mut dyn FsCacheReqHandler,
    ) -> io::Result<()> {
        // DAX would map host pages straight into the guest, bypassing `read`.
        Err(enosys())
    }

    fn removemapping(
        &self,
        _ctx: &Context,
        _inode: Self::Inode,
        _requests: Vec<RemovemappingOne>,
        _vu_req: &mut dyn FsCacheReqHandler,
    ) -> io::Result<()> {
        Err(enosys())
    }

    // ---- refused: every mutation ----------------------------------------------------------

    fn setattr(
        &self,
        _ctx: &Context,
        _inode: Self::Inode,
        _attr: stat64,
        _handle: Option<Self::Handle>,
        _valid: SetattrValid,
    ) -> io::Result<(stat64, Duration)> {
        Err(erofs())
    }

    fn symlink(
        &self,
        _ctx: &Context,
        _linkname: &CStr,
        _parent: Self::Inode,
        _name: &CStr,
    ) -> io::Result<Entry> {
        Err(erofs())
    }

    fn mknod(
        &self,
        _ctx: &Context,
        _inode: Self::Inode,
        _name: &CStr,
        _mode: u32,
        _rdev: u32,
        _umask: u32,
    ) -> io::Result<Entry> {
        Err(erofs())
    }

    fn mkdir(
        &self,
        _ctx: &Context,
        _parent: Self::Inode,
        _name: &CStr,
        _mode: u32,
        _umask: u32,
    ) -> io::Result<Entry> {
        Err(erofs())
    }

    fn unlink(&self, _ctx: &Context, _parent: Self::Inode, _name: &CStr) -> io::Result<()> {
        Err(erofs())
    }

    fn rmdir(&self, _ctx: &Context, _parent: Self::Inode, _name: &CStr) -> io::Result<()> {
        Err(erofs())
    }

    fn rename(
        &self,
        _ctx: &Context,
        _olddir: Self::Inode,
        _oldname: &CStr,
        _newdir: Self::Inode,
        _newname: &CStr,
        _flags: u32,
    ) -> io::Result<()> {
        Err(erofs())
    }

    fn link(
        &self,
        _ctx: &Context,
        _inode: Self::Inode,
        _newparent: Self::Inode,
        _newname: &CStr,
    ) -> io::Result<Entry> {
        Err(erofs())
    }

    fn write(
        &self,
        _ctx: &Context,
        _inode: Self::Inode,
        _handle: Self::Handle,
        _r: &mut dyn ZeroCopyReader,
        _size: u32,
        _offset: u64,
        _lock_owner: Option<u64>,
        _delayed_write: bool,
        _flags: u32,
        _fuse_flags: u32,
    ) -> io::Result<usize> {
        Err(erofs())
    }

    fn fallocate(
        &self,
        _ctx: &Context,
        _inode: Self::Inode,
        _handle: Self::Handle,
        _mode: u32,
        _offset: u64,
        _length: u64,
    ) -> io::Result<()> {
        Err(erofs())
    }

    fn setxattr(
        &self,
        _ctx: &Context,
        _inode: Self::Inode,
        _name: &CStr,
        _value: &[u8],
        _flags: u32,
    ) -> io::Result<()> {
        Err(erofs())
    }

    fn removexattr(&self, _ctx: &Context, _inode: Self::Inode, _name: &CStr) -> io::Result<()> {
        Err(erofs())
    }
}
