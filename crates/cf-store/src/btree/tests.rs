//! Tests of the B+tree over an in-memory page store: a model test against `BTreeMap` with
//! exact page accounting, decoding fuzz, corruption, limits, fill factor and bulk churn.

use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, BTreeSet, HashMap, VecDeque};
use std::ops::Bound;

use bytes::Bytes;
use pagecache::PageRef;
use proptest::prelude::*;
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

use super::index::{NodeIndex, Step};
use super::node::{
    check_sizes, child_index, insert_into_branch_image, max_inline_entry, max_key_len, patch_branch_image,
    search, BranchImage, Child, Entry, Key, Node, Value,
};
use super::node::{MAX_LEAF_PAGES, MAX_VALUE_LEN};
use super::{
    get, range, visit_pages, IndexCache, InsertBuffers, NodePtr, PageId, PageSink, PageSource, TreeRoot,
    WriteTree,
};
use crate::{Error, Result};

/// Pages in a map, a bump allocator, and a record of the runs written.
struct Mem {
    page_size: usize,
    pages: RefCell<HashMap<PageId, Bytes>>,
    next: Cell<PageId>,
    written: RefCell<Vec<(PageId, u64)>>,
    /// Indexed nodes for lookups, when the test asks for them.
    index: Option<IndexCache>,
}

impl Mem {
    fn new(page_size: usize) -> Mem {
        Mem {
            page_size,
            pages: RefCell::default(),
            // Page 0 is never handed out, like a superblock.
            next: Cell::new(1),
            written: RefCell::default(),
            index: None,
        }
    }

    /// A store whose lookups binary-search indexed nodes ([`IndexCache`]).
    fn indexed(page_size: usize) -> Mem {
        Mem {
            index: IndexCache::new(8 << 20, page_size as u32),
            ..Mem::new(page_size)
        }
    }

    /// The same pages, with an index of its own that holds nothing yet.
    fn indexed_copy(&self) -> Mem {
        Mem {
            pages: RefCell::new(self.pages.borrow().clone()),
            next: Cell::new(self.next.get()),
            ..Mem::indexed(self.page_size)
        }
    }

    /// Xors `mask` into one byte of a stored page.
    fn flip(&self, page: PageId, at: usize, mask: u8) {
        let mut pages = self.pages.borrow_mut();
        let mut bytes = pages[&page].to_vec();
        bytes[at] ^= mask;
        pages.insert(page, Bytes::from(bytes));
    }
}

/// A page of a test store's map; a missing one is corruption, as a page past a file is.
fn read_stored(pages: &RefCell<HashMap<PageId, Bytes>>, page: PageId) -> Result<pagecache::PageRef> {
    let pages = pages.borrow();
    let bytes = pages.get(&page).ok_or_else(|| Error::Corruption {
        page,
        what: "no such page in the test store".into(),
    })?;
    Ok(pagecache::PageRef::from(bytes.clone()))
}

impl PageSource for Mem {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn read(&self, page: PageId) -> Result<pagecache::PageRef> {
        read_stored(&self.pages, page)
    }

    fn index_cache(&self) -> Option<&IndexCache> {
        self.index.as_ref()
    }
}

struct Sink<'a>(&'a Mem);

impl PageSink for Sink<'_> {
    fn alloc(&mut self, count: u64) -> Result<PageId> {
        assert!(count >= 1);
        let first = self.0.next.get();
        self.0.next.set(first + count);
        Ok(first)
    }

    fn write(&mut self, page: PageId, bytes: Box<[u8]>) -> Result<()> {
        let ps = self.0.page_size;
        assert!(!bytes.is_empty() && bytes.len().is_multiple_of(ps));
        let count = (bytes.len() / ps) as u64;
        assert!(page + count <= self.0.next.get(), "write of unallocated pages");
        let mut pages = self.0.pages.borrow_mut();
        for (i, chunk) in bytes.chunks(ps).enumerate() {
            let old = pages.insert(page + i as u64, Bytes::copy_from_slice(chunk));
            assert!(old.is_none(), "page {} written twice", page + i as u64);
        }
        self.0.written.borrow_mut().push((page, count));
        Ok(())
    }
}

fn expand(runs: &[(PageId, u64)]) -> BTreeSet<PageId> {
    let mut pages = BTreeSet::new();
    for &(page, count) in runs {
        for p in page..page + count {
            assert!(pages.insert(p), "page {p} listed twice");
        }
    }
    pages
}

fn reachable_runs(mem: &Mem, root: &TreeRoot) -> Vec<(PageId, u64)> {
    let mut runs = Vec::new();
    visit_pages(mem, root, true, &mut |p, c| runs.push((p, c))).unwrap();
    runs
}

fn reachable(mem: &Mem, root: &TreeRoot) -> BTreeSet<PageId> {
    expand(&reachable_runs(mem, root))
}

/// Commits and checks the page accounting: what is reachable afterwards is exactly what was
/// reachable before, minus what was freed, plus what was written. Freed pages are then
/// dropped from the store, so any later read of one fails.
fn commit(mem: &Mem, tree: WriteTree, base: TreeRoot) -> TreeRoot {
    let dirty = tree.is_dirty();
    let before = reachable(mem, &base);
    mem.written.borrow_mut().clear();
    let (root, freed) = tree.commit(mem, &mut Sink(mem)).unwrap();
    let written = expand(&mem.written.borrow());
    let freed = expand(&freed);
    let after = reachable(mem, &root);
    if !dirty {
        assert_eq!(root, base);
        assert!(written.is_empty() && freed.is_empty());
    }
    assert!(
        freed.is_subset(&before),
        "freed a page that was not in the base state"
    );
    assert!(freed.is_disjoint(&after), "freed a page that is still reachable");
    let expected: BTreeSet<PageId> = before.difference(&freed).chain(&written).copied().collect();
    assert_eq!(after, expected, "reachable != before - freed + written");
    let mut pages = mem.pages.borrow_mut();
    for page in freed {
        pages.remove(&page);
    }
    root
}

fn value_bytes(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
        .collect()
}

fn in_bounds(key: &[u8], start: &Bound<Vec<u8>>, end: &Bound<Vec<u8>>) -> bool {
    (match start {
        Bound::Included(s) => key >= s.as_slice(),
        Bound::Excluded(s) => key > s.as_slice(),
        Bound::Unbounded => true,
    }) && match end {
        Bound::Included(e) => key <= e.as_slice(),
        Bound::Excluded(e) => key < e.as_slice(),
        Bound::Unbounded => true,
    }
}

type Model = BTreeMap<Vec<u8>, Vec<u8>>;
type Bounds = (Bound<Vec<u8>>, Bound<Vec<u8>>);

/// Takes from the front (true) or back (false) of `iter` as `pattern` says, then drains it
/// forward, comparing with the model's entries within `bounds`.
fn check_range<I>(mut iter: I, model: &Model, bounds: &Bounds, pattern: &[bool])
where
    I: DoubleEndedIterator<Item = Result<(Vec<u8>, Vec<u8>)>>,
{
    let mut expected: VecDeque<(Vec<u8>, Vec<u8>)> = model
        .iter()
        .filter(|(k, _)| in_bounds(k, &bounds.0, &bounds.1))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    for &front in pattern {
        let (got, want) = if front {
            (iter.next(), expected.pop_front())
        } else {
            (iter.next_back(), expected.pop_back())
        };
        assert_eq!(
            got.transpose().unwrap(),
            want,
            "bounds {bounds:?}, pattern {pattern:?}"
        );
    }
    let rest: Vec<_> = iter.map(|r| r.unwrap()).collect();
    assert_eq!(
        rest,
        Vec::from(expected),
        "bounds {bounds:?}, pattern {pattern:?}"
    );
}

/// Everything a committed root must satisfy against the model.
fn check_committed(mem: &Mem, root: &TreeRoot, model: &Model) {
    assert_eq!(root.len, model.len() as u64);
    assert_eq!(root.root.is_none(), model.is_empty());
    let fresh = WriteTree::new(*root);
    assert_eq!(fresh.len(), model.len() as u64);
    for (k, v) in model {
        assert_eq!(get(mem, root, k).unwrap().as_ref(), Some(v));
        assert_eq!(fresh.get(mem, k).unwrap().as_ref(), Some(v));
        let mut absent = k.clone();
        absent.push(0);
        if !model.contains_key(&absent) {
            assert_eq!(get(mem, root, &absent).unwrap(), None);
        }
    }
    let all = (Bound::Unbounded, Bound::Unbounded);
    check_range(range(mem, root, ..), model, &all, &[]);
    check_range(fresh.range(mem, ..), model, &all, &[false; 3]);
    let forward: Vec<_> = model.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    let backward: Vec<_> = range(mem, root, ..).rev().map(|r| r.unwrap()).collect();
    assert!(backward.iter().eq(forward.iter().rev()));
}

fn key_strategy() -> impl Strategy<Value = Vec<u8>> {
    let prefixes: Vec<&'static [u8]> = vec![b"", b"k", b"key/", b"key/shared/prefix/0123456789/"];
    let byte = prop_oneof![Just(0u8), Just(b'a'), Just(b'b'), Just(0xff), any::<u8>()];
    (prop::sample::select(prefixes), prop::collection::vec(byte, 0..12)).prop_map(|(p, s)| {
        let mut key = p.to_vec();
        key.extend(s);
        key.truncate(40);
        key
    })
}

fn bound_strategy() -> impl Strategy<Value = Bound<Vec<u8>>> {
    prop_oneof![
        Just(Bound::Unbounded),
        key_strategy().prop_map(Bound::Included),
        key_strategy().prop_map(Bound::Excluded),
    ]
}

