// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The verified share end to end: a daemon started with `--manifest` (built
//! here by walking a temporary tree), driven through the vhost-user harness.
//! Tamper matrix: data blocks, tree levels, store descriptors, names, types,
//! sizes, symlink targets; plus the digest ioctls and xattrs, and startup
//! refusals for bad or unpinned manifests.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use common::seal::{seal, tree_of};
use common::{daemon_binary, errno_of, pseudo_random, Failures};
use verity_manifest::{store_relative_path, Manifest};
use verity_merkle::{HashAlgorithm, MerkleParams, DESCRIPTOR_SIZE};
use vhost_user_harness::{DaemonProcess, ProcessError, VirtioFsClient, XattrReply, ROOT_ID};

const MEASURE: u32 = 0xc004_6686;
const GETFLAGS: u32 = 0x8008_6601;
const GETFLAGS32: u32 = 0x8004_6601;
const ENABLE: u32 = 0x4080_6685;
const READ_METADATA: u32 = 0xc028_6687;
const FUSE_IOCTL_DIR: u32 = 16;

/// A sealed tree: `<tmp>/share`, `<tmp>/manifest`, optionally `<tmp>/store`.
struct Sealed {
    outer: tempfile::TempDir,
    manifest: Manifest,
    params: MerkleParams,
}

impl Sealed {
    fn new(params: MerkleParams, with_store: bool, build: impl FnOnce(&Path)) -> Sealed {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("share");
        std::fs::create_dir(&root).unwrap();
        build(&root);
        let store = outer.path().join("store");
        if with_store {
            std::fs::create_dir(&store).unwrap();
        }
        let manifest = seal(&root, &params, with_store.then_some(store.as_path()));
        std::fs::write(outer.path().join("manifest"), manifest.to_bytes()).unwrap();
        Sealed {
            outer,
            manifest,
            params,
        }
    }

    fn root(&self) -> PathBuf {
        self.outer.path().join("share")
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.root().join(rel)
    }

    fn store(&self) -> PathBuf {
        self.outer.path().join("store")
    }

    fn args(&self, extra: &[&str]) -> Vec<String> {
        let mut a = vec![
            format!("--shared-dir={}", self.root().display()),
            format!(
                "--manifest={}",
                self.outer.path().join("manifest").display()
            ),
            "--sandbox=none".into(),
            "--seccomp=none".into(),
            "--cache=never".into(),
        ];
        if self.store().is_dir() {
            a.push(format!("--tree-store={}", self.store().display()));
        }
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    }

    fn start(&self, extra: &[&str]) -> DaemonProcess {
        DaemonProcess::spawn(daemon_binary(), self.args(extra))
            .unwrap_or_else(|e| panic!("cannot start the daemon: {e}"))
    }

    /// Store entry (descriptor + tree) of the file at `rel`.
    fn store_entry(&self, rel: &str) -> PathBuf {
        let digest = tree_of(&self.path(rel), &self.params).digest();
        self.store().join(store_relative_path(&digest))
    }
}

fn client(d: &DaemonProcess) -> VirtioFsClient {
    VirtioFsClient::connect_and_init(d.socket_path()).unwrap()
}

fn flip(path: &Path, offset: u64) {
    let f = std::fs::OpenOptions::new()
        .write(true)
        .read(true)
        .open(path)
        .unwrap();
    let mut b = [0u8];
    f.read_exact_at(&mut b, offset).unwrap();
    f.write_all_at(&[b[0] ^ 0x5a], offset).unwrap();
}

/// Reads `[off, off+len)` of an open file; Ok(bytes) or Err(errno).
fn read_at(
    fs: &mut VirtioFsClient,
    node: u64,
    fh: u64,
    off: u64,
    len: u32,
) -> Result<Vec<u8>, i32> {
    fs.read(node, fh, off, len)
        .map_err(|e| e.errno().unwrap_or(-1))
}

