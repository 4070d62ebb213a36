// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The `VhostUserBackend` of the virtio-fs device: features, queues, events, config space.
//!
//! Queue layout: queue 0 is the high-priority queue (FORGET, INTERRUPT), queues 1.. are
//! request queues. [`REQUEST_QUEUES`] request queues are always offered, so a frontend
//! configured with fewer works unchanged. A frontend configured with more is not supported:
//! QEMU does not compare the counts and the guest hangs (Cloud Hypervisor refuses to start),
//! which is why the maximum is offered instead of a configurable count.

use std::io;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

use fuse_backend_rs::api::filesystem::FileSystem;
use vhost::vhost_user::message::{VhostUserProtocolFeatures, VhostUserVirtioFeatures};
use vhost::vhost_user::Backend;
use vhost_user_backend::{VhostUserBackend, VringT};
use virtio_bindings::bindings::virtio_config::{VIRTIO_F_ACCESS_PLATFORM, VIRTIO_F_VERSION_1};
use virtio_bindings::bindings::virtio_ring::{
    VIRTIO_RING_F_EVENT_IDX, VIRTIO_RING_F_INDIRECT_DESC,
};
use vm_memory::{
    GuestAddressSpace, GuestMemory, GuestMemoryAtomic, GuestMemoryMmap, GuestMemoryRegion,
};
use vmm_sys_util::epoll::EventSet;
use vmm_sys_util::event::{
    new_event_consumer_and_notifier, EventConsumer, EventFlag, EventNotifier,
};

use crate::queue_worker::{GuestMem, QueueWorker, Vring};
use crate::warn_ratelimited;

/// Index of the high-priority queue.
pub const HIPRIO_QUEUE_INDEX: usize = 0;
/// Number of request queues offered. Linux maps request queues to CPUs; QEMU's
/// `num-request-queues` and Cloud Hypervisor's `num_queues` default to 1.
pub const REQUEST_QUEUES: usize = 8;
/// Total queues: hiprio + request queues.
pub const NUM_QUEUES: usize = 1 + REQUEST_QUEUES;
/// Largest queue the device accepts (virtiofsd's value; QEMU allows up to 1024, and 1 MiB
/// requests need `queue-size=1024`).
pub const MAX_QUEUE_SIZE: usize = 32_768;
/// Size of `struct virtio_fs_config`: `tag[36]` + `le32 num_request_queues`.
const CONFIG_SPACE_LEN: usize = 40;

/// The virtio-fs vhost-user backend.
pub struct FsBackend<F: FileSystem + Send + Sync + 'static> {
    worker: QueueWorker<F>,
    mem: GuestMem,
    event_idx: AtomicBool,
    tag: Option<String>,
    /// Kept alive: dropping it closes the backend request channel, which QEMU treats as an
    /// error (it demands the channel whenever ACCESS_PLATFORM is offered).
    backend_req: Mutex<Option<Backend>>,
}

impl<F: FileSystem + Send + Sync + 'static> std::fmt::Debug for FsBackend<F> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsBackend")
            .field("worker", &self.worker)
            .field("tag", &self.tag)
            .finish_non_exhaustive()
    }
}

impl<F: FileSystem + Send + Sync + 'static> FsBackend<F> {
    /// A backend serving `worker`'s filesystem from guest memory `mem` (share the same
    /// `GuestMemoryAtomic` with the `VhostUserDaemon`).
    pub fn new(worker: QueueWorker<F>, mem: GuestMem, tag: Option<String>) -> Self {
        FsBackend {
            worker,
            mem,
            event_idx: AtomicBool::new(false),
            tag,
            backend_req: Mutex::new(None),
        }
    }

    fn config_space(&self) -> [u8; CONFIG_SPACE_LEN] {
        let mut cfg = [0u8; CONFIG_SPACE_LEN];
        if let Some(tag) = &self.tag {
            let bytes = tag.as_bytes();
            let n = bytes.len().min(36);
            cfg[..n].copy_from_slice(&bytes[..n]);
        }
        let queues = u32::try_from(REQUEST_QUEUES).unwrap_or(1);
        cfg[36..].copy_from_slice(&queues.to_le_bytes());
        cfg
    }
}

/// Which queues each vring thread serves: thread 0 the hiprio queue and the first request
/// queue, then one thread per further request queue, so requests on different queues run in
/// parallel even with `--thread-pool-size=0`.
pub fn queue_thread_masks() -> Vec<u64> {
    let mut masks = vec![(1u64 << HIPRIO_QUEUE_INDEX) | (1u64 << 1)];
    masks.extend((2..NUM_QUEUES).map(|q| 1u64 << q));
    masks
}

