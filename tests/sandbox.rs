// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The daemon with its default hardening (`--sandbox=namespace --seccomp=kill`), and with
//! `--sandbox=chroot`: the serving process is confined and unprivileged, and still serves.
//!
//! These tests need root (as CI runs them); otherwise they print a notice and pass.

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use common::daemon_binary;
use vhost_user_harness::fuse_wire::XattrReply;
use vhost_user_harness::{DaemonProcess, VirtioFsClient, ROOT_ID};

/// How long the supervising process gets to fork the serving one, and to exit.
const TIMEOUT: Duration = Duration::from_secs(10);
/// `CAP_DAC_READ_SEARCH`, the only capability kept.
const CAP_DAC_READ_SEARCH_MASK: u64 = 1 << 2;
/// An extended attribute on `hello` (read through /proc/self/fd inside the sandbox).
const XATTR_NAME: &str = "user.sandbox";
const XATTR_VALUE: &[u8] = b"visible";
/// A uid that owns nothing on the host.
const STRANGER: u32 = 54_321;

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| status_field(&s, "Uid:").map(|v| v.split_whitespace().nth(1) == Some("0")))
        .unwrap_or(false)
}

fn skip_unless_root(test: &str) -> bool {
    if is_root() {
        return false;
    }
    eprintln!("NOTICE: {test} skipped: the sandbox tests need root");
    true
}

fn status_field<'a>(status: &'a str, name: &str) -> Option<&'a str> {
    status
        .lines()
        .find_map(|l| l.strip_prefix(name))
        .map(str::trim)
}

/// A share with a world-readable file, a file nobody may read, and a private directory owned
/// by another user; and a file outside the share.
struct Tree {
    outer: tempfile::TempDir,
}

impl Tree {
    fn new() -> Tree {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("secret"), b"outside\n").unwrap();
        let share = outer.path().join("share");
        std::fs::create_dir_all(share.join("private_dir")).unwrap();
        std::fs::write(share.join("hello"), b"hello from the share\n").unwrap();
        xattr::set(share.join("hello"), XATTR_NAME, XATTR_VALUE).unwrap();
        std::fs::write(share.join("unreadable"), b"mode 000\n").unwrap();
        std::fs::write(share.join("private_dir/inner"), b"inner\n").unwrap();
        let set_mode = |p: PathBuf, mode: u32| {
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode)).unwrap();
            std::os::unix::fs::chown(&p, Some(STRANGER), Some(STRANGER)).unwrap();
        };
        set_mode(share.join("unreadable"), 0o000);
        set_mode(share.join("private_dir/inner"), 0o600);
        set_mode(share.join("private_dir"), 0o700);
        Tree { outer }
    }

    fn share(&self) -> PathBuf {
        self.outer.path().join("share")
    }

    fn spawn(&self, extra: &[&str]) -> DaemonProcess {
        let mut args = vec![format!("--shared-dir={}", self.share().display())];
        args.extend(extra.iter().map(|s| s.to_string()));
        DaemonProcess::spawn(daemon_binary(), args)
            .unwrap_or_else(|e| panic!("cannot start {}: {e}", daemon_binary().display()))
    }
}

