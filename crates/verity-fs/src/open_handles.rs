// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! The open flags of every handle, as this layer passed them to the inner filesystem.
//!
//! fuse-backend-rs 0.14's `PassthroughFs::read` compares the READ request's `flags` with the
//! flags the handle was opened with and, when they differ, calls `fcntl(F_SETFL)` with the
//! guest's value. If that call fails (`EINVAL` for `O_DIRECT` on a filesystem without it,
//! `EPERM` for `O_NOATIME` on a file of another owner, ...), it returns early and drops the
//! `File` it built over the handle's descriptor with `from_raw_fd`: the descriptor is closed
//! while the handle still owns it. The handle then reads whatever file reuses that number and
//! closes it again on release. A guest triggers this with one READ.
//!
//! The READ's `flags` only mirror the guest's file status flags, which a read-only share does
//! not need to follow. This layer therefore always passes the flags the handle was opened
//! with, so the inner filesystem never calls `fcntl` on a read.

use std::collections::HashMap;
use std::io;
use std::sync::RwLock;

/// Handle → open flags.
#[derive(Debug, Default)]
pub(crate) struct OpenHandles {
    map: RwLock<HashMap<u64, u32>>,
}

impl OpenHandles {
    /// Records a handle the inner filesystem opened with `flags`.
    pub(crate) fn insert(&self, handle: u64, flags: u32) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(handle, flags);
    }

    /// Forgets a released handle.
    pub(crate) fn remove(&self, handle: u64) {
        self.map
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&handle);
    }

    /// Forgets every handle (DESTROY: the inner filesystem drops them all).
    pub(crate) fn clear(&self) {
        self.map.write().unwrap_or_else(|e| e.into_inner()).clear();
    }

    /// The flags `handle` was opened with; `EBADF` for a handle this layer never opened.
    pub(crate) fn flags(&self, handle: u64) -> io::Result<u32> {
        self.map
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&handle)
            .copied()
            .ok_or_else(|| io::Error::from_raw_os_error(libc::EBADF))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn handles_are_recorded_until_released() {
        let h = OpenHandles::default();
        assert_eq!(h.flags(3).unwrap_err().raw_os_error(), Some(libc::EBADF));
        h.insert(3, 0o4000);
        assert_eq!(h.flags(3).unwrap(), 0o4000);
        h.remove(3);
        assert!(h.flags(3).is_err());
        h.insert(4, 0);
        h.insert(5, 0);
        h.clear();
        assert!(h.flags(4).is_err() && h.flags(5).is_err());
    }
}
