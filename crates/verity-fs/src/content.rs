// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The host directory of a manifest-served share, reduced to a content store.
//!
//! [`ContentDir`] holds the share root as a descriptor (opened before any sandbox, like
//! [`crate::TreeStore`]) and opens a listed file's path beneath it with `openat2`
//! (`RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS`, `O_NOFOLLOW`): no host
//! symlink, `..` or mount trick reaches outside the share. The opened object is then checked
//! against the manifest entry (a regular file of exactly the recorded size) by the caller;
//! nothing else about it (mode, owner, times, xattrs) is ever read.
//!
//! [`HostFile`] reads an opened file for the Merkle engine: `pread` until the buffer is full or
//! the file ends, retrying `EINTR`.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;
use std::os::unix::fs::FileExt;
use std::path::Path;

use rustix::fs::{Mode, OFlags, ResolveFlags};
use verity_manifest::object_relative_path;
use verity_merkle::{FileDigest, ReadAt};

/// Where a file's bytes are found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// At the file's manifest path beneath the share root.
    Tree,
    /// At its digest in a content-addressed store (`ALG/XX/REST`, `verityctl seal --objects`).
    Objects,
}

/// The share root (or a content-addressed store), open for content lookups.
#[derive(Debug)]
pub struct ContentDir {
    root: OwnedFd,
    layout: Layout,
}

/// Which host file an open found, and its state then (device, inode, change time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct FileId {
    pub(crate) dev: u64,
    pub(crate) ino: u64,
    pub(crate) ctime: (i64, i64),
}

/// What [`ContentDir::open_file`] found instead of the expected file.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ContentError {
    /// The path could not be opened beneath the share root (missing, a symlink on the way,
    /// outside the share, permission).
    #[error("cannot open it beneath the share root: {0}")]
    Open(#[source] io::Error),
    /// Something other than a regular file is there.
    #[error("the host has a {0} there, the manifest says a regular file")]
    NotRegular(&'static str),
    /// A regular file of another size.
    #[error("the host file has {found} bytes, the manifest says {expected}")]
    Size {
        /// Manifest size.
        expected: u64,
        /// Host size.
        found: u64,
    },
}

fn type_name(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFDIR => "directory",
        libc::S_IFLNK => "symlink",
        libc::S_IFIFO => "FIFO",
        libc::S_IFSOCK => "socket",
        libc::S_IFCHR => "character device",
        libc::S_IFBLK => "block device",
        _ => "non-regular file",
    }
}

impl ContentDir {
    /// Opens the directory at `path` (the share root): files are found at their manifest paths.
    pub fn open(path: &Path) -> io::Result<Self> {
        Self::open_with(path, Layout::Tree)
    }

    /// Opens the content-addressed store at `path`: files are found by their fs-verity digest
    /// (`ALG/XX/REST`), so one store serves many images and identical files once.
    pub fn open_objects(path: &Path) -> io::Result<Self> {
        Self::open_with(path, Layout::Objects)
    }

    fn open_with(path: &Path, layout: Layout) -> io::Result<Self> {
        let root = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(ContentDir { root, layout })
    }

    /// Opens the content of the regular file at manifest path `path` with `digest` (at the path
    /// or by the digest, as the layout says) and checks that it is a regular file of `size`
    /// bytes.
    pub(crate) fn open_file(
        &self,
        path: &[u8],
        digest: &FileDigest,
        size: u64,
    ) -> Result<(File, FileId), ContentError> {
        match self.layout {
            Layout::Tree => self.open_regular(relative(path), size),
            Layout::Objects => self.open_regular(&object_relative_path(digest), size),
        }
    }

