// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Fixtures for the robustness and control-plane tests: a share whose files
//! can be changed under the daemon (optionally sealed), a load of READs left
//! in flight, and the check that a daemon exited cleanly.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use verity_merkle::MerkleParams;
use vhost_user_harness::virtqueue::QueueError;
use vhost_user_harness::{
    DaemonProcess, FuseError, HarnessConfig, HarnessError, PendingFuse, VirtioFsClient, ROOT_ID,
};
use vm_memory::Address;

use super::seal::seal;
use super::{pseudo_random, spawn_unconfined, Failures};

/// Size of the two files `x` and `y` (not block aligned).
pub const FILE_SIZE: usize = 256 * 1024 + 123;
/// Size of `d/f`, the file inside the directory that can be swapped for a symlink.
pub const INNER_SIZE: usize = 64 * 1024 + 5;
/// Size of `load.bin`, the file read while the daemon is stopped or its memory changes.
pub const LOAD_FILE_SIZE: usize = 8 * 1024 * 1024 + 7;
/// Bytes per READ of the in-flight load.
pub const LOAD_CHUNK: u32 = 128 * 1024;
/// READs published per request queue (1 and 2) by [`Load::publish`].
pub const LOAD_DEPTH: u64 = 48;
/// How long a daemon may take to exit once told to (a hang bound, not a speed target).
pub const EXIT_BOUND: Duration = Duration::from_secs(20);

/// The contents every test share is built from.
pub struct Contents {
    /// Sealed bytes of `x`.
    pub x: Vec<u8>,
    /// Sealed bytes of `y`.
    pub y: Vec<u8>,
    /// Sealed bytes of `d/f`.
    pub inner: Vec<u8>,
    /// Bytes of the files outside the share (`outside/f`, `outside/only_outside`).
    pub canary: Vec<u8>,
}

impl Contents {
    pub fn new() -> Contents {
        Contents {
            x: pseudo_random(FILE_SIZE, 11),
            y: pseudo_random(FILE_SIZE, 12),
            inner: pseudo_random(INNER_SIZE, 13),
            canary: pseudo_random(INNER_SIZE, 99),
        }
    }
}

/// `<tmp>/share` (x, y, d/f, load.bin), `<tmp>/outside` (f and only_outside,
/// the canary) and, for a verified share, `<tmp>/manifest`.
pub struct Fixture {
    outer: tempfile::TempDir,
    verified: bool,
}

impl Fixture {
    pub fn new(c: &Contents, verified: bool) -> Fixture {
        let outer = tempfile::tempdir().unwrap();
        let root = outer.path().join("share");
        std::fs::create_dir_all(root.join("d")).unwrap();
        std::fs::write(root.join("x"), &c.x).unwrap();
        std::fs::write(root.join("y"), &c.y).unwrap();
        std::fs::write(root.join("d/f"), &c.inner).unwrap();
        std::fs::write(root.join("load.bin"), pseudo_random(LOAD_FILE_SIZE, 14)).unwrap();
        let outside = outer.path().join("outside");
        std::fs::create_dir(&outside).unwrap();
        std::fs::write(outside.join("f"), &c.canary).unwrap();
        std::fs::write(outside.join("only_outside"), &c.canary).unwrap();
        if verified {
            let manifest = seal(&root, &MerkleParams::default(), None);
            std::fs::write(outer.path().join("manifest"), manifest.to_bytes()).unwrap();
        }
        Fixture { outer, verified }
    }

    pub fn root(&self) -> PathBuf {
        self.outer.path().join("share")
    }

    pub fn outside(&self) -> PathBuf {
        self.outer.path().join("outside")
    }

