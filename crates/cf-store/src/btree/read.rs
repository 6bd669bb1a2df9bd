//! Read side: verified page reads, lookups, double-ended ranges and page visits.
//!
//! Every function here works over a root `Child` and an arena of dirty nodes, so a
//! `WriteTree` reads its own uncommitted changes with the same code; a committed tree is the
//! case with an empty arena. Every page is verified against the crc32c in the pointer that
//! led to it, unless its bytes are known good (this process wrote them, or a read checked
//! them since they came from the file), and every overflow value against the crc32c in its
//! reference. Lookups and ranges search the committed nodes the source's
//! [`super::IndexCache`] keeps verified and indexed without reading or decoding them.

use std::borrow::Cow;
use std::cmp::Ordering::{Greater, Less};
use std::ops::ControlFlow::{Break, Continue};
use std::ops::{Bound, RangeBounds};
use std::sync::{Arc, OnceLock};

use pagecache::PageRef;

use super::index::{NodeIndex, Step};
use super::node::max_leaf_pages;
use super::node::{
    child_index, corrupt, overflow_pages, pages_of, parse, search, Child, Entry, Item, Node, Value, ValueRef,
};
use super::store::{NodePtr, PageId, PageSource, TreeRoot};
use crate::Result;

/// Reads the node `ptr` points to (its first page, and the pages its header says follow,
/// at most [`max_leaf_pages`] in all) and verifies it against the pointer's checksum. With
/// `replace`, the node is about to be copied and replaced ([`PageSource::read_run_to_replace`]).
fn read_page(src: &dyn PageSource, ptr: NodePtr, replace: bool) -> Result<PageRef> {
    let page_size = src.page_size();
    let first = if replace {
        src.read_run_to_replace(ptr.page, 1)?
    } else {
        src.read(ptr.page)?
    };
    if first.len() != page_size {
        return Err(corrupt(ptr.page, format!("page of {} bytes", first.len())));
    }
    let pages = pages_of(&first).unwrap_or(1);
    let bytes = if pages == 1 {
        first
    } else {
        if pages > max_leaf_pages(page_size) {
            return Err(corrupt(ptr.page, format!("node of {pages} pages")));
        }
        // The whole node, its first page again among it (a cache hit), so that a miss
        // costs one read of the run.
        let all = if replace {
            src.read_run_to_replace(ptr.page, pages)?
        } else {
            src.read_run(ptr.page, pages)?
        };
        if all.len() != pages * page_size {
            return Err(corrupt(ptr.page, format!("node of {} bytes", all.len())));
        }
        all
    };
    // Bytes this process wrote, or checked since it read them, are not checked again: the
    // checksums guard against what the file and the disk do to pages, not against this
    // process's own memory (ARCHITECTURE.md, "Pages are checked once").
    if !bytes.is_checked() {
        #[cfg(test)]
        PAGES_CHECKED.with(|n| n.set(n.get() + 1));
        if crate::checksum::crc32c(&bytes) != ptr.crc {
            return Err(corrupt(ptr.page, "checksum mismatch"));
        }
        src.mark_checked(ptr.page, &bytes);
    }
    Ok(bytes)
}

#[cfg(test)]
thread_local! {
    /// Nodes this thread's reads checked against their checksum (tests count the checks a
    /// known-good page spares).
    pub(crate) static PAGES_CHECKED: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// Reads, verifies and decodes the node `ptr` points to.
pub(crate) fn read_node(src: &dyn PageSource, ptr: NodePtr) -> Result<Node> {
    Node::decode_page(ptr.page, &read_page(src, ptr, false)?, src.page_size())
}

/// [`read_node`] of a node a write transaction's descent is about to copy and replace.
pub(crate) fn read_node_to_replace(src: &dyn PageSource, ptr: NodePtr) -> Result<Node> {
    Node::decode_page(ptr.page, &read_page(src, ptr, true)?, src.page_size())
}

/// A node by reference: borrowed from the arena if dirty, read from its page if clean.
fn load<'a>(src: &dyn PageSource, arena: &'a [Node], child: Child) -> Result<Cow<'a, Node>> {
    match child {
        Child::Clean(ptr) => read_node(src, ptr).map(Cow::Owned),
        Child::Dirty(i) => Ok(Cow::Borrowed(&arena[i])),
    }
}

