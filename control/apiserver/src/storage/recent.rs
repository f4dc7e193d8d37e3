//! The objects this server last wrote or read, by key, with their mod
//! revisions: the first guess of a compare-and-swap loop (Kubernetes'
//! GuaranteedUpdate starts from its watch cache the same way). A guess is
//! never an answer: the transaction's compare on the mod revision decides,
//! and a stale guess only costs the retry. Bounded by bytes, oldest first out.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use bytes::Bytes;

/// Bytes of stored JSON kept at most (about 16,000 small pods).
pub const DEFAULT_MAX_BYTES: usize = 16 << 20;

pub struct Recent {
    inner: Mutex<Inner>,
    max_bytes: usize,
}

#[derive(Default)]
struct Inner {
    map: HashMap<String, (Bytes, i64)>,
    /// Insertion order, for eviction; entries whose revision no longer
    /// matches the map's are stale and skipped.
    order: VecDeque<(String, i64)>,
    bytes: usize,
}

impl Recent {
    pub fn new(max_bytes: usize) -> Self {
        Recent {
            inner: Mutex::new(Inner::default()),
            max_bytes,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // The map is only a hint: a panic elsewhere cannot leave it wrong in
        // a way the compare-and-swap would not catch.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Remembers `value` at `revision` unless a newer one is known (writes
    /// finish out of order).
    pub fn put(&self, key: &str, value: Bytes, revision: i64) {
        if value.len() > self.max_bytes {
            return;
        }
        let mut g = self.lock();
        let inner = &mut *g;
        match inner.map.get_mut(key) {
            Some((_, r)) if *r > revision => return,
            Some(slot) => {
                inner.bytes -= slot.0.len();
                inner.bytes += value.len();
                *slot = (value, revision);
            }
            None => {
                inner.bytes += value.len();
                inner.map.insert(key.to_string(), (value, revision));
            }
        }
        inner.order.push_back((key.to_string(), revision));
        // Evict by bytes, and keep the order queue from growing without
        // bound when the same keys are rewritten over and over.
        while inner.bytes > self.max_bytes || inner.order.len() > 4 * inner.map.len() + 64 {
            let Some((k, r)) = inner.order.pop_front() else {
                break;
            };
            if inner.map.get(&k).is_some_and(|(_, cur)| *cur == r) {
                if let Some((v, _)) = inner.map.remove(&k) {
                    inner.bytes -= v.len();
                }
            }
        }
    }

    /// Forgets `key` (deleted at `revision`) unless a newer write is known.
    pub fn forget(&self, key: &str, revision: i64) {
        let mut g = self.lock();
        if g.map.get(key).is_some_and(|(_, r)| *r <= revision) {
            if let Some((v, _)) = g.map.remove(key) {
                g.bytes -= v.len();
            }
        }
    }

    pub fn get(&self, key: &str) -> Option<(Bytes, i64)> {
        self.lock().map.get(key).cloned()
    }

    #[cfg(test)]
    fn bytes(&self) -> usize {
        self.lock().bytes
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn newer_revision_wins_and_forget_respects_it() {
        let r = Recent::new(1024);
        r.put("a", Bytes::from_static(b"new"), 5);
        r.put("a", Bytes::from_static(b"old"), 4);
        assert_eq!(r.get("a"), Some((Bytes::from_static(b"new"), 5)));
        r.forget("a", 4);
        assert!(r.get("a").is_some());
        r.forget("a", 6);
        assert!(r.get("a").is_none());
        assert_eq!(r.bytes(), 0);
    }

    #[test]
    fn evicts_oldest_beyond_the_byte_bound() {
        let r = Recent::new(10);
        r.put("a", Bytes::from_static(b"aaaa"), 1);
        r.put("b", Bytes::from_static(b"bbbb"), 2);
        r.put("a", Bytes::from_static(b"aaaa"), 3);
        r.put("c", Bytes::from_static(b"cccc"), 4);
        // "b" is the oldest live entry; "a" was rewritten after it.
        assert!(r.get("b").is_none());
        assert!(r.get("a").is_some() && r.get("c").is_some());
        assert_eq!(r.bytes(), 8);
    }

    #[test]
    fn rewrites_do_not_grow_the_queue() {
        let r = Recent::new(1 << 20);
        for rev in 0..10_000 {
            r.put("a", Bytes::from_static(b"x"), rev);
        }
        assert!(r.lock().order.len() <= 4 + 64);
        assert_eq!(r.get("a").map(|(_, rev)| rev), Some(9_999));
    }
}
