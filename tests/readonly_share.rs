// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! End-to-end scenarios for a read-only share, driven over vhost-user by
//! `vhost-user-harness` (no VM).
//!
//! The daemon is `$VERITYFSD_BIN` if set, else the `verityfsd` binary of this
//! package, started with `--shared-dir D --sandbox=none --seccomp=none
//! --readonly --cache=auto` on a socket in a temporary directory. The
//! assertions encode verityfsd's specification (read-only by construction),
//! not whatever another virtio-fs daemon happens to do.

mod common;

use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::Path;
use std::time::Duration;

use common::{
    check_still_serving, errno_of, getattr_buffers, Failures, Share, BIG_FILE_SIZE, PAGE_PLUS_ONE,
    STILL_SERVING_TIMEOUT,
};

use vhost_user_harness::abi::{InitIn, SetattrIn};
use vhost_user_harness::fuse_wire::encode_request_with_len;
use vhost_user_harness::virtqueue::{RawDescriptor, Segment, DESC_F_NEXT};
use vhost_user_harness::{
    ChainLayout, DirEntry, GuestAddress, HarnessConfig, Opcode, VirtioFsClient, REQUEST_QUEUE,
    ROOT_ID,
};

/// How long a disconnected daemon gets to exit.
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
/// A guest address far beyond the harness's guest memory.
const OUTSIDE_MEMORY: GuestAddress = GuestAddress(1 << 40);
/// A guest address where `addr + len` overflows.
const OVERFLOWING: GuestAddress = GuestAddress(u64::MAX - 8);
/// How long to wait for a reply that a hostile chain may never get.
const HOSTILE_TIMEOUT: Duration = Duration::from_millis(500);

/// `FS_IOC_GETVERSION`-like command nobody implements (`_IOR('x', 0x7f, u32)`).
const UNKNOWN_IOCTL: u32 = 0x8004_787f;
/// FUSE INIT flags (include/uapi/linux/fuse.h).
const FUSE_ASYNC_READ: u32 = 1 << 0;
const FUSE_WRITEBACK_CACHE: u32 = 1 << 16;
const FUSE_MAX_PAGES: u32 = 1 << 22;
/// `FATTR_MODE` and `FATTR_SIZE` for SETATTR.
const FATTR_MODE: u32 = 1 << 0;
const FATTR_SIZE: u32 = 1 << 3;
/// `DT_*` values used in dirents.
const DT_FIFO: u32 = 1;
const DT_DIR: u32 = 4;
const DT_REG: u32 = 8;
const DT_LNK: u32 = 10;

fn names(entries: &[DirEntry]) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = entries
        .iter()
        .map(|e| e.name.clone())
        .filter(|n| n != b"." && n != b"..")
        .collect();
    v.sort();
    v
}

fn dt_of(ft: std::fs::FileType) -> u32 {
    if ft.is_dir() {
        DT_DIR
    } else if ft.is_symlink() {
        DT_LNK
    } else if ft.is_fifo() {
        DT_FIFO
    } else {
        DT_REG
    }
}

/// Walks the host tree and checks every entry through the daemon.
fn check_tree(fs: &mut VirtioFsClient, host: &Path, rel: &str) {
    let listed = fs.list_dir(rel).unwrap();
    let mut host_names: Vec<Vec<u8>> = std::fs::read_dir(host)
        .unwrap()
        .map(|e| e.unwrap().file_name().as_bytes().to_vec())
        .collect();
    host_names.sort();
    assert_eq!(names(&listed), host_names, "listing of {rel:?}");
    for entry in listed.iter().filter(|e| e.name != b"." && e.name != b"..") {
        let name = String::from_utf8(entry.name.clone()).unwrap();
        let host_path = host.join(&name);
        let child = if rel.is_empty() {
            name.clone()
        } else {
            format!("{rel}/{name}")
        };
        let meta = std::fs::symlink_metadata(&host_path).unwrap();
        assert_eq!(
            entry.kind,
            dt_of(meta.file_type()),
            "dirent type of {child}"
        );
        let looked_up = fs.lookup_path(&child).unwrap();
        assert_eq!(looked_up.attr.size, meta.size(), "size of {child}");
        assert_eq!(
            looked_up.attr.mode & libc::S_IFMT,
            meta.mode() & libc::S_IFMT,
            "type of {child}"
        );
        let ft = meta.file_type();
        if ft.is_dir() {
            check_tree(fs, &host_path, &child);
        } else if ft.is_symlink() {
            let target = std::fs::read_link(&host_path).unwrap();
            assert_eq!(
                fs.readlink(looked_up.nodeid).unwrap(),
                target.as_os_str().as_bytes(),
                "{child}"
            );
        } else if ft.is_file() {
            let got = fs.read_file(&child).unwrap();
            let want = std::fs::read(&host_path).unwrap();
            assert!(
                got == want,
                "{child}: {} bytes read, {} on host",
                got.len(),
                want.len()
            );
        }
        // FIFOs are only looked up: opening one must not be needed to list it.
    }
}