/// A node on a range cursor's path: decoded (a write arena's node, or a committed one where
/// the source keeps no index), or a committed node searched in its verified bytes through
/// its [`NodeIndex`] (kept by the source's [`super::IndexCache`], as lookups use it), which
/// spares the cursor decoding every key and value of every node it passes.
enum Level<'a> {
    Decoded(Cow<'a, Node>),
    Indexed(Arc<NodeIndex>),
}

impl Level<'_> {
    /// The node `child` names: borrowed from the arena if dirty; if clean, indexed where the
    /// source keeps an index, else read and decoded.
    fn load<'a>(src: &dyn PageSource, arena: &'a [Node], child: Child) -> Result<Level<'a>> {
        match child {
            Child::Clean(ptr) if src.index_cache().is_some() => indexed(src, ptr).map(Level::Indexed),
            child => load(src, arena, child).map(Level::Decoded),
        }
    }

    fn is_leaf(&self) -> bool {
        match self {
            Level::Decoded(node) => matches!(**node, Node::Leaf(_)),
            Level::Indexed(index) => index.is_leaf(),
        }
    }

    /// A leaf's entries, or a branch's children.
    fn len(&self) -> usize {
        match self {
            Level::Decoded(node) => match &**node {
                Node::Leaf(entries) => entries.len(),
                Node::Branch { children, .. } => children.len(),
            },
            Level::Indexed(index) => index.len() + usize::from(!index.is_leaf()),
        }
    }

    /// How many keys (a leaf's entry keys, a branch's separators) are below `key`
    /// (`or_equal`: not above it).
    fn rank(&self, key: &[u8], or_equal: bool) -> Result<usize> {
        let below = |k: &[u8]| if or_equal { k <= key } else { k < key };
        match self {
            Level::Decoded(node) => Ok(match &**node {
                Node::Leaf(entries) => entries.partition_point(|e| below(&e.key)),
                Node::Branch { keys, .. } => keys.partition_point(|k| below(k)),
            }),
            Level::Indexed(index) => index.rank(key, or_equal),
        }
    }

    /// Child `i` of a branch.
    fn child(&self, i: usize) -> Result<Child> {
        match self {
            Level::Decoded(node) => match &**node {
                Node::Branch { children, .. } => Ok(children[i]),
                Node::Leaf(_) => unreachable!("cursors descend through branches only"),
            },
            Level::Indexed(index) => index.child(i).map(Child::Clean),
        }
    }

    /// The key of a leaf's entry `i`.
    fn key(&self, i: usize) -> Result<&[u8]> {
        match self {
            Level::Decoded(node) => Ok(&leaf_entries(node)[i].key),
            Level::Indexed(index) => index.key(i),
        }
    }

    /// A leaf's entry `i`, copied out (an entry of a leaf read for this cursor alone is given
    /// up instead: a value that refers to its page is copied out once, by `into_bytes`).
    fn entry(&mut self, src: &dyn PageSource, i: usize) -> Result<(Vec<u8>, Vec<u8>)> {
        let entry = match self {
            Level::Decoded(Cow::Owned(Node::Leaf(entries))) => {
                let entry = &mut entries[i];
                Entry {
                    key: std::mem::take(&mut entry.key),
                    value: std::mem::replace(&mut entry.value, Value::Pending(Vec::new())),
                }
            }
            Level::Decoded(node) => leaf_entries(node)[i].clone(),
            Level::Indexed(index) => {
                let (key, value) = index.entry(i)?;
                return match value {
                    ValueRef::Inline(value) => Ok((key.to_vec(), value.to_vec())),
                    overflow => Ok((key.to_vec(), read_value(src, &overflow.into())?)),
                };
            }
        };
        Ok((entry.key.into_vec(), into_bytes(src, entry.value)?))
    }
}

