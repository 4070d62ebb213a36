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
//! With a manifest ([`VerityFs::verified`]) the wrapper also binds every inode to its manifest
//! path (`lookup`, `readdirplus`, `forget`), hides unlisted names, checks opens, verifies every
//! read block by block, and answers the digest ioctls and xattrs (see [`crate::Verity`]).
//!
//! Every inode and handle the guest holds is counted against [`FsLimits`] (see
//! [`crate::budget`]), and guest-chosen sizes are capped ([`crate::size_caps`]).
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
    ListxattrReply, OpenOptions, ZeroCopyWriter,
};
use fuse_backend_rs::transport::FsCacheReqHandler;

use crate::binding::Bound;
use crate::budget::{Budget, FsLimits};
use crate::errno::{eio, enosys, erofs, replace_enosys};
use crate::init::negotiate_init;
use crate::ioctl::{handle_ioctl, IoctlRequest, IoctlTarget};
use crate::listing;
use crate::names::check_name;
use crate::open_flags::{check_open_flags, create_as_open};
use crate::open_handles::OpenHandles;
use crate::read_only::refuse_mutations;
use crate::size_caps::{check_io_size, check_xattr_size};
use crate::verified_read::{verified_read, InnerFile, ReadFailure};
use crate::verity::{show, Verity, ROOT_INODE};
use crate::xattr::{filter_host_list, is_reserved, list_reply, value_reply, HOST_LIST_MAX};
use verity_manifest::EntryKind;

/// Read-only filesystem wrapper around `F` (normally `PassthroughFs`).
///
/// This is the seam where later verification is added: the wrapper sees every lookup, open,
/// read and ioctl before the inner filesystem does.
#[derive(Debug)]
pub struct VerityFs<F> {
    inner: F,
    readdirplus: bool,
    verity: Option<Verity>,
    budget: Budget,
    /// Open flags of every handle: reads pass these, never the guest's (see
    /// [`crate::open_handles`]).
    handles: OpenHandles,
}

impl<F> VerityFs<F> {
    /// Wraps `inner`. With `readdirplus == false` the readdirplus INIT flags are never enabled
    /// (virtiofsd does this for `cache=never`).
    pub fn new(inner: F, readdirplus: bool) -> Self {
        VerityFs {
            inner,
            readdirplus,
            verity: None,
            budget: Budget::default(),
            handles: OpenHandles::default(),
        }
    }

    /// Wraps `inner` and verifies everything it serves against `verity`'s manifest.
    pub fn verified(inner: F, readdirplus: bool, verity: Verity) -> Self {
        VerityFs {
            inner,
            readdirplus,
            verity: Some(verity),
            budget: Budget::default(),
            handles: OpenHandles::default(),
        }
    }

    /// Sets the guest's inode and open-file budgets (unlimited by default).
    pub fn with_limits(mut self, limits: FsLimits) -> Self {
        self.budget = Budget::new(limits);
        self
    }

    /// The guest's budgets.
    pub fn limits(&self) -> FsLimits {
        self.budget.limits()
    }

    /// Inodes the guest holds now (counted only when [`FsLimits::max_inodes`] is set).
    pub fn live_inodes(&self) -> usize {
        self.budget.live_inodes()
    }

    /// Files and directories the guest holds open now.
    pub fn open_handles(&self) -> usize {
        self.budget.open_handles()
    }

    /// The verification state, when serving a manifest.
    pub fn verity(&self) -> Option<&Verity> {
        self.verity.as_ref()
    }

    /// The wrapped filesystem.
    pub fn inner(&self) -> &F {
        &self.inner
    }
}

impl<F: FileSystem<Inode = u64, Handle = u64> + Sync> VerityFs<F> {
    /// Checks a freshly opened regular file against its manifest entry and sets up its tree.
    fn check_open(&self, v: &Verity, ctx: &Context, inode: u64, handle: u64) -> io::Result<()> {
        let Some((_, entry)) = v.listed(inode) else {
            return Ok(());
        };
        let (size, digest) = match &entry.kind {
            EntryKind::File { size, digest } => (*size, *digest),
            _ => return Ok(()),
        };
        let (st, _) = self.inner.getattr(ctx, inode, Some(handle))?;
        let host_size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
        if st.st_mode & libc::S_IFMT != libc::S_IFREG || host_size != size {
            v.integrity_failure(format_args!(
                "{}: opened a host file of {host_size} bytes (mode {:#o}), the manifest says a \
                 regular file of {size} bytes",
                show(&entry.path),
                st.st_mode
            ))?;
        }
        let file = InnerFile {
            fs: &self.inner,
            ctx,
            inode,
            handle,
            flags: self.handles.flags(handle)?,
        };
        if let Err(e) = v.trees.load(&digest, size, v.manifest().params(), &file) {
            v.integrity_failure(format_args!("{}: {e}", show(&entry.path)))?;
        }
        Ok(())
    }

