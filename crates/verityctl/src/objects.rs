// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl seal --objects DIR`: a content-addressed store of the sealed files.
//!
//! Each regular file's bytes go to `DIR/ALG/XX/REST` (its fs-verity digest in hex, split after
//! the first byte, as composefs lays out objects), so one host directory serves many images,
//! identical files once (`verityfsd --objects`, `verityctl mount --objects`). An object is
//! written to a temporary file beside its place, hashed again and renamed into place only if it
//! has the digest the manifest records: a file changed between hashing and copying is an error,
//! never a wrong object. An object already present with the right size is kept (the daemon
//! and the guest verify every block they serve anyway).

use std::collections::HashSet;
use std::fs::{self, File};
use std::io;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use verity_manifest::{object_relative_path, EntryKind, Manifest};
use verity_merkle::{build_parallel, FileDigest, MerkleParams};

use crate::source::FileSource;

/// Why an object could not be stored.
#[derive(Debug, thiserror::Error)]
pub enum ObjectsError {
    /// Reading the sealed file or writing its object failed.
    #[error("cannot store '{file}' as object '{object}': {source}")]
    Io {
        /// The file in ROOTFS.
        file: PathBuf,
        /// The object path.
        object: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
    /// The file's bytes changed after it was hashed.
    #[error("'{0}' changed while it was sealed; seal again once ROOTFS is not being written")]
    Changed(PathBuf),
}

/// Stores every distinct regular file of `manifest` (sealed from `root`) in `dir`; returns the
/// number of objects written.
pub fn fill(
    dir: &Path,
    root: &Path,
    manifest: &Manifest,
    threads: usize,
) -> Result<u64, ObjectsError> {
    let mut seen = HashSet::new();
    let mut written = 0;
    for e in manifest.entries() {
        let EntryKind::File { size, digest } = &e.kind else {
            continue;
        };
        if !seen.insert(*digest) {
            continue;
        }
        let object = dir.join(object_relative_path(digest));
        if fs::symlink_metadata(&object).is_ok_and(|m| m.is_file() && m.len() == *size) {
            continue;
        }
        let file = root.join(std::ffi::OsStr::from_bytes(&e.path[1..]));
        let io_err = |source| ObjectsError::Io {
            file: file.clone(),
            object: object.clone(),
            source,
        };
        let parent = object.parent().unwrap_or(dir);
        fs::create_dir_all(parent).map_err(io_err)?;
        let tmp = parent.join(format!(".{}.tmp.{}", digest.to_hex(), std::process::id()));
        let copied =
            copy_checked(&file, &tmp, manifest.params(), digest, threads).and_then(|same| {
                if same {
                    fs::rename(&tmp, &object).map(|()| true)
                } else {
                    Ok(false)
                }
            });
        match copied {
            Ok(true) => written += 1,
            Ok(false) => {
                let _ = fs::remove_file(&tmp);
                return Err(ObjectsError::Changed(file));
            }
            Err(e) => {
                let _ = fs::remove_file(&tmp);
                return Err(io_err(e));
            }
        }
    }
    Ok(written)
}

/// Copies `file` to `tmp` (read-only) and tells whether the copy has digest `expected`.
fn copy_checked(
    file: &Path,
    tmp: &Path,
    params: &MerkleParams,
    expected: &FileDigest,
    threads: usize,
) -> io::Result<bool> {
    let mut src = File::options()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(file)?;
    let mut dst = File::create(tmp)?;
    io::copy(&mut src, &mut dst)?;
    dst.sync_data()?;
    fs::set_permissions(tmp, fs::Permissions::from_mode(0o444))?;
    let copy = File::open(tmp)?;
    let len = copy.metadata()?.len();
    let tree = build_parallel(params.clone(), &FileSource(&copy), len, threads)
        .map_err(|e| io::Error::other(e.to_string()))?;
    Ok(tree.digest() == *expected)
}