/// The serving process: the supervising process's only child, once it has installed its
/// seccomp filter (the last step before it accepts a frontend).
fn serving_pid(daemon: &DaemonProcess) -> u32 {
    let supervisor = daemon.pid();
    let children = format!("/proc/{supervisor}/task/{supervisor}/children");
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let text = std::fs::read_to_string(&children).unwrap_or_default();
        if let Some(pid) = text.split_whitespace().next() {
            let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
            if status_field(&status, "Seccomp:") == Some("2") {
                return pid.parse().unwrap();
            }
        }
        assert!(
            Instant::now() < deadline,
            "no serving child of {supervisor} within {TIMEOUT:?}; stderr:\n{}",
            daemon.stderr()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn read_file(fs: &mut VirtioFsClient, path: &str) -> Vec<u8> {
    let entry = fs
        .lookup_path(path)
        .unwrap_or_else(|e| panic!("lookup {path}: {e}"));
    let fh = fs
        .open(entry.nodeid, libc::O_RDONLY)
        .unwrap_or_else(|e| panic!("open {path}: {e}"))
        .fh;
    let data = fs
        .read(entry.nodeid, fh, 0, 4096)
        .unwrap_or_else(|e| panic!("read {path}: {e}"));
    fs.release(entry.nodeid, fh).unwrap();
    data
}

fn assert_hardened(pid: u32) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name| status_field(&status, name).unwrap_or_else(|| panic!("no {name}"));
    assert_eq!(field("NoNewPrivs:"), "1", "{status}");
    assert_eq!(field("Seccomp:"), "2", "{status}");
    for set in ["CapEff:", "CapPrm:", "CapBnd:"] {
        let caps = u64::from_str_radix(field(set), 16).unwrap();
        assert_eq!(caps, CAP_DAC_READ_SEARCH_MASK, "{set} {status}");
    }
    for set in ["CapInh:", "CapAmb:"] {
        assert_eq!(u64::from_str_radix(field(set), 16).unwrap(), 0, "{set}");
    }
    assert_eq!(
        status_field(&status, "Groups:").unwrap_or(""),
        "",
        "{status}"
    );
}

/// Serves the tree: readable files, files only CAP_DAC_READ_SEARCH can read, and `..` at the
/// root staying at the root. Once a frontend is connected, the serving process (`pid`) must be
/// fully hardened.
fn assert_serves(daemon: &DaemonProcess, pid: u32, xattr: bool) {
    let mut fs = VirtioFsClient::connect_and_init(daemon.socket_path()).unwrap();
    assert_hardened(pid);
    assert_eq!(read_file(&mut fs, "hello"), b"hello from the share\n");
    if xattr {
        let hello = fs.lookup(ROOT_ID, "hello").unwrap().nodeid;
        assert_eq!(
            fs.getxattr(hello, XATTR_NAME, 64).unwrap(),
            XattrReply::Data(XATTR_VALUE.to_vec())
        );
    }
    assert_eq!(read_file(&mut fs, "unreadable"), b"mode 000\n");
    assert_eq!(read_file(&mut fs, "private_dir/inner"), b"inner\n");
    let up = fs.lookup(ROOT_ID, "..").unwrap();
    let root = fs.getattr(ROOT_ID).unwrap();
    assert_eq!(up.attr.ino, root.ino);
    assert!(fs.lookup(ROOT_ID, "secret").is_err());
    fs.disconnect();
}

fn assert_cleaned_up(daemon: &mut DaemonProcess) {
    let status = daemon.wait_exit(TIMEOUT).unwrap();
    assert!(status.success(), "{status:?}; stderr:\n{}", daemon.stderr());
    assert!(!daemon.socket_path().exists(), "socket left behind");
    assert!(!daemon.pid_file_path().exists(), "pid file left behind");
}

fn namespace_id(pid: &str, ns: &str) -> PathBuf {
    std::fs::read_link(format!("/proc/{pid}/ns/{ns}")).unwrap()
}

#[test]
fn default_sandbox_confines_drops_privileges_and_serves() {
    if skip_unless_root("default_sandbox_confines_drops_privileges_and_serves") {
        return;
    }
    let tree = Tree::new();
    let mut daemon = tree.spawn(&["--xattr"]);
    let pid = serving_pid(&daemon);
    let pid_text = pid.to_string();
    // Own PID, mount and network namespaces.
    for ns in ["pid", "mnt", "net"] {
        assert_ne!(
            namespace_id(&pid_text, ns),
            namespace_id("self", ns),
            "{ns}"
        );
    }
    // Its mount table holds only the tmpfs root, the share and /proc.
    let mounts = std::fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap();
    for line in mounts.lines() {
        let point = line.split(' ').nth(4).unwrap();
        assert!(
            point == "/" || point == "/proc" || point.starts_with("/proc/") || point == "/share",
            "unexpected mount {point:?} in\n{mounts}"
        );
    }
    let share_line = mounts
        .lines()
        .find(|l| l.split(' ').nth(4) == Some("/share"))
        .unwrap();
    let options = share_line.split(' ').nth(5).unwrap();
    assert!(options.split(',').any(|o| o == "ro"), "{share_line}");
    assert!(options.split(',').any(|o| o == "nosuid"), "{share_line}");
    assert_serves(&daemon, pid, true);
    // The frontend left: the child exits, the parent removes the socket and pid file.
    assert_cleaned_up(&mut daemon);
}

#[test]
fn sigterm_is_forwarded_and_files_are_removed() {
    if skip_unless_root("sigterm_is_forwarded_and_files_are_removed") {
        return;
    }
    let tree = Tree::new();
    let mut daemon = tree.spawn(&[]);
    let child = serving_pid(&daemon);
    let pid_file = std::fs::read_to_string(daemon.pid_file_path()).unwrap();
    assert_eq!(pid_file.trim(), daemon.pid().to_string());
    let killed = Command::new("kill")
        .args(["-TERM", &daemon.pid().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    assert_cleaned_up(&mut daemon);
    assert!(!Path::new(&format!("/proc/{child}")).exists());
}

#[test]
fn chroot_sandbox_serves_from_inside_the_share() {
    if skip_unless_root("chroot_sandbox_serves_from_inside_the_share") {
        return;
    }
    let tree = Tree::new();
    let mut daemon = tree.spawn(&["--sandbox=chroot"]);
    let pid = serving_pid(&daemon);
    let root = std::fs::read_link(format!("/proc/{pid}/root")).unwrap();
    assert_eq!(root, std::fs::canonicalize(tree.share()).unwrap());
    assert_serves(&daemon, pid, false);
    assert_cleaned_up(&mut daemon);
}

/// As an unprivileged user (via `setpriv`), the namespace sandbox adds a user namespace that
/// maps the user's own ids; the daemon serves and cleans up the same way.
#[test]
fn unprivileged_user_gets_a_user_namespace() {
    if skip_unless_root("unprivileged_user_gets_a_user_namespace") {
        return;
    }
    if Command::new("setpriv").arg("--version").output().is_err() {
        eprintln!("NOTICE: unprivileged_user_gets_a_user_namespace skipped: no setpriv");
        return;
    }
    let tree = Tree::new();
    let open_up = |p: &Path| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(0o777)).unwrap();
    };
    open_up(tree.outer.path());
    open_up(&tree.share());
    let socket = tree.outer.path().join("user.sock");
    let mut child = Command::new("setpriv")
        .args([
            &format!("--reuid={STRANGER}"),
            &format!("--regid={STRANGER}"),
            "--clear-groups",
        ])
        .arg(daemon_binary())
        .arg(format!("--shared-dir={}", tree.share().display()))
        .arg(format!("--socket-path={}", socket.display()))
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while !socket.exists() {
        if Instant::now() >= deadline || child.try_wait().unwrap().is_some() {
            let _ = child.kill();
            let _ = child.wait();
            // User namespaces may be disabled for unprivileged users on this host.
            eprintln!("NOTICE: unprivileged_user_gets_a_user_namespace skipped: no socket");
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Once INIT is answered, the serving child exists and is hardened.
    let mut fs = VirtioFsClient::connect_and_init(&socket).unwrap();
    let supervisor = child.id();
    let children = format!("/proc/{supervisor}/task/{supervisor}/children");
    let pid: u32 = std::fs::read_to_string(children)
        .unwrap()
        .split_whitespace()
        .next()
        .expect("a serving child")
        .parse()
        .unwrap();
    assert_eq!(read_file(&mut fs, "hello"), b"hello from the share\n");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    assert_eq!(status_field(&status, "NoNewPrivs:"), Some("1"));
    assert_eq!(status_field(&status, "Seccomp:"), Some("2"));
    assert_ne!(
        namespace_id(&pid.to_string(), "user"),
        namespace_id("self", "user")
    );
    fs.disconnect();
    let deadline = Instant::now() + TIMEOUT;
    let exit = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() >= deadline {
            let _ = child.kill();
            panic!("the unprivileged daemon did not exit within {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(exit.success(), "{exit:?}");
    assert!(!socket.exists());
}

/// A verified share in the default sandbox: the manifest and the tree store live outside the
/// share, so both must be opened before the daemon confines itself.
#[test]
fn default_sandbox_serves_a_verified_share_with_an_outside_tree_store() {
    if skip_unless_root("default_sandbox_serves_a_verified_share_with_an_outside_tree_store") {
        return;
    }
    let outer = tempfile::tempdir().unwrap();
    let share = outer.path().join("share");
    let store = outer.path().join("trees");
    std::fs::create_dir_all(&share).unwrap();
    std::fs::create_dir_all(&store).unwrap();
    let data = common::pseudo_random(3 * 4096 * 129 + 17, 7);
    std::fs::write(share.join("data"), &data).unwrap();
    let params = verity_merkle::MerkleParams::default();
    let manifest = common::seal::seal(&share, &params, Some(&store));
    let manifest_path = outer.path().join("manifest");
    std::fs::write(&manifest_path, manifest.to_bytes()).unwrap();
    let digest = common::seal::tree_of(&share.join("data"), &params).digest();
    // Remove the file's tree from memory's reach: a wrong block in the store must be caught,
    // which proves the store (not a tree rebuilt from the file) is what is being read.
    let entry = store.join(verity_manifest::store_relative_path(&digest));
    let mut blob = std::fs::read(&entry).unwrap();
    let last_leaf = blob.len() - 4096 + 5;
    blob[last_leaf] ^= 1;
    std::fs::write(&entry, &blob).unwrap();

    let args = [
        format!("--shared-dir={}", share.display()),
        format!("--manifest={}", manifest_path.display()),
        format!("--manifest-digest={}", manifest.digest()),
        format!("--tree-store={}", store.display()),
    ];
    let mut daemon = DaemonProcess::spawn(daemon_binary(), args).unwrap();
    let pid = serving_pid(&daemon);
    let mut fs = VirtioFsClient::connect_and_init(daemon.socket_path()).unwrap();
    assert_hardened(pid);
    let node = fs.lookup(ROOT_ID, "data").unwrap().nodeid;
    let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
    // The first block is covered by an intact leaf: served.
    assert_eq!(fs.read(node, fh, 0, 4096).unwrap(), data[..4096]);
    // The last leaf block of the stored tree was corrupted: its data blocks give EIO.
    let last = data.len() as u64 - 10;
    assert_eq!(
        common::errno_of(&fs.read(node, fh, last, 10)),
        Some(libc::EIO),
        "stderr:\n{}",
        daemon.stderr()
    );
    let m = fs.ioctl(node, fh, 0xC004_6686, 0, &[0; 68], 68).unwrap();
    assert_eq!(m.result, 0);
    assert_eq!(m.data, digest.measure_reply());
    fs.release(node, fh).unwrap();
    fs.disconnect();
    assert_cleaned_up(&mut daemon);
}