/// Streams the overflow run at `page` to `out` in page-sized pieces (the last one cut to
/// `len`), then checks the crc32c of the whole value.
fn scan_overflow(
    src: &dyn PageSource,
    page: PageId,
    len: u64,
    crc: u32,
    out: &mut dyn FnMut(&[u8]),
) -> Result<()> {
    let page_size = src.page_size();
    let (mut left, mut actual) = (len, crate::checksum::Crc32c::new());
    for p in page..page + overflow_pages(len, page_size) {
        let bytes = src.read(p)?;
        if bytes.len() != page_size {
            return Err(corrupt(p, format!("page of {} bytes", bytes.len())));
        }
        let piece = &bytes[..left.min(page_size as u64) as usize];
        actual.update(piece);
        out(piece);
        left -= piece.len() as u64;
    }
    if actual.finish() != crc {
        return Err(corrupt(page, "overflow value checksum mismatch"));
    }
    Ok(())
}

/// Deepest tree a valid file can hold (every branch has at least two children, and a file
/// has fewer than 2^64 pages). A deeper path means a forged cycle: corruption, not a loop.
const MAX_DEPTH: usize = 64;

fn too_deep(page: PageId) -> crate::Error {
    corrupt(page, format!("tree deeper than {MAX_DEPTH} levels (a cycle)"))
}

/// A value's bytes, reading (and verifying) its overflow run if it has one.
pub(crate) fn read_value(src: &dyn PageSource, value: &Value) -> Result<Vec<u8>> {
    match value {
        Value::Inline(v) => Ok(v.as_slice().to_vec()),
        Value::Pending(v) => Ok(v.clone()),
        &Value::Overflow { page, len, crc } => {
            // A corrupt length must not reserve memory before its pages are found.
            let mut out = Vec::with_capacity(len.min(1 << 20) as usize);
            scan_overflow(src, page, len, crc, &mut |piece| out.extend_from_slice(piece))?;
            Ok(out)
        }
    }
}

/// [`read_value`] of a value that is no longer needed.
fn into_bytes(src: &dyn PageSource, value: Value) -> Result<Vec<u8>> {
    match value {
        Value::Inline(v) => Ok(v.into_vec()),
        Value::Pending(v) => Ok(v),
        overflow => read_value(src, &overflow),
    }
}

/// The value of `key` in a committed tree.
pub(crate) fn get(src: &dyn PageSource, root: &TreeRoot, key: &[u8]) -> Result<Option<Vec<u8>>> {
    lookup(src, &[], root.root.map(Child::Clean), key)
}

/// The indexed nodes of a committed tree's top two levels, kept by a reader for as long as it
/// holds the tree's snapshot (which keeps them unchanged), so that its lookups start below
/// them without asking the shared [`super::IndexCache`]: every reader thread would otherwise
/// share those few entries (their shard locks and reference counts) at every lookup. These
/// nodes are kept outside the cache's byte bound: after the cache evicts them, a table still
/// holds up to the root's fan-out plus one (with 4 KiB pages and 8-byte keys, about 185
/// nodes of 6.3 KiB indexed, 1.2 MB) until it is dropped.
#[derive(Debug, Default)]
pub(crate) struct TopLevels {
    root: OnceLock<Arc<NodeIndex>>,
    /// One slot per child of a branch root, made at the second lookup (a table opened for
    /// one lookup does not pay for them).
    children: OnceLock<Box<[OnceLock<Arc<NodeIndex>>]>>,
}

/// The index kept in `slot`, or else the index of the node `ptr` points to, then kept there.
fn index_in_slot(
    src: &dyn PageSource,
    slot: &OnceLock<Arc<NodeIndex>>,
    ptr: NodePtr,
) -> Result<Arc<NodeIndex>> {
    if let Some(index) = slot.get() {
        return Ok(Arc::clone(index));
    }
    let index = indexed(src, ptr)?;
    Ok(Arc::clone(slot.get_or_init(|| index)))
}

/// [`get`] for a reader that keeps the tree's top levels in `top`.
pub(crate) fn get_with_top(
    src: &dyn PageSource,
    root: &TreeRoot,
    top: &TopLevels,
    key: &[u8],
) -> Result<Option<Vec<u8>>> {
    let Some(ptr) = root.root.filter(|_| src.index_cache().is_some()) else {
        return get(src, root, key);
    };
    let first = top.root.get().is_none();
    let root_index = index_in_slot(src, &top.root, ptr)?;
    let index = if root_index.is_leaf() || first {
        root_index
    } else {
        let i = root_index.rank(key, true)?;
        let slots = top
            .children
            .get_or_init(|| (0..=root_index.len()).map(|_| OnceLock::new()).collect());
        match slots.get(i) {
            Some(slot) => index_in_slot(src, slot, root_index.child(i)?)?,
            None => root_index,
        }
    };
    match index.step(key)? {
        Step::Child(next) => lookup(src, &[], Some(Child::Clean(next)), key),
        Step::Found(found) => found.map(|value| into_bytes(src, value)).transpose(),
    }
}

