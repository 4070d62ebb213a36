// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! [`ManifestFs`]: a verified share whose namespace is the manifest's and whose host directory
//! is only a content store.
//!
//! Every answer about names and metadata (LOOKUP, GETATTR, READDIR, READDIRPLUS, READLINK,
//! ACCESS, GETXATTR, LISTXATTR, STATFS, LSEEK) comes from the pinned manifest
//! ([`crate::manifest_attr`]); the host is not asked, so it cannot hide, add, retype, rechmod or
//! rechown anything. The host is touched only by OPEN of a regular file, which opens the
//! entry's path beneath the share root ([`ContentDir`]) and requires a regular file of the
//! manifest size, and by READ, which verifies every block and refuses a short read. Whatever the
//! host does differently (missing file, other type, other size, other bytes, a file cut after
//! OPEN) is `EIO`, logged with the path (rate-limited).
//!
//! Inodes are the manifest's positions and live as long as the filesystem: FORGET has nothing to
//! free, so only open files count against the guest's budget ([`FsLimits`]).
//!
//! This is the filesystem of `--manifest` in enforce mode with unlisted names denied (the
//! defaults), in the daemon and in `verityctl mount`. The diagnostic modes (`--verity=audit`,
//! `--unlisted=allow`) serve host objects and keep [`crate::VerityFs`].

use std::borrow::Cow;
use std::collections::HashMap;
use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use fuse_backend_rs::abi::fuse_abi::{stat64, statvfs64, CreateIn};
use fuse_backend_rs::api::filesystem::{
    Context, DirEntry, Entry as FuseEntry, FileSystem, FsOptions, GetxattrReply, IoctlData,
    ListxattrReply, OpenOptions, ZeroCopyWriter,
};
use verity_manifest::{Entry, EntryKind};
use verity_merkle::ReadAt;

use crate::budget::{Budget, FsLimits};
use crate::config::CacheMode;
use crate::content::{ContentDir, FileId, HostFile};
use crate::errno::{eio, erofs, errno};
use crate::init::negotiate_init;
use crate::ioctl::{handle_ioctl, IoctlRequest, IoctlTarget};
use crate::manifest_attr::{
    dirent_type, entry_of, index_of, inode_of, may_access, stat_of, statfs_of,
};
use crate::names::check_name;
use crate::open_flags::{check_open_flags, create_as_open};
use crate::read_only::refuse_mutations;
use crate::share_meta::{MetaContent, MetaKind, ShareMeta};
use crate::size_caps::{check_io_size, check_xattr_size};
use crate::trees::{FileVerifier, TreeError};
use crate::verified_read::{verified_read, ReadFailure};
use crate::verity::{show, Verity};
use crate::xattr::{is_reserved, list_reply, value_reply};

/// Directory offsets 1 and 2 are `.` and `..`; a child at manifest position `i` has offset
/// `i + FIRST_CHILD_OFFSET`, so a listing resumes at any child without a cursor.
const FIRST_CHILD_OFFSET: u64 = 3;

/// One name of a directory listing.
#[derive(Debug, Clone, Copy)]
struct Listed<'a> {
    /// The listing offset just after this name.
    offset: u64,
    /// The manifest position of the entry it names.
    index: usize,
    name: &'a [u8],
    /// `d_type`.
    type_: u32,
}

impl<'a> Listed<'a> {
    /// The FUSE directory entry of this name.
    fn dirent(&self) -> DirEntry<'a> {
        DirEntry {
            ino: inode_of(self.index),
            offset: self.offset,
            type_: self.type_,
            name: self.name,
        }
    }
}

/// One open regular file.
#[derive(Debug)]
struct OpenFile {
    index: usize,
    content: Content,
}

#[derive(Debug)]
enum Content {
    /// A manifest file: the host descriptor and the verifier of its manifest digest.
    Verified {
        file: File,
        verifier: Arc<FileVerifier>,
    },
    /// A file of [`META_DIR`](crate::META_DIR), relayed as it is.
    Meta(MetaContent),
}

/// A manifest-served verified share (see the module documentation).
#[derive(Debug)]
pub struct ManifestFs {
    verity: Verity,
    content: Arc<ContentDir>,
    timeout: Duration,
    cache: CacheMode,
    budget: Budget,
    files: Mutex<HashMap<u64, Arc<OpenFile>>>,
    next_handle: AtomicU64,
    block_size: u32,
    /// [`META_DIR`](crate::META_DIR)'s entries, numbered after the manifest's.
    meta: Option<ShareMeta>,
    /// Host files whose content did not hash to their digest (negative cache).
    failed: Mutex<FailedOpens>,
}

