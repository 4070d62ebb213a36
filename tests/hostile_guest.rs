// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Hostile-guest cases of the security test list (docs/testing.md, "Security tests") that
//! the other harness tests do not already cover, grouped like the list: virtqueue and
//! descriptor abuse, FUSE framing, names and paths, privilege. Cases 29, 31 and the device
//! nodes of 30 need root (they mount or mknod); otherwise they print a notice and pass. Each test is named after its
//! case number and asserts the expected result; every one also checks that the daemon still
//! serves afterwards. Resource exhaustion is in `tests/resource_limits.rs`.

mod common;

use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    check_still_serving, errno_of, getattr_buffers, mkfifo, Failures, Share, STILL_SERVING_TIMEOUT,
};

use verity_merkle::MerkleParams;
use vhost_user_harness::abi::{GetxattrIn, InitIn, ReadIn, SetattrIn};
use vhost_user_harness::fuse_wire::push_name;
use vhost_user_harness::virtqueue::{write_indirect_table, RawDescriptor, Segment};
use vhost_user_harness::virtqueue::{DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE};
use vhost_user_harness::{GuestAddress, InitInfo, Opcode, VirtioFsClient, REQUEST_QUEUE, ROOT_ID};
use vm_memory::ByteValued;

/// How long to wait for a used entry a hostile chain may never get.
const HOSTILE_TIMEOUT: Duration = Duration::from_millis(500);
/// `FUSE_IOCTL_UNRESTRICTED` and `FUSE_IOCTL_RETRY`.
const FUSE_IOCTL_UNRESTRICTED: u32 = 1 << 1;
const FUSE_IOCTL_RETRY: u32 = 1 << 2;
/// `FS_IOC_GETFLAGS`.
const FS_IOC_GETFLAGS: u32 = 0x8008_6601;
/// `FATTR_*` bits of SETATTR.
const FATTR_MODE: u32 = 1 << 0;
const FATTR_UID: u32 = 1 << 1;
const FATTR_GID: u32 = 1 << 2;
/// `FUSE_RENAME2` and `FUSE_TMPFILE` (the harness has no helpers for them; fuse-backend-rs's
/// opcode table ends before `FUSE_TMPFILE`).
const FUSE_RENAME2: u32 = Opcode::Rename2 as u32;
const FUSE_TMPFILE: u32 = 51;

fn is_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
}

/// Publishes one ring descriptor `desc` as a chain, kicks, and returns the used length if
/// the daemon returned the chain.
fn publish_one(fs: &mut VirtioFsClient, desc: RawDescriptor) -> Option<u32> {
    let (q, mem) = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap();
    let d = q.take_descriptors(1).unwrap();
    q.write_descriptor(mem, d[0], desc).unwrap();
    q.publish_raw(mem, d[0], d, Vec::new()).unwrap();
    q.kick().unwrap();
    fs.harness_mut()
        .wait_used_raw(REQUEST_QUEUE, HOSTILE_TIMEOUT)
        .ok()
        .map(|u| u.len)
}

// ---- virtqueue and descriptors ----------------------------------------------------------

/// Case 2: buffers straddling the end of guest memory (the harness has one region, so its
/// end is the "hole"): the chain is dropped and nothing is written to the part that exists.
#[test]
fn case02_buffers_straddling_the_end_of_memory_are_dropped_without_partial_writes() {
    let mut f = Failures::default();
    for readable_straddles in [false, true] {
        let share = Share::start();
        let mut fs = share.client();
        let (q, mem) = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap();
        let (req, len, _) = getattr_buffers(mem, 77);
        let end = mem.size() as u64;
        let tail = GuestAddress(end - 8);
        mem.fill(tail, 8, 0xa5).unwrap();
        let chain = if readable_straddles {
            let bytes = mem.read(req, len as usize).unwrap();
            let straddling = GuestAddress(end - 16);
            mem.write(straddling, &bytes[..16]).unwrap();
            let reply = mem.alloc(4096, 8).unwrap();
            vec![
                Segment::readable(straddling, len),
                Segment::writable(reply, 4096),
            ]
        } else {
            vec![Segment::readable(req, len), Segment::writable(tail, 4096)]
        };
        q.add_chain(mem, &chain).unwrap();
        q.kick().unwrap();
        let used = fs
            .harness_mut()
            .wait_used_raw(REQUEST_QUEUE, HOSTILE_TIMEOUT);
        let what = if readable_straddles {
            "readable buffer past the end"
        } else {
            "writable buffer past the end"
        };
        f.check(
            used.as_ref().map_or(true, |u| u.len == 0),
            format!("{what}: used {used:?}, want a dropped chain"),
        );
        let mem = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap().1;
        if !readable_straddles {
            f.check(
                mem.read(tail, 8).unwrap() == [0xa5; 8],
                format!("{what}: the part inside memory was written"),
            );
        }
        check_still_serving(&mut f, &mut fs, &share, what);
    }
    f.assert_none();
}