/// The value of `key` in the tree at `root` (whose dirty nodes are in `arena`).
pub(crate) fn lookup(
    src: &dyn PageSource,
    arena: &[Node],
    root: Option<Child>,
    key: &[u8],
) -> Result<Option<Vec<u8>>> {
    let Some(mut child) = root else {
        return Ok(None);
    };
    for _ in 0..=MAX_DEPTH {
        let (next, found) = match child {
            Child::Dirty(i) => match &arena[i] {
                Node::Branch { keys, children } => (Some(children[child_index(keys, key)]), None),
                Node::Leaf(entries) => (None, search(entries, key).ok().map(|i| entries[i].value.clone())),
            },
            // A committed node is searched in its page, without copying it: binary search
            // where the node is indexed, else a walk from its start.
            Child::Clean(ptr) if src.index_cache().is_some() => match indexed(src, ptr)?.step(key)? {
                Step::Child(next) => (Some(Child::Clean(next)), None),
                Step::Found(found) => (None, found),
            },
            Child::Clean(ptr) => {
                let (mut next, mut found) = (None, None);
                parse(
                    ptr.page,
                    &read_page(src, ptr, false)?,
                    src.page_size(),
                    |item| match item {
                        Item::Child(ptr) => {
                            next = Some(Child::Clean(ptr));
                            Continue(())
                        }
                        Item::Separator(sep) if sep <= key => Continue(()),
                        Item::Entry(k, _) if k < key => Continue(()),
                        Item::Entry(k, value) => {
                            found = (k == key).then(|| value.into());
                            Break(())
                        }
                        Item::Separator(_) => Break(()),
                    },
                )?;
                (next, found)
            }
        };
        match next {
            Some(next) => child = next,
            None => return found.map(|value| into_bytes(src, value)).transpose(),
        }
    }
    Err(too_deep(match child {
        Child::Clean(ptr) => ptr.page,
        Child::Dirty(_) => 0,
    }))
}

/// The index of the node `ptr` points to: kept by the source's [`super::IndexCache`], or
/// built (the node read, checked and parsed whole) and kept.
fn indexed(src: &dyn PageSource, ptr: NodePtr) -> Result<Arc<NodeIndex>> {
    let cache = src.index_cache();
    if let Some(index) = cache.and_then(|cache| cache.get(ptr)) {
        return Ok(index);
    }
    let bytes = read_page(src, ptr, false)?;
    let index = Arc::new(NodeIndex::build(ptr, bytes, src.page_size())?);
    if let Some(cache) = cache {
        cache.keep(Arc::clone(&index));
    }
    Ok(index)
}

/// The entries of a committed tree within `bounds`, in key order, read lazily.
pub(crate) fn range<'a>(
    src: &'a dyn PageSource,
    root: &TreeRoot,
    bounds: impl RangeBounds<[u8]>,
) -> Range<'a> {
    Range::new(src, &[], root.root.map(Child::Clean), bounds)
}

