// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Per-queue request processing: descriptor chains in, FUSE replies and used-ring entries out.
//!
//! Nothing a guest puts in a chain may stop the daemon: a chain that cannot be parsed is
//! returned to the guest with a zero used length (dropped), and a request the FUSE server
//! cannot handle is answered with an error reply when the request expects one.

use std::io::Write;
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

fn serve_request<F: FileSystem + Sync>(
    server: &Server<F>,
    mem: &GuestMemoryMmap<()>,
    chain: Chain,
) -> u32 {
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

    #[test]
    fn forgets_have_no_reply() {
        assert!(!expects_reply(FUSE_FORGET));
        assert!(!expects_reply(FUSE_BATCH_FORGET));
        assert!(expects_reply(15));
        assert_eq!(OUT_HEADER_LEN, 16);
    }
}
