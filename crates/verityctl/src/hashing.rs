// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! What hashing the files of a tree shares between commands: its errors,
//! the default number of threads and the progress bar (the hashing itself is
//! in `scan`).

use std::io::{self, IsTerminal};
use std::path::PathBuf;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressStyle};
use verity_merkle::BuildError;

/// Files at least this large are hashed with all threads inside the file.
pub(crate) const LARGE_FILE: u64 = 16 << 20;

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
    /// The file was replaced or resized after it was listed.
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
pub fn progress_bar(quiet: bool) -> ProgressBar {
    if quiet || !io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(0);
    let style = ProgressStyle::with_template(
        "{elapsed_precise} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {msg}",
    )
    .map(|s| s.progress_chars("=> "))
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(200));
    bar
}
