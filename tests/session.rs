// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! FUSE session scenarios over vhost-user, driven by `vhost-user-harness`
//! against the daemon binary (see `tests/common`): requests before INIT,
//! DESTROY and a second INIT, BATCH_FORGET, and several request queues served
//! by a worker pool.

mod common;

use common::{errno_of, Share, STILL_SERVING_TIMEOUT};

use vhost_user_harness::abi::{BatchForgetIn, ForgetOne, GetattrIn};
use vhost_user_harness::fuse_wire::encode_request;
use vhost_user_harness::{
    ChainLayout, HarnessConfig, Opcode, VirtioFsClient, HIPRIO_QUEUE, ROOT_ID,
};
use vm_memory::ByteValued;

/// Sends a GETATTR of `nodeid`; returns the reply's errno (0 on success).
fn getattr_errno(fs: &mut VirtioFsClient, nodeid: u64) -> i32 {
    fs.raw_request(
        Opcode::Getattr as u32,
        nodeid,
        GetattrIn::default().as_slice(),
    )
    .unwrap()
    .errno()
}

/// Sends a BATCH_FORGET on the hiprio queue (readable buffer only, as the
/// guest kernel does) and waits until the daemon has returned the chain.
fn batch_forget(fs: &mut VirtioFsClient, count: u32, entries: &[(u64, u64)]) {
    let mut body = BatchForgetIn { count, dummy: 0 }.as_slice().to_vec();
    for &(nodeid, nlookup) in entries {
        body.extend_from_slice(ForgetOne { nodeid, nlookup }.as_slice());
    }
    let unique = fs.next_unique();
    let bytes = encode_request(Opcode::BatchForget as u32, unique, 0, &body);
    let h = fs.harness_mut();
    let pending = h
        .submit(HIPRIO_QUEUE, &bytes, 0, ChainLayout::Simple)
        .unwrap();
    let reply = h.wait_timeout(pending, STILL_SERVING_TIMEOUT).unwrap();
    assert!(
        reply.is_empty(),
        "BATCH_FORGET got a {}-byte reply",
        reply.len()
    );
}

#[test]
fn requests_before_init_get_eio_and_init_then_works() {
    let share = Share::start();
    let mut fs = VirtioFsClient::connect(share.daemon.socket_path()).unwrap();
    fs.harness_mut().set_request_timeout(STILL_SERVING_TIMEOUT);
    assert_eq!(getattr_errno(&mut fs, ROOT_ID), libc::EIO, "GETATTR");
    let lookup = fs.lookup(ROOT_ID, "big.bin").map(|e| e.nodeid);
    assert_eq!(errno_of(&lookup), Some(libc::EIO), "LOOKUP gave {lookup:?}");
    let statfs = fs.statfs(ROOT_ID).map(|s| s.bsize);
    assert_eq!(errno_of(&statfs), Some(libc::EIO), "STATFS gave {statfs:?}");
    // Unknown opcodes are ENOSYS whatever the session state.
    let reply = fs.raw_request(4095, ROOT_ID, &[0; 16]).unwrap();
    assert_eq!(reply.errno(), libc::ENOSYS);
    // A FORGET before INIT is ignored (and never answered).
    fs.forget(ROOT_ID, 1).unwrap();

    fs.init().unwrap();
    assert_eq!(getattr_errno(&mut fs, ROOT_ID), 0);
    assert_eq!(fs.read_file("a/b/c/deep.txt").unwrap(), b"deep\n");
}

#[test]
fn destroy_ends_the_session_and_a_new_init_starts_one() {
    let mut share = Share::start();
    let mut fs = share.client();
    let deep = fs.lookup_path("a/b/c/deep.txt").unwrap().nodeid;
    assert_eq!(getattr_errno(&mut fs, deep), 0);

    // DESTROY is answered with exactly a success header.
    let reply = fs.raw_request(Opcode::Destroy as u32, 0, &[]).unwrap();
    assert_eq!(reply.error, 0, "DESTROY");
    assert!(reply.payload.is_empty(), "DESTROY carried a payload");

    // The session is over until the next INIT; the daemon keeps running.
    assert_eq!(getattr_errno(&mut fs, ROOT_ID), libc::EIO);
    fs.init().unwrap();
    assert_eq!(getattr_errno(&mut fs, ROOT_ID), 0);
    // Node ids of the old session are gone.
    let stale = getattr_errno(&mut fs, deep);
    assert!(
        stale == libc::EBADF || stale == libc::ENOENT,
        "GETATTR of a node id from before DESTROY gave errno {stale}"
    );
    assert_eq!(fs.read_file("a/b/c/deep.txt").unwrap(), b"deep\n");
    assert!(share.daemon.is_running().unwrap());
}