    pub fn start(&self, extra: &[&str]) -> DaemonProcess {
        let mut args = vec!["--cache=never".to_string()];
        if self.verified {
            let manifest = self.outer.path().join("manifest");
            args.push(format!("--manifest={}", manifest.display()));
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        spawn_unconfined(&self.root(), args)
    }
}

/// Checks that the daemon exits by itself with `code` within [`EXIT_BOUND`], removed its
/// socket and pid file and did not panic.
pub fn check_clean_exit(f: &mut Failures, daemon: &mut DaemonProcess, code: i32, what: &str) {
    let status = daemon.wait_exit(EXIT_BOUND).ok();
    let log = daemon.stderr();
    let last = log.lines().last().unwrap_or("").trim().to_string();
    match status {
        None => f.check(
            false,
            format!("{what}: daemon still running after {EXIT_BOUND:?}"),
        ),
        Some(s) => f.check(
            s.code() == Some(code),
            format!("{what}: exit status {s}, expected code {code} (log: {last})"),
        ),
    }
    f.check(
        !log.contains("panicked"),
        format!("{what}: the daemon panicked:\n{log}"),
    );
    f.check(
        !daemon.socket_path().exists(),
        format!("{what}: socket left behind"),
    );
    f.check(
        !daemon.pid_file_path().exists(),
        format!("{what}: pid file left behind"),
    );
}

/// A client with READs of `load.bin` published on two request queues and not collected.
pub struct Load {
    /// The client (for control-plane requests on its connection).
    pub fs: VirtioFsClient,
    node: u64,
    fh: u64,
    /// (offset, request) of every READ in flight.
    pending: Vec<(u64, PendingFuse)>,
    /// `used.idx` of queues 1 and 2 before the last [`Load::publish`].
    used_before: [u16; 2],
}

impl Load {
    /// Connects with two request queues, opens `load.bin` and publishes
    /// [`LOAD_DEPTH`] READs of [`LOAD_CHUNK`] bytes on each queue.
    pub fn start(daemon: &DaemonProcess) -> Load {
        let mut config = HarnessConfig::default();
        config.frontend.num_queues = 3;
        let mut fs = VirtioFsClient::connect_with(daemon.socket_path(), &config).unwrap();
        fs.init().unwrap();
        let node = fs.lookup(ROOT_ID, "load.bin").unwrap().nodeid;
        let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
        // One read collected first proves the queues work before the load.
        assert_eq!(fs.read(node, fh, 0, 16).unwrap().len(), 16);
        let mut load = Load {
            fs,
            node,
            fh,
            pending: Vec::new(),
            used_before: [0; 2],
        };
        load.publish();
        load
    }

    /// Publishes [`LOAD_DEPTH`] READs on each of request queues 1 and 2.
    pub fn publish(&mut self) {
        self.used_before = [self.used_idx(1), self.used_idx(2)];
        for i in 0..LOAD_DEPTH {
            for queue in [1u16, 2] {
                self.fs.set_request_queue(queue);
                let chunk = i * 2 + u64::from(queue);
                let off = chunk * u64::from(LOAD_CHUNK) % LOAD_FILE_SIZE as u64;
                let p = self
                    .fs
                    .submit_read(self.node, self.fh, off, LOAD_CHUNK)
                    .unwrap();
                self.pending.push((off, p));
            }
        }
    }

    /// `used.idx` of `queue` as the daemon last wrote it.
    fn used_idx(&mut self, queue: u16) -> u16 {
        let (q, mem) = self.fs.harness_mut().raw_queue(queue).unwrap();
        let used = q.ring_addresses().2;
        let idx = mem.read(used.unchecked_add(2), 2).unwrap();
        u16::from_le_bytes([idx[0], idx[1]])
    }

    /// How many READs of the last [`Load::publish`] the daemon has not answered yet.
    pub fn unanswered(&mut self) -> usize {
        let answered: usize = [1u16, 2]
            .into_iter()
            .zip(self.used_before)
            .map(|(q, before)| usize::from(self.used_idx(q).wrapping_sub(before)))
            .sum();
        (2 * LOAD_DEPTH as usize).saturating_sub(answered)
    }

    /// Collects every READ in flight by `deadline`: (replies that match `data`,
    /// replies that do not, requests with no reply).
    pub fn collect(&mut self, data: &[u8], deadline: Instant) -> (usize, usize, usize) {
        let (mut good, mut bad, mut lost) = (0, 0, 0);
        for (off, p) in std::mem::take(&mut self.pending) {
            let left = deadline.saturating_duration_since(Instant::now());
            let h = self.fs.harness_mut();
            h.set_request_timeout(left.max(Duration::from_millis(1)));
            match self.fs.wait_read(p, LOAD_CHUNK) {
                Ok(bytes) => {
                    let off = off as usize;
                    let end = (off + LOAD_CHUNK as usize).min(data.len());
                    if bytes == data[off..end] {
                        good += 1;
                    } else {
                        bad += 1;
                    }
                }
                Err(FuseError::Transport(HarnessError::Queue(QueueError::Timeout { .. }))) => {
                    lost += 1
                }
                Err(_) => bad += 1,
            }
        }
        let default = HarnessConfig::default().request_timeout;
        self.fs.harness_mut().set_request_timeout(default);
        (good, bad, lost)
    }
}