#[test]
fn sample_tree_reads_back_identically() {
    let share = Share::start();
    let mut fs = share.client();
    check_tree(&mut fs, &share.root(), "");

    // The same bytes and the same listing come back when requests and replies
    // are scattered over several descriptors, and behind an indirect table if
    // negotiated. (READDIR lists `.` and `..` or not, as the inner filesystem
    // does; only the comparison with the one-descriptor layout matters.)
    let want = std::fs::read(share.root().join("big.bin")).unwrap();
    let want_listing = fs.list_dir("a/b").unwrap();
    assert_eq!(
        names(&want_listing),
        [b"c".to_vec(), b"sibling.bin".to_vec()]
    );
    let mut layouts = vec![ChainLayout::Split {
        readable: 3,
        writable: 7,
    }];
    if fs.harness().negotiated().indirect_desc() {
        layouts.push(ChainLayout::Indirect {
            readable: 2,
            writable: 5,
        });
    }
    for layout in layouts {
        fs.set_layout(layout);
        assert!(fs.read_file("big.bin").unwrap() == want, "{layout:?}");
        assert_eq!(fs.list_dir("a/b").unwrap(), want_listing, "{layout:?}");
    }
    fs.set_layout(ChainLayout::Simple);

    // The hard link is the same inode with the same bytes.
    let big = fs.lookup_path("big.bin").unwrap();
    let hard = fs.lookup_path("hard_big").unwrap();
    assert_eq!(big.attr.ino, hard.attr.ino);
    assert_eq!(hard.attr.nlink, 2);

    // READDIRPLUS agrees with READDIR + LOOKUP.
    let a = fs.lookup_path("a/b").unwrap();
    let fh = fs.opendir(a.nodeid).unwrap().fh;
    let plus = fs.readdirplus(a.nodeid, fh, 0, 64 * 1024).unwrap();
    fs.releasedir(a.nodeid, fh).unwrap();
    let sibling = plus
        .iter()
        .find(|e| e.dirent.name == b"sibling.bin")
        .unwrap();
    assert_eq!(sibling.entry.attr.size, PAGE_PLUS_ONE as u64);

    // Reads at odd offsets and sizes, and past EOF.
    let fh = fs.open(big.nodeid, libc::O_RDONLY).unwrap().fh;
    let want = std::fs::read(share.root().join("big.bin")).unwrap();
    for (off, len) in [
        (1u64, 1u32),
        (4095, 2),
        (4096 * 3 + 5, 12345),
        (BIG_FILE_SIZE as u64 - 3, 100),
    ] {
        let got = fs.read(big.nodeid, fh, off, len).unwrap();
        let end = (off as usize + len as usize).min(want.len());
        assert!(got == want[off as usize..end], "read at {off}+{len}");
    }
    assert!(fs
        .read(big.nodeid, fh, BIG_FILE_SIZE as u64 + 10, 4096)
        .unwrap()
        .is_empty());
    fs.release(big.nodeid, fh).unwrap();
}

