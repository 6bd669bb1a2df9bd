//! Write side: `WriteTree`, one table being changed by a write transaction, and its commit.
//!
//! Changed nodes live decoded in an arena and get pages only at commit. Touching a clean
//! node copies it into the arena (copy-on-write) and records its page as freed; so does
//! replacing or removing a committed overflow value. Removes unlink empty leaves and
//! collapse branches left with one child, but never merge under-full nodes: merging costs
//! reads and writes of siblings on every remove, while deletes that leave a range sparse
//! are rare in this store's workloads, and the space comes back as the range is refilled
//! or emptied (an emptied leaf is freed at once).
//!
//! Leaf size: an insert at the end of the rightmost leaf may grow that leaf past one page,
//! up to [`max_leaf_pages`], when the leaf is new in this transaction or already longer than
//! a page; a full one splits with its left half full and a new one-entry leaf on its right.
//! A committed leaf longer than a page and at least three quarters full is sealed
//! ([`seals`]): an append past it starts a new leaf and leaves it unwritten.
//! Large values appended in key order thus fill their pages, while a transaction that appends
//! a few entries to a one-page leaf keeps rewriting one page. Any other insert into a leaf
//! longer than a page cuts it into one-page leaves, each as full as it can be, so random
//! writes after a load in key order rewrite one page each again (see the node module's
//! "Leaf size").
//!
//! Appends: after an insert at the right edge that split nothing, the tree keeps that path
//! (`right_edge`), and the next key past the end of its leaf goes there without a descent.
//! Any split or remove forgets it.
//!
//! Leaf images: an append to a leaf that may grow past a page encodes the entry straight
//! into that leaf's image, the page commit will write ([`super::image`]), so the value is
//! copied once; other inserts copy the value into a buffer of its own, encoded at commit.
//! Any other change to a leaf's imaged entries retires the image (kept, unread, until the
//! tree is done, since values may point into it), and a split keeps the image of its left
//! piece, the right pieces' values first copied out of it.

use std::ops::RangeBounds;

use smallvec::SmallVec;

use super::branches::{KeptBranch, SealedEdge};
use super::image::LeafImage;
use super::node::{
    check_sizes, child_index, max_leaf_pages, overflow_pages, search, separator, Child, Entry, Node,
};
use super::node::{
    entry_len, insert_into_branch_image, is_inline, patch_branch_image, BranchImage, InlineValue, Key, Value,
    HEADER_LEN, MAX_VALUE_LEN,
};
use super::read::{lookup, read_node_to_replace, read_value, visit_pages, Range};
use super::store::{FreshBuffers, InsertBuffers, NodePtr, PageId, PageSink, PageSource, TreeRoot};
use crate::Result;

/// Whether setting a key reads the value it replaces (`Table::insert`) or not
/// (`Table::put`): [`WriteTree::set`].
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum OldValue {
    Read,
    Skip,
}

/// How an insert's leaf splits when it is over its cap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LeafSplit {
    /// In two, balanced by bytes.
    Balanced,
    /// In two, the left as full as it can be (an append at the right edge).
    Append,
    /// Into one-page pieces, each as full as it can be (a grown leaf changed elsewhere).
    Pages,
}

/// A node on the path of an operation, before the operation decides to change it.
enum Loaded {
    Dirty(usize),
    /// A committed node, with the page it was written as when it is a branch the column
    /// family kept ([`KeptBranch`]).
    Clean(NodePtr, Node, Option<BranchImage>),
}

/// One level of a path: the node and the index of the child taken (0 in the leaf).
struct Step {
    node: Loaded,
    pos: usize,
}

/// Where a descent ends.
enum Descent {
    /// At the leaf that holds (or would hold) the key; and whether it is the rightmost.
    Leaf(Vec<Step>, bool),
    /// Above the rightmost leaf, a sealed one whose last key the column family kept
    /// ([`PageSource::take_sealed_edge`]) and the key is past: the branches down to its
    /// parent, its pointer and that last key. Only [`WriteTree::set`] asks for this.
    PastSealed(Vec<Step>, NodePtr, Key),
}

/// One table as a write transaction changes it. Reads see its own changes.
#[derive(Debug)]
pub(crate) struct WriteTree {
    base: TreeRoot,
    root: Option<Child>,
    /// Dirty nodes; `Child::Dirty(i)` is `arena[i]`. Unlinked nodes stay until commit.
    arena: Vec<Node>,
    /// `fresh[i]`: `arena[i]` was made by this transaction (a split's right half or a new
    /// root), not copied from a committed page.
    fresh: Vec<bool>,
    /// `lens[i]`: the encoded length of leaf `arena[i]` when known (kept by inserts, so an
    /// append into a grown leaf of hundreds of entries does not sum them all again). Every
    /// change to a leaf's entries must update or clear it: `write_node` sizes the leaf's
    /// pages from it, and encoding checks that size (a wrong one is a panic in commit).
    lens: Vec<Option<usize>>,
    len: u64,
    /// Runs of the base state this tree no longer references.
    freed: Vec<(PageId, u64)>,
    /// The path (arena node, child index) of the last change when that change was an
    /// insert at the right edge that split nothing, else empty. Every node on it is then
    /// dirty and the tree has not changed shape since, so it is still the rightmost path,
    /// and a key past the last one of its leaf goes there without a descent: the append
    /// path of inserts in key order (see [`WriteTree::insert_with`]).
    right_edge: Vec<(usize, usize)>,
    /// `images[i]`: the image of leaf `arena[i]`, holding its first entries encoded, when it
    /// has one ([`super::image`]).
    images: Vec<Option<LeafImage>>,
    /// Images no longer of use that entries may still point into, kept until the tree is
    /// dropped. Declared after `arena`, so that the entries go first.
    retired: Vec<LeafImage>,
    /// `branch_images[i]`: the page branch `arena[i]` was last written as (taken from a
    /// [`KeptBranch`]), edited as separators go in ([`WriteTree::insert_in_branch`]), so that
    /// it has the branch's separators and the pointer of every child that is not dirty. Its
    /// write copies it with the children written then patched in ([`patch_branch_image`])
    /// instead of encoding the branch. Any other change to a branch's separators, or a child
    /// pointed at another committed node, must drop it: [`WriteTree::branch_mut`] does, and
    /// [`WriteTree::children_mut`] (a child made dirty) leaves it.
    branch_images: Vec<Option<BranchImage>>,
    /// `branch_edits[i]`: how many times branch `arena[i]` took separators in this
    /// transaction (image or not); past [`MAX_BRANCH_IMAGE_EDITS`] its image is dropped and
    /// the branch encoded, and kept without one.
    branch_edits: Vec<u8>,
    /// Branch images dropped by changes, whose memory the next full encodings keep theirs in.
    spare_images: Vec<Box<[u8]>>,
    /// During commit, the rightmost leaf when it and every branch above it are dirty and the
    /// tree's leaves grow: if it is written sealed, its last key is kept for the next
    /// transaction's appends ([`SealedEdge`]).
    edge_leaf: Option<usize>,
}

