//! The cache's current objects, ordered by store key. Each object is held once: the key is the
//! one inside its `RawObject` (a map keyed by `String` kept a second heap copy of every key).
//!
//! A persistent B-tree of our own. Libraries were measured and not kept: imbl's `OrdSet` is a
//! B+ tree whose inner nodes keep copies of keys as separators, and with the object as its own
//! key such a copy kept an old version (JSON and all) alive after it was replaced or deleted, for
//! ~1 in 8 objects; rpds's red-black tree references only current objects but costs two heap
//! hops per element, which made selector scans of the cache ~40% slower and its nodes 96 B per
//! object. Here every object is in exactly one node (a split moves the middle entry up, a merge
//! moves it down; none is copied into another node), nodes are arrays, and updates copy only the
//! nodes on the path they change (`Arc::make_mut`), so a snapshot shares the rest.

use crate::object::raw::RawObject;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

/// Minimum degree: a node other than the root holds `B - 1 ..= 2B - 1` entries.
const B: usize = 8;
const MAX: usize = 2 * B - 1;
const MIN: usize = B - 1;

/// An object, ordered by its store key.
#[derive(Clone)]
struct Entry(Arc<RawObject>);

impl Entry {
    fn key(&self) -> &str {
        self.0.key()
    }
}

fn pair(e: &Entry) -> (&str, &Arc<RawObject>) {
    (e.key(), &e.0)
}

/// Same element of the same tree (not merely an equal key).
fn same(a: &Entry, b: Option<&Entry>) -> bool {
    b.is_some_and(|b| std::ptr::eq(a, b))
}

struct Node {
    /// Sorted by key.
    entries: Vec<Entry>,
    /// Empty in a leaf; otherwise `entries.len() + 1` subtrees, `children[i]` holding the keys
    /// between `entries[i - 1]` and `entries[i]`.
    children: Vec<Arc<Node>>,
}

impl Node {
    fn leaf() -> Self {
        Node {
            entries: Vec::with_capacity(MAX + 1),
            children: Vec::new(),
        }
    }

    fn is_leaf(&self) -> bool {
        self.children.is_empty()
    }

    fn search(&self, key: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|e| e.key().cmp(key))
    }

    /// Splits a node that overflowed (`MAX + 1` entries): returns the middle entry and the
    /// right half; `self` keeps the left half.
    fn split(&mut self) -> (Entry, Node) {
        let mut right = Node::leaf();
        right.entries.extend(self.entries.drain(B + 1..));
        let middle = self.entries.pop().expect("an overflowing node has entries");
        if !self.is_leaf() {
            right.children = Vec::with_capacity(MAX + 2);
            right.children.extend(self.children.drain(B + 1..));
        }
        (middle, right)
    }

    /// Restores `children[i]` to at least `MIN` entries after a removal from it, by moving an
    /// entry through this node from a sibling or by merging it with one.
    fn fix_child(&mut self, i: usize) {
        if self.children[i].entries.len() >= MIN {
            return;
        }
        if i > 0 && self.children[i - 1].entries.len() > MIN {
            let (left, right) = self.children.split_at_mut(i);
            let left = Arc::make_mut(&mut left[i - 1]);
            let child = Arc::make_mut(&mut right[0]);
            let up = left.entries.pop().expect("sibling has entries");
            let down = std::mem::replace(&mut self.entries[i - 1], up);
            child.entries.insert(0, down);
            if let Some(sub) = left.children.pop() {
                child.children.insert(0, sub);
            }
        } else if i + 1 < self.children.len() && self.children[i + 1].entries.len() > MIN {
            let (left, right) = self.children.split_at_mut(i + 1);
            let child = Arc::make_mut(&mut left[i]);
            let right = Arc::make_mut(&mut right[0]);
            let up = right.entries.remove(0);
            let down = std::mem::replace(&mut self.entries[i], up);
            child.entries.push(down);
            if !right.is_leaf() {
                child.children.push(right.children.remove(0));
            }
        } else {
            self.merge(if i > 0 { i - 1 } else { i });
        }
    }

    /// Merges `children[j + 1]` and the entry between them into `children[j]`.
    fn merge(&mut self, j: usize) {
        let middle = self.entries.remove(j);
        let right = Arc::unwrap_or_clone(self.children.remove(j + 1));
        let left = Arc::make_mut(&mut self.children[j]);
        left.entries.push(middle);
        left.entries.extend(right.entries);
        left.children.extend(right.children);
    }
}