#[derive(Debug, Clone)]
enum Op {
    Insert(Vec<u8>, usize, u8),
    /// Inserts `count` keys `prefix ++ i (u16 BE)` with small values: grows deep trees.
    Bulk(u8, u16),
    Remove(Vec<u8>),
    /// Removes every key within the bounds: empties leaves, collapses branches.
    RemoveRange(Bounds),
    Get(Vec<u8>),
    Range(Bounds, Vec<bool>),
    Commit,
    Abort,
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let len = prop_oneof![4 => 0..40usize, 2 => 0..1200usize, 1 => 0..6000usize];
    let bounds = || (bound_strategy(), bound_strategy());
    prop_oneof![
        30 => (key_strategy(), len, any::<u8>()).prop_map(|(k, l, s)| Op::Insert(k, l, s)),
        2 => (any::<u8>(), 0..400u16).prop_map(|(p, n)| Op::Bulk(p, n)),
        10 => key_strategy().prop_map(Op::Remove),
        2 => bounds().prop_map(Op::RemoveRange),
        8 => key_strategy().prop_map(Op::Get),
        6 => (bounds(), prop::collection::vec(any::<bool>(), 0..12)).prop_map(|(b, p)| Op::Range(b, p)),
        4 => Just(Op::Commit),
        1 => Just(Op::Abort),
    ]
}

fn run_model(page_size: usize, ops: Vec<Op>) {
    run_model_in(&Mem::new(page_size), ops);
}