/// security.md case 45 on an unverified share: a read ending at or crossing
/// EOF returns exactly the bytes up to the file's current end, and nothing
/// past it; after the host truncates the file no byte of the old tail comes
/// back.
#[test]
fn reads_at_eof_return_exactly_the_file() {
    let share = Share::start();
    let mut fs = share.client();
    let path = share.root().join("page_plus_one");
    let data = std::fs::read(&path).unwrap();
    let node = fs.lookup(ROOT_ID, "page_plus_one").unwrap().nodeid;
    let fh = fs.open(node, libc::O_RDONLY).unwrap().fh;
    let mut f = Failures::default();
    let mut check = |fs: &mut VirtioFsClient, data: &[u8], what: &str| {
        let size = data.len() as u64;
        for (off, len) in [
            (size - 1, 1),
            (size - 1, 4096),
            (0, size as u32),
            (0, size as u32 + 1),
            (0, 65536),
            (size, 1),
            (size + 1, 4096),
            (size + 10_000, 4096),
        ] {
            let got = fs.read(node, fh, off, len).map_err(|e| e.errno());
            let want = &data[off.min(size) as usize..(off + u64::from(len)).min(size) as usize];
            f.check(
                got.as_deref() == Ok(want),
                format!("{what}: read {off}+{len}: {:?}", got.map(|v| v.len())),
            );
        }
    };
    check(&mut fs, &data, "as written");
    std::fs::OpenOptions::new()
        .write(true)
        .open(&path)
        .unwrap()
        .set_len(100)
        .unwrap();
    check(&mut fs, &data[..100], "truncated to 100");
    fs.release(node, fh).unwrap();
    f.assert_none();
}

#[test]
fn symlinks_and_dotdot_never_escape_the_share() {
    let share = Share::start();
    let mut fs = share.client();
    let mut f = Failures::default();
    let root_ino = fs.getattr(ROOT_ID).unwrap().ino;

    // `..` and `.` at the root stay at the root, or are refused.
    for name in ["..", "."] {
        match fs.lookup(ROOT_ID, name) {
            Ok(e) => {
                f.check(
                    e.nodeid == ROOT_ID || e.attr.ino == root_ino,
                    format!("{name} left the root"),
                );
                let secret = fs.lookup(e.nodeid, "secret").map(|e| e.nodeid);
                f.check(
                    errno_of(&secret) == Some(libc::ENOENT),
                    format!("lookup {name}/secret gave {secret:?}"),
                );
            }
            Err(e) => f.check(
                matches!(e.errno(), Some(libc::ENOENT) | Some(libc::EINVAL)),
                format!("lookup {name}: {e}"),
            ),
        }
    }
    // Names are single components: a slash or an empty name is EINVAL.
    for name in ["../secret", "a/b", "a/b/c/deep.txt", "/etc/passwd", ""] {
        let r = fs.lookup(ROOT_ID, name).map(|e| e.nodeid);
        f.check(
            errno_of(&r) == Some(libc::EINVAL),
            format!("lookup of the name {name:?} gave {r:?}, want EINVAL"),
        );
    }
    // The name is exactly one NUL-terminated component: an early NUL (where
    // fuse-backend-rs would silently cut the name), a missing NUL and an
    // over-long name are refused before any host access.
    for (raw, want) in [
        (&b"big.bin\0junk\0"[..], libc::EINVAL),
        (b"big.bin", libc::EINVAL),
        (&[b'x'; 300][..], libc::ENAMETOOLONG),
    ] {
        let reply = fs.raw_request(Opcode::Lookup as u32, ROOT_ID, raw).unwrap();
        f.check(
            reply.errno() == want,
            format!(
                "raw LOOKUP {raw:?} gave errno {}, want {want}",
                reply.errno()
            ),
        );
    }
    // Links are returned verbatim and never followed by the daemon.
    let passwd = fs.lookup_path("link_passwd").unwrap();
    f.check(
        passwd.attr.mode & libc::S_IFMT == libc::S_IFLNK,
        "link_passwd is not a symlink",
    );
    f.check(
        fs.readlink(passwd.nodeid).unwrap() == b"/etc/passwd",
        "readlink link_passwd",
    );
    let up = fs.lookup_path("link_up").unwrap();
    f.check(
        fs.readlink(up.nodeid).unwrap() == b"../../x",
        "readlink link_up",
    );
    let etc = fs.lookup_path("link_etc").unwrap();
    let through = fs.lookup(etc.nodeid, "passwd").map(|e| e.nodeid);
    f.check(
        errno_of(&through) == Some(libc::ENOTDIR),
        format!("lookup of passwd under a symlink to /etc gave {through:?}, want ENOTDIR"),
    );
    // Opening a symlink inode is refused (ELOOP/EINVAL, or EBADF as for
    // other non-regular files); it never reads the target.
    match fs.open(passwd.nodeid, libc::O_RDONLY) {
        Ok(open) => {
            let data = fs.read(passwd.nodeid, open.fh, 0, 4096).unwrap_or_default();
            f.check(data.is_empty(), "read through a symlink to /etc/passwd");
            f.check(false, "OPEN of a symlink inode succeeded");
        }
        Err(e) => f.check(
            matches!(
                e.errno(),
                Some(libc::ELOOP) | Some(libc::EINVAL) | Some(libc::EBADF)
            ),
            format!("OPEN of a symlink inode gave {e}, want ELOOP/EINVAL/EBADF"),
        ),
    }
    // The FIFO is visible as a FIFO; opening it is refused without blocking.
    let fifo = fs.lookup_path("fifo").unwrap();
    f.check(fifo.attr.mode & libc::S_IFMT == libc::S_IFIFO, "fifo type");
    f.check(
        fs.getattr(fifo.nodeid).is_ok(),
        "GETATTR of the FIFO failed",
    );
    fs.harness_mut().set_request_timeout(STILL_SERVING_TIMEOUT);
    let opened = fs.open(fifo.nodeid, libc::O_RDONLY).map(|o| o.fh);
    f.check(
        matches!(errno_of(&opened), Some(libc::EBADF) | Some(libc::EACCES)),
        format!("OPEN of the FIFO gave {opened:?}, want EBADF/EACCES"),
    );
    f.assert_none();
}

