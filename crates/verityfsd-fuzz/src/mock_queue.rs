// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Mock guest memory with one split virtqueue, driven the way a guest driver drives it.
//!
//! The vring is the vhost-user backend's own type ([`Vring`]), set up as the frontend's
//! `SET_VRING_*` messages would; requests go through [`QueueWorker::process_queue`], the
//! daemon's entry point for a kick.

use fuse_backend_rs::api::filesystem::FileSystem;
use verityfsd::queue_worker::{GuestMem, QueueWorker, Vring};
use vhost_user_backend::VringT;
use virtio_bindings::bindings::virtio_ring::{VRING_DESC_F_NEXT, VRING_DESC_F_WRITE};
use virtio_queue::desc::split::Descriptor;
use vm_memory::{
    Bytes, GuestAddress, GuestAddressSpace, GuestMemoryAtomic, GuestMemoryMmap, Le16, Le32,
};

/// Largest queue the mock vrings accept.
pub const MAX_QUEUE_SIZE: u16 = 256;
/// Size of one split-ring descriptor.
pub const DESC_SIZE: u64 = std::mem::size_of::<Descriptor>() as u64;

/// A guest memory (`GuestMemoryMmap` over `ranges`) or `None` when the ranges are invalid
/// (overlapping, wrapping, empty).
pub fn guest_memory(ranges: &[(u64, usize)]) -> Option<GuestMem> {
    let ranges: Vec<_> = ranges.iter().map(|&(a, l)| (GuestAddress(a), l)).collect();
    GuestMemoryMmap::<()>::from_ranges(&ranges)
        .ok()
        .map(GuestMemoryAtomic::new)
}

/// An enabled vring of `size` entries at the given addresses, or `None` when the vring layer
/// refuses the addresses (misaligned).
pub fn vring(mem: &GuestMem, size: u16, desc: u64, avail: u64, used: u64) -> Option<Vring> {
    let vring = Vring::new(mem.clone(), MAX_QUEUE_SIZE).ok()?;
    vring.set_queue_size(size);
    vring.set_queue_info(desc, avail, used).ok()?;
    vring.set_queue_ready(true);
    vring.set_enabled(true);
    Some(vring)
}

/// Writes a split-ring descriptor at `at`.
pub fn write_desc(mem: &GuestMemoryMmap<()>, at: u64, addr: u64, len: u32, flags: u16, next: u16) {
    // Tables outside guest memory are part of what the targets test: nothing to write there.
    let _ = mem.write_obj(Descriptor::new(addr, len, flags, next), GuestAddress(at));
}

/// Reads a little-endian `u16` of guest memory.
pub fn read_u16(mem: &GuestMemoryMmap<()>, at: u64) -> Option<u16> {
    mem.read_obj::<Le16>(GuestAddress(at)).ok().map(u16::from)
}

/// Reads a little-endian `u32` of guest memory.
pub fn read_u32(mem: &GuestMemoryMmap<()>, at: u64) -> Option<u32> {
    mem.read_obj::<Le32>(GuestAddress(at)).ok().map(u32::from)
}

/// A well-behaved guest queue: one request at a time, as one readable and one writable
/// descriptor.
pub struct MockQueue {
    mem: GuestMem,
    vring: Vring,
    /// Next available-ring index (the guest's free-running counter).
    next: u16,
}

impl std::fmt::Debug for MockQueue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MockQueue")
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

/// Size of the well-behaved queue.
const SIZE: u16 = 16;
const DESC: u64 = 0x1000;
const AVAIL: u64 = 0x2000;
const USED: u64 = 0x3000;
const REQUEST: u64 = 0x1_0000;
/// Largest request the queue carries.
pub const MAX_REQUEST: usize = 0x2_0000;
const REPLY: u64 = REQUEST + MAX_REQUEST as u64;
/// Largest reply buffer.
pub const MAX_REPLY: u32 = 0x4_0000;
const MEM_SIZE: usize = REPLY as usize + MAX_REPLY as usize;

/// One completed request.
#[derive(Debug)]
pub struct Completion {
    /// The used length the daemon reported.
    pub used_len: u32,
    /// The first `used_len` bytes of the reply buffer (at most its size).
    pub reply: Vec<u8>,
}

impl MockQueue {
    /// A fresh queue in fresh guest memory.
    pub fn new() -> Self {
        let mem = guest_memory(&[(0, MEM_SIZE)]).expect("guest memory");
        let vring = vring(&mem, SIZE, DESC, AVAIL, USED).expect("vring");
        MockQueue {
            mem,
            vring,
            next: 0,
        }
    }

    /// Offers `request` with `reply_len` writable bytes, kicks the worker and returns what
    /// came back. Panics if the daemon does not complete exactly that chain.
    pub fn serve<F>(
        &mut self,
        worker: &QueueWorker<F>,
        request: &[u8],
        reply_len: u32,
    ) -> Completion
    where
        F: FileSystem + Send + Sync + 'static,
    {
        assert!(request.len() <= MAX_REQUEST && reply_len <= MAX_REPLY);
        let mem = self.mem.memory();
        mem.write_slice(request, GuestAddress(REQUEST)).unwrap();
        let head = self.next % SIZE;
        let second = (head + 1) % SIZE;
        // Two descriptors per request, at `head` and the next slot.
        write_desc(
            &mem,
            DESC + u64::from(head) * DESC_SIZE,
            REQUEST,
            u32::try_from(request.len()).unwrap(),
            VRING_DESC_F_NEXT as u16,
            second,
        );
        write_desc(
            &mem,
            DESC + u64::from(second) * DESC_SIZE,
            REPLY,
            reply_len,
            VRING_DESC_F_WRITE as u16,
            0,
        );
        let slot = AVAIL + 4 + 2 * u64::from(self.next % SIZE);
        mem.write_slice(&head.to_le_bytes(), GuestAddress(slot))
            .unwrap();
        self.next = self.next.wrapping_add(1);
        mem.write_slice(&self.next.to_le_bytes(), GuestAddress(AVAIL + 2))
            .unwrap();
        drop(mem);

        worker.process_queue(&self.vring, &self.mem, 0);

        let mem = self.mem.memory();
        assert_eq!(
            read_u16(&mem, USED + 2),
            Some(self.next),
            "the chain was not completed exactly once"
        );
        let entry = USED + 4 + 8 * u64::from(self.next.wrapping_sub(1) % SIZE);
        assert_eq!(read_u32(&mem, entry), Some(u32::from(head)), "used id");
        let used_len = read_u32(&mem, entry + 4).unwrap();
        assert!(
            used_len <= reply_len,
            "used length {used_len} exceeds the {reply_len} writable bytes"
        );
        let mut reply = vec![0u8; used_len as usize];
        mem.read_slice(&mut reply, GuestAddress(REPLY)).unwrap();
        Completion { used_len, reply }
    }
}

impl Default for MockQueue {
    fn default() -> Self {
        MockQueue::new()
    }
}