/// Case 6: indirect descriptors of length 0, of a length that is not a multiple of 16, and
/// an indirect table that itself holds an indirect descriptor: dropped, daemon alive.
#[test]
fn case06_malformed_indirect_tables_are_dropped() {
    let mut f = Failures::default();
    for what in ["len 0", "len 17", "nested indirect"] {
        let share = Share::start();
        let mut fs = share.client();
        let mem = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap().1;
        let (req, len, reply) = getattr_buffers(mem, 78);
        let inner = mem.alloc(32, 16).unwrap();
        write_indirect_table(
            mem,
            inner,
            &[
                RawDescriptor {
                    addr: req.0,
                    len,
                    flags: DESC_F_NEXT,
                    next: 1,
                },
                RawDescriptor {
                    addr: reply.0,
                    len: 4096,
                    flags: DESC_F_WRITE,
                    next: 0,
                },
            ],
        )
        .unwrap();
        let (table, table_len) = match what {
            "len 0" => (inner, 0),
            "len 17" => (inner, 17),
            _ => {
                let outer = mem.alloc(16, 16).unwrap();
                write_indirect_table(
                    mem,
                    outer,
                    &[RawDescriptor {
                        addr: inner.0,
                        len: 32,
                        flags: DESC_F_INDIRECT,
                        next: 0,
                    }],
                )
                .unwrap();
                (outer, 16)
            }
        };
        let used = publish_one(
            &mut fs,
            RawDescriptor {
                addr: table.0,
                len: table_len,
                flags: DESC_F_INDIRECT,
                next: 0,
            },
        );
        f.check(
            used.is_none_or(|l| l == 0),
            format!("{what}: used length {used:?}, want a dropped chain"),
        );
        check_still_serving(&mut f, &mut fs, &share, what);
    }
    f.assert_none();
}

/// Case 8: a writable buffer too short for `fuse_out_header` (16 bytes): dropped, nothing
/// written into it.
#[test]
fn case08_reply_buffer_shorter_than_a_header_is_dropped() {
    let share = Share::start();
    let mut fs = share.client();
    let mut f = Failures::default();
    let (q, mem) = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap();
    let (req, len, reply) = getattr_buffers(mem, 79);
    mem.fill(reply, 16, 0x5a).unwrap();
    q.add_chain(
        mem,
        &[Segment::readable(req, len), Segment::writable(reply, 8)],
    )
    .unwrap();
    q.kick().unwrap();
    let used = fs
        .harness_mut()
        .wait_used_raw(REQUEST_QUEUE, HOSTILE_TIMEOUT);
    f.check(
        used.as_ref().map_or(true, |u| u.len == 0),
        format!("used {used:?}, want a dropped chain"),
    );
    let mem = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap().1;
    f.check(
        mem.read(reply, 16).unwrap() == [0x5a; 16],
        "the short reply buffer was written",
    );
    check_still_serving(&mut f, &mut fs, &share, "8-byte reply buffer");
    f.assert_none();
}

/// Case 9: the same head published twice while in flight. The daemon cannot tell the two
/// apart: each publication is served on its own (used entries name that head and carry a
/// whole reply), the used ring stays consistent and the daemon keeps serving.
#[test]
fn case09_duplicate_head_in_the_avail_ring() {
    let share = Share::start();
    let mut fs = share.client();
    let mut f = Failures::default();
    let (q, mem) = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap();
    let (req, len, reply) = getattr_buffers(mem, 80);
    let head = q
        .add_chain(
            mem,
            &[Segment::readable(req, len), Segment::writable(reply, 4096)],
        )
        .unwrap();
    q.publish_raw(mem, head, Vec::new(), Vec::new()).unwrap();
    q.kick().unwrap();
    let mut used = Vec::new();
    while let Ok(u) = fs
        .harness_mut()
        .wait_used_raw(REQUEST_QUEUE, HOSTILE_TIMEOUT)
    {
        used.push(u);
    }
    f.check(
        !used.is_empty() && used.len() <= 2,
        format!("{} used entries for two publications", used.len()),
    );
    for u in &used {
        f.check(
            u.id == u32::from(head) && (u.len == 0 || u.len as usize > 16),
            format!("used entry {u:?} for head {head}"),
        );
    }
    let mem = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap().1;
    let header = mem.read(reply, 16).unwrap();
    f.check(
        header[8..16] == 80u64.to_le_bytes(),
        "the reply does not carry the request's unique",
    );
    check_still_serving(&mut f, &mut fs, &share, "duplicate head");
    f.assert_none();
}