impl Clone for Node {
    /// Copies one node for a path copy, at full capacity so that it never reallocates.
    fn clone(&self) -> Self {
        let mut entries = Vec::with_capacity(MAX + 1);
        entries.extend(self.entries.iter().cloned());
        let children = if self.is_leaf() {
            Vec::new()
        } else {
            let mut c = Vec::with_capacity(MAX + 2);
            c.extend(self.children.iter().cloned());
            c
        };
        Node { entries, children }
    }
}

enum Inserted {
    Replaced(Entry),
    Added,
    /// Added, and the node split: the middle entry and the new right sibling go to the parent.
    Split(Entry, Node),
}

fn insert(node: &mut Node, e: Entry) -> Inserted {
    match node.search(e.key()) {
        Ok(i) => Inserted::Replaced(std::mem::replace(&mut node.entries[i], e)),
        Err(i) => {
            if node.is_leaf() {
                node.entries.insert(i, e);
            } else {
                match insert(Arc::make_mut(&mut node.children[i]), e) {
                    Inserted::Split(middle, right) => {
                        node.entries.insert(i, middle);
                        node.children.insert(i + 1, Arc::new(right));
                    }
                    done => return done,
                }
            }
            if node.entries.len() > MAX {
                let (middle, right) = node.split();
                Inserted::Split(middle, right)
            } else {
                Inserted::Added
            }
        }
    }
}

/// Removes `key`, which must be in the subtree.
fn remove(node: &mut Node, key: &str) -> Option<Entry> {
    match node.search(key) {
        Ok(i) if node.is_leaf() => Some(node.entries.remove(i)),
        Ok(i) => {
            // Its place goes to its predecessor, the last entry of the subtree before it.
            let pred = remove_last(Arc::make_mut(&mut node.children[i]));
            let old = std::mem::replace(&mut node.entries[i], pred);
            node.fix_child(i);
            Some(old)
        }
        Err(_) if node.is_leaf() => None,
        Err(i) => {
            let old = remove(Arc::make_mut(&mut node.children[i]), key);
            node.fix_child(i);
            old
        }
    }
}

fn remove_last(node: &mut Node) -> Entry {
    if node.is_leaf() {
        return node.entries.pop().expect("a non-root node has entries");
    }
    let last = node.children.len() - 1;
    let e = remove_last(Arc::make_mut(&mut node.children[last]));
    node.fix_child(last);
    e
}

/// The first entry that `bound`, taken as a lower bound, admits.
fn first_from<'a>(mut node: &'a Node, bound: Bound<&str>) -> Option<&'a Entry> {
    let mut found = None;
    loop {
        let i = match bound {
            Bound::Unbounded => 0,
            Bound::Included(k) => match node.search(k) {
                Ok(i) => return Some(&node.entries[i]),
                Err(i) => i,
            },
            Bound::Excluded(k) => match node.search(k) {
                Ok(i) => i + 1,
                Err(i) => i,
            },
        };
        if i < node.entries.len() {
            found = Some(&node.entries[i]);
        }
        if node.is_leaf() {
            return found;
        }
        node = &node.children[i];
    }
}

/// A position between two entries, as the path from the root: each frame a node and the index
/// of its next entry in the cursor's direction (forwards: `entries[i]`; backwards:
/// `entries[i - 1]`). The top frame always has one; an exhausted cursor is empty.
struct Cursor<'a> {
    stack: Vec<(&'a Node, usize)>,
}

impl<'a> Cursor<'a> {
    fn empty() -> Self {
        Cursor { stack: Vec::new() }
    }