#[test]
fn every_mutation_is_erofs() {
    let share = Share::start();
    let before = share.snapshot();
    let mut fs = share.client();
    let file = fs.lookup_path("page_plus_one").unwrap().nodeid;
    let dir = fs.lookup_path("a").unwrap().nodeid;
    let empty_dir = "empty_dir";
    let erofs = Some(libc::EROFS);

    for flags in [
        libc::O_WRONLY,
        libc::O_RDWR,
        libc::O_WRONLY | libc::O_APPEND,
    ] {
        assert_eq!(
            fs.open(file, flags).unwrap_err().errno(),
            erofs,
            "open flags {flags:#x}"
        );
    }
    let fh = fs.open(file, libc::O_RDONLY).unwrap().fh;
    assert_eq!(
        fs.write(file, fh, 0, b"x").unwrap_err().errno(),
        erofs,
        "write"
    );
    assert_eq!(
        fs.fallocate(file, fh, 0, 8192, 0).unwrap_err().errno(),
        erofs,
        "fallocate"
    );
    assert_eq!(
        fs.copy_file_range(file, fh, 0, file, fh, 4096, 1)
            .unwrap_err()
            .errno(),
        erofs,
        "copy_file_range"
    );
    fs.release(file, fh).unwrap();

    let chmod = SetattrIn {
        valid: FATTR_MODE,
        mode: libc::S_IFREG | 0o4777,
        ..SetattrIn::default()
    };
    assert_eq!(
        fs.setattr(file, chmod).unwrap_err().errno(),
        erofs,
        "setattr mode"
    );
    let truncate = SetattrIn {
        valid: FATTR_SIZE,
        size: 0,
        ..SetattrIn::default()
    };
    assert_eq!(
        fs.setattr(file, truncate).unwrap_err().errno(),
        erofs,
        "setattr size"
    );
    assert_eq!(
        fs.create(ROOT_ID, "new", 0o644, libc::O_WRONLY | libc::O_CREAT)
            .unwrap_err()
            .errno(),
        erofs,
        "create"
    );
    assert_eq!(
        fs.mknod(ROOT_ID, "node", libc::S_IFREG | 0o644, 0)
            .unwrap_err()
            .errno(),
        erofs,
        "mknod"
    );
    assert_eq!(
        fs.mkdir(ROOT_ID, "newdir", 0o755).unwrap_err().errno(),
        erofs,
        "mkdir"
    );
    assert_eq!(
        fs.unlink(ROOT_ID, "empty").unwrap_err().errno(),
        erofs,
        "unlink"
    );
    assert_eq!(
        fs.rmdir(dir, empty_dir).unwrap_err().errno(),
        erofs,
        "rmdir"
    );
    assert_eq!(
        fs.rename(ROOT_ID, "empty", dir, "moved")
            .unwrap_err()
            .errno(),
        erofs,
        "rename"
    );
    assert_eq!(
        fs.link(file, ROOT_ID, "hard2").unwrap_err().errno(),
        erofs,
        "link"
    );
    assert_eq!(
        fs.symlink(ROOT_ID, "sym2", "/etc/shadow")
            .unwrap_err()
            .errno(),
        erofs,
        "symlink"
    );
    assert_eq!(
        fs.setxattr(file, "user.x", b"1", 0).unwrap_err().errno(),
        erofs,
        "setxattr"
    );
    assert_eq!(
        fs.setxattr(file, "security.capability", &[0; 20], 0)
            .unwrap_err()
            .errno(),
        erofs,
        "setxattr security.capability"
    );
    assert_eq!(
        fs.removexattr(file, "user.x").unwrap_err().errno(),
        erofs,
        "removexattr"
    );

    drop(fs);
    assert_eq!(share.snapshot(), before, "the host tree changed");
}

