// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Target `fuse_requests`: a FUSE session decoded from the input, each request one
//! well-formed descriptor chain through the daemon's queue worker.
//!
//! Input layout (decoded with [`arbitrary::Unstructured`], so every input is valid): one byte
//! of [`ShareOptions`], the INIT request, then up to [`MAX_REQUESTS`] requests, each a kind
//! byte and its fields. Node ids and file handles are picked from those the daemon returned
//! so far (plus hostile values), names from the share's names, so lookups, opens and reads
//! reach real files.
//!
//! Checked after every request: the chain completes once; a request that expects a reply gets
//! exactly one well-formed reply (`out_header.len` equals the used length, `unique` echoed,
//! `error` in `-4095..=0`, an error reply is a bare header); one that does not gets none. And
//! against the sealed share: a successful LOOKUP names a sealed entry (unless unlisted names
//! are allowed) with its sealed size, a successful READ returns exactly the sealed bytes (never
//! the tampered ones), READLINK the sealed target, FS_IOC_MEASURE_VERITY the sealed digest.

use std::mem::size_of;

use arbitrary::Unstructured;
use fuse_backend_rs::abi::fuse_abi::{
    AccessIn, BatchForgetIn, EntryOut, FlushIn, ForgetIn, ForgetOne, GetattrIn, GetxattrIn,
    InHeader, InitIn, InterruptIn, IoctlIn, IoctlOut, LseekIn, Opcode, OpenIn, OpenOut, OutHeader,
    ReadIn, ReleaseIn,
};
use fuse_backend_rs::api::filesystem::FileSystem;
use verity_fs::{FS_IOC32_GETFLAGS, FS_IOC_ENABLE_VERITY, FS_IOC_GETFLAGS, FS_IOC_MEASURE_VERITY};
use verity_manifest::{join, EntryKind};
use verityfsd::request_check::{expects_reply, opcode};
use vm_memory::ByteValued;

use crate::input::num;
use crate::mock_queue::{MockQueue, MAX_REPLY, MAX_REQUEST};
use crate::share::{share, Share, ShareOptions, NAMES, TAMPERED};
use verityfsd::queue_worker::QueueWorker;

/// Requests per input after INIT.
pub const MAX_REQUESTS: usize = 64;
const IN_HEADER: usize = size_of::<InHeader>();
const OUT_HEADER: usize = size_of::<OutHeader>();
const ROOT: u64 = 1;

// Opcodes without a constant in the daemon's request checks, from fuse-backend-rs's table.
const GETATTR: u32 = Opcode::Getattr as u32;
const READLINK: u32 = Opcode::Readlink as u32;
const OPEN: u32 = Opcode::Open as u32;
const READ: u32 = Opcode::Read as u32;
const STATFS: u32 = Opcode::Statfs as u32;
const RELEASE: u32 = Opcode::Release as u32;
const GETXATTR: u32 = Opcode::Getxattr as u32;
const LISTXATTR: u32 = Opcode::Listxattr as u32;
const FLUSH: u32 = Opcode::Flush as u32;
const OPENDIR: u32 = Opcode::Opendir as u32;
const READDIR: u32 = Opcode::Readdir as u32;
const RELEASEDIR: u32 = Opcode::Releasedir as u32;
const ACCESS: u32 = Opcode::Access as u32;
const IOCTL: u32 = Opcode::Ioctl as u32;
const READDIRPLUS: u32 = Opcode::Readdirplus as u32;
const LSEEK: u32 = Opcode::Lseek as u32;
/// Mutations and other opcodes sent with a raw body.
const RAW_OPCODES: [u32; 22] = [
    Opcode::Setattr as u32,
    Opcode::Symlink as u32,
    Opcode::Mknod as u32,
    Opcode::Mkdir as u32,
    Opcode::Unlink as u32,
    Opcode::Rmdir as u32,
    Opcode::Rename as u32,
    Opcode::Link as u32,
    Opcode::Write as u32,
    Opcode::Fsync as u32,
    Opcode::Setxattr as u32,
    Opcode::Removexattr as u32,
    Opcode::Fsyncdir as u32,
    Opcode::Getlk as u32,
    Opcode::Setlk as u32,
    Opcode::Setlkw as u32,
    Opcode::Create as u32,
    Opcode::Bmap as u32,
    Opcode::Poll as u32,
    Opcode::NotifyReply as u32,
    Opcode::Fallocate as u32,
    Opcode::Rename2 as u32,
];
const XATTR_NAMES: [&[u8]; 5] = [
    b"user.verity.digest\0",
    b"user.verity.manifest_digest\0",
    b"security.selinux\0",
    b"user.verity.forged\0",
    b"user.other\0",
];