/// Flips one byte in the first, a middle and the last data block, one at a
/// time: reads touching the block fail with EIO, every other read returns
/// the right bytes, and the good read before each flip proves that data
/// changed on the host after a successful read is caught on the next read.
fn data_block_matrix(params: MerkleParams) {
    let bs = params.block_size() as u64;
    let size = bs * 9 + 123;
    let data = pseudo_random(size as usize, bs ^ params.digest_size() as u64);
    let sealed = Sealed::new(params.clone(), false, |root| {
        std::fs::write(root.join("data.bin"), &data).unwrap();
    });
    let daemon = sealed.start(&[]);
    let mut fs = client(&daemon);
    let mut f = Failures::default();
    let node = fs.lookup(ROOT_ID, "data.bin").unwrap().nodeid;
    let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
    let path = sealed.path("data.bin");
    let max = fs.max_read().min(4 * bs as u32);
    for bad_block in [0u64, 4, 9] {
        let bad_off = bad_block * bs + 7;
        // A good read first, then the host changes the byte.
        f.check(
            read_at(&mut fs, node, fh, bad_block * bs, 1).as_deref()
                == Ok(&data[(bad_block * bs) as usize..][..1]),
            format!("bs {bs}: block {bad_block} unreadable before tampering"),
        );
        flip(&path, bad_off);
        for block in 0..=9u64 {
            for (off, len) in [(block * bs, bs as u32), (block * bs + bs / 2, 3)] {
                let got = read_at(&mut fs, node, fh, off, len);
                let end = (off + u64::from(len)).min(size);
                if off >= size {
                    f.check(
                        got == Ok(vec![]),
                        format!("bs {bs}: read past EOF at {off}"),
                    );
                } else if block == bad_block {
                    f.check(
                        got == Err(libc::EIO),
                        format!(
                            "bs {bs}: read {off}+{len} over tampered block {bad_block}: {:?}",
                            got.map(|v| v.len())
                        ),
                    );
                } else {
                    f.check(
                        got.as_deref() == Ok(&data[off as usize..end as usize]),
                        format!("bs {bs}: read {off}+{len} (tampered {bad_block}) wrong"),
                    );
                }
            }
        }
        // A long read spanning the bad block fails as a whole.
        let start = bad_block.saturating_sub(1) * bs;
        let got = read_at(&mut fs, node, fh, start, max);
        f.check(
            got == Err(libc::EIO),
            format!("bs {bs}: spanning read at {start} not EIO"),
        );
        flip(&path, bad_off);
        let got = read_at(&mut fs, node, fh, bad_block * bs, bs as u32);
        let end = ((bad_block + 1) * bs).min(size);
        f.check(
            got.as_deref() == Ok(&data[(bad_block * bs) as usize..end as usize]),
            format!("bs {bs}: restored block {bad_block} not readable"),
        );
    }
    // Past EOF: nothing.
    f.check(
        read_at(&mut fs, node, fh, size, 100) == Ok(vec![]),
        "read at EOF not empty",
    );
    fs.release(node, fh).unwrap();
    f.assert_none();
}

#[test]
fn tampered_data_blocks_sha256_4k() {
    data_block_matrix(MerkleParams::default());
}

#[test]
fn tampered_data_blocks_sha256_1k() {
    data_block_matrix(MerkleParams::new(HashAlgorithm::Sha256, 1024, b"").unwrap());
}

#[test]
fn tampered_data_blocks_sha512_64k() {
    data_block_matrix(MerkleParams::new(HashAlgorithm::Sha512, 65536, b"").unwrap());
}

#[test]
fn tampered_data_blocks_sha512_4k_salted() {
    data_block_matrix(MerkleParams::new(HashAlgorithm::Sha512, 4096, b"salt").unwrap());
}

#[test]
fn tampered_data_blocks_sha256_16k() {
    data_block_matrix(MerkleParams::new(HashAlgorithm::Sha256, 16384, b"").unwrap());
}

/// Files of 1 to 4 blocks (the last one partial) and one of exactly 4 blocks
/// (security.md case 42), each block corrupted in its middle in turn: only
/// reads touching that block fail, every other block reads correctly, and the
/// file reads correctly again once the byte is restored.
/// Before that, reads ending at or crossing EOF return exactly the sealed
/// bytes up to EOF and never more (case 45).
fn small_file_matrix(params: MerkleParams) {
    let bs = params.block_size() as u64;
    let files: Vec<(String, Vec<u8>)> = (1..=4u64)
        .map(|n| (format!("f{n}"), n * bs - bs / 3))
        .chain([("g4".to_owned(), 4 * bs)])
        .map(|(name, size)| {
            let data = pseudo_random(size as usize, size ^ bs);
            (name, data)
        })
        .collect();
    let sealed = Sealed::new(params.clone(), false, |root| {
        for (name, data) in &files {
            std::fs::write(root.join(name), data).unwrap();
        }
    });
    let daemon = sealed.start(&[]);
    let mut fs = client(&daemon);
    let mut f = Failures::default();
    for (name, data) in &files {
        let size = data.len() as u64;
        let node = fs.lookup(ROOT_ID, name.as_str()).unwrap().nodeid;
        let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
        let attr_size = fs.getattr(node).map(|a| a.size);
        f.check(
            attr_size.as_ref().ok() == Some(&size),
            format!("bs {bs} {name}: size {attr_size:?}, sealed {size}"),
        );
        check_eof_reads(
            &mut f,
            &mut fs,
            (node, fh),
            data,
            bs,
            &format!("bs {bs} {name}"),
        );
        let blocks = size.div_ceil(bs);
        for bad in 0..blocks {
            let block_len = (size - bad * bs).min(bs);
            let bad_off = bad * bs + block_len / 2;
            flip(&sealed.path(name), bad_off);
            for block in 0..blocks {
                for (off, len) in [(block * bs, bs as u32), (block * bs + 1, 1)] {
                    let got = read_at(&mut fs, node, fh, off, len);
                    let end = (off + u64::from(len)).min(size) as usize;
                    let ok = if block == bad {
                        got == Err(libc::EIO)
                    } else {
                        got.as_deref() == Ok(&data[off as usize..end])
                    };
                    f.check(
                        ok,
                        format!(
                            "bs {bs} {name}: block {bad} bad, read {off}+{len}: {:?}",
                            got.map(|v| v.len())
                        ),
                    );
                }
            }
            flip(&sealed.path(name), bad_off);
        }
        f.check(
            read_at(&mut fs, node, fh, 0, (4 * bs) as u32).as_deref() == Ok(&data[..]),
            format!("bs {bs} {name}: unreadable after restoring"),
        );
        fs.release(node, fh).unwrap();
    }
    f.assert_none();
}

