// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Writing and checking a tree store (`docs/manifest.md`, "Tree store").

use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use verity_manifest::{split_store_blob, store_blob, store_relative_path};
use verity_merkle::{BlockHasher, Descriptor, FileDigest, Geometry, MerkleTree, DESCRIPTOR_SIZE};

/// Errors writing a store entry.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// Creating a directory or writing an entry failed.
    #[error("cannot write tree store entry '{path}'")]
    Write {
        /// The path written.
        path: PathBuf,
        /// Why.
        #[source]
        source: io::Error,
    },
}

/// Distinguishes temporary files of concurrent writers in one process.
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Where the entry of `digest` lives under `store`.
pub fn entry_path(store: &Path, digest: &FileDigest) -> PathBuf {
    store.join(store_relative_path(digest))
}

/// True when `path` holds exactly `blob`. The new tree is in memory anyway,
/// so comparing every byte (not only the descriptor and length) costs one
/// read of the entry and also repairs entries with a damaged tree.
fn holds(path: &Path, blob: &[u8]) -> bool {
    let Ok(mut f) = File::open(path) else {
        return false;
    };
    if !f
        .metadata()
        .is_ok_and(|m| m.is_file() && m.len() == blob.len() as u64)
    {
        return false;
    }
    let mut existing = Vec::with_capacity(blob.len());
    f.read_to_end(&mut existing).is_ok() && existing == blob
}

/// Writes the entry for `tree` unless an identical one exists; atomically
/// (a temporary file renamed into place). Returns true when it wrote one.
pub fn write_entry(store: &Path, tree: &MerkleTree) -> Result<bool, StoreError> {
    let digest = tree.digest();
    let path = entry_path(store, &digest);
    let blob = store_blob(tree);
    if holds(&path, &blob) {
        return Ok(false);
    }
    let err = |p: &Path| {
        let p = p.to_owned();
        move |source| StoreError::Write { path: p, source }
    };
    let dir = path.parent().unwrap_or(store);
    fs::create_dir_all(dir).map_err(err(dir))?;
    let tmp = dir.join(format!(
        ".{}.tmp.{}.{}",
        digest.to_hex(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = File::create(&tmp)
        .and_then(|mut f| f.write_all(&blob))
        .and_then(|()| fs::rename(&tmp, &path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(err(&path)(e));
    }
    Ok(true)
}

/// Checks the entry of `digest`: it exists, its descriptor hashes to
/// `digest`, its length fits, and every tree block verifies up to the root
/// hash. Returns what is wrong, for a report line.
pub fn check_entry(store: &Path, digest: &FileDigest) -> Result<(), String> {
    let path = entry_path(store, digest);
    let blob = match fs::read(&path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            return Err(format!("no tree store entry '{}'", path.display()))
        }
        Err(e) => return Err(format!("cannot read '{}': {e}", path.display())),
    };
    let desc = split_store_blob(digest, &blob, blob.len() as u64)
        .map_err(|e| format!("'{}': {e}", path.display()))?;
    check_tree(&desc, &blob[DESCRIPTOR_SIZE..]).map_err(|e| format!("'{}': {e}", path.display()))
}

/// Verifies every block of a stored tree (root level first) against the
/// descriptor's root hash: each block must hash to the entry its parent
/// holds, the top block to the root hash. The length was checked before.
pub fn check_tree(desc: &Descriptor, tree: &[u8]) -> Result<(), String> {
    let params = desc.params();
    let g = Geometry::new(params, desc.data_size()).map_err(|e| e.to_string())?;
    if (tree.len() as u64) != g.tree_size() {
        return Err(format!(
            "tree is {} bytes, expected {}",
            tree.len(),
            g.tree_size()
        ));
    }
    let hasher = BlockHasher::new(params);
    let bs = params.block_size();
    let d = params.digest_size();
    let block = |index: u64| -> &[u8] {
        // In range: tree.len() == tree_size, and index < tree_blocks.
        let at = index as usize * bs;
        &tree[at..at + bs]
    };
    // Top-down, so that a bad block is reported at its own level.
    for level in (0..g.levels()).rev() {
        for i in 0..g.level_blocks(level) {
            let got = hasher.hash_block(block(g.level_start(level) + i));
            let want = if level + 1 == g.levels() {
                desc.root_hash()
            } else {
                let loc = g.hash_location(level + 1, i);
                &block(loc.tree_block)[loc.offset..loc.offset + d]
            };
            if got[..d] != *want {
                return Err(format!(
                    "tree block {} (level {level}) does not match the root hash",
                    g.level_start(level) + i
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use verity_merkle::{build_from_bytes, HashAlgorithm, MerkleParams};

    #[test]
    fn writes_checks_and_detects_tampering() {
        let dir = tempfile::tempdir().unwrap();
        let p = MerkleParams::new(HashAlgorithm::Sha256, 1024, b"s").unwrap();
        let data: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let t = build_from_bytes(p, &data).unwrap();
        let d = t.digest();
        assert!(check_entry(dir.path(), &d)
            .unwrap_err()
            .contains("no tree store entry"));
        assert!(write_entry(dir.path(), &t).unwrap());
        assert!(!write_entry(dir.path(), &t).unwrap());
        check_entry(dir.path(), &d).unwrap();
        let path = entry_path(dir.path(), &d);
        let good = fs::read(&path).unwrap();
        let levels = t.geometry().levels();
        assert!(levels >= 3);
        for level in 0..levels {
            let mut bad = good.clone();
            bad[DESCRIPTOR_SIZE + t.geometry().level_start(level) as usize * 1024 + 9] ^= 1;
            fs::write(&path, &bad).unwrap();
            let e = check_entry(dir.path(), &d).unwrap_err();
            assert!(e.contains(&format!("(level {level})")), "{e}");
        }
        // A broken entry is rewritten.
        fs::write(&path, &good[..good.len() - 1]).unwrap();
        assert!(write_entry(dir.path(), &t).unwrap());
        assert_eq!(fs::read(&path).unwrap(), good);
    }
}
