// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The driver side of a split virtqueue (virtio 1.2 §2.7), written by hand.
//!
//! The harness plays the guest driver: it owns the descriptor table and the
//! available ring and reads the used ring the daemon fills in. Everything is
//! done with plain guest-memory accesses so that tests can also build chains
//! no well-behaved driver would (loops, bad addresses, wrong direction), see
//! [`SplitQueue::take_descriptors`], [`SplitQueue::write_descriptor`] and
//! [`SplitQueue::publish_raw`].
//!
//! Notifications: `VIRTIO_RING_F_EVENT_IDX` is never negotiated by the
//! harness, so the daemon signals the call eventfd after every batch and the
//! harness kicks after every publish.

use std::collections::HashMap;
use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use thiserror::Error;
use vhost::VringConfigData;
use vm_memory::{Bytes, GuestAddress};
use vmm_sys_util::epoll::{ControlOperation, Epoll, EpollEvent, EventSet};
use vmm_sys_util::eventfd::{EventFd, EFD_NONBLOCK};

pub use crate::descriptor::{
    RawDescriptor, Segment, UsedElement, DESCRIPTOR_SIZE, DESC_F_INDIRECT, DESC_F_NEXT,
    DESC_F_WRITE,
};
use crate::memory::{GuestMemory, MemoryError};

/// Largest queue size the split ring format allows.
pub const MAX_QUEUE_SIZE: u16 = 32768;
/// Alignment used for all ring parts (a page; stricter than the spec needs).
const RING_ALIGN: u64 = 4096;
/// Offset of `idx` in the avail and used rings (after `flags`).
const RING_IDX_OFFSET: u64 = 2;
/// Offset of `ring[]` in the avail and used rings (after `flags`, `idx`).
const RING_ENTRIES_OFFSET: u64 = 4;
/// Size of one used-ring element (`id: le32`, `len: le32`).
const USED_ELEM_SIZE: u64 = 8;

