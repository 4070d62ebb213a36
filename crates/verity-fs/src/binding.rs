// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Inode bindings: which manifest path every FUSE inode the guest knows stands for.
//!
//! A binding is made when an inode is handed to the guest (LOOKUP, READDIRPLUS, CREATE of an
//! existing name) and lives as long as the guest holds lookup references to it. The path of a
//! child is its parent's bound path plus the name, so a renamed or swapped host file is judged
//! by the manifest entry of the *name* the guest used, never by what the host file claims.

use std::collections::HashMap;
use std::sync::{RwLock, RwLockReadGuard, RwLockWriteGuard};

use fuse_backend_rs::abi::fuse_abi::stat64;
use verity_manifest::{Entry, EntryKind};

/// What an inode is bound to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Bound {
    /// Manifest entry at this index of `Manifest::entries()`.
    Listed(usize),
    /// A name absent from the manifest, served unverified (`--unlisted=allow` only).
    Unlisted,
}

#[derive(Debug)]
struct Binding {
    path: Vec<u8>,
    bound: Bound,
    lookups: u64,
}

/// The inode → path table.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    map: RwLock<HashMap<u64, Binding>>,
}

/// A second name for an inode that is bound to an entry with different content.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Conflict {
    /// The path the inode is already bound to.
    pub(crate) existing: Vec<u8>,
}

impl Bindings {
    fn read(&self) -> RwLockReadGuard<'_, HashMap<u64, Binding>> {
        self.map.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, HashMap<u64, Binding>> {
        self.map.write().unwrap_or_else(|e| e.into_inner())
    }

    /// Binds the share root (never forgotten).
    pub(crate) fn bind_root(&self, inode: u64, root: Bound) {
        self.write().insert(
            inode,
            Binding {
                path: b"/".to_vec(),
                bound: root,
                lookups: u64::MAX,
            },
        );
    }

    /// What `inode` is bound to.
    pub(crate) fn bound(&self, inode: u64) -> Option<Bound> {
        self.read().get(&inode).map(|b| b.bound)
    }

    /// `inode`'s path and binding.
    pub(crate) fn path(&self, inode: u64) -> Option<(Vec<u8>, Bound)> {
        self.read().get(&inode).map(|b| (b.path.clone(), b.bound))
    }

    /// Adds one lookup reference binding `inode` to `path`. If the inode is already bound to
    /// another path (a hard link, or the host moved things around), the new name is accepted
    /// only if `equivalent(existing, new)` says both pin the same thing.
    pub(crate) fn bind(
        &self,
        inode: u64,
        path: &[u8],
        bound: Bound,
        equivalent: impl FnOnce(Bound, Bound) -> bool,
    ) -> Result<(), Conflict> {
        let mut map = self.write();
        match map.get_mut(&inode) {
            Some(b) => {
                if b.path != path && !equivalent(b.bound, bound) {
                    return Err(Conflict {
                        existing: b.path.clone(),
                    });
                }
                b.lookups = b.lookups.saturating_add(1);
            }
            None => {
                map.insert(
                    inode,
                    Binding {
                        path: path.to_vec(),
                        bound,
                        lookups: 1,
                    },
                );
            }
        }
        Ok(())
    }

    /// Drops `count` lookup references; the binding goes with the last one.
    pub(crate) fn forget(&self, inode: u64, count: u64) {
        let mut map = self.write();
        if let Some(b) = map.get_mut(&inode) {
            if b.lookups == u64::MAX {
                return; // the root
            }
            b.lookups = b.lookups.saturating_sub(count);
            if b.lookups == 0 {
                map.remove(&inode);
            }
        }
    }

    /// Drops every binding except the root's (FUSE DESTROY / re-INIT).
    pub(crate) fn clear(&self) {
        self.write().retain(|_, b| b.lookups == u64::MAX);
    }

    /// Number of bound inodes (root included).
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }
}

/// True for a name that is one path component (what the Linux client sends).
pub(crate) fn is_component(name: &[u8]) -> bool {
    !name.is_empty() && name != b"." && name != b".." && !name.contains(&b'/')
}

