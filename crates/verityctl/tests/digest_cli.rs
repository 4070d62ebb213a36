// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl digest` against the real `fsverity digest` (Debian package
//! `fsverity`), and its error messages.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{fsverity, random_bytes};

fn verityctl(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_verityctl"))
        .args(args)
        .output()
        .expect("run verityctl")
}

fn stdout(o: &Output) -> String {
    assert!(
        o.status.success(),
        "failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn write(dir: &Path, name: &str, data: &[u8]) -> String {
    let p = dir.join(name);
    std::fs::write(&p, data).unwrap();
    p.to_str().unwrap().to_owned()
}

#[test]
fn matches_fsverity_on_random_files() {
    let Some(fsverity) = fsverity() else { return };
    let dir = tempfile::tempdir().unwrap();
    let sizes = [
        0usize,
        1,
        4095,
        4096,
        4097,
        65537,
        1 << 20,
        (1 << 20) + 4097,
        5_000_001,
    ];
    let mut files = Vec::new();
    for (i, size) in sizes.iter().enumerate() {
        files.push(write(
            dir.path(),
            &format!("f{i}"),
            &random_bytes(*size, i as u64 + 7),
        ));
    }
    let variants: &[&[&str]] = &[
        &[],
        &["--hash-alg=sha512"],
        &["--block-size=1024"],
        &["--block-size=65536", "--salt=00112233"],
        &[
            "--hash-alg=sha512",
            "--block-size=2048",
            "--salt=ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100",
        ],
        &["--compact"],
        &["--for-builtin-sig"],
    ];
    for opts in variants {
        let mut args = vec!["digest"];
        args.extend(files.iter().map(String::as_str));
        args.extend_from_slice(opts);
        let theirs = Command::new(&fsverity).args(&args).output().unwrap();
        let ours = verityctl(&args);
        assert_eq!(stdout(&ours), stdout(&theirs), "options {opts:?}");
        // Single-threaded gives the same answer.
        args.push("--threads=1");
        assert_eq!(
            stdout(&verityctl(&args)),
            stdout(&theirs),
            "options {opts:?} on one thread"
        );
    }
}

#[test]
fn writes_the_same_tree_and_descriptor_as_fsverity() {
    let Some(fsverity) = fsverity() else { return };
    let dir = tempfile::tempdir().unwrap();
    let f = write(dir.path(), "data", &random_bytes(3_000_000, 3));
    for (tool, tag) in [
        (fsverity.to_str().unwrap(), "theirs"),
        (env!("CARGO_BIN_EXE_verityctl"), "ours"),
    ] {
        let tree = format!("--out-merkle-tree={}/{tag}.tree", dir.path().display());
        let desc = format!("--out-descriptor={}/{tag}.desc", dir.path().display());
        let o = Command::new(tool)
            .args(["digest", &f, "--block-size=1024", &tree, &desc])
            .output()
            .unwrap();
        stdout(&o);
    }
    for ext in ["tree", "desc"] {
        let a = std::fs::read(dir.path().join(format!("theirs.{ext}"))).unwrap();
        let b = std::fs::read(dir.path().join(format!("ours.{ext}"))).unwrap();
        assert!(!a.is_empty());
        assert_eq!(a, b, "{ext} differs");
    }
}

fn fails_with(args: &[&str], code: i32, message: &str) {
    let o = verityctl(args);
    let err = String::from_utf8_lossy(&o.stderr);
    assert_eq!(o.status.code(), Some(code), "args {args:?}: {err}");
    assert!(
        err.contains(message),
        "args {args:?}: expected {message:?} in {err:?}"
    );
}

#[test]
fn clear_errors_for_bad_input() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().to_str().unwrap().to_owned();
    let f = write(dir.path(), "f", b"hello");
    let missing = format!("{d}/missing");
    fails_with(
        &["digest", &missing],
        1,
        &format!("cannot open '{missing}' for reading"),
    );
    fails_with(&["digest", &missing], 1, "No such file or directory");
    fails_with(
        &["digest", &d],
        1,
        "is not a regular file (it is a directory)",
    );
    fails_with(&["digest", &f, "--salt=zz"], 2, "is not a valid hex string");
    fails_with(
        &["digest", &f, "--salt=001"],
        2,
        "is not a valid hex string",
    );
    fails_with(
        &["digest", &f, &format!("--salt={}", "00".repeat(33))],
        2,
        "salt is 33 bytes",
    );
    fails_with(
        &["digest", &f, "--block-size=3000"],
        2,
        "invalid block size 3000",
    );
    fails_with(
        &["digest", &f, "--block-size=512"],
        2,
        "invalid block size 512",
    );
    fails_with(
        &["digest", &f, "--hash-alg=sha1"],
        2,
        "unknown hash algorithm",
    );
    fails_with(
        &["digest", &f, &f, "--out-descriptor=x"],
        2,
        "take exactly one FILE",
    );
    fails_with(&["digest"], 2, "FILE");
    // A FIFO would block a naive reader; it is refused.
    let fifo = format!("{d}/fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());
    fails_with(&["digest", &fifo], 1, "it is a FIFO");
    // Unreadable file (only meaningful when not running with CAP_DAC_OVERRIDE).
    let unreadable = write(dir.path(), "unreadable", b"x");
    std::fs::set_permissions(
        &unreadable,
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .unwrap();
    if std::fs::File::open(&unreadable).is_err() {
        fails_with(&["digest", &unreadable], 1, "Permission denied");
    }
    // The first failing file stops the command, after earlier lines were printed.
    let o = verityctl(&["digest", &f, &missing]);
    assert_eq!(o.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("sha256:"));
}