/// Case 10: `avail.idx` moved more than the queue size ahead. The daemon refuses the ring
/// (nothing is read past it) without spinning, and serves again once the index is sane.
#[test]
fn case10_avail_index_far_ahead_is_refused_and_the_queue_recovers() {
    let share = Share::start();
    let mut fs = share.client();
    let mut f = Failures::default();
    let (q, mem) = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap();
    let sane = q.avail_idx();
    let ahead = sane.wrapping_add(q.size()).wrapping_add(7);
    q.set_avail_idx_raw(mem, ahead).unwrap();
    q.kick().unwrap();
    let used = fs
        .harness_mut()
        .wait_used_raw(REQUEST_QUEUE, HOSTILE_TIMEOUT);
    f.check(
        used.is_err(),
        format!("a ring running ahead produced {used:?}"),
    );
    let (q, mem) = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap();
    q.set_avail_idx_raw(mem, sane).unwrap();
    check_still_serving(&mut f, &mut fs, &share, "avail.idx far ahead");
    f.assert_none();
}

// ---- FUSE framing and state machine -----------------------------------------------------

fn init_in(major: u32, minor: u32) -> InitIn {
    InitIn {
        major,
        minor,
        max_readahead: 128 * 1024,
        flags: vhost_user_harness::fuse_client::DEFAULT_INIT_FLAGS,
    }
}

/// Case 14: INIT versions. A major other than 7 gets an answer carrying only our major
/// (the kernel then retries with 7) or EPROTO, and no session; a minor below the oldest
/// supported one is EPROTO. A second INIT starts a new session (a guest that reboots
/// without DESTROY must be able to mount again).
#[test]
fn case14_init_versions_and_a_second_init() {
    let share = Share::start();
    let mut f = Failures::default();
    let mut fs = VirtioFsClient::connect(share.daemon.socket_path()).unwrap();
    for (major, minor) in [(8, 31), (6, 31), (0, 0), (u32::MAX, 0)] {
        let r: Result<InitInfo, _> = fs.init_with(init_in(major, minor));
        match &r {
            Ok(info) => f.check(
                info.out.major == 7,
                format!("INIT {major}.{minor} answered major {}", info.out.major),
            ),
            Err(e) => f.check(
                e.errno() == Some(libc::EPROTO),
                format!("INIT {major}.{minor} gave {e}"),
            ),
        }
        let getattr = fs.getattr(ROOT_ID).map(|a| a.ino);
        if major != 7 {
            f.check(
                errno_of(&getattr) == Some(libc::EIO),
                format!("after INIT {major}.{minor} GETATTR gave {getattr:?}, want EIO"),
            );
        }
    }
    for minor in [0, 5, 12] {
        let r = fs.init_with(init_in(7, minor)).map(|i| i.out.minor);
        f.check(
            errno_of(&r) == Some(libc::EPROTO),
            format!("INIT 7.{minor} gave {r:?}, want EPROTO"),
        );
    }
    fs.init().unwrap();
    let deep = fs.lookup_path("a/b/c/deep.txt").unwrap();
    let again = fs.init();
    f.check(again.is_ok(), format!("second INIT gave {again:?}"));
    f.check(
        fs.read_file("a/b/c/deep.txt").unwrap() == b"deep\n",
        "reading after a second INIT",
    );
    let _ = deep;
    check_still_serving(&mut f, &mut fs, &share, "INIT versions");
    f.assert_none();
}