    /// Before the first entry that `start` admits.
    fn forward(root: Option<&'a Node>, start: Bound<&str>) -> Self {
        let mut c = Cursor {
            stack: Vec::with_capacity(8),
        };
        let mut next = root;
        while let Some(node) = next {
            let i = match start {
                Bound::Unbounded => 0,
                Bound::Included(k) => match node.search(k) {
                    Ok(i) => {
                        c.stack.push((node, i));
                        break;
                    }
                    Err(i) => i,
                },
                Bound::Excluded(k) => match node.search(k) {
                    Ok(i) => i + 1,
                    Err(i) => i,
                },
            };
            c.stack.push((node, i));
            next = node.children.get(i).map(|n| &**n);
        }
        c.settle_forward();
        c
    }

    /// After the last entry that `end` admits.
    fn backward(root: Option<&'a Node>, end: Bound<&str>) -> Self {
        let mut c = Cursor {
            stack: Vec::with_capacity(8),
        };
        let mut next = root;
        while let Some(node) = next {
            let j = match end {
                Bound::Unbounded => node.entries.len(),
                Bound::Included(k) => match node.search(k) {
                    Ok(i) => {
                        c.stack.push((node, i + 1));
                        break;
                    }
                    Err(i) => i,
                },
                Bound::Excluded(k) => match node.search(k) {
                    Ok(i) | Err(i) => i,
                },
            };
            c.stack.push((node, j));
            next = node.children.get(j).map(|n| &**n);
        }
        c.settle_backward();
        c
    }

    fn settle_forward(&mut self) {
        while let Some(&(node, i)) = self.stack.last() {
            if i < node.entries.len() {
                break;
            }
            self.stack.pop();
        }
    }

    fn settle_backward(&mut self) {
        while let Some(&(_, 0)) = self.stack.last() {
            self.stack.pop();
        }
    }

    fn peek(&self) -> Option<&'a Entry> {
        self.stack.last().map(|&(node, i)| &node.entries[i])
    }

    fn next(&mut self) -> Option<&'a Entry> {
        let top = self.stack.last_mut()?;
        let (node, i) = *top;
        top.1 = i + 1;
        // Next: the first entry of the subtree after this one.
        let mut sub = node.children.get(i + 1);
        while let Some(n) = sub {
            self.stack.push((n.as_ref(), 0));
            sub = n.children.first();
        }
        self.settle_forward();
        Some(&node.entries[i])
    }

    fn next_back(&mut self) -> Option<&'a Entry> {
        let top = self.stack.last_mut()?;
        let (node, j) = *top;
        top.1 = j - 1;
        // Next: the last entry of the subtree before this one.
        let mut sub = node.children.get(j - 1);
        while let Some(n) = sub {
            self.stack.push((n.as_ref(), n.entries.len()));
            sub = n.children.last();
        }
        self.settle_backward();
        Some(&node.entries[j - 1])
    }
}

/// Objects by store key. Persistent: clones are O(1) and share structure, so snapshots are cheap.
#[derive(Clone, Default)]
pub struct ObjectMap {
    root: Option<Arc<Node>>,
    len: usize,
}

impl ObjectMap {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn get(&self, key: &str) -> Option<&Arc<RawObject>> {
        let mut node = self.root.as_deref()?;
        loop {
            match node.search(key) {
                Ok(i) => return Some(&node.entries[i].0),
                Err(i) => node = node.children.get(i)?.as_ref(),
            }
        }
    }

    pub fn contains_key(&self, key: &str) -> bool {
        self.get(key).is_some()
    }

    /// Inserts `obj` under its key; returns the object it replaces.
    pub fn insert(&mut self, obj: Arc<RawObject>) -> Option<Arc<RawObject>> {
        let root = self.root.get_or_insert_with(|| Arc::new(Node::leaf()));
        match insert(Arc::make_mut(root), Entry(obj)) {
            Inserted::Replaced(old) => return Some(old.0),
            Inserted::Added => {}
            Inserted::Split(middle, right) => {
                let mut top = Node::leaf();
                top.entries.push(middle);
                top.children = Vec::with_capacity(MAX + 2);
                top.children.push(Arc::clone(root));
                top.children.push(Arc::new(right));
                *root = Arc::new(top);
            }
        }
        self.len += 1;
        None
    }