/// A host file that failed its digest, as it was then.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FailedOpen {
    digest: verity_merkle::FileDigest,
    file: FileId,
}

/// The last [`FailedOpens::CAPACITY`] failed host files.
#[derive(Debug, Default)]
struct FailedOpens {
    set: std::collections::HashSet<FailedOpen>,
    order: std::collections::VecDeque<FailedOpen>,
}

impl FailedOpens {
    const CAPACITY: usize = 4096;

    fn contains(&self, k: &FailedOpen) -> bool {
        self.set.contains(k)
    }

    fn insert(&mut self, k: FailedOpen) {
        if self.set.insert(k) {
            self.order.push_back(k);
            if self.order.len() > Self::CAPACITY {
                if let Some(old) = self.order.pop_front() {
                    self.set.remove(&old);
                }
            }
        }
    }
}

impl ManifestFs {
    /// Serves `verity`'s manifest, reading content from `content`, with guest caching `cache`.
    ///
    /// The namespace cannot change under the guest, so with any caching mode but `never`
    /// entries and attributes are cached for a day and file pages across opens.
    pub fn new(verity: Verity, content: impl Into<Arc<ContentDir>>, cache: CacheMode) -> Self {
        let timeout = match cache {
            CacheMode::Never => Duration::ZERO,
            _ => CacheMode::Always.timeout(),
        };
        let block_size = u32::try_from(verity.manifest().params().block_size()).unwrap_or(4096);
        let meta = ShareMeta::new(verity.manifest());
        ManifestFs {
            meta,
            failed: Mutex::new(FailedOpens::default()),
            verity,
            content: content.into(),
            timeout,
            cache,
            budget: Budget::default(),
            files: Mutex::new(HashMap::new()),
            next_handle: AtomicU64::new(1),
            block_size,
        }
    }

    /// Sets the guest's open-file budget (inodes cost nothing here: they are the manifest's).
    pub fn with_limits(mut self, limits: FsLimits) -> Self {
        self.budget = Budget::new(limits);
        self
    }

    /// The guest's budgets.
    pub fn limits(&self) -> FsLimits {
        self.budget.limits()
    }

    /// The verification state.
    pub fn verity(&self) -> &Verity {
        &self.verity
    }

    /// Files the guest holds open now.
    pub fn open_handles(&self) -> usize {
        self.budget.open_handles()
    }

    fn failed(&self) -> MutexGuard<'_, FailedOpens> {
        self.failed.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn files(&self) -> MutexGuard<'_, HashMap<u64, Arc<OpenFile>>> {
        self.files.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Entries of the manifest.
    fn listed(&self) -> usize {
        self.verity.manifest().entries().len()
    }

