// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! `verityctl mount` end to end over a real FUSE mount: SOURCE plays the
//! untrusted virtio-fs mount of a guest, and is tampered with after sealing
//! exactly as a malicious host would serve it. Needs /dev/fuse and root;
//! skipped with a notice otherwise.

mod common;

use std::ffi::OsStr;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

use verity_manifest::{Entry, Manifest};
use verity_merkle::FileDigest;

use common::random_bytes;

const TIMEOUT: Duration = Duration::from_secs(30);
const BLOCK: usize = 4096;

fn verityctl() -> Command {
    Command::new(env!("CARGO_BIN_EXE_verityctl"))
}

/// Whether a FUSE mount is possible here; prints why not.
fn can_mount() -> bool {
    // /proc/self belongs to the effective user.
    let root = std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0);
    let fuse = Path::new("/dev/fuse").exists();
    if !(root && fuse) {
        eprintln!("skipping: a FUSE mount needs /dev/fuse (present: {fuse}) and root ({root})");
    }
    root && fuse
}

/// Seals the tree at `root` with `verityctl seal` (default parameters); each
/// file's tree goes to `store` if given. The manifest is written next to `root`.
fn seal(root: &Path, store: Option<&Path>) -> Manifest {
    let out = root.with_extension("manifest");
    let mut cmd = verityctl();
    cmd.arg("seal")
        .arg(root)
        .arg("--out")
        .arg(&out)
        .arg("--quiet");
    if let Some(store) = store {
        cmd.arg("--tree-store").arg(store);
    }
    let o = cmd.output().expect("run verityctl seal");
    assert!(
        o.status.success(),
        "verityctl seal: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let manifest = Manifest::parse(&std::fs::read(&out).unwrap()).expect("valid manifest");
    assert_eq!(
        String::from_utf8_lossy(&o.stdout).trim(),
        manifest.digest().to_string()
    );
    manifest
}

fn file_digest(m: &Manifest, path: &str) -> FileDigest {
    *m.get(path.as_bytes())
        .and_then(Entry::digest)
        .unwrap_or_else(|| panic!("{path} is not a file in the manifest"))
}

/// Linux 6.10 and later forward FS_IOC_MEASURE_VERITY over FUSE.
fn kernel_forwards_measure() -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let mut parts = release.split(|c: char| !c.is_ascii_digit());
    let major: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    let minor: u32 = parts.next().and_then(|p| p.parse().ok()).unwrap_or(0);
    (major, minor) >= (6, 10)
}

fn is_mounted(target: &Path) -> bool {
    let t = target.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some(t))
}