/// What the model knows about the object a request targets.
#[derive(Debug, Clone, Default)]
struct Known {
    /// Manifest path, when the object was reached by names the model can follow.
    path: Option<Vec<u8>>,
}

/// What a request's successful reply must satisfy.
#[derive(Debug)]
enum Expect {
    Anything,
    Init,
    Destroy,
    Lookup(Option<Vec<u8>>),
    Open(Known),
    Read {
        paths: [Option<Vec<u8>>; 2],
        offset: u64,
        size: u32,
    },
    Readlink(Option<Vec<u8>>),
    Measure([Option<Vec<u8>>; 2]),
}

#[derive(Debug)]
struct Request {
    opcode: u32,
    nodeid: u64,
    body: Vec<u8>,
    /// `in_header.len` when it should disagree with the bytes sent.
    len: Option<u32>,
    /// Bytes of the request actually offered, when shorter than the request.
    truncate: Option<usize>,
    /// Writable bytes offered for the reply.
    reply_len: u32,
    expect: Expect,
}

impl Request {
    fn new(opcode: u32, nodeid: u64, body: &[u8], expect: Expect) -> Self {
        Request {
            opcode,
            nodeid,
            body: body.to_vec(),
            len: None,
            truncate: None,
            reply_len: MAX_REPLY,
            expect,
        }
    }

    fn encode(&self, unique: u64) -> Vec<u8> {
        let mut out = encode_request(self.opcode, unique, self.nodeid, &self.body, self.len);
        out.truncate(self.truncate.unwrap_or(MAX_REQUEST).min(MAX_REQUEST));
        out
    }
}

/// A FUSE request: `fuse_in_header` then `body`. The header's `len` is `len`, or the bytes
/// encoded when `None`.
pub(crate) fn encode_request(
    opcode: u32,
    unique: u64,
    nodeid: u64,
    body: &[u8],
    len: Option<u32>,
) -> Vec<u8> {
    let full = IN_HEADER + body.len();
    let header = InHeader {
        len: len.unwrap_or_else(|| u32::try_from(full).unwrap_or(u32::MAX)),
        opcode,
        unique,
        nodeid,
        ..Default::default()
    };
    let mut out = header.as_slice().to_vec();
    out.extend_from_slice(body);
    out
}

/// The session as the fuzzing guest sees it.
struct Model<'a> {
    share: &'a Share,
    opts: ShareOptions,
    /// Node ids the daemon returned (the root first).
    nodes: Vec<(u64, Known)>,
    /// File handles the daemon returned, with their node's knowledge.
    handles: Vec<(u64, Known)>,
}

