// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Per-queue request processing: descriptor chains in, FUSE replies and used-ring entries out.
//!
//! Nothing a guest puts in a chain may stop the daemon: a chain that cannot be parsed is
//! returned to the guest with a zero used length (dropped), and a request the FUSE server
//! cannot handle is answered with an error reply when the request expects one.

use std::io::Write;
use std::ops::Deref;
use std::sync::Arc;

use fuse_backend_rs::abi::fuse_abi::{InHeader, OutHeader};
use fuse_backend_rs::api::filesystem::FileSystem;
use fuse_backend_rs::api::server::Server;
use fuse_backend_rs::transport::{Reader, VirtioFsWriter};
use vhost_user_backend::{VringRwLock, VringState, VringT};
use virtio_queue::{DescriptorChain, QueueOwnedT};
use vm_memory::{ByteValued, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap};

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

/// FUSE opcodes that never get a reply.
const FUSE_FORGET: u32 = 2;
const FUSE_INTERRUPT: u32 = 36;
const FUSE_BATCH_FORGET: u32 = 42;

/// Size of `struct fuse_out_header`.
const OUT_HEADER_LEN: usize = std::mem::size_of::<OutHeader>();

/// Whether fuse-backend-rs 0.14 knows `opcode`.
///
/// Its `Opcode` enum covers 1..=49 with gaps at 7 and 19, and `Opcode::from` transmutes any
/// number below 50 (undefined behaviour for the gaps) when trace logging is on. Everything
/// else is answered here with ENOSYS before the server sees it.
pub fn is_known_opcode(opcode: u32) -> bool {
    matches!(opcode, 1..=6 | 8..=18 | 20..=49)
}

fn expects_reply(opcode: u32) -> bool {
    !matches!(opcode, FUSE_FORGET | FUSE_BATCH_FORGET | FUSE_INTERRUPT)
}

/// Serves the requests of one or more queues with one FUSE server.
pub struct QueueWorker<F: FileSystem + Send + Sync + 'static> {
    server: Arc<Server<F>>,
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
        QueueWorker { server, pool }
    }

    /// Pops every available chain of `vring` and serves it.
    pub fn process_queue(&self, vring: &Vring, mem: &GuestMem, queue_index: usize) {
        let snapshot: MemSnapshot = mem.memory().into_inner();
        let chains: Vec<Chain> = {
            let mut state = vring.get_mut();
            match state.get_queue_mut().iter(Arc::clone(&snapshot)) {
                Ok(iter) => iter.collect(),
                Err(e) => {
                    warn_ratelimited!("queue {queue_index}: cannot read the available ring: {e}");
                    return;
                }
            }
        };
        for chain in chains {
            match &self.pool {
                None => {
                    let (head, len) = serve_chain(&self.server, &snapshot, chain);
                    complete(vring, head, len, queue_index);
                }
                Some(pool) => {
                    let server = Arc::clone(&self.server);
                    let vring = vring.clone();
                    let snapshot = Arc::clone(&snapshot);
                    pool.execute(Box::new(move || {
                        let (head, len) = serve_chain(&server, &snapshot, chain);
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
    server: &Server<F>,
    mem: &MemSnapshot,
    chain: Chain,
) -> (u16, u32) {
    let head = chain.head_index();
    (head, serve_request(server, mem, chain))
}

/// Serves one request chain whose memory handle is `M`; returns the used length.
fn serve_request<F, M>(
    server: &Server<F>,
    mem: &GuestMemoryMmap<()>,
    chain: DescriptorChain<M>,
) -> u32
where
    F: FileSystem + Sync,
    M: Deref<Target = GuestMemoryMmap<()>> + Clone,
{
    let reader = match Reader::from_descriptor_chain(mem, chain.clone()) {
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
    if !is_known_opcode(header.opcode) {
        log::debug!("unsupported FUSE opcode {}: ENOSYS", header.opcode);
        return reply_error(&mut writer, header.unique, libc::ENOSYS);
    }
    match server.handle_message(reader, writer.into(), None, None) {
        Ok(n) => u32::try_from(n).unwrap_or_else(|_| {
            warn_ratelimited!("reply length {n} does not fit the used ring");
            0
        }),
        Err(e) => {
            warn_ratelimited!(
                "FUSE request opcode {} unique {} failed: {e}",
                header.opcode,
                header.unique
            );
            if !expects_reply(header.opcode) {
                return 0;
            }
            // The first writer was consumed; answer through a fresh one over the same chain.
            match VirtioFsWriter::new(mem, chain) {
                Ok(mut w) => reply_error(&mut w, header.unique, libc::EIO),
                Err(_) => 0,
            }
        }
    }
}

/// Writes a bare error reply; returns the used length.
fn reply_error(writer: &mut VirtioFsWriter<'_, ()>, unique: u64, errno: i32) -> u32 {
    let header = OutHeader {
        len: OUT_HEADER_LEN as u32,
        error: -errno,
        unique,
    };
    match writer.write_all(header.as_slice()) {
        Ok(()) => OUT_HEADER_LEN as u32,
        Err(e) => {
            warn_ratelimited!("cannot write error reply for unique {unique}: {e}");
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opcode_gaps_are_unknown() {
        assert!(!is_known_opcode(0));
        assert!(is_known_opcode(1)); // LOOKUP
        assert!(!is_known_opcode(7));
        assert!(is_known_opcode(15)); // READ
        assert!(!is_known_opcode(19));
        assert!(is_known_opcode(26)); // INIT
        assert!(is_known_opcode(49)); // REMOVEMAPPING
        assert!(!is_known_opcode(50)); // SYNCFS: newer than fuse-backend-rs 0.14
        assert!(!is_known_opcode(52)); // STATX
        assert!(!is_known_opcode(u32::MAX));
        assert!(!is_known_opcode(4096)); // CUSE_INIT
    }

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
    const FUSE_INIT: u32 = 26;

    struct Setup {
        _dir: tempfile::TempDir,
        server: Server<VerityFs<PassthroughFs<()>>>,
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
            server: Server::new(fs),
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
        serve_request(&s.server, &s.mem, chain)
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

    #[test]
    fn forgets_have_no_reply() {
        assert!(!expects_reply(FUSE_FORGET));
        assert!(!expects_reply(FUSE_BATCH_FORGET));
        assert!(expects_reply(15));
        assert_eq!(OUT_HEADER_LEN, 16);
    }
}