fn run_model_in(mem: &Mem, ops: Vec<Op>) {
    let mut committed = TreeRoot::default();
    let mut committed_model = Model::new();
    let mut tree = WriteTree::new(committed);
    let mut model = Model::new();
    for op in ops.into_iter().chain([Op::Commit]) {
        match op {
            Op::Insert(k, len, seed) => {
                let v = value_bytes(len, seed);
                assert_eq!(tree.insert(mem, &k, &v).unwrap(), model.insert(k, v));
            }
            Op::Bulk(prefix, count) => {
                for i in 0..count {
                    let k = [&[prefix][..], &i.to_be_bytes()].concat();
                    let v = value_bytes(usize::from(i % 50), prefix);
                    assert_eq!(tree.insert(mem, &k, &v).unwrap(), model.insert(k, v));
                }
            }
            Op::Remove(k) => assert_eq!(tree.remove(mem, &k).unwrap(), model.remove(&k)),
            Op::RemoveRange((start, end)) => {
                let keys: Vec<Vec<u8>> = model
                    .keys()
                    .filter(|k| in_bounds(k, &start, &end))
                    .cloned()
                    .collect();
                for k in keys {
                    assert_eq!(tree.remove(mem, &k).unwrap(), model.remove(&k));
                }
            }
            Op::Get(k) => assert_eq!(tree.get(mem, &k).unwrap(), model.get(&k).cloned()),
            Op::Range(bounds, pattern) => {
                let borrowed = (
                    bounds.0.as_ref().map(Vec::as_slice),
                    bounds.1.as_ref().map(Vec::as_slice),
                );
                check_range(tree.range(mem, borrowed), &model, &bounds, &pattern);
            }
            Op::Commit => {
                committed = commit(mem, tree, committed);
                committed_model = model.clone();
                check_committed(mem, &committed, &model);
                tree = WriteTree::new(committed);
            }
            Op::Abort => {
                tree = WriteTree::new(committed);
                model = committed_model.clone();
            }
        }
        assert_eq!(tree.len(), model.len() as u64);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn model_512(ops in prop::collection::vec(op_strategy(), 1..120)) {
        run_model(512, ops);
    }

    #[test]
    fn model_4096(ops in prop::collection::vec(op_strategy(), 1..120)) {
        run_model(4096, ops);
    }

    /// The same with lookups through indexed nodes: keys with zero and 0xff bytes, keys that
    /// are prefixes of others and keys sharing their first 8 bytes or more exercise the
    /// search's prefix comparison and its fallback to whole keys.
    #[test]
    fn model_512_indexed(ops in prop::collection::vec(op_strategy(), 1..120)) {
        run_model_in(&Mem::indexed(512), ops);
    }

    #[test]
    fn model_4096_indexed(ops in prop::collection::vec(op_strategy(), 1..120)) {
        run_model_in(&Mem::indexed(4096), ops);
    }
}

/// A change for [`append_path_builds_what_descents_build`].
#[derive(Debug, Clone)]
enum EdgeOp {
    /// `count` keys past every key so far (`0xff 0xff` then a counter), values of `len`.
    Append(u16, usize),
    Insert(Vec<u8>, usize),
    Remove(Vec<u8>),
    /// Removes `count` appended keys from `at`/256 of the way along those appended so far:
    /// empties leaves on the right edge or beside it, and collapses branches.
    RemoveAppended(u8, u16),
    /// Sets the appended key `at`/256 of the way along, or the last one with 255, again (an
    /// overwrite, which must not take the append path), with a value of `len`.
    ResetAppended(u8, usize),
    Commit,
}

fn edge_op_strategy() -> impl Strategy<Value = EdgeOp> {
    let len = prop_oneof![4 => 0..40usize, 4 => 900..1100usize, 1 => 0..6000usize];
    prop_oneof![
        6 => (1..80u16, len.clone()).prop_map(|(n, l)| EdgeOp::Append(n, l)),
        3 => (key_strategy(), len).prop_map(|(k, l)| EdgeOp::Insert(k, l)),
        2 => key_strategy().prop_map(EdgeOp::Remove),
        2 => (any::<u8>(), 1..200u16).prop_map(|(at, n)| EdgeOp::RemoveAppended(at, n)),
        2 => (prop_oneof![Just(255u8), any::<u8>()], 0..1100usize).prop_map(|(at, l)| EdgeOp::ResetAppended(at, l)),
        1 => Just(EdgeOp::Commit),
    ]
}

/// [`InsertBuffers`] that count what inserts ask for; with `images` false, the buffers for
/// leaf images have no room, so every value is copied and every leaf encoded at commit.
#[derive(Debug, Default)]
struct CountingBuffers {
    images: bool,
    copies: usize,
    leaf_buffers: usize,
}

impl CountingBuffers {
    fn new(images: bool) -> CountingBuffers {
        CountingBuffers {
            images,
            ..CountingBuffers::default()
        }
    }
}

impl InsertBuffers for CountingBuffers {
    fn copy_of(&mut self, value: &[u8]) -> Vec<u8> {
        self.copies += 1;
        value.to_vec()
    }

    fn leaf_buffer(&mut self, len: usize) -> Vec<u8> {
        self.leaf_buffers += 1;
        Vec::with_capacity(if self.images { len } else { 0 })
    }
}

/// Every insert's and remove's result, and the pages each commit wrote.
type EdgeRun = (Vec<Option<Vec<u8>>>, Vec<Vec<(PageId, Bytes)>>);

/// Runs `ops` on a tree; with `descend_always` every insert forgets the kept right edge
/// first; without `images` no leaf image has room for an entry.
fn run_edge_ops(page_size: usize, ops: &[EdgeOp], descend_always: bool, images: bool) -> EdgeRun {
    let mem = Mem::new(page_size);
    let mut root = TreeRoot::default();
    let mut tree = WriteTree::new(root);
    let (mut results, mut commits) = (Vec::new(), Vec::new());
    let mut next = 0u32;
    let mut bufs = CountingBuffers::new(images);
    // What the tree must hold: every commit is checked against it, so that the appends of
    // a later transaction past a sealed leaf are checked as well as compared.
    let model = RefCell::new(Model::new());
    let mut put = |tree: &mut WriteTree, key: &[u8], len: usize| {
        if descend_always {
            tree.forget_right_edge();
        }
        let value = value_bytes(len, key.len() as u8);
        let old = tree.insert_with(&mem, key, &value, &mut bufs).unwrap();
        assert_eq!(old, model.borrow_mut().insert(key.to_vec(), value));
        old
    };
    let remove = |tree: &mut WriteTree, key: &[u8]| {
        let old = tree.remove(&mem, key).unwrap();
        assert_eq!(old, model.borrow_mut().remove(key));
        old
    };
    for op in ops.iter().chain([&EdgeOp::Commit]) {
        match op {
            EdgeOp::Append(count, len) => {
                for _ in 0..*count {
                    let key = [&[0xff, 0xff][..], &next.to_be_bytes()].concat();
                    next += 1;
                    results.push(put(&mut tree, &key, *len));
                }
            }
            EdgeOp::Insert(key, len) => results.push(put(&mut tree, key, *len)),
            EdgeOp::Remove(key) => results.push(remove(&mut tree, key)),
            EdgeOp::RemoveAppended(at, count) => {
                let start = (u64::from(next) * u64::from(*at) / 256) as u32;
                for i in start..(start + u32::from(*count)).min(next) {
                    let key = [&[0xff, 0xff][..], &i.to_be_bytes()].concat();
                    results.push(remove(&mut tree, &key));
                }
            }
            EdgeOp::ResetAppended(at, len) => {
                if let Some(last) = next.checked_sub(1) {
                    let i = if *at == 255 {
                        last
                    } else {
                        (u64::from(next) * u64::from(*at) / 256) as u32
                    };
                    let key = [&[0xff, 0xff][..], &i.to_be_bytes()].concat();
                    results.push(put(&mut tree, &key, *len));
                }
            }
            EdgeOp::Commit => {
                let done = std::mem::replace(&mut tree, WriteTree::new(root));
                root = commit(&mem, done, root);
                check_committed(&mem, &root, &model.borrow());
                let mut written: Vec<(PageId, Bytes)> = expand(&mem.written.borrow())
                    .into_iter()
                    .map(|p| (p, mem.pages.borrow()[&p].clone()))
                    .collect();
                written.sort();
                commits.push(written);
                tree = WriteTree::new(root);
            }
        }
    }
    (results, commits)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Inserts past the end of a kept right edge skip the descent; the tree they build,
    /// page for page, and every result, are those of descending for every insert. And the
    /// pages written from leaf images are those that encoding the leaves at commit writes.
    /// Every commit holds what a `BTreeMap` model of the operations holds (appends in later
    /// transactions pass sealed leaves).
    #[test]
    fn append_path_builds_what_descents_build(
        ops in prop::collection::vec(edge_op_strategy(), 1..40),
        page_size in prop::sample::select(vec![512usize, 4096]),
    ) {
        let kept = run_edge_ops(page_size, &ops, false, true);
        let descended = run_edge_ops(page_size, &ops, true, true);
        let unimaged = run_edge_ops(page_size, &ops, false, false);
        prop_assert_eq!(&kept, &descended);
        prop_assert_eq!(kept, unimaged);
    }
}

/// A random valid node for a page of `page_size` bytes.
fn node_strategy(page_size: usize) -> impl Strategy<Value = Node> {
    let value = (
        prop_oneof![3 => 0..60usize, 1 => 0..3000usize],
        any::<u64>(),
        any::<u32>(),
    );
    // Leaves of up to MAX_LEAF_PAGES pages.
    let leaf = prop::collection::btree_map(key_strategy(), value, 1..80).prop_map(move |map| {
        let mut entries = Vec::new();
        for (key, (len, page, crc)) in map {
            let value = match Value::new(key.len(), value_bytes(len, 7), page_size) {
                Value::Pending(_) => Value::Overflow {
                    page: page >> 8,
                    len: len as u64,
                    crc,
                },
                inline => inline,
            };
            entries.push(Entry {
                key: key.into(),
                value,
            });
            if Node::Leaf(entries.clone()).encoded_len() > MAX_LEAF_PAGES * page_size {
                entries.pop();
                break;
            }
        }
        Node::Leaf(entries)
    });
    let ptr = (any::<u64>(), any::<u32>()).prop_map(|(page, crc)| Child::Clean(NodePtr { page, crc }));
    let branch = (
        prop::collection::btree_set(key_strategy(), 1..40),
        prop::collection::vec(ptr, 41),
    )
        .prop_map(move |(keys, children)| {
            let mut node = Node::Branch {
                keys: Vec::new(),
                children: vec![children[0]],
            };
            for (key, child) in keys.into_iter().zip(&children[1..]) {
                let Node::Branch { keys, children } = &mut node else {
                    unreachable!()
                };
                keys.push(key.into());
                children.push(*child);
                if node.encoded_len() > page_size {
                    let Node::Branch { keys, children } = &mut node else {
                        unreachable!()
                    };
                    keys.pop();
                    children.pop();
                    break;
                }
            }
            node
        });
    prop_oneof![leaf, branch]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Arbitrary bytes (with a plausible header, to get past it) never panic the decoder.
    #[test]
    fn decode_random_bytes(kind in 0u8..4, count in 0u16..50, mut bytes in prop::collection::vec(any::<u8>(), 512)) {
        bytes[0] = kind;
        bytes[1] = 0;
        bytes[2..4].copy_from_slice(&count.to_le_bytes());
        if let Ok(node) = Node::decode(3, &bytes, 512) {
            prop_assert_eq!(&node.encode(512)[..], &bytes[..]);
        }
    }

    /// A branch's page edited in place (separators inserted after children, pointers
    /// patched) is byte for byte the encoding of the branch changed the same way, its length
    /// kept; an insert that does not fit changes nothing; the patch refuses a dirty child or
    /// positions out of order.
    #[test]
    fn edited_branch_pages_are_their_encodings(
        (page_size, node) in prop_oneof![Just(512usize), Just(4096usize)].prop_flat_map(|ps| (Just(ps), node_strategy(ps))),
        inserts in prop::collection::vec((any::<prop::sample::Index>(), prop::collection::vec(key_strategy(), 0..4)), 1..4),
        repoint in prop::collection::vec((any::<prop::sample::Index>(), any::<u64>(), any::<u32>()), 0..6),
    ) {
        let Node::Branch { mut keys, mut children } = node else {
            return Ok(());
        };
        let mut image = BranchImage {
            page: Node::Branch { keys: keys.clone(), children: children.clone() }.encode(page_size),
            used: Node::Branch { keys: keys.clone(), children: children.clone() }.encoded_len(),
        };
        let mut new = Vec::new();
        for (at, seps) in inserts {
            let before = image.clone();
            let pos = at.index(children.len());
            let seps: Vec<Key> = seps.into_iter().map(Key::from).collect();
            let n = seps.len();
            let mut grown_keys = keys.clone();
            grown_keys.splice(pos..pos, seps.iter().cloned());
            let fits = Node::Branch { keys: grown_keys, children: vec![Child::Dirty(0); children.len() + n] }
                .encoded_len() <= page_size;
            prop_assert_eq!(insert_into_branch_image(&mut image, pos, &seps), fits);
            if !fits {
                prop_assert_eq!(&image, &before, "a refused insert changed the page");
                continue;
            }
            keys.splice(pos..pos, seps);
            children.splice(pos + 1..pos + 1, (0..n).map(Child::Dirty));
            for i in new.iter_mut().filter(|i| **i > pos) {
                *i += n;
            }
            new.extend(pos + 1..=pos + n);
        }
        prop_assert_eq!(image.used, Node::Branch { keys: keys.clone(), children: children.clone() }.encoded_len());
        // The new children are dirty until written: the patch refuses them.
        let mut changed = new.clone();
        changed.sort_unstable();
        if !changed.is_empty() {
            prop_assert!(!patch_branch_image(&mut image.page.clone(), &children, &changed));
        }
        for &i in &new {
            children[i] = Child::Clean(NodePtr { page: 1000 + i as u64, crc: i as u32 });
        }
        for (i, page, crc) in repoint {
            let i = i.index(children.len());
            children[i] = Child::Clean(NodePtr { page, crc });
            changed.push(i);
        }
        changed.sort_unstable();
        changed.dedup();
        if changed.len() > 1 {
            let reversed: Vec<usize> = changed.iter().rev().copied().collect();
            prop_assert!(!patch_branch_image(&mut image.page.clone(), &children, &reversed));
        }
        // Another count of children than the page's is refused, whatever the positions.
        prop_assert!(!patch_branch_image(&mut image.page.clone(), &children[..children.len() - 1], &[]));
        prop_assert!(patch_branch_image(&mut image.page, &children, &changed));
        let expected = Node::Branch { keys, children: children.clone() }.encode(page_size);
        prop_assert_eq!(&image.page[..], &expected[..]);
        // Patching no child leaves the page as it is.
        prop_assert!(patch_branch_image(&mut image.page, &children, &[]));
        prop_assert_eq!(&image.page[..], &expected[..]);
    }

    /// Arbitrary bytes and lengths never panic the in-place edits of a branch's page.
    #[test]
    fn branch_page_edits_never_panic(
        kind in 0u8..4,
        count in 0u16..60,
        mut bytes in prop::collection::vec(any::<u8>(), 0..600),
        used in 0usize..700,
        pos in 0usize..70,
        changed in prop::collection::vec(0usize..70, 0..5),
    ) {
        if bytes.len() >= 4 {
            bytes[0] = kind;
            bytes[2..4].copy_from_slice(&count.to_le_bytes());
        }
        let children = vec![Child::Clean(NodePtr { page: 1, crc: 2 }); usize::from(count) + 1];
        let mut image = BranchImage { page: bytes.into_boxed_slice(), used };
        let _ = insert_into_branch_image(&mut image, pos, &[Key::from_slice(b"sep")]);
        let _ = patch_branch_image(&mut image.page, &children, &changed);
    }

    /// Valid pages round-trip; mutated ones decode to an error or to a node that encodes
    /// back to exactly the mutated bytes (the format is canonical), never a panic.
    #[test]
    fn decode_mutated_pages(
        (page_size, node) in prop_oneof![Just(512usize), Just(4096usize)].prop_flat_map(|ps| (Just(ps), node_strategy(ps))),
        mutations in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..5),
    ) {
        let mut bytes = node.encode(page_size).into_vec();
        prop_assert_eq!(&Node::decode(9, &bytes, page_size).unwrap(), &node);
        // Decoding a read page, whose values stay in it, gives the same node, and that node
        // encodes to the same bytes.
        let read = PageRef::from(bytes.clone());
        let in_page = Node::decode_page(9, &read, page_size).unwrap();
        prop_assert_eq!(&in_page, &node);
        prop_assert_eq!(&in_page.encode(page_size)[..], &bytes[..]);
        for (at, byte) in mutations {
            let at = at.index(bytes.len());
            bytes[at] = byte;
        }
        let decoded = Node::decode(9, &bytes, page_size);
        match &decoded {
            Ok(node) => prop_assert_eq!(&node.encode(page_size)[..], &bytes[..]),
            Err(Error::Corruption { page: 9, .. }) => {}
            Err(e) => prop_assert!(false, "unexpected error {e}"),
        }
        // Indexing verifies as decoding does, and an index finds what the node holds.
        let ptr = NodePtr { page: 9, crc: 0 };
        match (NodeIndex::build(ptr, PageRef::from(bytes.clone()), page_size), decoded) {
            (Ok(index), Ok(node)) => check_index(&index, &node)?,
            (Err(Error::Corruption { page: 9, .. }), Err(_)) => {}
            (index, node) => prop_assert!(false, "index {:?} against decode {:?}", index.err(), node.err()),
        }
        // Nor do pages cut short (a short page may decode: the limits scale with its size).
        for cut in [0, 1, 3, 4, 5, bytes.len() / 3] {
            let _ = Node::decode(9, &bytes[..cut], page_size);
        }
    }
}