impl WriteTree {
    /// Starts changing the committed tree `base`.
    pub(crate) fn new(base: TreeRoot) -> WriteTree {
        WriteTree {
            base,
            root: base.root.map(Child::Clean),
            arena: Vec::new(),
            fresh: Vec::new(),
            lens: Vec::new(),
            len: base.len,
            freed: Vec::new(),
            right_edge: Vec::new(),
            images: Vec::new(),
            retired: Vec::new(),
            branch_images: Vec::new(),
            branch_edits: Vec::new(),
            spare_images: Vec::new(),
            edge_leaf: None,
        }
    }

    /// Number of entries.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Whether the tree differs from its base (so a commit would write pages).
    pub(crate) fn is_dirty(&self) -> bool {
        self.root != self.base.root.map(Child::Clean)
    }

    /// The value of `key`.
    pub(crate) fn get(&self, src: &dyn PageSource, key: &[u8]) -> Result<Option<Vec<u8>>> {
        lookup(src, &self.arena, self.root, key)
    }

    /// The entries within `bounds`, including this transaction's changes.
    pub(crate) fn range<'a>(&'a self, src: &'a dyn PageSource, bounds: impl RangeBounds<[u8]>) -> Range<'a> {
        Range::new(src, &self.arena, self.root, bounds)
    }

    /// Sets `key` to `value`; returns the old value.
    pub(crate) fn insert(
        &mut self,
        src: &dyn PageSource,
        key: &[u8],
        value: &[u8],
    ) -> Result<Option<Vec<u8>>> {
        self.insert_with(src, key, value, &mut FreshBuffers)
    }

    /// [`WriteTree::insert`], the tree's memory for `value` (its copy, or a leaf image)
    /// from `bufs` once the sizes are checked.
    pub(crate) fn insert_with(
        &mut self,
        src: &dyn PageSource,
        key: &[u8],
        value: &[u8],
        bufs: &mut dyn InsertBuffers,
    ) -> Result<Option<Vec<u8>>> {
        Ok(self.set(src, key, value, bufs, OldValue::Read)?.1)
    }

