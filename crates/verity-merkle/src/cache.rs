// SPDX-License-Identifier: Apache-2.0 OR BSD-3-Clause
//! A bounded cache of verified tree blocks, shareable between files.
//!
//! An entry exists only for a block whose bytes were verified against their
//! parent; the verified state belongs to this in-memory copy, so an evicted
//! block is read and verified again next time (spec §5.3). Eviction uses the
//! CLOCK (second chance) approximation of LRU.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

/// Default capacity: 4096 blocks (16 MiB of 4 KiB tree blocks).
pub const DEFAULT_CACHE_BLOCKS: usize = 4096;

type Key = (u64, u64);

#[derive(Debug)]
struct Slot {
    key: Key,
    data: Arc<[u8]>,
    referenced: bool,
}

#[derive(Debug, Default)]
struct Inner {
    index: HashMap<Key, usize>,
    slots: Vec<Slot>,
    hand: usize,
}

/// Verified tree blocks keyed by (tree id, block index).
#[derive(Debug)]
pub struct TreeCache {
    capacity: usize,
    next_id: AtomicU64,
    inner: Mutex<Inner>,
}

impl TreeCache {
    /// A cache holding at most `capacity` blocks (at least 1).
    pub fn new(capacity: usize) -> Self {
        TreeCache {
            capacity: capacity.max(1),
            next_id: AtomicU64::new(0),
            inner: Mutex::new(Inner::default()),
        }
    }

    /// A fresh id for one tree's blocks; ids are never reused.
    pub fn new_tree_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Number of blocks held.
    pub fn len(&self) -> usize {
        self.lock().slots.len()
    }

    /// True when no block is held.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Most blocks held at once.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        // The data is a cache: a panic elsewhere cannot leave it inconsistent
        // in a way that matters (entries are only ever verified blocks).
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The verified block, if cached.
    pub fn get(&self, tree: u64, block: u64) -> Option<Arc<[u8]>> {
        let mut inner = self.lock();
        let slot = *inner.index.get(&(tree, block))?;
        let s = &mut inner.slots[slot];
        s.referenced = true;
        Some(s.data.clone())
    }

    /// Stores a block that was just verified and returns the cached copy.
    pub fn insert(&self, tree: u64, block: u64, data: Arc<[u8]>) -> Arc<[u8]> {
        let key = (tree, block);
        let mut inner = self.lock();
        if let Some(&slot) = inner.index.get(&key) {
            return inner.slots[slot].data.clone();
        }
        let slot = Slot {
            key,
            data: data.clone(),
            referenced: false,
        };
        if inner.slots.len() < self.capacity {
            let at = inner.slots.len();
            inner.slots.push(slot);
            inner.index.insert(key, at);
            return data;
        }
        loop {
            let hand = inner.hand;
            inner.hand = (hand + 1) % inner.slots.len();
            if inner.slots[hand].referenced {
                inner.slots[hand].referenced = false;
                continue;
            }
            let old = std::mem::replace(&mut inner.slots[hand], slot);
            inner.index.remove(&old.key);
            inner.index.insert(key, hand);
            return data;
        }
    }
}

impl Default for TreeCache {
    fn default() -> Self {
        TreeCache::new(DEFAULT_CACHE_BLOCKS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(b: u8) -> Arc<[u8]> {
        Arc::from(vec![b; 4])
    }

    #[test]
    fn stays_within_capacity_and_keeps_hot_blocks() {
        let c = TreeCache::new(3);
        let t = c.new_tree_id();
        for i in 0..3 {
            c.insert(t, i, block(i as u8));
        }
        // Touch block 0 so the clock gives it a second chance.
        assert!(c.get(t, 0).is_some());
        c.insert(t, 10, block(10));
        assert_eq!(c.len(), 3);
        assert!(c.get(t, 0).is_some());
        assert!(c.get(t, 1).is_none());
        assert_eq!(&*c.get(t, 10).unwrap(), &[10; 4]);
    }

    #[test]
    fn ids_separate_trees() {
        let c = TreeCache::default();
        let (a, b) = (c.new_tree_id(), c.new_tree_id());
        c.insert(a, 0, block(1));
        assert!(c.get(b, 0).is_none());
        // A second insert of the same key keeps the first copy.
        assert_eq!(&*c.insert(a, 0, block(2)), &[1; 4]);
    }
}