fn wait_until(what: &str, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < TIMEOUT, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn wait_exit(child: &mut Child) -> Option<ExitStatus> {
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        if start.elapsed() > TIMEOUT {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Starts `verityctl mount ARGS --ready-file TARGET.ready SOURCE TARGET` and waits until TARGET
/// is mounted; returns the child and TARGET's canonical path.
fn spawn_mount(args: &[&OsStr], source: &Path, target: &Path) -> (Child, PathBuf) {
    let ready = target.with_extension("ready");
    let mut child = verityctl()
        .arg("mount")
        .args(args)
        .arg("--ready-file")
        .arg(&ready)
        .arg(source)
        .arg(target)
        .stdin(Stdio::null())
        .spawn()
        .unwrap();
    let t = target.canonicalize().unwrap();
    wait_until("the mount", || {
        if let Ok(Some(status)) = child.try_wait() {
            panic!("verityctl mount exited early: {status}");
        }
        ready.exists() && is_mounted(&t)
    });
    (child, t)
}

/// Unmounts TARGET from outside and returns verityctl's exit status (bounded).
fn end_mount(mut child: Child, t: &Path) -> Option<ExitStatus> {
    let _ = Command::new("umount").arg(t).status();
    wait_exit(&mut child)
}

/// A running `verityctl mount`; dropping it always unmounts and reaps it,
/// even when a test assertion failed.
struct Mounted {
    child: Child,
    target: PathBuf,
    _raw: RawSource,
}

/// `dir` bind-mounted read-only, nosuid, nodev, noexec at `<dir>.raw`, as a guest mounts the
/// raw share for `verityctl mount`; changes made through `dir` show there. Unmounted on drop.
struct RawSource(PathBuf);

impl RawSource {
    fn new(dir: &Path) -> Self {
        let raw = dir.with_extension("raw");
        std::fs::create_dir_all(&raw).unwrap();
        let run = |args: &[&str]| {
            let st = Command::new("mount").args(args).status().unwrap();
            assert!(st.success(), "mount {args:?}");
        };
        let (d, r) = (dir.to_str().unwrap(), raw.to_str().unwrap().to_owned());
        run(&["--bind", d, &r]);
        let raw = RawSource(raw);
        run(&["-o", "remount,bind,ro,nosuid,nodev,noexec", &r]);
        raw
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for RawSource {
    fn drop(&mut self) {
        if is_mounted(&self.0) {
            let _ = Command::new("umount").arg("-l").arg(&self.0).status();
        }
    }
}

impl Mounted {
    fn start(
        manifest: &Path,
        pin: &FileDigest,
        store: Option<&Path>,
        source: &Path,
        target: &Path,
    ) -> Self {
        let ready = target.with_extension("ready");
        let mut cmd = verityctl();
        cmd.arg("mount")
            .arg("--manifest")
            .arg(manifest)
            .arg("--manifest-digest")
            .arg(pin.to_string())
            .arg("--threads=2")
            .arg("--ready-file")
            .arg(&ready);
        if let Some(store) = store {
            cmd.arg("--tree-store").arg(store);
        }
        let raw = RawSource::new(source);
        let child = cmd
            .arg(raw.path())
            .arg(target)
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn verityctl mount");
        let mut m = Mounted {
            child,
            target: target.canonicalize().unwrap(),
            _raw: raw,
        };
        wait_until("the mount", || {
            if let Some(status) = m.child.try_wait().unwrap() {
                panic!("verityctl mount exited early: {status}");
            }
            ready.exists() && is_mounted(&m.target)
        });
        m
    }

    /// Sends `sig` and returns the exit status (bounded).
    fn signal(&mut self, sig: &str) -> ExitStatus {
        let sent = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(sent.success());
        wait_exit(&mut self.child).expect("verityctl mount did not exit after the signal")
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if is_mounted(&self.target) {
            let _ = Command::new("umount").arg("-l").arg(&self.target).status();
        }
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = wait_exit(&mut self.child);
        }
    }
}

/// A temporary directory with an empty `src/` (the tree to seal) and `target/` (where it is
/// mounted).
fn dirs() -> (tempfile::TempDir, PathBuf, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let (src, target) = (tmp.path().join("src"), tmp.path().join("target"));
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&target).unwrap();
    (tmp, src, target)
}

/// Writes `manifest` to `<tmp>/manifest` and returns that path.
fn write_manifest(tmp: &tempfile::TempDir, manifest: &Manifest) -> PathBuf {
    let path = tmp.path().join("manifest");
    std::fs::write(&path, manifest.to_bytes()).unwrap();
    path
}

fn errno(r: io::Result<impl Sized>) -> Option<i32> {
    r.err().and_then(|e| e.raw_os_error())
}

fn measure(path: &Path) -> Output {
    verityctl()
        .arg("measure")
        .arg("--json")
        .arg(path)
        .output()
        .unwrap()
}

#[test]
fn verified_mount_serves_the_manifest_and_refuses_a_malicious_source() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let store = tmp.path().join("store");
    let target = tmp.path().join("target");
    for d in [&src, &store, &target] {
        std::fs::create_dir(d).unwrap();
    }
    std::fs::create_dir(src.join("dir")).unwrap();
    let big = random_bytes(16 * BLOCK, 1);
    let files: Vec<(&str, Vec<u8>)> = vec![
        ("a.txt", b"hello, verified world\n".to_vec()),
        ("empty", Vec::new()),
        ("dir/big.bin", big.clone()),
        ("dir/odd.bin", random_bytes(3 * BLOCK + 17, 2)),
        ("tampered.bin", big.clone()),
        ("swap1", random_bytes(2 * BLOCK, 3)),
        ("swap2", random_bytes(2 * BLOCK, 4)),
        ("becomes-link", b"a regular file\n".to_vec()),
    ];
    for (name, data) in &files {
        std::fs::write(src.join(name), data).unwrap();
    }
    std::os::unix::fs::symlink("a.txt", src.join("link")).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("retargeted")).unwrap();

    let manifest = seal(&src, Some(&store));
    let manifest_path = write_manifest(&tmp, &manifest);

    // The malicious host: change SOURCE after sealing.
    let mut flipped = big.clone();
    flipped[9 * BLOCK + 100] ^= 0x40;
    std::fs::write(src.join("tampered.bin"), &flipped).unwrap();
    std::fs::rename(src.join("swap1"), src.join("swap.tmp")).unwrap();
    std::fs::rename(src.join("swap2"), src.join("swap1")).unwrap();
    std::fs::rename(src.join("swap.tmp"), src.join("swap2")).unwrap();
    std::fs::write(src.join("added.txt"), b"not in the manifest").unwrap();
    std::fs::remove_file(src.join("becomes-link")).unwrap();
    std::os::unix::fs::symlink("a.txt", src.join("becomes-link")).unwrap();
    std::fs::remove_file(src.join("retargeted")).unwrap();
    std::os::unix::fs::symlink("b.txt", src.join("retargeted")).unwrap();
    let forged = format!("sha256:{}", "ab".repeat(32));
    xattr::set(src.join("a.txt"), "user.verity.digest", forged.as_bytes()).unwrap();

    let mut m = Mounted::start(
        &manifest_path,
        manifest.digest(),
        Some(&store),
        &src,
        &target,
    );
    let t = m.target.clone();

    // Intact files read back identical; digests come from the manifest.
    for name in ["a.txt", "empty", "dir/big.bin", "dir/odd.bin"] {
        let expected = &files.iter().find(|(n, _)| *n == name).unwrap().1;
        assert_eq!(&std::fs::read(t.join(name)).unwrap(), expected, "{name}");
        let want = file_digest(&manifest, &format!("/{name}"));
        let x = xattr::get(t.join(name), "user.verity.digest")
            .unwrap()
            .unwrap();
        assert_eq!(
            String::from_utf8(x).unwrap(),
            want.to_string(),
            "{name} xattr"
        );
        let out = measure(&t.join(name));
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        assert_eq!(v[0]["digest"], want.to_string(), "{name} measure");
        if kernel_forwards_measure() {
            assert_eq!(v[0]["source"], "ioctl", "{name}");
        }
    }
    let root = xattr::get(&t, "user.verity.manifest_digest")
        .unwrap()
        .unwrap();
    assert_eq!(
        String::from_utf8(root).unwrap(),
        manifest.digest().to_string()
    );
    // The forged host xattr is not what TARGET reports.
    let a = xattr::get(t.join("a.txt"), "user.verity.digest")
        .unwrap()
        .unwrap();
    assert_ne!(a, forged.as_bytes());
    assert_eq!(
        std::fs::read_link(t.join("link")).unwrap(),
        Path::new("a.txt")
    );
    assert!(
        std::fs::metadata(t.join("a.txt"))
            .unwrap()
            .permissions()
            .readonly()
            || {
                // Root ignores permission bits: check the mount refuses writes instead.
                errno(
                    std::fs::OpenOptions::new()
                        .append(true)
                        .open(t.join("a.txt")),
                ) == Some(libc::EROFS)
            }
    );

    // A flipped byte: EIO for that block, the other blocks are served.
    let f = File::open(t.join("tampered.bin")).unwrap();
    let mut buf = vec![0u8; BLOCK];
    f.read_exact_at(&mut buf, 0).unwrap();
    assert_eq!(buf, big[..BLOCK]);
    assert_eq!(
        errno(f.read_exact_at(&mut buf, 9 * BLOCK as u64)),
        Some(libc::EIO)
    );
    f.read_exact_at(&mut buf, 15 * BLOCK as u64).unwrap();
    assert_eq!(buf, big[15 * BLOCK..]);
    assert_eq!(
        errno(std::fs::read(t.join("tampered.bin"))),
        Some(libc::EIO)
    );
    // Swapped files: EIO.
    for name in ["swap1", "swap2"] {
        let r = File::open(t.join(name)).and_then(|mut f| f.read_to_end(&mut Vec::new()));
        assert_eq!(errno(r), Some(libc::EIO), "{name}");
    }
    // An added file does not exist and is not listed.
    assert_eq!(
        errno(std::fs::metadata(t.join("added.txt"))),
        Some(libc::ENOENT)
    );
    let names: Vec<_> = std::fs::read_dir(&t)
        .unwrap()
        .map(|e| e.unwrap().file_name().into_string().unwrap())
        .collect();
    assert!(!names.contains(&"added.txt".to_owned()), "{names:?}");
    assert!(names.contains(&"a.txt".to_owned()), "{names:?}");
    // A file replaced by a symlink: still the manifest's regular file, whose content is EIO.
    let st = std::fs::symlink_metadata(t.join("becomes-link")).unwrap();
    assert!(st.file_type().is_file(), "{st:?}");
    assert_eq!(
        errno(std::fs::read(t.join("becomes-link"))),
        Some(libc::EIO)
    );
    // A symlink with another target of the same length: the manifest's target.
    assert_eq!(
        std::fs::read_link(t.join("retargeted")).unwrap(),
        Path::new("a.txt")
    );

    // SIGTERM: exit 0, TARGET unmounted.
    let status = m.signal("TERM");
    assert!(status.success(), "{status}");
    assert!(!is_mounted(&t));
}

#[test]
fn without_a_tree_store_a_changed_file_is_eio_and_umount_ends_the_mount() {
    if !can_mount() {
        return;
    }
    let (tmp, src, target) = dirs();
    let data = random_bytes(5 * BLOCK + 1, 9);
    std::fs::write(src.join("good"), &data).unwrap();
    std::fs::write(src.join("bad"), &data).unwrap();
    let manifest = seal(&src, None);
    let manifest_path = write_manifest(&tmp, &manifest);
    let mut changed = data.clone();
    changed[2 * BLOCK] ^= 1;
    std::fs::write(src.join("bad"), &changed).unwrap();

    let mut m = Mounted::start(&manifest_path, manifest.digest(), None, &src, &target);
    let t = m.target.clone();
    assert_eq!(std::fs::read(t.join("good")).unwrap(), data);
    assert_eq!(errno(std::fs::read(t.join("bad"))), Some(libc::EIO));

    // An external unmount ends verityctl with success.
    let st = Command::new("umount").arg(&t).status().unwrap();
    assert!(st.success());
    let status = wait_exit(&mut m.child).expect("verityctl mount did not exit after umount");
    assert!(status.success(), "{status}");
}

#[test]
fn sigint_unmounts_even_with_an_open_file() {
    if !can_mount() {
        return;
    }
    let (tmp, src, target) = dirs();
    std::fs::write(src.join("f"), b"data").unwrap();
    let manifest = seal(&src, None);
    let manifest_path = write_manifest(&tmp, &manifest);
    let mut m = Mounted::start(&manifest_path, manifest.digest(), None, &src, &target);
    let mut open = File::open(m.target.join("f")).unwrap();
    let status = m.signal("INT");
    assert!(status.success(), "{status}");
    assert!(!is_mounted(&m.target));
    // The server is gone: the file that was still open is cut off, not served by anyone else.
    assert_eq!(
        errno(open.read_to_end(&mut Vec::new())),
        Some(libc::ENOTCONN)
    );
}

#[test]
fn a_manifest_that_is_not_the_pinned_one_is_refused_with_exit_2() {
    let (tmp, src, target) = dirs();
    std::fs::write(src.join("f"), b"data").unwrap();
    let manifest = seal(&src, None);
    let manifest_path = write_manifest(&tmp, &manifest);
    let wrong = format!("sha256:{}", "0".repeat(64));
    let out = verityctl()
        .arg("mount")
        .arg("--manifest")
        .arg(&manifest_path)
        .arg("--manifest-digest")
        .arg(&wrong)
        .arg(&src)
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&wrong), "{err}");
    assert!(err.contains(&manifest.digest().to_string()), "{err}");
    assert!(!is_mounted(&target.canonicalize().unwrap()));

    // A malformed pin is a usage error too, named as such.
    let out = verityctl()
        .args(["mount", "--manifest"])
        .arg(&manifest_path)
        .args(["--manifest-digest", "sha256:beef"])
        .arg(&src)
        .arg(&target)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("is not a manifest digest"));
}

