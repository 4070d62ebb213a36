// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! File-descriptor budgets: how many inodes and open handles a guest may hold.
//!
//! The inner passthrough filesystem keeps one `O_PATH` descriptor per inode the guest has
//! looked up and one descriptor per open file or directory, so a guest that looks up or opens
//! without end would exhaust the daemon's descriptor table (CVE-2020-10717). [`VerityFs`]
//! counts both and refuses what goes over the budget: a new inode with `ENFILE`, a new handle
//! with `EMFILE`. Inodes the guest already holds, and everything that needs no new descriptor
//! (GETATTR, READ on an open handle, FORGET, RELEASE), keep working. The budgets are derived
//! from the open-file limit with a reserve kept for the daemon itself
//! ([`FsLimits::from_nofile`]).
//!
//! [`VerityFs`]: crate::VerityFs

use std::collections::HashMap;
use std::io;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, MutexGuard};

use crate::warn_ratelimited;

/// Descriptors always kept for the daemon: standard streams, the vhost-user socket and its
/// listener, epoll and event fds of every queue, `/proc/self/fd`, the tree store, logging.
pub const FD_RESERVE_BASE: u64 = 64;
/// Descriptors kept per thread that serves requests: a request may hold a few transient ones
/// (the lookup of a name opens it before the inode table says whether it is known; an open
/// of a verified file reads its tree from the store).
pub const FD_RESERVE_PER_THREAD: u64 = 4;
/// Descriptors of the guest's budget that neither inodes nor open handles may take alone: a
/// lookup flood leaves this many for OPEN and OPENDIR, an open flood this many for LOOKUP (a
/// quarter of the budget when it is small).
pub const HANDLE_FLOOR: u64 = 256;
/// Threads that serve requests besides the worker pool (one per request queue; the daemon
/// has two queues).
const QUEUE_THREADS: u64 = 2;

/// The guest's budgets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsLimits {
    /// Inodes the guest may hold at once (the share root is not counted).
    pub max_inodes: usize,
    /// Files and directories the guest may hold open at once.
    pub max_handles: usize,
    /// Inodes and open handles together (each needs one descriptor).
    pub max_total: usize,
}

impl Default for FsLimits {
    fn default() -> Self {
        FsLimits::UNLIMITED
    }
}

impl FsLimits {
    /// No budget (the host's own limits apply).
    pub const UNLIMITED: FsLimits = FsLimits {
        max_inodes: usize::MAX,
        max_handles: usize::MAX,
        max_total: usize::MAX,
    };

    /// The descriptors kept for the daemon with `workers` pool threads.
    pub fn reserve(workers: usize) -> u64 {
        let threads = u64::try_from(workers)
            .unwrap_or(u64::MAX)
            .saturating_add(QUEUE_THREADS);
        FD_RESERVE_BASE.saturating_add(threads.saturating_mul(FD_RESERVE_PER_THREAD))
    }

    /// Budgets for an open-file limit of `nofile` with `workers` pool threads: the reserve is
    /// kept back, and inodes and open handles share the rest (like the descriptors of
    /// virtiofsd), except that neither may take the last [`HANDLE_FLOOR`] (at most a quarter of
    /// the budget), so that a lookup flood still leaves room to open files and an open flood
    /// room to look names up. Each budget is at least 1.
    pub fn from_nofile(nofile: u64, workers: usize) -> FsLimits {
        let budget = nofile.saturating_sub(FsLimits::reserve(workers));
        let floor = HANDLE_FLOOR.min(budget / 4);
        let to_usize = |n: u64| usize::try_from(n).unwrap_or(usize::MAX).max(1);
        FsLimits {
            max_inodes: to_usize(budget - floor),
            max_handles: to_usize(budget - floor),
            max_total: to_usize(budget),
        }
    }
}

/// The live counts against [`FsLimits`].
#[derive(Debug, Default)]
pub(crate) struct Budget {
    limits: FsLimits,
    /// Lookup references per counted inode.
    inodes: Mutex<HashMap<u64, u64>>,
    /// The number of entries of `inodes`, readable without the lock.
    inode_count: AtomicUsize,
    handles: AtomicUsize,
}

