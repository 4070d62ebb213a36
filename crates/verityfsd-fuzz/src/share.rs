// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The verified share the targets serve: built and sealed once per process.
//!
//! `share/` holds files (one of several blocks, one empty, one nested), directories, symlinks
//! (one leaving its directory), a file changed after sealing (`tampered.bin`, one byte of
//! block 1) and a file added after sealing (`unlisted.txt`). The manifest and the tree store
//! lie outside the share, as `verityctl seal` produces them.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::passthrough::PassthroughFs;
use verity_fs::{
    CacheMode, ContentDir, FsConfig, ManifestFs, TreeStore, UnlistedPolicy, VerifyMode, Verity,
    VerityFs, VerityOptions,
};
use verity_manifest::{EntryKind, Manifest};
use verity_merkle::MerkleParams;
use verityfsd::queue_worker::QueueWorker;

// The integration tests' sealer: the same walk `verityctl seal` makes.
#[allow(dead_code)]
#[path = "../../../tests/common/seal.rs"]
mod seal;

/// The file changed on the host after sealing.
pub const TAMPERED: &[u8] = b"/tampered.bin";
/// Block size of the seal (the default Merkle parameters).
pub const BLOCK: usize = 4096;
/// Names the decoders pick from: every name of the share, plus `.`, `..`, a missing name and
/// the unlisted file.
pub const NAMES: [&[u8]; 13] = [
    b"hello.txt",
    b"big.bin",
    b"empty",
    b"dir",
    b"nested.txt",
    b"sub",
    b"link",
    b"up",
    b"tampered.bin",
    b"unlisted.txt",
    b".",
    b"..",
    b"missing",
];

/// The sealed share and what the guest must see of it.
#[derive(Debug)]
pub struct Share {
    /// Keeps the share, manifest and tree store alive for the process.
    _dir: tempfile::TempDir,
    /// The canonical shared directory.
    pub root: PathBuf,
    /// The manifest sealed from the share before it was changed.
    pub manifest: Manifest,
    store: Arc<TreeStore>,
    /// Sealed bytes of every regular file, by manifest path.
    pub contents: HashMap<Vec<u8>, Vec<u8>>,
}

/// How one fuzz input configures the daemon (first input byte).
#[derive(Debug, Clone, Copy)]
pub struct ShareOptions {
    /// `--unlisted=allow` instead of deny.
    pub unlisted_allow: bool,
    /// `--verity=audit` instead of enforce.
    pub audit: bool,
    /// Trees from the tree store (else built at first open).
    pub tree_store: bool,
    /// READDIRPLUS offered (`--cache` other than never).
    pub readdirplus: bool,
}

impl ShareOptions {
    /// Options from one byte; the production defaults (enforce, deny, tree store) for most
    /// values.
    pub fn from_byte(b: u8) -> Self {
        ShareOptions {
            unlisted_allow: b & 0x0f == 1,
            audit: b & 0x0f == 2,
            tree_store: b & 0x0f != 3,
            readdirplus: b & 0x10 == 0,
        }
    }
}

fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 24) as u8
        })
        .collect()
}

/// The share of this process. It lives until the process exits (a static is never dropped),
/// so its temporary directory (a few KiB) is left behind.
pub fn share() -> &'static Share {
    static SHARE: OnceLock<Share> = OnceLock::new();
    SHARE.get_or_init(build)
}

fn build() -> Share {
    let dir = tempfile::tempdir().expect("temporary directory");
    let root = dir.path().join("share");
    std::fs::create_dir_all(root.join("dir/sub")).unwrap();
    std::fs::write(root.join("hello.txt"), b"hello, verity\n").unwrap();
    std::fs::write(root.join("big.bin"), pseudo_random(3 * BLOCK + 100, 1)).unwrap();
    std::fs::write(root.join("empty"), b"").unwrap();
    std::fs::write(root.join("dir/nested.txt"), pseudo_random(5000, 2)).unwrap();
    std::fs::write(root.join("tampered.bin"), pseudo_random(2 * BLOCK + 7, 3)).unwrap();
    std::os::unix::fs::symlink("hello.txt", root.join("link")).unwrap();
    std::os::unix::fs::symlink("../big.bin", root.join("dir/up")).unwrap();
    let store_dir = dir.path().join("trees");
    let manifest = seal::seal(&root, &MerkleParams::default(), Some(&store_dir));
    let contents = manifest
        .entries()
        .iter()
        .filter(|e| matches!(e.kind, EntryKind::File { .. }))
        .map(|e| {
            let host = root.join(std::str::from_utf8(&e.path[1..]).unwrap());
            (e.path.clone(), std::fs::read(host).unwrap())
        })
        .collect();
    // After sealing: one byte of block 1 changes, one file appears.
    let mut tampered = std::fs::read(root.join("tampered.bin")).unwrap();
    tampered[BLOCK + 10] ^= 0x40;
    std::fs::write(root.join("tampered.bin"), tampered).unwrap();
    std::fs::write(root.join("unlisted.txt"), b"not in the manifest\n").unwrap();
    let store = Arc::new(TreeStore::open(&store_dir).unwrap());
    Share {
        root: std::fs::canonicalize(&root).unwrap(),
        _dir: dir,
        manifest,
        store,
        contents,
    }
}

/// The filesystem stack the daemon serves a verified share with.
pub type Fs = VerityFs<PassthroughFs<()>>;

impl Share {
    /// A fresh daemon request path over the share, built as the daemon builds it (inline
    /// serving, no worker pool).
    pub fn worker(&self, opts: ShareOptions) -> QueueWorker<Fs> {
        let cfg = FsConfig {
            shared_dir: self.root.clone(),
            cache: if opts.readdirplus {
                CacheMode::Auto
            } else {
                CacheMode::Never
            },
            xattr: true,
        };
        let inner = verity_fs::new_passthrough(&cfg).expect("passthrough filesystem");
        let verity = Verity::new(
            self.manifest.clone(),
            VerityOptions {
                mode: if opts.audit {
                    VerifyMode::Audit
                } else {
                    VerifyMode::Enforce
                },
                unlisted: if opts.unlisted_allow {
                    UnlistedPolicy::Allow
                } else {
                    UnlistedPolicy::Deny
                },
                tree_store: opts.tree_store.then(|| Arc::clone(&self.store)),
                ..VerityOptions::default()
            },
        );
        let fs = VerityFs::verified(inner, cfg.cache.readdirplus(), verity);
        QueueWorker::new(Arc::new(Server::new(fs)), None)
    }

    /// The daemon's request path over the share in its default verified mode (enforce, unlisted
    /// names denied): the manifest-served filesystem with the share as its content store.
    pub fn manifest_worker(&self, opts: ShareOptions) -> QueueWorker<ManifestFs> {
        let cache = if opts.readdirplus {
            CacheMode::Auto
        } else {
            CacheMode::Never
        };
        let verity = Verity::new(
            self.manifest.clone(),
            VerityOptions {
                tree_store: opts.tree_store.then(|| Arc::clone(&self.store)),
                ..VerityOptions::default()
            },
        );
        let content = ContentDir::open(&self.root).expect("share root");
        let fs = ManifestFs::new(verity, content, cache);
        QueueWorker::new(Arc::new(Server::new(fs)), None)
    }

    /// The symlink target sealed for `path`.
    pub fn link_target(&self, path: &[u8]) -> Option<&[u8]> {
        match &self.manifest.get(path)?.kind {
            EntryKind::Symlink { target } => Some(target),
            _ => None,
        }
    }
}
