// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl measure`: print the fs-verity digest of files like
//! `fsverity measure`, from `FS_IOC_MEASURE_VERITY` or, where a kernel or
//! filesystem cannot forward that ioctl, from the `user.verity.digest`
//! extended attribute that verityfsd serves.

use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::Args;
use verity_merkle::FileDigest;

use crate::source::open_for_reading;
use crate::sys::measure_verity;

/// The extended attribute verityfsd serves on every verified file.
pub const DIGEST_XATTR: &str = "user.verity.digest";

/// Arguments of `verityctl measure`.
#[derive(Debug, Args)]
pub struct MeasureArgs {
    /// Files to measure.
    #[arg(required = true, value_name = "FILE")]
    files: Vec<PathBuf>,
    /// Print a JSON array of {"path", "digest", "source"} objects.
    #[arg(long)]
    json: bool,
    /// Use only the ioctl, never the extended attribute.
    #[arg(long, conflicts_with = "xattr_only")]
    ioctl_only: bool,
    /// Use only the extended attribute (for kernels older than 6.10).
    #[arg(long)]
    xattr_only: bool,
}

/// Errors of `verityctl measure`.
#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    /// The file cannot be opened.
    #[error("cannot open '{path}' for reading")]
    Open {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// Neither the ioctl nor the attribute gave a digest.
    #[error(
        "'{path}' has no fs-verity digest: FS_IOC_MEASURE_VERITY failed ({ioctl}) and {xattr}"
    )]
    NoDigest {
        /// The file.
        path: PathBuf,
        /// The ioctl's error.
        ioctl: String,
        /// What the attribute lookup found.
        xattr: String,
    },
}

/// Where a digest came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// `FS_IOC_MEASURE_VERITY`.
    Ioctl,
    /// The `user.verity.digest` attribute.
    Xattr,
}

impl Source {
    fn name(self) -> &'static str {
        match self {
            Source::Ioctl => "ioctl",
            Source::Xattr => "xattr",
        }
    }
}

fn from_xattr(path: &Path) -> Result<FileDigest, String> {
    match xattr::get(path, DIGEST_XATTR) {
        Ok(Some(v)) => std::str::from_utf8(&v)
            .ok()
            .and_then(|s| s.trim_end_matches('\0').parse().ok())
            .ok_or_else(|| format!("the {DIGEST_XATTR} attribute is not a digest")),
        Ok(None) => Err(format!("there is no {DIGEST_XATTR} attribute")),
        Err(e) => Err(format!("reading the {DIGEST_XATTR} attribute failed ({e})")),
    }
}

/// Measures one file: the ioctl first, then the attribute.
pub fn measure_file(
    path: &Path,
    ioctl_only: bool,
    xattr_only: bool,
) -> Result<(FileDigest, Source), MeasureError> {
    let ioctl_result = if xattr_only {
        Err("not tried: --xattr-only".to_owned())
    } else {
        let file = open_for_reading(path).map_err(|source| MeasureError::Open {
            path: path.to_owned(),
            source,
        })?;
        measure_verity(&file).map_err(|e| e.to_string())
    };
    let ioctl = match ioctl_result {
        Ok(d) => return Ok((d, Source::Ioctl)),
        Err(e) => e,
    };
    let xattr = if ioctl_only {
        Err("the attribute was not tried (--ioctl-only)".to_owned())
    } else {
        from_xattr(path)
    };
    match xattr {
        Ok(d) => Ok((d, Source::Xattr)),
        Err(xattr) => Err(MeasureError::NoDigest {
            path: path.to_owned(),
            ioctl,
            xattr,
        }),
    }
}

/// Runs `verityctl measure`; stops at the first file without a digest, as
/// `fsverity measure` does.
pub fn run(args: &MeasureArgs) -> Result<(), MeasureError> {
    let mut json = Vec::new();
    let stdout = io::stdout();
    for path in &args.files {
        let (digest, source) = measure_file(path, args.ioctl_only, args.xattr_only)?;
        if args.json {
            json.push(serde_json::json!({
                "path": path.to_string_lossy(),
                "digest": digest.to_string(),
                "source": source.name(),
            }));
        } else if writeln!(stdout.lock(), "{digest} {}", path.display()).is_err() {
            return Ok(());
        }
    }
    if args.json {
        let _ = writeln!(stdout.lock(), "{}", serde_json::Value::Array(json));
    }
    Ok(())
}
