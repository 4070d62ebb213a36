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
use vm_memory::{GuestMemoryAtomic, GuestMemoryMmap};
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

    fn update_memory(&self, _mem: GuestMemoryAtomic<GuestMemoryMmap<()>>) -> io::Result<()> {
        // The handler swaps the mapping inside the GuestMemoryAtomic shared with `self.mem`.
        Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

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
