// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! [`Verity`]: the trusted state of a verified share (the manifest, what every inode is bound
//! to, the Merkle trees) and the policy decisions made with it.
//!
//! Errno decisions (`docs/guest-abi.md`): a name absent from the manifest is `ENOENT` (with
//! `--unlisted=deny`); a host object that differs from its manifest entry (type, permission
//! bits, size, symlink target, content) is `EIO`, the errno of a failed integrity check in
//! fs-verity itself. `--verity=audit` logs and counts the same failures but serves anyway.

use std::fmt;
use std::io;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use fuse_backend_rs::abi::fuse_abi::stat64;
use verity_manifest::{join, Entry, EntryKind, Manifest};
use verity_merkle::DEFAULT_CACHE_BLOCKS;

use crate::binding::{check_attr, is_component, Bindings, Bound};
use crate::errno::eio;
use crate::tree_store::TreeStore;
use crate::trees::Trees;
use crate::warn_ratelimited;
use crate::xattr::{DIGEST_XATTR, MANIFEST_DIGEST_XATTR};

/// The FUSE inode number of the share root.
pub(crate) const ROOT_INODE: u64 = 1;

/// What happens when a check fails (`--verity`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum VerifyMode {
    /// Refuse with `EIO` (the default).
    #[default]
    Enforce,
    /// Log and count, but serve the host's bytes anyway (for diagnosing a share).
    Audit,
}

/// What to do with names the manifest does not list (`--unlisted`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum UnlistedPolicy {
    /// They do not exist for the guest: `ENOENT`, hidden from directory listings.
    #[default]
    Deny,
    /// They are served unverified (no digest, no `FS_VERITY_FL`), like the plain share.
    Allow,
}

/// Options of a verified share.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerityOptions {
    /// Enforce or audit.
    pub mode: VerifyMode,
    /// Unlisted names.
    pub unlisted: UnlistedPolicy,
    /// Directory of stored Merkle trees (`verityctl seal --tree-store`), already open.
    pub tree_store: Option<Arc<TreeStore>>,
    /// Capacity of the shared cache of verified tree blocks, in blocks.
    pub cache_blocks: usize,
    /// Bytes of Merkle trees kept in memory (built, or small stored ones); the least recently
    /// used are dropped beyond it and set up again at their next open. `None`: no bound.
    pub tree_memory: Option<u64>,
}

impl Default for VerityOptions {
    fn default() -> Self {
        VerityOptions {
            mode: VerifyMode::Enforce,
            unlisted: UnlistedPolicy::Deny,
            tree_store: None,
            cache_blocks: DEFAULT_CACHE_BLOCKS,
            tree_memory: None,
        }
    }
}

/// The trusted state of a verified share.
#[derive(Debug)]
pub struct Verity {
    manifest: Manifest,
    mode: VerifyMode,
    unlisted: UnlistedPolicy,
    /// `struct fsverity_digest` replies, parallel to `manifest.entries()` (files only). The
    /// ioctl reply borrows from here, so it must live as long as the filesystem.
    measure: Vec<Option<Box<[u8]>>>,
    pub(crate) bindings: Bindings,
    pub(crate) trees: Trees,
    failures: AtomicU64,
}

impl Verity {
    /// The state for `manifest`, with the root bound.
    pub fn new(manifest: Manifest, opts: VerityOptions) -> Self {
        let measure = manifest
            .entries()
            .iter()
            .map(|e| e.digest().map(|d| d.measure_reply().into_boxed_slice()))
            .collect();
        let bindings = Bindings::default();
        bindings.bind_root(ROOT_INODE, Bound::Listed(0));
        Verity {
            manifest,
            mode: opts.mode,
            unlisted: opts.unlisted,
            measure,
            bindings,
            trees: Trees::new(opts.tree_store, opts.cache_blocks, opts.tree_memory),
            failures: AtomicU64::new(0),
        }
    }

    /// The manifest.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Integrity failures seen so far (refused or, in audit mode, served).
    pub fn failures(&self) -> u64 {
        self.failures.load(Ordering::Relaxed)
    }

    pub(crate) fn audit(&self) -> bool {
        self.mode == VerifyMode::Audit
    }

    pub(crate) fn entry(&self, index: usize) -> Option<&Entry> {
        self.manifest.entries().get(index)
    }

    /// Counts and logs an integrity failure; `Err(EIO)` unless in audit mode.
    pub(crate) fn integrity_failure(&self, what: fmt::Arguments<'_>) -> io::Result<()> {
        self.record_failure(what);
        if self.audit() {
            Ok(())
        } else {
            Err(eio())
        }
    }

    /// Counts and logs an integrity failure without deciding the reply.
    pub(crate) fn record_failure(&self, what: fmt::Arguments<'_>) {
        self.failures.fetch_add(1, Ordering::Relaxed);
        let mode = if self.audit() {
            "served anyway (audit)"
        } else {
            "refused"
        };
        warn_ratelimited!("integrity failure, {mode}: {what}");
    }

