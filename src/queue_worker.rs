// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Per-queue request processing: descriptor chains in, FUSE replies and used-ring entries out.
//!
//! Nothing a guest puts in a chain may stop the daemon: a chain that cannot be parsed is
//! returned to the guest with a zero used length (dropped), and a request the FUSE server
//! cannot handle is answered with an error reply when the request expects one.
//!
//! Before the FUSE server sees a request, the daemon routes it by opcode, checks
//! `in_header.len` against the chain, the LOOKUP name framing and the session state
//! ([`crate::request_check`]); the server then only reads the announced bytes. Every used
//! length is exactly the number of reply bytes written.

use std::io::{Read, Write};
use std::ops::Deref;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use fuse_backend_rs::abi::fuse_abi::{InHeader, OutHeader};
use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::transport::{Reader, VirtioFsWriter};
use vhost_user_backend::{VringRwLock, VringState, VringT};
use virtio_queue::{DescriptorChain, QueueOwnedT};
use vm_memory::{ByteValued, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};

use crate::request_check::{
    check_batch_forget, check_init_version, check_length, check_lookup_name, expects_reply, opcode,
    route, Route, FUSE_MAJOR, IN_HEADER_LEN, NAME_MAX,
};
use crate::warn_ratelimited;
use crate::worker_pool::WorkerPool;

/// Guest memory as the vhost-user handler maintains it.
pub type GuestMem = GuestMemoryAtomic<GuestMemoryMmap<()>>;
/// One vring.
pub type Vring = VringRwLock<GuestMem>;
/// A snapshot of guest memory that can be sent to worker threads.
type MemSnapshot = Arc<GuestMemoryMmap<()>>;
/// A descriptor chain tied to a memory snapshot.
type Chain = DescriptorChain<MemSnapshot>;

thread_local! {
    /// Chains popped from a queue and not yet served, per vring thread (reused, never shrunk
    /// below the largest batch seen: at most the queue size).
    static PENDING: std::cell::RefCell<Vec<Chain>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Size of `struct fuse_out_header`.
const OUT_HEADER_LEN: usize = std::mem::size_of::<OutHeader>();

/// The FUSE server and the session state kept around it.
struct Session<F: FileSystem + Sync> {
    server: Arc<Server<F>>,
    /// Set by a successful INIT, cleared by DESTROY. Until then every request but INIT is
    /// answered with EIO (fuse-backend-rs 0.14 would serve it against an unimported root).
    initialized: AtomicBool,
}

impl<F: FileSystem + Sync> Session<F> {
    fn new(server: Arc<Server<F>>) -> Self {
        Session {
            server,
            initialized: AtomicBool::new(false),
        }
    }
}

/// Serves the requests of one or more queues with one FUSE server.
pub struct QueueWorker<F: FileSystem + Send + Sync + 'static> {
    session: Arc<Session<F>>,
    pool: Option<WorkerPool>,
}

impl<F: FileSystem + Send + Sync + 'static> std::fmt::Debug for QueueWorker<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("QueueWorker")
            .field("pool", &self.pool)
            .finish_non_exhaustive()
    }
}

impl<F: FileSystem + Send + Sync + 'static> QueueWorker<F> {
    /// Processes requests inline (`pool == None`) or on the pool's threads.
    pub fn new(server: Arc<Server<F>>, pool: Option<WorkerPool>) -> Self {
        QueueWorker {
            session: Arc::new(Session::new(server)),
            pool,
        }
    }

    /// Pops every available chain of `vring` and serves it.
    pub fn process_queue(&self, vring: &Vring, mem: &GuestMem, queue_index: usize) {
        let snapshot: MemSnapshot = mem.memory().into_inner();
        // The chains are popped under the vring lock and served after it is released (serving
        // completes chains, which takes the lock again), through a buffer each vring thread
        // keeps, so that no kick allocates.
        PENDING.with_borrow_mut(|chains| {
            {
                let mut state = vring.get_mut();
                match state.get_queue_mut().iter(Arc::clone(&snapshot)) {
                    Ok(iter) => chains.extend(iter),
                    Err(e) => {
                        warn_ratelimited!(
                            "queue {queue_index}: cannot read the available ring: {e}"
                        );
                        return;
                    }
                }
            }
            self.serve_chains(chains.drain(..), vring, &snapshot, queue_index);
        });
    }

    fn serve_chains(
        &self,
        chains: impl Iterator<Item = Chain>,
        vring: &Vring,
        snapshot: &MemSnapshot,
        queue_index: usize,
    ) {
        for chain in chains {
            match &self.pool {
                None => {
                    let (head, len) = serve_chain(&self.session, snapshot, chain);
                    complete(vring, head, len, queue_index);
                }
                Some(pool) => {
                    let session = Arc::clone(&self.session);
                    let vring = vring.clone();
                    let snapshot = Arc::clone(snapshot);
                    pool.execute(Box::new(move || {
                        let (head, len) = serve_chain(&session, &snapshot, chain);
                        complete(&vring, head, len, queue_index);
                    }));
                }
            }
        }
    }
}

