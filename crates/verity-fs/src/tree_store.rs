// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! An open tree store directory (`--tree-store`).
//!
//! The directory is opened once, before the daemon enters its sandbox, and entries are opened
//! relative to that descriptor: after `pivot_root` or `chroot` the store's path no longer
//! exists in the daemon's view, but the descriptor still reaches it. The store is untrusted:
//! what is read from it is checked by the callers (`crate::trees`).

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};

use rustix::fs::{Mode, OFlags, ResolveFlags};

/// The tree store, open for reading.
#[derive(Debug)]
pub struct TreeStore {
    dir: OwnedFd,
    path: PathBuf,
}

impl TreeStore {
    /// Opens the directory at `path`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let dir = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(TreeStore {
            dir,
            path: path.to_owned(),
        })
    }

    /// The directory's path as given (for messages).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Opens the entry at `relative` (e.g. `sha256/HEX`) for reading.
    ///
    /// The path is resolved beneath the store directory without following any symlink or
    /// `/proc` magic link (`openat2` with `RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS |
    /// RESOLVE_NO_MAGICLINKS`; `ELOOP` or `EXDEV` otherwise). On kernels without `openat2`
    /// (before 5.6) only the last component is opened with `O_NOFOLLOW`.
    pub fn open_entry(&self, relative: &Path) -> io::Result<File> {
        let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let fd = match rustix::fs::openat2(&self.dir, relative, flags, Mode::empty(), resolve) {
            Err(rustix::io::Errno::NOSYS) => {
                rustix::fs::openat(&self.dir, relative, flags, Mode::empty())?
            }
            res => res?,
        };
        Ok(File::from(fd))
    }
}

/// Two stores are the same configuration when they were opened at the same path.
impl PartialEq for TreeStore {
    fn eq(&self, other: &Self) -> bool {
        self.path == other.path
    }
}

impl Eq for TreeStore {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_stay_reachable_through_the_descriptor() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("sha256")).unwrap();
        std::fs::write(dir.path().join("sha256/ab"), b"tree").unwrap();
        let store = TreeStore::open(dir.path()).unwrap();
        // Moving the directory (as pivot_root hides it) does not matter.
        let moved = dir.path().with_extension("moved");
        std::fs::rename(dir.path(), &moved).unwrap();
        let f = store.open_entry(Path::new("sha256/ab")).unwrap();
        assert_eq!(std::io::read_to_string(f).unwrap(), "tree");
        assert_eq!(
            store.open_entry(Path::new("sha256/cd")).unwrap_err().kind(),
            io::ErrorKind::NotFound
        );
        std::fs::remove_dir_all(moved).unwrap();
        assert!(TreeStore::open(Path::new("/nonexistent-store")).is_err());
    }

    #[test]
    fn entries_never_leave_the_store() {
        let dir = tempfile::tempdir().unwrap();
        let store_dir = dir.path().join("store");
        std::fs::create_dir_all(store_dir.join("sha256")).unwrap();
        std::fs::write(dir.path().join("outside"), b"not a tree").unwrap();
        std::fs::create_dir(dir.path().join("elsewhere")).unwrap();
        std::fs::write(dir.path().join("elsewhere/ab"), b"not a tree").unwrap();
        std::os::unix::fs::symlink("../../outside", store_dir.join("sha256/ab")).unwrap();
        std::os::unix::fs::symlink("../elsewhere", store_dir.join("sha512")).unwrap();
        let store = TreeStore::open(&store_dir).unwrap();
        for rel in ["sha256/ab", "sha512/ab", "../outside", "/etc/passwd"] {
            let err = store.open_entry(Path::new(rel)).unwrap_err();
            assert!(
                matches!(err.raw_os_error(), Some(libc::ELOOP) | Some(libc::EXDEV)),
                "{rel}: {err}"
            );
        }
    }
}
