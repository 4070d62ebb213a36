// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Self-tests of the harness against upstream virtiofsd.
//!
//! They run only when `VHOST_USER_HARNESS_VIRTIOFSD` names a virtiofsd
//! binary (1.14 was used); otherwise each test prints a skip notice and
//! passes. The daemon runs with `--sandbox=none`, which needs root or at
//! least permission to read the temporary share.

use std::path::{Path, PathBuf};
use std::time::Duration;

use vhost::vhost_user::VhostUserProtocolFeatures;
use vhost_user_harness::frontend::FEATURE_ACCESS_PLATFORM;
use vhost_user_harness::{
    ChainLayout, DaemonProcess, HarnessConfig, Opcode, VirtioFsClient, XattrReply, ROOT_ID,
};

const ENV_BINARY: &str = "VHOST_USER_HARNESS_VIRTIOFSD";
const EXIT_TIMEOUT: Duration = Duration::from_secs(10);
const LARGE_FILE_SIZE: usize = 5 * 1024 * 1024 + 123;

/// The virtiofsd binary, or `None` (after printing a notice) to skip.
fn virtiofsd() -> Option<PathBuf> {
    match std::env::var_os(ENV_BINARY) {
        Some(p) if !p.is_empty() => Some(PathBuf::from(p)),
        _ => {
            eprintln!("skipping: set {ENV_BINARY} to a virtiofsd binary to run this test");
            None
        }
    }
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_f491_4f6c_dd1d).to_le_bytes());
    }
    out.truncate(len);
    out
}

struct Fixture {
    share: tempfile::TempDir,
    daemon: DaemonProcess,
}

impl Fixture {
    fn start(binary: &Path) -> Fixture {
        let share = tempfile::tempdir().unwrap();
        let root = share.path();
        std::fs::write(root.join("hello.txt"), b"hello, virtio-fs\n").unwrap();
        std::fs::write(root.join("large.bin"), pseudo_random(LARGE_FILE_SIZE, 7)).unwrap();
        std::fs::write(root.join("empty"), b"").unwrap();
        std::fs::create_dir_all(root.join("dir/sub")).unwrap();
        std::fs::write(root.join("dir/sub/leaf"), b"leaf").unwrap();
        std::os::unix::fs::symlink("dir/sub/leaf", root.join("link")).unwrap();
        xattr::set(&root.join("hello.txt"), "user.harness", b"value-123");
        let daemon = DaemonProcess::spawn(
            binary,
            [
                format!("--shared-dir={}", root.display()),
                "--sandbox=none".into(),
                "--seccomp=none".into(),
                "--readonly".into(),
                "--cache=auto".into(),
                "--xattr".into(),
            ],
        )
        .unwrap();
        Fixture { share, daemon }
    }

    fn client(&self) -> VirtioFsClient {
        VirtioFsClient::connect_and_init(self.daemon.socket_path()).unwrap()
    }
}

mod xattr {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;

    /// Sets a user xattr on the host file (test setup only).
    #[allow(unsafe_code)]
    pub fn set(path: &Path, name: &str, value: &[u8]) {
        let p = CString::new(path.as_os_str().as_bytes()).unwrap();
        let n = CString::new(name).unwrap();
        // SAFETY: `p` and `n` are NUL-terminated and outlive the call;
        // `value` is a valid buffer of `value.len()` bytes; nothing is retained.
        let rc = unsafe {
            libc::setxattr(
                p.as_ptr(),
                n.as_ptr(),
                value.as_ptr().cast(),
                value.len(),
                0,
            )
        };
        assert_eq!(rc, 0, "setxattr: {}", std::io::Error::last_os_error());
    }
}

#[test]
fn init_lookup_getattr() {
    let Some(bin) = virtiofsd() else { return };
    let fx = Fixture::start(&bin);
    let mut fs = fx.client();
    let info = *fs.init_info().unwrap();
    assert_eq!(info.out.major, 7);
    assert!(fs.max_read() >= 4096);
    let e = fs.lookup(ROOT_ID, "hello.txt").unwrap();
    assert_ne!(e.nodeid, 0);
    assert_eq!(e.attr.size, 17);
    assert_eq!(e.attr.mode & libc::S_IFMT, libc::S_IFREG);
    let attr = fs.getattr(e.nodeid).unwrap();
    assert_eq!(attr.ino, e.attr.ino);
    let deep = fs.lookup_path("dir/sub/leaf").unwrap();
    assert_eq!(deep.attr.size, 4);
    assert_eq!(
        fs.lookup(ROOT_ID, "missing").unwrap_err().errno(),
        Some(libc::ENOENT)
    );
    fs.forget(deep.nodeid, 1).unwrap();
}

