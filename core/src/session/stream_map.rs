//! A map from message stream ids to per-stream state, for the handful of
//! streams one connection holds.
//!
//! Fan-out looks a player's stream up once per frame, in its session and
//! again in its backlog. A `BTreeMap` keeps keys and values in separate
//! arrays of a node, so each lookup of a cold player read two cache lines
//! besides the map's root; here an entry's id and state sit side by side in
//! one sorted vector. A connection holds at most
//! [`MAX_STREAMS`](super::MAX_STREAMS) streams, so the vector stays short
//! and a binary search over it is cheaper than any tree.

/// See the module docs. Iterates in id order, as the `BTreeMap` it
/// replaces did.
#[derive(Debug)]
pub(crate) struct StreamMap<V> {
    entries: Vec<(u32, V)>,
}

impl<V> Default for StreamMap<V> {
    fn default() -> Self {
        StreamMap {
            entries: Vec::new(),
        }
    }
}

impl<V> StreamMap<V> {
    fn find(&self, id: u32) -> Result<usize, usize> {
        self.entries.binary_search_by_key(&id, |(k, _)| *k)
    }

    pub(crate) fn get(&self, id: &u32) -> Option<&V> {
        let i = self.find(*id).ok()?;
        Some(&self.entries[i].1)
    }

    pub(crate) fn get_mut(&mut self, id: &u32) -> Option<&mut V> {
        let i = self.find(*id).ok()?;
        Some(&mut self.entries[i].1)
    }

    pub(crate) fn contains_key(&self, id: &u32) -> bool {
        self.find(*id).is_ok()
    }

    /// Sets `id`'s state, returning the one it replaced.
    pub(crate) fn insert(&mut self, id: u32, value: V) -> Option<V> {
        match self.find(id) {
            Ok(i) => Some(std::mem::replace(&mut self.entries[i].1, value)),
            Err(i) => {
                self.entries.insert(i, (id, value));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &u32) -> Option<V> {
        let i = self.find(*id).ok()?;
        let (_, value) = self.entries.remove(i);
        if self.entries.is_empty() {
            // A connection that stopped playing holds no room for streams.
            self.entries = Vec::new();
        }
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    pub(crate) fn clear(&mut self) {
        self.entries = Vec::new();
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u32, &V)> {
        self.entries.iter().map(|(k, v)| (k, v))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &u32> {
        self.entries.iter().map(|(k, _)| k)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.entries.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::StreamMap;

    #[test]
    fn entries_stay_in_id_order_whatever_the_insertion_order() {
        let mut m = StreamMap::default();
        for id in [5, 1, 9, 3] {
            assert_eq!(m.insert(id, id * 10), None);
        }
        let ids: Vec<u32> = m.iter().map(|(k, _)| *k).collect();
        assert_eq!(ids, [1, 3, 5, 9]);
        assert_eq!(m.get(&9), Some(&90));
        assert_eq!(m.get(&4), None);
    }

    #[test]
    fn insert_replaces_and_remove_forgets() {
        let mut m = StreamMap::default();
        m.insert(2, "a");
        assert_eq!(m.insert(2, "b"), Some("a"));
        assert_eq!(m.len(), 1);
        assert_eq!(m.remove(&2), Some("b"));
        assert_eq!(m.remove(&2), None);
        assert!(!m.contains_key(&2));
        assert_eq!(m.len(), 0);
    }

    #[test]
    fn get_mut_changes_only_its_entry() {
        let mut m = StreamMap::default();
        m.insert(1, 0);
        m.insert(2, 0);
        *m.get_mut(&2).unwrap() += 7;
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [0, 7]);
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [1, 2]);
        m.clear();
        assert_eq!(m.len(), 0);
    }
}
