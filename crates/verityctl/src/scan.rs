// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Listing and hashing a tree in one pass, for `seal` and `verify-manifest`
//! (which hashes only the files it needs, see [`ScanOptions::hash_if`]).
//!
//! Every thread takes a directory from a shared stack, lists it, and handles
//! each entry at once: a regular file is opened relative to the directory
//! (`openat` with `O_NOFOLLOW`, no walk of the whole path), examined once
//! (`fstat` on the open file gives its metadata and the size to hash) and
//! read into the thread's reused buffer while it is hashed; other entries
//! are examined with one `fstatat`. Subdirectories go back on the stack, so
//! listing and hashing spread over all threads. A file of at least
//! [`LARGE_FILE`] bytes is hashed with every thread inside it. Hard links
//! (same device and inode) are hashed once.

use std::collections::hash_map::{Entry as Slot, HashMap};
use std::ffi::{CStr, OsStr};
use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{BorrowedFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Condvar, Mutex};

use indicatif::ProgressBar;
use rustix::fs::{AtFlags, Dir, FileType, Mode, OFlags, Stat};
use verity_manifest::{join, Entry, EntryKind};
use verity_merkle::{
    build_parallel, BuildError, FileDigest, MerkleParams, MerkleTree, TreeBuilder, MAX_DIGEST_SIZE,
};

use crate::hashing::{HashError, LARGE_FILE};
use crate::source::FileSource;

/// Bytes each thread reads at a time; most files of a rootfs fit in one read.
const READ_BYTES: usize = 256 << 10;

/// Errors listing or examining a tree.
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

/// Where the manifest path `path` is on the host, below `root`.
fn host_path(root: &Path, path: &[u8]) -> PathBuf {
    root.join(OsStr::from_bytes(&path[1..]))
}

/// Errors of [`scan`].
#[derive(Debug, thiserror::Error)]
pub enum ScanError {
    /// Listing or examining the tree failed.
    #[error(transparent)]
    Walk(WalkError),
    /// Reading or hashing a file (or the per-tree callback) failed.
    #[error(transparent)]
    Hash(HashError),
}

/// What [`scan`] found.
#[derive(Debug)]
pub struct Scanned {
    /// One manifest entry per path, in no particular order.
    pub entries: Vec<Entry>,
    /// Bytes hashed (a hard-linked file counts once).
    pub bytes: u64,
}

/// Decides, from a regular file's manifest path and size, whether to hash it.
pub type HashIf<'a> = dyn Fn(&[u8], u64) -> bool + Sync + 'a;

/// How to scan.
pub struct ScanOptions<'a> {
    /// Canonical root directory.
    pub root: &'a Path,
    /// Descend into directories on other filesystems.
    pub cross_mounts: bool,
    /// Threads (at least one).
    pub threads: usize,
    /// Merkle parameters of every file digest.
    pub params: &'a MerkleParams,
    /// Progress, in bytes hashed.
    pub bar: &'a ProgressBar,
    /// Told about each directory listed but not entered.
    pub warn: &'a (dyn Fn(String) + Sync),
    /// Sees each file's tree as soon as it is built.
    pub sink: &'a (dyn Fn(&MerkleTree) -> Result<(), String> + Sync),
    /// Which regular files to hash, given their manifest path and size;
    /// `None` hashes every one. A file left out is examined with `fstatat`
    /// only, never opened, and its entry carries an all-zero digest.
    pub hash_if: Option<&'a HashIf<'a>>,
}

impl std::fmt::Debug for ScanOptions<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ScanOptions")
            .field("root", &self.root)
            .field("cross_mounts", &self.cross_mounts)
            .field("threads", &self.threads)
            .field("hash_if", &self.hash_if.is_some())
            .finish_non_exhaustive()
    }
}

/// A directory still to list.
struct DirJob {
    path: Vec<u8>,
    dev: u64,
    ino: u64,
}

/// The shared stack of directories and how many threads are listing one.
struct Stack {
    dirs: Vec<DirJob>,
    busy: usize,
}

/// State shared by the threads of one scan.
struct Shared<'a> {
    opts: &'a ScanOptions<'a>,
    root_dev: u64,
    stack: Mutex<Stack>,
    wake: Condvar,
    stop: AtomicBool,
    failure: Mutex<Option<ScanError>>,
    /// An all-zero digest of the scan's algorithm: the placeholder of a file
    /// left unhashed, or hashed through another link.
    placeholder: FileDigest,
    /// Digests of files with more than one link, by (device, inode); `None`
    /// while the thread that claimed the inode hashes it.
    links: Mutex<HashMap<(u64, u64), Option<FileDigest>>>,
}