#[test]
fn reads_are_byte_identical_in_every_layout() {
    let Some(bin) = virtiofsd() else { return };
    let fx = Fixture::start(&bin);
    let mut fs = fx.client();
    let root = fx.share.path();
    for layout in [
        ChainLayout::Simple,
        ChainLayout::Split {
            readable: 3,
            writable: 5,
        },
        ChainLayout::Indirect {
            readable: 2,
            writable: 4,
        },
    ] {
        fs.set_layout(layout);
        for name in ["hello.txt", "large.bin", "empty", "dir/sub/leaf"] {
            let got = fs.read_file(name).unwrap();
            let want = std::fs::read(root.join(name)).unwrap();
            assert!(
                got == want,
                "{name} differs with {layout:?} ({} vs {} bytes)",
                got.len(),
                want.len()
            );
        }
    }
    assert_eq!(
        fs.harness().memory().live_allocations(),
        6,
        "only the rings stay allocated"
    );
}

#[test]
fn readdir_readlink_statfs_xattr() {
    let Some(bin) = virtiofsd() else { return };
    let fx = Fixture::start(&bin);
    let mut fs = fx.client();
    let mut names: Vec<Vec<u8>> = fs
        .list_dir("/")
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    names.sort();
    let want: Vec<&[u8]> = vec![
        b".",
        b"..",
        b"dir",
        b"empty",
        b"hello.txt",
        b"large.bin",
        b"link",
    ];
    assert_eq!(names, want);

    let dir = fs.lookup(ROOT_ID, "dir").unwrap();
    let fh = fs.opendir(dir.nodeid).unwrap().fh;
    let plus = fs.readdirplus(dir.nodeid, fh, 0, 64 * 1024).unwrap();
    assert!(plus
        .iter()
        .any(|e| e.dirent.name == b"sub" && e.entry.nodeid != 0));
    fs.releasedir(dir.nodeid, fh).unwrap();

    let link = fs.lookup(ROOT_ID, "link").unwrap();
    assert_eq!(fs.readlink(link.nodeid).unwrap(), b"dir/sub/leaf");

    let st = fs.statfs(ROOT_ID).unwrap();
    assert!(st.bsize > 0 && st.namelen > 0);

    let hello = fs.lookup(ROOT_ID, "hello.txt").unwrap();
    assert_eq!(
        fs.getxattr(hello.nodeid, "user.harness", 0).unwrap(),
        XattrReply::Size(9)
    );
    assert_eq!(
        fs.getxattr(hello.nodeid, "user.harness", 64).unwrap(),
        XattrReply::Data(b"value-123".to_vec())
    );
    assert_eq!(
        fs.getxattr(hello.nodeid, "user.harness", 3)
            .unwrap_err()
            .errno(),
        Some(libc::ERANGE)
    );
    match fs.listxattr(hello.nodeid, 0).unwrap() {
        XattrReply::Size(n) => assert!(n as usize >= b"user.harness\0".len()),
        other => panic!("unexpected {other:?}"),
    }
}

#[test]
fn errors_erofs_enosys_and_framing() {
    let Some(bin) = virtiofsd() else { return };
    let fx = Fixture::start(&bin);
    let mut fs = fx.client();
    assert_eq!(
        fs.mkdir(ROOT_ID, "new", 0o755).unwrap_err().errno(),
        Some(libc::EROFS)
    );
    let hello = fs.lookup(ROOT_ID, "hello.txt").unwrap();
    assert_eq!(
        fs.open(hello.nodeid, libc::O_RDWR).unwrap_err().errno(),
        Some(libc::EROFS)
    );
    let reply = fs.raw_request(200, ROOT_ID, &[]).unwrap();
    assert_eq!(reply.errno(), libc::ENOSYS);
    // A request whose header claims more bytes than were sent.
    let unique = fs.next_unique();
    let bytes = vhost_user_harness::fuse_wire::encode_request_with_len(
        4096,
        Opcode::Getattr as u32,
        unique,
        ROOT_ID,
        &[0; 16],
    );
    let framing = fs.send_bytes(&bytes, unique, 4096).map(|r| r.error);
    eprintln!("oversized header len -> error field {framing:?}");
    // Whatever happened, the daemon keeps serving.
    assert_eq!(fs.read_file("hello.txt").unwrap(), b"hello, virtio-fs\n");
}

