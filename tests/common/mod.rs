// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Fixtures shared by the daemon integration tests: the daemon binary, a
//! sample share with a running daemon, and a failure collector.

// Each test crate uses a different subset.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use vhost_user_harness::fuse_wire::encode_request;
use vhost_user_harness::{
    DaemonProcess, GuestAddress, HarnessConfig, Opcode, VirtioFsClient, ROOT_ID,
};

pub mod seal;
pub mod stress;

/// How long a daemon gets to answer after a hostile request.
pub const STILL_SERVING_TIMEOUT: Duration = Duration::from_secs(3);
/// Size of the large pseudo-random file (several MiB, not block aligned).
pub const BIG_FILE_SIZE: usize = 3 * 1024 * 1024 + 17;
/// One byte past a page.
pub const PAGE_PLUS_ONE: usize = 4097;

/// `$VERITYFSD_BIN` if set, else the `verityfsd` binary built with the tests.
pub fn daemon_binary() -> PathBuf {
    std::env::var_os("VERITYFSD_BIN")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_BIN_EXE_verityfsd")))
}

/// Deterministic pseudo-random bytes (xorshift64*).
pub fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Creates a FIFO on the host (test setup only).
#[allow(unsafe_code)]
pub fn mkfifo(path: &Path) {
    let c = CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: `c` is a NUL-terminated path that outlives the call; mkfifo
    // does not retain the pointer.
    let rc = unsafe { libc::mkfifo(c.as_ptr(), 0o644) };
    assert_eq!(rc, 0, "mkfifo: {}", std::io::Error::last_os_error());
}

/// A daemon serving `share` without sandbox and system-call filter (tests run unprivileged),
/// with `extra` arguments after those.
pub fn spawn_unconfined(share: &Path, extra: impl IntoIterator<Item = String>) -> DaemonProcess {
    let args = [
        format!("--shared-dir={}", share.display()),
        "--sandbox=none".into(),
        "--seccomp=none".into(),
    ]
    .into_iter()
    .chain(extra);
    DaemonProcess::spawn(daemon_binary(), args)
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", daemon_binary().display()))
}

/// A sample tree in `<tmp>/share` (with a `secret` file next to it, outside
/// the share) and a daemon serving it.
pub struct Share {
    /// Temporary directory holding `share/` and the outside `secret`.
    pub outer: tempfile::TempDir,
    /// The daemon serving `share/`.
    pub daemon: DaemonProcess,
}

impl Share {
    pub fn start() -> Share {
        Share::start_with(&[])
    }

    /// Like [`Share::start`], with extra daemon arguments.
    pub fn start_with(extra_args: &[&str]) -> Share {
        let outer = tempfile::tempdir().unwrap();
        std::fs::write(outer.path().join("secret"), b"outside the share\n").unwrap();
        let root = outer.path().join("share");
        std::fs::create_dir_all(root.join("a/b/c")).unwrap();
        std::fs::create_dir_all(root.join("a/empty_dir")).unwrap();
        std::fs::write(root.join("a/b/c/deep.txt"), b"deep\n").unwrap();
        std::fs::write(
            root.join("a/b/sibling.bin"),
            pseudo_random(PAGE_PLUS_ONE, 3),
        )
        .unwrap();
        std::fs::write(root.join("big.bin"), pseudo_random(BIG_FILE_SIZE, 1)).unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        std::fs::write(root.join("page_plus_one"), pseudo_random(PAGE_PLUS_ONE, 2)).unwrap();
        std::fs::hard_link(root.join("big.bin"), root.join("hard_big")).unwrap();
        std::os::unix::fs::symlink("a/b/c/deep.txt", root.join("link_in")).unwrap();
        std::os::unix::fs::symlink("/etc/passwd", root.join("link_passwd")).unwrap();
        std::os::unix::fs::symlink("../../x", root.join("link_up")).unwrap();
        std::os::unix::fs::symlink("/etc", root.join("link_etc")).unwrap();
        mkfifo(&root.join("fifo"));
        let daemon = spawn_unconfined(
            &root,
            ["--readonly".into(), "--cache=auto".into()]
                .into_iter()
                .chain(extra_args.iter().map(|a| a.to_string())),
        );
        Share { outer, daemon }
    }