#[test]
fn a_source_root_that_differs_from_the_manifest_is_mounted_as_sealed() {
    if !can_mount() {
        return;
    }
    let (tmp, src, target) = dirs();
    std::fs::write(src.join("f"), b"data").unwrap();
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o755)).unwrap();
    let manifest = seal(&src, None);
    let manifest_path = write_manifest(&tmp, &manifest);
    std::fs::set_permissions(&src, std::fs::Permissions::from_mode(0o700)).unwrap();
    let m = Mounted::start(&manifest_path, manifest.digest(), None, &src, &target);
    // The root's mode is the manifest's, not the host's.
    let mode = std::fs::metadata(&m.target).unwrap().permissions().mode();
    assert_eq!(mode & 0o7777, 0o755);
    assert_eq!(std::fs::read(m.target.join("f")).unwrap(), b"data");
}

#[test]
fn an_unsafe_source_or_a_target_inside_it_is_refused_and_detach_hides_the_source() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let target = tmp.path().join("target");
    std::fs::create_dir_all(src.join("sub")).unwrap();
    std::fs::create_dir(&target).unwrap();
    std::fs::write(src.join("f"), b"data").unwrap();
    let manifest = seal(&src, None);
    let manifest_path = write_manifest(&tmp, &manifest);
    let mount = |source: &Path, target: &Path, extra: &[&str]| {
        verityctl()
            .arg("mount")
            .arg("--manifest")
            .arg(&manifest_path)
            .arg("--manifest-digest")
            .arg(manifest.digest().to_string())
            .args(extra)
            .arg(source)
            .arg(target)
            .stdin(Stdio::null())
            .output()
            .unwrap()
    };
    // A writable, suid, dev, exec source: refused, with the fix named.
    let out = mount(&src, &target, &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("without ro,nosuid,nodev,noexec"), "{err}");
    assert!(!is_mounted(&target.canonicalize().unwrap()));
    // A target inside the source: refused.
    let raw = RawSource::new(&src);
    let out = mount(raw.path(), &raw.path().join("sub"), &[]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(err.contains("is inside SOURCE"), "{err}");
    // --detach-source: the raw mount is gone by path, the verified tree still reads.
    let pin = manifest.digest().to_string();
    let (child, t) = spawn_mount(
        &[
            OsStr::new("--manifest"),
            manifest_path.as_os_str(),
            OsStr::new("--manifest-digest"),
            OsStr::new(&pin),
            OsStr::new("--detach-source"),
        ],
        raw.path(),
        &target,
    );
    let detached = !is_mounted(raw.path());
    let read = std::fs::read(t.join("f"));
    let status = end_mount(child, &t);
    assert!(detached, "SOURCE is still mounted");
    assert_eq!(read.unwrap(), b"data");
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn with_only_the_pin_the_manifest_and_trees_come_from_the_share() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let target = tmp.path().join("target");
    let store = tmp.path().join("store");
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&target).unwrap();
    let data = random_bytes(8 * BLOCK, 21);
    std::fs::write(src.join("f"), &data).unwrap();
    let manifest = seal(&src, Some(&store));
    // What a verified share serves under .verityfsd (here: files the host placed).
    let meta = src.join(".verityfsd");
    std::fs::create_dir(&meta).unwrap();
    std::fs::write(meta.join("manifest"), manifest.to_bytes()).unwrap();
    let copied = Command::new("cp")
        .arg("-a")
        .arg(&store)
        .arg(meta.join("trees"))
        .status()
        .unwrap();
    assert!(copied.success());
    // One flipped byte in block 5: with the served trees, only that block fails.
    let mut changed = data.clone();
    changed[5 * BLOCK + 3] ^= 1;
    std::fs::write(src.join("f"), &changed).unwrap();
    let raw = RawSource::new(&src);
    let pin = manifest.digest().to_string();
    let (child, t) = spawn_mount(
        &[OsStr::new("--manifest-digest"), OsStr::new(&pin)],
        raw.path(),
        &target,
    );
    let file = File::open(t.join("f")).unwrap();
    let mut buf = vec![0u8; BLOCK];
    let first = file.read_exact_at(&mut buf, 0).map(|()| buf.clone());
    let bad = errno(file.read_exact_at(&mut buf, 5 * BLOCK as u64));
    let names: Vec<_> = std::fs::read_dir(&t)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    drop(file);
    let status = end_mount(child, &t);
    assert_eq!(first.unwrap(), data[..BLOCK]);
    assert_eq!(bad, Some(libc::EIO));
    // The host's .verityfsd is not in the sealed tree: not listed at TARGET.
    assert_eq!(names, ["f"]);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
}