#[test]
fn init_statfs_xattr_and_ioctl_follow_the_spec() {
    let share = Share::start();
    let mut fs = VirtioFsClient::connect(share.daemon.socket_path()).unwrap();
    let mut f = Failures::default();
    // Offer WRITEBACK_CACHE: a read-only share must refuse it.
    let info = fs
        .init_with(InitIn {
            major: 7,
            minor: 31,
            max_readahead: 128 * 1024,
            flags: vhost_user_harness::fuse_client::DEFAULT_INIT_FLAGS | FUSE_WRITEBACK_CACHE,
        })
        .unwrap();
    assert_eq!(info.out.major, 7);
    f.check(
        info.out.flags & FUSE_WRITEBACK_CACHE == 0,
        "INIT enabled WRITEBACK_CACHE",
    );
    f.check(
        info.out.flags & FUSE_ASYNC_READ != 0,
        "INIT lacks ASYNC_READ",
    );
    f.check(info.out.flags & FUSE_MAX_PAGES != 0, "INIT lacks MAX_PAGES");

    // ST_RDONLY cannot travel over FUSE (fuse_kstatfs has no flags field; the
    // guest takes it from its mount options), so check the reply is sane.
    let st = fs.statfs(ROOT_ID).unwrap();
    f.check(
        st.bsize > 0 && st.namelen > 0 && st.blocks > 0,
        format!("statfs {st:?}"),
    );

    // xattrs must never answer ENOSYS (the guest would disable them for good).
    let file = fs.lookup_path("page_plus_one").unwrap().nodeid;
    let missing = fs
        .getxattr(file, "user.does-not-exist", 0)
        .unwrap_err()
        .errno();
    f.check(
        matches!(missing, Some(libc::ENODATA) | Some(libc::EOPNOTSUPP)),
        format!("getxattr of a missing name gave errno {missing:?}"),
    );
    if let Err(e) = fs.listxattr(file, 0) {
        f.check(e.errno() != Some(libc::ENOSYS), "listxattr answered ENOSYS");
    }

    // Unknown ioctls are ENOTTY, as a local filesystem answers.
    let fh = fs.open(file, libc::O_RDONLY).unwrap().fh;
    let unknown = fs.ioctl(file, fh, UNKNOWN_IOCTL, 0, &[], 4);
    let errno = unknown.as_ref().err().and_then(|e| e.errno());
    f.check(
        errno == Some(libc::ENOTTY),
        format!("unknown ioctl gave {unknown:?}"),
    );
    fs.release(file, fh).unwrap();
    f.assert_none();
}

#[test]
fn unknown_opcodes_get_enosys() {
    let share = Share::start();
    let mut fs = share.client();
    // Unknown numbers, and DAX SETUPMAPPING/REMOVEMAPPING (48, 49), which a
    // verifying daemon must not implement.
    for opcode in [0u32, 7, 19, 48, 49, 60, 1000, 4095, 4096, 1 << 20, u32::MAX] {
        let reply = fs.raw_request(opcode, ROOT_ID, &[0; 64]).unwrap();
        assert_eq!(reply.errno(), libc::ENOSYS, "opcode {opcode}");
        assert!(
            reply.payload.is_empty(),
            "opcode {opcode} carried a payload"
        );
    }
    assert_eq!(fs.read_file("a/b/c/deep.txt").unwrap(), b"deep\n");
}

