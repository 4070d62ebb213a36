// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! First-fit allocator for guest-physical address ranges.
//!
//! The harness places rings, request buffers and reply buffers in one flat
//! guest memory region; this allocator hands out non-overlapping, aligned
//! ranges of it and takes them back when a request completes. It never
//! touches memory itself, it only does address arithmetic.

use std::collections::BTreeMap;

use thiserror::Error;

/// Errors from [`RangeAllocator`].
#[derive(Debug, Error, PartialEq, Eq)]
pub enum AllocError {
    /// No free range is large enough for the request.
    #[error("out of guest memory: cannot allocate {len} bytes aligned to {align}")]
    OutOfMemory {
        /// Requested length in bytes.
        len: u64,
        /// Requested alignment in bytes.
        align: u64,
    },
    /// The alignment is zero or not a power of two.
    #[error("invalid alignment {0}")]
    InvalidAlignment(u64),
    /// A zero-length allocation was requested.
    #[error("zero-length allocation")]
    ZeroLength,
    /// `free` was called with an address that is not the start of a live allocation.
    #[error("address {0:#x} is not an allocation")]
    UnknownAllocation(u64),
}

/// First-fit allocator over `[start, end)`.
#[derive(Debug)]
pub struct RangeAllocator {
    /// Free ranges, start -> end (exclusive), never adjacent to each other.
    free: BTreeMap<u64, u64>,
    /// Live allocations, start -> end (exclusive).
    used: BTreeMap<u64, u64>,
}

impl RangeAllocator {
    /// Creates an allocator managing `[start, end)`.
    pub fn new(start: u64, end: u64) -> Self {
        let mut free = BTreeMap::new();
        if end > start {
            free.insert(start, end);
        }
        RangeAllocator {
            free,
            used: BTreeMap::new(),
        }
    }

    /// Allocates `len` bytes whose start is a multiple of `align`.
    pub fn alloc(&mut self, len: u64, align: u64) -> Result<u64, AllocError> {
        if len == 0 {
            return Err(AllocError::ZeroLength);
        }
        if align == 0 || !align.is_power_of_two() {
            return Err(AllocError::InvalidAlignment(align));
        }
        let found = self.free.iter().find_map(|(&start, &end)| {
            let aligned = start.checked_add(align - 1)? & !(align - 1);
            let alloc_end = aligned.checked_add(len)?;
            (alloc_end <= end).then_some((start, end, aligned, alloc_end))
        });
        let (start, end, aligned, alloc_end) =
            found.ok_or(AllocError::OutOfMemory { len, align })?;
        self.free.remove(&start);
        if aligned > start {
            self.free.insert(start, aligned);
        }
        if end > alloc_end {
            self.free.insert(alloc_end, end);
        }
        self.used.insert(aligned, alloc_end);
        Ok(aligned)
    }

    /// Returns the allocation starting at `addr` to the free pool.
    pub fn free(&mut self, addr: u64) -> Result<(), AllocError> {
        let end = self
            .used
            .remove(&addr)
            .ok_or(AllocError::UnknownAllocation(addr))?;
        let mut start = addr;
        let mut end = end;
        // Merge with the free range ending exactly at `start`.
        if let Some((&prev_start, &prev_end)) = self.free.range(..start).next_back() {
            if prev_end == start {
                self.free.remove(&prev_start);
                start = prev_start;
            }
        }
        // Merge with the free range starting exactly at `end`.
        if let Some(next_end) = self.free.remove(&end) {
            end = next_end;
        }
        self.free.insert(start, end);
        Ok(())
    }

    /// Number of live allocations.
    pub fn live_allocations(&self) -> usize {
        self.used.len()
    }

    /// Total number of free bytes (possibly fragmented).
    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(|(s, e)| e - s).sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alloc_respects_alignment_and_bounds() {
        let mut a = RangeAllocator::new(0x1001, 0x10000);
        let x = a.alloc(10, 0x1000).unwrap();
        assert_eq!(x, 0x2000);
        let y = a.alloc(0x100, 16).unwrap();
        assert_eq!(y % 16, 0);
        assert!(y + 0x100 <= 0x10000);
        assert!(y >= 0x1001);
        assert!(y + 0x100 <= x || y >= x + 10, "allocations overlap");
    }

    #[test]
    fn free_merges_and_everything_returns() {
        let mut a = RangeAllocator::new(0, 0x4000);
        let total = a.free_bytes();
        let p: Vec<u64> = (0..4).map(|_| a.alloc(0x1000, 0x1000).unwrap()).collect();
        assert_eq!(
            a.alloc(1, 1),
            Err(AllocError::OutOfMemory { len: 1, align: 1 })
        );
        for addr in [p[1], p[3], p[0], p[2]] {
            a.free(addr).unwrap();
        }
        assert_eq!(a.free_bytes(), total);
        assert_eq!(a.live_allocations(), 0);
        assert_eq!(a.alloc(0x4000, 1).unwrap(), 0);
    }

    #[test]
    fn rejects_bad_arguments() {
        let mut a = RangeAllocator::new(0, 0x100);
        assert_eq!(a.alloc(0, 1), Err(AllocError::ZeroLength));
        assert_eq!(a.alloc(1, 3), Err(AllocError::InvalidAlignment(3)));
        assert_eq!(a.free(0x10), Err(AllocError::UnknownAllocation(0x10)));
        assert!(a.alloc(u64::MAX, 1).is_err());
    }
}