    /// OPEN once a handle slot is taken: forwarded, and checked against the manifest.
    fn open_counted(
        &self,
        ctx: &Context,
        inode: u64,
        flags: u32,
        fuse_flags: u32,
    ) -> io::Result<(Option<u64>, OpenOptions, Option<u32>)> {
        let Some(v) = &self.verity else {
            let opened = self.inner.open(ctx, inode, flags, fuse_flags)?;
            if let Some(handle) = opened.0 {
                self.handles.insert(handle, flags);
            }
            return Ok(opened);
        };
        if v.bindings.bound(inode).is_none() {
            return Err(eio());
        }
        let opened = self.inner.open(ctx, inode, flags, fuse_flags)?;
        let Some(handle) = opened.0 else {
            // Without a handle there is nothing to verify reads with.
            return Err(eio());
        };
        self.handles.insert(handle, flags);
        if let Err(e) = self.check_open(v, ctx, inode, handle) {
            let _ = self
                .inner
                .release(ctx, inode, flags, handle, false, false, None);
            self.handles.remove(handle);
            return Err(e);
        }
        Ok(opened)
    }

    /// Counts a lookup reference the inner filesystem just handed out; over budget the
    /// reference is dropped again and the guest gets `ENFILE`.
    fn admit_inode(&self, ctx: &Context, inode: u64) -> io::Result<()> {
        if inode == 0 || inode == ROOT_INODE {
            return Ok(());
        }
        self.budget
            .admit_inode(inode)
            .inspect_err(|_| self.inner.forget(ctx, inode, 1))
    }

    /// Binds an inode the inner filesystem just returned, or drops it again.
    fn accept_entry(
        &self,
        v: &Verity,
        ctx: &Context,
        path: &[u8],
        bound: Bound,
        mut entry: Entry,
    ) -> io::Result<Entry> {
        if let Err(e) = v.accept(entry.inode, path, bound, &entry.attr) {
            self.inner.forget(ctx, entry.inode, 1);
            return Err(e);
        }
        if let Bound::Listed(i) = bound {
            if let Some(EntryKind::File { size, .. }) = v.entry(i).map(|e| &e.kind) {
                // The verified size is the size (audit mode may serve a differing host file).
                entry.attr.st_size = i64::try_from(*size).unwrap_or(i64::MAX);
            }
        }
        Ok(entry)
    }
}

impl<F: FileSystem<Inode = u64, Handle = u64> + Sync> FileSystem for VerityFs<F> {
    type Inode = F::Inode;
    type Handle = F::Handle;

    // ---- lifecycle ----------------------------------------------------------------------

    fn init(&self, capable: FsOptions) -> io::Result<FsOptions> {
        let opts = negotiate_init(capable, self.readdirplus, |c| self.inner.init(c))?;
        if let Some(v) = &self.verity {
            // The share root is checked like any other directory; a mismatch fails the mount.
            let (st, _) = self.inner.getattr(&Context::new(), ROOT_INODE, None)?;
            v.check_root(&st)?;
        }
        Ok(opts)
    }

    fn destroy(&self) {
        self.budget.clear();
        self.handles.clear();
        if let Some(v) = &self.verity {
            v.bindings.clear();
        }
        self.inner.destroy()
    }

    // ---- forwarded: names, attributes, lifetime ---------------------------------------

    fn lookup(&self, ctx: &Context, parent: Self::Inode, name: &CStr) -> io::Result<Entry> {
        check_name(name)?;
        let Some(v) = &self.verity else {
            let entry = self.inner.lookup(ctx, parent, name)?;
            self.admit_inode(ctx, entry.inode)?;
            return Ok(entry);
        };
        // Unlisted names are refused before the host is asked.
        let (path, bound) = v.resolve(parent, name.to_bytes())?;
        let entry = self.inner.lookup(ctx, parent, name)?;
        if entry.inode == 0 {
            return Ok(entry);
        }
        self.admit_inode(ctx, entry.inode)?;
        let inode = entry.inode;
        self.accept_entry(v, ctx, &path, bound, entry)
            .inspect_err(|_| self.budget.forget_inode(inode, 1))
    }