    pub fn remove(&mut self, key: &str) -> Option<Arc<RawObject>> {
        // Checked first so that removing an absent key copies no path.
        if !self.contains_key(key) {
            return None;
        }
        let root = self.root.as_mut()?;
        let node = Arc::make_mut(root);
        let old = remove(node, key);
        if node.entries.is_empty() {
            // The root lost its last entry: its only subtree, if any, is the new root.
            self.root = node.children.pop();
        }
        if old.is_some() {
            self.len -= 1;
        }
        old.map(|e| e.0)
    }

    /// Objects in key order.
    pub fn values(&self) -> impl DoubleEndedIterator<Item = &Arc<RawObject>> + ExactSizeIterator {
        self.all().map(|e| &e.0)
    }

    /// (key, object) in key order.
    pub fn iter(
        &self,
    ) -> impl DoubleEndedIterator<Item = (&str, &Arc<RawObject>)> + ExactSizeIterator {
        self.all().map(pair)
    }

    fn all(&self) -> Iter<'_> {
        Iter {
            front: Cursor::forward(self.root.as_deref(), Bound::Unbounded),
            back: None,
            root: self.root.as_deref(),
            remaining: self.len,
        }
    }

    /// (key, object) for the keys in `range`, in key order (e.g. a page from a continue key:
    /// `(Bound::Included(start), Bound::Unbounded)`). The iterator does not borrow the bounds.
    /// An empty or inverted range (start after end) yields nothing.
    pub fn range<R: RangeBounds<str>>(&self, range: R) -> Range<'_> {
        let (start, end) = (range.start_bound(), range.end_bound());
        let inverted = match (start, end) {
            (Bound::Included(s), Bound::Included(e)) => s > e,
            (Bound::Included(s) | Bound::Excluded(s), Bound::Included(e) | Bound::Excluded(e)) => {
                s >= e
            }
            _ => false,
        };
        let root = self.root.as_deref();
        if inverted {
            return Range {
                front: Cursor::empty(),
                back: None,
                root,
                first: None,
                end: None,
                last_front: None,
                last_back: None,
            };
        }
        let front = Cursor::forward(root, start);
        // The first entry after the range: where the front stops and the back starts.
        let past = match end {
            Bound::Included(k) => Bound::Excluded(k),
            Bound::Excluded(k) => Bound::Included(k),
            Bound::Unbounded => Bound::Unbounded,
        };
        let end = match past {
            Bound::Unbounded => None,
            b => root.and_then(|r| first_from(r, b)),
        };
        let first = front.peek().filter(|f| !same(f, end));
        Range {
            front,
            back: None,
            root,
            first,
            end,
            last_front: None,
            last_back: None,
        }
    }

    /// True if both are the same version (one is an unmodified clone of the other).
    pub fn ptr_eq(&self, other: &Self) -> bool {
        match (&self.root, &other.root) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            (None, None) => true,
            _ => false,
        }
    }
}

/// Every entry: the count of those left keeps the two ends from crossing.
struct Iter<'a> {
    front: Cursor<'a>,
    back: Option<Cursor<'a>>,
    root: Option<&'a Node>,
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a Entry;

    fn next(&mut self) -> Option<&'a Entry> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        self.front.next()
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl<'a> DoubleEndedIterator for Iter<'a> {
    fn next_back(&mut self) -> Option<&'a Entry> {
        if self.remaining == 0 {
            return None;
        }
        self.remaining -= 1;
        let root = self.root;
        self.back
            .get_or_insert_with(|| Cursor::backward(root, Bound::Unbounded))
            .next_back()
    }
}

impl ExactSizeIterator for Iter<'_> {}