    /// Sets `key` to `value`: whether it had a value, and that value when `want_old` asks
    /// for it. With [`OldValue::Skip`] the replaced value is neither copied nor, when it
    /// overflows, read from its pages.
    pub(crate) fn set(
        &mut self,
        src: &dyn PageSource,
        key: &[u8],
        value: &[u8],
        bufs: &mut dyn InsertBuffers,
        want_old: OldValue,
    ) -> Result<(bool, Option<Vec<u8>>)> {
        let page_size = src.page_size();
        check_sizes(key.len(), value.len(), page_size, MAX_VALUE_LEN)?;
        if self.root.is_none() {
            let entry = Entry {
                key: Key::from_slice(key),
                value: Value::new(key.len(), bufs.copy_of(value), page_size),
            };
            self.root = Some(Child::Dirty(self.push(Node::Leaf(vec![entry]), true)));
            self.len += 1;
            return Ok((false, None));
        }
        // A key past the end of the rightmost leaf of an unchanged right edge goes there
        // without a descent: the descent would take the last child at every branch (every
        // separator is at most the leaf's first key) and find no equal key in the leaf.
        // Appends in key order then compare one key per insert, not one per halving of
        // every node on the path.
        let edge = std::mem::take(&mut self.right_edge);
        let (path, found, old, rightmost) = match self.appends_to(&edge, key) {
            Some(at) => (edge, Err(at), None, true),
            None => {
                let (mut steps, rightmost) = match self.descend_with(src, key, true)? {
                    Descent::Leaf(steps, rightmost) => (steps, rightmost),
                    Descent::PastSealed(steps, sealed, last) => {
                        self.append_past_sealed(steps, sealed, &last, key, value, page_size, bufs);
                        return Ok((false, None));
                    }
                };
                let found = search(self.leaf_of(&steps), key);
                if rightmost && found == Err(self.leaf_of(&steps).len()) && seals(&steps, src) {
                    let Some(Step {
                        node: Loaded::Clean(sealed, Node::Leaf(entries), _),
                        ..
                    }) = steps.pop()
                    else {
                        unreachable!("only a clean leaf is sealed")
                    };
                    let last = &entries.last().expect("a committed leaf has entries").key;
                    self.append_past_sealed(steps, sealed, last, key, value, page_size, bufs);
                    return Ok((false, None));
                }
                let old = match (found, want_old) {
                    (Ok(i), OldValue::Read) => Some(read_value(src, &self.leaf_of(&steps)[i].value)?),
                    _ => None,
                };
                (self.adopt(steps, page_size), found, old, rightmost)
            }
        };
        let leaf = path[path.len() - 1].0;
        // The leaf's length is summed when first needed and then kept (`lens`): a grown
        // leaf holds hundreds of small entries.
        let before = self.lens[leaf].unwrap_or_else(|| self.arena[leaf].encoded_len());
        let grown = before > page_size;
        let fresh = self.fresh[leaf];
        let added = entry_len(key.len(), value.len(), page_size);
        let grow_cap = grow_cap(src);
        let (append, after) = match found {
            Ok(i) => {
                self.leaf_changed(leaf, i);
                let value = Value::new(key.len(), bufs.copy_of(value), page_size);
                let entries = self.leaf_mut(leaf);
                let removed = entries[i].encoded_len();
                let replaced = std::mem::replace(&mut entries[i].value, value);
                self.release(replaced, page_size);
                (false, before - removed + added)
            }
            Err(i) => {
                let append = rightmost && i == self.leaf_len(leaf);
                let growing = grown || fresh;
                let imaged = if append && growing && is_inline(key.len(), value.len(), page_size) {
                    self.append_to_image(leaf, grow_cap, key, value, bufs)
                } else {
                    None
                };
                let value = imaged.unwrap_or_else(|| {
                    self.leaf_changed(leaf, i);
                    Value::new(key.len(), bufs.copy_of(value), page_size)
                });
                let key = Key::from_slice(key);
                self.leaf_mut(leaf).insert(i, Entry { key, value });
                self.len += 1;
                (append, before + added)
            }
        };
        // How far the leaf may grow before it splits, and how it splits.
        let (cap, how) = match (append, grown || fresh) {
            (true, true) => (grow_cap, LeafSplit::Append),
            (true, false) => (page_size, LeafSplit::Append),
            // A grown leaf changed elsewhere than at its end is cut into one-page leaves.
            (false, _) if grown => (page_size, LeafSplit::Pages),
            (false, _) => (page_size, LeafSplit::Balanced),
        };
        self.lens[leaf] = Some(after);
        let split = self.split_up(&path, page_size, Some((after, cap, how)), bufs);
        if append && !split {
            self.right_edge = path;
        }
        Ok((found.is_ok(), old))
    }

    /// Inserts `key` and `value` in a new leaf after the sealed leaf `sealed`, whose parent
    /// `steps` ends in and whose last key is `last` (committed, rightmost, and `key` past
    /// `last`: see [`seals`]). The sealed leaf stays clean, its page and pointer as they
    /// were; the branches above it are copied and take the new leaf after it, splitting as
    /// they must. The new leaf is fresh, so the appends after it grow it.
    #[allow(clippy::too_many_arguments)]
    fn append_past_sealed(
        &mut self,
        steps: Vec<Step>,
        sealed: NodePtr,
        last: &[u8],
        key: &[u8],
        value: &[u8],
        page_size: usize,
        bufs: &mut dyn InsertBuffers,
    ) {
        let sep = separator(last, key);
        let entry = Entry {
            key: Key::from_slice(key),
            value: Value::new(key.len(), bufs.copy_of(value), page_size),
        };
        let leaf = self.push(Node::Leaf(vec![entry]), true);
        self.len += 1;
        let mut path = self.adopt(steps, page_size);
        let split = match path.last_mut() {
            None => {
                let root = self.push(
                    Node::Branch {
                        keys: vec![sep],
                        children: vec![Child::Clean(sealed), Child::Dirty(leaf)],
                    },
                    true,
                );
                self.root = Some(Child::Dirty(root));
                path.push((root, 1));
                false
            }
            Some((parent, pos)) => {
                let parent = *parent;
                *pos += 1;
                let last = self.children_mut(parent).len() - 1;
                self.insert_in_branch(parent, last, vec![sep], vec![Child::Dirty(leaf)]);
                self.split_up(&path, page_size, None, bufs)
            }
        };
        if !split {
            path.push((leaf, 0));
            self.right_edge = path;
        }
    }

    /// The entry of `key` and `value` (inline) appended to the image of leaf `leaf`, made
    /// with room for `cap` bytes if the leaf has none: its value as bytes of the image, or
    /// `None` when the image does not hold every entry of the leaf or has no room left.
    fn append_to_image(
        &mut self,
        leaf: usize,
        cap: usize,
        key: &[u8],
        value: &[u8],
        bufs: &mut dyn InsertBuffers,
    ) -> Option<Value> {
        if self.images[leaf].is_none() {
            let mut image = LeafImage::new(bufs.leaf_buffer(cap));
            let Node::Leaf(entries) = &self.arena[leaf] else {
                unreachable!("paths end in leaves")
            };
            // The entries so far, copied; an image that cannot hold them all holds a
            // prefix, and commit adds the rest if they fit by then.
            for entry in entries {
                if !image.push_entry(entry) {
                    break;
                }
            }
            self.images[leaf] = Some(image);
        }
        let len = self.leaf_len(leaf);
        let image = self.images[leaf].as_mut()?;
        if image.entries() != len {
            return None;
        }
        image
            .push_inline(key, value)
            .map(|bytes| Value::Inline(InlineValue::InImage(bytes)))
    }