/// Case 15: node id 0, a node id never handed out, and a file handle never opened:
/// ENOENT/EBADF, never a crash or another inode's data.
#[test]
fn case15_unknown_node_ids_and_handles() {
    let share = Share::start();
    let mut fs = share.client();
    let mut f = Failures::default();
    for nodeid in [0, 0xdead_beef, u64::MAX] {
        let r = fs.getattr(nodeid).map(|a| a.ino);
        f.check(
            matches!(errno_of(&r), Some(libc::ENOENT) | Some(libc::EBADF)),
            format!("GETATTR of node {nodeid:#x} gave {r:?}"),
        );
        let r = fs.lookup(nodeid, "a").map(|e| e.nodeid);
        f.check(
            matches!(errno_of(&r), Some(libc::ENOENT) | Some(libc::EBADF)),
            format!("LOOKUP under node {nodeid:#x} gave {r:?}"),
        );
    }
    let big = fs.lookup_path("big.bin").unwrap().nodeid;
    let fh = fs.open(big, libc::O_RDONLY).unwrap().fh;
    for bad in [fh + 1000, u64::MAX] {
        let r = fs.read(big, bad, 0, 4096);
        f.check(
            errno_of(&r) == Some(libc::EBADF),
            format!(
                "READ with unknown fh {bad:#x} gave {:?}",
                r.map(|d| d.len())
            ),
        );
        let r = fs.release(big, bad);
        f.check(
            errno_of(&r) == Some(libc::EBADF),
            format!("RELEASE of unknown fh {bad:#x} gave {r:?}"),
        );
    }
    // A handle is tied to its inode.
    let empty = fs.lookup_path("empty").unwrap().nodeid;
    let r = fs.read(empty, fh, 0, 4096).map(|d| d.len());
    f.check(
        errno_of(&r) == Some(libc::EBADF),
        format!("READ of another inode's fh gave {r:?}"),
    );
    fs.release(big, fh).unwrap();
    check_still_serving(&mut f, &mut fs, &share, "unknown nodes and handles");
    f.assert_none();
}

/// Case 16: FORGET with `nlookup = u64::MAX`, repeated: the inode goes once, later use is
/// EBADF/ENOENT, a new LOOKUP of the name works, and the root survives any FORGET.
#[test]
fn case16_forget_with_huge_and_repeated_counts() {
    let share = Share::start();
    let mut fs = share.client();
    let mut f = Failures::default();
    let a = fs.lookup(ROOT_ID, "a").unwrap().nodeid;
    fs.lookup(ROOT_ID, "a").unwrap();
    for _ in 0..3 {
        fs.forget(a, u64::MAX).unwrap();
    }
    let r = fs.getattr(a).map(|x| x.ino);
    f.check(
        matches!(errno_of(&r), Some(libc::EBADF) | Some(libc::ENOENT)),
        format!("GETATTR of a forgotten node gave {r:?}"),
    );
    fs.forget(ROOT_ID, u64::MAX).unwrap();
    fs.forget(0, 1).unwrap();
    f.check(fs.getattr(ROOT_ID).is_ok(), "the root was forgotten");
    f.check(
        fs.read_file("a/b/c/deep.txt").unwrap() == b"deep\n",
        "a new LOOKUP after the forgets",
    );
    f.assert_none();
}

/// Case 18: READ at offsets near `u64::MAX`, of size 0, and over the 1 MiB cap.
#[test]
fn case18_read_offsets_and_sizes() {
    let share = Share::start();
    let mut fs = share.client();
    let mut f = Failures::default();
    let big = fs.lookup_path("big.bin").unwrap().nodeid;
    let fh = fs.open(big, libc::O_RDONLY).unwrap().fh;
    for offset in [u64::MAX - 10, u64::MAX, 1 << 63] {
        let r = fs.read(big, fh, offset, 4096).map(|d| d.len());
        f.check(
            matches!(r, Ok(0)) || errno_of(&r) == Some(libc::EINVAL),
            format!("READ at {offset:#x} gave {r:?}, want 0 bytes or EINVAL"),
        );
    }
    let r = fs.read(big, fh, 0, 0).map(|d| d.len());
    f.check(matches!(r, Ok(0)), format!("READ of 0 bytes gave {r:?}"));
    let size = common::BIG_FILE_SIZE as u64;
    let r = fs.read(big, fh, size - 10, 4096).map(|d| d.len());
    f.check(matches!(r, Ok(10)), format!("READ over EOF gave {r:?}"));
    for size in [(1u32 << 20) + 1, u32::MAX] {
        let body = ReadIn {
            fh,
            offset: 0,
            size,
            ..Default::default()
        };
        let reply = fs
            .raw_request_with_capacity(Opcode::Read as u32, big, body.as_slice(), 4096)
            .unwrap();
        f.check(
            reply.errno() == libc::ENOMEM,
            format!("READ of {size} bytes gave errno {}", reply.errno()),
        );
    }
    // The largest READ a guest sends (max_pages = 256) is served.
    let r = fs.read(big, fh, 0, 1 << 20).map(|d| d.len());
    f.check(
        matches!(r, Ok(n) if n == 1 << 20),
        format!("1 MiB READ gave {r:?}"),
    );
    fs.release(big, fh).unwrap();
    f.assert_none();
}

