// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Start-up time and peak memory of the daemon serving a large manifest,
//! through the vhost-user harness (no VM). Not a test: run with
//! `scripts/bench-memory`, which makes the share and seals it.
//!
//! Start-up is measured from just before the daemon is spawned until its
//! reply to FUSE INIT arrives: the time a frontend waits before the share
//! can be used (process start, manifest load, socket, vhost-user setup).
//! Peak RSS is `VmHWM` of `/proc/PID/status`, read once after INIT and once
//! after the whole of the share's file `big` was read sequentially.
//!
//! Environment: `BENCH_SHARE` (directory with a file `big`),
//! `BENCH_MANIFEST` (its manifest), `BENCH_STORE` (optional tree store),
//! `BENCH_ROUNDS` (default 3), `VHOST_USER_HARNESS_VIRTIOFSD` (optional
//! upstream virtiofsd, measured too). Prints a Markdown table and one
//! `RESULT` line per daemon with medians.

mod common;

use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{daemon_binary, median, status_kib};
use vhost_user_harness::{VirtioFsClient, ROOT_ID};

const SEQ_CHUNK: u32 = 1 << 20;
const DEPTH: usize = 8;
const STARTUP_TIMEOUT: Duration = Duration::from_secs(60);

/// One measured run of one daemon.
#[derive(Debug, Clone, Copy)]
struct Run {
    startup_ms: f64,
    hwm_start_kib: u64,
    hwm_read_kib: u64,
}

struct Daemon {
    child: Child,
    _dir: tempfile::TempDir,
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `binary args --socket-path=...`, connects once the socket exists
/// and sends INIT; returns the daemon, the client and the start-up time.
fn start(binary: &Path, args: &[String]) -> (Daemon, VirtioFsClient, Duration) {
    let dir = tempfile::tempdir().unwrap();
    let socket = dir.path().join("vhost.sock");
    let stderr = std::fs::File::create(dir.path().join("stderr.log")).unwrap();
    let t = Instant::now();
    let child = Command::new(binary)
        .args(args)
        .arg(format!("--socket-path={}", socket.display()))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(stderr)
        .spawn()
        .unwrap();
    let mut daemon = Daemon { child, _dir: dir };
    while !socket.exists() {
        if let Some(status) = daemon.child.try_wait().unwrap() {
            let log = std::fs::read_to_string(daemon._dir.path().join("stderr.log"));
            panic!("{} exited with {status}: {log:?}", binary.display());
        }
        assert!(
            t.elapsed() < STARTUP_TIMEOUT,
            "no socket after {STARTUP_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let fs = VirtioFsClient::connect_and_init(&socket).unwrap();
    let startup = t.elapsed();
    (daemon, fs, startup)
}

/// Reads the whole of `big` sequentially, `DEPTH` reads in flight, and
/// returns its size.
fn read_big(fs: &mut VirtioFsClient) -> u64 {
    let entry = fs.lookup(ROOT_ID, "big").unwrap();
    let (node, size) = (entry.nodeid, entry.attr.size);
    let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
    let chunk = SEQ_CHUNK.min(fs.max_read());
    let mut in_flight = VecDeque::new();
    let (mut offset, mut got) = (0u64, 0u64);
    while offset < size || !in_flight.is_empty() {
        if offset < size && in_flight.len() < DEPTH {
            in_flight.push_back(fs.submit_read(node, fh, offset, chunk).unwrap());
            offset += u64::from(chunk);
            continue;
        }
        let p = in_flight.pop_front().unwrap();
        got += fs.wait_read(p, chunk).unwrap().len() as u64;
    }
    fs.release(node, fh).unwrap();
    assert_eq!(got, size, "read {got} of {size} bytes");
    size
}

fn measure(binary: &Path, args: &[String]) -> Run {
    let (daemon, mut fs, startup) = start(binary, args);
    let pid = daemon.child.id();
    let hwm_start_kib = status_kib(pid, "VmHWM:");
    read_big(&mut fs);
    let hwm_read_kib = status_kib(pid, "VmHWM:");
    drop(fs);
    Run {
        startup_ms: startup.as_secs_f64() * 1e3,
        hwm_start_kib,
        hwm_read_kib,
    }
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[test]
#[ignore = "benchmark: run scripts/bench-memory"]
fn bench_startup_and_memory() {
    let share = env_path("BENCH_SHARE").expect("set BENCH_SHARE (scripts/bench-memory)");
    let manifest = env_path("BENCH_MANIFEST").expect("set BENCH_MANIFEST");
    let rounds: usize = std::env::var("BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse().ok())
        .unwrap_or(3);
    let base = vec![
        format!("--shared-dir={}", share.display()),
        "--sandbox=none".to_owned(),
        "--seccomp=none".to_owned(),
        "--cache=never".to_owned(),
        "--thread-pool-size=2".to_owned(),
        "--log-level=warn".to_owned(),
    ];
    let mut verified = base.clone();
    verified.push(format!("--manifest={}", manifest.display()));
    if let Some(store) = env_path("BENCH_STORE") {
        verified.push(format!("--tree-store={}", store.display()));
    }
    let ours = daemon_binary();
    let mut daemons: Vec<(&str, PathBuf, Vec<String>)> = vec![
        ("verityfsd --manifest", ours.clone(), verified),
        ("verityfsd (no manifest)", ours, base.clone()),
    ];
    if let Some(upstream) = env_path("VHOST_USER_HARNESS_VIRTIOFSD") {
        let mut args = base;
        args.push("--readonly".to_owned());
        daemons.push(("upstream virtiofsd", upstream, args));
    }
    let mut runs: Vec<Vec<Run>> = vec![Vec::new(); daemons.len()];
    for _ in 0..rounds {
        for (i, (_, binary, args)) in daemons.iter().enumerate() {
            runs[i].push(measure(binary, args));
        }
    }
    println!(
        "| daemon | start-up ms | peak RSS after INIT, MiB | peak RSS after reading `big`, MiB |"
    );
    println!("| --- | ---: | ---: | ---: |");
    for ((name, _, _), runs) in daemons.iter().zip(&runs) {
        let startup = median(runs.iter().map(|r| r.startup_ms).collect());
        let start = median(runs.iter().map(|r| r.hwm_start_kib as f64).collect());
        let read = median(runs.iter().map(|r| r.hwm_read_kib as f64).collect());
        println!(
            "| {name} | {startup:.1} | {:.1} | {:.1} |",
            start / 1024.0,
            read / 1024.0
        );
        println!(
            "RESULT\t{name}\t{startup:.1}\t{start:.0}\t{read:.0}\t{}",
            runs.iter()
                .map(|r| format!("{:.1}", r.startup_ms))
                .collect::<Vec<_>>()
                .join(",")
        );
    }
}