#[test]
fn batch_forget_drops_lookups_and_hostile_counts_are_ignored() {
    let share = Share::start();
    let mut fs = share.client();
    let a = fs.lookup(ROOT_ID, "a").unwrap().nodeid;
    assert_eq!(fs.lookup(ROOT_ID, "a").unwrap().nodeid, a);
    let big = fs.lookup(ROOT_ID, "big.bin").unwrap().nodeid;

    // Two lookups of `a`: forgetting one keeps it, forgetting both drops it.
    batch_forget(&mut fs, 2, &[(a, 1), (big, 1)]);
    assert_eq!(getattr_errno(&mut fs, a), 0, "a after one of two forgets");
    let gone = getattr_errno(&mut fs, big);
    assert!(
        gone == libc::EBADF || gone == libc::ENOENT,
        "big.bin after its only lookup was forgotten: errno {gone}"
    );
    batch_forget(&mut fs, 1, &[(a, 1)]);
    let gone = getattr_errno(&mut fs, a);
    assert!(
        gone == libc::EBADF || gone == libc::ENOENT,
        "a after both lookups were forgotten: errno {gone}"
    );

    // Hostile batches: a count whose size overflows, more entries announced
    // than sent, unknown node ids, an nlookup of u64::MAX, the root. None is
    // answered and the daemon keeps serving.
    batch_forget(&mut fs, u32::MAX, &[(ROOT_ID, 1)]);
    batch_forget(&mut fs, 1000, &[(ROOT_ID, 1)]);
    batch_forget(&mut fs, 2, &[(0, 1), (0xdead_beef, u64::MAX)]);
    let again = fs.lookup(ROOT_ID, "a").unwrap().nodeid;
    batch_forget(&mut fs, 1, &[(again, u64::MAX)]);
    batch_forget(&mut fs, 1, &[(ROOT_ID, u64::MAX)]);
    assert_eq!(getattr_errno(&mut fs, ROOT_ID), 0, "root after forgets");
    assert_eq!(fs.read_file("a/b/c/deep.txt").unwrap(), b"deep\n");
}

#[test]
fn two_request_queues_on_a_worker_pool_read_correctly() {
    let share = Share::start_with(&["--thread-pool-size=2"]);
    let mut config = HarnessConfig::default();
    config.frontend.num_queues = 3; // hiprio + request queues 1 and 2
    let mut fs = VirtioFsClient::connect_with(share.daemon.socket_path(), &config).unwrap();
    fs.init().unwrap();
    let big = std::fs::read(share.root().join("big.bin")).unwrap();
    let small = std::fs::read(share.root().join("page_plus_one")).unwrap();
    let big_node = fs.lookup_path("big.bin").unwrap().nodeid;
    let small_node = fs.lookup_path("a/b/sibling.bin").unwrap().nodeid;
    let big_fh = fs.open(big_node, libc::O_RDONLY).unwrap().fh;
    let small_fh = fs.open(small_node, libc::O_RDONLY).unwrap().fh;
    let sibling = std::fs::read(share.root().join("a/b/sibling.bin")).unwrap();
    assert_ne!(small, sibling);

    // Reader 1 streams big.bin on queue 1, reader 2 reads sibling.bin byte by
    // byte on queue 2; everything is published before anything is collected.
    let chunk = 64 * 1024u32;
    let rounds = 24u64;
    let mut pending = Vec::new();
    for i in 0..rounds {
        fs.set_request_queue(1);
        let p = fs
            .submit_read(big_node, big_fh, i * u64::from(chunk), chunk)
            .unwrap();
        pending.push((1u16, i, p));
        fs.set_request_queue(2);
        let p = fs.submit_read(small_node, small_fh, i * 97, 3).unwrap();
        pending.push((2, i, p));
    }
    // Collect queue 2 first, then queue 1 in reverse order.
    pending.sort_by_key(|(q, i, _)| (std::cmp::Reverse(*q), std::cmp::Reverse(*i)));
    for (queue, i, p) in pending {
        if queue == 1 {
            let start = usize::try_from(i * u64::from(chunk)).unwrap();
            let got = fs.wait_read(p, chunk).unwrap();
            assert!(
                got == big[start..start + chunk as usize],
                "queue 1 chunk {i}"
            );
        } else {
            let start = usize::try_from(i * 97).unwrap();
            assert_eq!(
                fs.wait_read(p, 3).unwrap(),
                sibling[start..start + 3],
                "queue 2 read {i}"
            );
        }
    }
    fs.set_request_queue(1);
    fs.release(big_node, big_fh).unwrap();
    fs.set_request_queue(2);
    fs.release(small_node, small_fh).unwrap();
    assert_eq!(fs.read_file("a/b/c/deep.txt").unwrap(), b"deep\n");
}
