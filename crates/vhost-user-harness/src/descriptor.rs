// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Split-ring descriptors and used elements (virtio 1.2 §2.7.5, §2.7.8),
//! as the driver writes and reads them.

use virtio_bindings::bindings::virtio_ring::{
    VRING_DESC_F_INDIRECT, VRING_DESC_F_NEXT, VRING_DESC_F_WRITE,
};
use vm_memory::GuestAddress;

/// Size in bytes of one split-ring descriptor.
pub const DESCRIPTOR_SIZE: u64 = 16;
/// Descriptor flag: the chain continues at `next`.
pub const DESC_F_NEXT: u16 = VRING_DESC_F_NEXT as u16;
/// Descriptor flag: the buffer is device-writable.
pub const DESC_F_WRITE: u16 = VRING_DESC_F_WRITE as u16;
/// Descriptor flag: the buffer holds an indirect descriptor table.
pub const DESC_F_INDIRECT: u16 = VRING_DESC_F_INDIRECT as u16;

/// One split-ring descriptor exactly as laid out in guest memory.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RawDescriptor {
    /// Guest-physical address of the buffer.
    pub addr: u64,
    /// Length of the buffer in bytes.
    pub len: u32,
    /// `DESC_F_*` flags.
    pub flags: u16,
    /// Index of the next descriptor when `DESC_F_NEXT` is set.
    pub next: u16,
}

impl RawDescriptor {
    /// Encodes the descriptor as its 16 little-endian bytes (virtio 1.2 §2.7.5).
    pub fn to_bytes(self) -> [u8; 16] {
        let mut b = [0u8; 16];
        b[0..8].copy_from_slice(&self.addr.to_le_bytes());
        b[8..12].copy_from_slice(&self.len.to_le_bytes());
        b[12..14].copy_from_slice(&self.flags.to_le_bytes());
        b[14..16].copy_from_slice(&self.next.to_le_bytes());
        b
    }
}

/// One buffer of a chain, in driver order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Guest-physical address (not validated: hostile tests pass bad ones).
    pub addr: GuestAddress,
    /// Length in bytes (zero is allowed, for hostile tests).
    pub len: u32,
    /// Device-writable (reply) rather than device-readable (request).
    pub writable: bool,
}

impl Segment {
    /// A device-readable segment.
    pub fn readable(addr: GuestAddress, len: u32) -> Self {
        Segment {
            addr,
            len,
            writable: false,
        }
    }

    /// A device-writable segment.
    pub fn writable(addr: GuestAddress, len: u32) -> Self {
        Segment {
            addr,
            len,
            writable: true,
        }
    }

    /// The direction flag of this segment (`DESC_F_WRITE` or 0).
    pub fn flags(&self) -> u16 {
        if self.writable {
            DESC_F_WRITE
        } else {
            0
        }
    }
}

/// An element the daemon put in the used ring.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UsedElement {
    /// Head descriptor index of the completed chain.
    pub id: u32,
    /// Number of bytes the daemon wrote into the writable buffers.
    pub len: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descriptor_encoding_matches_spec_layout() {
        let d = RawDescriptor {
            addr: 0x1122_3344_5566_7788,
            len: 0x99aa_bbcc,
            flags: DESC_F_NEXT | DESC_F_WRITE,
            next: 0x0102,
        };
        assert_eq!(
            d.to_bytes(),
            [0x88, 0x77, 0x66, 0x55, 0x44, 0x33, 0x22, 0x11, 0xcc, 0xbb, 0xaa, 0x99, 3, 0, 2, 1]
        );
    }
}