/// The iterator of [`ObjectMap::range`]; a named type so that it borrows only the map. The range
/// is held as entries of the tree (its first, and the first after it), not as keys.
pub struct Range<'a> {
    front: Cursor<'a>,
    /// Made on the first `next_back`.
    back: Option<Cursor<'a>>,
    root: Option<&'a Node>,
    /// None once nothing is left.
    first: Option<&'a Entry>,
    /// The first entry after the range (None: the map's end).
    end: Option<&'a Entry>,
    last_front: Option<&'a Entry>,
    last_back: Option<&'a Entry>,
}

impl<'a> Iterator for Range<'a> {
    type Item = (&'a str, &'a Arc<RawObject>);

    fn next(&mut self) -> Option<Self::Item> {
        self.first?;
        match self.front.next() {
            Some(e) if !same(e, self.end) && !same(e, self.last_back) => {
                self.last_front = Some(e);
                Some(pair(e))
            }
            _ => {
                self.first = None;
                None
            }
        }
    }
}

impl DoubleEndedIterator for Range<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let first = self.first?;
        if self.last_back.is_some_and(|b| std::ptr::eq(b, first)) {
            self.first = None;
            return None;
        }
        let (root, end) = (self.root, self.end);
        let back = self.back.get_or_insert_with(|| {
            Cursor::backward(
                root,
                end.map_or(Bound::Unbounded, |e| Bound::Excluded(e.key())),
            )
        });
        match back.next_back() {
            Some(e) if !same(e, self.last_front) => {
                self.last_back = Some(e);
                Some(pair(e))
            }
            _ => {
                self.first = None;
                None
            }
        }
    }
}

impl FromIterator<Arc<RawObject>> for ObjectMap {
    /// Later objects replace earlier ones with the same key.
    fn from_iter<I: IntoIterator<Item = Arc<RawObject>>>(iter: I) -> Self {
        let mut map = ObjectMap::new();
        for obj in iter {
            map.insert(obj);
        }
        map
    }
}