/// Every key of `node` and the keys around them lead where the decoded node says.
fn check_index(index: &NodeIndex, node: &Node) -> std::result::Result<(), TestCaseError> {
    let keys: Vec<&[u8]> = match node {
        Node::Leaf(entries) => entries.iter().map(|e| e.key.as_slice()).collect(),
        Node::Branch { keys, .. } => keys.iter().map(|k| k.as_slice()).collect(),
    };
    let mut probes: Vec<Vec<u8>> = vec![Vec::new(), vec![0xff; 20]];
    for &key in &keys {
        probes.push(key.to_vec());
        probes.push([key, &[0]].concat());
        probes.push(key[..key.len().saturating_sub(1)].to_vec());
    }
    // Every accessor a range uses, at every position, and one past the end.
    prop_assert_eq!(index.is_leaf(), matches!(node, Node::Leaf(_)));
    prop_assert_eq!(index.len(), keys.len());
    for (i, key) in keys.iter().enumerate() {
        prop_assert_eq!(index.key(i).unwrap(), *key);
    }
    prop_assert!(index.key(keys.len()).is_err());
    match node {
        Node::Leaf(entries) => {
            for (i, e) in entries.iter().enumerate() {
                let (key, value) = index.entry(i).unwrap();
                prop_assert_eq!(key, e.key.as_slice());
                prop_assert_eq!(Value::from(value), e.value.clone());
            }
            prop_assert!(index.entry(entries.len()).is_err());
        }
        Node::Branch { children, .. } => {
            for (i, child) in children.iter().enumerate() {
                prop_assert_eq!(Child::Clean(index.child(i).unwrap()), *child);
            }
            prop_assert!(index.child(children.len()).is_err());
        }
    }
    for probe in &probes {
        for or_equal in [false, true] {
            let want = keys.partition_point(|k| {
                if or_equal {
                    *k <= probe.as_slice()
                } else {
                    *k < probe.as_slice()
                }
            });
            prop_assert_eq!(index.rank(probe, or_equal).unwrap(), want);
        }
        match (index.step(probe).unwrap(), node) {
            (Step::Child(ptr), Node::Branch { keys, children }) => {
                prop_assert_eq!(Child::Clean(ptr), children[child_index(keys, probe)]);
            }
            (Step::Found(found), Node::Leaf(entries)) => {
                let want = search(entries, probe).ok().map(|i| entries[i].value.clone());
                prop_assert_eq!(found, want);
            }
            _ => prop_assert!(false, "a step of the wrong kind"),
        }
    }
    Ok(())
}

/// A committed tree of `n` keys, every seventh value overflowing.
fn build(mem: &Mem, n: u32) -> (TreeRoot, Model) {
    let mut tree = WriteTree::new(TreeRoot::default());
    let mut model = Model::new();
    for i in 0..n {
        let k = format!("key{:06}", i * 7919 % n).into_bytes();
        let len = if i % 7 == 0 {
            3 * mem.page_size
        } else {
            (i % 40) as usize
        };
        let v = value_bytes(len, i as u8);
        tree.insert(mem, &k, &v).unwrap();
        model.insert(k, v);
    }
    (commit(mem, tree, TreeRoot::default()), model)
}

fn is_corruption_of(result: &Result<impl std::fmt::Debug>, page: PageId) -> bool {
    matches!(result, Err(Error::Corruption { page: p, .. }) if *p == page)
}

#[test]
fn corrupted_pages_are_errors() {
    for page_size in [512, 4096] {
        let mem = Mem::new(page_size);
        let (root, model) = build(&mem, 300);
        let runs = reachable_runs(&mem, &root);
        let mut rng = SmallRng::seed_from_u64(1);
        for &(first, count) in &runs {
            let page = first + rng.gen_range(0..count);
            let at = [0, rng.gen_range(0..page_size), page_size - 1][rng.gen_range(0..3)];
            let mask = 1 << rng.gen_range(0..8);
            mem.flip(page, at, mask);
            // visit_pages names the node, or the first page of the overflow run.
            assert!(is_corruption_of(
                &visit_pages(&mem, &root, true, &mut |_, _| {}),
                first
            ));
            assert!(range(&mem, &root, ..).any(|r| is_corruption_of(&r, first)));
            assert!(range(&mem, &root, ..).rev().any(|r| is_corruption_of(&r, first)));
            // Ranges and lookups through an index refuse the page too: a node is checked
            // before it is indexed.
            let indexed = mem.indexed_copy();
            assert!(range(&indexed, &root, ..).any(|r| is_corruption_of(&r, first)));
            assert!(range(&indexed, &root, ..)
                .rev()
                .any(|r| is_corruption_of(&r, first)));
            let gets: Vec<_> = model.keys().map(|k| get(&indexed, &root, k)).collect();
            assert!(gets.iter().any(|r| is_corruption_of(r, first)));
            assert!(gets.iter().all(|r| r.is_ok() || is_corruption_of(r, first)));
            let gets: Vec<_> = model.keys().map(|k| get(&mem, &root, k)).collect();
            assert!(gets.iter().any(|r| is_corruption_of(r, first)));
            assert!(gets.iter().all(|r| r.is_ok() || is_corruption_of(r, first)));
            // Writes over a corrupt tree fail cleanly too.
            let mut tree = WriteTree::new(root);
            for k in model.keys() {
                let r = tree.insert(&mem, k, b"x");
                assert!(r.is_ok() || is_corruption_of(&r, first));
                let r = tree.remove(&mem, k);
                assert!(r.is_ok() || is_corruption_of(&r, first));
            }
            mem.flip(page, at, mask);
            assert!(visit_pages(&mem, &root, true, &mut |_, _| {}).is_ok());
        }
    }
}

#[test]
fn checksum_mismatch_is_reported() {
    let mem = Mem::new(512);
    let (root, _) = build(&mem, 50);
    let ptr = root.root.unwrap();
    mem.flip(ptr.page, 100, 0x10);
    match get(&mem, &root, b"key000001") {
        Err(Error::Corruption { page, what }) => {
            assert_eq!(page, ptr.page);
            assert_eq!(what, "checksum mismatch");
        }
        other => panic!("expected corruption, got {other:?}"),
    }
}

/// Through the read cache a node is checked once: the first read of a page from the file
/// checks it and marks it, later reads take it as known good. A page whose bytes fail is
/// cached unchecked, so every read of it is refused, not only the first.
#[test]
fn the_read_cache_checks_a_good_page_once_and_a_bad_one_every_time() {
    reads_check_a_good_page_once_and_a_bad_one_every_time(false);
}

/// The same with lookups through indexed nodes. A node indexed from its good bytes keeps
/// answering from them, with no read (the rot below is in the file only); once its entry is
/// gone, the rotted node fails its check at every lookup and is never indexed.
#[test]
fn indexed_lookups_check_a_good_page_once_and_a_bad_one_every_time() {
    reads_check_a_good_page_once_and_a_bad_one_every_time(true);
}

