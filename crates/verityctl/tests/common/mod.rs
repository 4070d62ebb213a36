// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Helpers shared by the verityctl CLI tests.
#![allow(dead_code)]

use std::path::PathBuf;

/// The `fsverity` tool, or `None` with a notice. CI installs it, so there a
/// missing tool fails the test instead of skipping it.
pub fn fsverity() -> Option<PathBuf> {
    let found = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|d| d.join("fsverity"))
            .find(|p| p.is_file())
    });
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI must have fsverity-utils installed (apt-get install fsverity)"
        );
        eprintln!("fsverity not installed: skipping the comparison (apt-get install fsverity)");
    }
    found
}

/// `n` pseudo-random bytes (xorshift), the same for the same seed.
pub fn random_bytes(n: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}