/// Calls `f(page, count)` for every page run reachable from `root`: each node (its pages)
/// and each overflow run. Node checksums are always verified (a node must be read to find
/// its children), overflow values only if `verify_overflow`.
pub(crate) fn visit_pages(
    src: &dyn PageSource,
    root: &TreeRoot,
    verify_overflow: bool,
    f: &mut dyn FnMut(PageId, u64),
) -> Result<()> {
    fn visit(
        src: &dyn PageSource,
        ptr: NodePtr,
        depth: usize,
        verify_overflow: bool,
        f: &mut dyn FnMut(PageId, u64),
    ) -> Result<()> {
        if depth > MAX_DEPTH {
            return Err(too_deep(ptr.page));
        }
        let node = read_node(src, ptr)?;
        f(ptr.page, node.pages(src.page_size()) as u64);
        match node {
            Node::Branch { children, .. } => {
                for child in children {
                    // Decoded nodes only hold clean children.
                    if let Child::Clean(child) = child {
                        visit(src, child, depth + 1, verify_overflow, f)?;
                    }
                }
            }
            Node::Leaf(entries) => {
                for entry in entries {
                    if let Value::Overflow { page, len, crc } = entry.value {
                        if verify_overflow {
                            scan_overflow(src, page, len, crc, &mut |_| {})?;
                        }
                        f(page, overflow_pages(len, src.page_size()));
                    }
                }
            }
        }
        Ok(())
    }
    match root.root {
        Some(ptr) => visit(src, ptr, 0, verify_overflow, f),
        None => Ok(()),
    }
}

/// One end of a [`Range`]: the path from the root to its current leaf entry, each level a
/// node and the index of the child (or, in the leaf, the entry) it is at.
#[derive(Default)]
struct Cursor<'a> {
    stack: Vec<(Level<'a>, usize)>,
    /// Whether the entry it is at has been yielded (so the other end must stop before it).
    yielded: bool,
}

impl Cursor<'_> {
    fn path(&self) -> impl Iterator<Item = usize> + '_ {
        self.stack.iter().map(|&(_, pos)| pos)
    }
}

/// A double-ended iterator over a tree's entries within bounds. It reads lazily, one leaf at
/// a time from each end (each end keeps its path from the root), and stops where the ends
/// meet. After an error it yields nothing more.
pub(crate) struct Range<'a> {
    src: &'a dyn PageSource,
    arena: &'a [Node],
    root: Option<Child>,
    start: Bound<Vec<u8>>,
    end: Bound<Vec<u8>>,
    front: Cursor<'a>,
    back: Cursor<'a>,
    done: bool,
}

impl std::fmt::Debug for Range<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Range")
            .field("start", &self.start)
            .field("end", &self.end)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}

impl<'a> Range<'a> {
    pub(crate) fn new(
        src: &'a dyn PageSource,
        arena: &'a [Node],
        root: Option<Child>,
        bounds: impl RangeBounds<[u8]>,
    ) -> Range<'a> {
        Range {
            src,
            arena,
            root,
            start: bounds.start_bound().map(<[u8]>::to_vec),
            end: bounds.end_bound().map(<[u8]>::to_vec),
            front: Cursor::default(),
            back: Cursor::default(),
            done: root.is_none(),
        }
    }

    /// Moves one end to its next candidate entry (the first within its own bound when it
    /// has not started); false when it ran off its end of the tree.
    fn advance(&mut self, forward: bool) -> Result<bool> {
        let (src, arena) = (self.src, self.arena);
        let cursor = if forward { &mut self.front } else { &mut self.back };
        if cursor.stack.is_empty() {
            let bound = if forward { &self.start } else { &self.end };
            let key = match bound {
                Bound::Included(k) | Bound::Excluded(k) => Some(k.as_slice()),
                Bound::Unbounded => None,
            };
            let mut child = self.root.expect("an empty range is done");
            loop {
                let level = Level::load(src, arena, child)?;
                // The back end starts one past its first candidate, then steps back.
                let (pos, next) = if level.is_leaf() {
                    let pos = match (bound, forward) {
                        (Bound::Unbounded, true) => 0,
                        (Bound::Unbounded, false) => level.len(),
                        (Bound::Included(k), true) | (Bound::Excluded(k), false) => level.rank(k, false)?,
                        (Bound::Excluded(k), true) | (Bound::Included(k), false) => level.rank(k, true)?,
                    };
                    (pos, None)
                } else {
                    let pos = match key {
                        Some(k) => level.rank(k, true)?,
                        None if forward => 0,
                        None => level.len() - 1,
                    };
                    (pos, Some(level.child(pos)?))
                };
                if cursor.stack.len() >= MAX_DEPTH {
                    return Err(too_deep(0));
                }
                cursor.stack.push((level, pos));
                match next {
                    Some(next) => child = next,
                    None => break,
                }
            }
            if forward {
                return step_forward(src, arena, cursor, false);
            }
        } else if forward {
            return step_forward(src, arena, cursor, true);
        }
        step_back(src, arena, cursor)
    }

    fn next_entry(&mut self, forward: bool) -> Result<Option<(Vec<u8>, Vec<u8>)>> {
        if !self.advance(forward)? {
            return Ok(None);
        }
        let (cursor, other) = if forward {
            (&mut self.front, &self.back)
        } else {
            (&mut self.back, &self.front)
        };
        if other.yielded && cursor.path().cmp(other.path()) != if forward { Less } else { Greater } {
            return Ok(None);
        }
        let (level, pos) = cursor.stack.last_mut().expect("a positioned cursor has a leaf");
        let pos = *pos;
        let key = level.key(pos)?;
        let in_bounds = if forward {
            match &self.end {
                Bound::Included(end) => key <= end.as_slice(),
                Bound::Excluded(end) => key < end.as_slice(),
                Bound::Unbounded => true,
            }
        } else {
            match &self.start {
                Bound::Included(start) => key >= start.as_slice(),
                Bound::Excluded(start) => key > start.as_slice(),
                Bound::Unbounded => true,
            }
        };
        if !in_bounds {
            return Ok(None);
        }
        cursor.yielded = true;
        level.entry(self.src, pos).map(Some)
    }

    fn finish(&mut self, forward: bool) -> Option<Result<(Vec<u8>, Vec<u8>)>> {
        if self.done {
            return None;
        }
        let item = self.next_entry(forward).transpose();
        self.done = !matches!(item, Some(Ok(_)));
        item
    }
}