/// Case 19 (sizes): READDIR and READDIRPLUS over 1 MiB are ENOMEM, even with a reply buffer
/// that large; a size smaller than one entry returns nothing, without looping.
#[test]
fn case19_readdir_sizes() {
    let share = Share::start();
    let mut fs = share.client();
    let mut f = Failures::default();
    let fh = fs.opendir(ROOT_ID).unwrap().fh;
    for opcode in [Opcode::Readdir, Opcode::Readdirplus] {
        let size = (1u32 << 20) + 4096;
        let body = ReadIn {
            fh,
            size,
            ..Default::default()
        };
        let reply = fs
            .raw_request_with_capacity(opcode as u32, ROOT_ID, body.as_slice(), size as usize + 64)
            .unwrap();
        f.check(
            reply.errno() == libc::ENOMEM,
            format!("{opcode:?} of {size} bytes gave errno {}", reply.errno()),
        );
    }
    let tiny = fs.readdir(ROOT_ID, fh, 0, 8);
    f.check(
        matches!(&tiny, Ok(v) if v.is_empty()) || errno_of(&tiny) == Some(libc::EINVAL),
        format!("READDIR of 8 bytes gave {tiny:?}"),
    );
    fs.releasedir(ROOT_ID, fh).unwrap();
    f.assert_none();
}

/// Case 20: GETXATTR / LISTXATTR size 0 is a probe answered with the needed size; sizes
/// above 64 KiB are E2BIG.
#[test]
fn case20_xattr_sizes() {
    let share = Share::start_with(&["--xattr"]);
    let mut fs = share.client();
    let mut f = Failures::default();
    let file = fs.lookup_path("page_plus_one").unwrap().nodeid;
    let probe = fs.listxattr(file, 0);
    f.check(
        matches!(probe, Ok(vhost_user_harness::XattrReply::Size(_))),
        format!("LISTXATTR probe gave {probe:?}"),
    );
    for size in [65_537u32, 1 << 20, u32::MAX] {
        let body = GetxattrIn { size, padding: 0 };
        let reply = fs
            .raw_request_with_capacity(Opcode::Listxattr as u32, file, body.as_slice(), 4096)
            .unwrap();
        f.check(
            reply.errno() == libc::E2BIG,
            format!("LISTXATTR of {size} gave errno {}", reply.errno()),
        );
        let mut body = body.as_slice().to_vec();
        push_name(&mut body, b"user.anything");
        let reply = fs
            .raw_request_with_capacity(Opcode::Getxattr as u32, file, &body, 4096)
            .unwrap();
        f.check(
            reply.errno() == libc::E2BIG,
            format!("GETXATTR of {size} gave errno {}", reply.errno()),
        );
    }
    check_still_serving(&mut f, &mut fs, &share, "xattr sizes");
    f.assert_none();
}

/// Case 21: `FUSE_IOCTL_UNRESTRICTED` is EPERM; no reply ever asks for a retry.
#[test]
fn case21_unrestricted_ioctls_are_refused_and_never_retried() {
    let share = Share::start();
    let mut fs = share.client();
    let mut f = Failures::default();
    let file = fs.lookup_path("page_plus_one").unwrap().nodeid;
    let fh = fs.open(file, libc::O_RDONLY).unwrap().fh;
    let r = fs.ioctl(file, fh, FS_IOC_GETFLAGS, FUSE_IOCTL_UNRESTRICTED, &[], 8);
    f.check(
        errno_of(&r) == Some(libc::EPERM),
        format!("unrestricted GETFLAGS gave {r:?}"),
    );
    let ok = fs.ioctl(file, fh, FS_IOC_GETFLAGS, 0, &[], 8).unwrap();
    f.check(
        ok.flags & FUSE_IOCTL_RETRY == 0 && ok.result == 0,
        format!("GETFLAGS reply {ok:?}"),
    );
    fs.release(file, fh).unwrap();
    f.assert_none();
}

// ---- names and paths --------------------------------------------------------------------

