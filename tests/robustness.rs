// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Robustness of the daemon process, driven through `vhost-user-harness`:
//!
//! - the frontend hanging up, or SIGTERM, while many reads are in flight:
//!   exit 0 within a bound, socket and pid file removed, no panic;
//! - the share changing under the daemon during concurrent reads (files
//!   replaced, renamed over each other, deleted, truncated, extended; a
//!   directory swapped for a symlink out of the share, up to 10^4 times):
//!   a verified share returns the sealed bytes or an errno, an unverified
//!   one bytes of some version of the file or an errno, never anything from
//!   outside the share, and both keep serving.
//!
//! Control-plane abuse is in `tests/control_plane.rs`. Every wait is bounded
//! (harness timeouts, `wait_exit`, time-bounded loops).

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::stress::{check_clean_exit, Contents, Fixture, Load, FILE_SIZE};
use common::Failures;
use vhost_user_harness::{FuseError, VirtioFsClient, ROOT_ID};

/// Bytes added when a file is extended in place.
const EXTEND_BY: u64 = 8192;
/// Where a file is truncated in place.
const TRUNCATE_TO: u64 = 100_000;
/// Bytes per READ while the share changes.
const MUTATION_READ: u32 = 64 * 1024;
/// How long the share keeps changing while it is read.
const MUTATION_PHASE: Duration = Duration::from_millis(2500);
/// Upper bound of directory-for-symlink swaps (security.md case 28).
const MAX_DIR_SWAPS: usize = 10_000;

/// How the daemon is told to go away while READs are in flight.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stop {
    /// The frontend closes the socket (and its guest memory) without collecting anything.
    HangUp,
    /// `kill -TERM`.
    Sigterm,
}

/// Starts a daemon per (verified, extra argument), puts 96 READs in flight,
/// stops it with `stop`, and checks that it exits cleanly with 0 and logs `line`.
fn stop_under_load(stop: Stop, configs: [(bool, &str); 2], line: &str) {
    let c = Contents::new();
    let mut f = Failures::default();
    for (verified, extra) in configs {
        let fixture = Fixture::new(&c, verified);
        let mut daemon = fixture.start(&[extra]);
        let mut load = Load::start(&daemon);
        let unanswered = load.unanswered();
        match stop {
            Stop::HangUp => drop(load),
            Stop::Sigterm => {
                let killed = Command::new("kill")
                    .args(["-TERM", &daemon.pid().to_string()])
                    .status()
                    .unwrap();
                assert!(killed.success());
            }
        }
        let what = format!("{stop:?} (verified {verified}, {extra})");
        eprintln!("{what}: {unanswered} of 96 READs unanswered when stopped");
        check_clean_exit(&mut f, &mut daemon, 0, &what);
        f.check(
            daemon.stderr().contains(line),
            format!("{what}: no \"{line}\" in the log"),
        );
    }
    f.assert_none();
}

/// The frontend closes the socket with 96 READs in flight on two queues: the
/// daemon exits 0 by itself, removes its socket and pid file, never panics.
#[test]
fn frontend_hangup_with_reads_in_flight_exits_cleanly() {
    let configs = [
        (false, "--thread-pool-size=2"),
        (true, "--thread-pool-size=0"),
    ];
    stop_under_load(Stop::HangUp, configs, "frontend disconnected");
}

/// SIGTERM with 96 READs in flight: exit 0 within the bound, socket and pid
/// file removed, no panic.
#[test]
fn sigterm_with_reads_in_flight_exits_cleanly() {
    let configs = [
        (true, "--thread-pool-size=2"),
        (false, "--thread-pool-size=0"),
    ];
    stop_under_load(Stop::Sigterm, configs, "terminating on signal");
}

// ---- the share changing under the daemon --------------------------------------

/// Writes `data` to a fresh file next to `path` and renames it over `path`.
fn replace(path: &Path, data: &[u8]) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, data).unwrap();
    std::fs::rename(&tmp, path).unwrap();
}

/// Changes `x` and `y` in every way a host can, one step per call; step
/// 0 of every cycle restores the sealed state.
fn mutate_files(root: &Path, c: &Contents, step: usize) {
    let (x, y) = (root.join("x"), root.join("y"));
    let set_len = |p: &Path, len: u64| {
        std::fs::OpenOptions::new()
            .write(true)
            .open(p)
            .unwrap()
            .set_len(len)
            .unwrap()
    };
    match step % 8 {
        0 => {
            replace(&x, &c.x);
            replace(&y, &c.y);
        }
        1 => set_len(&x, TRUNCATE_TO),
        2 => replace(&x, &c.x),
        3 => std::fs::rename(&y, &x).unwrap(), // x now has y's bytes, y is gone
        4 => replace(&y, &c.x),                // and y has x's bytes
        5 => std::fs::remove_file(&x).unwrap(),
        6 => replace(&x, &c.x),
        _ => set_len(&x, FILE_SIZE as u64 + EXTEND_BY),
    }
}