    /// Records that entry `at` of leaf `leaf` is about to change (be replaced, removed, or
    /// get a new entry before it): an image holding it no longer matches the leaf and is
    /// retired.
    fn leaf_changed(&mut self, leaf: usize, at: usize) {
        if self.images[leaf]
            .as_ref()
            .is_some_and(|image| at < image.entries())
        {
            let image = self.images[leaf].take().expect("checked above");
            self.retired.push(image);
        }
    }

    fn leaf_len(&self, leaf: usize) -> usize {
        match &self.arena[leaf] {
            Node::Leaf(entries) => entries.len(),
            Node::Branch { .. } => unreachable!("paths end in leaves"),
        }
    }

    /// Where `key` goes in the leaf that `edge` (a kept [`WriteTree::right_edge`]) ends in,
    /// when it is past that leaf's last key; `None` when there is no edge or the key is not
    /// past it (the caller descends).
    fn appends_to(&self, edge: &[(usize, usize)], key: &[u8]) -> Option<usize> {
        let &(leaf, _) = edge.last()?;
        match &self.arena[leaf] {
            Node::Leaf(entries) => entries
                .last()
                .filter(|last| last.key.as_slice() < key)
                .map(|_| entries.len()),
            Node::Branch { .. } => None,
        }
    }

    /// Forgets the kept right edge, so that the next insert descends (tests compare the two
    /// ways).
    #[cfg(test)]
    pub(crate) fn forget_right_edge(&mut self) {
        self.right_edge.clear();
    }

    /// Removes `key`; returns its value. Changes nothing if the key is absent.
    pub(crate) fn remove(&mut self, src: &dyn PageSource, key: &[u8]) -> Result<Option<Vec<u8>>> {
        if self.root.is_none() {
            return Ok(None);
        }
        self.right_edge.clear();
        let (steps, _) = self.descend(src, key)?;
        let Ok(i) = search(self.leaf_of(&steps), key) else {
            // Nothing changes: the branches the descent took go back.
            for step in steps {
                if let Loaded::Clean(ptr, node @ Node::Branch { .. }, image) = step.node {
                    src.return_branch(ptr, KeptBranch { node, image });
                }
            }
            return Ok(None);
        };
        let old = read_value(src, &self.leaf_of(&steps)[i].value)?;
        let path = self.adopt(steps, src.page_size());
        let (leaf, _) = path[path.len() - 1];
        self.leaf_changed(leaf, i);
        let removed = self.leaf_mut(leaf).remove(i);
        self.lens[leaf] = None;
        self.release(removed.value, src.page_size());
        self.len -= 1;
        if !self.leaf_mut(leaf).is_empty() {
            return Ok(Some(old));
        }
        // Unlink the empty leaf; a branch left with one child gives way to that child.
        let Some(parent) = path.len().checked_sub(2) else {
            self.root = None;
            return Ok(Some(old));
        };
        let (branch, pos) = path[parent];
        let (keys, children) = self.branch_mut(branch);
        children.remove(pos);
        keys.remove(pos.saturating_sub(1));
        if let [only] = children[..] {
            match parent.checked_sub(1) {
                None => self.root = Some(only),
                Some(grandparent) => {
                    // A committed child may take the place: its pointer is not in the image.
                    let (branch, pos) = path[grandparent];
                    self.branch_mut(branch).1[pos] = only;
                }
            }
        }
        Ok(Some(old))
    }

    /// Writes the changed nodes and values to pages from `sink`, allocated in key order
    /// (children left to right, then the node; a leaf's overflow values before the leaf),
    /// each node encoded after its children so it can hold their checksums. Returns the new root and
    /// the page runs of the base state the new state no longer references, sorted and merged.
    pub(crate) fn commit(
        mut self,
        src: &dyn PageSource,
        sink: &mut dyn PageSink,
    ) -> Result<(TreeRoot, Vec<(PageId, u64)>)> {
        if !self.is_dirty() {
            return Ok((self.base, Vec::new()));
        }
        let page_size = src.page_size();
        self.edge_leaf = (grow_cap(src) > page_size)
            .then(|| self.rightmost_dirty_leaf())
            .flatten();
        let root = match self.root {
            None => None,
            Some(Child::Clean(ptr)) => Some(ptr),
            Some(Child::Dirty(i)) => Some(self.write_node(i, page_size, sink)?),
        };
        let root = TreeRoot { root, len: self.len };
        Ok((root, merge_runs(self.freed)))
    }

    /// Every page run of the base tree (for dropping the whole table), sorted and merged.
    pub(crate) fn free_all(self, src: &dyn PageSource) -> Result<Vec<(PageId, u64)>> {
        let mut runs = Vec::new();
        visit_pages(src, &self.base, false, &mut |page, count| {
            runs.push((page, count))
        })?;
        Ok(merge_runs(runs))
    }

    /// The rightmost leaf, when it and every branch above it are dirty.
    fn rightmost_dirty_leaf(&self) -> Option<usize> {
        let mut child = self.root?;
        loop {
            let Child::Dirty(i) = child else {
                return None;
            };
            match &self.arena[i] {
                Node::Leaf(_) => return Some(i),
                Node::Branch { children, .. } => child = *children.last()?,
            }
        }
    }