/// The global queue index of `device_event` on vring thread `thread_id`.
fn global_queue_index(thread_id: usize, device_event: u16) -> usize {
    if thread_id == 0 {
        usize::from(device_event)
    } else {
        thread_id + 1
    }
}

impl<F: FileSystem + Send + Sync + 'static> VhostUserBackend for FsBackend<F> {
    type Bitmap = ();
    type Vring = Vring;

    fn num_queues(&self) -> usize {
        NUM_QUEUES
    }

    fn max_queue_size(&self) -> usize {
        MAX_QUEUE_SIZE
    }

    fn features(&self) -> u64 {
        (1 << VIRTIO_F_VERSION_1)
            | (1 << VIRTIO_RING_F_INDIRECT_DESC)
            | (1 << VIRTIO_RING_F_EVENT_IDX)
            | (1 << VIRTIO_F_ACCESS_PLATFORM)
            | VhostUserVirtioFeatures::PROTOCOL_FEATURES.bits()
    }

    fn protocol_features(&self) -> VhostUserProtocolFeatures {
        // BACKEND_REQ and REPLY_ACK: QEMU requires both once ACCESS_PLATFORM is offered.
        let mut features = VhostUserProtocolFeatures::MQ
            | VhostUserProtocolFeatures::BACKEND_REQ
            | VhostUserProtocolFeatures::REPLY_ACK
            | VhostUserProtocolFeatures::CONFIGURE_MEM_SLOTS;
        if self.tag.is_some() {
            features |= VhostUserProtocolFeatures::CONFIG;
        }
        features
    }

    fn acked_features(&self, features: u64) {
        let has = |bit: u32| {
            if features & (1 << bit) != 0 {
                "on"
            } else {
                "off"
            }
        };
        // Once per driver initialisation; QEMU clears ACCESS_PLATFORM when the machine has no
        // vIOMMU, even with iommu_platform=on.
        log::info!(
            "virtio features acked: {features:#x} (ACCESS_PLATFORM {}, EVENT_IDX {}, INDIRECT_DESC {})",
            has(VIRTIO_F_ACCESS_PLATFORM),
            has(VIRTIO_RING_F_EVENT_IDX),
            has(VIRTIO_RING_F_INDIRECT_DESC)
        );
    }

    fn set_event_idx(&self, enabled: bool) {
        self.event_idx.store(enabled, Ordering::Relaxed);
    }

    fn get_config(&self, offset: u32, size: u32) -> Vec<u8> {
        let cfg = self.config_space();
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        let len = usize::try_from(size).unwrap_or(0);
        match start.checked_add(len) {
            Some(end) if end <= cfg.len() => cfg[start..end].to_vec(),
            _ => Vec::new(),
        }
    }

    fn update_memory(&self, mem: GuestMemoryAtomic<GuestMemoryMmap<()>>) -> io::Result<()> {
        // The handler has already swapped the mapping inside the GuestMemoryAtomic shared with
        // `self.mem` (SET_MEM_TABLE, ADD_MEM_REG, REM_MEM_REG); all that is left is to vet it.
        let Err(e) = check_backing_files(&mem.memory()) else {
            return Ok(());
        };
        log::error!("refusing the frontend's memory table: {e}");
        // Unpublish it before anything reads it: a region past the end of its file faults
        // (SIGBUS) on first access. The error ends the connection, so no table is needed
        // afterwards; chains already in flight keep the snapshot they were started with.
        match mem.lock() {
            Ok(guard) => guard.replace(GuestMemoryMmap::new()),
            Err(poisoned) => poisoned.into_inner().replace(GuestMemoryMmap::new()),
        }
        Err(e)
    }

    fn set_backend_req_fd(&self, backend: Backend) {
        if let Ok(mut slot) = self.backend_req.lock() {
            *slot = Some(backend);
        }
    }

    fn queues_per_thread(&self) -> Vec<u64> {
        queue_thread_masks()
    }

    fn exit_event(&self, _thread_index: usize) -> Option<(EventConsumer, EventNotifier)> {
        // Without an exit event the vring threads never stop and the daemon cannot be
        // dropped after the frontend disconnects.
        match new_event_consumer_and_notifier(EventFlag::NONBLOCK | EventFlag::CLOEXEC) {
            Ok(pair) => Some(pair),
            Err(e) => {
                log::error!("cannot create a vring thread exit event: {e}");
                None
            }
        }
    }

    fn handle_event(
        &self,
        device_event: u16,
        evset: EventSet,
        vrings: &[Self::Vring],
        thread_id: usize,
    ) -> io::Result<()> {
        let queue_index = global_queue_index(thread_id, device_event);
        if evset != EventSet::IN {
            warn_ratelimited!("queue {queue_index}: unexpected event set {evset:?}");
            return Ok(());
        }
        let Some(vring) = vrings.get(usize::from(device_event)) else {
            warn_ratelimited!("event {device_event} on thread {thread_id} is not a queue");
            return Ok(());
        };
        if self.event_idx.load(Ordering::Relaxed) {
            // Keep notifications off while draining; re-enable and re-check so a request
            // that arrives in between is not missed.
            loop {
                if let Err(e) = vring.disable_notification() {
                    warn_ratelimited!("queue {queue_index}: cannot disable notifications: {e}");
                }
                self.worker.process_queue(vring, &self.mem, queue_index);
                match vring.enable_notification() {
                    Ok(true) => continue,
                    Ok(false) => break,
                    Err(e) => {
                        warn_ratelimited!("queue {queue_index}: cannot enable notifications: {e}");
                        break;
                    }
                }
            }
        } else {
            self.worker.process_queue(vring, &self.mem, queue_index);
        }
        // Errors from here would stop the vring thread for good, so none are returned.
        Ok(())
    }
}

