// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A complete fake virtio device driver: control connection, guest memory
//! and vrings, with a request/reply API over descriptor chains.
//!
//! [`Harness::connect`] leaves every configured vring enabled and ready.
//! [`Harness::submit`] lays a request out in guest memory as a chain of
//! device-readable buffers followed by device-writable reply buffers (one
//! each, split across several descriptors, or behind an indirect table, see
//! [`ChainLayout`]), publishes and kicks it; [`Harness::wait`] collects the
//! reply. Several requests may be in flight at once; replies that arrive for
//! other requests are kept until they are waited for.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use thiserror::Error;
use vm_memory::GuestAddress;

use crate::frontend::{FrontendConfig, FrontendError, Negotiated, VhostUserConnection};
use crate::memory::{GuestMemory, MemoryError};
use crate::virtqueue::{QueueError, Segment, SplitQueue, UsedElement};

/// Alignment of request and reply buffers (FUSE structs are 8-byte aligned).
const BUFFER_ALIGN: u64 = 8;

/// Errors from [`Harness`].
#[derive(Debug, Error)]
pub enum HarnessError {
    /// The control plane failed.
    #[error(transparent)]
    Frontend(#[from] FrontendError),
    /// Guest memory setup or access failed.
    #[error(transparent)]
    Memory(#[from] MemoryError),
    /// A virtqueue operation failed (including reply timeouts).
    #[error(transparent)]
    Queue(#[from] QueueError),
    /// No vring with this index was configured.
    #[error("queue {0} is not configured")]
    NoSuchQueue(u16),
    /// The chain layout asks for an indirect table but the feature is off.
    #[error("indirect descriptors were not negotiated")]
    IndirectNotNegotiated,
    /// A buffer does not fit the 32-bit descriptor length.
    #[error("buffer of {0} bytes is too large for a descriptor")]
    BufferTooLarge(usize),
    /// The daemon claims to have written more than the reply buffers hold.
    #[error("daemon reported {len} reply bytes for a {capacity}-byte buffer")]
    UsedLengthTooLarge {
        /// Length from the used ring.
        len: u32,
        /// Total size of the device-writable buffers.
        capacity: u32,
    },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, HarnessError>;

/// How a request is laid out as a descriptor chain.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChainLayout {
    /// One readable descriptor for the request, one writable for the reply.
    Simple,
    /// The request and the reply each split across up to this many
    /// descriptors with separately allocated buffers (scatter-gather).
    Split {
        /// Maximum number of device-readable descriptors.
        readable: usize,
        /// Maximum number of device-writable descriptors.
        writable: usize,
    },
    /// Like `Split`, but the descriptors live in an indirect table.
    Indirect {
        /// Maximum number of device-readable descriptors.
        readable: usize,
        /// Maximum number of device-writable descriptors.
        writable: usize,
    },
}

/// Configuration of a [`Harness`].
#[derive(Debug, Clone)]
pub struct HarnessConfig {
    /// Size of guest memory in bytes (page multiple, at least 1 MiB).
    pub memory_size: usize,
    /// Control-plane settings (queue count and size, features).
    pub frontend: FrontendConfig,
    /// How long [`Harness::wait`] waits for a reply.
    pub request_timeout: Duration,
}

impl Default for HarnessConfig {
    fn default() -> Self {
        HarnessConfig {
            memory_size: 64 << 20,
            frontend: FrontendConfig::default(),
            request_timeout: Duration::from_secs(10),
        }
    }
}

/// A submitted chain whose reply has not been collected yet.
#[derive(Debug)]
#[must_use = "a pending request must be waited for, or its buffers leak"]
pub struct PendingRequest {
    queue: u16,
    head: u16,
    reply: Vec<(GuestAddress, u32)>,
    buffers: Vec<GuestAddress>,
}

impl PendingRequest {
    /// Queue the request was published on.
    pub fn queue(&self) -> u16 {
        self.queue
    }

    /// Head descriptor index of the chain.
    pub fn head(&self) -> u16 {
        self.head
    }
}

/// A connected fake driver: memory, vrings and the vhost-user connection.
#[derive(Debug)]
pub struct Harness {
    connection: VhostUserConnection,
    memory: GuestMemory,
    queues: Vec<SplitQueue>,
    /// Used elements that arrived while waiting for another request.
    completed: HashMap<(u16, u32), UsedElement>,
    request_timeout: Duration,
}

impl Harness {
    /// Connects to the daemon at `socket`, negotiates, shares guest memory
    /// and enables `config.frontend.num_queues` vrings.
    pub fn connect(socket: &Path, config: &HarnessConfig) -> Result<Self> {
        let mut memory = GuestMemory::new(config.memory_size)?;
        let mut connection = VhostUserConnection::connect(socket, &config.frontend)?;
        connection.set_mem_table(&memory)?;
        let mut queues = Vec::with_capacity(config.frontend.num_queues);
        for index in 0..config.frontend.num_queues {
            let index = u16::try_from(index).map_err(|_| HarnessError::NoSuchQueue(u16::MAX))?;
            let mut queue = SplitQueue::new(&mut memory, index, config.frontend.queue_size)?;
            queue.set_event_idx(connection.negotiated().event_idx());
            connection.setup_vring(&memory, &queue)?;
            queues.push(queue);
        }
        Ok(Harness {
            connection,
            memory,
            queues,
            completed: HashMap::new(),
            request_timeout: config.request_timeout,
        })
    }

    /// Closes the vhost-user connection and unmaps guest memory (same as
    /// dropping the harness).
    pub fn disconnect(self) {
        drop(self);
    }

    /// Negotiated features.
    pub fn negotiated(&self) -> &Negotiated {
        self.connection.negotiated()
    }

    /// The control connection.
    pub fn connection(&self) -> &VhostUserConnection {
        &self.connection
    }

    /// The control connection (for control-plane tests).
    pub fn connection_mut(&mut self) -> &mut VhostUserConnection {
        &mut self.connection
    }

    /// Guest memory (for inspecting buffers).
    pub fn memory(&self) -> &GuestMemory {
        &self.memory
    }

    /// Default timeout used by [`Harness::wait`].
    pub fn request_timeout(&self) -> Duration {
        self.request_timeout
    }

    /// Changes the default reply timeout.
    pub fn set_request_timeout(&mut self, timeout: Duration) {
        self.request_timeout = timeout;
    }

    /// Low-level access to one queue together with guest memory, for tests
    /// that build malformed chains by hand.
    pub fn raw_queue(&mut self, queue: u16) -> Result<(&mut SplitQueue, &mut GuestMemory)> {
        let q = self
            .queues
            .get_mut(usize::from(queue))
            .ok_or(HarnessError::NoSuchQueue(queue))?;
        Ok((q, &mut self.memory))
    }

    /// Lays out `request` and a reply area of `reply_capacity` bytes as a
    /// chain, publishes it on `queue` and kicks.
    pub fn submit(
        &mut self,
        queue: u16,
        request: &[u8],
        reply_capacity: usize,
        layout: ChainLayout,
    ) -> Result<PendingRequest> {
        let pending = self.publish(queue, request, reply_capacity, layout)?;
        self.kick(queue)?;
        Ok(pending)
    }

    /// Publishes all `requests` (request bytes, reply capacity) and kicks
    /// once, so the daemon finds them all available together.
    pub fn submit_batch(
        &mut self,
        queue: u16,
        requests: &[(&[u8], usize)],
        layout: ChainLayout,
    ) -> Result<Vec<PendingRequest>> {
        let mut pending = Vec::with_capacity(requests.len());
        for (request, reply_capacity) in requests {
            pending.push(self.publish(queue, request, *reply_capacity, layout)?);
        }
        self.kick(queue)?;
        Ok(pending)
    }

    /// Notifies the daemon about new buffers on `queue`.
    pub fn kick(&self, queue: u16) -> Result<()> {
        let q = self
            .queues
            .get(usize::from(queue))
            .ok_or(HarnessError::NoSuchQueue(queue))?;
        Ok(q.kick()?)
    }

    /// Waits (with the default timeout) for `pending` and returns the reply
    /// bytes (as many as the used ring says were written).
    pub fn wait(&mut self, pending: PendingRequest) -> Result<Vec<u8>> {
        let timeout = self.request_timeout;
        self.wait_timeout(pending, timeout)
    }

    /// Like [`Harness::wait`] with an explicit timeout. On timeout the
    /// request's buffers stay allocated (the daemon may still write them).
    pub fn wait_timeout(&mut self, pending: PendingRequest, timeout: Duration) -> Result<Vec<u8>> {
        let elem = self.wait_used_for(pending.queue, u32::from(pending.head), timeout)?;
        let capacity: u32 = pending.reply.iter().map(|(_, len)| *len).sum();
        let result = if elem.len > capacity {
            Err(HarnessError::UsedLengthTooLarge {
                len: elem.len,
                capacity,
            })
        } else {
            self.gather_reply(&pending.reply, elem.len)
        };
        for addr in pending.buffers {
            self.memory.free(addr)?;
        }
        result
    }

    /// Submits one request and waits for its reply.
    pub fn request(
        &mut self,
        queue: u16,
        request: &[u8],
        reply_capacity: usize,
        layout: ChainLayout,
    ) -> Result<Vec<u8>> {
        let pending = self.submit(queue, request, reply_capacity, layout)?;
        self.wait(pending)
    }

    /// Waits for the next used element on `queue` that nobody waits for
    /// (e.g. for a chain published with the raw API).
    pub fn wait_used_raw(&mut self, queue: u16, timeout: Duration) -> Result<UsedElement> {
        if let Some(key) = self.completed.keys().find(|(q, _)| *q == queue).copied() {
            if let Some(elem) = self.completed.remove(&key) {
                return Ok(elem);
            }
        }
        let (q, mem) = self.raw_queue(queue)?;
        Ok(q.wait_used(mem, timeout)?)
    }

    /// Waits until the used element for `head` on `queue` shows up.
    fn wait_used_for(&mut self, queue: u16, head: u32, timeout: Duration) -> Result<UsedElement> {
        if let Some(elem) = self.completed.remove(&(queue, head)) {
            return Ok(elem);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let (q, mem) = self.raw_queue(queue)?;
            let elem = match q.wait_used(mem, remaining) {
                Ok(elem) => elem,
                Err(QueueError::Timeout { queue, .. }) => {
                    return Err(QueueError::Timeout { queue, timeout }.into())
                }
                Err(e) => return Err(e.into()),
            };
            if elem.id == head {
                return Ok(elem);
            }
            self.completed.insert((queue, elem.id), elem);
        }
    }

    /// Allocates buffers, writes the request and publishes the chain.
    fn publish(
        &mut self,
        queue: u16,
        request: &[u8],
        reply_capacity: usize,
        layout: ChainLayout,
    ) -> Result<PendingRequest> {
        if usize::from(queue) >= self.queues.len() {
            return Err(HarnessError::NoSuchQueue(queue));
        }
        let (max_readable, max_writable, indirect) = match layout {
            ChainLayout::Simple => (1, 1, false),
            ChainLayout::Split { readable, writable } => (readable, writable, false),
            ChainLayout::Indirect { readable, writable } => (readable, writable, true),
        };
        if indirect && !self.negotiated().indirect_desc() {
            return Err(HarnessError::IndirectNotNegotiated);
        }
        let mut chain = ChainBuffers::default();
        let laid_out = chain.lay_out(
            &mut self.memory,
            request,
            reply_capacity,
            max_readable,
            max_writable,
        );
        let published = laid_out.and_then(|()| {
            let (q, mem) = self.raw_queue(queue)?;
            let head = if indirect {
                q.add_indirect_chain(mem, &chain.segments)?
            } else {
                q.add_chain(mem, &chain.segments)?
            };
            Ok(head)
        });
        match published {
            Ok(head) => Ok(PendingRequest {
                queue,
                head,
                reply: chain.reply,
                buffers: chain.buffers,
            }),
            Err(e) => {
                for addr in chain.buffers {
                    // Best effort: the buffers were never published.
                    let _ = self.memory.free(addr);
                }
                Err(e)
            }
        }
    }

    /// Concatenates the first `len` bytes of the reply buffers.
    fn gather_reply(&self, reply: &[(GuestAddress, u32)], len: u32) -> Result<Vec<u8>> {
        let mut out = Vec::with_capacity(len as usize);
        let mut left = len;
        for (addr, cap) in reply {
            if left == 0 {
                break;
            }
            let take = left.min(*cap);
            out.extend_from_slice(&self.memory.read(*addr, take as usize)?);
            left -= take;
        }
        Ok(out)
    }
}

/// Guest buffers of one chain while it is being laid out.
#[derive(Debug, Default)]
struct ChainBuffers {
    /// Every allocation (freed when the reply is collected).
    buffers: Vec<GuestAddress>,
    /// The chain in driver order.
    segments: Vec<Segment>,
    /// The device-writable pieces, in order.
    reply: Vec<(GuestAddress, u32)>,
}

impl ChainBuffers {
    /// Allocates and fills the request pieces and allocates the reply pieces.
    fn lay_out(
        &mut self,
        memory: &mut GuestMemory,
        request: &[u8],
        reply_capacity: usize,
        max_readable: usize,
        max_writable: usize,
    ) -> Result<()> {
        for (start, len) in split_lengths(request.len(), max_readable) {
            let addr = self.alloc(memory, len, false)?;
            memory.write(addr, &request[start..start + len])?;
        }
        for (_, len) in split_lengths(reply_capacity, max_writable) {
            let addr = self.alloc(memory, len, true)?;
            // `alloc` checked that `len` fits in u32.
            self.reply.push((addr, len as u32));
        }
        Ok(())
    }

    fn alloc(
        &mut self,
        memory: &mut GuestMemory,
        len: usize,
        writable: bool,
    ) -> Result<GuestAddress> {
        let len32 = u32::try_from(len).map_err(|_| HarnessError::BufferTooLarge(len))?;
        let addr = memory.alloc(u64::from(len32.max(1)), BUFFER_ALIGN)?;
        self.buffers.push(addr);
        self.segments.push(Segment {
            addr,
            len: len32,
            writable,
        });
        Ok(addr)
    }
}

/// Splits `total` bytes into at most `max_pieces` non-empty (start, len)
/// pieces of nearly equal size; zero bytes give no pieces.
fn split_lengths(total: usize, max_pieces: usize) -> Vec<(usize, usize)> {
    let pieces = max_pieces.max(1).min(total);
    if pieces == 0 {
        return Vec::new();
    }
    let base = total / pieces;
    let extra = total % pieces;
    let mut out = Vec::with_capacity(pieces);
    let mut start = 0;
    for i in 0..pieces {
        let len = base + usize::from(i < extra);
        out.push((start, len));
        start += len;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::split_lengths;

    #[test]
    fn split_lengths_covers_everything() {
        assert_eq!(split_lengths(0, 3), vec![]);
        assert_eq!(split_lengths(10, 1), vec![(0, 10)]);
        assert_eq!(split_lengths(10, 3), vec![(0, 4), (4, 3), (7, 3)]);
        assert_eq!(split_lengths(2, 5), vec![(0, 1), (1, 1)]);
        assert_eq!(split_lengths(5, 0), vec![(0, 5)]);
    }
}
