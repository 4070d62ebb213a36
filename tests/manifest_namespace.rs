// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A manifest-served share through the vhost-user harness: the namespace is the manifest's,
//! the host directory only a content store (`docs/guest-abi.md`), and the share serves its own
//! manifest and trees under `.verityfsd` for a guest that brings only the pin.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use common::seal::seal;
use common::{errno_of, pseudo_random, spawn_unconfined, Failures};
use verity_manifest::{store_relative_path, EntryKind, Manifest};
use verity_merkle::MerkleParams;
use vhost_user_harness::{DaemonProcess, VirtioFsClient, ROOT_ID};

/// A sealed `<tmp>/share` with a tree store `<tmp>/store`, and a daemon serving it.
fn sealed(build: impl FnOnce(&Path)) -> (tempfile::TempDir, Manifest, DaemonProcess) {
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("share");
    std::fs::create_dir(&root).unwrap();
    build(&root);
    let store = outer.path().join("store");
    let manifest = seal(&root, &MerkleParams::default(), Some(&store));
    let mpath = outer.path().join("manifest");
    std::fs::write(&mpath, manifest.to_bytes()).unwrap();
    let daemon = spawn_unconfined(
        &root,
        [
            format!("--manifest={}", mpath.display()),
            format!("--tree-store={}", store.display()),
        ],
    );
    (outer, manifest, daemon)
}

#[test]
fn metadata_changed_after_lookup_and_open_is_never_served() {
    let data = pseudo_random(3 * 4096 + 7, 3);
    let (outer, manifest, daemon) = sealed(|root| {
        std::fs::write(root.join("f"), &data).unwrap();
        std::fs::create_dir(root.join("d")).unwrap();
    });
    let mut fs = VirtioFsClient::connect_and_init(daemon.socket_path()).unwrap();
    let mut f = Failures::default();
    let share = outer.path().join("share");
    let e = fs.lookup(ROOT_ID, "f").unwrap();
    let fh = fs.open(e.nodeid, libc::O_RDONLY).unwrap().fh;
    // After LOOKUP and OPEN the host changes mode and owner, cuts the file and adds a setuid
    // bit to the directory: GETATTR still answers the manifest.
    std::fs::set_permissions(share.join("f"), std::fs::Permissions::from_mode(0o6777)).unwrap();
    std::os::unix::fs::chown(share.join("f"), Some(1234), Some(1234)).unwrap();
    std::fs::File::options()
        .write(true)
        .open(share.join("f"))
        .unwrap()
        .set_len(4096)
        .unwrap();
    let sealed_f = manifest.get(b"/f").unwrap();
    let a = fs.getattr(e.nodeid).unwrap();
    f.check(
        (a.mode & 0o7777, a.uid, a.gid, a.size)
            == (sealed_f.mode, sealed_f.uid, sealed_f.gid, data.len() as u64),
        format!("GETATTR after the host's changes: {a:?}"),
    );
    // Inode numbers are manifest positions + 1.
    let pos = manifest.position(b"/f").unwrap() as u64 + 1;
    f.check(
        e.nodeid == pos && a.ino == pos,
        format!("inode {} / {}", e.nodeid, a.ino),
    );
    // The first block is still there and verifies; a read past the cut is EIO, not EOF.
    f.check(
        fs.read(e.nodeid, fh, 0, 4096).ok().as_deref() == Some(&data[..4096]),
        "first block after the cut",
    );
    for off in [4096u64, 8192, 3 * 4096] {
        let got = errno_of(&fs.read(e.nodeid, fh, off, 4096));
        f.check(
            got == Some(libc::EIO),
            format!("read at {off} past the cut: {got:?}"),
        );
    }
    // No holes: SEEK_DATA is the offset, SEEK_HOLE the manifest size, ENXIO beyond.
    let size = data.len() as u64;
    let seek = |fs: &mut VirtioFsClient, off, whence| fs.lseek(e.nodeid, fh, off, whence as u32);
    f.check(
        seek(&mut fs, 100, libc::SEEK_DATA).ok() == Some(100),
        "SEEK_DATA",
    );
    f.check(
        seek(&mut fs, 0, libc::SEEK_HOLE).ok() == Some(size),
        "SEEK_HOLE",
    );
    let beyond = errno_of(&seek(&mut fs, size, libc::SEEK_DATA));
    f.check(
        beyond == Some(libc::ENXIO),
        format!("SEEK_DATA at EOF: {beyond:?}"),
    );
    fs.release(e.nodeid, fh).unwrap();
    f.assert_none();
}