    fn push(&mut self, node: Node, fresh: bool) -> usize {
        if self.arena.capacity() == 0 {
            // Room for a small transaction's nodes at once, instead of each of the arena's
            // vectors growing four times (callgrind, ten inserts a transaction: 2.6% of the
            // instructions).
            self.reserve(ARENA_ROOM);
        }
        self.arena.push(node);
        self.fresh.push(fresh);
        self.lens.push(None);
        self.images.push(None);
        self.branch_images.push(None);
        self.branch_edits.push(0);
        self.arena.len() - 1
    }

    fn leaf_mut(&mut self, i: usize) -> &mut Vec<Entry> {
        match &mut self.arena[i] {
            Node::Leaf(entries) => entries,
            Node::Branch { .. } => unreachable!("paths end in leaves"),
        }
    }

    /// Room for `n` more nodes in the arena and its side vectors.
    fn reserve(&mut self, n: usize) {
        self.arena.reserve(n);
        self.fresh.reserve(n);
        self.lens.reserve(n);
        self.images.reserve(n);
        self.branch_images.reserve(n);
        self.branch_edits.reserve(n);
    }

    /// The separators and children of branch `arena[i]`, to change; drops its image, which
    /// would no longer have its separators.
    fn branch_mut(&mut self, i: usize) -> (&mut Vec<Key>, &mut Vec<Child>) {
        self.drop_branch_image(i);
        match &mut self.arena[i] {
            Node::Branch { keys, children } => (keys, children),
            Node::Leaf(_) => unreachable!("only the last node of a path is a leaf"),
        }
    }

    /// The children of branch `arena[i]`, to make dirty (not to add or remove: that changes the
    /// separators, see [`WriteTree::branch_mut`]; nor to point to another committed node,
    /// whose pointer the image lacks); keeps its image.
    fn children_mut(&mut self, i: usize) -> &mut [Child] {
        match &mut self.arena[i] {
            Node::Branch { children, .. } => children,
            Node::Leaf(_) => unreachable!("only the last node of a path is a leaf"),
        }
    }

    /// Inserts `seps` and `rights` (dirty: split pieces, new leaves) into branch `arena[i]`
    /// right after child `pos` (each separator before its child), in its image too when it
    /// has one.
    fn insert_in_branch(&mut self, i: usize, pos: usize, seps: Vec<Key>, rights: Vec<Child>) {
        let edits = &mut self.branch_edits[i];
        *edits = edits.saturating_add(1);
        let edited = match self.branch_images.get_mut(i) {
            Some(Some(image)) => {
                *edits <= MAX_BRANCH_IMAGE_EDITS
                    && rights.iter().all(|c| matches!(c, Child::Dirty(_)))
                    && insert_into_branch_image(image, pos, &seps)
            }
            _ => true,
        };
        if !edited {
            self.drop_branch_image(i);
        }
        let Node::Branch { keys, children } = &mut self.arena[i] else {
            unreachable!("only branches take separators")
        };
        match (<[Key; 1]>::try_from(seps), <[Child; 1]>::try_from(rights)) {
            (Ok([sep]), Ok([right])) => {
                keys.insert(pos, sep);
                children.insert(pos + 1, right);
            }
            (seps, rights) => {
                keys.splice(pos..pos, seps.map_or_else(|seps| seps, Vec::from));
                children.splice(pos + 1..pos + 1, rights.map_or_else(|rights| rights, Vec::from));
            }
        }
    }

    /// Drops the image of branch `arena[i]` (if any), keeping its memory for a later one.
    fn drop_branch_image(&mut self, i: usize) {
        if let Some(image) = self.branch_images.get_mut(i).and_then(Option::take) {
            self.spare_images.push(image.page);
        }
    }

    /// The entries of the leaf a path ends in.
    fn leaf_of<'s>(&'s self, steps: &'s [Step]) -> &'s [Entry] {
        let node = match &steps[steps.len() - 1].node {
            Loaded::Dirty(i) => &self.arena[*i],
            Loaded::Clean(_, node, _) => node,
        };
        match node {
            Node::Leaf(entries) => entries,
            Node::Branch { .. } => unreachable!("paths end in leaves"),
        }
    }

    /// The path from the root to the leaf that holds (or would hold) `key`, changing
    /// nothing; and whether it is the rightmost leaf. The tree must not be empty.
    fn descend(&self, src: &dyn PageSource, key: &[u8]) -> Result<(Vec<Step>, bool)> {
        match self.descend_with(src, key, false)? {
            Descent::Leaf(steps, rightmost) => Ok((steps, rightmost)),
            Descent::PastSealed(..) => unreachable!("not asked for"),
        }
    }

    /// [`WriteTree::descend`]; with `past_sealed`, a descent at the right edge that reaches
    /// a committed node the column family kept as a sealed edge, with `key` past its last
    /// key, stops above it ([`Descent::PastSealed`]) instead of reading it.
    fn descend_with(&self, src: &dyn PageSource, key: &[u8], past_sealed: bool) -> Result<Descent> {
        let mut steps = Vec::with_capacity(PATH_ROOM);
        let mut rightmost = true;
        let mut child = self.root.expect("descend into a non-empty tree");
        loop {
            let node = match child {
                Child::Dirty(i) => Loaded::Dirty(i),
                Child::Clean(ptr) => {
                    if past_sealed && rightmost {
                        // Taken out either way: a key not past it goes into that leaf,
                        // which is then rewritten.
                        if let Some(last) = src.take_sealed_edge(ptr) {
                            if last.as_slice() < key {
                                return Ok(Descent::PastSealed(steps, ptr, last));
                            }
                        }
                    }
                    match src.take_branch(ptr) {
                        Some(KeptBranch { node, image }) => Loaded::Clean(ptr, node, image),
                        None => Loaded::Clean(ptr, read_node_to_replace(src, ptr)?, None),
                    }
                }
            };
            let next = match &node {
                Loaded::Dirty(i) => &self.arena[*i],
                Loaded::Clean(_, node, _) => node,
            };
            let (pos, next) = match next {
                Node::Branch { keys, children } => {
                    let pos = child_index(keys, key);
                    rightmost &= pos == keys.len();
                    (pos, Some(children[pos]))
                }
                Node::Leaf(_) => (0, None),
            };
            steps.push(Step { node, pos });
            match next {
                Some(next) => child = next,
                None => return Ok(Descent::Leaf(steps, rightmost)),
            }
        }
    }