/// Reads around EOF of the open file `(node, fh)` with sealed content `data`
/// (ending exactly at EOF, crossing it by 1 byte and by blocks, starting at
/// and past it) each return exactly the sealed bytes up to EOF.
fn check_eof_reads(
    f: &mut Failures,
    fs: &mut VirtioFsClient,
    (node, fh): (u64, u64),
    data: &[u8],
    bs: u64,
    what: &str,
) {
    let size = data.len() as u64;
    let bs32 = bs as u32;
    let reads = [
        (size - 1, 1),
        (size - 1, 2),
        (size - 1, bs32),
        (0, size as u32),
        (0, size as u32 + 1),
        (0, 8 * bs32),
        (size - size % bs, bs32),
        (size.saturating_sub(bs), 2 * bs32),
        (size / 2, bs32 * 4),
        (size, 1),
        (size, bs32),
        (size + 1, bs32),
        ((size / bs + 1) * bs, bs32),
    ];
    for (off, len) in reads {
        let got = read_at(fs, node, fh, off, len);
        let want = &data[off.min(size) as usize..(off + u64::from(len)).min(size) as usize];
        f.check(
            got.as_deref() == Ok(want),
            format!(
                "{what}: read {off}+{len} gave {:?} bytes, sealed {}",
                got.map(|v| v.len()),
                want.len()
            ),
        );
    }
}

#[test]
fn small_files_each_block_corrupted_1k() {
    small_file_matrix(MerkleParams::new(HashAlgorithm::Sha256, 1024, b"").unwrap());
}

#[test]
fn small_files_each_block_corrupted_4k() {
    small_file_matrix(MerkleParams::default());
}

#[test]
fn small_files_each_block_corrupted_16k() {
    small_file_matrix(MerkleParams::new(HashAlgorithm::Sha256, 16384, b"").unwrap());
}

#[test]
fn small_files_each_block_corrupted_64k() {
    small_file_matrix(MerkleParams::new(HashAlgorithm::Sha512, 65536, b"").unwrap());
}

/// Case 45 on the host side: bytes appended after sealing (they would sit in
/// the padding of the last Merkle block) are never served. An open file
/// keeps returning exactly its sealed bytes up to the sealed EOF; a new
/// lookup sees the size mismatch and fails with EIO. Truncated below the
/// sealed size, the reads of the missing range fail with EIO.
#[test]
fn bytes_appended_after_sealing_are_never_served() {
    let bs = 4096u64;
    let size = 2 * bs + 1000;
    let data = pseudo_random(size as usize, 45);
    let sealed = Sealed::new(MerkleParams::default(), false, |root| {
        std::fs::write(root.join("f"), &data).unwrap();
        std::fs::write(root.join("g"), &data).unwrap();
    });
    let daemon = sealed.start(&[]);
    let mut fs = client(&daemon);
    let mut f = Failures::default();
    let node = fs.lookup(ROOT_ID, "f").unwrap().nodeid;
    let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
    let tail = &data[(2 * bs) as usize..];
    f.check(
        read_at(&mut fs, node, fh, 2 * bs, bs as u32).as_deref() == Ok(tail),
        "last block unreadable before the append",
    );
    let extra = [0xee_u8; 3000];
    for path in [sealed.path("f"), sealed.path("g")] {
        let file = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        std::os::unix::fs::FileExt::write_all_at(&file, &extra, size).unwrap();
    }
    check_eof_reads(&mut f, &mut fs, (node, fh), &data, bs, "after the append");
    // The manifest's size is the size; the longer host file cannot be opened.
    let g = fs.lookup(ROOT_ID, "g").unwrap();
    f.check(
        g.attr.size == size,
        format!("size of an extended file: {}", g.attr.size),
    );
    let got = errno_of(&fs.open(g.nodeid, libc::O_RDONLY));
    f.check(
        got == Some(libc::EIO),
        format!("open of an extended file: {got:?}"),
    );
    // Cut into the last block: its reads fail, earlier blocks still read.
    std::fs::OpenOptions::new()
        .write(true)
        .open(sealed.path("f"))
        .unwrap()
        .set_len(size - 10)
        .unwrap();
    let got = read_at(&mut fs, node, fh, size - 20, 5);
    f.check(
        got == Err(libc::EIO),
        format!("read of a truncated block: {got:?}"),
    );
    f.check(
        read_at(&mut fs, node, fh, 0, bs as u32).as_deref() == Ok(&data[..bs as usize]),
        "first block unreadable after the truncation",
    );
    fs.release(node, fh).unwrap();
    f.assert_none();
}

