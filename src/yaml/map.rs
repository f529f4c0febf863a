//! The mapping of the positioned tree: insertion-ordered, O(1) lookup and insert by key name.
//!
//! A `Vec<(Key, Node)>` scanned on every insert made a 720k-key mapping quadratic (minutes
//! for a 50 MB file); this wraps `indexmap` and keeps the key's position beside its value.

use super::{Key, Node};
use indexmap::IndexMap;

/// An ordered mapping of key name to (key with its position, value).
#[derive(Debug, Clone, Default)]
pub struct Map {
    entries: IndexMap<String, (Key, Node)>,
}

impl PartialEq for Map {
    /// Equal when the same entries appear in the same order.
    fn eq(&self, other: &Self) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Map {
    /// An empty mapping.
    pub fn new() -> Self {
        Map::default()
    }

    /// The number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether the mapping has no entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of `name`.
    pub fn get(&self, name: &str) -> Option<&Node> {
        self.entries.get(name).map(|(_, v)| v)
    }

    /// The value of `name`, mutably.
    pub fn get_mut(&mut self, name: &str) -> Option<&mut Node> {
        self.entries.get_mut(name).map(|(_, v)| v)
    }

    /// The key (with its position) and value of `name`.
    pub fn get_entry(&self, name: &str) -> Option<(&Key, &Node)> {
        self.entries.get(name).map(|(k, v)| (k, v))
    }

    /// The entry at `index` in insertion order.
    pub fn get_index(&self, index: usize) -> Option<(&Key, &Node)> {
        self.entries.get_index(index).map(|(_, (k, v))| (k, v))
    }

    /// Whether `name` is a key.
    pub fn contains_key(&self, name: &str) -> bool {
        self.entries.contains_key(name)
    }

    /// Sets `key` to `value`: a present key keeps its place (and takes the new key position),
    /// a new one is appended. Returns the old value.
    pub fn insert(&mut self, key: Key, value: Node) -> Option<Node> {
        let name = key.name.clone();
        self.entries.insert(name, (key, value)).map(|(_, v)| v)
    }

    /// Appends (or replaces in place) an entry; `push((key, node))` reads like the `Vec` it replaced.
    pub fn push(&mut self, (key, value): (Key, Node)) {
        self.insert(key, value);
    }

    /// Removes `name`, keeping the order of the others.
    pub fn remove(&mut self, name: &str) -> Option<Node> {
        self.entries.shift_remove(name).map(|(_, v)| v)
    }

    /// The entries in order.
    pub fn iter(&self) -> impl DoubleEndedIterator<Item = (&Key, &Node)> + ExactSizeIterator {
        self.entries.values().map(|(k, v)| (k, v))
    }

    /// The entries in order, values mutable.
    pub fn iter_mut(
        &mut self,
    ) -> impl DoubleEndedIterator<Item = (&Key, &mut Node)> + ExactSizeIterator {
        self.entries.values_mut().map(|(k, v)| (&*k, v))
    }

    /// The values in order, mutable.
    pub fn values_mut(&mut self) -> impl Iterator<Item = &mut Node> {
        self.entries.values_mut().map(|(_, v)| v)
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = (&'a Key, &'a Node);
    type IntoIter = std::iter::Map<
        indexmap::map::Values<'a, String, (Key, Node)>,
        fn(&'a (Key, Node)) -> (&'a Key, &'a Node),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.values().map(|(k, v)| (k, v))
    }
}

impl<'a> IntoIterator for &'a mut Map {
    type Item = (&'a Key, &'a mut Node);
    type IntoIter = std::iter::Map<
        indexmap::map::ValuesMut<'a, String, (Key, Node)>,
        fn(&'a mut (Key, Node)) -> (&'a Key, &'a mut Node),
    >;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.values_mut().map(|(k, v)| (&*k, v))
    }
}

impl IntoIterator for Map {
    type Item = (Key, Node);
    type IntoIter = indexmap::map::IntoValues<String, (Key, Node)>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.into_values()
    }
}

impl FromIterator<(Key, Node)> for Map {
    fn from_iter<I: IntoIterator<Item = (Key, Node)>>(iter: I) -> Self {
        let mut map = Map::new();
        for entry in iter {
            map.push(entry);
        }
        map
    }
}
