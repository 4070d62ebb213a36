// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl digest`: the same arguments and output lines as `fsverity digest`.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use verity_merkle::{build_parallel, BuildError, MerkleParams, MerkleTree};

use crate::params::{ParamArgs, ParamArgsError};
use crate::source::{open_for_reading, FileSource};

/// Arguments of `verityctl digest`.
#[derive(Debug, Args)]
pub struct DigestArgs {
    /// Files to digest.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    #[command(flatten)]
    params: ParamArgs,
    /// Write the Merkle tree (root level first) to this file; one FILE only.
    #[arg(long, value_name = "FILE")]
    out_merkle_tree: Option<PathBuf>,
    /// Write the 256-byte fs-verity descriptor to this file; one FILE only.
    #[arg(long, value_name = "FILE")]
    out_descriptor: Option<PathBuf>,
    /// Print only the hex digest, without the algorithm and file name.
    #[arg(long)]
    compact: bool,
    /// Print the digest in the form signed for kernel built-in signatures.
    #[arg(long)]
    for_builtin_sig: bool,
    /// Hashing threads (default: all cores).
    #[arg(long, value_name = "N")]
    threads: Option<usize>,
}

/// Errors of `verityctl digest`.
#[derive(Debug, thiserror::Error)]
pub enum DigestError {
    /// Bad `--hash-alg`, `--block-size` or `--salt`.
    #[error(transparent)]
    Params(#[from] ParamArgsError),
    /// `--out-*` with several files.
    #[error("--out-merkle-tree and --out-descriptor take exactly one FILE, {0} given")]
    OutputNeedsOneFile(usize),
    /// The file cannot be opened.
    #[error("cannot open '{path}' for reading")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The path is not a regular file.
    #[error("'{path}' is not a regular file (it is a {kind}); fs-verity digests cover regular files only")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// Reading or hashing failed.
    #[error("cannot compute the digest of '{path}'")]
    Build {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: BuildError<io::Error>,
    },
    /// Writing an output file failed.
    #[error("cannot write '{path}'")]
    Write {
        /// The output file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

impl DigestError {
    /// Process exit code: 2 for usage errors (as fsverity), 1 otherwise.
    pub fn exit_code(&self) -> u8 {
        match self {
            DigestError::Params(_) | DigestError::OutputNeedsOneFile(_) => 2,
            _ => 1,
        }
    }
}

/// Digests one regular file on `threads` threads.
pub fn digest_file(
    path: &Path,
    params: &MerkleParams,
    threads: usize,
) -> Result<MerkleTree, DigestError> {
    // A FIFO or other special file is refused below, after a non-blocking open.
    let file = open_for_reading(path).map_err(|source| DigestError::Open {
        path: path.to_owned(),
        source,
    })?;
    let meta = file.metadata().map_err(|source| DigestError::Open {
        path: path.to_owned(),
        source,
    })?;
    if !meta.is_file() {
        return Err(DigestError::NotRegular {
            path: path.to_owned(),
            kind: file_kind(&meta),
        });
    }
    build_parallel(params.clone(), &FileSource(&file), meta.len(), threads).map_err(|source| {
        DigestError::Build {
            path: path.to_owned(),
            source,
        }
    })
}

fn file_kind(meta: &std::fs::Metadata) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    let t = meta.file_type();
    if t.is_dir() {
        "directory"
    } else if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// Runs `verityctl digest`.
pub fn run(args: &DigestArgs) -> Result<(), DigestError> {
    let params = args.params.params()?;
    if (args.out_merkle_tree.is_some() || args.out_descriptor.is_some()) && args.files.len() != 1 {
        return Err(DigestError::OutputNeedsOneFile(args.files.len()));
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    let stdout = io::stdout();
    for path in &args.files {
        let tree = digest_file(path, &params, threads)?;
        let digest = tree.digest();
        if let Some(out) = &args.out_merkle_tree {
            write_file(out, tree.tree_bytes())?;
        }
        if let Some(out) = &args.out_descriptor {
            write_file(out, &tree.descriptor().to_bytes())?;
        }
        let shown = if args.for_builtin_sig {
            hex::encode(digest.formatted_for_signature())
        } else if args.compact {
            digest.to_hex()
        } else {
            digest.to_string()
        };
        let mut out = stdout.lock();
        let line = if args.compact {
            writeln!(out, "{shown}")
        } else {
            writeln!(out, "{shown} {}", path.display())
        };
        // A closed stdout (e.g. `| head`) ends the command quietly.
        if line.is_err() {
            return Ok(());
        }
    }
    Ok(())
}

fn write_file(path: &Path, bytes: &[u8]) -> Result<(), DigestError> {
    std::fs::write(path, bytes).map_err(|source| DigestError::Write {
        path: path.to_owned(),
        source,
    })
}