fn reads_check_a_good_page_once_and_a_bad_one_every_time(indexed: bool) {
    use std::sync::Arc;

    use flush::{Backend, MemBackend};
    use pagecache::{CacheOptions, PageCache};

    use crate::source::CacheSource;

    let ps = 512;
    let mem = Mem::new(ps);
    let (root, model) = build(&mem, 120);
    let end = mem.next.get() as usize * ps;
    let mut file = vec![0u8; end];
    for (&page, bytes) in mem.pages.borrow().iter() {
        let at = page as usize * ps;
        file[at..at + bytes.len()].copy_from_slice(bytes);
    }
    let backend = Arc::new(MemBackend::from_bytes(file));
    let options = CacheOptions::default().with_page_size(ps as u32);
    let cache = PageCache::new(backend.clone() as Arc<dyn Backend>, options).unwrap();
    let src = CacheSource {
        cache: Arc::clone(&cache),
        leaf_pages: MAX_LEAF_PAGES,
        held: None,
        index: indexed.then(|| Arc::new(IndexCache::new(1 << 20, ps as u32).unwrap())),
    };
    let built = || src.index.as_ref().map_or(0, |index| index.stats().built);
    let read_all = || -> Vec<Result<Option<Vec<u8>>>> { model.keys().map(|k| get(&src, &root, k)).collect() };

    let checks = || super::read::PAGES_CHECKED.with(|n| n.get());
    for (r, v) in read_all().iter().zip(model.values()) {
        assert_eq!(r.as_ref().unwrap().as_ref(), Some(v));
    }
    let first = cache.stats();
    assert!(first.checked_pages > 0 && first.misses > 0);
    let checked = checks();
    assert!(checked > 0);
    assert!(read_all().iter().all(|r| r.is_ok()));
    let second = cache.stats();
    assert_eq!(
        (second.misses, second.checked_pages),
        (first.misses, first.checked_pages),
        "the second pass read and marked nothing new"
    );
    assert_eq!(checks(), checked, "the second pass checked no checksum");
    let built_once = built();
    assert_eq!(built_once > 0, indexed);

    // Rot one leaf in the file and drop its cached pages: the next read brings it back.
    let (leaf, count) = reachable_runs(&mem, &root)
        .into_iter()
        .find(|&(page, count)| {
            let bytes = PageRef::from(mem.pages.borrow()[&page].clone());
            count == 1 && matches!(Node::decode_page(page, &bytes, ps), Ok(Node::Leaf(_)))
        })
        .expect("a tree of 120 keys has leaves");
    let at = leaf * ps as u64 + 40;
    let mut byte = [0u8; 1];
    backend.read_at(&mut byte, at).unwrap();
    backend.write_at(&[byte[0] ^ 0x08], at).unwrap();
    for i in 0..count {
        cache.invalidate((leaf + i) * ps as u64);
    }
    if let Some(index) = &src.index {
        let hits = index.stats().hits;
        assert!(
            read_all().iter().all(|r| r.is_ok()),
            "answered from the indexed bytes"
        );
        assert!(index.stats().hits > hits);
        index.forget(leaf, count);
    }
    let failing = |results: &[Result<Option<Vec<u8>>>]| -> Vec<usize> {
        results
            .iter()
            .enumerate()
            .filter_map(|(i, r)| r.is_err().then_some(i))
            .collect()
    };
    let bad = failing(&read_all());
    assert!(!bad.is_empty());
    let after_first = cache.stats();
    for pass in 0..2 {
        let before = checks();
        let results = read_all();
        assert_eq!(failing(&results), bad, "pass {pass}");
        assert!(results.iter().all(|r| r.is_ok() || is_corruption_of(r, leaf)));
        assert_eq!(
            checks() - before,
            bad.len() as u64,
            "pass {pass}: only the bad leaf"
        );
    }
    let later = cache.stats();
    assert_eq!(
        later.misses, after_first.misses,
        "the bad leaf was read from the cache"
    );
    assert_eq!(
        later.checked_pages, after_first.checked_pages,
        "and never marked good"
    );
    if let Some(index) = &src.index {
        // Each pass indexed nothing but tried the bad leaf once for each of its keys.
        assert_eq!(
            built(),
            built_once,
            "a node that fails its check is never indexed"
        );
        assert!(index.stats().hits > 0);
    }
}

#[test]
fn key_and_value_limits() {
    for page_size in [512, 4096] {
        let mem = Mem::new(page_size);
        let max = max_key_len(page_size);
        let mut tree = WriteTree::new(TreeRoot::default());
        match tree.insert(&mem, &vec![1; max + 1], b"v") {
            Err(Error::KeyTooLarge { len, max: m }) => assert_eq!((len, m), (max + 1, max)),
            other => panic!("expected KeyTooLarge, got {other:?}"),
        }
        // Max-size keys work with inline and overflow values, several to a page.
        let big = value_bytes(3 * page_size, 1);
        for i in 0..20u8 {
            let mut key = vec![i; max];
            key[max - 1] = 0;
            let value = if i % 2 == 0 { &big[..] } else { &b"small"[..] };
            tree.insert(&mem, &key, value).unwrap();
        }
        let root = commit(&mem, tree, TreeRoot::default());
        assert_eq!(root.len, 20);
        let mut key = vec![4; max];
        key[max - 1] = 0;
        assert_eq!(get(&mem, &root, &key).unwrap(), Some(big.clone()));
    }
    assert_eq!(max_key_len(4096), 1024);
    assert!(check_sizes(8, MAX_VALUE_LEN, 4096, MAX_VALUE_LEN).is_ok());
    assert!(matches!(
        check_sizes(8, MAX_VALUE_LEN + 1, 4096, MAX_VALUE_LEN),
        Err(Error::ValueTooLarge { len, max }) if len == MAX_VALUE_LEN + 1 && max == MAX_VALUE_LEN
    ));
    assert!(matches!(
        check_sizes(8, 101, 4096, 100),
        Err(Error::ValueTooLarge { len: 101, max: 100 })
    ));
}

/// The limits leave room, at every page size the page cache allows, for 2 separators and 3
/// children in a branch and 2 entries in a leaf, with lengths that fit the u16 fields.
#[test]
fn limits_leave_room() {
    let mut page_size = pagecache::MIN_PAGE_SIZE as usize;
    while page_size <= pagecache::MAX_PAGE_SIZE as usize {
        let max = max_key_len(page_size);
        let ptr = Child::Clean(NodePtr { page: 1, crc: 2 });
        let branch = Node::Branch {
            keys: vec![vec![1; max].into(), vec![2; max].into()],
            children: vec![ptr; 3],
        };
        assert!(branch.encoded_len() <= page_size, "branch at {page_size}");
        let overflow = |b| Entry {
            key: vec![b; max].into(),
            value: Value::Overflow {
                page: 1,
                len: 1 << 20,
                crc: 0,
            },
        };
        assert!(Node::Leaf(vec![overflow(1), overflow(2)]).encoded_len() <= page_size);
        assert!(2 * max_inline_entry(page_size) + 4 <= page_size);
        assert!(max_inline_entry(page_size) < 1 << 16 && max < 1 << 16);
        page_size *= 2;
    }
    // A 1 KiB value with an 8-byte key is inline at 4 KiB pages, three to a leaf.
    let mem = Mem::new(4096);
    let mut tree = WriteTree::new(TreeRoot::default());
    for i in 0..3u64 {
        tree.insert(&mem, &i.to_be_bytes(), &[7; 1024]).unwrap();
    }
    let root = commit(&mem, tree, TreeRoot::default());
    assert_eq!(reachable(&mem, &root).len(), 1);
    let mut tree = WriteTree::new(root);
    tree.insert(&mem, &3u64.to_be_bytes(), &[7; 1024]).unwrap();
    let root = commit(&mem, tree, root);
    assert_eq!(reachable(&mem, &root).len(), 3, "two leaves and a root");
}

/// The page count of every leaf reachable from `root`.
fn leaf_pages(mem: &Mem, root: &TreeRoot) -> Vec<u64> {
    leaf_runs(mem, root).into_iter().map(|(_, c)| c).collect()
}

/// The leaves of `root` in key order, each as its first page and its page count.
fn leaf_runs(mem: &Mem, root: &TreeRoot) -> Vec<(PageId, u64)> {
    let mut runs = Vec::new();
    visit_pages(mem, root, false, &mut |p, c| runs.push((p, c))).unwrap();
    runs.retain(|&(p, c)| {
        let bytes: Vec<u8> = (p..p + c).flat_map(|p| mem.read(p).unwrap().to_vec()).collect();
        matches!(Node::decode(p, &bytes, mem.page_size()), Ok(Node::Leaf(_)))
    });
    runs
}

#[test]
fn sequential_inserts_fill_leaves() {
    for txns in [1, 10] {
        let mem = Mem::new(4096);
        let mut root = TreeRoot::default();
        let per_txn = 10_000 / txns;
        for t in 0..txns {
            let mut tree = WriteTree::new(root);
            for i in 0..per_txn {
                let key = ((t * per_txn + i) as u64).to_be_bytes();
                tree.insert(&mem, &key, &value_bytes(1024, i as u8)).unwrap();
            }
            root = commit(&mem, tree, root);
        }
        // Appended leaves grow to MAX_LEAF_PAGES pages, 63 1,037-byte entries in sixteen
        // pages, and a transaction's last leaf is sealed once three quarters full: within
        // 1% of the pages the entries fill end to end (one page holds only three, three
        // quarters full; four pages fifteen, 95%).
        let leaves = leaf_pages(&mem, &root);
        let pages: u64 = leaves.iter().sum();
        let minimal = (10_000u64 * (3 + 8 + 2 + 1024)).div_ceil(4096);
        assert!(
            pages * 100 <= minimal * 101,
            "{pages} leaf pages for {minimal} minimal"
        );
        assert!(leaves.iter().all(|&c| c as usize <= MAX_LEAF_PAGES));
        // One commit allocates children before parents: its pages are one run, ending in
        // the root.
        if txns == 1 {
            let mut pages = Vec::from_iter(reachable(&mem, &root));
            pages.sort_unstable();
            assert!(pages.windows(2).all(|w| w[0] + 1 == w[1]), "{pages:?}");
            assert_eq!(pages.last().copied(), root.root.map(|r| r.page));
        }
    }
}

/// Values appended in key order are copied once, into the image of their leaf: only the
/// entry that does not fit its leaf's image gets a buffer of its own (and is copied again
/// into the next leaf's image, which it starts). The tree reads back whole, before and after
/// each commit.
#[test]
fn appended_values_are_copied_into_their_leaf_once() {
    let mem = Mem::new(4096);
    let mut root = TreeRoot::default();
    let mut model = Model::new();
    let mut bufs = CountingBuffers::new(true);
    let (txns, per_txn) = (10u64, 1000u64);
    for t in 0..txns {
        let mut tree = WriteTree::new(root);
        for i in 0..per_txn {
            let key = (t * per_txn + i).to_be_bytes().to_vec();
            let value = value_bytes(1024, i as u8);
            tree.insert_with(&mem, &key, &value, &mut bufs).unwrap();
            model.insert(key, value);
        }
        check_range(
            tree.range(&mem, ..),
            &model,
            &(Bound::Unbounded, Bound::Unbounded),
            &[],
        );
        root = commit(&mem, tree, root);
        check_committed(&mem, &root, &model);
    }
    let leaves = leaf_pages(&mem, &root).len();
    // One copy for the first entry of the tree, and one for each entry that split a leaf.
    assert!(
        bufs.copies <= leaves,
        "{} copies for {} values in {leaves} leaves",
        bufs.copies,
        txns * per_txn
    );
    // An image per leaf, and one per transaction for the leaf it starts appending to.
    assert!(bufs.leaf_buffers <= leaves + txns as usize, "{bufs:?}");
}