fn enfile() -> io::Error {
    io::Error::from_raw_os_error(libc::ENFILE)
}

fn emfile() -> io::Error {
    io::Error::from_raw_os_error(libc::EMFILE)
}

impl Budget {
    pub(crate) fn new(limits: FsLimits) -> Self {
        Budget {
            limits,
            inodes: Mutex::new(HashMap::new()),
            inode_count: AtomicUsize::new(0),
            handles: AtomicUsize::new(0),
        }
    }

    pub(crate) fn limits(&self) -> FsLimits {
        self.limits
    }

    fn counts_inodes(&self) -> bool {
        self.limits.max_inodes != usize::MAX
    }

    fn inodes(&self) -> MutexGuard<'_, HashMap<u64, u64>> {
        self.inodes.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one lookup reference to `inode`; `ENFILE` if it is a new inode and the table is
    /// full (the caller then drops the reference the inner filesystem took).
    pub(crate) fn admit_inode(&self, inode: u64) -> io::Result<()> {
        if !self.counts_inodes() {
            return Ok(());
        }
        let mut map = self.inodes();
        if let Some(refs) = map.get_mut(&inode) {
            *refs = refs.saturating_add(1);
            return Ok(());
        }
        let shared_full = map.len().saturating_add(self.open_handles()) >= self.limits.max_total;
        if map.len() >= self.limits.max_inodes || shared_full {
            let held = map.len();
            drop(map);
            warn_ratelimited!(
                "guest holds {held} inodes and {} open files, the limit (raise \
                 --rlimit-nofile); lookup refused with ENFILE",
                self.open_handles()
            );
            return Err(enfile());
        }
        map.insert(inode, 1);
        self.inode_count.store(map.len(), Ordering::Release);
        Ok(())
    }

    /// Drops `count` lookup references to `inode` (FORGET); the inode's slot is freed with
    /// the last one. Unknown inodes and excess counts are ignored.
    pub(crate) fn forget_inode(&self, inode: u64, count: u64) {
        if !self.counts_inodes() {
            return;
        }
        let mut map = self.inodes();
        if let Some(refs) = map.get_mut(&inode) {
            *refs = refs.saturating_sub(count);
            if *refs == 0 {
                map.remove(&inode);
                self.inode_count.store(map.len(), Ordering::Release);
            }
        }
    }

    /// Inodes counted now.
    pub(crate) fn live_inodes(&self) -> usize {
        self.inodes().len()
    }

