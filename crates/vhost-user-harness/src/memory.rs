// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! Guest memory shared with the daemon.
//!
//! A VMM backs guest RAM with a file the vhost-user backend can map too; the
//! harness does the same with an anonymous `memfd`. The file is mapped once in
//! this process as a [`GuestMemoryMmap`] region at guest-physical address 0
//! and its descriptor is sent to the daemon with `VHOST_USER_SET_MEM_TABLE`,
//! so both sides see the same bytes. A [`RangeAllocator`] hands out ranges of
//! it for rings and buffers.

use std::ffi::CStr;
use std::fs::File;
use std::io;
use std::os::fd::{AsRawFd, FromRawFd};

use thiserror::Error;
use vhost::VhostUserMemoryRegionInfo;
use vm_memory::{
    Bytes, FileOffset, GuestAddress, GuestMemory as _, GuestMemoryMmap, GuestMemoryRegion,
};

use crate::allocator::{AllocError, RangeAllocator};

/// The first page is never allocated so that GPA 0 always means "bug".
const RESERVED_LOW_BYTES: u64 = 0x1000;

/// Smallest memory the harness accepts: rings for two 1024-entry queues plus
/// a few request buffers.
pub const MIN_MEMORY_SIZE: usize = 1 << 20;

/// Errors from [`GuestMemory`].
#[derive(Debug, Error)]
pub enum MemoryError {
    /// The requested size is below [`MIN_MEMORY_SIZE`] or not page aligned.
    #[error("invalid guest memory size {0:#x}")]
    InvalidSize(usize),
    /// `memfd_create` failed.
    #[error("cannot create memfd")]
    CreateMemfd(#[source] io::Error),
    /// Sizing the memfd failed.
    #[error("cannot size memfd to {size:#x} bytes")]
    SizeMemfd {
        /// Requested size.
        size: usize,
        /// Underlying error.
        #[source]
        source: io::Error,
    },
    /// Mapping the memfd failed.
    #[error("cannot map guest memory")]
    Map(#[source] vm_memory::mmap::FromRangesError),
    /// The mapped region has no file offset (cannot be shared).
    #[error("cannot describe guest memory region for vhost-user")]
    DescribeRegion(#[source] vhost::Error),
    /// Allocation of a guest range failed.
    #[error("cannot allocate guest memory")]
    Alloc(#[from] AllocError),
    /// A guest-physical access was out of bounds.
    #[error("guest memory access at {addr:#x} (+{len}) failed")]
    Access {
        /// Guest-physical address.
        addr: u64,
        /// Length of the access.
        len: usize,
        /// Underlying error.
        #[source]
        source: vm_memory::GuestMemoryError,
    },
}

/// Result alias for this module.
pub type Result<T> = std::result::Result<T, MemoryError>;

/// A guest memory region shared with the daemon, plus an allocator for it.
#[derive(Debug)]
pub struct GuestMemory {
    mem: GuestMemoryMmap<()>,
    allocator: RangeAllocator,
    size: usize,
}

impl GuestMemory {
    /// Creates `size` bytes of shared guest memory at guest-physical address 0.
    ///
    /// `size` must be a multiple of 4096 and at least [`MIN_MEMORY_SIZE`].
    pub fn new(size: usize) -> Result<Self> {
        if size < MIN_MEMORY_SIZE || size % 4096 != 0 {
            return Err(MemoryError::InvalidSize(size));
        }
        let file = create_memfd(c"vhost-user-harness-guest-ram")?;
        let len = u64::try_from(size).map_err(|_| MemoryError::InvalidSize(size))?;
        file.set_len(len)
            .map_err(|source| MemoryError::SizeMemfd { size, source })?;
        let mem = GuestMemoryMmap::<()>::from_ranges_with_files(&[(
            GuestAddress(0),
            size,
            Some(FileOffset::new(file, 0)),
        )])
        .map_err(MemoryError::Map)?;
        Ok(GuestMemory {
            mem,
            allocator: RangeAllocator::new(RESERVED_LOW_BYTES, len),
            size,
        })
    }

    /// Size of the guest memory in bytes.
    pub fn size(&self) -> usize {
        self.size
    }

    /// The underlying vm-memory object (for `Bytes` access).
    pub fn mmap(&self) -> &GuestMemoryMmap<()> {
        &self.mem
    }

    /// Region descriptions for `VHOST_USER_SET_MEM_TABLE`; the fds stay owned
    /// by `self` and must outlive the call.
    pub fn region_infos(&self) -> Result<Vec<VhostUserMemoryRegionInfo>> {
        self.mem
            .iter()
            .map(|r| {
                VhostUserMemoryRegionInfo::from_guest_region(r).map_err(MemoryError::DescribeRegion)
            })
            .collect()
    }

    /// Translates a guest-physical address into this process's virtual
    /// address, the form vhost-user uses for ring addresses.
    pub fn host_address(&self, gpa: GuestAddress) -> Result<u64> {
        let ptr = self
            .mem
            .get_host_address(gpa)
            .map_err(|source| MemoryError::Access {
                addr: gpa.0,
                len: 0,
                source,
            })?;
        Ok(ptr as u64)
    }

    /// Allocates `len` bytes aligned to `align`.
    pub fn alloc(&mut self, len: u64, align: u64) -> Result<GuestAddress> {
        Ok(GuestAddress(self.allocator.alloc(len, align)?))
    }

    /// Frees an allocation returned by [`GuestMemory::alloc`].
    pub fn free(&mut self, addr: GuestAddress) -> Result<()> {
        Ok(self.allocator.free(addr.0)?)
    }

    /// Number of live allocations (for leak checks in tests).
    pub fn live_allocations(&self) -> usize {
        self.allocator.live_allocations()
    }

    /// Copies `data` to guest memory at `addr`.
    pub fn write(&self, addr: GuestAddress, data: &[u8]) -> Result<()> {
        self.mem
            .write_slice(data, addr)
            .map_err(|source| MemoryError::Access {
                addr: addr.0,
                len: data.len(),
                source,
            })
    }

    /// Reads `len` bytes of guest memory at `addr`.
    pub fn read(&self, addr: GuestAddress, len: usize) -> Result<Vec<u8>> {
        let mut buf = vec![0u8; len];
        self.mem
            .read_slice(&mut buf, addr)
            .map_err(|source| MemoryError::Access {
                addr: addr.0,
                len,
                source,
            })?;
        Ok(buf)
    }

    /// Fills `len` bytes at `addr` with `byte` (used to poison reply buffers).
    pub fn fill(&self, addr: GuestAddress, len: usize, byte: u8) -> Result<()> {
        self.write(addr, &vec![byte; len])
    }

    /// Whether `[addr, addr+len)` lies inside guest memory.
    pub fn contains(&self, addr: GuestAddress, len: u64) -> bool {
        match addr.0.checked_add(len) {
            Some(end) => self.mem.iter().any(|r| {
                r.start_addr().0 <= addr.0 && end <= r.start_addr().0.saturating_add(r.len())
            }),
            None => false,
        }
    }
}

/// Creates an anonymous memory file that can be shared with another process.
// JUSTIFICATION: neither std nor the rust-vmm crates offer a safe memfd_create.
#[allow(unsafe_code)]
fn create_memfd(name: &CStr) -> Result<File> {
    // SAFETY: `name` is a valid NUL-terminated string that outlives the call;
    // memfd_create does not retain the pointer. MFD_CLOEXEC keeps the fd from
    // leaking into spawned daemons (it is passed explicitly over the socket).
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Err(MemoryError::CreateMemfd(io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just returned by memfd_create, is open, and is owned
    // by nobody else, so `File` can take ownership and close it on drop.
    let file = unsafe { File::from_raw_fd(fd) };
    debug_assert!(file.as_raw_fd() >= 0);
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_round_trip_and_allocation() {
        let mut m = GuestMemory::new(MIN_MEMORY_SIZE).unwrap();
        let a = m.alloc(100, 16).unwrap();
        assert!(a.0 >= RESERVED_LOW_BYTES);
        m.write(a, b"hello").unwrap();
        assert_eq!(m.read(a, 5).unwrap(), b"hello");
        assert!(m.contains(a, 100));
        assert!(!m.contains(GuestAddress(MIN_MEMORY_SIZE as u64), 1));
        assert!(!m.contains(GuestAddress(u64::MAX), 2));
        let infos = m.region_infos().unwrap();
        assert_eq!(infos.len(), 1);
        assert_eq!(infos[0].guest_phys_addr, 0);
        assert_eq!(infos[0].memory_size, MIN_MEMORY_SIZE as u64);
        assert!(infos[0].mmap_handle >= 0);
        assert_eq!(
            m.host_address(GuestAddress(0)).unwrap(),
            infos[0].userspace_addr
        );
        m.free(a).unwrap();
        assert_eq!(m.live_allocations(), 0);
    }

    #[test]
    fn rejects_bad_sizes() {
        assert!(matches!(
            GuestMemory::new(4096),
            Err(MemoryError::InvalidSize(4096))
        ));
        assert!(matches!(
            GuestMemory::new(MIN_MEMORY_SIZE + 1),
            Err(MemoryError::InvalidSize(_))
        ));
    }
}