#[test]
fn unchanged_tree_commits_to_its_base() {
    let mem = Mem::new(512);
    let (root, model) = build(&mem, 100);
    let mut tree = WriteTree::new(root);
    assert!(tree.remove(&mem, b"absent").unwrap().is_none());
    assert_eq!(
        tree.get(&mem, b"key000003").unwrap(),
        model.get(&b"key000003"[..]).cloned()
    );
    assert_eq!(tree.range(&mem, ..).count(), 100);
    assert!(!tree.is_dirty());
    assert_eq!(commit(&mem, tree, root), root);
    let empty = WriteTree::new(TreeRoot::default());
    assert_eq!(commit(&mem, empty, TreeRoot::default()), TreeRoot::default());
}

#[test]
fn free_all_frees_every_page() {
    let mem = Mem::new(512);
    let (root, _) = build(&mem, 500);
    let mut tree = WriteTree::new(root);
    tree.insert(&mem, b"uncommitted", &[1; 2000]).unwrap();
    let freed = tree.free_all(&mem).unwrap();
    assert_eq!(expand(&freed), reachable(&mem, &root));
    assert_eq!(expand(&freed).len(), mem.pages.borrow().len());
}

#[test]
fn churn_100k_then_empty() {
    let mem = Mem::new(512);
    let mut rng = SmallRng::seed_from_u64(7);
    let mut keys: Vec<Vec<u8>> = (0..100_000u32)
        .map(|_| {
            let len = rng.gen_range(1..24);
            (0..len).map(|_| rng.gen_range(b'a'..b'k')).collect()
        })
        .collect();
    let mut root = TreeRoot::default();
    let mut model = Model::new();
    for chunk in keys.chunks(10_000) {
        let mut tree = WriteTree::new(root);
        for k in chunk {
            let len = if rng.gen_ratio(1, 50) {
                rng.gen_range(300..3000)
            } else {
                rng.gen_range(0..60)
            };
            let v = value_bytes(len, k[0]);
            assert_eq!(tree.insert(&mem, k, &v).unwrap(), model.insert(k.clone(), v));
        }
        root = commit(&mem, tree, root);
    }
    assert_eq!(root.len, model.len() as u64);
    check_committed(&mem, &root, &model);
    keys.sort();
    keys.dedup();
    // Remove in a random order.
    for i in (1..keys.len()).rev() {
        keys.swap(i, rng.gen_range(0..=i));
    }
    for chunk in keys.chunks(10_000) {
        let mut tree = WriteTree::new(root);
        for k in chunk {
            assert_eq!(tree.remove(&mem, k).unwrap(), model.remove(k));
        }
        root = commit(&mem, tree, root);
    }
    assert_eq!(root, TreeRoot::default());
    assert!(mem.pages.borrow().is_empty(), "every page written was freed");
}

/// `cargo test -p cf-store --release -- --ignored --nocapture insert_cost`
#[test]
#[ignore = "a timing measurement, run in release mode"]
fn insert_cost() {
    use std::time::Instant;
    let value = vec![0x5a; 1024];
    let mem = Mem::new(4096);
    let start = Instant::now();
    let mut tree = WriteTree::new(TreeRoot::default());
    for i in 0..100_000u64 {
        tree.insert(&mem, &i.to_be_bytes(), &value).unwrap();
    }
    let inserted = start.elapsed();
    let (root, _) = tree.commit(&mem, &mut Sink(&mem)).unwrap();
    let total = start.elapsed();
    let pages: u64 = mem.written.borrow().iter().map(|r| r.1).sum();
    println!(
        "one txn, 100k sequential 1 KiB inserts: {:?} inserting + {:?} commit = {:.0} ns/insert; {pages} pages written",
        inserted,
        total - inserted,
        total.as_nanos() as f64 / 1e5
    );
    let start = Instant::now();
    for i in 0..100_000u64 {
        assert!(get(&mem, &root, &i.to_be_bytes()).unwrap().is_some());
    }
    println!("100k gets: {:.0} ns/get", start.elapsed().as_nanos() as f64 / 1e5);
    let start = Instant::now();
    assert_eq!(range(&mem, &root, ..).count(), 100_000);
    println!(
        "full range: {:.0} ns/entry",
        start.elapsed().as_nanos() as f64 / 1e5
    );

    // The W1 shape: 100 transactions of 1,000 inserts, each committed.
    let mem = Mem::new(4096);
    let mut root = TreeRoot::default();
    let start = Instant::now();
    for t in 0..100u64 {
        let mut tree = WriteTree::new(root);
        for i in 0..1000 {
            tree.insert(&mem, &(t * 1000 + i).to_be_bytes(), &value).unwrap();
        }
        root = tree.commit(&mem, &mut Sink(&mem)).unwrap().0;
    }
    let pages: u64 = mem.written.borrow().iter().map(|r| r.1).sum();
    println!(
        "100 txns x 1000 sequential 1 KiB inserts: {:?} = {:.0} ns/insert; {pages} pages written",
        start.elapsed(),
        start.elapsed().as_nanos() as f64 / 1e5
    );
}

/// Commits one transaction that sets each key of `keys` (as u64) to a 1 KiB value.
fn put_all(mem: &Mem, root: TreeRoot, keys: impl IntoIterator<Item = u64>, seed: u8) -> TreeRoot {
    let mut tree = WriteTree::new(root);
    for k in keys {
        tree.insert(mem, &k.to_be_bytes(), &value_bytes(1024, seed))
            .unwrap();
    }
    commit(mem, tree, root)
}

/// Appends spread over many small transactions rewrite the one-page right edge: no leaf
/// grows past a page, since none is new in its transaction when the appends reach it.
#[test]
fn small_appending_transactions_keep_one_page_leaves() {
    let mem = Mem::new(4096);
    let mut root = TreeRoot::default();
    for t in 0..100u64 {
        root = put_all(&mem, root, [2 * t, 2 * t + 1], 1);
    }
    let leaves = leaf_pages(&mem, &root);
    assert_eq!(leaves.len(), 200usize.div_ceil(3));
    assert!(leaves.iter().all(|&c| c == 1), "{leaves:?}");
}

/// Keys in random order split leaves in halves and never grow them past a page, except at
/// most the rightmost one, which appends reach.
#[test]
fn random_inserts_keep_one_page_leaves() {
    let mem = Mem::new(4096);
    let mut rng = SmallRng::seed_from_u64(7);
    let keys: Vec<u64> = (0..3000).map(|_| rng.gen()).collect();
    let root = put_all(&mem, TreeRoot::default(), keys, 2);
    let leaves = leaf_pages(&mem, &root);
    assert!(leaves.len() > 1000, "{} leaves", leaves.len());
    assert!(leaves.iter().filter(|&&c| c > 1).count() <= 1, "{leaves:?}");
}

/// A leaf that grew by appends is cut into full one-page leaves on the first change that is
/// not an append, and keeps every entry.
#[test]
fn changing_a_grown_leaf_cuts_it_into_pages() {
    let mem = Mem::new(4096);
    // 63 entries of 1,037 bytes fill sixteen pages.
    let n = 63u64;
    let root = put_all(&mem, TreeRoot::default(), 0..n, 3);
    assert_eq!(
        leaf_pages(&mem, &root),
        vec![MAX_LEAF_PAGES as u64],
        "63 entries fill 16 pages"
    );
    assert_eq!(reachable(&mem, &root).len(), MAX_LEAF_PAGES);
    let root = put_all(&mem, root, [7], 4);
    assert_eq!(leaf_pages(&mem, &root), vec![1; 21], "three 1 KiB entries a page");
    assert_eq!(root.len, n);
    for k in 0..n {
        let want = value_bytes(1024, if k == 7 { 4 } else { 3 });
        assert_eq!(get(&mem, &root, &k.to_be_bytes()).unwrap(), Some(want));
    }
    // An append to the full one-page right edge in a later transaction splits it as before.
    let root = put_all(&mem, root, [n], 5);
    assert_eq!(leaf_pages(&mem, &root), vec![1; 22]);
}

/// A committed leaf longer than a page and at least three quarters full is sealed: appends
/// in a later transaction start a new leaf after it, and it keeps its pages, unwritten.
/// Whether it is the root (the parent is new) or under a branch (the branch takes the new
/// leaf), every entry reads back.
#[test]
fn appends_past_a_sealed_leaf_leave_it_unwritten() {
    // 12 entries of 1,037 bytes in four pages: 76% full. 70 entries: a full sixteen-page
    // leaf and a two-page one of seven (89% full).
    for first in [12u64, 70] {
        let mem = Mem::new(4096);
        let root = put_all(&mem, TreeRoot::default(), 0..first, 1);
        let before = leaf_runs(&mem, &root);
        let &sealed = before.last().unwrap();
        assert!(sealed.1 > 1, "{before:?}");
        let root = put_all(&mem, root, first..first + 5, 2);
        let written = expand(&mem.written.borrow());
        let after = leaf_runs(&mem, &root);
        assert!(after.contains(&sealed), "{first}: {before:?} -> {after:?}");
        assert!(
            (sealed.0..sealed.0 + sealed.1).all(|p| !written.contains(&p)),
            "{first}: the sealed leaf {sealed:?} was written again"
        );
        assert_eq!(after.len(), before.len() + 1, "{first}: one new leaf");
        assert_eq!(root.len, first + 5);
        for k in 0..first + 5 {
            let want = value_bytes(1024, if k < first { 1 } else { 2 });
            assert_eq!(
                get(&mem, &root, &k.to_be_bytes()).unwrap(),
                Some(want),
                "{first}: key {k}"
            );
        }
    }
}