/// How a host inode differs from its manifest entry.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum Mismatch {
    /// Another file type (for example a symlink where the manifest lists a file).
    #[error("type {found:#o} on the host, {expected:#o} in the manifest")]
    Type {
        /// S_IFMT bits found.
        found: u32,
        /// S_IFMT bits expected.
        expected: u32,
    },
    /// Other permission bits.
    #[error("mode {found:04o} on the host, {expected:04o} in the manifest")]
    Mode {
        /// Permission bits found.
        found: u32,
        /// Permission bits expected.
        expected: u32,
    },
    /// Another size (file length or symlink target length).
    #[error("size {found} on the host, {expected} in the manifest")]
    Size {
        /// Size found.
        found: u64,
        /// Size expected.
        expected: u64,
    },
    /// Another device number.
    #[error("device {found} on the host, {expected} in the manifest")]
    Rdev {
        /// rdev found.
        found: u64,
        /// rdev expected.
        expected: u64,
    },
}

/// Checks a host `stat` against a manifest entry: type, permission bits, size (files and
/// symlinks) and device number. Owners are not compared (they are often remapped).
pub(crate) fn check_attr(entry: &Entry, st: &stat64) -> Result<(), Mismatch> {
    let mode = st.st_mode;
    let expected = entry.kind.file_type_bits();
    let found = mode & libc::S_IFMT;
    if found != expected {
        return Err(Mismatch::Type { found, expected });
    }
    if mode & 0o7777 != entry.mode {
        return Err(Mismatch::Mode {
            found: mode & 0o7777,
            expected: entry.mode,
        });
    }
    let size = u64::try_from(st.st_size).unwrap_or(u64::MAX);
    match &entry.kind {
        EntryKind::File { .. } | EntryKind::Symlink { .. } if size != entry.size() => {
            Err(Mismatch::Size {
                found: size,
                expected: entry.size(),
            })
        }
        EntryKind::CharDevice { rdev } | EntryKind::BlockDevice { rdev } if st.st_rdev != *rdev => {
            Err(Mismatch::Rdev {
                found: st.st_rdev,
                expected: *rdev,
            })
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_counts_and_forgets() {
        let b = Bindings::default();
        b.bind_root(1, Bound::Listed(0));
        b.bind(5, b"/a", Bound::Listed(1), |_, _| false).unwrap();
        b.bind(5, b"/a", Bound::Listed(1), |_, _| false).unwrap();
        assert_eq!(b.path(5), Some((b"/a".to_vec(), Bound::Listed(1))));
        b.forget(5, 1);
        assert_eq!(b.bound(5), Some(Bound::Listed(1)));
        b.forget(5, 1);
        assert_eq!(b.bound(5), None);
        b.forget(1, 100);
        assert_eq!(b.bound(1), Some(Bound::Listed(0)));
        b.bind(6, b"/x", Bound::Unlisted, |_, _| false).unwrap();
        b.clear();
        assert_eq!(b.len(), 1);
    }

    #[test]
    fn second_name_needs_equivalence() {
        let b = Bindings::default();
        b.bind(7, b"/a", Bound::Listed(1), |_, _| false).unwrap();
        let err = b
            .bind(7, b"/b", Bound::Listed(2), |_, _| false)
            .unwrap_err();
        assert_eq!(err.existing, b"/a".to_vec());
        b.bind(7, b"/b", Bound::Listed(2), |x, y| x != y).unwrap();
        assert_eq!(b.path(7).unwrap().0, b"/a".to_vec());
    }

    #[test]
    fn paths_and_components() {
        assert_eq!(verity_manifest::join(b"/", b"a"), b"/a".to_vec());
        assert_eq!(verity_manifest::join(b"/a", b"b"), b"/a/b".to_vec());
        assert!(is_component(b"x"));
        for bad in [&b""[..], b".", b"..", b"a/b"] {
            assert!(!is_component(bad));
        }
    }
}
