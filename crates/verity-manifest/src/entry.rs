// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! One manifest entry.

use verity_merkle::FileDigest;

/// What an entry is, with the data that pins it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EntryKind {
    /// A directory; its children are the entries below it.
    Directory,
    /// A regular file of `size` bytes with fs-verity digest `digest`.
    File {
        /// Size in bytes.
        size: u64,
        /// fs-verity file digest.
        digest: FileDigest,
    },
    /// A symbolic link and its target (raw bytes).
    Symlink {
        /// Link target.
        target: Vec<u8>,
    },
    /// A named pipe.
    Fifo,
    /// A Unix socket.
    Socket,
    /// A character device.
    CharDevice {
        /// Device number (`st_rdev`).
        rdev: u64,
    },
    /// A block device.
    BlockDevice {
        /// Device number (`st_rdev`).
        rdev: u64,
    },
}

impl EntryKind {
    /// The one-letter type code used in the manifest text.
    pub fn code(&self) -> char {
        match self {
            EntryKind::Directory => 'd',
            EntryKind::File { .. } => 'f',
            EntryKind::Symlink { .. } => 'l',
            EntryKind::Fifo => 'p',
            EntryKind::Socket => 's',
            EntryKind::CharDevice { .. } => 'c',
            EntryKind::BlockDevice { .. } => 'b',
        }
    }

    /// The `S_IFMT` bits of this kind.
    pub fn file_type_bits(&self) -> u32 {
        match self {
            EntryKind::Directory => 0o040000,
            EntryKind::File { .. } => 0o100000,
            EntryKind::Symlink { .. } => 0o120000,
            EntryKind::Fifo => 0o010000,
            EntryKind::Socket => 0o140000,
            EntryKind::CharDevice { .. } => 0o020000,
            EntryKind::BlockDevice { .. } => 0o060000,
        }
    }
}

/// A path in the share and what must be found there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Absolute path inside the share, raw bytes: `/` for the root, else
    /// `/a/b` (no empty, `.` or `..` components, no trailing slash).
    pub path: Vec<u8>,
    /// Type and type-specific data.
    pub kind: EntryKind,
    /// Permission bits including set-id and sticky bits (`mode & 0o7777`).
    pub mode: u32,
    /// Owner user id.
    pub uid: u32,
    /// Owner group id.
    pub gid: u32,
}

impl Entry {
    /// The file's size for regular files and symlinks (target length), else 0.
    pub fn size(&self) -> u64 {
        match &self.kind {
            EntryKind::File { size, .. } => *size,
            EntryKind::Symlink { target } => target.len() as u64,
            _ => 0,
        }
    }

    /// The fs-verity digest of a regular file.
    pub fn digest(&self) -> Option<&FileDigest> {
        match &self.kind {
            EntryKind::File { digest, .. } => Some(digest),
            _ => None,
        }
    }

    /// The parent directory's path (`None` for the root).
    pub fn parent(&self) -> Option<&[u8]> {
        parent_of(&self.path)
    }

    /// The last path component (empty for the root).
    pub fn name(&self) -> &[u8] {
        match self.path.iter().rposition(|&b| b == b'/') {
            Some(i) => &self.path[i + 1..],
            None => &self.path,
        }
    }
}

/// The parent of an absolute manifest path (`None` for `/`).
pub(crate) fn parent_of(path: &[u8]) -> Option<&[u8]> {
    if path == b"/" {
        return None;
    }
    let i = path.iter().rposition(|&b| b == b'/')?;
    Some(if i == 0 { b"/" } else { &path[..i] })
}

/// True for a normalised absolute path as [`Entry::path`] requires.
pub(crate) fn is_normal_path(path: &[u8]) -> bool {
    if path == b"/" {
        return true;
    }
    if path.first() != Some(&b'/') || path.contains(&0) {
        return false;
    }
    path[1..]
        .split(|&b| b == b'/')
        .all(|c| !c.is_empty() && c != b"." && c != b"..")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths() {
        assert_eq!(parent_of(b"/"), None);
        assert_eq!(parent_of(b"/a"), Some(&b"/"[..]));
        assert_eq!(parent_of(b"/a/b"), Some(&b"/a"[..]));
        for ok in [&b"/"[..], b"/a", b"/a/b c", b"/.hidden", b"/..."] {
            assert!(is_normal_path(ok));
        }
        for bad in [
            &b""[..],
            b"a",
            b"//",
            b"/a/",
            b"/a//b",
            b"/./a",
            b"/a/..",
            b"/a\0",
        ] {
            assert!(!is_normal_path(bad), "{bad:?}");
        }
    }
}