    /// Where a child `name` of `parent` is, decided before the host is asked: its path and
    /// binding, or `ENOENT` for a name the manifest does not list (deny mode).
    pub(crate) fn resolve(&self, parent: u64, name: &[u8]) -> io::Result<(Vec<u8>, Bound)> {
        if name.is_empty() || name.contains(&b'/') {
            // Not one path component.
            return Err(io::Error::from_raw_os_error(libc::EINVAL));
        }
        if !is_component(name) {
            // `.` and `..` are never manifest names (the guest kernel resolves them itself).
            return Err(io::Error::from_raw_os_error(libc::ENOENT));
        }
        let (dir, bound) = self.bindings.path(parent).ok_or_else(|| {
            warn_ratelimited!("lookup in inode {parent}, which has no manifest path");
            eio()
        })?;
        let path = join(&dir, name);
        let listed = match bound {
            Bound::Listed(_) => self.manifest.position(&path),
            Bound::Unlisted => None,
        };
        match (listed, self.unlisted) {
            (Some(i), _) => Ok((path, Bound::Listed(i))),
            (None, UnlistedPolicy::Allow) => Ok((path, Bound::Unlisted)),
            (None, UnlistedPolicy::Deny) => Err(io::Error::from_raw_os_error(libc::ENOENT)),
        }
    }

    /// Checks the host's `attr` for an inode found at `path` and binds it.
    pub(crate) fn accept(
        &self,
        inode: u64,
        path: &[u8],
        bound: Bound,
        attr: &stat64,
    ) -> io::Result<()> {
        if let Bound::Listed(i) = bound {
            let entry = self.entry(i).ok_or_else(eio)?;
            if let Err(m) = check_attr(entry, attr) {
                self.integrity_failure(format_args!("{}: {m}", show(path)))?;
            }
        }
        let audit = self.audit();
        self.bindings
            .bind(inode, path, bound, |a, b| audit || self.equivalent(a, b))
            .or_else(|c| {
                self.integrity_failure(format_args!(
                    "{} is the same host inode as {}, with different manifest content",
                    show(path),
                    show(&c.existing)
                ))
            })
    }

    /// Checks the share root's host attributes against the manifest root.
    pub(crate) fn check_root(&self, st: &stat64) -> io::Result<()> {
        match self.entry(0).map(|root| check_attr(root, st)) {
            Some(Ok(())) => Ok(()),
            Some(Err(m)) => self.integrity_failure(format_args!("share root: {m}")),
            None => Err(eio()),
        }
    }

    /// Whether two bindings pin the same content (hard links of one file).
    fn equivalent(&self, a: Bound, b: Bound) -> bool {
        match (a, b) {
            (Bound::Listed(x), Bound::Listed(y)) => match (self.entry(x), self.entry(y)) {
                (Some(ex), Some(ey)) => {
                    matches!(ex.kind, EntryKind::File { .. })
                        && ex.kind == ey.kind
                        && ex.mode == ey.mode
                }
                _ => false,
            },
            _ => false,
        }
    }

    /// Whether a directory listing of `dir` shows `name`.
    pub(crate) fn visible(&self, dir: Option<&(Vec<u8>, Bound)>, name: &[u8]) -> bool {
        if name == b"." || name == b".." || self.unlisted == UnlistedPolicy::Allow {
            return true;
        }
        match dir {
            Some((path, Bound::Listed(_))) => self.manifest.position(&join(path, name)).is_some(),
            _ => false,
        }
    }

    /// The manifest entry of a listed inode.
    pub(crate) fn listed(&self, inode: u64) -> Option<(usize, &Entry)> {
        match self.bindings.bound(inode)? {
            Bound::Listed(i) => self.entry(i).map(|e| (i, e)),
            Bound::Unlisted => None,
        }
    }

    /// The MEASURE reply of a verified regular file.
    pub(crate) fn measure_reply(&self, inode: u64) -> Option<&[u8]> {
        let (i, _) = self.listed(inode)?;
        self.measure_reply_of(i)
    }

    /// The MEASURE reply of manifest entry `index` (regular files only).
    pub(crate) fn measure_reply_of(&self, index: usize) -> Option<&[u8]> {
        self.measure.get(index)?.as_deref()
    }

    /// The digest xattrs of `inode` (name, value).
    pub(crate) fn xattrs(&self, inode: u64) -> Vec<(&'static str, Vec<u8>)> {
        match self.listed(inode) {
            Some((i, _)) => self.xattrs_of(i),
            None if inode == ROOT_INODE => self.xattrs_of(0),
            None => Vec::new(),
        }
    }

    /// The digest xattrs of manifest entry `index` (name, value): the manifest digest on the
    /// root, the file digest on a regular file.
    pub(crate) fn xattrs_of(&self, index: usize) -> Vec<(&'static str, Vec<u8>)> {
        let mut out = Vec::new();
        if index == 0 {
            out.push((
                MANIFEST_DIGEST_XATTR,
                self.manifest.digest().to_string().into_bytes(),
            ));
        }
        if let Some(d) = self.entry(index).and_then(Entry::digest) {
            out.push((DIGEST_XATTR, d.to_string().into_bytes()));
        }
        out
    }
}

/// A manifest path for log lines (escaped like in the manifest).
pub(crate) fn show(path: &[u8]) -> String {
    verity_manifest::escape_bytes(path)
}