impl std::fmt::Debug for ObjectMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.all().map(Entry::key)).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ops::Bound;
    use std::sync::Weak;

    impl Node {
        /// Checks the B-tree's invariants below this node; returns (height, entries).
        fn check(&self, lo: Option<&str>, hi: Option<&str>, root: bool) -> (usize, usize) {
            let n = self.entries.len();
            assert!(n <= MAX, "overfull node: {n}");
            assert!(root || n >= MIN, "underfull node: {n}");
            assert!(n > 0, "empty node");
            let keys: Vec<&str> = self.entries.iter().map(Entry::key).collect();
            assert!(keys.windows(2).all(|w| w[0] < w[1]), "unsorted: {keys:?}");
            assert!(lo.is_none_or(|lo| lo < keys[0]) && hi.is_none_or(|hi| keys[n - 1] < hi));
            if self.is_leaf() {
                return (1, n);
            }
            assert_eq!(self.children.len(), n + 1);
            let mut height = None;
            let mut count = n;
            for (i, c) in self.children.iter().enumerate() {
                let clo = if i == 0 { lo } else { Some(keys[i - 1]) };
                let chi = keys.get(i).copied().or(hi);
                let (h, k) = c.check(clo, chi, false);
                assert!(height.is_none_or(|x| x == h), "uneven heights");
                height = Some(h);
                count += k;
            }
            (height.unwrap_or(0) + 1, count)
        }
    }

    fn check(m: &ObjectMap) {
        let count = m.root.as_ref().map_or(0, |r| r.check(None, None, true).1);
        assert_eq!(count, m.len());
    }

    /// A small deterministic generator (xorshift64*), so that a failure replays.
    struct Rng(u64);

    impl Rng {
        fn below(&mut self, n: u64) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n
        }
    }

    type Model = std::collections::BTreeMap<String, i64>;

    fn key(i: u64) -> String {
        format!("/registry/configmaps/ns/o{i:04}")
    }

    fn contents(m: &ObjectMap) -> Vec<(String, i64)> {
        m.iter()
            .map(|(k, o)| (k.to_string(), o.mod_revision))
            .collect()
    }

    fn model_contents(m: &Model) -> Vec<(String, i64)> {
        m.iter().map(|(k, r)| (k.clone(), *r)).collect()
    }

    fn bound(rng: &mut Rng, keys: u64) -> (Bound<String>, String) {
        // Keys between and beside existing ones, and continue keys ("last\0").
        let k = match rng.below(3) {
            0 => key(rng.below(keys + 2)),
            1 => format!("{}\0", key(rng.below(keys))),
            _ => format!("/registry/configmaps/ns/o{}", rng.below(keys / 10 + 1)),
        };
        let b = match rng.below(3) {
            0 => Bound::Included(k.clone()),
            1 => Bound::Excluded(k.clone()),
            _ => Bound::Unbounded,
        };
        (b, k)
    }

    fn admits(lo: &Bound<String>, hi: &Bound<String>, k: &str) -> bool {
        let above = match lo {
            Bound::Included(s) => k >= s.as_str(),
            Bound::Excluded(s) => k > s.as_str(),
            Bound::Unbounded => true,
        };
        let below = match hi {
            Bound::Included(e) => k <= e.as_str(),
            Bound::Excluded(e) => k < e.as_str(),
            Bound::Unbounded => true,
        };
        above && below
    }

    fn as_str(b: &Bound<String>) -> Bound<&str> {
        b.as_ref().map(String::as_str)
    }

    /// Random inserts, replacements, removals, lookups and ranges (read from the front, the
    /// back, or both ends at once) against std's BTreeMap, with snapshots that must not change;
    /// the tree's invariants are checked along the way.
    #[test]
    fn matches_a_btreemap_under_random_operations() {
        for (seed, keys) in [(1u64, 40u64), (7, 400), (42, 3000)] {
            let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
            let (mut m, mut model) = (ObjectMap::new(), Model::new());
            let mut snaps: Vec<(ObjectMap, Model)> = Vec::new();
            for step in 0..6000i64 {
                let i = rng.below(keys);
                let k = key(i);
                match rng.below(10) {
                    0..=4 => {
                        let prev = m.insert(obj(&format!("o{i:04}"), step));
                        let want = model.insert(k, step);
                        assert_eq!(prev.map(|o| o.mod_revision), want);
                    }
                    5..=7 => {
                        let prev = m.remove(&k);
                        assert_eq!(prev.map(|o| o.mod_revision), model.remove(&k));
                    }
                    8 => assert_eq!(m.get(&k).map(|o| o.mod_revision), model.get(&k).copied()),
                    _ => {
                        let ((lo, _), (hi, _)) = (bound(&mut rng, keys), bound(&mut rng, keys));
                        let want: Vec<&String> =
                            model.keys().filter(|k| admits(&lo, &hi, k)).collect();
                        let r = || m.range((as_str(&lo), as_str(&hi)));
                        let fwd: Vec<&str> = r().map(|(k, _)| k).collect();
                        assert_eq!(fwd, want, "range {lo:?}..{hi:?}");
                        let mut back: Vec<&str> = r().rev().map(|(k, _)| k).collect();
                        back.reverse();
                        assert_eq!(back, want, "reversed range {lo:?}..{hi:?}");
                        // Both ends at once, in a random interleaving: they meet, not cross.
                        let (mut it, mut head, mut tail) = (r(), Vec::new(), Vec::new());
                        loop {
                            let got = if rng.below(2) == 0 {
                                it.next().map(|x| head.push(x.0))
                            } else {
                                it.next_back().map(|x| tail.push(x.0))
                            };
                            if got.is_none() {
                                break;
                            }
                        }
                        assert!(it.next().is_none() && it.next_back().is_none());
                        head.extend(tail.into_iter().rev());
                        assert_eq!(head, want, "both ends of {lo:?}..{hi:?}");
                    }
                }
                assert_eq!(m.len(), model.len());
                if step % 97 == 0 {
                    check(&m);
                    assert_eq!(contents(&m), model_contents(&model));
                    let rev: Vec<i64> = m.values().rev().map(|o| o.mod_revision).collect();
                    let want: Vec<i64> = model.values().rev().copied().collect();
                    assert_eq!(rev, want);
                }
                if step % 500 == 0 {
                    snaps.push((m.clone(), model.clone()));
                }
            }
            for (snap, model) in &snaps {
                check(snap);
                assert_eq!(contents(snap), model_contents(model));
            }
            // Empty it, from both ends of the key space.
            let all: Vec<String> = model.keys().cloned().collect();
            for (n, k) in all.iter().enumerate() {
                let k = if n % 2 == 0 {
                    k
                } else {
                    &all[all.len() - 1 - n / 2]
                };
                m.remove(k);
                model.remove(k);
            }
            for k in all {
                m.remove(&k);
            }
            check(&m);
            assert!(m.is_empty() && m.iter().next().is_none() && m.root.is_none());
        }
    }

    #[test]
    fn iterators_meet_in_the_middle() {
        let m: ObjectMap = (0..300).map(|i| obj(&format!("o{i:03}"), 1)).collect();
        let mut it = m.values();
        assert_eq!(it.len(), 300);
        let mut seen = Vec::new();
        for i in 0..300 {
            let o = if i % 3 == 0 {
                it.next_back()
            } else {
                it.next()
            };
            seen.push(o.expect("300 values").name().to_string());
            assert_eq!(it.len(), 299 - i);
        }
        assert!(it.next().is_none() && it.next_back().is_none());
        seen.sort();
        seen.dedup();
        assert_eq!(seen.len(), 300);
    }

    fn obj(name: &str, rev: i64) -> Arc<RawObject> {
        let res = crate::api::catalogue::lookup("", "v1", "configmaps").unwrap();
        let value = format!(r#"{{"metadata":{{"name":"{name}","namespace":"ns"}}}}"#);
        Arc::new(
            RawObject::from_stored(
                res,
                &format!("/registry/configmaps/ns/{name}"),
                value.as_bytes(),
                rev,
                rev,
            )
            .unwrap(),
        )
    }

    fn names<'a>(it: impl Iterator<Item = (&'a str, &'a Arc<RawObject>)>) -> Vec<&'a str> {
        it.map(|(k, o)| {
            assert_eq!(k, o.key());
            o.name()
        })
        .collect()
    }

    #[test]
    fn keeps_one_object_per_key_in_key_order() {
        let mut m: ObjectMap = ["c", "a", "b"].iter().map(|n| obj(n, 1)).collect();
        assert_eq!((m.len(), m.is_empty()), (3, false));
        assert_eq!(names(m.iter()), ["a", "b", "c"]);

        let prev = m.insert(obj("b", 2)).expect("b was there");
        assert_eq!(prev.mod_revision, 1);
        assert_eq!(m.len(), 3);
        let b = m.get("/registry/configmaps/ns/b").expect("b is there");
        assert_eq!(
            b.mod_revision, 2,
            "insert replaces the object, not only its value"
        );
        assert!(m.insert(obj("d", 2)).is_none());

        assert_eq!(
            m.remove("/registry/configmaps/ns/a")
                .map(|o| o.mod_revision),
            Some(1)
        );
        assert!(m.remove("/registry/configmaps/ns/a").is_none());
        assert!(!m.contains_key("/registry/configmaps/ns/a"));
        assert!(m.get("/registry/configmaps/ns/").is_none());
        let revs: Vec<i64> = m.values().map(|o| o.mod_revision).collect();
        assert_eq!(revs, [2, 1, 2]);
    }

    #[test]
    fn ranges_follow_str_order() {
        // Enough objects for a tree of many levels, each descent comparing with the bounds.
        let m: ObjectMap = (0..500).map(|i| obj(&format!("o{i:03}"), 1)).collect();
        let from = |b: Bound<&str>| names(m.range((b, Bound::Unbounded)));
        let at = from(Bound::Included("/registry/configmaps/ns/o250"));
        assert_eq!((at.len(), at[0]), (250, "o250"));
        let after = from(Bound::Excluded("/registry/configmaps/ns/o250"));
        assert_eq!((after.len(), after[0]), (249, "o251"));
        // A continue key ("last\0") starts right after `last`; a prefix before its keys.
        let cont = from(Bound::Included("/registry/configmaps/ns/o499\0"));
        assert!(cont.is_empty());
        assert_eq!(from(Bound::Included("/registry/configmaps/ns/")).len(), 500);
        let window = names(m.range((
            Bound::Included("/registry/configmaps/ns/o010"),
            Bound::Excluded("/registry/configmaps/ns/o013"),
        )));
        assert_eq!(window, ["o010", "o011", "o012"]);
    }

    #[test]
    fn clones_are_independent_versions() {
        let mut m: ObjectMap = (0..100).map(|i| obj(&format!("o{i:03}"), 1)).collect();
        let snap = m.clone();
        assert!(snap.ptr_eq(&m));
        m.insert(obj("o050", 2));
        m.remove("/registry/configmaps/ns/o051");
        assert!(!snap.ptr_eq(&m));
        assert_eq!(snap.len(), 100);
        assert_eq!(m.len(), 99);
        let at = |m: &ObjectMap| {
            m.get("/registry/configmaps/ns/o050")
                .map(|o| o.mod_revision)
        };
        assert_eq!((at(&snap), at(&m)), (Some(1), Some(2)));
        assert!(snap.contains_key("/registry/configmaps/ns/o051"));
    }

    #[test]
    fn ranges_that_are_empty_or_inverted_yield_nothing() {
        let m: ObjectMap = ["a", "b", "c"].iter().map(|n| obj(n, 1)).collect();
        let k = |n: &str| format!("/registry/configmaps/ns/{n}");
        let (a, b, c) = (k("a"), k("b"), k("c"));
        let count = |s: Bound<&str>, e: Bound<&str>| m.range((s, e)).count();
        assert_eq!(count(Bound::Included(&c), Bound::Included(&a)), 0);
        assert_eq!(count(Bound::Included(&c), Bound::Excluded(&a)), 0);
        assert_eq!(count(Bound::Excluded(&b), Bound::Excluded(&b)), 0);
        assert_eq!(count(Bound::Included(&b), Bound::Excluded(&b)), 0);
        assert_eq!(count(Bound::Excluded(&b), Bound::Included(&b)), 0);
        assert_eq!(count(Bound::Included(&b), Bound::Included(&b)), 1);
        assert_eq!(count(Bound::Excluded(&a), Bound::Excluded(&c)), 1);
        let back: Vec<&str> = m
            .range((Bound::Excluded(a.as_str()), Bound::Unbounded))
            .rev()
            .map(|(_, o)| o.name())
            .collect();
        assert_eq!(back, ["c", "b"]);
    }

    /// The map must reference only current objects: a replaced or removed version is freed once
    /// no snapshot holds it (imbl's B+ tree kept ~1 in 8 alive as inner-node separators).
    #[test]
    fn replaced_and_removed_versions_are_freed() {
        let n = 3000;
        let name = |i: usize| format!("o{i:05}");
        let mut m: ObjectMap = (0..n).map(|i| obj(&name(i), 1)).collect();
        let old: Vec<Weak<RawObject>> = m.values().map(Arc::downgrade).collect();
        assert!(m.values().all(|o| Arc::strong_count(o) == 1));

        // A live snapshot keeps the old versions, and only it.
        let snap = m.clone();
        // Replace in an order unlike the load's, then remove every tenth.
        for i in (0..n).rev().step_by(2).chain((0..n).step_by(2)) {
            assert!(m.insert(obj(&name(i), 2)).is_some());
        }
        for i in (0..n).step_by(10) {
            let gone = m.remove(&format!("/registry/configmaps/ns/{}", name(i)));
            assert_eq!(gone.map(|o| o.mod_revision), Some(2));
        }
        assert!(old.iter().all(|w| w.upgrade().is_some()));
        drop(snap);

        let kept = old.iter().filter(|w| w.upgrade().is_some()).count();
        assert_eq!(kept, 0, "old versions still referenced after replacing all");
        check(&m);
        assert_eq!(m.len(), n - n / 10);
        assert!(m
            .values()
            .all(|o| o.mod_revision == 2 && Arc::strong_count(o) == 1));
    }
}