/// A committed grown leaf under three quarters full is not sealed: a later transaction's
/// appends fill it further (rewriting it), so a run of commits that each append a little
/// over a page does not leave a trail of half-empty leaves.
#[test]
fn appends_fill_a_grown_leaf_that_is_not_sealed() {
    let mem = Mem::new(4096);
    // 5 entries: 5,189 bytes in two pages, 63% full.
    let root = put_all(&mem, TreeRoot::default(), 0..5, 1);
    assert_eq!(leaf_pages(&mem, &root), vec![2]);
    let root = put_all(&mem, root, 5..10, 2);
    assert_eq!(leaf_pages(&mem, &root), vec![3], "one leaf of ten entries");
    // Now 85% of three pages: sealed, so the next appends start a leaf.
    let root = put_all(&mem, root, 10..12, 3);
    assert_eq!(leaf_pages(&mem, &root), vec![3, 1]);
}

/// Long keys at 512-byte pages: cutting a grown leaf hands its parent several separators of
/// over 100 bytes at once, more than one split can absorb, so branches are cut into pieces
/// and the root grows. Every state matches the model, and `commit` checks the pages.
#[test]
fn cutting_grown_leaves_with_long_keys_keeps_the_model() {
    let mem = Mem::new(512);
    let key = |i: u64| [&[b'k'; 100][..], &i.to_be_bytes()].concat();
    let mut model = BTreeMap::new();
    let mut root = TreeRoot::default();
    let mut tree = WriteTree::new(root);
    for i in 0..3000u64 {
        let v = value_bytes(40, i as u8);
        tree.insert(&mem, &key(i * 2), &v).unwrap();
        model.insert(key(i * 2), v);
    }
    root = commit(&mem, tree, root);
    assert!(leaf_pages(&mem, &root)
        .iter()
        .any(|&c| c as usize == MAX_LEAF_PAGES));
    let mut rng = SmallRng::seed_from_u64(11);
    for round in 0..6u8 {
        let mut tree = WriteTree::new(root);
        for _ in 0..400 {
            let k = key(rng.gen_range(0..6000));
            let v = value_bytes(rng.gen_range(0..60), round);
            assert_eq!(tree.insert(&mem, &k, &v).unwrap(), model.insert(k, v));
        }
        root = commit(&mem, tree, root);
        assert_eq!(root.len, model.len() as u64);
        let all: Vec<(Vec<u8>, Vec<u8>)> = range(&mem, &root, ..).map(|e| e.unwrap()).collect();
        assert!(all.iter().eq(model
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<Vec<_>>()
            .iter()));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(500))]

    /// `split_into` cuts any over-full node (up to four pages of leaf entries, or a branch
    /// of up to three pages) into valid pieces that each fit a page and keep every entry,
    /// child and key in order.
    #[test]
    fn split_into_makes_valid_pieces_that_fit(
        is_leaf in any::<bool>(),
        lens in prop::collection::vec(1usize..=128, 3..200),
    ) {
        const PS: usize = 512;
        let key = |i: usize, len: usize| -> Vec<u8> {
            let mut k = vec![b'a'; len.saturating_sub(2)];
            k.splice(0..0, (i as u16).to_be_bytes());
            k
        };
        let mut node = if is_leaf {
            let mut entries = Vec::new();
            for (i, &len) in lens.iter().enumerate() {
                let value = Value::new(len, value_bytes(len, 1), PS);
                entries.push(Entry { key: key(i, len.max(2)).into(), value });
                if Node::Leaf(entries.clone()).encoded_len() > MAX_LEAF_PAGES * PS {
                    entries.pop();
                    break;
                }
            }
            Node::Leaf(entries)
        } else {
            let child = |i: usize| Child::Clean(NodePtr { page: i as u64, crc: 0 });
            let mut keys = Vec::new();
            let mut children = vec![child(0)];
            for (i, &len) in lens.iter().enumerate() {
                keys.push(key(i, len.max(2)).into());
                children.push(child(i + 1));
                if (Node::Branch { keys: keys.clone(), children: children.clone() }).encoded_len() > 3 * PS {
                    keys.pop();
                    children.pop();
                    break;
                }
            }
            Node::Branch { keys, children }
        };
        prop_assume!(node.encoded_len() > PS);
        let whole = node.clone();
        let pieces = node.split_into(PS);
        prop_assert!(!pieces.is_empty());
        let mut all = vec![node];
        let mut seps = Vec::new();
        for (sep, piece) in pieces {
            seps.push(sep);
            all.push(piece);
        }
        for piece in &all {
            prop_assert!(piece.encoded_len() <= PS, "piece of {} bytes", piece.encoded_len());
            match piece {
                Node::Leaf(entries) => prop_assert!(!entries.is_empty()),
                Node::Branch { keys, children } => {
                    prop_assert!(!keys.is_empty());
                    prop_assert_eq!(keys.len() + 1, children.len());
                }
            }
        }
        match whole {
            Node::Leaf(entries) => {
                let joined: Vec<Entry> = all.iter().flat_map(|n| match n {
                    Node::Leaf(e) => e.clone(),
                    Node::Branch { .. } => unreachable!(),
                }).collect();
                prop_assert_eq!(&joined, &entries);
                // Each separator lies between the pieces around it.
                for (i, sep) in seps.iter().enumerate() {
                    let (Node::Leaf(l), Node::Leaf(r)) = (&all[i], &all[i + 1]) else { unreachable!() };
                    prop_assert!(l.last().unwrap().key < *sep && *sep <= r[0].key);
                }
            }
            Node::Branch { keys, children } => {
                let mut joined_keys = Vec::new();
                let mut joined_children = Vec::new();
                for (i, n) in all.iter().enumerate() {
                    let Node::Branch { keys, children } = n else { unreachable!() };
                    if i > 0 {
                        joined_keys.push(seps[i - 1].clone());
                    }
                    joined_keys.extend(keys.iter().cloned());
                    joined_children.extend(children.iter().copied());
                }
                prop_assert_eq!(joined_keys, keys);
                prop_assert_eq!(joined_children, children);
            }
        }
    }
}

/// A page store that reuses freed single pages (picked across the free set) as soon as a commit frees
/// them, and fails a commit's writes on request: the page churn of a column family's space,
/// where a `BranchCache` must never hand back a branch its page no longer holds.
struct Reusing {
    page_size: usize,
    pages: RefCell<HashMap<PageId, Bytes>>,
    free: RefCell<BTreeSet<PageId>>,
    next: Cell<PageId>,
    /// Allocations of the commit being built, given back if it fails.
    allocated: RefCell<Vec<(PageId, u64)>>,
    /// Writes left before the sink fails (`None`: never).
    writes_left: Cell<Option<usize>>,
    branches: Option<RefCell<super::BranchCache>>,
    /// Branches taken from the cache.
    hits: Cell<usize>,
    /// Branches written by patching their kept pages.
    patched: Cell<usize>,
}

impl PageSource for Reusing {
    fn page_size(&self) -> usize {
        self.page_size
    }

    fn read(&self, page: PageId) -> Result<pagecache::PageRef> {
        read_stored(&self.pages, page)
    }

    fn take_branch(&self, ptr: NodePtr) -> Option<super::KeptBranch> {
        let kept = self.branches.as_ref()?.borrow_mut().take(ptr)?;
        self.hits.set(self.hits.get() + 1);
        Some(kept)
    }

    fn return_branch(&self, ptr: NodePtr, kept: super::KeptBranch) {
        if let Some(b) = &self.branches {
            b.borrow_mut().keep(ptr, kept);
        }
    }

    fn take_sealed_edge(&self, ptr: NodePtr) -> Option<super::Key> {
        self.branches.as_ref()?.borrow_mut().take_sealed_edge(ptr)
    }
}

impl PageSink for &Reusing {
    fn alloc(&mut self, count: u64) -> Result<PageId> {
        // A free page from all over the set, so that pages change roles (a branch's page
        // becomes a leaf's) as they would in a long-lived file.
        let reused = if count == 1 {
            let mut free = self.free.borrow_mut();
            let turn = self.next.get() as usize + self.allocated.borrow().len();
            let pick = free
                .iter()
                .nth(turn.wrapping_mul(7919) % free.len().max(1))
                .copied();
            pick.inspect(|p| {
                free.remove(p);
            })
        } else {
            None
        };
        let first = reused.unwrap_or_else(|| {
            let first = self.next.get();
            self.next.set(first + count);
            first
        });
        self.allocated.borrow_mut().push((first, count));
        Ok(first)
    }

    fn write(&mut self, page: PageId, bytes: Box<[u8]>) -> Result<()> {
        if let Some(left) = self.writes_left.get() {
            if left == 0 {
                return Err(Error::Corruption {
                    page,
                    what: "a planted write failure".into(),
                });
            }
            self.writes_left.set(Some(left - 1));
        }
        let ps = self.page_size;
        if let Some(b) = &self.branches {
            b.borrow_mut().forget(page, (bytes.len() / ps) as u64);
        }
        let mut pages = self.pages.borrow_mut();
        for (i, chunk) in bytes.chunks(ps).enumerate() {
            pages.insert(page + i as u64, Bytes::copy_from_slice(chunk));
        }
        Ok(())
    }

