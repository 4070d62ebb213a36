// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A minimal sealer for tests: walks a directory into a manifest and,
//! optionally, a tree store (what `verityctl seal` produces).

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;

use verity_manifest::{store_blob, store_relative_path, Entry, EntryKind, Manifest};
use verity_merkle::{build_from_bytes, MerkleParams, MerkleTree};

/// The manifest of the tree at `root`; each file's tree goes to `store` if given.
pub fn seal(root: &Path, params: &MerkleParams, store: Option<&Path>) -> Manifest {
    let mut entries = Vec::new();
    walk(root, b"/".to_vec(), params, store, &mut entries);
    Manifest::new(params.clone(), entries).expect("valid manifest")
}

/// The Merkle tree of the file at `path`.
pub fn tree_of(path: &Path, params: &MerkleParams) -> MerkleTree {
    build_from_bytes(params.clone(), &std::fs::read(path).unwrap()).unwrap()
}

fn walk(
    path: &Path,
    mpath: Vec<u8>,
    params: &MerkleParams,
    store: Option<&Path>,
    out: &mut Vec<Entry>,
) {
    let m = std::fs::symlink_metadata(path).unwrap();
    let ft = m.file_type();
    let kind = if ft.is_dir() {
        EntryKind::Directory
    } else if ft.is_file() {
        let tree = tree_of(path, params);
        if let Some(store) = store {
            let p = store.join(store_relative_path(&tree.digest()));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(p, store_blob(&tree)).unwrap();
        }
        EntryKind::File {
            size: m.len(),
            digest: tree.digest(),
        }
    } else if ft.is_symlink() {
        EntryKind::Symlink {
            target: std::fs::read_link(path)
                .unwrap()
                .as_os_str()
                .as_bytes()
                .to_vec(),
        }
    } else if ft.is_fifo() {
        EntryKind::Fifo
    } else {
        panic!("unsupported file type at {}", path.display());
    };
    let is_dir = ft.is_dir();
    out.push(Entry {
        path: mpath.clone(),
        kind,
        mode: m.mode() & 0o7777,
        uid: m.uid(),
        gid: m.gid(),
    });
    if is_dir {
        for e in std::fs::read_dir(path).unwrap() {
            let e = e.unwrap();
            let child = verity_manifest::join(&mpath, e.file_name().as_bytes());
            walk(&e.path(), child, params, store, out);
        }
    }
}
