// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Digests of many files on all cores, with a progress bar.
//!
//! Plain std threads drain a shared queue one whole file at a time; a large
//! file is hashed with every thread working inside it. [`hash_files`] takes a
//! finished list, largest first (`verify-manifest`; `seal` lists and hashes
//! in one pass, see `scan`). The queue is a locked iterator: no thread-pool
//! crate needed.

use std::fs::{File, OpenOptions};
use std::io::{self, IsTerminal};
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::PathBuf;
use std::sync::Mutex;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use verity_merkle::{build_parallel, BuildError, FileDigest, MerkleParams, MerkleTree};

use crate::source::FileSource;

/// Files at least this large are hashed with all threads inside the file.
pub(crate) const LARGE_FILE: u64 = 16 << 20;

/// A regular file to digest, as found by the walk.
#[derive(Debug, Clone)]
pub struct FileJob {
    /// Where it is.
    pub fs_path: PathBuf,
    /// Size found by the walk.
    pub size: u64,
    /// `st_dev` found by the walk.
    pub dev: u64,
    /// `st_ino` found by the walk.
    pub ino: u64,
}

/// Errors digesting the files of a tree.
#[derive(Debug, thiserror::Error)]
pub enum HashError {
    /// The file cannot be opened.
    #[error("cannot open '{path}' for reading (fix its permissions, or run as a user who can read the whole tree)")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file was replaced or resized after the walk listed it.
    #[error("'{0}' changed while the tree was being read; stop whatever modifies the tree and run again")]
    Changed(PathBuf),
    /// Reading or hashing failed.
    #[error("cannot compute the digest of '{path}'")]
    Build {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: BuildError<io::Error>,
    },
    /// The per-tree callback failed (e.g. writing a tree store entry).
    #[error("{0}")]
    Sink(String),
}

/// The number of threads to use by default: all cores.
pub fn default_threads() -> usize {
    std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
}

/// A byte-counting progress bar on stderr, hidden when stderr is not a
/// terminal or `quiet`.
pub fn progress_bar(total_bytes: u64, quiet: bool) -> ProgressBar {
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total_bytes);
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}

fn open_checked(job: &FileJob) -> Result<File, HashError> {
    // O_NOFOLLOW: a file swapped for a symlink is refused, not followed.
    // O_NONBLOCK: a file swapped for a FIFO does not block the open.
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK)
        .open(&job.fs_path)
        .map_err(|source| match source.raw_os_error() {
            Some(libc::ELOOP) => HashError::Changed(job.fs_path.clone()),
            _ => HashError::Open {
                path: job.fs_path.clone(),
                source,
            },
        })?;
    let meta = file.metadata().map_err(|source| HashError::Open {
        path: job.fs_path.clone(),
        source,
    })?;
    if !meta.is_file() || meta.dev() != job.dev || meta.ino() != job.ino || meta.len() != job.size {
        return Err(HashError::Changed(job.fs_path.clone()));
    }
    Ok(file)
}

fn hash_one(job: &FileJob, params: &MerkleParams, threads: usize) -> Result<MerkleTree, HashError> {
    let file = open_checked(job)?;
    build_parallel(params.clone(), &FileSource(&file), job.size, threads).map_err(|source| {
        match source {
            BuildError::ShortRead { .. } => HashError::Changed(job.fs_path.clone()),
            source => HashError::Build {
                path: job.fs_path.clone(),
                source,
            },
        }
    })
}

/// Digests every job on `threads` threads; `sink` sees each tree (with its
/// job index) as soon as it is built. Returns the digests in job order.
pub fn hash_files<F>(
    jobs: &[FileJob],
    params: &MerkleParams,
    threads: usize,
    bar: &ProgressBar,
    sink: F,
) -> Result<Vec<FileDigest>, HashError>
where
    F: Fn(usize, &MerkleTree) -> Result<(), String> + Sync,
{
    let threads = threads.max(1);
    let mut results: Vec<Option<FileDigest>> = vec![None; jobs.len()];
    let mut order: Vec<usize> = (0..jobs.len()).collect();
    order.sort_by(|&a, &b| jobs[b].size.cmp(&jobs[a].size).then(a.cmp(&b)));
    let split = order.partition_point(|&i| jobs[i].size >= LARGE_FILE && threads > 1);
    let (large, small) = order.split_at(split);
    let done = |i: usize, tree: &MerkleTree| -> Result<FileDigest, HashError> {
        sink(i, tree).map_err(HashError::Sink)?;
        bar.inc(jobs[i].size);
        Ok(tree.digest())
    };
    for &i in large {
        bar.set_message(jobs[i].fs_path.display().to_string());
        let tree = hash_one(&jobs[i], params, threads)?;
        results[i] = Some(done(i, &tree)?);
    }
    bar.set_message("");
    let queue = Mutex::new(small.iter());
    let found: Mutex<Vec<(usize, FileDigest)>> = Mutex::new(Vec::with_capacity(small.len()));
    let failure: Mutex<Option<HashError>> = Mutex::new(None);
    let worker = || loop {
        if failure.lock().map(|f| f.is_some()).unwrap_or(true) {
            return;
        }
        let Some(&i) = queue.lock().ok().and_then(|mut q| q.next()) else {
            return;
        };
        match hash_one(&jobs[i], params, 1).and_then(|tree| done(i, &tree)) {
            Ok(d) => {
                if let Ok(mut f) = found.lock() {
                    f.push((i, d));
                }
            }
            Err(e) => {
                if let Ok(mut f) = failure.lock() {
                    f.get_or_insert(e);
                }
                return;
            }
        }
    };
    std::thread::scope(|s| {
        for _ in 0..threads.min(small.len().max(1)) {
            s.spawn(worker);
        }
    });
    if let Some(e) = failure.into_inner().ok().flatten() {
        return Err(e);
    }
    for (i, d) in found.into_inner().unwrap_or_default() {
        results[i] = Some(d);
    }
    results
        .into_iter()
        .zip(jobs)
        .map(|(r, job)| r.ok_or_else(|| HashError::Changed(job.fs_path.clone())))
        .collect()
}