    fn keep_branch(&mut self, ptr: NodePtr, kept: super::KeptBranch) {
        if let Some(b) = &self.branches {
            b.borrow_mut().keep(ptr, kept);
        }
    }

    fn keeps_branches(&self) -> bool {
        self.branches.as_ref().is_some_and(|b| b.borrow().keeps())
    }

    fn keep_sealed_edge(&mut self, edge: super::SealedEdge) {
        if let Some(b) = &self.branches {
            b.borrow_mut().keep_sealed_edge(edge);
        }
    }

    fn branch_patched(&mut self) {
        self.patched.set(self.patched.get() + 1);
    }
}

#[derive(Debug, Clone)]
enum ChurnOp {
    Insert(u16, usize),
    Remove(u16),
    /// Appends this many keys past every key so far (from 600 up), values of this length:
    /// leaves that grow, seal and are appended past.
    Append(u16, usize),
    /// Removes the last appended key.
    RemoveLast,
    /// Sets the last appended key again, to a value of this length.
    OverwriteLast(usize),
    Commit,
    /// Commit with the sink failing after this many writes; the tree stays at its base.
    FailedCommit(usize),
    /// Drop the transaction's changes.
    Abort,
}

fn churn_op_strategy() -> impl Strategy<Value = ChurnOp> {
    prop_oneof![
        12 => (0u16..600, 0usize..120).prop_map(|(k, len)| ChurnOp::Insert(k, len)),
        4 => (0u16..600).prop_map(ChurnOp::Remove),
        3 => (1u16..60, 0usize..120).prop_map(|(n, len)| ChurnOp::Append(n, len)),
        1 => Just(ChurnOp::RemoveLast),
        1 => (0usize..120).prop_map(ChurnOp::OverwriteLast),
        2 => Just(ChurnOp::Commit),
        2 => (0usize..40).prop_map(ChurnOp::FailedCommit),
        1 => Just(ChurnOp::Abort),
    ]
}

/// Every result, and the root pointer (page and crc32c, which covers every byte below it)
/// after every commit; with a branch cache of `capacity` or none.
type ChurnRun = (Vec<Option<Vec<u8>>>, Vec<Option<TreeRoot>>);

/// Keys of 40 bytes, so that 512-byte branches hold nine children and a few hundred keys
/// make trees of three and four levels.
fn churn_key(k: u16) -> Vec<u8> {
    let mut key = vec![b'k'; 38];
    key.extend(k.to_be_bytes());
    key
}

/// Runs `ops`; returns what they read and committed, the branches taken from the cache,
/// the branches written by patching their pages and the sealed edges appended past unread.
fn run_churn(ops: &[ChurnOp], capacity: Option<usize>) -> (ChurnRun, usize, usize, u64) {
    let store = Reusing {
        page_size: 512,
        pages: RefCell::default(),
        free: RefCell::default(),
        next: Cell::new(1),
        allocated: RefCell::default(),
        writes_left: Cell::new(None),
        branches: capacity.map(|c| RefCell::new(super::BranchCache::new(c))),
        hits: Cell::new(0),
        patched: Cell::new(0),
    };
    let mut root = TreeRoot::default();
    let mut tree = WriteTree::new(root);
    let (mut results, mut roots) = (Vec::new(), Vec::new());
    let mut next_append = 600u16;
    for op in ops.iter().chain([&ChurnOp::Commit]) {
        match op {
            ChurnOp::Insert(k, len) => {
                let key = churn_key(*k);
                let value = value_bytes(*len, *k as u8);
                results.push(tree.insert(&store, &key, &value).unwrap());
            }
            ChurnOp::Remove(k) => results.push(tree.remove(&store, &churn_key(*k)).unwrap()),
            ChurnOp::Append(n, len) => {
                for _ in 0..*n {
                    let value = value_bytes(*len, next_append as u8);
                    results.push(tree.insert(&store, &churn_key(next_append), &value).unwrap());
                    next_append += 1;
                }
            }
            ChurnOp::RemoveLast => {
                if next_append > 600 {
                    next_append -= 1;
                    results.push(tree.remove(&store, &churn_key(next_append)).unwrap());
                }
            }
            ChurnOp::OverwriteLast(len) => {
                let last = next_append - 1;
                let value = value_bytes(*len, last as u8 ^ 0x55);
                results.push(tree.insert(&store, &churn_key(last), &value).unwrap());
            }
            ChurnOp::Commit | ChurnOp::FailedCommit(_) => {
                let fail = match op {
                    ChurnOp::FailedCommit(after) => Some(*after),
                    _ => None,
                };
                store.writes_left.set(fail);
                store.allocated.borrow_mut().clear();
                let done = std::mem::replace(&mut tree, WriteTree::new(root));
                match done.commit(&store, &mut &store) {
                    Ok((new_root, freed)) => {
                        root = new_root;
                        // No readers here: what the commit freed is free at once.
                        store.free.borrow_mut().extend(expand(&freed));
                        roots.push(Some(root));
                    }
                    Err(_) => {
                        // Like the store's rollback: the commit's pages are free again.
                        let allocated = std::mem::take(&mut *store.allocated.borrow_mut());
                        store.free.borrow_mut().extend(expand(&allocated));
                        roots.push(None);
                    }
                }
                store.writes_left.set(None);
                tree = WriteTree::new(root);
            }
            ChurnOp::Abort => tree = WriteTree::new(root),
        }
    }
    for k in 0u16..next_append {
        results.push(get(&store, &root, &churn_key(k)).unwrap());
    }
    let edges = store.branches.as_ref().map_or(0, |b| b.borrow().edges_taken());
    ((results, roots), store.hits.get(), store.patched.get(), edges)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    /// Descents that take kept branches build, page for page, what descents that read and
    /// decode every branch build, through page reuse, failed commits and aborts, with the
    /// cache large or small enough to evict.
    #[test]
    fn kept_branches_build_what_decoded_pages_build(
        ops in prop::collection::vec(churn_op_strategy(), 1..400),
        capacity in prop::sample::select(vec![0usize, 1, 4, 256]),
    ) {
        let (plain, ..) = run_churn(&ops, None);
        let (cached, ..) = run_churn(&ops, Some(capacity));
        prop_assert_eq!(plain, cached);
    }
}

/// Removes that empty leaves and collapse branches, commit after commit, in key order both
/// ways and in shuffled orders: a branch left with one child gives its place in the parent
/// to that child, often a committed one, whose pointer the parent's kept page does not hold.
/// What the cache's patched branches build must be what decoded branches build (and, in
/// debug builds, every patched branch is checked against its encoding as it is written).
#[test]
fn patched_branches_follow_collapses() {
    let mut orders: Vec<Vec<u16>> = vec![(0..600).collect(), (0..600).rev().collect()];
    for seed in 0..8 {
        let mut keys: Vec<u16> = (0..600).collect();
        keys.shuffle(&mut SmallRng::seed_from_u64(seed));
        orders.push(keys);
    }
    for keys in orders {
        let mut ops: Vec<ChurnOp> = (0..600u16).map(|k| ChurnOp::Insert(k, 120)).collect();
        ops.push(ChurnOp::Commit);
        for chunk in keys.chunks(5) {
            ops.extend(chunk.iter().map(|&k| ChurnOp::Remove(k)));
            ops.push(ChurnOp::Commit);
        }
        let (cached, hits, patched, _) = run_churn(&ops, Some(256));
        assert!(hits > 40, "only {hits} branches taken from the cache");
        assert!(patched > 40, "only {patched} branches written by patches");
        assert_eq!(cached, run_churn(&ops, None).0, "removing in the order {keys:?}");
    }
}

/// The churn does reach the cache: commits keep branches and later descents take them.
#[test]
fn churn_takes_kept_branches() {
    let mut ops = Vec::new();
    for round in 0..20u16 {
        for i in 0..30u16 {
            ops.push(ChurnOp::Insert((i * 37 + round * 11) % 600, 40));
        }
        ops.push(ChurnOp::Commit);
    }
    let (cached, hits, patched, _) = run_churn(&ops, Some(256));
    assert!(hits >= 19, "only {hits} branches taken from the cache");
    assert!(patched >= 10, "only {patched} branches written by patches");
    assert_eq!(cached, run_churn(&ops, None).0);
}

/// Commits of appends go past the sealed edges their predecessors kept, without reading
/// them, and build, page for page, what reading them builds: through removes and
/// overwrites of the last key, inserts behind the edge, failed commits (whose kept edges
/// name pages given back) and aborts.
#[test]
fn churn_appends_past_kept_sealed_edges() {
    let mut ops = Vec::new();
    for round in 0..40u16 {
        ops.push(ChurnOp::Append(45, 100));
        match round % 8 {
            3 => ops.extend([ChurnOp::RemoveLast, ChurnOp::Insert(round * 13 % 600, 50)]),
            // The next transaction's first change is the edge's own last key.
            4 => ops.extend([ChurnOp::Commit, ChurnOp::OverwriteLast(30)]),
            5 => ops.push(ChurnOp::FailedCommit(2)),
            6 => ops.push(ChurnOp::Abort),
            _ => {}
        }
        ops.push(ChurnOp::Commit);
    }
    let (cached, _, _, edges) = run_churn(&ops, Some(256));
    assert!(edges >= 20, "only {edges} sealed edges appended past");
    let (plain, _, _, none) = run_churn(&ops, None);
    assert_eq!(none, 0);
    assert_eq!(cached, plain);
}