/// Swaps `d` for a symlink (to the outside directory or to `/`) and back.
fn swap_dir(root: &Path, outside: &Path, i: usize) {
    let (d, real) = (root.join("d"), root.join("d.real"));
    std::fs::rename(&d, &real).unwrap();
    let target = if i % 2 == 0 { outside } else { Path::new("/") };
    std::os::unix::fs::symlink(target, &d).unwrap();
    // Give readers a chance to meet both states.
    thread::sleep(Duration::from_micros(100));
    std::fs::remove_file(&d).unwrap();
    std::fs::rename(&real, &d).unwrap();
    thread::sleep(Duration::from_micros(100));
}

/// What the reader saw.
#[derive(Default)]
struct Observed {
    reads_ok: usize,
    errnos: BTreeMap<i32, usize>,
}

impl Observed {
    fn errno(&mut self, e: i32) {
        *self.errnos.entry(e).or_default() += 1;
    }
}

/// What a successful READ may return.
enum Expect<'a> {
    /// Exactly these bytes at the offset, never a short read (verified share).
    Sealed(&'a [u8]),
    /// A slice of one of these versions at the offset (unverified share).
    SliceOfSome(Vec<&'a [u8]>),
}

impl Expect<'_> {
    /// Whether `got`, the reply to a READ of `size` bytes at `off`, is acceptable.
    fn accepts(&self, off: usize, size: usize, got: &[u8]) -> bool {
        match self {
            Expect::Sealed(data) => {
                let end = (off + size).min(data.len());
                data.get(off..end) == Some(got)
            }
            Expect::SliceOfSome(versions) => versions
                .iter()
                .any(|v| v.get(off..off + got.len()) == Some(got)),
        }
    }
}

/// The errno of a FUSE failure; a transport failure (timeout, bad framing) fails the test.
fn errno_or_fail(e: &FuseError, what: &str) -> i32 {
    e.errno()
        .unwrap_or_else(|| panic!("{what}: transport failure {e}"))
}

/// Reads `name` (from the root) at a few offsets with several READs in
/// flight and checks each successful reply against `expect`.
fn read_checked(
    fs: &mut VirtioFsClient,
    name: &str,
    obs: &mut Observed,
    f: &mut Failures,
    expect: &Expect<'_>,
) {
    let node = match fs.lookup(ROOT_ID, name) {
        Ok(e) => e.nodeid,
        Err(e) => return obs.errno(errno_or_fail(&e, name)),
    };
    match fs.open(node, libc::O_RDONLY) {
        Ok(open) => {
            let offsets = [0u64, 4096 * 7 + 1, 200_000, FILE_SIZE as u64 - 100];
            let pending: Vec<_> = offsets
                .iter()
                .map(|&off| {
                    (
                        off,
                        fs.submit_read(node, open.fh, off, MUTATION_READ).unwrap(),
                    )
                })
                .collect();
            for (off, p) in pending {
                match fs.wait_read(p, MUTATION_READ) {
                    Ok(bytes) => {
                        obs.reads_ok += 1;
                        f.check(
                            expect.accepts(off as usize, MUTATION_READ as usize, &bytes),
                            format!("{name}: wrong {} bytes at {off}", bytes.len()),
                        );
                    }
                    Err(e) => obs.errno(errno_or_fail(&e, name)),
                }
            }
            fs.release(node, open.fh).unwrap();
        }
        Err(e) => obs.errno(errno_or_fail(&e, name)),
    }
    fs.forget(node, 1).unwrap();
}

/// Looks up `d`, reads `d/f` and probes names that only exist outside the
/// share (`only_outside` next to the canary, `etc` under `/`).
fn read_through_dir(fs: &mut VirtioFsClient, c: &Contents, obs: &mut Observed, f: &mut Failures) {
    let d = match fs.lookup(ROOT_ID, "d") {
        Ok(e) => e.nodeid,
        Err(e) => return obs.errno(errno_or_fail(&e, "d")),
    };
    for escape in ["only_outside", "etc"] {
        match fs.lookup(d, escape) {
            Ok(e) => {
                f.check(false, format!("LOOKUP d/{escape} escaped the share"));
                fs.forget(e.nodeid, 1).unwrap();
            }
            Err(e) => obs.errno(errno_or_fail(&e, escape)),
        }
    }
    match fs.lookup(d, "f") {
        Ok(e) => {
            match fs.read_node(e.nodeid) {
                Ok(bytes) => {
                    obs.reads_ok += 1;
                    f.check(
                        bytes != c.canary,
                        "d/f served the canary from outside the share",
                    );
                    f.check(
                        bytes == c.inner,
                        format!("d/f: wrong {} bytes", bytes.len()),
                    );
                }
                Err(e) => obs.errno(errno_or_fail(&e, "d/f")),
            }
            fs.forget(e.nodeid, 1).unwrap();
        }
        Err(e) => obs.errno(errno_or_fail(&e, "d/f")),
    }
    fs.forget(d, 1).unwrap();
}