/// Errors from [`SplitQueue`].
#[derive(Debug, Error)]
pub enum QueueError {
    /// The queue size is zero, not a power of two, or too large.
    #[error("invalid queue size {0}")]
    InvalidSize(u16),
    /// A chain needs more descriptors than are free.
    #[error("queue {queue} has {free} free descriptors, {needed} needed")]
    NoFreeDescriptors {
        /// Queue index.
        queue: u16,
        /// Descriptors needed.
        needed: usize,
        /// Descriptors free.
        free: usize,
    },
    /// A chain with no descriptors was submitted.
    #[error("empty descriptor chain")]
    EmptyChain,
    /// A descriptor index is outside the table.
    #[error("descriptor index {index} outside queue of size {size}")]
    DescriptorIndex {
        /// Offending index.
        index: u16,
        /// Queue size.
        size: u16,
    },
    /// Guest memory access failed.
    #[error("guest memory access for queue {queue} failed")]
    Memory {
        /// Queue index.
        queue: u16,
        /// Underlying error.
        #[source]
        source: MemoryError,
    },
    /// Creating, arming or reading an eventfd failed.
    #[error("eventfd operation for queue {queue} failed")]
    EventFd {
        /// Queue index.
        queue: u16,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// The daemon did not return a used element in time.
    #[error("timed out after {timeout:?} waiting for the used ring of queue {queue}")]
    Timeout {
        /// Queue index.
        queue: u16,
        /// How long the harness waited.
        timeout: Duration,
    },
    /// The daemon advanced `used.idx` by more than the queue size.
    #[error("used.idx of queue {queue} jumped from {last} to {now}")]
    UsedIndexJump {
        /// Queue index.
        queue: u16,
        /// Last index seen by the harness.
        last: u16,
        /// Index now in the ring.
        now: u16,
    },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, QueueError>;

/// Bookkeeping for a published chain, released when it is used.
#[derive(Debug, Default)]
struct InFlightChain {
    descriptors: Vec<u16>,
    memory: Vec<GuestAddress>,
}

/// The driver side of one split virtqueue living in [`GuestMemory`].
#[derive(Debug)]
pub struct SplitQueue {
    index: u16,
    size: u16,
    desc_table: GuestAddress,
    avail_ring: GuestAddress,
    used_ring: GuestAddress,
    free_descriptors: Vec<u16>,
    next_avail: u16,
    last_used: u16,
    in_flight: HashMap<u16, InFlightChain>,
    kick: EventFd,
    call: EventFd,
    epoll: Epoll,
    event_idx: bool,
}

impl SplitQueue {
    /// Allocates and zeroes the three ring parts for queue `index` of `size` entries.
    pub fn new(mem: &mut GuestMemory, index: u16, size: u16) -> Result<Self> {
        if size == 0 || !size.is_power_of_two() || size > MAX_QUEUE_SIZE {
            return Err(QueueError::InvalidSize(size));
        }
        let n = u64::from(size);
        let mem_err = |source| QueueError::Memory {
            queue: index,
            source,
        };
        let desc_len = DESCRIPTOR_SIZE * n;
        let avail_len = RING_ENTRIES_OFFSET + 2 * n + 2;
        let used_len = RING_ENTRIES_OFFSET + USED_ELEM_SIZE * n + 2;
        let desc_table = mem.alloc(desc_len, RING_ALIGN).map_err(mem_err)?;
        let avail_ring = mem.alloc(avail_len, RING_ALIGN).map_err(mem_err)?;
        let used_ring = mem.alloc(used_len, RING_ALIGN).map_err(mem_err)?;
        for (addr, len) in [
            (desc_table, desc_len),
            (avail_ring, avail_len),
            (used_ring, used_len),
        ] {
            let len = usize::try_from(len).map_err(|_| QueueError::InvalidSize(size))?;
            mem.fill(addr, len, 0).map_err(mem_err)?;
        }
        let ev_err = |source| QueueError::EventFd {
            queue: index,
            source,
        };
        let kick = EventFd::new(EFD_NONBLOCK).map_err(ev_err)?;
        let call = EventFd::new(EFD_NONBLOCK).map_err(ev_err)?;
        let epoll = Epoll::new().map_err(ev_err)?;
        epoll
            .ctl(
                ControlOperation::Add,
                std::os::fd::AsRawFd::as_raw_fd(&call),
                EpollEvent::new(EventSet::IN, 0),
            )
            .map_err(ev_err)?;
        Ok(SplitQueue {
            index,
            size,
            desc_table,
            avail_ring,
            used_ring,
            // Pop from the end: hand out 0, 1, 2... first.
            free_descriptors: (0..size).rev().collect(),
            next_avail: 0,
            last_used: 0,
            in_flight: HashMap::new(),
            kick,
            call,
            epoll,
            event_idx: false,
        })
    }

    /// Queue index (0 = hiprio, 1.. = request queues for virtio-fs).
    pub fn index(&self) -> u16 {
        self.index
    }

    /// Number of descriptors / ring entries.
    pub fn size(&self) -> u16 {
        self.size
    }

    /// Guest-physical addresses of (descriptor table, avail ring, used ring).
    pub fn ring_addresses(&self) -> (GuestAddress, GuestAddress, GuestAddress) {
        (self.desc_table, self.avail_ring, self.used_ring)
    }

    /// The eventfd the harness writes to notify the daemon.
    pub fn kick_fd(&self) -> &EventFd {
        &self.kick
    }

    /// The eventfd the daemon writes when it has used buffers.
    pub fn call_fd(&self) -> &EventFd {
        &self.call
    }

    /// `VHOST_USER_SET_VRING_ADDR` payload: ring addresses as frontend
    /// (this process's) virtual addresses.
    pub fn config_data(&self, mem: &GuestMemory) -> Result<VringConfigData> {
        let va = |gpa| {
            mem.host_address(gpa).map_err(|source| QueueError::Memory {
                queue: self.index,
                source,
            })
        };
        Ok(VringConfigData {
            queue_max_size: self.size,
            queue_size: self.size,
            flags: 0,
            desc_table_addr: va(self.desc_table)?,
            used_ring_addr: va(self.used_ring)?,
            avail_ring_addr: va(self.avail_ring)?,
            log_addr: None,
        })
    }

    /// Number of descriptors not owned by an in-flight chain.
    pub fn free_descriptor_count(&self) -> usize {
        self.free_descriptors.len()
    }

    /// Number of published chains not yet seen in the used ring.
    pub fn in_flight_count(&self) -> usize {
        self.in_flight.len()
    }

    /// Writes `segments` as one linked chain in the descriptor table and
    /// publishes it. Returns the head index. The caller keeps the buffers.
    pub fn add_chain(&mut self, mem: &GuestMemory, segments: &[Segment]) -> Result<u16> {
        if segments.is_empty() {
            return Err(QueueError::EmptyChain);
        }
        let descs = self.take_descriptors(segments.len())?;
        for (i, seg) in segments.iter().enumerate() {
            let next = descs.get(i + 1).copied();
            let desc = RawDescriptor {
                addr: seg.addr.0,
                len: seg.len,
                flags: seg.flags() | if next.is_some() { DESC_F_NEXT } else { 0 },
                next: next.unwrap_or(0),
            };
            self.write_descriptor(mem, descs[i], desc)?;
        }
        let head = descs[0];
        self.publish_raw(mem, head, descs, Vec::new())?;
        Ok(head)
    }

    /// Writes `segments` into an indirect table allocated in guest memory and
    /// publishes one ring descriptor pointing at it (`DESC_F_INDIRECT`). The
    /// table is freed when the chain is used.
    pub fn add_indirect_chain(
        &mut self,
        mem: &mut GuestMemory,
        segments: &[Segment],
    ) -> Result<u16> {
        if segments.is_empty() {
            return Err(QueueError::EmptyChain);
        }
        let count = u16::try_from(segments.len()).map_err(|_| QueueError::NoFreeDescriptors {
            queue: self.index,
            needed: segments.len(),
            free: usize::from(u16::MAX),
        })?;
        let table_len = DESCRIPTOR_SIZE * u64::from(count);
        let mem_err = |source| QueueError::Memory {
            queue: self.index,
            source,
        };
        let table = mem.alloc(table_len, DESCRIPTOR_SIZE).map_err(mem_err)?;
        let descs: Vec<RawDescriptor> = segments
            .iter()
            .enumerate()
            .map(|(i, seg)| {
                let last = i + 1 == segments.len();
                RawDescriptor {
                    addr: seg.addr.0,
                    len: seg.len,
                    flags: seg.flags() | if last { 0 } else { DESC_F_NEXT },
                    // i + 1 < count <= u16::MAX here.
                    next: if last { 0 } else { (i + 1) as u16 },
                }
            })
            .collect();
        let result = write_descriptor_table(mem, table, &descs)
            .map_err(mem_err)
            .and_then(|()| self.take_descriptors(1));
        let ring = match result {
            Ok(ring) => ring,
            Err(e) => {
                // Best effort: the table is unused.
                let _ = mem.free(table);
                return Err(e);
            }
        };
        let head = ring[0];
        self.write_descriptor(
            mem,
            head,
            RawDescriptor {
                addr: table.0,
                // table_len <= 16 * u16::MAX fits in u32.
                len: table_len as u32,
                flags: DESC_F_INDIRECT,
                next: 0,
            },
        )?;
        self.publish_raw(mem, head, ring, vec![table])?;
        Ok(head)
    }

    /// Low-level: reserves `n` descriptor indices for the caller to fill with
    /// [`SplitQueue::write_descriptor`] and publish with [`SplitQueue::publish_raw`].
    pub fn take_descriptors(&mut self, n: usize) -> Result<Vec<u16>> {
        if n > self.free_descriptors.len() {
            return Err(QueueError::NoFreeDescriptors {
                queue: self.index,
                needed: n,
                free: self.free_descriptors.len(),
            });
        }
        let at = self.free_descriptors.len() - n;
        let mut taken = self.free_descriptors.split_off(at);
        taken.reverse();
        Ok(taken)
    }

    /// Low-level: returns descriptors taken with [`SplitQueue::take_descriptors`]
    /// that were never published.
    pub fn return_descriptors(&mut self, descs: impl IntoIterator<Item = u16>) {
        self.free_descriptors.extend(descs);
    }

    /// Low-level: writes any descriptor (including malformed ones) at `index`.
    pub fn write_descriptor(
        &self,
        mem: &GuestMemory,
        index: u16,
        desc: RawDescriptor,
    ) -> Result<()> {
        if index >= self.size {
            return Err(QueueError::DescriptorIndex {
                index,
                size: self.size,
            });
        }
        let addr = self.desc_table.0 + DESCRIPTOR_SIZE * u64::from(index);
        mem.write(GuestAddress(addr), &desc.to_bytes())
            .map_err(|source| QueueError::Memory {
                queue: self.index,
                source,
            })
    }

    /// Low-level: puts `head` in the next avail slot and bumps `avail.idx`.
    ///
    /// `descriptors` and `memory` are released when the daemon returns
    /// `head` in the used ring. Publishing a head that is already in flight
    /// (a hostile "duplicate head") keeps the first bookkeeping entry.
    pub fn publish_raw(
        &mut self,
        mem: &GuestMemory,
        head: u16,
        descriptors: Vec<u16>,
        memory: Vec<GuestAddress>,
    ) -> Result<()> {
        let slot = u64::from(self.next_avail % self.size);
        let entry = self.avail_ring.0 + RING_ENTRIES_OFFSET + 2 * slot;
        let m = mem.mmap();
        let mem_err = |source| QueueError::Memory {
            queue: self.index,
            source: MemoryError::Access {
                addr: entry,
                len: 2,
                source,
            },
        };
        m.write_obj(head.to_le(), GuestAddress(entry))
            .map_err(mem_err)?;
        self.next_avail = self.next_avail.wrapping_add(1);
        // Release: the descriptors and the ring entry must be visible before
        // the new index (virtio 1.2 §2.7.13.3.1).
        m.store(
            self.next_avail.to_le(),
            GuestAddress(self.avail_ring.0 + RING_IDX_OFFSET),
            Ordering::Release,
        )
        .map_err(mem_err)?;
        self.in_flight.entry(head).or_insert(InFlightChain {
            descriptors,
            memory,
        });
        Ok(())
    }

    /// Low-level: overwrites `avail.idx` (e.g. to run ahead of the ring).
    pub fn set_avail_idx_raw(&mut self, mem: &GuestMemory, idx: u16) -> Result<()> {
        let addr = GuestAddress(self.avail_ring.0 + RING_IDX_OFFSET);
        mem.mmap()
            .store(idx.to_le(), addr, Ordering::Release)
            .map_err(|source| QueueError::Memory {
                queue: self.index,
                source: MemoryError::Access {
                    addr: addr.0,
                    len: 2,
                    source,
                },
            })?;
        self.next_avail = idx;
        Ok(())
    }

    /// The driver's current `avail.idx`.
    pub fn avail_idx(&self) -> u16 {
        self.next_avail
    }

    /// Notifies the daemon that new buffers are available.
    pub fn kick(&self) -> Result<()> {
        self.kick.write(1).map_err(|source| QueueError::EventFd {
            queue: self.index,
            source,
        })
    }

    /// Takes the next used element, if any, and releases the chain's
    /// descriptors and memory. Unknown ids are returned as-is.
    pub fn pop_used(&mut self, mem: &mut GuestMemory) -> Result<Option<UsedElement>> {
        let m = mem.mmap();
        let idx_addr = GuestAddress(self.used_ring.0 + RING_IDX_OFFSET);
        let mem_err = |addr: GuestAddress, source| QueueError::Memory {
            queue: self.index,
            source: MemoryError::Access {
                addr: addr.0,
                len: 8,
                source,
            },
        };
        let now = u16::from_le(
            m.load::<u16>(idx_addr, Ordering::Acquire)
                .map_err(|e| mem_err(idx_addr, e))?,
        );
        if now == self.last_used {
            return Ok(None);
        }
        if now.wrapping_sub(self.last_used) > self.size {
            return Err(QueueError::UsedIndexJump {
                queue: self.index,
                last: self.last_used,
                now,
            });
        }
        let slot = u64::from(self.last_used % self.size);
        let elem_addr =
            GuestAddress(self.used_ring.0 + RING_ENTRIES_OFFSET + USED_ELEM_SIZE * slot);
        let raw: [u8; 8] = m.read_obj(elem_addr).map_err(|e| mem_err(elem_addr, e))?;
        self.last_used = self.last_used.wrapping_add(1);
        let elem = UsedElement {
            id: u32::from_le_bytes([raw[0], raw[1], raw[2], raw[3]]),
            len: u32::from_le_bytes([raw[4], raw[5], raw[6], raw[7]]),
        };
        if let Some(chain) = u16::try_from(elem.id)
            .ok()
            .and_then(|id| self.in_flight.remove(&id))
        {
            self.free_descriptors.extend(chain.descriptors);
            for addr in chain.memory {
                mem.free(addr).map_err(|source| QueueError::Memory {
                    queue: self.index,
                    source,
                })?;
            }
        }
        Ok(Some(elem))
    }

    /// Waits up to `timeout` for the next used element.
    pub fn wait_used(&mut self, mem: &mut GuestMemory, timeout: Duration) -> Result<UsedElement> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(elem) = self.pop_used(mem)? {
                return Ok(elem);
            }
            if self.event_idx {
                // Ask for a notification when the next element is used,
                // then re-check to close the race with the device.
                self.write_used_event(mem)?;
                std::sync::atomic::fence(Ordering::SeqCst);
                if let Some(elem) = self.pop_used(mem)? {
                    return Ok(elem);
                }
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() {
                return Err(QueueError::Timeout {
                    queue: self.index,
                    timeout,
                });
            }
            self.wait_call(remaining)?;
        }
    }

    /// Switches `VIRTIO_RING_F_EVENT_IDX` handling on or off; must match the
    /// negotiated features. With it on, [`SplitQueue::wait_used`] publishes
    /// `used_event` before sleeping (virtio 1.2 §2.7.10); the harness still
    /// kicks after every publish (extra kicks are allowed).
    pub fn set_event_idx(&mut self, enabled: bool) {
        self.event_idx = enabled;
    }

    /// Writes `used_event` (the trailing field of the avail ring).
    fn write_used_event(&self, mem: &GuestMemory) -> Result<()> {
        let addr = GuestAddress(self.avail_ring.0 + RING_ENTRIES_OFFSET + 2 * u64::from(self.size));
        mem.mmap()
            .store(self.last_used.to_le(), addr, Ordering::SeqCst)
            .map_err(|source| QueueError::Memory {
                queue: self.index,
                source: MemoryError::Access {
                    addr: addr.0,
                    len: 2,
                    source,
                },
            })
    }

    /// Blocks until the call eventfd fires or `timeout` passes, then drains it.
    fn wait_call(&self, timeout: Duration) -> Result<()> {
        let ev_err = |source| QueueError::EventFd {
            queue: self.index,
            source,
        };
        // Round up so that a sub-millisecond remainder still waits.
        let ms = i32::try_from(timeout.as_millis().saturating_add(1)).unwrap_or(i32::MAX);
        let mut events = [EpollEvent::default()];
        match self.epoll.wait(ms, &mut events) {
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(ev_err(e)),
        }
        match self.call.read() {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(()),
            Err(e) => Err(ev_err(e)),
        }
    }
}

/// Writes a contiguous descriptor table (for indirect chains).
fn write_descriptor_table(
    mem: &GuestMemory,
    table: GuestAddress,
    descs: &[RawDescriptor],
) -> std::result::Result<(), MemoryError> {
    let bytes: Vec<u8> = descs.iter().flat_map(|d| d.to_bytes()).collect();
    mem.write(table, &bytes)
}

/// Low-level, for hostile tests: writes raw descriptors as an indirect
/// table at `table` (the caller allocates and frees it).
pub fn write_indirect_table(
    mem: &GuestMemory,
    table: GuestAddress,
    descs: &[RawDescriptor],
) -> std::result::Result<(), MemoryError> {
    write_descriptor_table(mem, table, descs)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::MIN_MEMORY_SIZE;

    fn used_push(mem: &GuestMemory, q: &SplitQueue, slot: u16, id: u32, len: u32, new_idx: u16) {
        let (_, _, used) = q.ring_addresses();
        let addr = used.0 + RING_ENTRIES_OFFSET + USED_ELEM_SIZE * u64::from(slot);
        let mut b = [0u8; 8];
        b[..4].copy_from_slice(&id.to_le_bytes());
        b[4..].copy_from_slice(&len.to_le_bytes());
        mem.write(GuestAddress(addr), &b).unwrap();
        mem.write(
            GuestAddress(used.0 + RING_IDX_OFFSET),
            &new_idx.to_le_bytes(),
        )
        .unwrap();
    }

    #[test]
    fn chain_is_linked_published_and_released() {
        let mut mem = GuestMemory::new(MIN_MEMORY_SIZE).unwrap();
        let mut q = SplitQueue::new(&mut mem, 1, 8).unwrap();
        let head = q
            .add_chain(
                &mem,
                &[
                    Segment::readable(GuestAddress(0x10000), 40),
                    Segment::writable(GuestAddress(0x20000), 100),
                ],
            )
            .unwrap();
        let (desc, avail, _) = q.ring_addresses();
        let d0 = mem
            .read(GuestAddress(desc.0 + 16 * u64::from(head)), 16)
            .unwrap();
        assert_eq!(u16::from_le_bytes([d0[12], d0[13]]), DESC_F_NEXT);
        let next = u16::from_le_bytes([d0[14], d0[15]]);
        let d1 = mem
            .read(GuestAddress(desc.0 + 16 * u64::from(next)), 16)
            .unwrap();
        assert_eq!(u16::from_le_bytes([d1[12], d1[13]]), DESC_F_WRITE);
        assert_eq!(mem.read(GuestAddress(avail.0 + 2), 2).unwrap(), [1, 0]);
        assert_eq!(q.free_descriptor_count(), 6);
        assert_eq!(q.pop_used(&mut mem).unwrap(), None);
        used_push(&mem, &q, 0, u32::from(head), 7, 1);
        assert_eq!(
            q.pop_used(&mut mem).unwrap(),
            Some(UsedElement {
                id: u32::from(head),
                len: 7
            })
        );
        assert_eq!(q.free_descriptor_count(), 8);
        assert_eq!(q.in_flight_count(), 0);
    }

    #[test]
    fn indirect_table_is_freed_on_use() {
        let mut mem = GuestMemory::new(MIN_MEMORY_SIZE).unwrap();
        let mut q = SplitQueue::new(&mut mem, 1, 4).unwrap();
        let live = mem.live_allocations();
        let head = q
            .add_indirect_chain(
                &mut mem,
                &[
                    Segment::readable(GuestAddress(0x10000), 40),
                    Segment::writable(GuestAddress(0x20000), 100),
                    Segment::writable(GuestAddress(0x30000), 100),
                ],
            )
            .unwrap();
        assert_eq!(q.free_descriptor_count(), 3);
        assert_eq!(mem.live_allocations(), live + 1);
        used_push(&mem, &q, 0, u32::from(head), 0, 1);
        q.pop_used(&mut mem).unwrap().unwrap();
        assert_eq!(mem.live_allocations(), live);
        assert_eq!(q.free_descriptor_count(), 4);
    }

    #[test]
    fn wait_used_times_out_and_detects_index_jump() {
        let mut mem = GuestMemory::new(MIN_MEMORY_SIZE).unwrap();
        let mut q = SplitQueue::new(&mut mem, 0, 4).unwrap();
        let err = q
            .wait_used(&mut mem, Duration::from_millis(20))
            .unwrap_err();
        assert!(matches!(err, QueueError::Timeout { queue: 0, .. }));
        used_push(&mem, &q, 0, 0, 0, 9);
        assert!(matches!(
            q.pop_used(&mut mem),
            Err(QueueError::UsedIndexJump { now: 9, .. })
        ));
    }

    #[test]
    fn rejects_bad_sizes_and_exhaustion() {
        let mut mem = GuestMemory::new(MIN_MEMORY_SIZE).unwrap();
        assert!(matches!(
            SplitQueue::new(&mut mem, 0, 3),
            Err(QueueError::InvalidSize(3))
        ));
        let mut q = SplitQueue::new(&mut mem, 0, 2).unwrap();
        assert!(matches!(
            q.take_descriptors(3),
            Err(QueueError::NoFreeDescriptors {
                needed: 3,
                free: 2,
                ..
            })
        ));
        assert!(q
            .write_descriptor(&mem, 2, RawDescriptor::default())
            .is_err());
    }
}