    /// The entry at position `index`: the manifest's, then [`META_DIR`](crate::META_DIR)'s
    /// (derived from the manifest when asked for).
    fn at(&self, index: usize) -> Option<Cow<'_, Entry>> {
        let n = self.listed();
        match index.checked_sub(n) {
            None => self.verity.entry(index).map(Cow::Borrowed),
            Some(i) => self.meta.as_ref()?.entry(self.verity.manifest(), i),
        }
    }

    /// The position of `path`.
    fn position(&self, path: &[u8]) -> Option<usize> {
        self.verity.manifest().position(path).or_else(|| {
            let meta = self.meta.as_ref()?;
            meta.position(self.verity.manifest(), path)
                .map(|i| i + self.listed())
        })
    }

    /// The entry of `inode`; `ENOENT` for a number never given out.
    fn entry(&self, inode: u64) -> io::Result<(usize, Cow<'_, Entry>)> {
        let index = index_of(inode).ok_or_else(|| errno(libc::ENOENT))?;
        let e = self.at(index).ok_or_else(|| errno(libc::ENOENT))?;
        Ok((index, e))
    }

    fn dir(&self, inode: u64) -> io::Result<(usize, Cow<'_, Entry>)> {
        let (i, e) = self.entry(inode)?;
        if e.kind != EntryKind::Directory {
            return Err(errno(libc::ENOTDIR));
        }
        Ok((i, e))
    }

    fn fuse_entry(&self, index: usize, e: &Entry) -> FuseEntry {
        entry_of(index, e, self.block_size, self.timeout)
    }

    /// The children of directory `dir` at or after manifest position `from`, with their
    /// positions. Descendants of `/a` are contiguous from the first path starting `/a/`
    /// (`/a-b` sorts between `/a` and `/a/x`).
    fn children_from<'a>(
        &'a self,
        dir_index: usize,
        dir: &'a Entry,
        from: usize,
    ) -> Box<dyn Iterator<Item = (usize, Cow<'a, Entry>)> + 'a> {
        let n = self.listed();
        match (&self.meta, dir_index.checked_sub(n)) {
            // A directory of the reserved tree: derived from the manifest.
            (Some(meta), Some(i)) => Box::new(
                meta.children(self.verity.manifest(), i, from.saturating_sub(n))
                    .map(move |(j, e)| (j + n, e)),
            ),
            // The reserved directory is found by LOOKUP but not listed in the root, so a
            // listing (and `find`, `tar`) of the share is exactly the sealed tree.
            _ => Box::new(
                children_of(self.verity.manifest().entries(), dir, from)
                    .map(|(i, e)| (i, Cow::Borrowed(e))),
            ),
        }
    }

    /// The position of `dir`'s parent (the root's parent is the root).
    fn parent_index(&self, dir: &Entry) -> usize {
        dir.parent().and_then(|p| self.position(p)).unwrap_or(0)
    }

    /// Walks a directory listing from `offset`, calling `emit` with each entry's offset, until
    /// `emit` reports a full buffer (0).
    fn list(
        &self,
        inode: u64,
        offset: u64,
        emit: &mut dyn FnMut(Listed<'_>) -> io::Result<usize>,
    ) -> io::Result<()> {
        let (index, dir) = self.dir(inode)?;
        let dot_type = u32::from(libc::DT_DIR);
        let dots = [(index, &b"."[..]), (self.parent_index(&dir), b"..")];
        for (off, (index, name)) in (1..).zip(dots) {
            let item = Listed {
                offset: off,
                index,
                name,
                type_: dot_type,
            };
            if offset < off && emit(item)? == 0 {
                return Ok(());
            }
        }
        // The first child sorts right after the directory itself.
        let from =
            usize::try_from(offset.saturating_sub(FIRST_CHILD_OFFSET - 1)).unwrap_or(usize::MAX);
        for (i, e) in self.children_from(index, &dir, from) {
            let item = Listed {
                offset: i as u64 + FIRST_CHILD_OFFSET,
                index: i,
                name: e.name(),
                type_: dirent_type(&e.kind),
            };
            if emit(item)? == 0 {
                break;
            }
        }
        Ok(())
    }

    /// Opens the content of regular file `index` and sets up its verifier; `EIO` (logged) when
    /// the host has something else there.
    fn open_content(&self, index: usize, e: &Entry) -> io::Result<OpenFile> {
        let EntryKind::File { size, digest } = &e.kind else {
            return Err(eio());
        };
        let (file, id) = self
            .content
            .open_file(&e.path, digest, *size)
            .or_else(|err| {
                self.verity
                    .integrity_failure(format_args!("{}: {err}", show(&e.path)))
                    .and(Err(eio()))
            })?;
        // A host file that already failed to hash to its digest, unchanged since (same inode and
        // ctime), is refused without reading it again.
        let key = FailedOpen {
            digest: *digest,
            file: id,
        };
        if self.failed().contains(&key) {
            log::debug!(
                "{}: refused again (unchanged since its digest failed)",
                show(&e.path)
            );
            return Err(eio());
        }
        let params = self.verity.manifest().params();
        let verifier = self
            .verity
            .trees
            .load(digest, *size, params, &HostFile(&file))
            .or_else(|err| {
                if matches!(err, TreeError::DigestMismatch { .. }) {
                    self.failed().insert(key);
                }
                self.verity
                    .integrity_failure(format_args!("{}: {err}", show(&e.path)))
                    .and(Err(eio()))
            })?;
        Ok(OpenFile {
            index,
            content: Content::Verified { file, verifier },
        })
    }

    /// Opens a file of [`META_DIR`](crate::META_DIR) (`index` past the manifest's entries).
    fn open_meta(&self, index: usize, e: &Entry) -> io::Result<OpenFile> {
        let meta = self.meta.as_ref().ok_or_else(eio)?;
        let content = match meta.kind(self.verity.manifest(), index - self.listed()) {
            Some(MetaKind::Manifest) => {
                MetaContent::Bytes(meta.manifest_bytes(self.verity.manifest()))
            }
            Some(MetaKind::Tree { digest, data_size }) => {
                let file = self.verity.trees.store_entry(&digest, data_size);
                MetaContent::Store(file.ok_or_else(|| {
                    log::debug!("{}: no usable tree store entry", show(&e.path));
                    eio()
                })?)
            }
            _ => return Err(eio()),
        };
        Ok(OpenFile {
            index,
            content: Content::Meta(content),
        })
    }

    /// OPEN once a handle slot is taken.
    fn open_counted(&self, inode: u64) -> io::Result<(Option<u64>, OpenOptions, Option<u32>)> {
        let (index, e) = self.entry(inode)?;
        match e.kind {
            EntryKind::File { .. } => {}
            EntryKind::Directory => return Err(errno(libc::EISDIR)),
            // The guest kernel opens special files itself; a symlink is never opened.
            _ => return Err(eio()),
        }
        let open = if index < self.listed() {
            self.open_content(index, &e)?
        } else {
            self.open_meta(index, &e)?
        };
        let handle = self.next_handle.fetch_add(1, Ordering::Relaxed);
        self.files().insert(handle, Arc::new(open));
        let opts = match self.cache {
            // Verified pages stay valid: the content is pinned by the manifest.
            CacheMode::Auto | CacheMode::Always => OpenOptions::KEEP_CACHE,
            CacheMode::Never | CacheMode::Metadata => OpenOptions::DIRECT_IO,
        };
        Ok((Some(handle), opts, None))
    }
}

/// READ of a [`META_DIR`](crate::META_DIR) file: the bytes as they are (the guest verifies them).
fn read_meta(
    meta: &MetaContent,
    w: &mut dyn ZeroCopyWriter,
    size: u32,
    offset: u64,
) -> io::Result<usize> {
    let mut buf = vec![0u8; size as usize];
    let n = match meta {
        MetaContent::Bytes(bytes) => {
            let start = usize::try_from(offset)
                .unwrap_or(usize::MAX)
                .min(bytes.len());
            let n = (bytes.len() - start).min(buf.len());
            buf[..n].copy_from_slice(&bytes[start..start + n]);
            n
        }
        MetaContent::Store(file) => HostFile(file).read_at(offset, &mut buf)?,
    };
    w.write_all(&buf[..n])?;
    Ok(n)
}

/// The children of directory `dir` in `entries` (sorted by path) at or after position `from`. Descendants of `/a` are contiguous from the first path starting `/a/`
/// (`/a-b` sorts between `/a` and `/a/x`).
fn children_of<'a>(
    entries: &'a [Entry],
    dir: &'a Entry,
    from: usize,
) -> impl Iterator<Item = (usize, &'a Entry)> + 'a {
    let prefix = if dir.path == b"/" {
        b"/".to_vec()
    } else {
        verity_manifest::join(&dir.path, b"")
    };
    let start = entries.partition_point(|e| e.path.as_slice() < prefix.as_slice());
    let prefix_len = prefix.len();
    entries
        .iter()
        .enumerate()
        .skip(start.max(from))
        // The root is its own prefix: it is never its own child.
        .filter(|(_, e)| e.path != b"/")
        .take_while(move |(_, e)| e.path.len() > prefix_len && e.path.starts_with(&prefix))
        .filter(move |(_, e)| !e.path[prefix_len..].contains(&b'/'))
}

impl FileSystem for ManifestFs {
    type Inode = u64;
    type Handle = u64;

    // ---- lifecycle ----------------------------------------------------------------------

    fn init(&self, capable: FsOptions) -> io::Result<FsOptions> {
        let readdirplus = self.cache.readdirplus();
        // READDIRPLUS always, not READDIRPLUS_AUTO: attributes come from memory, so every
        // listing may carry them, and an open after a listing needs no LOOKUP.
        negotiate_init(capable, readdirplus, |c| {
            Ok::<_, io::Error>(
                c.intersection(FsOptions::DO_READDIRPLUS | FsOptions::CACHE_SYMLINKS),
            )
        })
    }

    fn destroy(&self) {
        self.files().clear();
        self.budget.clear();
    }

    // ---- names and attributes, from the manifest ----------------------------------------

    fn lookup(&self, _ctx: &Context, parent: u64, name: &CStr) -> io::Result<FuseEntry> {
        check_name(name)?;
        let (_, dir) = self.dir(parent)?;
        let name = name.to_bytes();
        if name == b"." || name == b".." {
            // The guest kernel resolves these itself; they are never manifest names.
            return Err(errno(libc::ENOENT));
        }
        let path = verity_manifest::join(&dir.path, name);
        let index = self.position(&path).ok_or_else(|| errno(libc::ENOENT))?;
        let e = self.at(index).ok_or_else(|| errno(libc::ENOENT))?;
        Ok(self.fuse_entry(index, &e))
    }

    fn forget(&self, _ctx: &Context, _inode: u64, _count: u64) {}

    fn batch_forget(&self, _ctx: &Context, _requests: Vec<(u64, u64)>) {}

    fn getattr(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: Option<u64>,
    ) -> io::Result<(stat64, Duration)> {
        let (index, e) = self.entry(inode)?;
        Ok((stat_of(index, &e, self.block_size), self.timeout))
    }

    fn readlink(&self, _ctx: &Context, inode: u64) -> io::Result<Vec<u8>> {
        match &self.entry(inode)?.1.kind {
            EntryKind::Symlink { target } => Ok(target.clone()),
            _ => Err(errno(libc::EINVAL)),
        }
    }

    fn access(&self, ctx: &Context, inode: u64, mask: u32) -> io::Result<()> {
        let (_, e) = self.entry(inode)?;
        if mask & libc::W_OK as u32 != 0 {
            return Err(erofs());
        }
        if may_access(ctx, &e, mask) {
            Ok(())
        } else {
            Err(errno(libc::EACCES))
        }
    }

    fn statfs(&self, _ctx: &Context, _inode: u64) -> io::Result<statvfs64> {
        Ok(statfs_of(self.verity.manifest()))
    }

    // ---- directories ----------------------------------------------------------------------

    fn opendir(
        &self,
        _ctx: &Context,
        inode: u64,
        flags: u32,
    ) -> io::Result<(Option<u64>, OpenOptions)> {
        check_open_flags(flags)?;
        self.dir(inode)?;
        let opts = match self.cache {
            CacheMode::Never => OpenOptions::empty(),
            _ => OpenOptions::KEEP_CACHE | OpenOptions::CACHE_DIR,
        };
        Ok((None, opts))
    }

    fn readdir(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: u64,
        size: u32,
        offset: u64,
        add_entry: &mut dyn FnMut(DirEntry) -> io::Result<usize>,
    ) -> io::Result<()> {
        check_io_size(size)?;
        self.list(inode, offset, &mut |l| add_entry(l.dirent()))
    }

    fn readdirplus(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: u64,
        size: u32,
        offset: u64,
        add_entry: &mut dyn FnMut(DirEntry, FuseEntry) -> io::Result<usize>,
    ) -> io::Result<()> {
        check_io_size(size)?;
        self.list(inode, offset, &mut |l| {
            let Some(e) = self.at(l.index) else {
                return Ok(1);
            };
            let mut entry = self.fuse_entry(l.index, &e);
            if l.offset < FIRST_CHILD_OFFSET {
                // `.` and `..` go out without a node id: the kernel takes no reference for them.
                entry.inode = 0;
                entry.attr_timeout = Duration::ZERO;
                entry.entry_timeout = Duration::ZERO;
            }
            add_entry(l.dirent(), entry)
        })
    }

    fn releasedir(&self, _ctx: &Context, _inode: u64, _flags: u32, _handle: u64) -> io::Result<()> {
        Ok(())
    }

    fn fsyncdir(
        &self,
        _ctx: &Context,
        _inode: u64,
        _datasync: bool,
        _handle: u64,
    ) -> io::Result<()> {
        Ok(())
    }

    // ---- files ------------------------------------------------------------------------------

    fn open(
        &self,
        _ctx: &Context,
        inode: u64,
        flags: u32,
        _fuse_flags: u32,
    ) -> io::Result<(Option<u64>, OpenOptions, Option<u32>)> {
        check_open_flags(flags)?;
        self.budget.take_handle()?;
        let opened = self.open_counted(inode);
        if opened.is_err() {
            self.budget.release_handle();
        }
        opened
    }

    fn create(
        &self,
        ctx: &Context,
        parent: u64,
        name: &CStr,
        args: CreateIn,
    ) -> io::Result<(FuseEntry, Option<u64>, OpenOptions, Option<u32>)> {
        create_as_open(self, ctx, parent, name, args)
    }

    fn read(
        &self,
        _ctx: &Context,
        inode: u64,
        handle: u64,
        w: &mut dyn ZeroCopyWriter,
        size: u32,
        offset: u64,
        _lock_owner: Option<u64>,
        _flags: u32,
    ) -> io::Result<usize> {
        check_io_size(size)?;
        let open = self
            .files()
            .get(&handle)
            .cloned()
            .ok_or_else(|| errno(libc::EBADF))?;
        if inode_of(open.index) != inode {
            return Err(errno(libc::EBADF));
        }
        let (file, verifier) = match &open.content {
            Content::Verified { file, verifier } => (file, verifier),
            Content::Meta(meta) => return read_meta(meta, w, size, offset),
        };
        // Only manifest files are verified: their entries are borrowed, never built.
        let path = self.verity.entry(open.index).map_or(&b"?"[..], |e| &e.path);
        let on_failure = |e: &ReadFailure| {
            self.verity.record_failure(format_args!(
                "{}: read of {size} bytes at {offset}: {e}",
                show(path)
            ))
        };
        verified_read(
            &HostFile(file),
            verifier,
            w,
            size,
            offset,
            false,
            &on_failure,
        )
    }

    fn lseek(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: u64,
        offset: u64,
        whence: u32,
    ) -> io::Result<u64> {
        // A verified file has no holes: its data is the manifest's size, all of it data.
        let size = self.entry(inode)?.1.size();
        let beyond = || errno(libc::ENXIO);
        match i32::try_from(whence).unwrap_or(-1) {
            libc::SEEK_DATA if offset < size => Ok(offset),
            libc::SEEK_HOLE if offset < size => Ok(size),
            libc::SEEK_DATA | libc::SEEK_HOLE => Err(beyond()),
            libc::SEEK_SET => Ok(offset),
            libc::SEEK_END => size.checked_add(offset).ok_or_else(|| errno(libc::EINVAL)),
            _ => Err(errno(libc::EINVAL)),
        }
    }

    fn flush(&self, _ctx: &Context, _inode: u64, _handle: u64, _lock_owner: u64) -> io::Result<()> {
        // Nothing is ever written, so there is nothing to flush: ENOSYS makes the guest kernel
        // stop sending FLUSH (it sets `no_flush`), which saves a round trip on every close.
        Err(errno(libc::ENOSYS))
    }

    fn fsync(&self, _ctx: &Context, _inode: u64, _datasync: bool, _handle: u64) -> io::Result<()> {
        Ok(())
    }

    fn release(
        &self,
        _ctx: &Context,
        _inode: u64,
        _flags: u32,
        handle: u64,
        _flush: bool,
        _flock_release: bool,
        _lock_owner: Option<u64>,
    ) -> io::Result<()> {
        if self.files().remove(&handle).is_some() {
            self.budget.release_handle();
        }
        Ok(())
    }

    // ---- digests: xattrs and ioctls ---------------------------------------------------------

    fn getxattr(
        &self,
        _ctx: &Context,
        inode: u64,
        name: &CStr,
        size: u32,
    ) -> io::Result<GetxattrReply> {
        check_xattr_size(size)?;
        let (index, _) = self.entry(inode)?;
        if !is_reserved(name.to_bytes()) {
            // Host xattrs are not bound by the manifest, so none is served.
            return Err(errno(libc::ENODATA));
        }
        let ours = self.verity.xattrs_of(index);
        match ours.iter().find(|(n, _)| n.as_bytes() == name.to_bytes()) {
            Some((_, value)) => value_reply(value, size),
            None => Err(errno(libc::ENODATA)),
        }
    }

    fn listxattr(&self, _ctx: &Context, inode: u64, size: u32) -> io::Result<ListxattrReply> {
        check_xattr_size(size)?;
        let (index, _) = self.entry(inode)?;
        let mut list = Vec::new();
        for (name, _) in self.verity.xattrs_of(index) {
            list.extend_from_slice(name.as_bytes());
            list.push(0);
        }
        list_reply(list, size)
    }

    #[allow(clippy::too_many_arguments)]
    fn ioctl(
        &self,
        _ctx: &Context,
        inode: u64,
        _handle: u64,
        flags: u32,
        cmd: u32,
        data: IoctlData,
        out_size: u32,
    ) -> io::Result<IoctlData<'_>> {
        let (index, _) = self.entry(inode)?;
        let req = IoctlRequest {
            cmd,
            flags,
            out_size,
        };
        let target = IoctlTarget {
            measure: self.verity.measure_reply_of(index),
        };
        handle_ioctl(req, data.data.unwrap_or_default(), target)
    }

    // ---- refused: every mutation ------------------------------------------------------------

    refuse_mutations!();
}