    /// Opens `relative` beneath the root and checks that it is a regular file of `size` bytes.
    ///
    /// `O_NONBLOCK` keeps a FIFO the host put there from blocking the open; it has no effect on
    /// regular files. Kernels without `openat2` (before 5.6) fall back to `openat` with
    /// `O_NOFOLLOW`, which protects the last component only.
    fn open_regular(&self, relative: &Path, size: u64) -> Result<(File, FileId), ContentError> {
        let flags =
            OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NOFOLLOW | OFlags::NOCTTY | OFlags::NONBLOCK;
        let resolve =
            ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
        let fd = match rustix::fs::openat2(&self.root, relative, flags, Mode::empty(), resolve) {
            Err(rustix::io::Errno::NOSYS) => {
                rustix::fs::openat(&self.root, relative, flags, Mode::empty())
            }
            res => res,
        }
        .map_err(|e| ContentError::Open(e.into()))?;
        let st = rustix::fs::fstat(&fd).map_err(|e| ContentError::Open(e.into()))?;
        if st.st_mode & libc::S_IFMT != libc::S_IFREG {
            return Err(ContentError::NotRegular(type_name(st.st_mode)));
        }
        let found = u64::try_from(st.st_size).unwrap_or(0);
        if found != size {
            return Err(ContentError::Size {
                expected: size,
                found,
            });
        }
        let id = FileId {
            dev: st.st_dev,
            ino: st.st_ino,
            ctime: (st.st_ctime, st.st_ctime_nsec as i64),
        };
        Ok((File::from(fd), id))
    }
}

/// `path` without its leading `/` (`.` for the root), as `openat2` wants it.
fn relative(path: &[u8]) -> &Path {
    use std::os::unix::ffi::OsStrExt;
    let rel = path.strip_prefix(b"/").unwrap_or(path);
    if rel.is_empty() {
        Path::new(".")
    } else {
        Path::new(std::ffi::OsStr::from_bytes(rel))
    }
}

/// An opened host file as a [`ReadAt`]: short only at the end of the file.
#[derive(Debug, Clone, Copy)]
pub(crate) struct HostFile<'a>(pub(crate) &'a File);

impl ReadAt for HostFile<'_> {
    type Error = io::Error;

    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        let mut filled = 0;
        while filled < buf.len() {
            match self.0.read_at(&mut buf[filled..], offset + filled as u64) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(filled)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn digest(b: u8) -> FileDigest {
        FileDigest::new(verity_merkle::HashAlgorithm::Sha256, &[b; 32]).unwrap()
    }

    fn errs(dir: &ContentDir, path: &[u8], size: u64) -> String {
        dir.open_file(path, &digest(0), size)
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn opens_only_regular_files_of_the_size_beneath_the_root() {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("share");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("d/f"), b"12345").unwrap();
        std::fs::write(outer.path().join("outside"), b"12345").unwrap();
        std::os::unix::fs::symlink("f", root.join("d/link")).unwrap();
        std::os::unix::fs::symlink("d", root.join("dirlink")).unwrap();
        std::os::unix::fs::symlink("../outside", root.join("escape")).unwrap();
        let dir = ContentDir::open(&root).unwrap();

        let (f, _) = dir.open_file(b"/d/f", &digest(0), 5).unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(HostFile(&f).read_at(1, &mut buf).unwrap(), 4);
        assert_eq!(&buf[..4], b"2345");

        assert!(errs(&dir, b"/d/f", 4).contains("5 bytes"));
        assert!(errs(&dir, b"/d", 0).contains("directory"));
        for path in [&b"/d/link"[..], b"/dirlink/f", b"/escape", b"/missing"] {
            assert!(errs(&dir, path, 5).contains("cannot open"), "{path:?}");
        }
    }

    #[test]
    fn objects_are_found_by_digest() {
        let store = tempfile::tempdir().unwrap();
        let d = digest(0xab);
        let obj = store.path().join(object_relative_path(&d));
        assert!(obj.ends_with(format!("sha256/ab/{}", "ab".repeat(31))));
        std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
        std::fs::write(&obj, b"bytes").unwrap();
        let dir = ContentDir::open_objects(store.path()).unwrap();
        // Any path: the digest decides.
        assert!(dir.open_file(b"/any/name", &d, 5).is_ok());
        let other = dir.open_file(b"/any/name", &digest(1), 5).unwrap_err();
        assert!(other.to_string().contains("cannot open"), "{other}");
    }
}