    /// Makes every node of a path dirty (copying clean ones into the arena, freeing their
    /// pages, relinking their parents); returns the path as (arena index, child index).
    fn adopt(&mut self, steps: Vec<Step>, page_size: usize) -> Vec<(usize, usize)> {
        let mut path: Vec<(usize, usize)> = Vec::with_capacity(steps.len());
        for step in steps {
            let i = match step.node {
                Loaded::Dirty(i) => i,
                Loaded::Clean(ptr, node, image) => {
                    self.freed.push((ptr.page, node.pages(page_size) as u64));
                    let i = self.push(node, false);
                    self.branch_images[i] = image;
                    match path.last() {
                        None => self.root = Some(Child::Dirty(i)),
                        Some(&(parent, pos)) => self.children_mut(parent)[pos] = Child::Dirty(i),
                    }
                    i
                }
            };
            path.push((i, step.pos));
        }
        path
    }

    /// Records the overflow run of a value no longer referenced, if it is committed.
    fn release(&mut self, value: Value, page_size: usize) {
        if let Value::Overflow { page, len, .. } = value {
            self.freed.push((page, overflow_pages(len, page_size)));
        }
    }

    /// Splits the nodes of a just-changed (dirty) path that overflow, bottom up, growing new
    /// roots while the root splits. `leaf` is, when the path ends in the leaf that changed,
    /// the leaf's encoded length, the most it may take and how it splits; `None` when the path
    /// ends in a branch that took a separator at its end. A branch splits when over a page,
    /// like the leaf's split (left full after an append, else balanced), or into as many
    /// pieces as it needs when it took more than one separator. Returns whether anything
    /// split.
    fn split_up(
        &mut self,
        path: &[(usize, usize)],
        page_size: usize,
        leaf: Option<(usize, usize, LeafSplit)>,
        bufs: &mut dyn InsertBuffers,
    ) -> bool {
        let append = leaf.is_none_or(|(_, _, how)| how == LeafSplit::Append);
        for level in (0..path.len()).rev() {
            let (node, _) = path[level];
            let bottom_leaf = leaf.filter(|_| level + 1 == path.len());
            let (len, cap) = match bottom_leaf {
                Some((len, cap, _)) => (len, cap),
                None => (self.arena[node].encoded_len(), page_size),
            };
            if len <= cap {
                return level + 1 < path.len();
            }
            let into_pages = matches!(bottom_leaf, Some((_, _, LeafSplit::Pages)));
            let pieces = self.split_node(node, cap, into_pages, append);
            if bottom_leaf.is_some() {
                self.leaf_split(node, &pieces, bufs);
            }
            self.lens[node] = None;
            match level.checked_sub(1) {
                None => self.grow_root(node, pieces, page_size),
                Some(parent) => {
                    let (parent, pos) = path[parent];
                    let (seps, rights): (Vec<Key>, Vec<Child>) = pieces.into_iter().unzip();
                    self.insert_in_branch(parent, pos, seps, rights);
                }
            }
        }
        true
    }

    /// Splits arena node `node` (over `cap` bytes): cut into full pieces when `into_pieces` or
    /// when no two-way split fits, else in two. Returns the new right pieces, each after its
    /// separator.
    fn split_node(&mut self, node: usize, cap: usize, into_pieces: bool, append: bool) -> Vec<(Key, Child)> {
        self.drop_branch_image(node);
        let split = if into_pieces {
            None
        } else {
            self.arena[node].split(cap, append).map(|piece| vec![piece])
        };
        let pieces = split.unwrap_or_else(|| self.arena[node].split_into(cap));
        pieces
            .into_iter()
            .map(|(sep, right)| (sep, Child::Dirty(self.push(right, true))))
            .collect()
    }

    /// After leaf `node` split into itself and `pieces`: the values of the pieces' entries
    /// get bytes of their own in place of bytes of an image (only the leaf they are in may
    /// point into its image), and the leaf's image keeps only the entries the leaf kept.
    fn leaf_split(&mut self, node: usize, pieces: &[(Key, Child)], bufs: &mut dyn InsertBuffers) {
        for (_, piece) in pieces {
            let &Child::Dirty(piece) = piece else {
                unreachable!("split pieces are dirty")
            };
            if let Node::Leaf(entries) = &mut self.arena[piece] {
                for entry in entries {
                    if let Value::Inline(v) = &mut entry.value {
                        v.own_image_bytes(&mut |bytes| bufs.copy_of(bytes));
                    }
                }
            }
        }
        let Node::Leaf(entries) = &self.arena[node] else {
            unreachable!("a leaf split keeps a leaf")
        };
        if let Some(image) = &mut self.images[node] {
            let kept = image.entries().min(entries.len());
            let len = HEADER_LEN + entries[..kept].iter().map(Entry::encoded_len).sum::<usize>();
            image.truncate(kept, len);
        }
    }