/// 129 blocks + 5 bytes at 4K/SHA-256: level 0 has two blocks (128 hashes
/// each), level 1 is the single top block. The store holds the top level
/// first: tree block 0 = level 1, blocks 1 and 2 = level 0.
const TREE_FILE_SIZE: usize = 129 * 4096 + 5;

fn tree_store_case(f: &mut Failures, corrupt_at: u64, expect_eio: &[u64], expect_ok: &[u64]) {
    let data = pseudo_random(TREE_FILE_SIZE, 77);
    let sealed = Sealed::new(MerkleParams::default(), true, |root| {
        std::fs::write(root.join("t.bin"), &data).unwrap();
    });
    flip(&sealed.store_entry("t.bin"), corrupt_at);
    let daemon = sealed.start(&[]);
    let mut fs = client(&daemon);
    let node = fs.lookup(ROOT_ID, "t.bin").unwrap().nodeid;
    let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
    for &b in expect_eio {
        let got = read_at(&mut fs, node, fh, b * 4096, 4096);
        f.check(
            got == Err(libc::EIO),
            format!("store byte {corrupt_at}: block {b} not EIO"),
        );
    }
    for &b in expect_ok {
        let got = read_at(&mut fs, node, fh, b * 4096, 4096);
        let end = ((b + 1) as usize * 4096).min(TREE_FILE_SIZE);
        f.check(
            got.as_deref() == Ok(&data[b as usize * 4096..end]),
            format!("store byte {corrupt_at}: block {b} not readable"),
        );
    }
}

#[test]
fn tampered_tree_levels_fail_the_covered_reads() {
    let d = DESCRIPTOR_SIZE as u64;
    let mut f = Failures::default();
    // Top level: everything fails.
    tree_store_case(&mut f, d + 10, &[0, 64, 128, 129], &[]);
    // Level 0, block #0: data blocks 0..127 fail, 128 and 129 read fine.
    tree_store_case(&mut f, d + 4096 + 10, &[0, 1, 127], &[128, 129]);
    // Level 0, block #1: only 128 and 129 fail.
    tree_store_case(&mut f, d + 2 * 4096 + 3, &[128, 129], &[0, 127]);
    f.assert_none();
}

#[test]
fn corrupted_store_descriptor_is_rebuilt_from_the_file() {
    // Byte 9 is in data_size: the descriptor no longer hashes to the digest.
    let mut f = Failures::default();
    tree_store_case(&mut f, 9, &[], &[0, 128, 129]);
    f.assert_none();
}

