// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Read throughput of a verified share against the same daemon without
//! `--manifest`, through the vhost-user harness (no VM). Not a test: run
//! with `scripts/bench-harness` (release build, `--ignored`). Prints MB/s
//! (10^6 bytes) and the verified/unverified ratio.

mod common;

use std::time::{Duration, Instant};

use common::seal::seal;
use common::{daemon_binary, pseudo_random};
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
    rand_mbs: f64,
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
        rand_mbs: mbs(RANDOM_READS as u64 * 4096, rand),
        rand_iops: RANDOM_READS as f64 / rand.as_secs_f64(),
    }
}

#[test]
#[ignore = "benchmark: run scripts/bench-harness"]
fn bench_verified_vs_plain() {
    let size = env_size();
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
    let threads = std::env::var("BENCH_THREADS").unwrap_or_else(|_| "2".into());
    let base = vec![
        format!("--shared-dir={}", root.display()),
        "--sandbox=none".to_string(),
        "--seccomp=none".to_string(),
        "--cache=never".to_string(),
        format!("--thread-pool-size={threads}"),
        "--log-level=warn".to_string(),
    ];
    let mut verified = base.clone();
    verified.push(format!("--manifest={}", mpath.display()));
    verified.push(format!("--tree-store={}", store.display()));
    let mut built = base.clone();
    built.push(format!("--manifest={}", mpath.display()));

    println!(
        "file {} MiB, thread pool {threads}, depth {DEPTH}",
        size >> 20
    );
    println!("| daemon | seq 1 MiB MB/s | rand 4 KiB MB/s | rand 4 KiB IOPS |");
    println!("| --- | ---: | ---: | ---: |");
    let mut rows = Vec::new();
    for (name, args) in [
        ("plain (no --manifest)", &base),
        ("verified, tree store", &verified),
        ("verified, tree built at open", &built),
    ] {
        let d = DaemonProcess::spawn(daemon_binary(), args).unwrap();
        let t = Instant::now();
        let r = run(&d, size);
        println!(
            "| {name} | {:.0} | {:.1} | {:.0} |   ({:.1} s total)",
            r.seq_mbs,
            r.rand_mbs,
            r.rand_iops,
            t.elapsed().as_secs_f64()
        );
        rows.push(r);
    }
    println!(
        "verified/plain: sequential {:.2}, random {:.2}",
        rows[1].seq_mbs / rows[0].seq_mbs,
        rows[1].rand_mbs / rows[0].rand_mbs
    );
}