    /// Puts a new root above `node`, which split into `pieces`; while that root is over a
    /// page (many pieces of long separators), splits it and puts another above.
    fn grow_root(&mut self, node: usize, pieces: Vec<(Key, Child)>, page_size: usize) {
        let (mut top, mut pieces) = (node, pieces);
        loop {
            let (keys, rest): (Vec<Key>, Vec<Child>) = pieces.into_iter().unzip();
            let mut children = vec![Child::Dirty(top)];
            children.extend(rest);
            top = self.push(Node::Branch { keys, children }, true);
            if self.arena[top].encoded_len() <= page_size {
                break;
            }
            pieces = self.split_node(top, page_size, true, false);
        }
        self.root = Some(Child::Dirty(top));
    }

    /// Writes the pending values and dirty children of dirty node `i`, then allocates its
    /// page and encodes and writes it; returns its pointer.
    fn write_node(&mut self, i: usize, page_size: usize, sink: &mut dyn PageSink) -> Result<NodePtr> {
        let mut node = std::mem::replace(&mut self.arena[i], Node::Leaf(Vec::new()));
        let image = self.images.get_mut(i).and_then(Option::take);
        // A branch's children written now: the pointers its image lacks.
        let mut written = SmallVec::<[usize; 16]>::new();
        let patching = self.branch_images.get(i).is_some_and(Option::is_some);
        match &mut node {
            Node::Leaf(entries) => {
                for entry in entries {
                    if let Value::Pending(bytes) = &mut entry.value {
                        let mut bytes = std::mem::take(bytes);
                        let len = bytes.len() as u64;
                        let crc = crate::checksum::crc32c(&bytes);
                        let count = overflow_pages(len, page_size);
                        let first = sink.alloc(count)?;
                        bytes.resize(count as usize * page_size, 0);
                        sink.write(first, bytes.into_boxed_slice())?;
                        entry.value = Value::Overflow {
                            page: first,
                            len,
                            crc,
                        };
                    }
                }
            }
            Node::Branch { children, .. } => {
                for (pos, child) in children.iter_mut().enumerate() {
                    if let Child::Dirty(c) = *child {
                        *child = Child::Clean(self.write_node(c, page_size, sink)?);
                        if patching {
                            written.push(pos);
                        }
                    }
                }
            }
        }
        // The node's pages come after everything below it, so the nodes the next commit is
        // likeliest to rewrite (the root and the right edge) end the run, together.
        // A leaf's kept length spares summing its entries again.
        let pages = match (&node, self.lens.get(i).copied().flatten()) {
            (Node::Leaf(_), Some(len)) => {
                debug_assert_eq!(len, node.encoded_len(), "kept length of leaf {i}");
                len.div_ceil(page_size).max(1)
            }
            _ => node.pages(page_size),
        };
        let page = sink.alloc(pages as u64)?;
        // An image of another length than the leaf's pages (a leaf that stopped short of
        // them) is not written; its buffer goes back once the leaf's entries are gone.
        let mut unwritten = None;
        let mut branch_image = self.branch_images.get_mut(i).and_then(Option::take);
        let bytes = match (image, &node) {
            (Some(image), Node::Leaf(_)) if image.capacity() == pages * page_size => {
                self.finish_image(image, &node, pages, page_size, sink)
            }
            (image, Node::Branch { children, .. }) => {
                unwritten = image;
                let mut bytes = sink.node_buffer(pages * page_size);
                let patched = branch_image.as_mut().is_some_and(|kept| {
                    kept.page.len() == pages * page_size
                        && patch_branch_image(&mut kept.page, children, &written)
                });
                match &branch_image {
                    Some(kept) if patched => {
                        bytes.extend_from_slice(&kept.page);
                        sink.branch_patched();
                        // Tests check every patched branch against its encoding.
                        #[cfg(debug_assertions)]
                        {
                            let mut expected = Vec::with_capacity(pages * page_size);
                            node.encode_into(&mut expected, pages, page_size);
                            assert!(bytes == expected, "a patched branch differs from its encoding");
                        }
                    }
                    _ => {
                        let used = node.encode_into(&mut bytes, pages, page_size);
                        // A branch split under more often than its image would have taken is
                        // likely to be again (the right edge of appends, the upper branches
                        // of large random commits): it is kept without an image. Nor is an
                        // image made where no branch is kept.
                        let stale = branch_image.take();
                        if self.branch_edits[i] <= MAX_BRANCH_IMAGE_EDITS && sink.keeps_branches() {
                            branch_image = Some(self.branch_image_of(&bytes, used, stale));
                        } else if let Some(stale) = stale {
                            self.spare_images.push(stale.page);
                        }
                    }
                }
                bytes.into_boxed_slice()
            }
            (image, Node::Leaf(_)) => {
                unwritten = image;
                let mut bytes = sink.node_buffer(pages * page_size);
                node.encode_into(&mut bytes, pages, page_size);
                bytes.into_boxed_slice()
            }
        };
        let crc = crate::checksum::crc32c(&bytes);
        sink.write(page, bytes)?;
        let ptr = NodePtr { page, crc };
        if self.edge_leaf == Some(i) {
            self.keep_if_sealed(i, &node, ptr, page_size, sink);
        }
        match node {
            Node::Leaf(entries) => {
                for entry in entries {
                    if let Value::Inline(InlineValue::Owned(value)) = entry.value {
                        sink.recycle_value(value);
                    }
                }
            }
            branch @ Node::Branch { .. } => {
                sink.keep_branch(
                    ptr,
                    KeptBranch {
                        node: branch,
                        image: branch_image,
                    },
                );
            }
        }
        if let Some(image) = unwritten {
            // Only this leaf's entries pointed into it (split pieces copy their values out).
            sink.recycle_leaf_buffer(image.into_buffer());
        }
        Ok(ptr)
    }

