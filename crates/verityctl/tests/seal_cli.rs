// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl seal`, `verify-manifest` and `manifest-digest` on a tree with
//! every kind of entry, against `verityctl digest` and `fsverity digest`.

mod common;

use std::ffi::{OsStr, OsString};
use std::fs;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use verity_manifest::{store_relative_path, EntryKind, Manifest};

use common::{fsverity, random_bytes};

/// Every process these tests start is killed after this long.
const TIMEOUT: Duration = Duration::from_secs(120);

struct Run {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `program args` with a timeout; output goes through files so that a
/// full pipe cannot stall the child.
fn run_cmd(program: &OsStr, args: &[&OsStr]) -> Run {
    let dir = tempfile::tempdir().unwrap();
    let (out, err) = (dir.path().join("out"), dir.path().join("err"));
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(fs::File::create(&out).unwrap())
        .stderr(fs::File::create(&err).unwrap())
        .spawn()
        .expect("start process");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{program:?} {args:?} timed out");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    Run {
        code: status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&fs::read(&out).unwrap()).into_owned(),
        stderr: String::from_utf8_lossy(&fs::read(&err).unwrap()).into_owned(),
    }
}

fn verityctl<S: AsRef<OsStr>>(args: &[S]) -> Run {
    let args: Vec<&OsStr> = args.iter().map(AsRef::as_ref).collect();
    run_cmd(OsStr::new(env!("CARGO_BIN_EXE_verityctl")), &args)
}

fn name(raw: &[u8]) -> &OsStr {
    OsStr::from_bytes(raw)
}

/// A tree with every kind of entry; the same bytes each time it is built.
fn build_tree(root: &Path) {
    fs::create_dir_all(root.join("etc/deep/er/still")).unwrap();
    fs::create_dir_all(root.join("bin")).unwrap();
    fs::create_dir(root.join("empty dir")).unwrap();
    fs::write(root.join("etc/passwd"), b"root:x:0:0::/root:/bin/sh\n").unwrap();
    fs::write(root.join("etc/empty"), b"").unwrap();
    fs::write(root.join("etc/deep/er/still/f4097"), random_bytes(4097, 1)).unwrap();
    fs::write(root.join("bin/five-mib"), random_bytes(5 << 20, 2)).unwrap();
    // Above the size that is hashed with every thread inside the file.
    fs::write(root.join("bin/big"), random_bytes((17 << 20) + 3, 3)).unwrap();
    fs::write(root.join("bin/su"), random_bytes(1000, 4)).unwrap();
    fs::set_permissions(root.join("bin/su"), fs::Permissions::from_mode(0o4755)).unwrap();
    fs::write(root.join("a"), b"same size A").unwrap();
    fs::write(root.join("b"), b"same size B").unwrap();
    fs::hard_link(root.join("etc/passwd"), root.join("etc/passwd.link")).unwrap();
    std::os::unix::fs::symlink("busybox", root.join("bin/sh")).unwrap();
    std::os::unix::fs::symlink("/etc/passwd", root.join("abs")).unwrap();
    std::os::unix::fs::symlink("../no/such/target", root.join("etc/dangling")).unwrap();
    let fifo = root.join("fifo");
    let st = Command::new("mkfifo").arg(&fifo).status().unwrap();
    assert!(st.success());
    fs::write(root.join(name(b"with space")), b"1").unwrap();
    fs::write(root.join(name(b"new\nline")), b"2").unwrap();
    fs::write(root.join(name(b"bad\xffutf8 %")), b"3").unwrap();
    for dir in ["", "etc", "bin", "empty dir"] {
        fs::set_permissions(root.join(dir), fs::Permissions::from_mode(0o755)).unwrap();
    }
    for f in ["etc/passwd", "etc/empty", "a", "b"] {
        fs::set_permissions(root.join(f), fs::Permissions::from_mode(0o644)).unwrap();
    }
}

struct Sealed {
    _dir: tempfile::TempDir,
    root: PathBuf,
    manifest: PathBuf,
    store: PathBuf,
    digest: String,
}