/// Case 26: the CVE-2026-47243 replay (SYMLINK named `/etc/cron.d/pwn`) and every other
/// name-creating request with absolute, `..` or slash names: EROFS, and nothing appears
/// inside or next to the share.
#[test]
fn case26_creating_requests_with_hostile_names_are_erofs_and_create_nothing() {
    let share = Share::start();
    let before = share.snapshot();
    let outer_before: Vec<_> = std::fs::read_dir(share.outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    let mut fs = share.client();
    let mut f = Failures::default();
    let file = fs.lookup_path("page_plus_one").unwrap().nodeid;
    let names: [&[u8]; 5] = [b"/etc/cron.d/pwn", b"../pwned", b"a/pwned", b"..", b""];
    for name in names {
        let show = String::from_utf8_lossy(name).into_owned();
        let mut results = vec![
            (
                "symlink",
                errno_of(&fs.symlink(ROOT_ID, name, "/bin/sh").map(|e| e.nodeid)),
            ),
            (
                "mknod",
                errno_of(
                    &fs.mknod(ROOT_ID, name, libc::S_IFREG | 0o755, 0)
                        .map(|e| e.nodeid),
                ),
            ),
            (
                "mkdir",
                errno_of(&fs.mkdir(ROOT_ID, name, 0o755).map(|e| e.nodeid)),
            ),
            (
                "create",
                errno_of(
                    &fs.create(ROOT_ID, name, 0o644, libc::O_WRONLY | libc::O_CREAT)
                        .map(|e| e.0.nodeid),
                ),
            ),
            (
                "link",
                errno_of(&fs.link(file, ROOT_ID, name).map(|e| e.nodeid)),
            ),
            (
                "rename",
                errno_of(&fs.rename(ROOT_ID, "empty", ROOT_ID, name)),
            ),
        ];
        let mut body = Vec::new();
        body.extend_from_slice(&ROOT_ID.to_le_bytes());
        body.extend_from_slice(&0u64.to_le_bytes()); // flags, padding
        push_name(&mut body, b"empty");
        push_name(&mut body, name);
        results.push((
            "rename2",
            Some(
                fs.raw_request(FUSE_RENAME2, ROOT_ID, &body)
                    .unwrap()
                    .errno(),
            ),
        ));
        for (op, errno) in results {
            f.check(
                errno == Some(libc::EROFS),
                format!("{op} of {show:?} gave {errno:?}, want EROFS"),
            );
        }
    }
    let reply = fs.raw_request(FUSE_TMPFILE, ROOT_ID, &[0; 16]).unwrap();
    f.check(
        reply.errno() == libc::EROFS,
        format!("TMPFILE gave errno {}", reply.errno()),
    );
    drop(fs);
    assert_eq!(share.snapshot(), before, "the share changed");
    let outer_after: Vec<_> = std::fs::read_dir(share.outer.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(
        outer_after, outer_before,
        "something appeared next to the share"
    );
    assert!(
        !Path::new("/etc/cron.d/pwn").exists(),
        "/etc/cron.d/pwn exists on the host"
    );
    f.assert_none();
}

/// Unmounts `path` (lazily) when dropped, even if the test fails.
struct Unmount(std::path::PathBuf);

impl Drop for Unmount {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Case 29: a procfs inside the share (the only place magic links exist): `/proc` links are
/// symlink inodes the daemon never follows. LOOKUP through them is ENOTDIR, OPEN is refused,
/// READLINK returns the link text. Needs root to mount; otherwise a notice and a pass.
#[test]
fn case29_proc_magic_links_are_never_followed() {
    if !is_root() {
        eprintln!("case29: not root, cannot mount procfs; skipped");
        return;
    }
    let share = Share::start();
    let proc_dir = share.root().join("proc");
    std::fs::create_dir(&proc_dir).unwrap();
    let mounted = Command::new("mount")
        .args(["-t", "proc", "proc"])
        .arg(&proc_dir)
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("case29: cannot mount procfs here; skipped");
        return;
    }
    let _guard = Unmount(proc_dir);
    let mut fs = share.client();
    let mut f = Failures::default();
    let pid = share.daemon.pid().to_string();
    for link in ["proc/self", "proc/thread-self"]
        .into_iter()
        .map(String::from)
        .chain(["root", "cwd", "exe"].map(|l| format!("proc/{pid}/{l}")))
        .chain([format!("proc/{pid}/fd/0")])
    {
        let e = match fs.lookup_path(&link) {
            Ok(e) => e,
            Err(e) => {
                // Permission to look at another process's links may be denied: that is
                // not following them either.
                f.check(
                    matches!(
                        e.errno(),
                        Some(libc::EACCES) | Some(libc::EPERM) | Some(libc::ENOENT)
                    ),
                    format!("LOOKUP {link}: {e}"),
                );
                continue;
            }
        };
        f.check(
            e.attr.mode & libc::S_IFMT == libc::S_IFLNK,
            format!("{link} is not a symlink inode (mode {:#o})", e.attr.mode),
        );
        let through = fs.lookup(e.nodeid, "etc").map(|x| x.nodeid);
        f.check(
            errno_of(&through) == Some(libc::ENOTDIR),
            format!("LOOKUP {link}/etc gave {through:?}, want ENOTDIR"),
        );
        let opened = fs.open(e.nodeid, libc::O_RDONLY).map(|o| o.fh);
        f.check(
            matches!(
                errno_of(&opened),
                Some(libc::EBADF) | Some(libc::ELOOP) | Some(libc::EACCES)
            ),
            format!("OPEN of {link} gave {opened:?}"),
        );
        if let Ok(text) = fs.readlink(e.nodeid) {
            f.check(!text.is_empty(), format!("READLINK {link} is empty"));
        }
    }
    check_still_serving(&mut f, &mut fs, &share, "procfs in the share");
    drop(fs);
    f.assert_none();
}

/// Case 30: FIFO, socket, character and block device entries: visible with their type,
/// GETATTR works, OPEN and OPENDIR are refused (EBADF/EACCES) promptly, never blocking on
/// the FIFO. Device nodes need root (otherwise only the FIFO and the socket are checked).
#[test]
fn case30_special_files_are_never_opened() {
    let share = Share::start();
    let root = share.root();
    let _listener = UnixListener::bind(root.join("sock")).unwrap();
    mkfifo(&root.join("fifo2"));
    let mut specials = vec![("fifo2", libc::S_IFIFO), ("sock", libc::S_IFSOCK)];
    if is_root() {
        let made = |args: &[&str]| {
            Command::new("mknod")
                .args(args)
                .status()
                .is_ok_and(|s| s.success())
        };
        let null = root.join("null");
        let loopdev = root.join("loopdev");
        if made(&[null.to_str().unwrap(), "c", "1", "3"]) {
            specials.push(("null", libc::S_IFCHR));
        }
        if made(&[loopdev.to_str().unwrap(), "b", "7", "200"]) {
            specials.push(("loopdev", libc::S_IFBLK));
        }
    }
    let mut fs = share.client();
    fs.harness_mut().set_request_timeout(STILL_SERVING_TIMEOUT);
    let mut f = Failures::default();
    for (name, kind) in specials {
        let e = fs.lookup(ROOT_ID, name).unwrap();
        f.check(
            e.attr.mode & libc::S_IFMT == kind,
            format!("{name}: mode {:#o}", e.attr.mode),
        );
        f.check(fs.getattr(e.nodeid).is_ok(), format!("GETATTR of {name}"));
        for flags in [libc::O_RDONLY, libc::O_RDONLY | libc::O_NONBLOCK] {
            let started = Instant::now();
            let opened = fs.open(e.nodeid, flags).map(|o| o.fh);
            f.check(
                matches!(errno_of(&opened), Some(libc::EBADF) | Some(libc::EACCES)),
                format!("OPEN of {name} (flags {flags:#x}) gave {opened:?}"),
            );
            f.check(
                started.elapsed() < Duration::from_secs(1),
                format!("OPEN of {name} took {:?}", started.elapsed()),
            );
        }
        let opened = fs.opendir(e.nodeid).map(|o| o.fh);
        f.check(
            matches!(
                errno_of(&opened),
                Some(libc::EBADF) | Some(libc::EACCES) | Some(libc::ENOTDIR)
            ),
            format!("OPENDIR of {name} gave {opened:?}"),
        );
    }
    check_still_serving(&mut f, &mut fs, &share, "special files");
    f.assert_none();
}

/// Case 31 (bind mount): a verified share; after the daemon started, another directory is
/// bind-mounted over a listed one. Nothing of the mounted directory reaches the guest: its
/// names are not in the manifest (ENOENT), the listed names it hides are gone (ENOENT), and
/// the mounted directory itself is accepted only if it matches the manifest entry (else
/// EIO). Needs root to mount; otherwise a notice and a pass.
#[test]
fn case31_a_bind_mount_added_after_start_is_not_served() {
    if !is_root() {
        eprintln!("case31: not root, cannot bind-mount; skipped");
        return;
    }
    let outer = tempfile::tempdir().unwrap();
    let root = outer.path().join("share");
    std::fs::create_dir_all(root.join("dir")).unwrap();
    std::fs::write(root.join("dir/listed"), b"sealed\n").unwrap();
    let manifest = common::seal::seal(&root, &MerkleParams::default(), None);
    std::fs::write(outer.path().join("manifest"), manifest.to_bytes()).unwrap();
    let evil = outer.path().join("evil");
    std::fs::create_dir(&evil).unwrap();
    std::fs::write(evil.join("planted"), b"not sealed\n").unwrap();
    std::fs::write(evil.join("listed"), b"not what was sealed\n").unwrap();
    let daemon = common::spawn_unconfined(
        &root,
        [format!(
            "--manifest={}",
            outer.path().join("manifest").display()
        )],
    );
    let mounted = Command::new("mount")
        .arg("--bind")
        .arg(&evil)
        .arg(root.join("dir"))
        .status()
        .is_ok_and(|s| s.success());
    if !mounted {
        eprintln!("case31: cannot bind-mount here; skipped");
        return;
    }
    let _guard = Unmount(root.join("dir"));
    let mut fs = VirtioFsClient::connect_and_init(daemon.socket_path()).unwrap();
    let mut f = Failures::default();
    match fs.lookup(ROOT_ID, "dir") {
        Err(e) => f.check(
            e.errno() == Some(libc::EIO),
            format!("LOOKUP dir under the bind mount gave {e}, want success or EIO"),
        ),
        Ok(dir) => {
            let planted = fs.lookup(dir.nodeid, "planted").map(|e| e.nodeid);
            f.check(
                errno_of(&planted) == Some(libc::ENOENT),
                format!("LOOKUP of the planted name gave {planted:?}, want ENOENT"),
            );
            let got = fs.read_file("dir/listed");
            f.check(
                matches!(got.as_ref().err().and_then(|e| e.errno()), Some(libc::EIO)),
                format!("the shadowing dir/listed gave {got:?}, want EIO"),
            );
        }
    }
    drop(fs);
    f.assert_none();
}

// ---- privilege and bypass ---------------------------------------------------------------

/// Case 32 (beyond `every_mutation_is_erofs`): chown, setuid/setgid bits, POSIX ACL and
/// trusted xattrs, O_TRUNC opens: EROFS, and the host file is unchanged.
#[test]
fn case32_privilege_changes_are_erofs() {
    let share = Share::start();
    let before = share.snapshot();
    let mut fs = share.client();
    let mut f = Failures::default();
    let file = fs.lookup_path("page_plus_one").unwrap().nodeid;
    let setattrs = [
        (
            "chown",
            SetattrIn {
                valid: FATTR_UID | FATTR_GID,
                uid: 0,
                gid: 0,
                ..Default::default()
            },
        ),
        (
            "setuid",
            SetattrIn {
                valid: FATTR_MODE,
                mode: libc::S_IFREG | 0o4755,
                ..Default::default()
            },
        ),
        (
            "setgid",
            SetattrIn {
                valid: FATTR_MODE,
                mode: libc::S_IFREG | 0o2755,
                ..Default::default()
            },
        ),
    ];
    for (what, attr) in setattrs {
        let r = fs.setattr(file, attr).map(|a| a.mode);
        f.check(
            errno_of(&r) == Some(libc::EROFS),
            format!("{what} gave {r:?}"),
        );
    }
    for name in [
        "system.posix_acl_access",
        "system.posix_acl_default",
        "trusted.overlay.opaque",
        "security.capability",
    ] {
        let r = fs.setxattr(file, name, &[2, 0, 0, 0], 0);
        f.check(
            errno_of(&r) == Some(libc::EROFS),
            format!("setxattr {name} gave {r:?}"),
        );
        let r = fs.removexattr(file, name);
        f.check(
            errno_of(&r) == Some(libc::EROFS),
            format!("removexattr {name} gave {r:?}"),
        );
    }
    for flags in [libc::O_RDONLY | libc::O_TRUNC, libc::O_RDWR | libc::O_TRUNC] {
        let r = fs.open(file, flags).map(|o| o.fh);
        f.check(
            errno_of(&r) == Some(libc::EROFS),
            format!("open {flags:#x} gave {r:?}"),
        );
    }
    drop(fs);
    assert_eq!(share.snapshot(), before, "the host tree changed");
    f.assert_none();
}