#[test]
fn malformed_requests_get_errors_and_the_daemon_keeps_serving() {
    let mut f = Failures::default();
    let getattr = Opcode::Getattr as u32;
    let read = Opcode::Read as u32;
    let body = [0u8; 16];
    // (header length, opcode, body, what), each with a complete in_header:
    // each must get an error reply. One daemon per case so that a failure
    // does not hide the next one.
    let cases: [(Option<u32>, u32, &[u8], &str); 5] = [
        (
            Some(20),
            getattr,
            &body,
            "header len below sizeof(fuse_in_header)",
        ),
        (Some(4096), getattr, &body, "header len beyond the buffer"),
        (Some(2 << 20), getattr, &body, "header len above 1 MiB"),
        (None, read, &[0u8; 8], "READ body truncated"),
        (
            None,
            Opcode::Lookup as u32,
            b"no-terminating-nul",
            "LOOKUP name without NUL",
        ),
    ];
    for (len, opcode, body, what) in cases {
        let share = Share::start();
        let mut fs = share.client();
        fs.harness_mut().set_request_timeout(STILL_SERVING_TIMEOUT);
        let unique = fs.next_unique();
        let len = len.unwrap_or(40 + body.len() as u32);
        let bytes = encode_request_with_len(len, opcode, unique, ROOT_ID, body);
        match fs.send_bytes(&bytes, unique, 4096) {
            Ok(reply) => f.check(reply.error < 0, format!("{what}: success reply")),
            Err(e) => f.check(false, format!("{what}: no valid error reply ({e})")),
        }
        check_still_serving(&mut f, &mut fs, &share, what);
    }

    // A request too short to hold fuse_in_header cannot be answered (there
    // is no unique), but the daemon must keep serving.
    let share = Share::start();
    let mut fs = share.client();
    let pending = fs
        .harness_mut()
        .submit(REQUEST_QUEUE, &[0u8; 20], 4096, ChainLayout::Simple)
        .unwrap();
    let _ = fs.harness_mut().wait_timeout(pending, HOSTILE_TIMEOUT);
    check_still_serving(&mut f, &mut fs, &share, "20-byte request");
    f.assert_none();
}

#[test]
fn hostile_descriptor_chains_do_not_stop_the_daemon() {
    let mut f = Failures::default();
    // Each case gets the request buffer and reply buffer addresses and
    // returns the chain to publish.
    type Build = fn(GuestAddress, GuestAddress) -> Vec<Segment>;
    let chains: [(&str, Build); 5] = [
        ("address outside memory", |_, r| {
            vec![
                Segment::readable(OUTSIDE_MEMORY, 56),
                Segment::writable(r, 4096),
            ]
        }),
        ("writable before readable", |b, r| {
            vec![Segment::writable(r, 4096), Segment::readable(b, 56)]
        }),
        ("zero-length buffers", |b, r| {
            vec![Segment::readable(b, 0), Segment::writable(r, 0)]
        }),
        ("no writable buffer", |b, _| vec![Segment::readable(b, 56)]),
        ("addr+len overflows", |_, r| {
            vec![
                Segment::readable(OVERFLOWING, 56),
                Segment::writable(r, 4096),
            ]
        }),
    ];
    for (what, build) in chains {
        let share = Share::start();
        let mut fs = share.client();
        let (q, mem) = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap();
        let (buf, _, reply) = getattr_buffers(mem, 999);
        q.add_chain(mem, &build(buf, reply)).unwrap();
        q.kick().unwrap();
        let _ = fs
            .harness_mut()
            .wait_used_raw(REQUEST_QUEUE, HOSTILE_TIMEOUT);
        check_still_serving(&mut f, &mut fs, &share, what);
    }
    // Raw descriptors: one pointing at itself, one whose next is out of range.
    let raw: [(&str, u16, Option<u16>); 2] = [
        ("looping chain", DESC_F_NEXT, None),
        ("next index outside the table", DESC_F_NEXT, Some(u16::MAX)),
    ];
    for (what, flags, next) in raw {
        let share = Share::start();
        let mut fs = share.client();
        let (q, mem) = fs.harness_mut().raw_queue(REQUEST_QUEUE).unwrap();
        let (buf, _, _) = getattr_buffers(mem, 999);
        let d = q.take_descriptors(1).unwrap();
        let desc = RawDescriptor {
            addr: buf.0,
            len: 56,
            flags,
            next: next.unwrap_or(d[0]),
        };
        q.write_descriptor(mem, d[0], desc).unwrap();
        q.publish_raw(mem, d[0], d, Vec::new()).unwrap();
        q.kick().unwrap();
        let _ = fs
            .harness_mut()
            .wait_used_raw(REQUEST_QUEUE, HOSTILE_TIMEOUT);
        check_still_serving(&mut f, &mut fs, &share, what);
    }
    f.assert_none();
}