/// One thread's results and its read buffer.
struct Worker {
    buf: Vec<u8>,
    entries: Vec<Entry>,
    /// Entries whose digest is another link's: (index in `entries`, inode).
    linked: Vec<(usize, (u64, u64))>,
    bytes: u64,
}

/// `st_size` of a regular file (never negative for one).
fn size_of(st: &Stat) -> u64 {
    u64::try_from(st.st_size).unwrap_or(0)
}

impl Shared<'_> {
    /// Where the manifest path `path` is on the host.
    fn fs_path(&self, path: &[u8]) -> PathBuf {
        host_path(self.opts.root, path)
    }

    fn fail(&self, e: ScanError) {
        if let Ok(mut f) = self.failure.lock() {
            f.get_or_insert(e);
        }
        self.stop.store(true, Ordering::Relaxed);
        self.wake.notify_all();
    }

    /// The next directory to list, or `None` when the scan is over.
    fn next_dir(&self) -> Option<DirJob> {
        let mut stack = self.stack.lock().ok()?;
        loop {
            if self.stop.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(job) = stack.dirs.pop() {
                stack.busy += 1;
                return Some(job);
            }
            if stack.busy == 0 {
                self.wake.notify_all();
                return None;
            }
            stack = self.wake.wait(stack).ok()?;
        }
    }

    /// Ends the listing of one directory, queueing its subdirectories.
    fn done_dir(&self, found: Vec<DirJob>) {
        if let Ok(mut stack) = self.stack.lock() {
            stack.busy -= 1;
            stack.dirs.extend(found.into_iter().rev());
        }
        self.wake.notify_all();
    }

    fn run(&self, w: &mut Worker) {
        while let Some(job) = self.next_dir() {
            let mut found = Vec::new();
            let result = self.list(w, &job, &mut found);
            self.done_dir(found);
            if let Err(e) = result {
                self.fail(e);
                return;
            }
        }
    }

    /// Lists directory `job`, recording and hashing each entry; subdirectories
    /// to enter go to `found`.
    fn list(&self, w: &mut Worker, job: &DirJob, found: &mut Vec<DirJob>) -> Result<(), ScanError> {
        let read_err = |source: io::Error| {
            ScanError::Walk(WalkError::ReadDir {
                path: self.fs_path(&job.path),
                source,
            })
        };
        let dir_fd = rustix::fs::open(
            self.fs_path(&job.path),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| read_err(e.into()))?;
        let st = rustix::fs::fstat(&dir_fd).map_err(|e| read_err(e.into()))?;
        if st.st_dev != job.dev || st.st_ino != job.ino {
            return Err(ScanError::Hash(HashError::Changed(self.fs_path(&job.path))));
        }
        // The stream owns the descriptor (`read_from` would reopen the
        // directory); entries are opened relative to it, which does not move
        // its position.
        let mut dir = Dir::new(dir_fd).map_err(|e| read_err(e.into()))?;
        while let Some(e) = dir.read() {
            if self.stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            let e = e.map_err(|e| read_err(e.into()))?;
            let dir_fd = dir.fd().map_err(|e| read_err(e.into()))?;
            let name = e.file_name();
            if matches!(name.to_bytes(), b"." | b"..") {
                continue;
            }
            let path = join(&job.path, name.to_bytes());
            // With a filter, the size decides before the file is opened.
            if e.file_type() == FileType::RegularFile && self.opts.hash_if.is_none() {
                if let Some(file) = self.open_file(dir_fd, name, &path)? {
                    self.file(w, file, path)?;
                    continue;
                }
            }
            self.other(w, dir_fd, name, path, found)?;
        }
        Ok(())
    }

    /// Opens a file named as a regular file; `None` when it is something
    /// else now (a symlink is refused by `O_NOFOLLOW`, never followed).
    fn open_file(
        &self,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: &[u8],
    ) -> Result<Option<(File, Stat)>, ScanError> {
        // O_NONBLOCK: an entry swapped for a FIFO does not block the open.
        let flags =
            OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let open_err = |source: io::Error| {
            ScanError::Hash(HashError::Open {
                path: self.fs_path(path),
                source,
            })
        };
        let fd: OwnedFd = match rustix::fs::openat(dir, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(rustix::io::Errno::LOOP) => return Ok(None),
            Err(e) => return Err(open_err(e.into())),
        };
        let st = rustix::fs::fstat(&fd).map_err(|e| open_err(e.into()))?;
        if FileType::from_raw_mode(st.st_mode) != FileType::RegularFile {
            return Ok(None);
        }
        Ok(Some((File::from(fd), st)))
    }

    /// Records an entry that was not listed as a regular file (or no longer
    /// is one), examined with `fstatat`.
    fn other(
        &self,
        w: &mut Worker,
        dir: BorrowedFd<'_>,
        name: &CStr,
        path: Vec<u8>,
        found: &mut Vec<DirJob>,
    ) -> Result<(), ScanError> {
        let st = rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| {
            ScanError::Walk(WalkError::Stat {
                path: self.fs_path(&path),
                source: e.into(),
            })
        })?;
        let kind = match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => {
                let size = size_of(&st);
                if let Some(hash_if) = self.opts.hash_if {
                    if !hash_if(&path, size) {
                        let digest = self.placeholder;
                        w.entries
                            .push(entry(path, EntryKind::File { size, digest }, &st));
                        return Ok(());
                    }
                }
                // Listed as something else, DT_UNKNOWN, or filtered: open it
                // now, and make sure it is still the inode just examined.
                return match self.open_file(dir, name, &path)? {
                    Some((file, fst)) if fst.st_dev == st.st_dev && fst.st_ino == st.st_ino => {
                        self.file(w, (file, fst), path)
                    }
                    _ => Err(ScanError::Hash(HashError::Changed(self.fs_path(&path)))),
                };
            }
            FileType::Directory => {
                if st.st_dev != self.root_dev && !self.opts.cross_mounts {
                    (self.opts.warn)(format!(
                        "'{}' is a mount point (another filesystem): listed, but not its contents (--cross-mounts to descend)",
                        self.fs_path(&path).display()
                    ));
                } else {
                    found.push(DirJob {
                        path: path.clone(),
                        dev: st.st_dev,
                        ino: st.st_ino,
                    });
                }
                EntryKind::Directory
            }
            FileType::Symlink => {
                let target = rustix::fs::readlinkat(dir, name, Vec::new()).map_err(|e| {
                    ScanError::Walk(WalkError::ReadLink {
                        path: self.fs_path(&path),
                        source: e.into(),
                    })
                })?;
                EntryKind::Symlink {
                    target: target.into_bytes(),
                }
            }
            FileType::Fifo => EntryKind::Fifo,
            FileType::Socket => EntryKind::Socket,
            FileType::CharacterDevice => EntryKind::CharDevice { rdev: st.st_rdev },
            FileType::BlockDevice => EntryKind::BlockDevice { rdev: st.st_rdev },
            FileType::Unknown => {
                return Err(ScanError::Walk(WalkError::UnknownType(self.fs_path(&path))))
            }
        };
        w.entries.push(entry(path, kind, &st));
        Ok(())
    }

    /// Records and hashes an open regular file (once per inode).
    fn file(
        &self,
        w: &mut Worker,
        (file, st): (File, Stat),
        path: Vec<u8>,
    ) -> Result<(), ScanError> {
        let size = size_of(&st);
        let key = (st.st_dev, st.st_ino);
        if st.st_nlink > 1 {
            let claimed = self
                .links
                .lock()
                .map(|mut l| match l.entry(key) {
                    Slot::Vacant(v) => {
                        v.insert(None);
                        true
                    }
                    Slot::Occupied(_) => false,
                })
                .unwrap_or(true);
            if !claimed {
                // Another link hashes it; the digest is filled in at the end.
                w.linked.push((w.entries.len(), key));
                w.entries.push(entry(
                    path,
                    EntryKind::File {
                        size,
                        digest: self.placeholder,
                    },
                    &st,
                ));
                return Ok(());
            }
        }
        let tree = self.hash(w, &file, size, &path)?;
        (self.opts.sink)(&tree).map_err(|e| ScanError::Hash(HashError::Sink(e)))?;
        if !self.opts.bar.is_hidden() {
            self.opts.bar.inc_length(size);
            self.opts.bar.inc(size);
        }
        w.bytes += size;
        let digest = tree.digest();
        if st.st_nlink > 1 {
            if let Ok(mut l) = self.links.lock() {
                l.insert(key, Some(digest));
            }
        }
        w.entries
            .push(entry(path, EntryKind::File { size, digest }, &st));
        Ok(())
    }

    /// The Merkle tree of the first `size` bytes of `file`.
    fn hash(
        &self,
        w: &mut Worker,
        file: &File,
        size: u64,
        path: &[u8],
    ) -> Result<MerkleTree, ScanError> {
        let params = self.opts.params.clone();
        let build_err = |source: BuildError<io::Error>| {
            ScanError::Hash(match source {
                BuildError::ShortRead { .. } => HashError::Changed(self.fs_path(path)),
                source => HashError::Build {
                    path: self.fs_path(path),
                    source,
                },
            })
        };
        if size >= LARGE_FILE && self.opts.threads > 1 {
            return build_parallel(params, &FileSource(file), size, self.opts.threads)
                .map_err(build_err);
        }
        let mut builder = TreeBuilder::new(params);
        let mut left = size;
        let mut reader = file;
        while left > 0 {
            let want = usize::try_from(left).unwrap_or(usize::MAX).min(w.buf.len());
            let n = match reader.read(&mut w.buf[..want]) {
                Ok(0) => {
                    return Err(build_err(BuildError::ShortRead {
                        at: size - left,
                        expected: size,
                    }))
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(build_err(BuildError::Source(e))),
            };
            builder.update(&w.buf[..n]);
            left -= n as u64;
        }
        builder
            .finish()
            .map_err(|e| build_err(BuildError::Geometry(e)))
    }
}

