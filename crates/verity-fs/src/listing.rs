// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Directory listings of a verified share: unlisted names are hidden, and every inode
//! READDIRPLUS hands out is bound and checked like a LOOKUP (it counts as one).

use std::io;
use std::time::Duration;

use fuse_backend_rs::api::filesystem::{Context, DirEntry, Entry, FileSystem};
use verity_manifest::EntryKind;

use crate::binding::Bound;
use crate::errno::eio;
use crate::verity::Verity;

/// `e` without a node id (and without attribute caching): the guest lists the name and
/// looks it up itself when it needs it.
pub(crate) fn blank(e: &Entry) -> Entry {
    Entry {
        inode: 0,
        generation: 0,
        attr: e.attr,
        attr_flags: 0,
        attr_timeout: Duration::ZERO,
        entry_timeout: Duration::ZERO,
    }
}

/// READDIR: names the manifest does not list are skipped (deny mode).
#[allow(clippy::too_many_arguments)]
pub(crate) fn readdir<F: FileSystem<Inode = u64, Handle = u64>>(
    inner: &F,
    v: &Verity,
    ctx: &Context,
    inode: u64,
    handle: u64,
    size: u32,
    offset: u64,
    add_entry: &mut dyn FnMut(DirEntry) -> io::Result<usize>,
) -> io::Result<()> {
    let dir = v.bindings.path(inode);
    inner.readdir(ctx, inode, handle, size, offset, &mut |d: DirEntry| {
        if v.visible(dir.as_ref(), d.name) {
            add_entry(d)
        } else {
            // Hidden; non-zero so that the listing goes on.
            Ok(1)
        }
    })
}

/// READDIRPLUS: unlisted names are skipped, listed ones are bound before they are delivered;
/// an entry that fails its check is delivered without attributes (node id 0).
#[allow(clippy::too_many_arguments)]
pub(crate) fn readdirplus<F: FileSystem<Inode = u64, Handle = u64>>(
    inner: &F,
    v: &Verity,
    ctx: &Context,
    inode: u64,
    handle: u64,
    size: u32,
    offset: u64,
    add_entry: &mut dyn FnMut(DirEntry, Entry) -> io::Result<usize>,
) -> io::Result<()> {
    let dir = v.bindings.path(inode);
    // Inner lookup references of entries the guest does not get; dropped afterwards, not
    // from inside the inner listing.
    let mut drop_refs: Vec<u64> = Vec::new();
    let res = inner.readdirplus(
        ctx,
        inode,
        handle,
        size,
        offset,
        &mut |d: DirEntry, e: Entry| {
            if !v.visible(dir.as_ref(), d.name) {
                drop_refs.push(e.inode);
                return Ok(1);
            }
            let accepted = dir
                .as_ref()
                .ok_or_else(eio)
                .and_then(|_| v.resolve(inode, d.name))
                .and_then(|(path, bound)| v.accept(e.inode, &path, bound, &e.attr).map(|()| bound));
            match accepted {
                Ok(bound) => {
                    let mut e = e;
                    if let Bound::Listed(i) = bound {
                        if let Some(EntryKind::File { size, .. }) = v.entry(i).map(|x| &x.kind) {
                            e.attr.st_size = i64::try_from(*size).unwrap_or(i64::MAX);
                        }
                    }
                    let added = add_entry(d, e);
                    if !matches!(added, Ok(n) if n > 0) {
                        // Not delivered (full buffer or error): the guest holds no
                        // reference, so neither does the binding.
                        v.bindings.forget(e.inode, 1);
                    }
                    added
                }
                Err(_) => {
                    // The name is shown without attributes (node id 0): the guest's own
                    // LOOKUP then gets the error.
                    drop_refs.push(e.inode);
                    let n = add_entry(d, blank(&e))?;
                    if n == 0 {
                        // A full buffer: the inner layer drops its own reference and the
                        // entry comes again in the next READDIRPLUS.
                        drop_refs.pop();
                    }
                    Ok(n)
                }
            }
        },
    );
    for ino in drop_refs {
        inner.forget(ctx, ino, 1);
    }
    res
}