#[test]
fn many_requests_in_flight_read_correctly() {
    let share = Share::start();
    let mut fs = share.client();
    let big = std::fs::read(share.root().join("big.bin")).unwrap();
    let small = std::fs::read(share.root().join("page_plus_one")).unwrap();
    let big_node = fs.lookup_path("big.bin").unwrap().nodeid;
    let small_node = fs.lookup_path("page_plus_one").unwrap().nodeid;
    let big_fh = fs.open(big_node, libc::O_RDONLY).unwrap().fh;
    let small_fh = fs.open(small_node, libc::O_RDONLY).unwrap().fh;
    let chunk = 128 * 1024u32;
    // Two interleaved streams: sequential chunks of big.bin and 1-byte
    // reads of page_plus_one, all published before any is collected.
    let mut pending = Vec::new();
    for i in 0..16u64 {
        pending.push((
            true,
            i,
            fs.submit_read(big_node, big_fh, i * u64::from(chunk), chunk)
                .unwrap(),
        ));
        pending.push((
            false,
            i,
            fs.submit_read(small_node, small_fh, i * 256, 1).unwrap(),
        ));
    }
    // Collect in an order unrelated to submission.
    pending.sort_by_key(|(_, i, p)| (p.unique() * 7919) % 101 + i);
    for (is_big, i, p) in pending {
        if is_big {
            let got = fs.wait_read(p, chunk).unwrap();
            let start = (i * u64::from(chunk)) as usize;
            assert!(got == big[start..start + chunk as usize], "big chunk {i}");
        } else {
            assert_eq!(
                fs.wait_read(p, 1).unwrap(),
                [small[(i * 256) as usize]],
                "small byte {i}"
            );
        }
    }
    fs.release(big_node, big_fh).unwrap();
    fs.release(small_node, small_fh).unwrap();
}

#[test]
fn event_idx_and_deep_pipelines_read_correctly() {
    let share = Share::start();
    let mut config = HarnessConfig::default();
    config.frontend.ack_event_idx = true;
    config.frontend.queue_size = 1024;
    let mut fs = VirtioFsClient::connect_with(share.daemon.socket_path(), &config).unwrap();
    if !fs.harness().negotiated().event_idx() {
        eprintln!("daemon does not offer VIRTIO_RING_F_EVENT_IDX; testing without it");
    }
    fs.init().unwrap();
    let want = std::fs::read(share.root().join("big.bin")).unwrap();
    let node = fs.lookup_path("big.bin").unwrap().nodeid;
    for (chunk, depth) in [(4096, 1), (4096, 64), (64 * 1024, 8), (fs.max_read(), 2)] {
        let got = fs.read_node_pipelined(node, chunk, depth).unwrap();
        assert!(got == want, "chunk {chunk} depth {depth}");
    }
}

#[test]
fn disconnect_exits_cleanly_and_removes_socket_and_pid_file() {
    let mut share = Share::start();
    let mut fs = share.client();
    assert_eq!(fs.read_file("a/b/c/deep.txt").unwrap(), b"deep\n");
    fs.disconnect();
    let status = share.daemon.wait_exit(EXIT_TIMEOUT).unwrap();
    assert_eq!(status.code(), Some(0), "exit status {status}");
    assert!(!share.daemon.socket_path().exists(), "socket left behind");
    assert!(
        !share.daemon.pid_file_path().exists(),
        "pid file left behind"
    );
}