#[test]
fn eight_reads_in_flight() {
    let Some(bin) = virtiofsd() else { return };
    let fx = Fixture::start(&bin);
    let mut fs = fx.client();
    let want = std::fs::read(fx.share.path().join("large.bin")).unwrap();
    let e = fs.lookup(ROOT_ID, "large.bin").unwrap();
    let fh = fs.open(e.nodeid, libc::O_RDONLY).unwrap().fh;
    let chunk = 256 * 1024u32;
    let pending: Vec<_> = (0..8u64)
        .map(|i| {
            (
                i,
                fs.submit_read(e.nodeid, fh, i * u64::from(chunk), chunk)
                    .unwrap(),
            )
        })
        .collect();
    // Collect in reverse order to exercise out-of-order completion handling.
    for (i, p) in pending.into_iter().rev() {
        let data = fs.wait_read(p, chunk).unwrap();
        let start = (i * u64::from(chunk)) as usize;
        assert!(
            data == want[start..start + chunk as usize],
            "chunk {i} differs"
        );
    }
    fs.release(e.nodeid, fh).unwrap();
    let piped = fs.read_node_pipelined(e.nodeid, 64 * 1024, 16).unwrap();
    assert!(piped == want, "pipelined read differs");
}

#[test]
fn disconnect_makes_daemon_exit_cleanly() {
    let Some(bin) = virtiofsd() else { return };
    let mut fx = Fixture::start(&bin);
    let mut fs = fx.client();
    fs.lookup(ROOT_ID, "hello.txt").unwrap();
    fs.disconnect();
    let status = fx.daemon.wait_exit(EXIT_TIMEOUT).unwrap();
    assert!(status.success(), "exit status {status}");
    assert!(!fx.daemon.socket_path().exists(), "socket left behind");
    // Upstream virtiofsd 1.14 leaves `<socket>.pid` behind; only report it.
    eprintln!(
        "pid file left behind: {}",
        fx.daemon.pid_file_path().exists()
    );
}

#[test]
fn larger_queue_and_memory_config() {
    let Some(bin) = virtiofsd() else { return };
    let fx = Fixture::start(&bin);
    let mut config = HarnessConfig {
        memory_size: 256 << 20,
        ..HarnessConfig::default()
    };
    config.frontend.queue_size = 1024;
    config.frontend.ack_backend_req = true;
    let mut fs = VirtioFsClient::connect_with(fx.daemon.socket_path(), &config).unwrap();
    let negotiated = *fs.harness().negotiated();
    eprintln!("negotiated: {negotiated:x?}");
    assert_eq!(negotiated.acked_features & FEATURE_ACCESS_PLATFORM, 0);
    let backend_req = VhostUserProtocolFeatures::BACKEND_REQ.bits();
    if negotiated.offered_protocol_features & backend_req != 0 {
        assert_ne!(negotiated.acked_protocol_features & backend_req, 0);
        assert!(fs.harness().connection().has_backend_channel());
    }
    fs.init().unwrap();
    let want = std::fs::read(fx.share.path().join("large.bin")).unwrap();
    assert!(fs.read_file("large.bin").unwrap() == want);
}

#[test]
fn event_idx_notifications() {
    let Some(bin) = virtiofsd() else { return };
    let fx = Fixture::start(&bin);
    let mut config = HarnessConfig::default();
    config.frontend.ack_event_idx = true;
    let mut fs = VirtioFsClient::connect_with(fx.daemon.socket_path(), &config).unwrap();
    assert!(
        fs.harness().negotiated().event_idx(),
        "virtiofsd offers EVENT_IDX"
    );
    fs.init().unwrap();
    let want = std::fs::read(fx.share.path().join("large.bin")).unwrap();
    let node = fs.lookup(ROOT_ID, "large.bin").unwrap().nodeid;
    for depth in [1, 4, 32] {
        let got = fs.read_node_pipelined(node, 32 * 1024, depth).unwrap();
        assert!(got == want, "depth {depth}");
    }
}