fn seal_new_tree() -> Sealed {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("rootfs");
    fs::create_dir(&root).unwrap();
    build_tree(&root);
    let manifest = dir.path().join("manifest");
    let store = dir.path().join("trees");
    let r = verityctl(&[
        OsStr::new("seal"),
        root.as_os_str(),
        OsStr::new("--out"),
        manifest.as_os_str(),
        OsStr::new("--tree-store"),
        store.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("entries"), "summary: {}", r.stderr);
    let digest = r.stdout.trim_end().to_owned();
    assert!(
        digest.starts_with("sha256:") && digest.len() == 71 && r.stdout.lines().count() == 1,
        "{:?}",
        r.stdout
    );
    Sealed {
        _dir: dir,
        root,
        manifest,
        store,
        digest,
    }
}

fn host_path(root: &Path, manifest_path: &[u8]) -> PathBuf {
    root.join(name(&manifest_path[1..]))
}

#[test]
fn seal_records_every_entry_and_matches_fsverity() {
    let s = seal_new_tree();
    let bytes = fs::read(&s.manifest).unwrap();
    let m = Manifest::parse(&bytes).unwrap();
    assert_eq!(m.digest().to_string(), s.digest);
    let text = String::from_utf8(bytes).unwrap();
    for line in [
        "d 0755 ",
        " - - /empty%20dir\n",
        " /with%20space\n",
        " /new%0aline\n",
        " /bad%ffutf8%20%25\n",
        " 7 busybox /bin/sh\n",
        " 17 ../no/such/target /etc/dangling\n",
        " 11 /etc/passwd /abs\n",
        " - - /fifo\n",
        "f 4755 ",
        "f 0644 0 0 0 sha256:3d248ca542a24fc62d1c43b916eae5016878e2533c88238480b26128a1f1af95 /etc/empty\n",
    ] {
        assert!(text.contains(line), "{line:?} not in\n{text}");
    }
    assert!(m.get(b"/fifo").is_some_and(|e| e.kind == EntryKind::Fifo));
    let root_meta = fs::metadata(&s.root).unwrap();
    let root_entry = &m.entries()[0];
    assert_eq!(root_entry.path, b"/");
    assert_eq!(root_entry.mode, root_meta.permissions().mode() & 0o7777);
    assert_eq!(
        m.get(b"/etc/passwd").unwrap().digest(),
        m.get(b"/etc/passwd.link").unwrap().digest()
    );
    assert_eq!(m.get(b"/bin/su").unwrap().mode, 0o4755);
    assert_eq!(m.get(b"/bin/big").unwrap().size(), (17 << 20) + 3);

    let fsverity = fsverity();
    let files: Vec<_> = m
        .entries()
        .iter()
        .filter(|e| e.digest().is_some())
        .collect();
    assert_eq!(files.len(), 12);
    for e in files {
        let path = host_path(&s.root, &e.path);
        let want = e.digest().unwrap().to_string();
        let ours = verityctl(&[
            OsStr::new("digest"),
            OsStr::new("--compact"),
            path.as_os_str(),
        ]);
        assert_eq!(ours.code, 0, "{}", ours.stderr);
        assert_eq!(
            format!("sha256:{}", ours.stdout.trim_end()),
            want,
            "{path:?}"
        );
        // The tree store entry is the descriptor and tree fsverity writes.
        let blob = fs::read(s.store.join(store_relative_path(e.digest().unwrap()))).unwrap();
        let Some(fsverity) = &fsverity else { continue };
        let (desc, tree) = (s._dir.path().join("desc"), s._dir.path().join("tree"));
        let mut out_desc = OsString::from("--out-descriptor=");
        out_desc.push(&desc);
        let mut out_tree = OsString::from("--out-merkle-tree=");
        out_tree.push(&tree);
        let theirs = run_cmd(
            fsverity.as_os_str(),
            &[
                OsStr::new("digest"),
                OsStr::new("--compact"),
                &out_desc,
                &out_tree,
                path.as_os_str(),
            ],
        );
        assert_eq!(theirs.code, 0, "{}", theirs.stderr);
        assert_eq!(
            format!("sha256:{}", theirs.stdout.trim_end()),
            want,
            "{path:?}"
        );
        let mut expected = fs::read(&desc).unwrap();
        expected.extend(fs::read(&tree).unwrap());
        assert_eq!(blob, expected, "tree store entry of {path:?}");
    }
    // 11 distinct contents (the hard link shares one entry).
    assert_eq!(fs::read_dir(s.store.join("sha256")).unwrap().count(), 11);

    // Deterministic: sealing again gives the same bytes, also on one thread,
    // and an existing store is re-used.
    let again = s._dir.path().join("again");
    let r = verityctl(&[
        OsStr::new("seal"),
        s.root.as_os_str(),
        OsStr::new("--out"),
        again.as_os_str(),
        OsStr::new("--threads=1"),
        OsStr::new("--quiet"),
        OsStr::new("--tree-store"),
        s.store.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert_eq!(r.stderr, "");
    assert_eq!(r.stdout.trim_end(), s.digest);
    assert_eq!(fs::read(&again).unwrap(), fs::read(&s.manifest).unwrap());

    let r = verityctl(&[OsStr::new("manifest-digest"), s.manifest.as_os_str()]);
    assert_eq!((r.code, r.stdout.trim_end()), (0, s.digest.as_str()));
}

fn verify(s: &Sealed, extra: &[&OsStr]) -> Run {
    let mut args = vec![
        OsStr::new("verify-manifest"),
        s.root.as_os_str(),
        s.manifest.as_os_str(),
    ];
    args.extend_from_slice(extra);
    verityctl(&args)
}

#[test]
fn verify_manifest_reports_each_kind_of_change() {
    let s = seal_new_tree();
    let pin = format!("--manifest-digest={}", s.digest);
    let mut store = OsString::from("--tree-store=");
    store.push(&s.store);
    let r = verify(&s, &[OsStr::new(&pin), &store]);
    assert_eq!((r.code, r.stdout.as_str()), (0, ""), "{}", r.stderr);

    let root = s.root.clone();
    let p = |rel: &str| root.join(rel);
    let passwd_digest = {
        let m = Manifest::parse(&fs::read(&s.manifest).unwrap()).unwrap();
        m.get(b"/bin/five-mib")
            .unwrap()
            .digest()
            .unwrap()
            .to_string()
    };
    type Change<'a> = Box<dyn Fn() + 'a>;
    let cases: Vec<(&str, Change<'_>, Vec<String>)> = vec![
        (
            "modify a byte",
            Box::new(|| {
                let mut d = fs::read(p("bin/five-mib")).unwrap();
                d[3 << 20] ^= 1;
                fs::write(p("bin/five-mib"), d).unwrap();
            }),
            vec![format!(
                "changed /bin/five-mib: digest {passwd_digest} != sha256:"
            )],
        ),
        (
            "truncate",
            Box::new(|| {
                let f = fs::OpenOptions::new()
                    .write(true)
                    .open(p("etc/deep/er/still/f4097"))
                    .unwrap();
                f.set_len(4096).unwrap();
            }),
            vec!["size /etc/deep/er/still/f4097: 4097 != 4096".into()],
        ),
        (
            "add a file",
            Box::new(|| fs::write(p("etc/new"), b"x").unwrap()),
            vec!["added /etc/new".into()],
        ),
        (
            "remove a file",
            Box::new(|| fs::remove_file(p("etc/empty")).unwrap()),
            vec!["missing /etc/empty".into()],
        ),
        (
            "rename",
            Box::new(|| fs::rename(p("etc/passwd"), p("etc/passwd-")).unwrap()),
            vec!["missing /etc/passwd".into(), "added /etc/passwd-".into()],
        ),
        (
            "swap two files",
            Box::new(|| {
                fs::rename(p("a"), p("tmp")).unwrap();
                fs::rename(p("b"), p("a")).unwrap();
                fs::rename(p("tmp"), p("b")).unwrap();
            }),
            vec![
                "changed /a: digest sha256:".into(),
                "changed /b: digest sha256:".into(),
            ],
        ),
        (
            "replace a file by a symlink",
            Box::new(|| {
                fs::remove_file(p("with space")).unwrap();
                std::os::unix::fs::symlink("a", p("with space")).unwrap();
            }),
            vec!["type /with%20space: file != symlink".into()],
        ),
        (
            "change a symlink target",
            Box::new(|| {
                fs::remove_file(p("bin/sh")).unwrap();
                std::os::unix::fs::symlink("dash", p("bin/sh")).unwrap();
            }),
            vec!["target /bin/sh: busybox != dash".into()],
        ),
        (
            "chmod",
            Box::new(|| {
                fs::set_permissions(p("bin/su"), fs::Permissions::from_mode(0o755)).unwrap()
            }),
            vec!["mode /bin/su: 4755 != 0755".into()],
        ),
        (
            "replace a directory by a fifo",
            Box::new(|| {
                fs::remove_dir(p("empty dir")).unwrap();
                let st = Command::new("mkfifo").arg(p("empty dir")).status().unwrap();
                assert!(st.success());
            }),
            vec!["type /empty%20dir: directory != fifo".into()],
        ),
    ];
    for (what, change, expected) in cases {
        // Each change on a fresh copy of the tree (same bytes, same manifest).
        let _ = Command::new("rm").arg("-rf").arg(&root).status().unwrap();
        fs::create_dir(&root).unwrap();
        build_tree(&root);
        change();
        let r = verify(&s, &[OsStr::new(&pin)]);
        assert_eq!(r.code, 1, "{what}: {}{}", r.stdout, r.stderr);
        let lines: Vec<&str> = r.stdout.lines().collect();
        assert_eq!(lines.len(), expected.len(), "{what}: {}", r.stdout);
        for (line, want) in lines.iter().zip(&expected) {
            assert!(
                line.starts_with(want.as_str()),
                "{what}: {line:?} vs {want:?}"
            );
        }
        assert!(
            r.stderr
                .contains(&format!("{} difference(s)", expected.len())),
            "{what}: {}",
            r.stderr
        );
    }
}

#[test]
fn verify_manifest_checks_the_tree_store() {
    let s = seal_new_tree();
    let m = Manifest::parse(&fs::read(&s.manifest).unwrap()).unwrap();
    let big = m.get(b"/bin/big").unwrap().digest().unwrap();
    let entry = s.store.join(store_relative_path(big));
    let mut blob = fs::read(&entry).unwrap();
    let last = blob.len() - 1;
    blob[last] ^= 1;
    fs::write(&entry, &blob).unwrap();
    let empty = m.get(b"/etc/empty").unwrap().digest().unwrap();
    fs::remove_file(s.store.join(store_relative_path(empty))).unwrap();
    let mut store = OsString::from("--tree-store=");
    store.push(&s.store);
    let r = verify(&s, &[&store]);
    assert_eq!(r.code, 1, "{}", r.stderr);
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{}", r.stdout);
    assert!(lines[0].starts_with("store /bin/big: ") && lines[0].contains("does not match"));
    assert!(lines[1].starts_with("store /etc/empty: no tree store entry"));
    // Sealing again repairs the broken entry and recreates the missing one.
    let r = verityctl(&[
        OsStr::new("seal"),
        s.root.as_os_str(),
        OsStr::new("--out"),
        s.manifest.as_os_str(),
        &store,
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains("2 new tree store entries"),
        "{}",
        r.stderr
    );
    assert_eq!(verify(&s, &[&store]).code, 0);
}

fn fails_with(r: Run, code: i32, message: &str) {
    assert_eq!(r.code, code, "{}", r.stderr);
    assert!(
        r.stderr.contains(message),
        "expected {message:?} in {:?}",
        r.stderr
    );
}

#[test]
fn clear_errors_for_bad_input() {
    let s = seal_new_tree();
    let d = s._dir.path();
    let inside = s.root.join("manifest");
    fails_with(
        verityctl(&[
            OsStr::new("seal"),
            s.root.as_os_str(),
            OsStr::new("--out"),
            inside.as_os_str(),
        ]),
        2,
        "is inside ROOTFS",
    );
    let store_inside = s.root.join("etc/new/trees");
    fails_with(
        verityctl(&[
            OsStr::new("seal"),
            s.root.as_os_str(),
            OsStr::new("--out"),
            d.join("m2").as_os_str(),
            OsStr::new("--tree-store"),
            store_inside.as_os_str(),
        ]),
        2,
        "--tree-store",
    );
    assert!(!store_inside.exists(), "a refused --tree-store was created");
    let file = s.root.join("etc/passwd");
    fails_with(
        verityctl(&[
            OsStr::new("seal"),
            file.as_os_str(),
            OsStr::new("--out"),
            d.join("m3").as_os_str(),
        ]),
        2,
        "is not a directory",
    );
    fails_with(
        verityctl(&[
            OsStr::new("seal"),
            s.root.as_os_str(),
            OsStr::new("--out"),
            d.join("m4").as_os_str(),
            OsStr::new("--block-size=3000"),
        ]),
        2,
        "invalid block size 3000",
    );
    // An unreadable directory is named (only when not running as root).
    let locked = s.root.join("etc/deep");
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o000)).unwrap();
    if fs::read_dir(&locked).is_err() {
        fails_with(
            verityctl(&[
                OsStr::new("seal"),
                s.root.as_os_str(),
                OsStr::new("--out"),
                d.join("m5").as_os_str(),
            ]),
            1,
            &format!("cannot list directory '{}'", locked.display()),
        );
    }
    fs::set_permissions(&locked, fs::Permissions::from_mode(0o755)).unwrap();

    // verify-manifest: bad manifests and pins are exit 2, naming both digests.
    let zero = format!("sha256:{}", "0".repeat(64));
    let r = verify(&s, &[OsStr::new("--manifest-digest"), OsStr::new(&zero)]);
    fails_with(
        r,
        2,
        &format!(
            "has digest {}, but --manifest-digest expects {zero}",
            s.digest
        ),
    );
    fails_with(
        verify(&s, &[OsStr::new("--manifest-digest=sha256:xyz")]),
        2,
        "is not a digest",
    );
    let mut text = fs::read(&s.manifest).unwrap();
    text.push(b'\n');
    let bad = d.join("bad-manifest");
    fs::write(&bad, &text).unwrap();
    for args in [
        vec![
            OsStr::new("verify-manifest"),
            s.root.as_os_str(),
            bad.as_os_str(),
        ],
        vec![OsStr::new("manifest-digest"), bad.as_os_str()],
    ] {
        let code = if args[0] == "manifest-digest" { 1 } else { 2 };
        fails_with(verityctl(&args), code, "is not a valid manifest");
    }
    let missing = d.join("missing");
    let mut no_store = OsString::from("--tree-store=");
    no_store.push(&missing);
    fails_with(verify(&s, &[&no_store]), 2, "is not a directory");
    fails_with(
        verityctl(&[
            OsStr::new("verify-manifest"),
            s.root.as_os_str(),
            missing.as_os_str(),
        ]),
        2,
        "cannot read manifest",
    );
}

#[test]
fn mount_points_are_listed_but_not_entered() {
    use std::os::unix::fs::MetadataExt;
    // /dev/pts is its own filesystem on practically every Linux system.
    let (Ok(dev), Ok(pts)) = (fs::metadata("/dev"), fs::metadata("/dev/pts")) else {
        eprintln!("no /dev/pts: skipping");
        return;
    };
    if dev.dev() == pts.dev() {
        eprintln!("/dev/pts is not a mount point here: skipping");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let r = verityctl(&[
        OsStr::new("seal"),
        OsStr::new("/dev"),
        OsStr::new("--out"),
        out.as_os_str(),
    ]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(
        r.stderr.contains(
            "'/dev/pts' is a mount point (another filesystem): listed, but not its contents"
        ),
        "{}",
        r.stderr
    );
    let m = Manifest::parse(&fs::read(&out).unwrap()).unwrap();
    assert_eq!(
        m.get(b"/pts").map(|e| e.kind.clone()),
        Some(EntryKind::Directory)
    );
    assert_eq!(m.children(b"/pts").count(), 0);
}

#[test]
fn seal_objects_stores_each_content_once_by_digest() {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().join("root");
    fs::create_dir_all(root.join("d")).unwrap();
    let big = random_bytes(70_000, 5);
    fs::write(root.join("a"), &big).unwrap();
    fs::write(root.join("d/same"), &big).unwrap();
    fs::write(root.join("small"), b"small\n").unwrap();
    fs::write(root.join("empty"), b"").unwrap();
    let out = tmp.path().join("m");
    let objects = tmp.path().join("objects");
    let seal = |extra: &[&OsStr]| {
        let mut args: Vec<&OsStr> = vec![
            OsStr::new("seal"),
            root.as_os_str(),
            OsStr::new("--out"),
            out.as_os_str(),
        ];
        args.extend_from_slice(extra);
        verityctl(&args)
    };
    let r = seal(&[OsStr::new("--objects"), objects.as_os_str()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(r.stderr.contains("3 new objects"), "{}", r.stderr);
    let manifest = Manifest::parse(&fs::read(&out).unwrap()).unwrap();
    for e in manifest.entries() {
        if let Some(d) = e.digest() {
            let obj = objects.join(verity_manifest::object_relative_path(d));
            let want = fs::read(root.join(OsStr::from_bytes(&e.path[1..]))).unwrap();
            assert_eq!(fs::read(&obj).unwrap(), want, "{}", obj.display());
            assert_eq!(
                fs::metadata(&obj).unwrap().permissions().mode() & 0o777,
                0o444
            );
        }
    }
    // A second seal finds every object in place.
    let r = seal(&[OsStr::new("--objects"), objects.as_os_str()]);
    assert!(r.stderr.contains("0 new objects"), "{}", r.stderr);
    // Inside ROOTFS it is refused before anything is written.
    let inside = root.join("objects");
    let r = seal(&[OsStr::new("--objects"), inside.as_os_str()]);
    assert_ne!(r.code, 0);
    assert!(r.stderr.contains("--objects"), "{}", r.stderr);
    assert!(!inside.exists());
}