#[test]
fn tampered_names_types_and_sizes_are_refused() {
    let sealed = Sealed::new(MerkleParams::default(), false, |root| {
        for name in [
            "keep",
            "renamed",
            "swap_a",
            "swap_b",
            "trunc",
            "extend",
            "to_link",
            "removed",
            "rewritten",
        ] {
            std::fs::write(
                root.join(name),
                pseudo_random(
                    10_000,
                    name.bytes().fold(7u64, |h, b| h * 31 + u64::from(b)),
                ),
            )
            .unwrap();
        }
        std::fs::create_dir(root.join("dir")).unwrap();
        std::fs::write(root.join("dir/inner"), b"inner\n").unwrap();
        std::fs::hard_link(root.join("keep"), root.join("keep_hard")).unwrap();
        std::os::unix::fs::symlink("keep", root.join("link_same_len")).unwrap();
        std::os::unix::fs::symlink("keep", root.join("link_new_len")).unwrap();
    });
    let keep = std::fs::read(sealed.path("keep")).unwrap();
    let p = |n: &str| sealed.path(n);
    std::fs::rename(p("renamed"), p("renamed2")).unwrap();
    std::fs::rename(p("swap_a"), p("tmp")).unwrap();
    std::fs::rename(p("swap_b"), p("swap_a")).unwrap();
    std::fs::rename(p("tmp"), p("swap_b")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(p("trunc"))
        .unwrap()
        .set_len(5000)
        .unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .open(p("extend"))
        .unwrap()
        .set_len(10_001)
        .unwrap();
    std::fs::remove_file(p("to_link")).unwrap();
    std::os::unix::fs::symlink("keep", p("to_link")).unwrap();
    std::fs::remove_file(p("removed")).unwrap();
    std::fs::write(p("unlisted"), b"not in the manifest").unwrap();
    std::fs::write(p("dir/unlisted"), b"not in the manifest").unwrap();
    // Same size, other content, new inode.
    std::fs::write(p("tmp"), pseudo_random(10_000, 999)).unwrap();
    std::fs::rename(p("tmp"), p("rewritten")).unwrap();
    std::fs::remove_file(p("link_same_len")).unwrap();
    std::os::unix::fs::symlink("evil", p("link_same_len")).unwrap();
    std::fs::remove_file(p("link_new_len")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", p("link_new_len")).unwrap();

    let daemon = sealed.start(&[]);
    let mut fs = client(&daemon);
    let mut f = Failures::default();
    let lookup = |fs: &mut VirtioFsClient, n: &str| fs.lookup_path(n);
    f.check(
        fs.read_file("keep").ok().as_deref() == Some(&keep[..]),
        "untouched file unreadable",
    );
    // A hard link is one host inode under two listed names with the same content.
    f.check(
        fs.read_file("keep_hard").ok().as_deref() == Some(&keep[..]),
        "hard link unreadable",
    );
    for name in ["", "a/b"] {
        let got = errno_of(&fs.lookup(ROOT_ID, name));
        f.check(
            got == Some(libc::EINVAL),
            format!("lookup of {name:?}: {got:?}"),
        );
    }
    // Unlisted names do not exist, whatever the host has.
    for name in ["renamed2", "unlisted", "dir/unlisted"] {
        let got = errno_of(&lookup(&mut fs, name));
        f.check(
            got == Some(libc::ENOENT),
            format!("lookup {name}: {got:?}, expected ENOENT"),
        );
    }
    // Listed names exist as the manifest says, whatever the host did to them; their content
    // cannot be had: moved away, removed, cut, extended, replaced by a symlink, or swapped and
    // rewritten with the same size.
    for name in [
        "renamed",
        "removed",
        "trunc",
        "extend",
        "to_link",
        "swap_a",
        "swap_b",
        "rewritten",
    ] {
        let entry = lookup(&mut fs, name);
        let attr_ok = entry
            .as_ref()
            .is_ok_and(|e| e.attr.size == 10_000 && e.attr.mode & libc::S_IFMT == libc::S_IFREG);
        f.check(
            attr_ok,
            format!("lookup {name}: not the manifest's attributes"),
        );
        let got = entry
            .map_err(|e| e.errno())
            .and_then(|e| fs.open(e.nodeid, libc::O_RDONLY).map_err(|e| e.errno()));
        f.check(
            got.as_ref().err() == Some(&Some(libc::EIO)),
            format!("open {name}: expected EIO"),
        );
    }
    // Symlink targets are the manifest's, never the host's.
    for name in ["link_same_len", "link_new_len"] {
        let got = lookup(&mut fs, name)
            .map(|e| e.nodeid)
            .and_then(|n| fs.readlink(n));
        f.check(
            got.as_deref().ok() == Some(&b"keep"[..]),
            format!("readlink {name}: {got:?}"),
        );
    }
    // Listings hide unlisted names.
    let names = root_names(&mut fs);
    f.check(
        !names.contains(&b"unlisted".to_vec()),
        "readdir shows an unlisted name",
    );
    for listed in ["keep", "removed", "renamed", "to_link"] {
        f.check(
            names.contains(&listed.as_bytes().to_vec()),
            format!("readdir hides the listed name {listed}"),
        );
    }
    f.check(
        !names.contains(&b"renamed2".to_vec()),
        "readdir shows the host's new name",
    );
    let dir = lookup(&mut fs, "dir").unwrap().nodeid;
    let fh = fs.opendir(dir).unwrap().fh;
    let plus = fs.readdirplus(dir, fh, 0, 4096).unwrap();
    let plus_names: Vec<&[u8]> = plus.iter().map(|e| e.dirent.name.as_slice()).collect();
    f.check(
        plus_names == [&b"."[..], b"..", b"inner"],
        format!("readdirplus of dir: {plus_names:?}"),
    );
    fs.releasedir(dir, fh).unwrap();
    // The inode handed out by READDIRPLUS opens and reads verified.
    if let Some(e) = plus.last() {
        let got = fs.read_node(e.entry.nodeid);
        f.check(
            got.ok().as_deref() == Some(&b"inner\n"[..]),
            "READDIRPLUS inode unreadable",
        );
    }
    f.check(
        fs.read_file("dir/inner").ok().as_deref() == Some(&b"inner\n"[..]),
        "dir/inner unreadable",
    );
    f.assert_none();
}

#[test]
fn unlisted_allow_serves_unverified() {
    let sealed = Sealed::new(MerkleParams::default(), false, |root| {
        std::fs::write(root.join("listed"), b"listed\n").unwrap();
    });
    std::fs::write(sealed.path("extra"), b"extra\n").unwrap();
    let daemon = sealed.start(&["--unlisted=allow"]);
    let mut fs = client(&daemon);
    let mut f = Failures::default();
    f.check(
        fs.read_file("extra").ok().as_deref() == Some(&b"extra\n"[..]),
        "unlisted file not served",
    );
    let node = fs.lookup_path("extra").unwrap().nodeid;
    let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
    let m = fs.ioctl(node, fh, MEASURE, 0, &[0; 68], 68).unwrap();
    f.check(
        m.result == -libc::ENODATA && m.data.is_empty(),
        "MEASURE on an unlisted file",
    );
    let g = fs.ioctl(node, fh, GETFLAGS, 0, &[], 4).unwrap();
    f.check(
        g.result == 0 && g.data == [0; 4],
        "GETFLAGS on an unlisted file",
    );
    let x = errno_of(&fs.getxattr(node, "user.verity.digest", 100));
    f.check(
        x == Some(libc::ENODATA),
        format!("digest xattr on an unlisted file: {x:?}"),
    );
    let names = root_names(&mut fs);
    f.check(
        names.contains(&b"extra".to_vec()),
        "allow mode hides an unlisted name",
    );
    f.check(
        fs.read_file("listed").ok().as_deref() == Some(&b"listed\n"[..]),
        "listed file",
    );
    f.assert_none();
}

fn digest_abi(xattr: bool) {
    let sealed = Sealed::new(MerkleParams::default(), false, |root| {
        std::fs::write(root.join("file"), pseudo_random(300_000, 5)).unwrap();
        std::fs::create_dir(root.join("dir")).unwrap();
    });
    let host_xattr = xattr_set(
        &sealed.path("file"),
        "user.verity.digest",
        b"sha256:planted",
    ) && xattr_set(&sealed.path("file"), "user.other", b"kept");
    let tree = tree_of(&sealed.path("file"), &sealed.params);
    let daemon = sealed.start(if xattr { &["--xattr"] } else { &[] });
    let mut fs = client(&daemon);
    let mut f = Failures::default();
    let node = fs.lookup(ROOT_ID, "file").unwrap().nodeid;
    let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
    let reply = tree.digest().measure_reply();
    for out in [68u32, 36] {
        let mut input = vec![0u8; out as usize];
        input[2..4].copy_from_slice(&((out - 4) as u16).to_le_bytes());
        let m = fs.ioctl(node, fh, MEASURE, 0, &input, out).unwrap();
        f.check(
            m.result == 0 && m.data == reply,
            format!("MEASURE out_size {out}"),
        );
    }
    if let Ok(out) = Command::new("fsverity")
        .arg("digest")
        .arg(sealed.path("file"))
        .output()
    {
        let text = String::from_utf8_lossy(&out.stdout);
        f.check(
            text.starts_with(&tree.digest().to_string()),
            format!("fsverity digest says {text}"),
        );
    }
    for out in [20u32, 4] {
        let mut input = vec![0u8; out as usize];
        input[2] = 16;
        let m = fs.ioctl(node, fh, MEASURE, 0, &input, out).unwrap();
        f.check(
            m.result == -libc::EOVERFLOW && m.data.is_empty(),
            format!("MEASURE out_size {out}: {}", m.result),
        );
    }
    let dir = fs.lookup(ROOT_ID, "dir").unwrap().nodeid;
    let dfh = fs.opendir(dir).unwrap().fh;
    let m = fs
        .ioctl(dir, dfh, MEASURE, FUSE_IOCTL_DIR, &[0; 68], 68)
        .unwrap();
    f.check(
        m.result == -libc::ENODATA && m.data.is_empty(),
        "MEASURE on a directory",
    );
    for cmd in [GETFLAGS, GETFLAGS32] {
        let g = fs.ioctl(node, fh, cmd, 0, &[], 4).unwrap();
        f.check(
            g.result == 0 && g.data == [0, 0, 0x10, 0],
            format!("GETFLAGS {cmd:#x}"),
        );
        let g = fs.ioctl(dir, dfh, cmd, FUSE_IOCTL_DIR, &[], 4).unwrap();
        f.check(
            g.result == 0 && g.data == [0; 4],
            format!("GETFLAGS {cmd:#x} on a directory"),
        );
    }
    let e = fs.ioctl(node, fh, ENABLE, 0, &[0; 128], 0).unwrap();
    f.check(e.result == -libc::EROFS && e.data.is_empty(), "ENABLE");
    let r = errno_of(&fs.ioctl(node, fh, READ_METADATA, 0, &[0; 40], 40));
    f.check(
        r == Some(libc::ENOTTY),
        format!("READ_VERITY_METADATA: {r:?}"),
    );

    // xattrs.
    let value = tree.digest().to_string().into_bytes();
    let probe = fs.getxattr(node, "user.verity.digest", 0);
    f.check(
        matches!(probe, Ok(XattrReply::Size(n)) if n as usize == value.len()),
        "digest xattr size probe",
    );
    let got = fs.getxattr(node, "user.verity.digest", 200);
    f.check(
        matches!(&got, Ok(XattrReply::Data(v)) if *v == value),
        format!("digest xattr value {got:?}"),
    );
    let small = errno_of(&fs.getxattr(node, "user.verity.digest", 10));
    f.check(
        small == Some(libc::ERANGE),
        format!("digest xattr small buffer: {small:?}"),
    );
    let other = errno_of(&fs.getxattr(node, "user.verity.other", 100));
    f.check(other == Some(libc::ENODATA), "unknown user.verity. name");
    let root_value = sealed.manifest.digest().to_string().into_bytes();
    let got = fs.getxattr(ROOT_ID, "user.verity.manifest_digest", 200);
    f.check(
        matches!(&got, Ok(XattrReply::Data(v)) if *v == root_value),
        "manifest digest xattr",
    );
    let nodigest = errno_of(&fs.getxattr(dir, "user.verity.digest", 200));
    f.check(
        nodigest == Some(libc::ENODATA),
        "digest xattr on a directory",
    );
    match fs.listxattr(node, 4096) {
        Ok(XattrReply::Data(list)) => {
            let names: Vec<&[u8]> = list.split(|&b| b == 0).filter(|n| !n.is_empty()).collect();
            f.check(
                names
                    .iter()
                    .filter(|n| **n == b"user.verity.digest")
                    .count()
                    == 1,
                format!("listxattr: {names:?}"),
            );
            if xattr && host_xattr {
                f.check(
                    names.contains(&&b"user.other"[..]),
                    "host xattr missing from the list",
                );
            }
        }
        other => f.check(false, format!("listxattr: {other:?}")),
    }
    let small = errno_of(&fs.listxattr(node, 3));
    f.check(small == Some(libc::ERANGE), "listxattr small buffer");
    let set = errno_of(&fs.setxattr(node, "user.verity.digest", b"x", 0));
    f.check(set == Some(libc::EROFS), format!("setxattr: {set:?}"));
    let rm = errno_of(&fs.removexattr(node, "user.verity.digest"));
    f.check(rm == Some(libc::EROFS), format!("removexattr: {rm:?}"));
    f.assert_none();
}

#[test]
fn digests_reach_the_guest() {
    digest_abi(false);
}

#[test]
fn digests_reach_the_guest_with_xattr_passthrough() {
    digest_abi(true);
}

/// Sets a host xattr; false where the filesystem does not support it.
fn xattr_set(path: &Path, name: &str, value: &[u8]) -> bool {
    Command::new("setfattr")
        .arg("-n")
        .arg(name)
        .arg("-v")
        .arg(std::ffi::OsStr::from_bytes(value))
        .arg(path)
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn audit_mode_serves_and_logs() {
    let data = pseudo_random(20_000, 9);
    let sealed = Sealed::new(MerkleParams::default(), false, |root| {
        std::fs::write(root.join("a"), &data).unwrap();
    });
    flip(&sealed.path("a"), 5000);
    let daemon = sealed.start(&["--verity=audit"]);
    let mut fs = client(&daemon);
    let got = fs.read_file("a").unwrap();
    assert_eq!(got.len(), data.len());
    assert_ne!(got, data);
    assert!(
        daemon.stderr().contains("integrity failure"),
        "{}",
        daemon.stderr()
    );
}

fn refused(sealed: &Sealed, extra: &[&str]) -> (Option<i32>, String) {
    match DaemonProcess::spawn(daemon_binary(), sealed.args(extra)) {
        Err(ProcessError::ExitedEarly { status, stderr }) => (status.code(), stderr),
        Err(e) => panic!("unexpected start failure: {e}"),
        Ok(_) => panic!("the daemon started"),
    }
}

#[test]
fn bad_or_unpinned_manifests_refuse_to_start() {
    let sealed = Sealed::new(MerkleParams::default(), false, |root| {
        std::fs::write(root.join("a"), b"a").unwrap();
    });
    let good = sealed.manifest.digest().to_string();
    let wrong = format!("sha256:{}", "ab".repeat(32));
    let (code, err) = refused(&sealed, &[&format!("--manifest-digest={wrong}")]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains(&good) && err.contains(&wrong), "{err}");
    // The pinned digest starts.
    let d = sealed.start(&[&format!("--manifest-digest={good}")]);
    drop(d);
    let mpath = sealed.outer.path().join("manifest");
    let mut bytes = std::fs::read(&mpath).unwrap();
    let i = bytes.len() - 3;
    bytes[i] ^= 1;
    std::fs::write(&mpath, &bytes).unwrap();
    let (code, err) = refused(&sealed, &[]);
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--manifest"), "{err}");
}

#[test]
fn readdirplus_pages_bind_hide_and_blank() {
    let sealed = Sealed::new(MerkleParams::default(), false, |root| {
        std::fs::create_dir(root.join("many")).unwrap();
        for i in 0..150 {
            std::fs::write(root.join(format!("many/f{i:03}")), format!("{i}\n")).unwrap();
        }
    });
    for i in (0..150).step_by(10) {
        std::fs::write(sealed.path(&format!("many/x{i:03}")), b"unlisted").unwrap();
    }
    // Tampered: another size.
    std::fs::write(sealed.path("many/f007"), b"longer than before\n").unwrap();
    let daemon = sealed.start(&[]);
    let mut fs = client(&daemon);
    let mut f = Failures::default();
    let dir = fs.lookup_path("many").unwrap().nodeid;
    let fh = fs.opendir(dir).unwrap().fh;
    let mut seen = Vec::new();
    let mut offset = 0;
    loop {
        let batch = fs.readdirplus(dir, fh, offset, 1024).unwrap();
        let Some(last) = batch.last() else { break };
        offset = last.dirent.offset;
        seen.extend(batch);
    }
    fs.releasedir(dir, fh).unwrap();
    let mut names: Vec<String> = seen
        .iter()
        .map(|e| String::from_utf8_lossy(&e.dirent.name).into_owned())
        .filter(|n| n != "." && n != "..")
        .collect();
    names.sort();
    let want: Vec<String> = (0..150).map(|i| format!("f{i:03}")).collect();
    f.check(
        names == want,
        format!("readdirplus names: {} of 150", names.len()),
    );
    for e in &seen {
        let name = String::from_utf8_lossy(&e.dirent.name).into_owned();
        if name == "f007" {
            // The manifest's attributes; the host's other size shows only as EIO on open.
            f.check(e.entry.attr.size == 2, "tampered entry has the host's size");
            let got = errno_of(&fs.read_node(e.entry.nodeid));
            f.check(
                got == Some(libc::EIO),
                format!("read of the tampered entry: {got:?}"),
            );
        } else if let Some(num) = name.strip_prefix('f') {
            let got = fs.read_node(e.entry.nodeid);
            let want = format!("{}\n", num.parse::<u32>().unwrap());
            f.check(
                got.ok().as_deref() == Some(want.as_bytes()),
                format!("{name} via READDIRPLUS"),
            );
        }
    }
    f.assert_none();
}

#[test]
fn concurrent_reads_fail_only_over_the_bad_block() {
    const SIZE: usize = 1 << 20;
    let data = pseudo_random(SIZE, 42);
    // With a tree store: the open succeeds and every read is judged on its own.
    let sealed = Sealed::new(MerkleParams::default(), true, |root| {
        std::fs::write(root.join("c.bin"), &data).unwrap();
    });
    let bad_block = 100u64;
    flip(&sealed.path("c.bin"), bad_block * 4096 + 1);
    let daemon = sealed.start(&["--thread-pool-size=4"]);
    let mut fs = client(&daemon);
    let mut f = Failures::default();
    let node = fs.lookup(ROOT_ID, "c.bin").unwrap().nodeid;
    let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
    let mut seed = 7u64;
    let mut pending = Vec::new();
    for _ in 0..256 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let off = seed % SIZE as u64;
        let len = (seed >> 40) as u32 % 20_000 + 1;
        pending.push((off, len, fs.submit_read(node, fh, off, len).unwrap()));
        if pending.len() == 16 {
            for (off, len, p) in pending.drain(..) {
                let got = fs.wait_read(p, len).map_err(|e| e.errno());
                let end = (off + u64::from(len)).min(SIZE as u64);
                let touches = off / 4096 <= bad_block && (end - 1) / 4096 >= bad_block;
                if touches {
                    f.check(
                        got == Err(Some(libc::EIO)),
                        format!("read {off}+{len} over the bad block"),
                    );
                } else {
                    f.check(
                        got.as_deref() == Ok(&data[off as usize..end as usize]),
                        format!("read {off}+{len}"),
                    );
                }
            }
        }
    }
    f.assert_none();
}

#[test]
fn a_share_root_with_other_permissions_is_served_as_sealed() {
    let sealed = Sealed::new(MerkleParams::default(), false, |root| {
        std::fs::write(root.join("a"), b"a").unwrap();
    });
    let mode = std::fs::metadata(sealed.root()).unwrap().permissions();
    let mut other = mode.clone();
    std::os::unix::fs::PermissionsExt::set_mode(&mut other, 0o777);
    std::fs::set_permissions(sealed.root(), other).unwrap();
    let daemon = sealed.start(&[]);
    let mut fs = client(&daemon);
    let root = fs.getattr(ROOT_ID).unwrap();
    let sealed_mode = sealed.manifest.entries()[0].mode;
    assert_eq!(root.mode & 0o7777, sealed_mode, "root mode");
    assert_eq!(fs.read_file("a").unwrap(), b"a");
    std::fs::set_permissions(sealed.root(), mode).unwrap();
}

/// The names the share root lists.
fn root_names(fs: &mut VirtioFsClient) -> Vec<Vec<u8>> {
    fs.list_dir("/")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect()
}
