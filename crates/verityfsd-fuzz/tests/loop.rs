// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The fuzz targets on the stable toolchain, in `cargo test`: a seeded loop of random inputs
//! and mutations of the committed seed corpus (`crates/fuzz/seeds/TARGET`), bounded in time.
//!
//! No coverage feedback (that is what `cargo +nightly fuzz run` adds); the targets and their
//! invariants are the same functions. Each target runs for `FUZZ_LOOP_SECS` seconds (default
//! 10) or `FUZZ_LOOP_RUNS` executions, whichever comes first; `FUZZ_LOOP_SEED` sets the seed.
//! A failing input is written to `target/fuzz-loop-TARGET-SEED.bin` and can be replayed with
//! `cargo +nightly fuzz run --fuzz-dir crates/fuzz TARGET FILE`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn seeds(target: &str) -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../fuzz/seeds")
        .join(target);
    let mut out: Vec<Vec<u8>> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| std::fs::read(e.ok()?.path()).ok())
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    assert!(!out.is_empty(), "no seed inputs in {}", dir.display());
    out
}

/// A new input: random bytes, or a seed with a few mutations (byte flips, overwrites, inserted
/// or removed runs, a splice with another seed).
fn input(rng: &mut fastrand::Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.u8(..) < 64 {
        let len = rng.usize(..2048);
        return (0..len).map(|_| rng.u8(..)).collect();
    }
    let mut data = seeds[rng.usize(..seeds.len())].clone();
    for _ in 0..rng.usize(1..6) {
        let at = rng.usize(..=data.len());
        match rng.u8(..6) {
            0 if at < data.len() => data[at] ^= 1 << rng.u8(..8),
            1 if at < data.len() => data[at] = rng.u8(..),
            2 => {
                let run: Vec<u8> = (0..rng.usize(1..32)).map(|_| rng.u8(..)).collect();
                data.splice(at..at, run);
            }
            3 => {
                let end = (at + rng.usize(1..32)).min(data.len());
                data.drain(at..end);
            }
            4 => {
                let other = &seeds[rng.usize(..seeds.len())];
                let from = rng.usize(..=other.len());
                data.truncate(at);
                data.extend_from_slice(&other[from..]);
            }
            _ => {
                let value = [0u8, 0xff, 0x7f, 0x80, 1][rng.usize(..5)];
                if at < data.len() {
                    data[at] = value;
                }
            }
        }
    }
    data
}

fn failure_path(target: &str, seed: u64) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../target")
        .join(format!("fuzz-loop-{target}-{seed:x}.bin"))
}

fn run(target: &str, f: fn(&[u8])) {
    let secs = env_u64("FUZZ_LOOP_SECS", 10);
    let runs = env_u64("FUZZ_LOOP_RUNS", u64::MAX);
    let seed = env_u64("FUZZ_LOOP_SEED", 0x5eed_f022);
    let seeds = seeds(target);
    // The seeds themselves first, then new inputs.
    for s in &seeds {
        f(s);
    }
    let mut rng = fastrand::Rng::with_seed(seed);
    let start = Instant::now();
    let deadline = start + Duration::from_secs(secs);
    let mut executions = seeds.len() as u64;
    while executions < runs && Instant::now() < deadline {
        let data = input(&mut rng, &seeds);
        let outcome = std::panic::catch_unwind(|| f(&data));
        if let Err(panic) = outcome {
            let path = failure_path(target, seed);
            let _ = std::fs::write(&path, &data);
            eprintln!("{target}: failing input written to {}", path.display());
            std::panic::resume_unwind(panic);
        }
        executions += 1;
    }
    let elapsed = start.elapsed().as_secs_f64();
    eprintln!(
        "{target}: {executions} executions in {elapsed:.1} s ({:.0}/s, seed {seed:#x})",
        executions as f64 / elapsed.max(1e-9)
    );
    assert!(executions > seeds.len() as u64 || runs <= seeds.len() as u64);
}

#[test]
fn fuse_requests_loop() {
    run("fuse_requests", verityfsd_fuzz::fuse_requests);
}

#[test]
fn descriptor_chain_loop() {
    run("descriptor_chain", verityfsd_fuzz::descriptor_chain);
}