    /// Takes one handle slot; `EMFILE` when all are in use.
    pub(crate) fn take_handle(&self) -> io::Result<()> {
        let max = self.limits.max_handles;
        let inodes = self.inode_count.load(Ordering::Acquire);
        let max_total = self.limits.max_total;
        let taken = self
            .handles
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max && n.saturating_add(inodes) < max_total).then(|| n + 1)
            });
        if let Err(held) = taken {
            warn_ratelimited!(
                "guest holds {held} open files and {inodes} inodes, the limit (raise \
                 --rlimit-nofile); open refused with EMFILE"
            );
            return Err(emfile());
        }
        Ok(())
    }

    /// Gives back a slot taken by [`Budget::take_handle`].
    pub(crate) fn release_handle(&self) {
        // Never below zero, whatever the order of events.
        let _ = self
            .handles
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| n.checked_sub(1));
    }

    /// Handles counted now.
    pub(crate) fn open_handles(&self) -> usize {
        self.handles.load(Ordering::Acquire)
    }

    /// Forgets everything (DESTROY: the inner filesystem drops all inodes and handles).
    pub(crate) fn clear(&self) {
        self.inodes().clear();
        self.inode_count.store(0, Ordering::Release);
        self.handles.store(0, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn budgets_from_the_open_file_limit() {
        assert_eq!(FsLimits::reserve(0), 64 + 2 * 4);
        assert_eq!(FsLimits::reserve(4), 64 + 6 * 4);
        // Inodes and handles share what the reserve leaves; neither takes the last 256.
        let l = FsLimits::from_nofile(1_000_000, 0);
        assert_eq!(l.max_total, 1_000_000 - 72);
        assert_eq!(l.max_handles, 1_000_000 - 72 - 256);
        assert_eq!(l.max_inodes, 1_000_000 - 72 - 256);
        // A 20,000 limit (common in containers) still lets the guest hold over 19,000 inodes.
        assert_eq!(
            FsLimits::from_nofile(20_000, 0).max_inodes,
            20_000 - 72 - 256
        );
        // A small budget keeps a quarter for handles.
        let l = FsLimits::from_nofile(72 + 400, 0);
        assert_eq!((l.max_inodes, l.max_handles, l.max_total), (300, 300, 400));
        // A limit at or below the reserve still leaves one of each.
        assert_eq!(
            FsLimits::from_nofile(10, 0),
            FsLimits {
                max_inodes: 1,
                max_handles: 1,
                max_total: 1,
            }
        );
        assert!(FsLimits::from_nofile(u64::MAX, usize::MAX).max_inodes > 0);
        assert_eq!(FsLimits::default(), FsLimits::UNLIMITED);
    }

    #[test]
    fn inodes_and_handles_share_the_total() {
        let b = Budget::new(FsLimits {
            max_inodes: 3,
            max_handles: 4,
            max_total: 4,
        });
        b.take_handle().unwrap();
        b.take_handle().unwrap();
        b.admit_inode(1).unwrap();
        b.admit_inode(1).unwrap();
        b.admit_inode(2).unwrap();
        // 2 handles + 2 inodes: the shared total is used up both ways.
        assert_eq!(
            b.admit_inode(3).unwrap_err().raw_os_error(),
            Some(libc::ENFILE)
        );
        assert_eq!(
            b.take_handle().unwrap_err().raw_os_error(),
            Some(libc::EMFILE)
        );
        b.release_handle();
        b.admit_inode(3).unwrap();
        // max_inodes still applies on its own once handles are closed.
        b.release_handle();
        assert!(b.admit_inode(4).is_err());
        b.take_handle().unwrap();
        b.forget_inode(3, 1);
        b.take_handle().unwrap();
        assert_eq!(b.open_handles(), 2);
    }

    #[test]
    fn inode_slots_are_freed_by_the_last_forget() {
        let b = Budget::new(FsLimits {
            max_inodes: 2,
            max_handles: 1,
            max_total: usize::MAX,
        });
        b.admit_inode(10).unwrap();
        b.admit_inode(11).unwrap();
        // Known inodes take no new slot, new ones are refused.
        b.admit_inode(10).unwrap();
        assert_eq!(
            b.admit_inode(12).unwrap_err().raw_os_error(),
            Some(libc::ENFILE)
        );
        b.forget_inode(10, 1);
        assert!(b.admit_inode(12).is_err(), "10 still has a reference");
        b.forget_inode(10, 1);
        b.admit_inode(12).unwrap();
        // Huge and unknown counts do not underflow or free other slots.
        b.forget_inode(11, u64::MAX);
        b.forget_inode(99, 5);
        assert_eq!(b.live_inodes(), 1);
        b.clear();
        assert_eq!(b.live_inodes(), 0);
    }

    #[test]
    fn handle_slots() {
        let b = Budget::new(FsLimits {
            max_inodes: usize::MAX,
            max_handles: 2,
            max_total: usize::MAX,
        });
        b.take_handle().unwrap();
        b.take_handle().unwrap();
        assert_eq!(
            b.take_handle().unwrap_err().raw_os_error(),
            Some(libc::EMFILE)
        );
        b.release_handle();
        b.take_handle().unwrap();
        assert_eq!(b.open_handles(), 2);
        b.clear();
        b.release_handle();
        assert_eq!(b.open_handles(), 0);
        // Unlimited inodes are not tracked at all.
        b.admit_inode(1).unwrap();
        assert_eq!(b.live_inodes(), 0);
    }
}