#[test]
fn the_share_serves_its_manifest_and_trees_for_a_pin_only_guest() {
    let big = pseudo_random(300 * 4096, 9);
    let (outer, manifest, daemon) = sealed(|root| {
        std::fs::write(root.join("big"), &big).unwrap();
        std::fs::write(root.join("same"), &big).unwrap();
        std::fs::write(root.join("small"), b"small\n").unwrap();
    });
    let mut fs = VirtioFsClient::connect_and_init(daemon.socket_path()).unwrap();
    let mut f = Failures::default();
    // Not listed in the root, found by LOOKUP.
    let root: Vec<Vec<u8>> = fs
        .list_dir("/")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    f.check(
        !root.contains(&verity_fs::META_DIR.as_bytes().to_vec()),
        "the reserved directory is listed in the root",
    );
    f.check(
        fs.read_file(".verityfsd/manifest").ok() == Some(manifest.to_bytes()),
        "manifest bytes",
    );
    // One tree per distinct content, named as in the tree store, with the store's bytes.
    let digests: std::collections::BTreeSet<String> = manifest
        .entries()
        .iter()
        .filter_map(|e| match &e.kind {
            EntryKind::File { digest, .. } => Some(hex::encode(digest.as_bytes())),
            _ => None,
        })
        .collect();
    let mut listed: Vec<String> = fs
        .list_dir(".verityfsd/trees/sha256")
        .unwrap()
        .into_iter()
        .map(|e| String::from_utf8(e.name).unwrap())
        .filter(|n| n != "." && n != "..")
        .collect();
    listed.sort();
    f.check(
        listed == digests.iter().cloned().collect::<Vec<_>>(),
        format!("trees listed: {listed:?}"),
    );
    let store = outer.path().join("store");
    let big_digest = *manifest.get(b"/big").unwrap().digest().unwrap();
    let rel = store_relative_path(&big_digest);
    let want = std::fs::read(store.join(&rel)).unwrap();
    let path = format!(".verityfsd/trees/{}", rel.display());
    let e = fs.lookup_path(&path).unwrap();
    f.check(
        e.attr.size == want.len() as u64,
        "tree size from the manifest",
    );
    f.check(fs.read_file(&path).ok() == Some(want), "tree bytes");
    // A store entry the host removed, or one whose descriptor does not match: EIO on OPEN.
    let small_digest = *manifest.get(b"/small").unwrap().digest().unwrap();
    let small_rel = store_relative_path(&small_digest);
    std::fs::remove_file(store.join(&small_rel)).unwrap();
    let got = errno_of(&fs.read_file(&format!(".verityfsd/trees/{}", small_rel.display())));
    f.check(got == Some(libc::EIO), format!("missing tree: {got:?}"));
    // Nothing in it can be written.
    let d = fs.lookup_path(".verityfsd").unwrap();
    f.check(d.attr.mode & 0o7777 == 0o555, "directory mode");
    let m = fs.lookup(d.nodeid, "manifest").unwrap();
    let w = errno_of(&fs.open(m.nodeid, libc::O_WRONLY));
    f.check(w == Some(libc::EROFS), format!("write open: {w:?}"));
    f.assert_none();
}

#[test]
fn content_comes_from_an_object_store_by_digest() {
    let outer = tempfile::tempdir().unwrap();
    let image = outer.path().join("image");
    std::fs::create_dir_all(image.join("d")).unwrap();
    let data = pseudo_random(5 * 4096 + 1, 11);
    std::fs::write(image.join("a"), &data).unwrap();
    std::fs::write(image.join("d/copy"), &data).unwrap();
    std::fs::write(image.join("b"), b"bee\n").unwrap();
    let manifest = seal(&image, &MerkleParams::default(), None);
    let mpath = outer.path().join("manifest");
    std::fs::write(&mpath, manifest.to_bytes()).unwrap();
    // The store holds each content once, by digest; the shared directory is empty.
    let objects = outer.path().join("objects");
    for e in manifest.entries() {
        if let Some(d) = e.digest() {
            let obj = objects.join(verity_manifest::object_relative_path(d));
            std::fs::create_dir_all(obj.parent().unwrap()).unwrap();
            let src = image.join(std::str::from_utf8(&e.path[1..]).unwrap());
            std::fs::copy(src, obj).unwrap();
        }
    }
    let empty = outer.path().join("empty");
    std::fs::create_dir(&empty).unwrap();
    let args = |extra: &str| {
        [
            format!("--manifest={}", mpath.display()),
            format!("--objects={}", objects.display()),
            extra.to_owned(),
        ]
    };
    let daemon = spawn_unconfined(&empty, args("--cache=auto"));
    let mut fs = VirtioFsClient::connect_and_init(daemon.socket_path()).unwrap();
    let mut f = Failures::default();
    f.check(
        fs.read_file("a").ok().as_deref() == Some(&data[..]),
        "a from the store",
    );
    f.check(
        fs.read_file("d/copy").ok().as_deref() == Some(&data[..]),
        "d/copy, same object",
    );
    f.check(
        fs.read_file("b").ok().as_deref() == Some(&b"bee\n"[..]),
        "b",
    );
    // A corrupted object is EIO; one missing from the store too.
    let b = manifest.get(b"/b").unwrap().digest().unwrap();
    std::fs::write(
        objects.join(verity_manifest::object_relative_path(b)),
        b"BEE\n",
    )
    .unwrap();
    let got = errno_of(&fs.read_file("b"));
    f.check(got == Some(libc::EIO), format!("corrupted object: {got:?}"));
    f.assert_none();
    drop(fs);
    drop(daemon);
    // Digest-addressed content has no host objects to audit: refused with a reason.
    let out = std::process::Command::new(common::daemon_binary())
        .arg(format!("--shared-dir={}", empty.display()))
        .args(args("--verity=audit"))
        .args([
            "--socket-path=/nonexistent/x.sock",
            "--sandbox=none",
            "--seccomp=none",
        ])
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        err.contains("--objects serves content by digest only"),
        "{err}"
    );
}