impl Model<'_> {
    /// A node id: mostly one the daemon returned, sometimes a hostile one.
    fn node(&self, u: &mut Unstructured<'_>) -> (u64, Known) {
        let k: u8 = num(u);
        match k {
            0xfc => (0, Known::default()),
            0xfd => (u64::MAX, Known::default()),
            0xfe => (num(u), Known::default()),
            _ => self.nodes[usize::from(k) % self.nodes.len()].clone(),
        }
    }

    /// A file handle: mostly one the daemon returned, sometimes a hostile one.
    fn handle(&self, u: &mut Unstructured<'_>) -> (u64, Known) {
        let k: u8 = num(u);
        if self.handles.is_empty() || k >= 0xf0 {
            return (
                pick!(u, [0, 1, 2, u64::MAX, u64::from(k)]),
                Known::default(),
            );
        }
        self.handles[usize::from(k) % self.handles.len()].clone()
    }

    /// Node and handle of one open file: the handle's node most of the time.
    fn node_and_handle(&self, u: &mut Unstructured<'_>) -> (u64, Known, u64, Known) {
        let (fh, fknown) = self.handle(u);
        let matching = self
            .nodes
            .iter()
            .find(|(_, k)| k.path.is_some() && k.path == fknown.path);
        match matching {
            Some((node, known)) if num::<u8>(u) < 0xe0 => (*node, known.clone(), fh, fknown),
            _ => {
                let (node, known) = self.node(u);
                (node, known, fh, fknown)
            }
        }
    }

    fn init(&self, u: &mut Unstructured<'_>) -> Request {
        let init = InitIn {
            major: pick!(u, [7, 7, 7, 6, 8, 0]),
            minor: pick!(u, [31, 38, 27, 0, 5, u32::MAX]),
            max_readahead: num(u),
            flags: num(u),
        };
        let mut body = init.as_slice().to_vec();
        if num::<u8>(u) & 1 == 1 {
            // fuse_init_in's second flags word and the unused tail (minor >= 36).
            body.extend_from_slice(&num::<u32>(u).to_le_bytes());
            body.extend_from_slice(&[0u8; 44]);
        }
        Request::new(opcode::INIT, 0, &body, Expect::Init)
    }

    fn decode(&self, u: &mut Unstructured<'_>) -> Request {
        let kind: u8 = num(u);
        let (node, known) = self.node(u);
        let mut req = match kind % 24 {
            0 => self.init(u),
            1 => Request::new(opcode::DESTROY, node, &[], Expect::Destroy),
            2..=4 => {
                let k: u8 = num(u);
                let name: Vec<u8> = if k < 0xf0 {
                    NAMES[usize::from(k) % NAMES.len()].to_vec()
                } else {
                    let len = usize::from(num::<u8>(u));
                    u.bytes(len.min(u.len())).unwrap_or_default().to_vec()
                };
                let path = match (&known.path, name.as_slice()) {
                    (_, b"." | b"..") => None,
                    (Some(parent), _) => Some(join(parent, &name)),
                    (None, _) => None,
                };
                let mut body = name;
                if k < 0xf0 {
                    body.push(0);
                }
                Request::new(opcode::LOOKUP, node, &body, Expect::Lookup(path))
            }
            5 => {
                let forget = ForgetIn { nlookup: num(u) };
                Request::new(opcode::FORGET, node, forget.as_slice(), Expect::Anything)
            }
            6 => {
                let count = usize::from(num::<u8>(u) % 8);
                let announced: u32 = if num::<u8>(u) == 0xff {
                    num(u)
                } else {
                    count as u32
                };
                let mut body = BatchForgetIn {
                    count: announced,
                    dummy: 0,
                }
                .as_slice()
                .to_vec();
                for _ in 0..count {
                    let one = ForgetOne {
                        nodeid: self.node(u).0,
                        nlookup: num(u),
                    };
                    body.extend_from_slice(one.as_slice());
                }
                Request::new(opcode::BATCH_FORGET, 0, &body, Expect::Anything)
            }
            7 => {
                let (fh, _) = self.handle(u);
                let body = GetattrIn {
                    flags: num(u),
                    dummy: 0,
                    fh,
                };
                Request::new(GETATTR, node, body.as_slice(), Expect::Anything)
            }
            8 | 9 => {
                let flags = pick!(
                    u,
                    [
                        libc::O_RDONLY as u32,
                        libc::O_RDONLY as u32,
                        (libc::O_RDONLY | libc::O_DIRECT) as u32,
                        libc::O_WRONLY as u32,
                        libc::O_RDWR as u32,
                        (libc::O_RDONLY | libc::O_TRUNC) as u32,
                        num(u),
                    ],
                );
                let body = OpenIn {
                    flags,
                    fuse_flags: num(u),
                };
                Request::new(OPEN, node, body.as_slice(), Expect::Open(known))
            }
            10..=12 => {
                let (node, nknown, fh, fknown) = self.node_and_handle(u);
                let offset: u64 = pick!(
                    u,
                    [0, 0, 4096, 8192, 4000, u64::from(num::<u16>(u)), num(u)],
                );
                let size: u32 = pick!(
                    u,
                    [4096, 8192, 16384, 1, 0, u32::from(num::<u16>(u)), num(u)]
                );
                let body = ReadIn {
                    fh,
                    offset,
                    size,
                    ..Default::default()
                };
                let expect = Expect::Read {
                    paths: [nknown.path, fknown.path],
                    offset,
                    size,
                };
                Request::new(READ, node, body.as_slice(), expect)
            }
            13 => {
                let (fh, _) = self.handle(u);
                let body = ReleaseIn {
                    fh,
                    flags: num(u),
                    release_flags: num(u),
                    lock_owner: num(u),
                };
                let op = pick!(u, [RELEASE, RELEASEDIR]);
                Request::new(op, node, body.as_slice(), Expect::Anything)
            }
            14 => {
                let body = OpenIn {
                    flags: pick!(u, [libc::O_RDONLY as u32, libc::O_DIRECTORY as u32, num(u)]),
                    fuse_flags: 0,
                };
                Request::new(OPENDIR, node, body.as_slice(), Expect::Open(known))
            }
            15 | 16 => {
                let (fh, _) = self.handle(u);
                let body = ReadIn {
                    fh,
                    offset: pick!(u, [0, 0, 1, 2, 3, 5, num(u)]),
                    size: pick!(u, [4096, 80, 1, 0, u32::from(num::<u16>(u)), num(u)]),
                    ..Default::default()
                };
                let op = pick!(u, [READDIR, READDIRPLUS]);
                Request::new(op, node, body.as_slice(), Expect::Anything)
            }
            17 => {
                let size = pick!(u, [0, 4096, 1, 64, u32::from(num::<u16>(u)), num(u)]);
                let op = pick!(u, [GETXATTR, LISTXATTR]);
                let mut body = GetxattrIn { size, padding: 0 }.as_slice().to_vec();
                if op == GETXATTR {
                    body.extend_from_slice(crate::input::pick(u, &XATTR_NAMES));
                } else {
                    body.truncate(8);
                }
                Request::new(op, node, &body, Expect::Anything)
            }
            18 => {
                let (node, nknown, fh, fknown) = self.node_and_handle(u);
                let cmd = pick!(
                    u,
                    [
                        FS_IOC_MEASURE_VERITY,
                        FS_IOC_MEASURE_VERITY,
                        FS_IOC_GETFLAGS,
                        FS_IOC32_GETFLAGS,
                        FS_IOC_ENABLE_VERITY,
                        verity_fs::FS_IOC_READ_VERITY_METADATA,
                        num(u),
                    ],
                );
                let out_size = pick!(u, [68, 36, 4, 0, u32::from(num::<u16>(u)), num(u)]);
                let in_len = pick!(u, [4usize, 68, 36, 0, usize::from(num::<u8>(u))]);
                let announced_in = if num::<u8>(u) == 0xff {
                    num(u)
                } else {
                    in_len as u32
                };
                let mut body = IoctlIn {
                    fh,
                    flags: pick!(u, [0, 4, num(u)]),
                    cmd,
                    arg: num(u),
                    in_size: announced_in,
                    out_size,
                }
                .as_slice()
                .to_vec();
                let mut input = vec![0u8; in_len];
                // struct fsverity_digest { le16 alg; le16 size; } then the digest.
                if in_len >= 4 {
                    input[2..4].copy_from_slice(
                        &u16::try_from(out_size.saturating_sub(4))
                            .unwrap_or(u16::MAX)
                            .to_le_bytes(),
                    );
                }
                body.extend_from_slice(&input);
                let expect = if cmd == FS_IOC_MEASURE_VERITY {
                    Expect::Measure([nknown.path, fknown.path])
                } else {
                    Expect::Anything
                };
                Request::new(IOCTL, node, &body, expect)
            }
            19 => Request::new(READLINK, node, &[], Expect::Readlink(known.path)),
            20 => {
                let op = pick!(u, [STATFS, ACCESS, FLUSH, LSEEK, opcode::INTERRUPT]);
                let (fh, _) = self.handle(u);
                let body = match op {
                    ACCESS => AccessIn {
                        mask: num(u),
                        padding: 0,
                    }
                    .as_slice()
                    .to_vec(),
                    FLUSH => FlushIn {
                        fh,
                        unused: 0,
                        padding: 0,
                        lock_owner: num(u),
                    }
                    .as_slice()
                    .to_vec(),
                    LSEEK => LseekIn {
                        fh,
                        offset: num(u),
                        whence: pick!(u, [0, 1, 2, 3, 4, num(u)]),
                        padding: 0,
                    }
                    .as_slice()
                    .to_vec(),
                    opcode::INTERRUPT => InterruptIn { unique: num(u) }.as_slice().to_vec(),
                    _ => Vec::new(),
                };
                Request::new(op, node, &body, Expect::Anything)
            }
            _ => {
                // Any opcode (mutations, unknown numbers) with a raw body.
                let op = match num::<u8>(u) {
                    0..=199 => crate::input::pick(u, &RAW_OPCODES),
                    200..=249 => u32::from(num::<u8>(u)),
                    _ => num(u),
                };
                let len = usize::from(num::<u16>(u) % 512);
                let body = u.bytes(len.min(u.len())).unwrap_or_default();
                Request::new(op, node, body, Expect::Anything)
            }
        };
        // Framing faults: a header length that disagrees with the bytes, a short request, a
        // reply buffer too small for the reply.
        match num::<u8>(u) {
            0xf0..=0xf7 => {
                let full = IN_HEADER + req.body.len();
                let delta: i8 = num(u);
                req.len = Some((full as i64 + i64::from(delta)).max(0) as u32);
            }
            0xf8..=0xfa => req.len = Some(num(u)),
            0xfb | 0xfc => req.truncate = Some(usize::from(num::<u8>(u)) % (IN_HEADER + 8)),
            0xfd..=0xff => req.reply_len = u32::from(num::<u16>(u)) % MAX_REPLY,
            _ => {}
        }
        req
    }

    /// Records what a successful reply taught and checks it against the sealed share.
    fn learn(&mut self, expect: Expect, payload: &[u8]) {
        let share = self.share;
        let enforce = !self.opts.audit;
        match expect {
            Expect::Anything | Expect::Init | Expect::Destroy => {}
            Expect::Lookup(path) => {
                let entry: EntryOut = decode(payload, "LOOKUP");
                if entry.nodeid == 0 {
                    return;
                }
                if let Some(p) = &path {
                    let sealed = share.manifest.get(p);
                    assert!(
                        sealed.is_some() || self.opts.unlisted_allow,
                        "LOOKUP of the unlisted {:?} succeeded",
                        String::from_utf8_lossy(p)
                    );
                    if let Some(e) = sealed.filter(|e| matches!(e.kind, EntryKind::File { .. })) {
                        if enforce {
                            assert_eq!(entry.attr.size, e.size(), "size of {p:?}");
                        }
                    }
                }
                self.nodes.push((entry.nodeid, Known { path }));
            }
            Expect::Open(known) => {
                let open: OpenOut = decode(payload, "OPEN");
                self.handles.push((open.fh, known));
            }
            Expect::Read {
                paths,
                offset,
                size,
            } => {
                assert!(
                    payload.len() <= size as usize,
                    "READ returned more than asked"
                );
                let candidates: Vec<&[u8]> = paths
                    .iter()
                    .flatten()
                    .filter_map(|p| share.contents.get(p))
                    .map(|sealed| {
                        let start = usize::try_from(offset)
                            .unwrap_or(usize::MAX)
                            .min(sealed.len());
                        let end = start.saturating_add(size as usize).min(sealed.len());
                        &sealed[start..end]
                    })
                    .collect();
                let checked = paths
                    .iter()
                    .flatten()
                    .all(|p| share.contents.contains_key(p) && (enforce || p != TAMPERED));
                if checked && !candidates.is_empty() {
                    assert!(
                        candidates.contains(&payload),
                        "READ of {paths:?} at {offset} size {size} returned {} bytes that are not the sealed bytes",
                        payload.len()
                    );
                }
            }
            Expect::Readlink(Some(path)) => {
                if let Some(target) = share.link_target(&path) {
                    assert_eq!(payload, target, "READLINK of {path:?}");
                } else if enforce && share.manifest.get(&path).is_some() {
                    panic!("READLINK of the non-symlink {path:?} succeeded");
                }
            }
            Expect::Readlink(None) => {}
            Expect::Measure(paths) => {
                let out: IoctlOut = decode(payload, "IOCTL");
                if out.result != 0 {
                    assert!(
                        payload.len() == size_of::<IoctlOut>(),
                        "ioctl failure with a payload"
                    );
                    return;
                }
                let data = &payload[size_of::<IoctlOut>()..];
                let digests: Vec<Vec<u8>> = paths
                    .iter()
                    .flatten()
                    .filter_map(|p| share.manifest.get(p)?.digest().map(|d| d.measure_reply()))
                    .collect();
                assert!(
                    paths.iter().all(Option::is_some) && !digests.is_empty()
                        || paths.iter().any(Option::is_none),
                    "FS_IOC_MEASURE_VERITY succeeded for {paths:?}, which have no sealed digest"
                );
                if paths.iter().all(Option::is_some) {
                    assert!(
                        digests.iter().any(|d| d.as_slice() == data),
                        "FS_IOC_MEASURE_VERITY of {paths:?} is not the sealed digest"
                    );
                }
            }
        }
    }
}

