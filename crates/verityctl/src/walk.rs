// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Walking a directory tree for a manifest: every entry, without following
//! symlinks and, unless asked, without crossing into other filesystems.

use std::ffi::OsStr;
use std::fs::{self, Metadata};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};

/// What a walked entry is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeKind {
    /// A directory.
    Directory,
    /// A regular file.
    File,
    /// A symlink and its target.
    Symlink(Vec<u8>),
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device and its `st_rdev`.
    CharDevice(u64),
    /// A block device and its `st_rdev`.
    BlockDevice(u64),
}

/// One entry found by [`walk`].
#[derive(Debug, Clone)]
pub struct Node {
    /// Manifest path: `/` for the root, else `/a/b` (raw bytes).
    pub path: Vec<u8>,
    /// Where it is on the host.
    pub fs_path: PathBuf,
    /// Type and type-specific data.
    pub kind: NodeKind,
    /// `st_mode & 0o7777`.
    pub mode: u32,
    /// Owner.
    pub uid: u32,
    /// Group.
    pub gid: u32,
    /// `st_size` (bytes of a regular file).
    pub size: u64,
    /// `st_dev`, to recognise hard links and re-check files before hashing.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
}

/// Errors walking a tree.
#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    /// The root cannot be examined.
    #[error("cannot examine '{path}'")]
    Root {
        /// The root given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The root is not a directory.
    #[error("'{0}' is not a directory; give the root directory of the tree")]
    RootNotDirectory(PathBuf),
    /// A directory cannot be listed.
    #[error("cannot list directory '{path}' (fix its permissions, or run as a user who can read the whole tree)")]
    ReadDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An entry cannot be examined.
    #[error("cannot examine '{path}'")]
    Stat {
        /// The entry.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A symlink cannot be read.
    #[error("cannot read symlink '{path}'")]
    ReadLink {
        /// The symlink.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// A file type outside the manifest format.
    #[error("'{0}' has a file type a manifest cannot describe")]
    UnknownType(PathBuf),
}

impl WalkError {
    /// True when the error is about the command line rather than the tree.
    pub fn is_usage(&self) -> bool {
        matches!(self, WalkError::RootNotDirectory(_))
    }
}

fn node(path: Vec<u8>, fs_path: PathBuf, meta: &Metadata) -> Result<Node, WalkError> {
    let t = meta.file_type();
    let kind = if t.is_dir() {
        NodeKind::Directory
    } else if t.is_file() {
        NodeKind::File
    } else if t.is_symlink() {
        let target = fs::read_link(&fs_path).map_err(|source| WalkError::ReadLink {
            path: fs_path.clone(),
            source,
        })?;
        NodeKind::Symlink(target.into_os_string().into_encoded_bytes())
    } else if t.is_fifo() {
        NodeKind::Fifo
    } else if t.is_socket() {
        NodeKind::Socket
    } else if t.is_char_device() {
        NodeKind::CharDevice(meta.rdev())
    } else if t.is_block_device() {
        NodeKind::BlockDevice(meta.rdev())
    } else {
        return Err(WalkError::UnknownType(fs_path));
    };
    Ok(Node {
        path,
        fs_path,
        kind,
        mode: meta.mode() & 0o7777,
        uid: meta.uid(),
        gid: meta.gid(),
        size: meta.len(),
        dev: meta.dev(),
        ino: meta.ino(),
    })
}

/// `dir` + `/` + `name` as a manifest path.
pub(crate) fn join(dir: &[u8], name: &[u8]) -> Vec<u8> {
    let mut p = Vec::with_capacity(dir.len() + 1 + name.len());
    p.extend_from_slice(dir);
    if dir != b"/" {
        p.push(b'/');
    }
    p.extend_from_slice(name);
    p
}

/// Lists every entry below `root` (which should be canonical), the root
/// first, then in an order sorted by path. Symlinks are recorded, never
/// followed. A directory on another filesystem than the root is listed but
/// not entered unless `cross_mounts`; `warn` is told about each. `found`
/// sees each entry as soon as it is listed (to start hashing early).
pub fn walk(
    root: &Path,
    cross_mounts: bool,
    warn: &mut dyn FnMut(String),
    found: &mut dyn FnMut(&Node),
) -> Result<Vec<Node>, WalkError> {
    let meta = fs::symlink_metadata(root).map_err(|source| WalkError::Root {
        path: root.to_owned(),
        source,
    })?;
    if !meta.is_dir() {
        return Err(WalkError::RootNotDirectory(root.to_owned()));
    }
    let root_dev = meta.dev();
    let mut out = vec![node(b"/".to_vec(), root.to_owned(), &meta)?];
    // Directories still to list: index into `out`.
    let mut pending = vec![0usize];
    while let Some(i) = pending.pop() {
        let dir_fs = out[i].fs_path.clone();
        let dir_path = out[i].path.clone();
        let read_err = |source| WalkError::ReadDir {
            path: dir_fs.clone(),
            source,
        };
        let first_child = out.len();
        for e in fs::read_dir(&dir_fs).map_err(read_err)? {
            let e = e.map_err(read_err)?;
            let name = e.file_name().into_encoded_bytes();
            let fs_path = dir_fs.join(OsStr::from_bytes(&name));
            // lstat relative to the open directory: no walk of the whole path.
            let meta = e.metadata().map_err(|source| WalkError::Stat {
                path: fs_path.clone(),
                source,
            })?;
            let n = node(join(&dir_path, &name), fs_path, &meta)?;
            found(&n);
            out.push(n);
        }
        out[first_child..].sort_by(|a, b| a.path.cmp(&b.path));
        // Pushed in reverse so that directories are entered in name order.
        for j in (first_child..out.len()).rev() {
            if out[j].kind != NodeKind::Directory {
                continue;
            }
            if out[j].dev != root_dev && !cross_mounts {
                warn(format!(
                    "'{}' is a mount point (another filesystem): listed, but not its contents (--cross-mounts to descend)",
                    out[j].fs_path.display()
                ));
                continue;
            }
            pending.push(j);
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_everything_without_following_symlinks() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("a/b")).unwrap();
        fs::write(root.join("a/b/f"), b"12345").unwrap();
        std::os::unix::fs::symlink("/a", root.join("loop")).unwrap();
        std::os::unix::fs::symlink(".", root.join("a/self")).unwrap();
        let nodes = walk(root, false, &mut |w| panic!("{w}"), &mut |_| {}).unwrap();
        let paths: Vec<&[u8]> = nodes.iter().map(|n| n.path.as_slice()).collect();
        assert_eq!(
            paths,
            vec![&b"/"[..], b"/a", b"/a/b", b"/a/b/f", b"/a/self", b"/loop"]
        );
        assert_eq!(nodes[3].kind, NodeKind::File);
        assert_eq!(nodes[3].size, 5);
        assert_eq!(nodes[5].kind, NodeKind::Symlink(b"/a".to_vec()));
        assert!(matches!(
            walk(&root.join("a/b/f"), false, &mut |_| {}, &mut |_| {}),
            Err(WalkError::RootNotDirectory(_))
        ));
    }
}
