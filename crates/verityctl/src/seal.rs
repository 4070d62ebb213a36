// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl seal`: the manifest of a directory tree, and optionally a tree
//! store with the Merkle tree of every file.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Args;
use verity_manifest::{EntryKind, Manifest, ManifestError};

use crate::hashing;
use crate::objects;
use crate::params::{ParamArgs, ParamArgsError};
use crate::scan::{self, ScanError, ScanOptions, Scanned};
use crate::store::{self, StoreError};

/// Arguments of `verityctl seal`.
#[derive(Debug, Args)]
pub struct SealArgs {
    /// Root directory of the tree to seal (e.g. a container rootfs).
    #[arg(value_name = "ROOTFS")]
    root: PathBuf,
    /// Where to write the manifest (outside ROOTFS).
    #[arg(long, value_name = "MANIFEST")]
    out: PathBuf,
    /// Also write each file's Merkle tree to DIR/ALG/HEX (outside ROOTFS).
    #[arg(long, value_name = "DIR")]
    tree_store: Option<PathBuf>,
    /// Also copy each regular file's bytes to DIR/ALG/XX/REST, named by its fs-verity digest:
    /// a content-addressed store verityfsd --objects and verityctl mount --objects serve from
    /// (outside ROOTFS; identical files are stored once, existing objects are kept).
    #[arg(long, value_name = "DIR")]
    objects: Option<PathBuf>,
    #[command(flatten)]
    params: ParamArgs,
    /// Threads that list the tree and hash its files (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
    /// Descend into directories that are mount points of other filesystems.
    #[arg(long)]
    cross_mounts: bool,
    /// No progress bar and no summary on stderr.
    #[arg(long, short)]
    quiet: bool,
}

/// Errors of `verityctl seal`.
#[derive(Debug, thiserror::Error)]
pub enum SealError {
    /// Bad `--hash-alg`, `--block-size` or `--salt`.
    #[error(transparent)]
    Params(ParamArgsError),
    /// ROOTFS cannot be resolved.
    #[error("cannot open ROOTFS '{path}'")]
    Root {
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },

    /// Filling the object store failed.
    #[error(transparent)]
    Objects(objects::ObjectsError),
    /// `--out` names no file.
    #[error("--out '{0}' does not name a file")]
    OutNotAFile(PathBuf),
    /// The directory of `--out` cannot be resolved.
    #[error("cannot use the directory of --out '{path}' (it must exist)")]
    OutDir {
        /// The path given.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// An output would be written into the tree being sealed.
    #[error("{what} '{path}' is inside ROOTFS '{root}': writing it would change the tree being sealed; put it elsewhere")]
    OutputInsideRoot {
        /// Which option.
        what: &'static str,
        /// The output path, resolved.
        path: PathBuf,
        /// ROOTFS, resolved.
        root: PathBuf,
    },
    /// An output directory (`--tree-store`, `--objects`) cannot be created.
    #[error("cannot create {flag} directory '{path}'")]
    OutputDir {
        /// The option.
        flag: &'static str,
        /// The directory.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Listing the tree, or hashing a file (or storing its tree), failed.
    #[error(transparent)]
    Scan(ScanError),
    /// The entries do not form a valid manifest.
    #[error("cannot build the manifest")]
    Manifest(#[source] ManifestError),
    /// Writing the manifest failed.
    #[error("cannot write the manifest '{path}'")]
    Write {
        /// The manifest path.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl SealError {
    /// Process exit code: 2 for usage errors, 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            SealError::Params(_)
            | SealError::OutNotAFile(_)
            | SealError::OutputInsideRoot { .. } => 2,
            SealError::Scan(ScanError::Walk(w)) if w.is_usage() => 2,
            _ => 1,
        }
    }
}

/// Prints a warning on stderr.
pub fn warn(message: String) {
    eprintln!("verityctl: warning: {message}");
}

/// Resolves `out` (whose directory must exist) to an absolute path.
fn resolve_out(out: &Path) -> Result<PathBuf, SealError> {
    let name = out
        .file_name()
        .ok_or_else(|| SealError::OutNotAFile(out.to_owned()))?;
    let dir = match out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let dir = fs::canonicalize(dir).map_err(|source| SealError::OutDir {
        path: out.to_owned(),
        source,
    })?;
    Ok(dir.join(name))
}

/// The absolute path `path` has or would have once created: its longest
/// existing ancestor resolved, then the rest of it.
fn resolve_new(path: &Path) -> io::Result<PathBuf> {
    let mut rest = Vec::new();
    let mut base = path;
    loop {
        match fs::canonicalize(if base.as_os_str().is_empty() {
            Path::new(".")
        } else {
            base
        }) {
            Ok(mut resolved) => {
                for c in rest.iter().rev() {
                    match c {
                        std::path::Component::ParentDir => {
                            resolved.pop();
                        }
                        std::path::Component::Normal(n) => resolved.push(n),
                        _ => {}
                    }
                }
                return Ok(resolved);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let Some(parent) = base.parent() else {
                    return Err(e);
                };
                rest.extend(base.components().next_back());
                base = parent;
            }
            Err(e) => return Err(e),
        }
    }
}

fn refuse_inside(what: &'static str, path: &Path, root: &Path) -> Result<(), SealError> {
    if path.starts_with(root) {
        return Err(SealError::OutputInsideRoot {
            what,
            path: path.to_owned(),
            root: root.to_owned(),
        });
    }
    Ok(())
}

/// Writes `bytes` to `path` through a temporary file in the same directory
/// renamed into place, so readers see the old or the new file, never a part.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), SealError> {
    let err = |source| SealError::Write {
        path: path.to_owned(),
        source,
    };
    let mut tmp_name = std::ffi::OsString::from(".");
    tmp_name.push(path.file_name().unwrap_or_default());
    tmp_name.push(format!(".tmp.{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let result = File::create(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|()| f.sync_all()))
        .and_then(|()| fs::rename(&tmp, path));
    if let Err(e) = result {
        let _ = fs::remove_file(&tmp);
        return Err(err(e));
    }
    Ok(())
}

/// Creates the output directory `dir` of option `flag` outside `root`; checked before anything
/// is created, so a refusal changes nothing.
fn output_dir(flag: &'static str, dir: &Path, root: &Path) -> Result<PathBuf, SealError> {
    let err = |source| SealError::OutputDir {
        flag,
        path: dir.to_owned(),
        source,
    };
    refuse_inside(flag, &resolve_new(dir).map_err(err)?, root)?;
    fs::create_dir_all(dir).map_err(err)?;
    fs::canonicalize(dir).map_err(err)
}

/// Runs `verityctl seal`.
pub fn run(args: &SealArgs) -> Result<(), SealError> {
    let started = Instant::now();
    let params = args.params.params().map_err(SealError::Params)?;
    let root = fs::canonicalize(&args.root).map_err(|source| SealError::Root {
        path: args.root.clone(),
        source,
    })?;
    let out = resolve_out(&args.out)?;
    refuse_inside("--out", &out, &root)?;
    let store_dir = args
        .tree_store
        .as_deref()
        .map(|dir| output_dir("--tree-store", dir, &root))
        .transpose()?;
    let objects_dir = args
        .objects
        .as_deref()
        .map(|dir| output_dir("--objects", dir, &root))
        .transpose()?;

    let bar = hashing::progress_bar(args.quiet);
    let stored = AtomicU64::new(0);
    let threads = args.threads.unwrap_or_else(hashing::default_threads);
    let sink = |tree: &verity_merkle::MerkleTree| {
        if let Some(dir) = &store_dir {
            if store::write_entry(dir, tree).map_err(|e: StoreError| {
                let mut msg = e.to_string();
                if let Some(s) = std::error::Error::source(&e) {
                    msg.push_str(&format!(": {s}"));
                }
                msg
            })? {
                stored.fetch_add(1, Ordering::Relaxed);
            }
        }
        Ok(())
    };
    // Files are hashed by the threads that list their directories; hard
    // links (same device and inode) are hashed once.
    let scanned = scan::scan(&ScanOptions {
        root: &root,
        cross_mounts: args.cross_mounts,
        threads,
        params: &params,
        bar: &bar,
        warn: &|w| bar.suspend(|| warn(w)),
        sink: &sink,
        hash_if: None,
    });
    bar.finish_and_clear();
    let Scanned {
        entries,
        bytes: total,
    } = scanned.map_err(SealError::Scan)?;
    let files = entries
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File { .. }))
        .count();
    let manifest = Manifest::new(params, entries).map_err(SealError::Manifest)?;
    let new_objects = match &objects_dir {
        Some(dir) => objects::fill(dir, &root, &manifest, threads).map_err(SealError::Objects)?,
        None => 0,
    };
    write_atomically(&out, &manifest.to_bytes())?;

    println!("{}", manifest.digest());
    if !args.quiet {
        let mut summary = format!(
            "sealed '{}': {} entries, {files} files, {total} bytes hashed, in {:.2} s",
            root.display(),
            manifest.entries().len(),
            started.elapsed().as_secs_f64()
        );
        if let Some(dir) = &store_dir {
            summary.push_str(&format!(
                "; {} new tree store entries in '{}'",
                stored.load(Ordering::Relaxed),
                dir.display()
            ));
        }
        if let Some(dir) = &objects_dir {
            summary.push_str(&format!(
                "; {new_objects} new objects in '{}'",
                dir.display()
            ));
        }
        eprintln!("{summary}");
    }
    Ok(())
}