fn entry(path: Vec<u8>, kind: EntryKind, st: &Stat) -> Entry {
    Entry {
        path,
        kind,
        mode: st.st_mode & 0o7777,
        uid: st.st_uid,
        gid: st.st_gid,
    }
}

/// Lists every entry below `opts.root` (the root included) and hashes every
/// regular file, on `opts.threads` threads. Symlinks are recorded, never
/// followed; a directory on another filesystem than the root is listed but
/// not entered unless `opts.cross_mounts` (`opts.warn` is told).
pub fn scan(opts: &ScanOptions<'_>) -> Result<Scanned, ScanError> {
    let root = opts.root;
    let root_err = |source| {
        ScanError::Walk(WalkError::Root {
            path: root.to_owned(),
            source,
        })
    };
    let st = rustix::fs::lstat(root).map_err(|e| root_err(e.into()))?;
    if FileType::from_raw_mode(st.st_mode) != FileType::Directory {
        return Err(ScanError::Walk(WalkError::RootNotDirectory(
            root.to_owned(),
        )));
    }
    let placeholder = FileDigest::new(
        opts.params.algorithm(),
        &[0; MAX_DIGEST_SIZE][..opts.params.digest_size()],
    )
    .ok_or_else(|| ScanError::Hash(HashError::Sink("bad digest size".into())))?;
    let shared = Shared {
        opts,
        placeholder,
        root_dev: st.st_dev,
        stack: Mutex::new(Stack {
            dirs: vec![DirJob {
                path: b"/".to_vec(),
                dev: st.st_dev,
                ino: st.st_ino,
            }],
            busy: 0,
        }),
        wake: Condvar::new(),
        stop: AtomicBool::new(false),
        failure: Mutex::new(None),
        links: Mutex::new(HashMap::new()),
    };
    let new_worker = || Worker {
        buf: vec![0; READ_BYTES],
        entries: Vec::new(),
        linked: Vec::new(),
        bytes: 0,
    };
    let threads = opts.threads.max(1);
    let mut workers: Vec<Worker> = (0..threads).map(|_| new_worker()).collect();
    std::thread::scope(|s| {
        let shared = &shared;
        let (first, rest) = workers.split_first_mut().expect("at least one worker");
        for w in rest {
            s.spawn(move || shared.run(w));
        }
        shared.run(first);
    });
    if let Some(e) = shared.failure.into_inner().ok().flatten() {
        return Err(e);
    }
    let links = shared.links.into_inner().unwrap_or_default();
    let mut entries =
        Vec::with_capacity(1 + workers.iter().map(|w| w.entries.len()).sum::<usize>());
    entries.push(entry(b"/".to_vec(), EntryKind::Directory, &st));
    let mut bytes = 0;
    for mut w in workers {
        for (i, key) in w.linked.drain(..) {
            let e = &mut w.entries[i];
            match (links.get(&key), &mut e.kind) {
                (Some(Some(d)), EntryKind::File { digest, .. }) => *digest = *d,
                // Cannot happen: the thread that claimed the inode either
                // hashed it or failed the scan.
                _ => {
                    return Err(ScanError::Hash(HashError::Changed(host_path(
                        root, &e.path,
                    ))))
                }
            }
        }
        bytes += w.bytes;
        entries.append(&mut w.entries);
    }
    Ok(Scanned { entries, bytes })
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_merkle::build_from_bytes;

    fn scan_with(
        root: &Path,
        threads: usize,
        hash_if: Option<&HashIf<'_>>,
    ) -> Result<Scanned, ScanError> {
        let params = MerkleParams::default();
        let bar = ProgressBar::hidden();
        scan(&ScanOptions {
            root,
            cross_mounts: false,
            threads,
            params: &params,
            bar: &bar,
            warn: &|w| panic!("{w}"),
            sink: &|_| Ok(()),
            hash_if,
        })
    }

    fn run(root: &Path, threads: usize) -> Vec<Entry> {
        let mut s = scan_with(root, threads, None).unwrap();
        s.entries.sort_by(|a, b| a.path.cmp(&b.path));
        s.entries
    }

    #[test]
    fn same_entries_on_any_number_of_threads() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        for d in 0..20 {
            let sub = root.join(format!("d{d}/e"));
            std::fs::create_dir_all(&sub).unwrap();
            for f in 0..5 {
                let data = vec![(d * 5 + f) as u8; 3000 * f];
                std::fs::write(sub.join(format!("f{f}")), data).unwrap();
            }
        }
        std::fs::hard_link(root.join("d0/e/f4"), root.join("d19/link")).unwrap();
        std::os::unix::fs::symlink("d0", root.join("l")).unwrap();
        let one = run(root, 1);
        assert_eq!(one.len(), 1 + 20 * 7 + 2);
        for threads in [2, 4] {
            assert_eq!(run(root, threads), one, "{threads} threads");
        }
        let want = build_from_bytes(MerkleParams::default(), &[4; 12000])
            .unwrap()
            .digest();
        for path in [&b"/d0/e/f4"[..], b"/d19/link"] {
            let e = one.iter().find(|e| e.path == path).unwrap();
            assert_eq!(e.digest(), Some(&want));
        }
        let l = one.iter().find(|e| e.path == b"/l").unwrap();
        assert_eq!(
            l.kind,
            EntryKind::Symlink {
                target: b"d0".to_vec()
            }
        );
    }

    #[test]
    fn hashes_only_the_files_asked_for() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        std::fs::write(root.join("a"), [1; 5000]).unwrap();
        std::fs::write(root.join("b"), [2; 5000]).unwrap();
        std::fs::hard_link(root.join("b"), root.join("c")).unwrap();
        let all = run(root, 2);
        for threads in [1, 2] {
            // Only /c (a link of /b) is asked for: /b is left, /c hashed.
            let only_c = |path: &[u8], size: u64| path == b"/c" && size == 5000;
            let s = scan_with(root, threads, Some(&only_c)).unwrap();
            assert_eq!(s.bytes, 5000);
            let mut got = s.entries;
            got.sort_by(|a, b| a.path.cmp(&b.path));
            assert_eq!(got.len(), all.len());
            for (g, a) in got.iter().zip(&all) {
                assert_eq!(
                    (&g.path, g.mode, g.kind.code()),
                    (&a.path, a.mode, a.kind.code())
                );
                let zero = g
                    .digest()
                    .is_some_and(|d| d.as_bytes().iter().all(|&b| b == 0));
                assert_eq!(zero, g.path != b"/c" && g.digest().is_some(), "{g:?}");
            }
            assert_eq!(got[3].digest(), all[3].digest());
        }
    }

    #[test]
    fn refuses_a_root_that_is_not_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("f");
        std::fs::write(&file, b"x").unwrap();
        assert!(matches!(
            scan_with(&file, 1, None),
            Err(ScanError::Walk(WalkError::RootNotDirectory(_)))
        ));
    }
}
