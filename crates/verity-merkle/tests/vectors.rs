// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Every row of `testdata/fsverity-vectors.tsv` (made with fsverity-utils):
//! digest, stored tree and descriptor, through the streaming and the parallel
//! builder, and every block of each input through the verifier.

use sha2::{Digest, Sha256};
use verity_merkle::{
    build_from_bytes, build_parallel, Descriptor, HashAlgorithm, MerkleParams, Verifier,
};

const VECTORS: &str = include_str!("../testdata/fsverity-vectors.tsv");

fn generate(generator: &str, size: usize) -> Vec<u8> {
    match generator {
        "zero" => vec![0; size],
        "affine251" => (0..size)
            .map(|i| ((31 * (i % 251) + 7) % 251) as u8)
            .collect(),
        "sha256ctr" => {
            let mut out = Vec::with_capacity(size + 32);
            let mut n: u64 = 0;
            while out.len() < size {
                out.extend_from_slice(&Sha256::digest(n.to_le_bytes()));
                n += 1;
            }
            out.truncate(size);
            out
        }
        other => panic!("unknown generator {other}"),
    }
}

#[test]
fn all_vectors_match_fsverity_utils() {
    let mut rows = 0;
    let mut cached: Option<(String, Vec<u8>)> = None;
    for line in VECTORS.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        assert_eq!(f.len(), 9, "malformed row {line}");
        let (name, generator, size) = (f[0], f[1], f[2].parse::<usize>().unwrap());
        let alg: HashAlgorithm = f[3].parse().unwrap();
        let block_size: u64 = f[4].parse().unwrap();
        let salt = if f[5] == "-" {
            Vec::new()
        } else {
            hex::decode(f[5]).unwrap()
        };
        if cached.as_ref().map(|(n, _)| n.as_str()) != Some(name) {
            cached = Some((name.to_owned(), generate(generator, size)));
        }
        let data = &cached.as_ref().unwrap().1;
        let params = MerkleParams::new(alg, block_size, &salt).unwrap();
        let tree = build_from_bytes(params.clone(), data).unwrap();
        let ctx = format!("{name} {} {block_size} salt={}", f[3], f[5]);
        assert_eq!(tree.digest().to_string(), f[6], "digest of {ctx}");
        assert_eq!(
            hex::encode(Sha256::digest(tree.tree_bytes())),
            f[7],
            "tree of {ctx}"
        );
        let desc = tree.descriptor().to_bytes();
        assert_eq!(
            hex::encode(Sha256::digest(desc)),
            f[8],
            "descriptor of {ctx}"
        );
        assert_eq!(Descriptor::from_bytes(&desc).unwrap(), *tree.descriptor());
        assert_eq!(tree.geometry().tree_size(), tree.tree_bytes().len() as u64);

        let parallel = build_parallel(params, &data[..], size as u64, 2).unwrap();
        assert_eq!(parallel, tree, "parallel build of {ctx}");

        if size > 0 {
            let v = Verifier::new(tree.descriptor(), tree.tree_bytes().to_vec()).unwrap();
            v.verify_blocks(0, data).unwrap();
        }
        rows += 1;
    }
    assert_eq!(rows, 108);
}
