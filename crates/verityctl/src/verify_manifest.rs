// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl verify-manifest`: compares a directory tree with a manifest and
//! lists every difference, one per line.

use std::collections::HashSet;
use std::fs;
use std::io::{self, Write};
use std::path::PathBuf;

use clap::Args;
use verity_manifest::{escape_bytes, Entry, EntryKind, Manifest, ManifestError};
use verity_merkle::{DigestParseError, FileDigest};

use crate::hashing;
use crate::scan::{self, ScanError, ScanOptions};
use crate::seal::warn;
use crate::store;

/// Arguments of `verityctl verify-manifest`.
#[derive(Debug, Args)]
pub struct VerifyManifestArgs {
    /// Root directory of the tree to check.
    #[arg(value_name = "ROOTFS")]
    root: PathBuf,
    /// The manifest written by `verityctl seal`.
    #[arg(value_name = "MANIFEST")]
    manifest: PathBuf,
    /// Refuse the manifest unless its digest is this `sha256:HEX`.
    #[arg(long, value_name = "sha256:HEX")]
    manifest_digest: Option<String>,
    /// Also check every file's entry in this tree store.
    #[arg(long, value_name = "DIR")]
    tree_store: Option<PathBuf>,
    /// Hashing threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Descend into directories that are mount points of other filesystems.
    #[arg(long)]
    cross_mounts: bool,
    /// No progress bar and no summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Errors of `verityctl verify-manifest` (all exit 2: no verdict).
#[derive(Debug, thiserror::Error)]
pub enum VerifyManifestError {
    /// The manifest cannot be read.
    #[error("cannot read manifest '{path}'")]
    Read {
        /// The manifest path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The manifest is not valid.
    #[error("'{path}' is not a valid manifest")]
    Invalid {
        /// The manifest path.
        path: PathBuf,
        /// Why.
        #[source]
        source: ManifestError,
    },
    /// `--manifest-digest` cannot be parsed.
    #[error("--manifest-digest {value:?} is not a digest of the form sha256:HEX")]
    BadPin {
        /// The value given.
        value: String,
        /// Why.
        #[source]
        source: DigestParseError,
    },
    /// The manifest is not the pinned one.
    #[error("manifest '{path}' has digest {found}, but --manifest-digest expects {expected}: it is not the sealed manifest")]
    PinMismatch {
        /// The manifest path.
        path: PathBuf,
        /// Pinned digest.
        expected: String,
        /// Actual digest.
        found: String,
    },
    /// ROOTFS cannot be resolved.
    #[error("cannot open ROOTFS '{path}'")]
    Root {
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// `--tree-store` is not a directory.
    #[error("--tree-store '{0}' is not a directory")]
    NoStore(PathBuf),
    /// Listing the tree or hashing a file failed.
    #[error(transparent)]
    Scan(ScanError),
}

impl VerifyManifestError {
    /// Process exit code: always 2, since 1 means "the tree differs".
    pub fn exit_code(&self) -> u8 {
        2
    }
}

fn kind_name(code: char) -> &'static str {
    match code {
        'd' => "directory",
        'f' => "file",
        'l' => "symlink",
        'p' => "fifo",
        's' => "socket",
        'c' => "char device",
        _ => "block device",
    }
}

/// True when a file's content must be hashed to compare it: the manifest
/// has a file of this size at `path`.
fn needs_digest(manifest: &Manifest, path: &[u8], size: u64) -> bool {
    manifest
        .get(path)
        .is_some_and(|e| matches!(e.kind, EntryKind::File { size: want, .. } if want == size))
}

/// The differences between manifest entry `e` and the entry `n` found at its
/// path (whose digest is real only where [`needs_digest`] held).
fn compare(e: &Entry, n: &Entry, out: &mut Vec<String>) {
    let p = escape_bytes(&e.path);
    let code = n.kind.code();
    if e.kind.code() != code {
        out.push(format!(
            "type {p}: {} != {}",
            kind_name(e.kind.code()),
            kind_name(code)
        ));
        return;
    }
    match (&e.kind, &n.kind) {
        (
            EntryKind::File { size, digest: want },
            EntryKind::File {
                size: got_size,
                digest: got,
            },
        ) => {
            if size != got_size {
                out.push(format!("size {p}: {size} != {got_size}"));
            } else if got != want {
                out.push(format!("changed {p}: digest {want} != {got}"));
            }
        }
        (EntryKind::Symlink { target }, EntryKind::Symlink { target: got }) if target != got => {
            out.push(format!(
                "target {p}: {} != {}",
                escape_bytes(target),
                escape_bytes(got)
            ));
        }
        (EntryKind::CharDevice { rdev }, EntryKind::CharDevice { rdev: got })
        | (EntryKind::BlockDevice { rdev }, EntryKind::BlockDevice { rdev: got })
            if rdev != got =>
        {
            out.push(format!("rdev {p}: {rdev} != {got}"));
        }
        _ => {}
    }
    if e.mode != n.mode {
        out.push(format!("mode {p}: {:04o} != {:04o}", e.mode, n.mode));
    }
    if (e.uid, e.gid) != (n.uid, n.gid) {
        out.push(format!(
            "owner {p}: {}:{} != {}:{}",
            e.uid, e.gid, n.uid, n.gid
        ));
    }
}

/// Loads a manifest file, checking it is canonical and, if given, pinned.
pub fn load_manifest(path: &PathBuf, pin: Option<&str>) -> Result<Manifest, VerifyManifestError> {
    let bytes = fs::read(path).map_err(|source| VerifyManifestError::Read {
        path: path.clone(),
        source,
    })?;
    let manifest = Manifest::parse(&bytes).map_err(|source| VerifyManifestError::Invalid {
        path: path.clone(),
        source,
    })?;
    if let Some(pin) = pin {
        let expected: FileDigest = pin.parse().map_err(|source| VerifyManifestError::BadPin {
            value: pin.to_owned(),
            source,
        })?;
        if expected != *manifest.digest() {
            return Err(VerifyManifestError::PinMismatch {
                path: path.clone(),
                expected: expected.to_string(),
                found: manifest.digest().to_string(),
            });
        }
    }
    Ok(manifest)
}

/// Runs `verityctl verify-manifest`; returns the number of differences.
pub fn run(args: &VerifyManifestArgs) -> Result<usize, VerifyManifestError> {
    let manifest = load_manifest(&args.manifest, args.manifest_digest.as_deref())?;
    if let Some(dir) = args.tree_store.as_ref().filter(|d| !d.is_dir()) {
        return Err(VerifyManifestError::NoStore(dir.clone()));
    }
    let root = fs::canonicalize(&args.root).map_err(|source| VerifyManifestError::Root {
        path: args.root.clone(),
        source,
    })?;
    // One pass as in `seal`; only the files that could still match (same
    // path, type and size) are opened and hashed.
    let bar = hashing::progress_bar(args.quiet);
    let threads = args.threads.unwrap_or_else(hashing::default_threads);
    let hash_if = |path: &[u8], size: u64| needs_digest(&manifest, path, size);
    let scanned = scan::scan(&ScanOptions {
        root: &root,
        cross_mounts: args.cross_mounts,
        threads,
        params: manifest.params(),
        bar: &bar,
        warn: &|w| bar.suspend(|| warn(w)),
        sink: &|_| Ok(()),
        hash_if: Some(&hash_if),
    });
    bar.finish_and_clear();
    let mut nodes = scanned.map_err(VerifyManifestError::Scan)?.entries;
    nodes.sort_unstable_by(|a, b| a.path.cmp(&b.path));

    let mut lines = Vec::new();
    let entries = manifest.entries();
    let (mut i, mut j) = (0, 0);
    while i < entries.len() || j < nodes.len() {
        let (e, n) = (entries.get(i), nodes.get(j));
        match (e, n) {
            (Some(e), Some(n)) if e.path == n.path => {
                compare(e, n, &mut lines);
                i += 1;
                j += 1;
            }
            (Some(e), n) if n.is_none_or(|n| e.path < n.path) => {
                lines.push(format!("missing {}", escape_bytes(&e.path)));
                i += 1;
            }
            (_, Some(n)) => {
                lines.push(format!("added {}", escape_bytes(&n.path)));
                j += 1;
            }
            (_, None) => break,
        }
    }

    if let Some(dir) = &args.tree_store {
        let mut seen = HashSet::new();
        for e in entries {
            if let Some(d) = e.digest().filter(|d| seen.insert(**d)) {
                if let Err(problem) = store::check_entry(dir, d) {
                    lines.push(format!("store {}: {problem}", escape_bytes(&e.path)));
                }
            }
        }
    }

    let stdout = io::stdout();
    let mut out = stdout.lock();
    for line in &lines {
        if writeln!(out, "{line}").is_err() {
            break;
        }
    }
    if !args.quiet {
        if lines.is_empty() {
            eprintln!(
                "'{}' matches manifest {} ({} entries)",
                root.display(),
                manifest.digest(),
                entries.len()
            );
        } else {
            eprintln!(
                "{} difference(s) between '{}' and manifest {}",
                lines.len(),
                root.display(),
                manifest.digest()
            );
        }
    }
    Ok(lines.len())
}
