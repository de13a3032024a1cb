//! A map from message stream ids to per-stream state, for the handful of
//! streams one connection holds.
//!
//! Fan-out looks a player's stream up once per frame, in its session and
//! again in its backlog. A `BTreeMap` keeps keys and values in separate
//! arrays of a node, so each lookup of a cold player read two cache lines
//! besides the map's root. Here the lowest id's entry is kept inline, in
//! the lines of the session the frame touches anyway: a player plays on one
//! stream, so its lookups leave the session's struct not at all. Further
//! streams sit side by side in one sorted vector. A connection holds at
//! most [`MAX_STREAMS`](super::MAX_STREAMS) streams, so the vector stays
//! short and a binary search over it is cheaper than any tree.

/// See the module docs. Iterates in id order, as the `BTreeMap` it
/// replaces did.
#[derive(Debug)]
pub(crate) struct StreamMap<V> {
    /// The entry with the lowest id; `None` only when the map is empty.
    first: Option<(u32, V)>,
    /// The others, sorted by id, every one above `first`'s.
    rest: Vec<(u32, V)>,
}

impl<V> Default for StreamMap<V> {
    fn default() -> Self {
        StreamMap {
            first: None,
            rest: Vec::new(),
        }
    }
}

impl<V> StreamMap<V> {
    fn find(&self, id: u32) -> Result<usize, usize> {
        self.rest.binary_search_by_key(&id, |(k, _)| *k)
    }

    pub(crate) fn get(&self, id: &u32) -> Option<&V> {
        let (first_id, first) = self.first.as_ref()?;
        if first_id == id {
            return Some(first);
        }
        if first_id > id {
            return None;
        }
        let i = self.find(*id).ok()?;
        Some(&self.rest[i].1)
    }

    pub(crate) fn get_mut(&mut self, id: &u32) -> Option<&mut V> {
        let first_id = self.first.as_ref()?.0;
        if first_id == *id {
            return self.first.as_mut().map(|(_, v)| v);
        }
        if first_id > *id {
            return None;
        }
        let i = self.find(*id).ok()?;
        Some(&mut self.rest[i].1)
    }

    pub(crate) fn contains_key(&self, id: &u32) -> bool {
        self.get(id).is_some()
    }

    /// Sets `id`'s state, returning the one it replaced.
    pub(crate) fn insert(&mut self, id: u32, value: V) -> Option<V> {
        let Some((first_id, first)) = &mut self.first else {
            self.first = Some((id, value));
            return None;
        };
        if id == *first_id {
            return Some(std::mem::replace(first, value));
        }
        if id < *first_id {
            // The new lowest: the old first moves to the front of the rest.
            let old = self.first.replace((id, value));
            self.rest.splice(0..0, old);
            return None;
        }
        match self.find(id) {
            Ok(i) => Some(std::mem::replace(&mut self.rest[i].1, value)),
            Err(i) => {
                self.rest.insert(i, (id, value));
                None
            }
        }
    }

    pub(crate) fn remove(&mut self, id: &u32) -> Option<V> {
        if self.first.as_ref().is_some_and(|(k, _)| k == id) {
            let removed = self.first.take().map(|(_, v)| v);
            if !self.rest.is_empty() {
                self.first = Some(self.rest.remove(0));
            }
            if self.rest.is_empty() {
                // A connection back to one stream holds no room for more.
                self.rest = Vec::new();
            }
            return removed;
        }
        let i = self.find(*id).ok()?;
        let (_, value) = self.rest.remove(i);
        if self.rest.is_empty() {
            self.rest = Vec::new();
        }
        Some(value)
    }

    pub(crate) fn len(&self) -> usize {
        usize::from(self.first.is_some()) + self.rest.len()
    }

    pub(crate) fn clear(&mut self) {
        self.first = None;
        self.rest = Vec::new();
    }

    pub(crate) fn iter(&self) -> impl Iterator<Item = (&u32, &V)> {
        self.first
            .iter()
            .chain(self.rest.iter())
            .map(|(k, v)| (k, v))
    }

    pub(crate) fn keys(&self) -> impl Iterator<Item = &u32> {
        self.iter().map(|(k, _)| k)
    }

    pub(crate) fn values(&self) -> impl Iterator<Item = &V> {
        self.iter().map(|(_, v)| v)
    }
}

#[cfg(test)]
mod tests {
    use super::StreamMap;
    use std::collections::BTreeMap;

    #[test]
    fn entries_stay_in_id_order_whatever_the_insertion_order() {
        let mut m = StreamMap::default();
        for id in [5, 1, 9, 3, 0] {
            assert_eq!(m.insert(id, id * 10), None);
        }
        let ids: Vec<u32> = m.keys().copied().collect();
        assert_eq!(ids, [0, 1, 3, 5, 9]);
        assert_eq!(m.get(&9), Some(&90));
        assert_eq!(m.get(&0), Some(&0));
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
    fn removing_the_lowest_promotes_the_next() {
        let mut m = StreamMap::default();
        for id in [1, 2, 3] {
            m.insert(id, id);
        }
        assert_eq!(m.remove(&1), Some(1));
        assert_eq!(m.keys().copied().collect::<Vec<_>>(), [2, 3]);
        assert_eq!(m.get(&2), Some(&2));
        *m.get_mut(&3).unwrap() += 30;
        assert_eq!(m.values().copied().collect::<Vec<_>>(), [2, 33]);
        m.clear();
        assert_eq!(m.len(), 0);
        assert_eq!(m.get(&2), None);
    }

    #[test]
    fn any_sequence_of_operations_agrees_with_a_btreemap() {
        // A small deterministic generator: ids from a narrow range so
        // inserts, replacements and removals all hit each other.
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut ours = StreamMap::default();
        let mut model = BTreeMap::new();
        for step in 0..20_000u64 {
            let id = (next() % 12) as u32;
            match next() % 4 {
                0 | 1 => assert_eq!(ours.insert(id, step), model.insert(id, step)),
                2 => assert_eq!(ours.remove(&id), model.remove(&id)),
                _ => {
                    if let (Some(a), Some(b)) = (ours.get_mut(&id), model.get_mut(&id)) {
                        *a += 1;
                        *b += 1;
                    }
                }
            }
            assert_eq!(ours.len(), model.len());
            assert_eq!(ours.get(&id), model.get(&id));
            assert!(ours.iter().eq(model.iter()), "step {step}");
        }
    }
}
