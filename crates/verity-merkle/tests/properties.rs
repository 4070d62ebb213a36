// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Property tests: for random sizes and parameters, a good file always
//! verifies, and any single-byte corruption of data or tree is always
//! detected in exactly the blocks it affects (no false alarms elsewhere).

use proptest::prelude::*;
use verity_merkle::{
    build_from_bytes, Geometry, HashAlgorithm, MerkleParams, Verifier, VerifyError,
};

/// Cases per property; CI runs the default (>= 10,000 over the two properties
/// below is required), `PROPTEST_CASES` overrides it.
fn cases() -> u32 {
    std::env::var("PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(6000)
}

fn params() -> impl Strategy<Value = MerkleParams> {
    (
        prop_oneof![Just(HashAlgorithm::Sha256), Just(HashAlgorithm::Sha512)],
        // 64 KiB blocks are covered by the known-answer vectors; here they would
        // make level boundaries (arity 2048) too large to reach quickly.
        prop_oneof![Just(1024u64), Just(2048), Just(4096)],
        proptest::collection::vec(any::<u8>(), 0..=32),
    )
        .prop_map(|(a, b, s)| MerkleParams::new(a, b, &s).unwrap())
}

/// Sizes near block and level boundaries are the interesting ones.
fn size_for(p: &MerkleParams) -> impl Strategy<Value = usize> {
    let bs = p.block_size();
    let arity = p.arity();
    prop_oneof![
        0usize..3 * bs,
        (1usize..=arity + 2).prop_flat_map(move |k| (k * bs - 2)..(k * bs + 2)),
        0usize..300_000,
    ]
}

fn input(size: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..size)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: cases(), ..ProptestConfig::default() })]

    #[test]
    fn corrupt_data_byte_is_caught_in_its_block_only(
        (p, size) in params().prop_flat_map(|p| { let s = size_for(&p); (Just(p), s) }),
        seed in any::<u64>(),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let data = input(size, seed);
        let tree = build_from_bytes(p.clone(), &data).unwrap();
        let v = Verifier::new(tree.descriptor(), tree.tree_bytes().to_vec()).unwrap();
        let bs = p.block_size();
        if size > 0 {
            prop_assert!(v.verify_blocks(0, &data).is_ok());
            let mut bad = data.clone();
            let at = pos.index(size);
            bad[at] ^= flip;
            let hit = at / bs;
            for (i, block) in bad.chunks(bs).enumerate() {
                let r = v.verify_block(i as u64, block);
                if i == hit {
                    let is_mismatch = matches!(r, Err(VerifyError::DataMismatch { block }) if block == i as u64);
                    prop_assert!(is_mismatch);
                } else {
                    prop_assert!(r.is_ok(), "false alarm in block {}", i);
                }
            }
        }
        // A truncated or extended file is refused.
        prop_assert!(v.check_size(size as u64 + 1).is_err());
        if size > 0 {
            prop_assert!(v.check_size(size as u64 - 1).is_err());
        }
    }

    #[test]
    fn corrupt_tree_byte_is_caught(
        (p, size) in params().prop_flat_map(|p| { let s = size_for(&p); (Just(p), s) }),
        seed in any::<u64>(),
        pos in any::<prop::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let data = input(size, seed);
        let tree = build_from_bytes(p.clone(), &data).unwrap();
        let stored = tree.tree_bytes();
        prop_assume!(!stored.is_empty());
        let g = Geometry::new(&p, size as u64).unwrap();
        let bs = p.block_size();
        let mut bad = stored.to_vec();
        let at = pos.index(bad.len());
        bad[at] ^= flip;
        let v = Verifier::new(tree.descriptor(), bad).unwrap();
        // Which data blocks depend on the corrupted tree block?
        let tree_block = (at / bs) as u64;
        let level = (0..g.levels())
            .find(|&l| tree_block >= g.level_start(l) && tree_block < g.level_start(l) + g.level_blocks(l))
            .unwrap();
        let index_in_level = tree_block - g.level_start(level);
        let log_a = p.arity().trailing_zeros() as u64;
        let span = 1u64 << (log_a * (level as u64 + 1));
        let first = index_in_level * span;
        let mut caught = false;
        for (i, block) in data.chunks(bs).enumerate() {
            let i = i as u64;
            let r = v.verify_block(i, block);
            if i >= first && i < first + span {
                // A corrupted byte in the block's hash path, or only in its padding
                // (also caught: the block's own hash no longer matches its parent).
                prop_assert!(r.is_err(), "block {} passed with tree byte {} corrupted", i, at);
                caught = true;
            } else {
                prop_assert!(r.is_ok(), "false alarm in block {}", i);
            }
        }
        prop_assert!(caught);
    }
}
