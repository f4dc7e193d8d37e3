//! A bounded least-recently-used map, as groupcache's `lru.Cache` that
//! client-go's event correlator keys its records in: `get` and `put` make an
//! entry the newest, and a put over capacity drops the oldest. Bounded so a
//! node that reports about many short-lived pods keeps constant memory.

use std::collections::{BTreeMap, HashMap};

pub struct Lru<V> {
    cap: usize,
    tick: u64,
    map: HashMap<String, (u64, V)>,
    order: BTreeMap<u64, String>,
}

impl<V> Lru<V> {
    pub fn new(cap: usize) -> Self {
        Lru {
            cap: cap.max(1),
            tick: 0,
            map: HashMap::new(),
            order: BTreeMap::new(),
        }
    }

    fn touch(&mut self, key: &str) {
        self.tick += 1;
        if let Some((t, _)) = self.map.get_mut(key) {
            self.order.remove(t);
            *t = self.tick;
            self.order.insert(self.tick, key.to_string());
        }
    }

    pub fn get_mut(&mut self, key: &str) -> Option<&mut V> {
        self.touch(key);
        self.map.get_mut(key).map(|(_, v)| v)
    }

    pub fn put(&mut self, key: String, value: V) {
        if let Some((t, _)) = self.map.remove(&key) {
            self.order.remove(&t);
        }
        self.tick += 1;
        self.order.insert(self.tick, key.clone());
        self.map.insert(key, (self.tick, value));
        while self.map.len() > self.cap {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.map.remove(&oldest);
        }
    }

    #[cfg(test)]
    pub fn len(&self) -> usize {
        self.map.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_the_least_recently_used() {
        let mut l = Lru::new(2);
        l.put("a".into(), 1);
        l.put("b".into(), 2);
        assert_eq!(l.get_mut("a").copied(), Some(1));
        l.put("c".into(), 3);
        assert_eq!(l.len(), 2);
        assert!(l.get_mut("b").is_none());
        assert_eq!(l.get_mut("a").copied(), Some(1));
        assert_eq!(l.get_mut("c").copied(), Some(3));
        l.put("a".into(), 4);
        assert_eq!((l.len(), l.get_mut("a").copied()), (2, Some(4)));
    }
}