/// Checks that every file-backed region of `mem` lies within its file.
///
/// vm-memory maps `size` bytes of the frontend's file without comparing with the file's
/// length, and a frontend may send a memfd shorter than the region it describes (security.md
/// case 54). Touching such a region past the end of the file raises SIGBUS, so the table is
/// refused instead. Only regular files (memfd, tmpfs, hugetlbfs) have a length to compare.
/// A frontend that shrinks the file after the table was accepted is not caught here.
fn check_backing_files(mem: &GuestMemoryMmap<()>) -> io::Result<()> {
    for region in mem.iter() {
        let Some(file_offset) = region.file_offset() else {
            continue;
        };
        let meta = file_offset.file().metadata()?;
        if !meta.is_file() {
            continue;
        }
        let start = file_offset.start();
        if start
            .checked_add(region.len())
            .is_none_or(|end| end > meta.len())
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!(
                    "the region at guest address {:#x} maps {:#x} bytes from offset {start:#x} \
                     of a {:#x}-byte file",
                    region.start_addr().0,
                    region.len(),
                    meta.len()
                ),
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use vm_memory::{FileOffset, GuestAddress};

    fn file_backed(file_len: u64, region_len: usize, offset: u64) -> GuestMemoryMmap<()> {
        let file = tempfile::tempfile().unwrap();
        file.set_len(file_len).unwrap();
        GuestMemoryMmap::from_ranges_with_files(&[(
            GuestAddress(0x10_0000),
            region_len,
            Some(FileOffset::new(file, offset)),
        )])
        .unwrap()
    }

    #[test]
    fn regions_past_the_end_of_their_file_are_refused() {
        assert!(check_backing_files(&file_backed(0x4000, 0x4000, 0)).is_ok());
        assert!(check_backing_files(&file_backed(0x5000, 0x4000, 0x1000)).is_ok());
        let err = check_backing_files(&file_backed(0x1000, 0x4000, 0)).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput);
        assert!(err.to_string().contains("0x1000-byte file"), "{err}");
        assert!(check_backing_files(&file_backed(0x4000, 0x4000, 0x1000)).is_err());
        // Anonymous memory has no file to compare with.
        let anon = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), 0x1000)]).unwrap();
        assert!(check_backing_files(&anon).is_ok());
    }

    #[test]
    fn every_queue_has_exactly_one_thread() {
        let masks = queue_thread_masks();
        let mut seen = 0u64;
        for m in &masks {
            assert_eq!(seen & m, 0, "queue served twice");
            seen |= m;
        }
        assert_eq!(seen, (1u64 << NUM_QUEUES) - 1);
        assert_eq!(global_queue_index(0, 0), HIPRIO_QUEUE_INDEX);
        assert_eq!(global_queue_index(0, 1), 1);
        assert_eq!(global_queue_index(3, 0), 4);
    }
}