    fn forget(&self, ctx: &Context, inode: Self::Inode, count: u64) {
        self.budget.forget_inode(inode, count);
        if let Some(v) = &self.verity {
            v.bindings.forget(inode, count);
        }
        self.inner.forget(ctx, inode, count)
    }

    fn batch_forget(&self, ctx: &Context, requests: Vec<(Self::Inode, u64)>) {
        for &(inode, count) in &requests {
            self.budget.forget_inode(inode, count);
        }
        if let Some(v) = &self.verity {
            for &(inode, count) in &requests {
                v.bindings.forget(inode, count);
            }
        }
        self.inner.batch_forget(ctx, requests)
    }

    fn getattr(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        handle: Option<Self::Handle>,
    ) -> io::Result<(stat64, Duration)> {
        let (mut st, timeout) = self.inner.getattr(ctx, inode, handle)?;
        if let Some((_, entry)) = self.verity.as_ref().and_then(|v| v.listed(inode)) {
            if let EntryKind::File { size, .. } = entry.kind {
                st.st_size = i64::try_from(size).unwrap_or(i64::MAX);
            }
        }
        Ok((st, timeout))
    }

    fn readlink(&self, ctx: &Context, inode: Self::Inode) -> io::Result<Vec<u8>> {
        let target = self.inner.readlink(ctx, inode)?;
        let Some(v) = &self.verity else {
            return Ok(target);
        };
        match v.listed(inode).map(|(_, e)| e) {
            Some(e) => match &e.kind {
                EntryKind::Symlink { target: expected } if *expected == target => Ok(target),
                _ => {
                    v.integrity_failure(format_args!(
                        "{}: symlink target differs from the manifest",
                        show(&e.path)
                    ))?;
                    Ok(target)
                }
            },
            None if v.bindings.bound(inode).is_some() => Ok(target),
            None => Err(eio()),
        }
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
        self.budget.take_handle()?;
        let opened = self.open_counted(ctx, inode, flags, fuse_flags);
        // No handle (or none on error): nothing will be released later.
        if !matches!(opened, Ok((Some(_), _, _))) {
            self.budget.release_handle();
        }
        opened
    }

    fn create(
        &self,
        ctx: &Context,
        parent: Self::Inode,
        name: &CStr,
        args: CreateIn,
    ) -> io::Result<(Entry, Option<Self::Handle>, OpenOptions, Option<u32>)> {
        create_as_open(self, ctx, parent, name, args)
    }