fn decode<T: ByteValued + Default>(payload: &[u8], what: &str) -> T {
    let mut v = T::default();
    let n = size_of::<T>();
    assert!(
        payload.len() >= n,
        "{what} reply of {} bytes, expected at least {n}",
        payload.len()
    );
    v.as_mut_slice().copy_from_slice(&payload[..n]);
    v
}

/// Sends `req` and checks the reply framing; returns the errno and payload of a reply.
fn exchange<F: FileSystem + Send + Sync + 'static>(
    queue: &mut MockQueue,
    worker: &QueueWorker<F>,
    req: &Request,
    unique: u64,
) -> Option<(i32, Vec<u8>)> {
    let bytes = req.encode(unique);
    let done = queue.serve(worker, &bytes, req.reply_len);
    let framed = bytes.len() >= IN_HEADER;
    let header_op = if framed { req.opcode } else { u32::MAX };
    if !framed || !expects_reply(header_op) || (req.reply_len as usize) < OUT_HEADER {
        assert_eq!(
            done.used_len,
            0,
            "opcode {header_op} ({} bytes) must not be answered",
            bytes.len()
        );
        return None;
    }
    assert!(
        done.used_len as usize >= OUT_HEADER,
        "opcode {} got no reply (used length {})",
        req.opcode,
        done.used_len
    );
    let out: OutHeader = decode(&done.reply, "reply header");
    assert_eq!(out.len, done.used_len, "out_header.len != used length");
    assert_eq!(out.unique, unique, "unique not echoed");
    assert!(
        (-4095..=0).contains(&out.error),
        "errno {} out of range",
        out.error
    );
    if out.error != 0 {
        assert_eq!(out.len as usize, OUT_HEADER, "error reply with a payload");
    }
    Some((-out.error, done.reply[OUT_HEADER..].to_vec()))
}