#[test]
fn objects_serve_the_content_by_digest() {
    if !can_mount() {
        return;
    }
    let tmp = tempfile::tempdir().unwrap();
    let src = tmp.path().join("src");
    let target = tmp.path().join("target");
    let objects = tmp.path().join("objects");
    std::fs::create_dir(&src).unwrap();
    std::fs::create_dir(&target).unwrap();
    let data = random_bytes(3 * BLOCK + 5, 33);
    std::fs::write(src.join("f"), &data).unwrap();
    let out = verityctl()
        .arg("seal")
        .arg(&src)
        .arg("--out")
        .arg(tmp.path().join("manifest"))
        .arg("--objects")
        .arg(&objects)
        .arg("--quiet")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let manifest = Manifest::parse(&std::fs::read(tmp.path().join("manifest")).unwrap()).unwrap();
    // The source directory no longer has the file: only the object store does.
    std::fs::remove_file(src.join("f")).unwrap();
    let raw = RawSource::new(&src);
    let pin = manifest.digest().to_string();
    let manifest_path = tmp.path().join("manifest");
    let (child, t) = spawn_mount(
        &[
            OsStr::new("--manifest"),
            manifest_path.as_os_str(),
            OsStr::new("--manifest-digest"),
            OsStr::new(&pin),
            OsStr::new("--objects"),
            objects.as_os_str(),
        ],
        raw.path(),
        &target,
    );
    let ready = target.with_extension("ready");
    // Confined while it serves host data: seccomp filter, no-new-privs, one capability.
    let status_file = std::fs::read_to_string(format!("/proc/{}/status", child.id())).unwrap();
    let field = |name: &str| {
        status_file
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or("")
            .to_owned()
    };
    let confined = (field("Seccomp:"), field("NoNewPrivs:"), field("CapEff:"));
    let got = std::fs::read(t.join("f"));
    let status = end_mount(child, &t);
    assert_eq!(got.unwrap(), data);
    assert!(status.is_some_and(|s| s.success()), "{status:?}");
    // CAP_DAC_READ_SEARCH is bit 2.
    assert_eq!(
        confined,
        ("2".into(), "1".into(), "0000000000000004".into())
    );
    assert!(!ready.exists(), "the ready file is removed at exit");
}