/// Puts one finished chain on the used ring and notifies the guest if needed, under one
/// vring lock.
fn complete(vring: &Vring, head: u16, len: u32, queue_index: usize) {
    let mut state = vring.get_mut();
    if let Err(e) = state.add_used(head, len) {
        warn_ratelimited!("queue {queue_index}: cannot add used entry {head}: {e}");
        return;
    }
    signal_if_needed(&mut state, queue_index);
}

fn signal_if_needed(state: &mut VringState<GuestMem>, queue_index: usize) {
    // On error, notify anyway: a spurious interrupt is harmless, a missing one hangs the guest.
    let needed = state.needs_notification().unwrap_or(true);
    if needed {
        if let Err(e) = state.signal_used_queue() {
            warn_ratelimited!("queue {queue_index}: cannot notify the guest: {e}");
        }
    }
}

/// Serves one chain; returns its head index and the used length (bytes written).
fn serve_chain<F: FileSystem + Sync>(
    session: &Session<F>,
    mem: &MemSnapshot,
    chain: Chain,
) -> (u16, u32) {
    let head = chain.head_index();
    (head, serve_request(session, mem, chain))
}

/// Serves one request chain whose memory handle is `M`; returns the used length: exactly the
/// bytes of the reply written to the chain, 0 when there is no reply.
fn serve_request<F, M>(
    session: &Session<F>,
    mem: &GuestMemoryMmap<()>,
    chain: DescriptorChain<M>,
) -> u32
where
    F: FileSystem + Sync,
    M: Deref<Target = GuestMemoryMmap<()>> + Clone,
{
    let mut reader = match Reader::from_descriptor_chain(mem, chain.clone()) {
        Ok(r) => r,
        Err(e) => {
            warn_ratelimited!("dropping malformed request chain (readable part): {e}");
            return 0;
        }
    };
    let mut writer = match VirtioFsWriter::new(mem, chain.clone()) {
        Ok(w) => w,
        Err(e) => {
            warn_ratelimited!("dropping malformed request chain (writable part): {e}");
            return 0;
        }
    };
    let header: InHeader = match reader.clone().read_obj() {
        Ok(h) => h,
        Err(e) => {
            warn_ratelimited!("dropping request without a FUSE header: {e}");
            return 0;
        }
    };
    let op = header.opcode;
    if !expects_reply(op) {
        // FORGET, BATCH_FORGET and INTERRUPT: served when well-formed, never answered.
        if route(op) == Route::Serve
            && check_length(&header, reader.available_bytes()).is_ok()
            && session.initialized.load(Ordering::Acquire)
            && batch_forget_fits(&header, &reader)
        {
            limit_reader(&mut reader, header.len);
            if let Err(e) = session
                .server
                .handle_message(reader, writer.into(), None, None)
            {
                warn_ratelimited!("FUSE request opcode {op} failed: {e}");
            }
        }
        return 0;
    }
    if writer.available_bytes() < OUT_HEADER_LEN {
        warn_ratelimited!("dropping opcode {op}: no room for a reply");
        return 0;
    }
    // Read once: checked by `precheck`, and only an INIT in our major version starts a session
    // (to a newer major the server answers with its own, and the guest retries).
    let init_version = (op == opcode::INIT)
        .then(|| init_version(&reader))
        .flatten();
    if let Err(errno) = precheck(session, &header, &reader, init_version) {
        log::debug!(
            "opcode {op} unique {}: refused with errno {errno}",
            header.unique
        );
        return reply_status(&mut writer, header.unique, errno);
    }
    let starts_session = init_version.is_some_and(|(major, _)| major == FUSE_MAJOR);
    limit_reader(&mut reader, header.len);
    match session
        .server
        .handle_message(reader, writer.into(), None, None)
    {
        Ok(n) => {
            match op {
                // A successful INIT reply carries fuse_init_out; an error reply is bare.
                opcode::INIT if n > OUT_HEADER_LEN && starts_session => {
                    session.initialized.store(true, Ordering::Release)
                }
                opcode::DESTROY => {
                    session.initialized.store(false, Ordering::Release);
                    // fuse-backend-rs writes DESTROY's reply but reports 0 bytes.
                    return fresh_reply(mem, chain, header.unique, 0);
                }
                _ => {}
            }
            u32::try_from(n).unwrap_or_else(|_| {
                warn_ratelimited!("reply length {n} does not fit the used ring");
                0
            })
        }
        Err(e) => {
            warn_ratelimited!(
                "FUSE request opcode {op} unique {} failed: {e}",
                header.unique
            );
            // The first writer was consumed; answer through a fresh one over the same chain.
            fresh_reply(mem, chain, header.unique, errno_of_server_error(&e))
        }
    }
}

