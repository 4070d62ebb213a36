// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A bounded, seeded loop of random FUSE requests against the spawned daemon: every request
//! gets a well-formed reply (an errno is fine), and the daemon keeps serving correct bytes.
//!
//! This is the stable-toolchain randomized counterpart of a fuzz target: random opcodes
//! (known and unknown), node ids and bodies, plus random `fuse_in_header.len` values. Each
//! reply is checked by the harness (header length equals the used length, unique matches).
//! `RANDOM_REQUESTS` sets the number of requests (default 4000), `RANDOM_SEED` the seed.

mod common;

use common::{still_serving, Share};
use vhost_user_harness::fuse_wire::encode_request_with_len;
use vhost_user_harness::ROOT_ID;

/// Opcodes the kernel never expects a reply to (FORGET, INTERRUPT, BATCH_FORGET) and the
/// session-changing ones (INIT, DESTROY) are left out: the rest must all be answered.
const SKIPPED: [u32; 5] = [2, 26, 36, 38, 42];

struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }

    fn bytes(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.next() as u8).collect()
    }
}

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn random_requests_are_answered_and_the_daemon_keeps_serving() {
    let requests = env_or("RANDOM_REQUESTS", 4000);
    let seed = env_or("RANDOM_SEED", 0x5eed_cafe) | 1;
    let share = Share::start_with(&["--thread-pool-size=2", "--xattr"]);
    let mut fs = share.client();
    let expected = std::fs::read(share.root().join("a/b/c/deep.txt")).unwrap();
    let mut nodes = vec![ROOT_ID, 0, u64::MAX];
    for path in ["a", "a/b", "a/b/c", "a/b/c/deep.txt", "a/empty_dir"] {
        nodes.push(fs.lookup_path(path).unwrap().nodeid);
    }
    let mut rng = Rng(seed);
    let mut answered = 0u64;
    for i in 0..requests {
        let opcode = if rng.below(8) == 0 {
            rng.next() as u32
        } else {
            1 + rng.below(52) as u32
        };
        if SKIPPED.contains(&opcode) {
            continue;
        }
        let nodeid = nodes[rng.below(nodes.len() as u64) as usize];
        let len = [0usize, 1, 8, 16, 24, 40, 64, 80, 128, 300, 4096][rng.below(11) as usize];
        let mut body = rng.bytes(len);
        // Names: sometimes NUL-terminated, sometimes a real name.
        if rng.below(4) == 0 {
            body = b"deep.txt\0".to_vec();
        } else if rng.below(4) == 0 && !body.is_empty() {
            *body.last_mut().unwrap() = 0;
        }
        let ctx =
            format!("request {i}: opcode {opcode} node {nodeid:#x} body {len} B (seed {seed:#x})");
        let reply = if rng.below(10) == 0 {
            // A header length that disagrees with the bytes sent.
            let header_len = rng.below(2 * (40 + len as u64) + 1) as u32;
            let bytes = encode_request_with_len(header_len, opcode, 1_000_000 + i, nodeid, &body);
            fs.send_bytes(&bytes, 1_000_000 + i, 64 * 1024)
        } else {
            fs.raw_request(opcode, nodeid, &body)
        };
        match reply {
            Ok(r) => assert!(r.error <= 0, "{ctx}: positive error {}", r.error),
            Err(e) => panic!(
                "{ctx}: no well-formed reply: {e}; stderr:\n{}",
                share.daemon.stderr()
            ),
        }
        answered += 1;
        if i % 500 == 499 {
            assert!(still_serving(&mut fs), "{ctx}: daemon stopped serving");
        }
    }
    assert!(
        answered > requests / 2,
        "only {answered} of {requests} requests were sent"
    );
    assert!(still_serving(&mut fs));
    // Still correct bytes at the end.
    assert_eq!(fs.read_file("a/b/c/deep.txt").unwrap(), expected);
    eprintln!("{answered} random requests answered (seed {seed:#x})");
}