/// The per-mount options of the mount at `target` (mountinfo field 6).
fn mount_options(target: &Path) -> String {
    let t = target.to_str().unwrap();
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .rev()
        .find(|l| l.split(' ').nth(4) == Some(t))
        .and_then(|l| l.split(' ').nth(5).map(str::to_owned))
        .unwrap_or_default()
}

#[test]
fn target_is_nosuid_unless_allow_setuid() {
    if !can_mount() {
        return;
    }
    let (tmp, src, target) = dirs();
    std::fs::write(src.join("tool"), b"#!/bin/sh\n").unwrap();
    std::fs::set_permissions(src.join("tool"), std::fs::Permissions::from_mode(0o4755)).unwrap();
    let manifest = seal(&src, None);
    let manifest_path = write_manifest(&tmp, &manifest);
    let raw = RawSource::new(&src);
    let pin = manifest.digest().to_string();
    for (extra, nosuid) in [(None, true), (Some("--allow-setuid"), false)] {
        let mut args = vec![
            OsStr::new("--manifest"),
            manifest_path.as_os_str(),
            OsStr::new("--manifest-digest"),
            OsStr::new(&pin),
        ];
        args.extend(extra.map(OsStr::new));
        let (child, t) = spawn_mount(&args, raw.path(), &target);
        let opts = mount_options(&t);
        let mode = std::fs::metadata(t.join("tool"))
            .unwrap()
            .permissions()
            .mode();
        let status = end_mount(child, &t);
        assert_eq!(
            opts.split(',').any(|o| o == "nosuid"),
            nosuid,
            "{extra:?}: {opts}"
        );
        assert!(
            opts.split(',').any(|o| o == "nodev") && opts.starts_with("ro"),
            "{opts}"
        );
        assert_eq!(mode & 0o7777, 0o4755);
        assert!(status.is_some_and(|s| s.success()), "{status:?}");
    }
}