/// The checks made before the server sees a request that expects a reply; `init_version` is
/// the (major, minor) an INIT announces.
fn precheck<F: FileSystem + Sync>(
    session: &Session<F>,
    header: &InHeader,
    reader: &Reader<'_, ()>,
    init_version: Option<(u32, u32)>,
) -> Result<(), i32> {
    if let Route::Refuse(errno) = route(header.opcode) {
        return Err(errno);
    }
    let len = check_length(header, reader.available_bytes())?;
    if header.opcode != opcode::INIT && !session.initialized.load(Ordering::Acquire) {
        return Err(libc::EIO);
    }
    // An INIT body too short for the version is left to the server (it answers EIO).
    if let Some((major, minor)) = init_version {
        check_init_version(major, minor)?;
    }
    if header.opcode == opcode::LOOKUP {
        let body_len = len - IN_HEADER_LEN;
        let mut body = Vec::with_capacity(NAME_MAX + 2);
        let mut r = reader.clone();
        r.read_obj::<InHeader>().map_err(|_| libc::EINVAL)?;
        r.take(u64::try_from(body_len.min(NAME_MAX + 2)).unwrap_or(0))
            .read_to_end(&mut body)
            .map_err(|_| libc::EINVAL)?;
        check_lookup_name(&body, body_len)?;
    }
    Ok(())
}

/// The (major, minor) version of an INIT request, if the body holds them.
fn init_version(reader: &Reader<'_, ()>) -> Option<(u32, u32)> {
    let mut r = reader.clone();
    r.read_obj::<InHeader>().ok()?;
    let major = r.read_obj::<u32>().ok()?;
    let minor = r.read_obj::<u32>().ok()?;
    Some((major, minor))
}

/// For BATCH_FORGET, whether the body holds the entries its count announces (other opcodes:
/// true). A request that does not is dropped unanswered, as every forget is.
fn batch_forget_fits(header: &InHeader, reader: &Reader<'_, ()>) -> bool {
    if header.opcode != opcode::BATCH_FORGET {
        return true;
    }
    let mut r = reader.clone();
    let count = r.read_obj::<InHeader>().and_then(|_| r.read_obj::<u32>());
    let body_len = usize::try_from(header.len)
        .unwrap_or(0)
        .saturating_sub(IN_HEADER_LEN);
    match count.map(|c| check_batch_forget(c, body_len)) {
        Ok(Ok(())) => true,
        _ => {
            warn_ratelimited!("dropping a BATCH_FORGET whose count does not match its length");
            false
        }
    }
}

/// Cuts `reader` to the `len` bytes announced in the header (already checked to be there),
/// so the server never decodes bytes past the request.
fn limit_reader(reader: &mut Reader<'_, ()>, len: u32) {
    if let Ok(len) = usize::try_from(len) {
        // Only fails for `len > available`, which `check_length` excluded.
        let _ = reader.split_at(len);
    }
}

/// The errno of the reply for a request the server failed on.
///
/// For a bad C string fuse-backend-rs has already written an EINVAL reply before failing;
/// answering EINVAL again keeps that reply.
fn errno_of_server_error(e: &fuse_backend_rs::Error) -> i32 {
    use fuse_backend_rs::Error as E;
    match e {
        E::InvalidCString(_) | E::InvalidHeaderLength | E::InvalidXattrSize(_) => libc::EINVAL,
        _ => libc::EIO,
    }
}