    pub fn root(&self) -> PathBuf {
        self.outer.path().join("share")
    }

    pub fn client(&self) -> VirtioFsClient {
        VirtioFsClient::connect_and_init(self.daemon.socket_path()).unwrap()
    }

    /// A snapshot of the host tree: relative path -> (mode, size, mtime).
    pub fn snapshot(&self) -> BTreeMap<PathBuf, (u32, u64, i64)> {
        fn walk(base: &Path, dir: &Path, out: &mut BTreeMap<PathBuf, (u32, u64, i64)>) {
            for e in std::fs::read_dir(dir).unwrap() {
                let e = e.unwrap();
                let m = std::fs::symlink_metadata(e.path()).unwrap();
                let rel = e.path().strip_prefix(base).unwrap().to_path_buf();
                out.insert(rel, (m.mode(), m.size(), m.mtime()));
                if m.is_dir() {
                    walk(base, &e.path(), out);
                }
            }
        }
        let mut out = BTreeMap::new();
        walk(&self.root(), &self.root(), &mut out);
        out
    }
}

/// Collects every divergence of a scenario before failing, so one run
/// reports all of them.
#[derive(Default)]
pub struct Failures(Vec<String>);

impl Failures {
    pub fn check(&mut self, ok: bool, what: impl Into<String>) {
        if !ok {
            self.0.push(what.into());
        }
    }

    pub fn assert_none(self) {
        assert!(
            self.0.is_empty(),
            "{} failure(s):\n  {}",
            self.0.len(),
            self.0.join("\n  ")
        );
    }
}

/// The errno of a failed FUSE call, `None` on success or transport failure.
pub fn errno_of<T>(r: &Result<T, vhost_user_harness::FuseError>) -> Option<i32> {
    r.as_ref().err().and_then(|e| e.errno())
}

/// Whether the daemon still answers a GETATTR within a short timeout.
pub fn still_serving(fs: &mut VirtioFsClient) -> bool {
    fs.harness_mut().set_request_timeout(STILL_SERVING_TIMEOUT);
    let ok = fs
        .getattr(ROOT_ID)
        .is_ok_and(|a| a.mode & libc::S_IFMT == libc::S_IFDIR);
    fs.harness_mut()
        .set_request_timeout(HarnessConfig::default().request_timeout);
    ok
}

/// Records a failure if the daemon stopped serving, quoting its last log line.
pub fn check_still_serving(f: &mut Failures, fs: &mut VirtioFsClient, share: &Share, what: &str) {
    if !still_serving(fs) {
        let stderr = share.daemon.stderr();
        let last = stderr.lines().last().unwrap_or("").trim().to_string();
        f.check(
            false,
            format!("daemon stopped serving after: {what} (log: {last})"),
        );
    }
}

/// Writes a GETATTR of the root (with `unique`) and a 4 KiB reply buffer into guest memory,
/// for chains built by hand; returns (request, request length, reply).
pub fn getattr_buffers(
    mem: &mut vhost_user_harness::memory::GuestMemory,
    unique: u64,
) -> (GuestAddress, u32, GuestAddress) {
    let request = encode_request(Opcode::Getattr as u32, unique, ROOT_ID, &[0; 16]);
    let buf = mem.alloc(request.len() as u64, 8).unwrap();
    mem.write(buf, &request).unwrap();
    (buf, request.len() as u32, mem.alloc(4096, 8).unwrap())
}

/// A memory figure of process `pid` in KiB: the `field` line (`"VmRSS:"`, `"VmHWM:"`) of
/// `/proc/<pid>/status`.
pub fn status_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

/// The median of `v` (the lower middle value of an even count), for benchmark rounds.
pub fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[(v.len() - 1) / 2]
}