/// Sets the flag when dropped, so the host threads stop even if the reader panics.
struct StopOnDrop(Arc<AtomicBool>);

impl Drop for StopOnDrop {
    fn drop(&mut self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// Reads the share for [`MUTATION_PHASE`] while two host threads change it,
/// then checks the errnos seen, restores the tree and checks that the daemon
/// serves it correctly.
fn share_changing_under_reads(verified: bool) {
    let c = Arc::new(Contents::new());
    let fixture = Fixture::new(&c, verified);
    let daemon = fixture.start(&["--thread-pool-size=2"]);
    let mut fs = VirtioFsClient::connect_and_init(daemon.socket_path()).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stop_guard = StopOnDrop(stop.clone());
    let (file_steps, dir_swaps) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let files = {
        let (root, c, stop, steps) = (fixture.root(), c.clone(), stop.clone(), file_steps.clone());
        thread::spawn(move || {
            let mut step = 1;
            while !stop.load(Ordering::Relaxed) {
                mutate_files(&root, &c, step);
                thread::sleep(Duration::from_micros(200));
                step += 1;
                steps.store(step, Ordering::Relaxed);
            }
            mutate_files(&root, &c, 0);
        })
    };
    let dirs = {
        let (root, outside, stop, swaps) = (
            fixture.root(),
            fixture.outside(),
            stop.clone(),
            dir_swaps.clone(),
        );
        thread::spawn(move || {
            for i in 0..MAX_DIR_SWAPS {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                swap_dir(&root, &outside, i);
                swaps.store(i + 1, Ordering::Relaxed);
            }
        })
    };

    let mut f = Failures::default();
    let mut obs = Observed::default();
    let x_ext = [c.x.as_slice(), &vec![0; EXTEND_BY as usize]].concat();
    let deadline = Instant::now() + MUTATION_PHASE;
    let mut rounds = 0;
    while Instant::now() < deadline {
        for (name, sealed) in [("x", &c.x), ("y", &c.y)] {
            let expect = if verified {
                Expect::Sealed(sealed)
            } else {
                // Some version either name had: x, y, or x extended with zeros.
                Expect::SliceOfSome(vec![&c.x, &c.y, &x_ext])
            };
            read_checked(&mut fs, name, &mut obs, &mut f, &expect);
        }
        read_through_dir(&mut fs, &c, &mut obs, &mut f);
        rounds += 1;
    }
    drop(stop_guard);
    files.join().unwrap();
    dirs.join().unwrap();
    eprintln!(
        "verified {verified}: {rounds} rounds, {} file mutations, {} directory swaps, \
         {} successful reads, errnos {:?}",
        file_steps.load(Ordering::Relaxed),
        dir_swaps.load(Ordering::Relaxed),
        obs.reads_ok,
        obs.errnos
    );

    let allowed = [
        libc::ENOENT,
        libc::ESTALE,
        libc::EIO,
        libc::ELOOP,
        libc::ENOTDIR,
        libc::EXDEV,
    ];
    for e in obs.errnos.keys() {
        f.check(allowed.contains(e), format!("unexpected errno {e}"));
    }
    f.check(
        obs.reads_ok > 0,
        "no read succeeded while the share changed",
    );
    f.check(rounds > 0, "no reader round completed");
    // The tree is back in its sealed state: everything reads correctly again.
    f.check(
        fs.read_file("x").ok() == Some(c.x.clone()),
        "x after the storm",
    );
    f.check(
        fs.read_file("y").ok() == Some(c.y.clone()),
        "y after the storm",
    );
    f.check(
        fs.read_file("d/f").ok() == Some(c.inner.clone()),
        "d/f after the storm",
    );
    f.check(
        !daemon.stderr().contains("panicked"),
        format!("the daemon panicked:\n{}", daemon.stderr()),
    );
    f.assert_none();
}

/// A sealed share changing under concurrent reads: the sealed bytes or an errno.
#[test]
fn verified_share_changing_under_reads_gives_sealed_bytes_or_errno() {
    share_changing_under_reads(true);
}

/// An unverified share changing under concurrent reads: bytes of some version
/// of the file or an errno, never anything from outside the share.
#[test]
fn unverified_share_changing_under_reads_never_escapes() {
    share_changing_under_reads(false);
}