    fn opendir(
        &self,
        ctx: &Context,
        inode: Self::Inode,
        flags: u32,
    ) -> io::Result<(Option<Self::Handle>, OpenOptions)> {
        let flags = check_open_flags(flags)?;
        self.budget.take_handle()?;
        let opened = self.inner.opendir(ctx, inode, flags);
        match &opened {
            // The passthrough layer opens directories with O_DIRECTORY added.
            Ok((Some(handle), _)) => self
                .handles
                .insert(*handle, flags | libc::O_DIRECTORY as u32),
            // No handle (or none on error): nothing will be released later.
            _ => self.budget.release_handle(),
        }
        opened
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
        _guest_flags: u32,
    ) -> io::Result<usize> {
        check_io_size(size)?;
        let flags = self.handles.flags(handle)?;
        let Some(v) = &self.verity else {
            return self
                .inner
                .read(ctx, inode, handle, w, size, offset, lock_owner, flags);
        };
        let (verifier, path) = match v.listed(inode) {
            Some((_, e)) => match &e.kind {
                EntryKind::File { digest, .. } => (v.trees.get(digest), &e.path),
                _ => return Err(eio()),
            },
            None if v.bindings.bound(inode) == Some(Bound::Unlisted) => {
                return self
                    .inner
                    .read(ctx, inode, handle, w, size, offset, lock_owner, flags);
            }
            None => return Err(eio()),
        };
        let Some(verifier) = verifier else {
            // Only reachable in audit mode, when the tree could not be set up at open.
            v.integrity_failure(format_args!("{}: read without a verified tree", show(path)))?;
            return self
                .inner
                .read(ctx, inode, handle, w, size, offset, lock_owner, flags);
        };
        let on_failure = |e: &ReadFailure| {
            v.record_failure(format_args!(
                "{}: read of {size} bytes at {offset}: {e}",
                show(path)
            ))
        };
        let file = InnerFile {
            fs: &self.inner,
            ctx,
            inode,
            handle,
            flags,
        };
        verified_read(&file, &verifier, w, size, offset, v.audit(), &on_failure)
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
        check_io_size(size)?;
        let Some(v) = &self.verity else {
            return self
                .inner
                .readdir(ctx, inode, handle, size, offset, add_entry);
        };
        listing::readdir(&self.inner, v, ctx, inode, handle, size, offset, add_entry)
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
        check_io_size(size)?;
        // Every entry delivered with a node id is a lookup reference, counted like LOOKUP's;
        // over budget it goes out without one (node id 0), as the guest kernel allows.
        let mut refused: Vec<u64> = Vec::new();
        let mut budgeted = |d: DirEntry, e: Entry| -> io::Result<usize> {
            if e.inode == 0 || e.inode == ROOT_INODE {
                return add_entry(d, e);
            }
            if self.budget.admit_inode(e.inode).is_err() {
                let n = add_entry(d, listing::blank(&e))?;
                if n > 0 {
                    // The layers below count this entry as delivered: undo that afterwards.
                    refused.push(e.inode);
                }
                return Ok(n);
            }
            let added = add_entry(d, e);
            if !matches!(added, Ok(n) if n > 0) {
                self.budget.forget_inode(e.inode, 1);
            }
            added
        };
        let res = match &self.verity {
            None => self
                .inner
                .readdirplus(ctx, inode, handle, size, offset, &mut budgeted),
            Some(v) => listing::readdirplus(
                &self.inner,
                v,
                ctx,
                inode,
                handle,
                size,
                offset,
                &mut budgeted,
            ),
        };
        for ino in refused {
            if let Some(v) = &self.verity {
                v.bindings.forget(ino, 1);
            }
            self.inner.forget(ctx, ino, 1);
        }
        res
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
            .release(ctx, inode, flags, handle, flush, flock_release, lock_owner)?;
        self.handles.remove(handle);
        self.budget.release_handle();
        Ok(())
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
        self.inner.releasedir(ctx, inode, flags, handle)?;
        self.handles.remove(handle);
        self.budget.release_handle();
        Ok(())
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
        check_xattr_size(size)?;
        if is_reserved(name.to_bytes()) {
            // Ours or nothing: host xattrs under this prefix are never passed through.
            let ours = self
                .verity
                .as_ref()
                .map(|v| v.xattrs(inode))
                .unwrap_or_default();
            return match ours.iter().find(|(n, _)| n.as_bytes() == name.to_bytes()) {
                Some((_, value)) => value_reply(value, size),
                None => Err(io::Error::from_raw_os_error(libc::ENODATA)),
            };
        }
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
        check_xattr_size(size)?;
        let ours = self
            .verity
            .as_ref()
            .map(|v| v.xattrs(inode))
            .unwrap_or_default();
        let host = match self.inner.listxattr(ctx, inode, HOST_LIST_MAX) {
            Ok(ListxattrReply::Names(list)) => filter_host_list(&list),
            Ok(ListxattrReply::Count(_)) => Vec::new(),
            Err(e) if !ours.is_empty() && e.raw_os_error() == Some(libc::ENOSYS) => Vec::new(),
            Err(e) => return Err(replace_enosys(e, libc::EOPNOTSUPP)),
        };
        let mut list = host;
        for (name, _) in ours {
            list.extend_from_slice(name.as_bytes());
            list.push(0);
        }
        list_reply(list, size)
    }

    // ---- answered here: ioctl and DAX -----------------------------------------------------

    fn ioctl(
        &self,
        _ctx: &Context,
        inode: Self::Inode,
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
        let target = IoctlTarget {
            measure: self.verity.as_ref().and_then(|v| v.measure_reply(inode)),
        };
        handle_ioctl(req, data.data.unwrap_or_default(), target)
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

    refuse_mutations!();
}