/// Fuzz target: a FUSE session of requests decoded from `data` (see the module docs).
pub fn fuse_requests(data: &[u8]) {
    let share = share();
    let mut u = Unstructured::new(data);
    let opts = ShareOptions::from_byte(num(&mut u));
    // The daemon serves the default verified mode from the manifest, the diagnostic modes
    // through the passthrough-backed wrapper: the session runs on the one it would use.
    if opts.audit || opts.unlisted_allow {
        session(share, opts, &share.worker(opts), u);
    } else {
        session(share, opts, &share.manifest_worker(opts), u);
    }
}

/// One FUSE session over `worker`, checked against the sealed share.
fn session<F: FileSystem + Send + Sync + 'static>(
    share: &'static Share,
    opts: ShareOptions,
    worker: &QueueWorker<F>,
    mut u: Unstructured<'_>,
) {
    let mut queue = MockQueue::new();
    let mut model = Model {
        share,
        opts,
        nodes: vec![(
            ROOT,
            Known {
                path: Some(b"/".to_vec()),
            },
        )],
        handles: Vec::new(),
    };
    let first = model.init(&mut u);
    let mut requests = vec![first];
    let mut unique = 0u64;
    loop {
        for req in requests.drain(..) {
            unique += 1;
            let Some((errno, payload)) = exchange(&mut queue, worker, &req, unique) else {
                continue;
            };
            // Only intact requests teach the model: a cut body may still be served.
            if errno == 0 && req.len.is_none() && req.truncate.is_none() {
                model.learn(req.expect, &payload);
            }
        }
        if u.is_empty() || unique as usize > MAX_REQUESTS {
            break;
        }
        requests.push(model.decode(&mut u));
    }
}
