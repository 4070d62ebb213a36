// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Read throughput of a verified share against the same daemon without
//! `--manifest`, through the vhost-user harness (no VM). Not a test: run
//! with `scripts/bench-harness` (release build, `--ignored`). For each daemon
//! thread count (`BENCH_THREADS`, default `1,2`) it runs `BENCH_ROUNDS`
//! (default 3) rounds alternating the two daemons and prints medians of MB/s
//! (10^6 bytes) and IOPS, then the verified/unverified ratios.

mod common;

use std::time::{Duration, Instant};

use common::seal::seal;
use common::{daemon_binary, median, pseudo_random};
use verity_merkle::MerkleParams;
use vhost_user_harness::{DaemonProcess, VirtioFsClient, ROOT_ID};

const FILE_SIZE: u64 = 1 << 30;
const SEQ_CHUNK: u32 = 1 << 20;
const RANDOM_READS: usize = 50_000;
const DEPTH: usize = 8;

fn env_size() -> u64 {
    std::env::var("BENCH_FILE_MIB")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map_or(FILE_SIZE, |m| m << 20)
}

struct Result {
    seq_mbs: f64,
    rand_iops: f64,
}

fn mbs(bytes: u64, t: Duration) -> f64 {
    bytes as f64 / t.as_secs_f64() / 1e6
}

fn run(daemon: &DaemonProcess, size: u64) -> Result {
    let mut fs = VirtioFsClient::connect_and_init(daemon.socket_path()).unwrap();
    let node = fs.lookup(ROOT_ID, "big").unwrap().nodeid;
    // First open (builds the tree if the store has none), not timed.
    let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
    fs.release(node, fh).unwrap();
    let chunk = SEQ_CHUNK.min(fs.max_read());
    let t = Instant::now();
    let data = fs.read_node_pipelined(node, chunk, DEPTH).unwrap();
    let seq = t.elapsed();
    assert_eq!(data.len() as u64, size);
    drop(data);
    let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
    let blocks = size / 4096;
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    let t = Instant::now();
    let mut in_flight = std::collections::VecDeque::new();
    for _ in 0..RANDOM_READS {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let off = (seed % blocks) * 4096;
        in_flight.push_back(fs.submit_read(node, fh, off, 4096).unwrap());
        if in_flight.len() == DEPTH {
            let p = in_flight.pop_front().unwrap();
            assert_eq!(fs.wait_read(p, 4096).unwrap().len(), 4096);
        }
    }
    while let Some(p) = in_flight.pop_front() {
        assert_eq!(fs.wait_read(p, 4096).unwrap().len(), 4096);
    }
    let rand = t.elapsed();
    fs.release(node, fh).unwrap();
    Result {
        seq_mbs: mbs(size, seq),
        rand_iops: RANDOM_READS as f64 / rand.as_secs_f64(),
    }
}

fn env_or<T: std::str::FromStr>(name: &str, default: T) -> T {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
#[ignore = "benchmark: run scripts/bench-harness"]
fn bench_verified_vs_plain() {
    let size = env_size();
    let rounds: usize = env_or("BENCH_ROUNDS", 3).max(1);
    let thread_counts: Vec<usize> = std::env::var("BENCH_THREADS")
        .unwrap_or_else(|_| "1,2".into())
        .split(',')
        .filter_map(|t| t.trim().parse().ok())
        .collect();
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("share");
    std::fs::create_dir(&root).unwrap();
    let mut f = std::fs::File::create(root.join("big")).unwrap();
    let mut written = 0u64;
    while written < size {
        let n = (size - written).min(64 << 20);
        std::io::Write::write_all(&mut f, &pseudo_random(n as usize, written + 1)).unwrap();
        written += n;
    }
    drop(f);
    let store = outer.path().join("store");
    std::fs::create_dir(&store).unwrap();
    let manifest = seal(&root, &MerkleParams::default(), Some(&store));
    let mpath = outer.path().join("manifest");
    std::fs::write(&mpath, manifest.to_bytes()).unwrap();

    println!(
        "file {} MiB, depth {DEPTH}, {rounds} rounds alternating plain/verified",
        size >> 20
    );
    println!("| daemon threads | daemon | seq 1 MiB MB/s | rand 4 KiB IOPS |");
    println!("| ---: | --- | ---: | ---: |");
    let mut ratios = Vec::new();
    for &threads in &thread_counts {
        let plain = vec![
            format!("--shared-dir={}", root.display()),
            "--sandbox=none".to_string(),
            "--seccomp=none".to_string(),
            "--cache=never".to_string(),
            format!("--thread-pool-size={threads}"),
            "--log-level=warn".to_string(),
        ];
        let mut verified = plain.clone();
        verified.push(format!("--manifest={}", mpath.display()));
        verified.push(format!("--tree-store={}", store.display()));
        // [plain, verified] x [seq MB/s, rand IOPS], one value per round.
        let mut results = vec![(Vec::new(), Vec::new()), (Vec::new(), Vec::new())];
        for r in 0..rounds {
            // Alternate which daemon goes first, so drift in machine load hits both.
            let order = if r % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let args = if which == 0 { &plain } else { &verified };
                let d = DaemonProcess::spawn(daemon_binary(), args).unwrap();
                let res = run(&d, size);
                results[which].0.push(res.seq_mbs);
                results[which].1.push(res.rand_iops);
            }
        }
        let mut med = Vec::new();
        for (name, (seq, rand)) in ["plain (no --manifest)", "verified, tree store"]
            .iter()
            .zip(results)
        {
            let (s, r) = (median(seq), median(rand));
            println!("| {threads} | {name} | {s:.0} | {r:.0} |");
            med.push((s, r));
        }
        ratios.push((threads, med[1].0 / med[0].0, med[1].1 / med[0].1));
    }
    for (threads, seq, rand) in ratios {
        // Parsed by scripts/bench-harness.
        println!("RATIO seq {threads} {seq:.2}");
        println!("RATIO rand {threads} {rand:.2}");
    }
}