/// Moves a front cursor to the next entry (`step`), or onto the first entry at or after
/// its position, reading the next leaf when it runs off this one.
fn step_forward<'a>(
    src: &dyn PageSource,
    arena: &'a [Node],
    cursor: &mut Cursor<'a>,
    step: bool,
) -> Result<bool> {
    let leaf = cursor.stack.last_mut().expect("cursor in a leaf");
    leaf.1 += usize::from(step);
    if leaf.1 < leaf.0.len() {
        return Ok(true);
    }
    next_leaf(src, arena, cursor, true)
}

/// Moves a back cursor one entry back, reading the previous leaf when it runs off this one.
fn step_back<'a>(src: &dyn PageSource, arena: &'a [Node], cursor: &mut Cursor<'a>) -> Result<bool> {
    let leaf = cursor.stack.last_mut().expect("cursor in a leaf");
    if leaf.1 > 0 {
        leaf.1 -= 1;
        return Ok(true);
    }
    next_leaf(src, arena, cursor, false)
}

fn leaf_entries(node: &Node) -> &[Entry] {
    match node {
        Node::Leaf(entries) => entries,
        Node::Branch { .. } => unreachable!("cursors stop at leaves"),
    }
}

/// Moves a cursor from its leaf to the first entry of the next leaf (`forward`) or the last
/// of the previous one; false when there is none.
fn next_leaf<'a>(
    src: &dyn PageSource,
    arena: &'a [Node],
    cursor: &mut Cursor<'a>,
    forward: bool,
) -> Result<bool> {
    cursor.stack.pop();
    let mut child = loop {
        let Some((level, pos)) = cursor.stack.last_mut() else {
            return Ok(false);
        };
        if forward && *pos + 1 < level.len() {
            *pos += 1;
            break level.child(*pos)?;
        }
        if !forward && *pos > 0 {
            *pos -= 1;
            break level.child(*pos)?;
        }
        cursor.stack.pop();
    };
    loop {
        let level = Level::load(src, arena, child)?;
        let pos = if forward { 0 } else { level.len() - 1 };
        let next = if level.is_leaf() {
            None
        } else {
            Some(level.child(pos)?)
        };
        if cursor.stack.len() >= MAX_DEPTH {
            return Err(too_deep(0));
        }
        cursor.stack.push((level, pos));
        match next {
            Some(next) => child = next,
            None => return Ok(true),
        }
    }
}

impl Iterator for Range<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;

    fn next(&mut self) -> Option<Self::Item> {
        self.finish(true)
    }
}

impl DoubleEndedIterator for Range<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.finish(false)
    }
}

impl std::iter::FusedIterator for Range<'_> {}