/// Writes a bare status reply through a new writer over `chain`; returns the used length.
fn fresh_reply<M>(
    mem: &GuestMemoryMmap<()>,
    chain: DescriptorChain<M>,
    unique: u64,
    errno: i32,
) -> u32
where
    M: Deref<Target = GuestMemoryMmap<()>> + Clone,
{
    match VirtioFsWriter::new(mem, chain) {
        Ok(mut w) => reply_status(&mut w, unique, errno),
        Err(_) => 0,
    }
}

/// Writes a bare reply (`errno == 0` for success); returns the used length.
fn reply_status(writer: &mut VirtioFsWriter<'_, ()>, unique: u64, errno: i32) -> u32 {
    let header = OutHeader {
        len: OUT_HEADER_LEN as u32,
        error: -errno,
        unique,
    };
    match writer.write_all(header.as_slice()) {
        Ok(()) => OUT_HEADER_LEN as u32,
        Err(e) => {
            warn_ratelimited!("cannot write the reply for unique {unique}: {e}");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use fuse_backend_rs::abi::fuse_abi::{ForgetIn, InitIn, InitOut};
    use fuse_backend_rs::api::filesystem::FsOptions;
    use fuse_backend_rs::passthrough::PassthroughFs;
    use verity_fs::{CacheMode, FsConfig, VerityFs};
    use virtio_bindings::bindings::virtio_ring::VRING_DESC_F_WRITE;
    use virtio_queue::desc::split::Descriptor as SplitDescriptor;
    use virtio_queue::desc::RawDescriptor;
    use virtio_queue::mock::MockSplitQueue;
    use vm_memory::{Bytes, GuestAddress};

    const MEM_SIZE: usize = 0x10_0000;
    const QUEUE_ADDR: u64 = 0x1000;
    const REQ_ADDR: u64 = 0x8_0000;
    const REPLY_ADDR: u64 = 0x9_0000;
    const REPLY_LEN: u32 = 0x1000;
    const FUSE_INIT: u32 = opcode::INIT;
    const FUSE_FORGET: u32 = opcode::FORGET;

    struct Setup {
        _dir: tempfile::TempDir,
        session: Session<VerityFs<PassthroughFs<()>>>,
        mem: GuestMemoryMmap<()>,
    }

    fn setup() -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let cfg = FsConfig {
            shared_dir: std::fs::canonicalize(dir.path()).unwrap(),
            cache: CacheMode::Auto,
            xattr: false,
        };
        let fs = VerityFs::new(verity_fs::new_passthrough(&cfg).unwrap(), true);
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), MEM_SIZE)]).unwrap();
        Setup {
            _dir: dir,
            session: Session::new(Arc::new(Server::new(fs))),
            mem,
        }
    }

    fn header(opcode: u32, body_len: usize) -> InHeader {
        InHeader {
            len: u32::try_from(std::mem::size_of::<InHeader>() + body_len).unwrap(),
            opcode,
            unique: 0x1234,
            nodeid: 1,
            ..Default::default()
        }
    }

    /// Puts `request` in guest memory and serves a chain of one readable descriptor of
    /// `readable_len` bytes at `readable_addr` and one writable reply descriptor.
    fn serve(s: &Setup, request: &[u8], readable_addr: u64, readable_len: u32) -> u32 {
        s.mem.write_slice(request, GuestAddress(REQ_ADDR)).unwrap();
        let descs = [
            RawDescriptor::from(SplitDescriptor::new(readable_addr, readable_len, 0, 0)),
            RawDescriptor::from(SplitDescriptor::new(
                REPLY_ADDR,
                REPLY_LEN,
                u16::try_from(VRING_DESC_F_WRITE).unwrap(),
                0,
            )),
        ];
        let queue = MockSplitQueue::create(&s.mem, GuestAddress(QUEUE_ADDR), 16);
        let chain = queue.build_desc_chain(&descs).unwrap();
        serve_request(&s.session, &s.mem, chain)
    }

    fn reply_header(s: &Setup) -> OutHeader {
        s.mem.read_obj(GuestAddress(REPLY_ADDR)).unwrap()
    }

    fn request(opcode: u32, body: &[u8]) -> Vec<u8> {
        let mut bytes = header(opcode, body.len()).as_slice().to_vec();
        bytes.extend_from_slice(body);
        bytes
    }

    #[test]
    fn init_is_answered_with_read_only_flags() {
        let s = setup();
        let init = InitIn {
            major: 7,
            minor: 33,
            max_readahead: 0x2_0000,
            // Everything in the first flags word except INIT_EXT (which announces a second
            // word this request does not carry).
            flags: u32::try_from(
                FsOptions::all().difference(FsOptions::INIT_EXT).bits() & 0xffff_ffff,
            )
            .unwrap(),
        };
        let req = request(FUSE_INIT, init.as_slice());
        let len = serve(&s, &req, REQ_ADDR, u32::try_from(req.len()).unwrap());
        let out = reply_header(&s);
        assert_eq!(out.error, 0);
        assert_eq!(out.unique, 0x1234);
        assert_eq!(len, out.len);
        assert_eq!(
            usize::try_from(len).unwrap(),
            OUT_HEADER_LEN + std::mem::size_of::<InitOut>()
        );
        let init_out: InitOut = s
            .mem
            .read_obj(GuestAddress(REPLY_ADDR + OUT_HEADER_LEN as u64))
            .unwrap();
        let flags = FsOptions::from_bits_truncate(u64::from(init_out.flags));
        assert!(flags.contains(FsOptions::ASYNC_READ | FsOptions::MAX_PAGES));
        assert!(!flags.contains(FsOptions::WRITEBACK_CACHE));
    }

    #[test]
    fn unknown_opcodes_get_enosys_without_reaching_the_server() {
        let s = setup();
        for opcode in [7, 19, 50, 52, 4096, u32::MAX] {
            let req = request(opcode, &[0u8; 16]);
            let len = serve(&s, &req, REQ_ADDR, u32::try_from(req.len()).unwrap());
            let out = reply_header(&s);
            assert_eq!(len, 16, "opcode {opcode}");
            assert_eq!(out.error, -libc::ENOSYS, "opcode {opcode}");
            assert_eq!(out.unique, 0x1234);
        }
    }

    #[test]
    fn malformed_chains_are_dropped() {
        let s = setup();
        let req = request(FUSE_INIT, &[0u8; 16]);
        // Readable descriptor outside guest memory.
        assert_eq!(serve(&s, &req, MEM_SIZE as u64 + 0x1000, 64), 0);
        // Too short for a FUSE header.
        assert_eq!(serve(&s, &req, REQ_ADDR, 8), 0);
    }

    #[test]
    fn truncated_body_gets_an_error_reply() {
        let s = setup();
        // INIT header announcing a body that is not there.
        let req = request(FUSE_INIT, &[]);
        let len = serve(&s, &req, REQ_ADDR, u32::try_from(req.len()).unwrap());
        assert_eq!(len, 16);
        assert_eq!(reply_header(&s).error, -libc::EIO);
    }

    #[test]
    fn forget_has_no_reply() {
        let s = setup();
        let req = request(FUSE_FORGET, ForgetIn { nlookup: 1 }.as_slice());
        assert_eq!(
            serve(&s, &req, REQ_ADDR, u32::try_from(req.len()).unwrap()),
            0
        );
    }

    /// Answers INIT so that the session serves other requests.
    fn init(s: &Setup) {
        let init = InitIn {
            major: 7,
            minor: 31,
            max_readahead: 0x2_0000,
            flags: 0,
        };
        let req = request(FUSE_INIT, init.as_slice());
        let len = serve(s, &req, REQ_ADDR, u32::try_from(req.len()).unwrap());
        assert!(usize::try_from(len).unwrap() > OUT_HEADER_LEN);
    }

    /// Serves `req` whole; returns (used length, reply errno).
    fn serve_whole(s: &Setup, req: &[u8]) -> (u32, i32) {
        let len = serve(s, req, REQ_ADDR, u32::try_from(req.len()).unwrap());
        (len, -reply_header(s).error)
    }

    #[test]
    fn only_a_supported_init_starts_a_session() {
        let s = setup();
        let getattr = request(3, &[0u8; 16]);
        for (major, minor, errno) in [(7, 30, libc::EPROTO), (6, 31, libc::EPROTO), (8, 0, 0)] {
            let init = InitIn {
                major,
                minor,
                max_readahead: 0x2_0000,
                flags: 0,
            };
            let (_, got) = serve_whole(&s, &request(FUSE_INIT, init.as_slice()));
            assert_eq!(got, errno, "INIT {major}.{minor}");
            assert_eq!(
                serve_whole(&s, &getattr),
                (16, libc::EIO),
                "{major}.{minor}"
            );
        }
        init(&s);
        assert_eq!(serve_whole(&s, &getattr).1, 0);
    }

    #[test]
    fn requests_before_init_and_after_destroy_get_eio() {
        let s = setup();
        let getattr = request(3, &[0u8; 16]);
        assert_eq!(serve_whole(&s, &getattr), (16, libc::EIO));
        init(&s);
        let (len, errno) = serve_whole(&s, &getattr);
        assert_eq!(errno, 0);
        assert!(usize::try_from(len).unwrap() > OUT_HEADER_LEN);
        // DESTROY is answered with exactly a header, and ends the session.
        assert_eq!(serve_whole(&s, &request(opcode::DESTROY, &[])), (16, 0));
        assert_eq!(serve_whole(&s, &getattr), (16, libc::EIO));
        init(&s);
        assert_eq!(serve_whole(&s, &getattr).1, 0);
    }

    #[test]
    fn init_of_another_major_version_does_not_start_the_session() {
        let s = setup();
        for major in [8, 56, u32::MAX] {
            let init = InitIn {
                major,
                minor: 31,
                ..Default::default()
            };
            // fuse-backend-rs answers with its own version and imports nothing.
            let (len, errno) = serve_whole(&s, &request(FUSE_INIT, init.as_slice()));
            assert_eq!(errno, 0);
            assert!(usize::try_from(len).unwrap() > OUT_HEADER_LEN);
            assert_eq!(
                serve_whole(&s, &request(3, &[0u8; 16])),
                (16, libc::EIO),
                "GETATTR after an INIT of major {major}"
            );
        }
        // The INIT that follows the version answer starts the session.
        init(&s);
        assert_eq!(serve_whole(&s, &request(3, &[0u8; 16])).1, 0);
    }

    #[test]
    fn header_length_must_match_the_chain() {
        let s = setup();
        init(&s);
        let mut req = request(3, &[0u8; 16]);
        for bad in [0u32, 39, 57, 4096, 2 << 20] {
            req[..4].copy_from_slice(&bad.to_le_bytes());
            let (len, errno) = serve_whole(&s, &req);
            assert_eq!(len, 16, "len {bad}");
            assert!(errno == libc::EINVAL || errno == libc::ENOMEM, "len {bad}");
        }
    }

    #[test]
    fn lookup_names_are_single_components() {
        let s = setup();
        init(&s);
        for name in [&b"\0"[..], b"a/b\0", b"a\0b\0", b"no-nul", b"..\0x\0"] {
            assert_eq!(
                serve_whole(&s, &request(opcode::LOOKUP, name)),
                (16, libc::EINVAL),
                "{name:?}"
            );
        }
        let long = [b'x'; 300];
        assert_eq!(
            serve_whole(&s, &request(opcode::LOOKUP, &long)),
            (16, libc::ENAMETOOLONG)
        );
        // A missing but well-formed name reaches the filesystem.
        assert_eq!(
            serve_whole(&s, &request(opcode::LOOKUP, b"missing\0")),
            (16, libc::ENOENT)
        );
    }

    #[test]
    fn mutations_unknown_to_the_server_are_erofs_and_dax_is_enosys() {
        let s = setup();
        init(&s);
        for (op, errno) in [
            (opcode::COPY_FILE_RANGE, libc::EROFS),
            (opcode::TMPFILE, libc::EROFS),
            (opcode::SETUPMAPPING, libc::ENOSYS),
            (opcode::REMOVEMAPPING, libc::ENOSYS),
        ] {
            assert_eq!(serve_whole(&s, &request(op, &[0u8; 64])), (16, errno));
        }
    }

    #[test]
    fn no_room_for_a_reply_drops_the_request() {
        let s = setup();
        let req = request(FUSE_INIT, &[0u8; 16]);
        s.mem.write_slice(&req, GuestAddress(REQ_ADDR)).unwrap();
        let descs = [
            RawDescriptor::from(SplitDescriptor::new(
                REQ_ADDR,
                u32::try_from(req.len()).unwrap(),
                0,
                0,
            )),
            RawDescriptor::from(SplitDescriptor::new(
                REPLY_ADDR,
                8,
                u16::try_from(VRING_DESC_F_WRITE).unwrap(),
                0,
            )),
        ];
        let queue = MockSplitQueue::create(&s.mem, GuestAddress(QUEUE_ADDR), 16);
        let chain = queue.build_desc_chain(&descs).unwrap();
        assert_eq!(serve_request(&s.session, &s.mem, chain), 0);
    }
}