    /// Keeps the last key of leaf `arena[i]`, just written at `ptr` as the rightmost leaf,
    /// when it is sealed ([`SealedEdge`]). Out of line: once a tree per commit, at most.
    #[inline(never)]
    fn keep_if_sealed(&self, i: usize, node: &Node, ptr: NodePtr, page_size: usize, sink: &mut dyn PageSink) {
        let Node::Leaf(entries) = node else {
            return;
        };
        let len = self.lens[i].unwrap_or_else(|| node.encoded_len());
        if let (true, Some(last)) = (sealed_len(len, page_size), entries.last()) {
            let last = last.key.clone();
            sink.keep_sealed_edge(SealedEdge { ptr, last });
        }
    }

    /// A copy of `bytes`, a branch just encoded into its first `used` bytes, to keep as its
    /// image: in the memory of `stale` (its image that no longer fit) or of a dropped image
    /// when there is one.
    fn branch_image_of(&mut self, bytes: &[u8], used: usize, stale: Option<BranchImage>) -> BranchImage {
        let reuse = stale.map(|image| image.page).or_else(|| self.spare_images.pop());
        let page = match reuse {
            Some(mut page) if page.len() == bytes.len() => {
                page.copy_from_slice(bytes);
                page
            }
            _ => Box::from(bytes),
        };
        BranchImage { page, used }
    }

    /// The pages of leaf `node` (its values written) from its image: the entries the image
    /// lacks added, then the header and the zeros; or, when they do not fit, the leaf
    /// encoded into a new buffer (the image retired).
    fn finish_image(
        &mut self,
        mut image: LeafImage,
        node: &Node,
        pages: usize,
        page_size: usize,
        sink: &mut dyn PageSink,
    ) -> Box<[u8]> {
        let Node::Leaf(entries) = node else {
            unreachable!("only leaves have images")
        };
        let held = image.entries();
        if entries.len() < held || !entries[held..].iter().all(|e| image.push_entry(e)) {
            self.retired.push(image);
            let mut bytes = sink.node_buffer(pages * page_size);
            node.encode_into(&mut bytes, pages, page_size);
            return bytes.into_boxed_slice();
        }
        // Tests check every image against the leaf's encoding, read before the buffer is
        // finished (the values point into it).
        #[cfg(debug_assertions)]
        let expected = {
            let mut bytes = Vec::with_capacity(pages * page_size);
            node.encode_into(&mut bytes, pages, page_size);
            bytes
        };
        let bytes = image.finish(pages, page_size);
        #[cfg(debug_assertions)]
        assert!(*bytes == *expected, "a leaf's image differs from its encoding");
        bytes
    }
}

/// Nodes the arena makes room for at its first: a transaction of ten random inserts makes
/// about twenty dirty.
const ARENA_ROOM: usize = 32;

/// Levels a descent makes room for: a tree of 4 KiB pages is rarely deeper.
const PATH_ROOM: usize = 8;

/// Most times a branch's image takes separators (one split below, one call of
/// [`WriteTree::insert_in_branch`], may bring several) in one transaction before the branch
/// is encoded instead. Each insert walks the image's separators, as the patch at the write does,
/// for about a seventh of what encoding the branch costs (callgrind: random keys, a thousand
/// inserts a commit, spent 5% more instructions than encoding when every insert edited the
/// image; ten inserts a commit 15% fewer).
const MAX_BRANCH_IMAGE_EDITS: u8 = 4;

/// Most bytes a leaf grows to by appends: [`PageSource::leaf_pages`] pages, at most
/// [`max_leaf_pages`].
fn grow_cap(src: &dyn PageSource) -> usize {
    let page_size = src.page_size();
    src.leaf_pages().clamp(1, max_leaf_pages(page_size)) * page_size
}

/// Whether the leaf a descent ended in is sealed: committed (clean), longer than a page and
/// at least three quarters of its pages full, in a tree whose leaves grow. An append past
/// its last key starts a new leaf after it instead of copying it: rewriting it would fill
/// at most a quarter of its pages more, and costs all of them. Without this, each commit of
/// appends rewrote the last, partly filled leaf of the commit before it: on average half a
/// grown leaf a commit. Leaves that stay unsealed (one page, or under three quarters full)
/// are still appended to, so small appending commits keep filling one leaf.
fn seals(steps: &[Step], src: &dyn PageSource) -> bool {
    let page_size = src.page_size();
    match steps.last().map(|step| &step.node) {
        Some(Loaded::Clean(_, node @ Node::Leaf(_), _)) if grow_cap(src) > page_size => {
            sealed_len(node.encoded_len(), page_size)
        }
        _ => false,
    }
}

/// Whether a leaf of `len` encoded bytes is sealed once committed (in a tree whose leaves
/// grow): longer than a page and at least three quarters of its pages full.
fn sealed_len(len: usize, page_size: usize) -> bool {
    let pages = len.div_ceil(page_size);
    pages > 1 && 4 * len >= 3 * pages * page_size
}

/// Sorts runs and merges adjacent ones.
fn merge_runs(mut runs: Vec<(PageId, u64)>) -> Vec<(PageId, u64)> {
    runs.sort_unstable();
    let mut merged: Vec<(PageId, u64)> = Vec::with_capacity(runs.len());
    for (page, count) in runs {
        match merged.last_mut() {
            Some((last, last_count)) if *last + *last_count == page => *last_count += count,
            _ => merged.push((page, count)),
        }
    }
    merged
}
