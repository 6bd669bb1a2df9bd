//! Tree nodes: the one decoded node type, its page encoder and decoder, splits and size limits.
//!
//! # Page format
//!
//! A branch is one page; a leaf is one page or a run of up to [`MAX_LEAF_PAGES`] contiguous
//! pages (see "Leaf size" below). Integers are little-endian; every byte after the last
//! entry, to the end of the node's last page, is zero.
//! The format is canonical: the decoder accepts exactly what the encoder produces,
//! so `encode(decode(page)) == page` for every page that decodes.
//!
//! Header (4 bytes):
//!
//! | offset | size | field                                                        |
//! |--------|------|--------------------------------------------------------------|
//! | 0      | 1    | kind: 1 = leaf, 2 = branch (anything else is corruption)     |
//! | 1      | 1    | pages after the first: 0 for a branch; for a leaf, the fewest |
//! |        |      | that hold it, so 0 unless it is over one page                 |
//! | 2      | 2    | `n`, u16: leaf entries, or branch separator keys; `n >= 1`   |
//!
//! A leaf is followed by `n` entries, keys strictly ascending (bytewise):
//!
//! | size | field                                                           |
//! |------|-----------------------------------------------------------------|
//! | 2    | key length `k`, u16, `k <= max_key_len(page_size)`              |
//! | 1    | value kind: 0 = inline, 1 = overflow                            |
//! | `k`  | key                                                             |
//! | 2    | inline: value length `v`, u16                                   |
//! | `v`  | inline: value bytes                                             |
//! | 8    | overflow (instead of the two above): first page of the run, u64 |
//! | 8    | overflow: value length, u64, `<= MAX_VALUE_LEN`                 |
//! | 4    | overflow: crc32c of the value bytes                             |
//!
//! A value is inline exactly when its inline entry (`5 + k + v` bytes) is at most half the
//! page after the header ([`max_inline_entry`]), so every leaf holds at least two entries.
//! An overflow value occupies a run of `ceil(len / page_size)` contiguous pages holding the
//! raw value bytes, zero padded, with no header.
//!
//! A branch is followed by child 0, then `n` (separator, child) pairs:
//!
//! | size | field                                          |
//! |------|------------------------------------------------|
//! | 8    | child 0: page, u64                             |
//! | 4    | child 0: crc32c of that page                   |
//! | 2    | separator `i` length `k`, u16                  |
//! | `k`  | separator `i`, strictly ascending              |
//! | 12   | child `i + 1`: page u64, crc32c u32            |
//!
//! Child `i` holds the keys `key` with `separator[i - 1] <= key < separator[i]`.
//!
//! # Leaf size
//!
//! The size limits above (the longest key, the largest inline entry) are fractions of the
//! page size, whatever the leaf's length. A leaf spans at most [`max_leaf_pages`] pages: 16
//! (64 KiB at 4 KiB pages) up to 16 KiB pages, fewer above, so that it stays within 256 KiB.
//! A leaf grows past one page only by appends at the right edge of the tree, and only while
//! it is new in the transaction or already longer than a page: three 1 KiB entries fill a
//! 4 KiB page to three quarters, and a sixteen-page leaf holds 63 (99.7%). A committed leaf
//! that appends reach when it is over a page and at least three quarters full is sealed: the
//! appends start a new leaf after it, and it is not rewritten. Any other change to a leaf
//! longer than a page cuts it into one-page leaves, so random writes keep rewriting one page
//! each ([`crate::btree::write`]).

use std::cmp::Ordering;
use std::ops::ControlFlow;

use pagecache::PageRef;
use smallvec::SmallVec;

use super::store::{NodePtr, PageId};
use crate::{Error, Result};

/// Bytes before the first entry of a node.
pub(crate) const HEADER_LEN: usize = 4;
const LEAF: u8 = 1;
const BRANCH: u8 = 2;
const INLINE: u8 = 0;
const OVERFLOW: u8 = 1;
/// An encoded child pointer: page u64, crc u32.
const CHILD_LEN: usize = 12;
/// Key length u16 and value kind u8.
const ENTRY_HEAD_LEN: usize = 3;
/// Most items decoding a node reserves room for before the page is parsed (bigger nodes
/// grow their vectors as they decode).
const MAX_RESERVED_ITEMS: usize = 512;
/// An encoded overflow reference: page u64, length u64, crc u32.
const OVERFLOW_REF_LEN: usize = 20;
/// The most pages a leaf spans (format version 3; version 2 had 4), at page sizes up to
/// 16 KiB; larger pages allow fewer ([`max_leaf_pages`]).
pub(crate) const MAX_LEAF_PAGES: usize = 16;
/// The most bytes a leaf spans: 256 KiB keeps a leaf's entry count, at five bytes or more an
/// entry, inside the header's u16, and every offset inside a leaf inside a u32.
const MAX_LEAF_BYTES: usize = 256 << 10;

/// The most pages a leaf spans at `page_size`: [`MAX_LEAF_PAGES`], or fewer where that many
/// would pass 256 KiB (8 at 32 KiB pages, 4 at 64 KiB).
pub(crate) fn max_leaf_pages(page_size: usize) -> usize {
    (MAX_LEAF_BYTES / page_size).clamp(1, MAX_LEAF_PAGES)
}

/// The largest value, in bytes.
pub(crate) const MAX_VALUE_LEN: usize = 1 << 30;

/// The longest key (and separator) for a page size: a quarter page, so a branch always has
/// room for 2 separators and 3 children, and a leaf for 2 entries with overflow values.
pub(crate) fn max_key_len(page_size: usize) -> usize {
    page_size / 4
}

/// The largest encoded leaf entry with an inline value: half the page after the header.
pub(crate) fn max_inline_entry(page_size: usize) -> usize {
    page_size.saturating_sub(HEADER_LEN) / 2
}

/// Pages in the overflow run of a value of `len` bytes.
pub(crate) fn overflow_pages(len: u64, page_size: usize) -> u64 {
    len.div_ceil(page_size as u64)
}

pub(crate) fn is_inline(key_len: usize, value_len: usize, page_size: usize) -> bool {
    inline_entry_len(key_len, value_len) <= max_inline_entry(page_size)
}

/// Bytes a leaf entry with an inline value takes.
pub(crate) fn inline_entry_len(key_len: usize, value_len: usize) -> usize {
    ENTRY_HEAD_LEN + key_len + 2 + value_len
}

/// Bytes the entry of a `key_len`-byte key and a `value_len`-byte value takes in a leaf (an
/// overflow value takes its reference).
pub(crate) fn entry_len(key_len: usize, value_len: usize, page_size: usize) -> usize {
    if is_inline(key_len, value_len, page_size) {
        inline_entry_len(key_len, value_len)
    } else {
        overflow_entry_len(key_len)
    }
}

/// Bytes a leaf entry with an overflow reference takes.
fn overflow_entry_len(key_len: usize) -> usize {
    ENTRY_HEAD_LEN + key_len + OVERFLOW_REF_LEN
}

/// The header of a leaf of `n` entries encoded into `pages` pages.
pub(crate) fn leaf_header(pages: usize, n: usize) -> [u8; HEADER_LEN] {
    let [lo, hi] = (n as u16).to_le_bytes();
    [LEAF, (pages - 1) as u8, lo, hi]
}

/// Appends the encoding of a leaf entry with an inline value to `out`.
pub(crate) fn encode_inline_entry(out: &mut Vec<u8>, key: &[u8], value: &[u8]) {
    out.extend_from_slice(&(key.len() as u16).to_le_bytes());
    out.push(INLINE);
    out.extend_from_slice(key);
    out.extend_from_slice(&(value.len() as u16).to_le_bytes());
    out.extend_from_slice(value);
}

/// Appends the encoding of `entry` to `out` (its value must not be pending: commit writes
/// pending values first).
pub(crate) fn encode_entry(out: &mut Vec<u8>, entry: &Entry) {
    match &entry.value {
        Value::Inline(v) => encode_inline_entry(out, &entry.key, v.as_slice()),
        Value::Overflow { page, len, crc } => {
            out.extend_from_slice(&(entry.key.len() as u16).to_le_bytes());
            out.push(OVERFLOW);
            out.extend_from_slice(&entry.key);
            out.extend_from_slice(&page.to_le_bytes());
            out.extend_from_slice(&len.to_le_bytes());
            out.extend_from_slice(&crc.to_le_bytes());
        }
        Value::Pending(_) => unreachable!("commit writes pending values first"),
    }
}

/// Checks a key and value against the limits (`max_value` is [`MAX_VALUE_LEN`] outside tests).
pub(crate) fn check_sizes(
    key_len: usize,
    value_len: usize,
    page_size: usize,
    max_value: usize,
) -> Result<()> {
    let max = max_key_len(page_size);
    if key_len > max {
        return Err(Error::KeyTooLarge { len: key_len, max });
    }
    if value_len > max_value {
        return Err(Error::ValueTooLarge {
            len: value_len,
            max: max_value,
        });
    }
    Ok(())
}

pub(crate) fn corrupt(page: PageId, what: impl Into<String>) -> Error {
    Error::Corruption {
        page,
        what: what.into(),
    }
}

/// A branch's reference to a child: a committed page, or a node in the write arena.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Child {
    Clean(NodePtr),
    Dirty(usize),
}

/// The bytes of an inline value: owned (inserted by this transaction, or copied out), or a
/// range of the page the leaf was decoded from. Decoding a leaf takes a reference to its page
/// per value instead of allocating and copying each one: a leaf rewritten by a random update
/// or overwrite is decoded and encoded again with its other values unchanged.
///
/// Only a page of the read cache is referred to, never one of the memory map: a cache buffer
/// never changes, so such a value stays right however long it lives, where a mapped page
/// shows the file's current bytes (and every reference to it would count on the one shared
/// mapping, from every thread).
///
/// A clone of an `InImage` value is valid only while the write tree that made it lives
/// ([`super::image`], "Safety"): it must be read and dropped, never kept.
#[derive(Clone)]
pub(crate) enum InlineValue {
    Owned(Vec<u8>),
    /// The value's own bytes inside the page (a narrowed reference to it).
    InPage(PageRef),
    /// The value's bytes inside the image of the leaf a write transaction appended it to
    /// (only in that transaction's arena; see [`super::image`]).
    InImage(ImageSlice),
}

impl InlineValue {
    /// The value's bytes.
    pub(crate) fn as_slice(&self) -> &[u8] {
        match self {
            InlineValue::Owned(v) => v,
            InlineValue::InPage(page) => page.as_slice(),
            InlineValue::InImage(slice) => slice.as_slice(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.as_slice().len()
    }

    /// The bytes as a vector of their own (no copy when owned).
    pub(crate) fn into_vec(self) -> Vec<u8> {
        match self {
            InlineValue::Owned(v) => v,
            InlineValue::InPage(page) => page.as_slice().to_vec(),
            InlineValue::InImage(slice) => slice.as_slice().to_vec(),
        }
    }

    /// An owned copy (made by `copy`) in place of bytes inside a leaf image, for an entry
    /// leaving the leaf whose image holds them; other values stay as they are.
    pub(crate) fn own_image_bytes(&mut self, copy: &mut dyn FnMut(&[u8]) -> Vec<u8>) {
        if let InlineValue::InImage(slice) = self {
            *self = InlineValue::Owned(copy(slice.as_slice()));
        }
    }

    /// `value`, a slice of `page`'s bytes: by reference to the page if it is a read-cache
    /// buffer, else copied.
    fn in_page(page: &PageRef, value: &[u8]) -> InlineValue {
        if page.is_mapped() {
            return InlineValue::Owned(value.to_vec());
        }
        match page.slice_ref(value) {
            Some(part) => InlineValue::InPage(part),
            // Not reached: the decoder borrows every value from the page.
            None => InlineValue::Owned(value.to_vec()),
        }
    }
}

impl From<Vec<u8>> for InlineValue {
    fn from(v: Vec<u8>) -> Self {
        InlineValue::Owned(v)
    }
}

impl PartialEq for InlineValue {
    fn eq(&self, other: &Self) -> bool {
        self.as_slice() == other.as_slice()
    }
}

impl Eq for InlineValue {}

impl std::fmt::Debug for InlineValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("InlineValue").field(&self.as_slice()).finish()
    }
}

/// Bytes inside a [`super::image::LeafImage`]'s buffer: a pointer and a length, owning
/// nothing. Only made by `LeafImage::push_inline`, whose contract keeps them readable: the
/// write tree that holds the image keeps its buffer allocated, and the bytes unchanged,
/// for as long as any entry holds a slice of them (see [`super::image`], "Safety").
#[derive(Clone, Copy)]
pub(crate) struct ImageSlice {
    ptr: std::ptr::NonNull<u8>,
    len: usize,
}

// SAFETY: an `ImageSlice` is a shared view of bytes that nothing changes while it exists (the
// contract of `ImageSlice::new`), so reading them from any thread is as safe as through a
// `&[u8]`, which is `Send` and `Sync`.
unsafe impl Send for ImageSlice {}
// SAFETY: as for `Send` above: the bytes are immutable while the slice exists.
unsafe impl Sync for ImageSlice {}

impl ImageSlice {
    /// A view of `bytes` that outlives the borrow.
    ///
    /// # Safety
    ///
    /// The memory of `bytes` must stay allocated, and its contents unchanged, for as long as
    /// this slice or any copy of it is read.
    pub(crate) unsafe fn new(bytes: &[u8]) -> ImageSlice {
        ImageSlice {
            ptr: std::ptr::NonNull::from(bytes).cast(),
            len: bytes.len(),
        }
    }

    pub(crate) fn as_slice(&self) -> &[u8] {
        // SAFETY: `new`'s contract: the bytes are still allocated and unchanged.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.len) }
    }
}

/// A leaf entry's value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Value {
    Inline(InlineValue),
    /// A committed overflow run.
    Overflow {
        page: PageId,
        len: u64,
        crc: u32,
    },
    /// An overflow value not yet written (only in a write arena; commit writes it).
    Pending(Vec<u8>),
}

impl Value {
    /// Inline or pending overflow, by the size rule.
    pub(crate) fn new(key_len: usize, bytes: Vec<u8>, page_size: usize) -> Value {
        if is_inline(key_len, bytes.len(), page_size) {
            Value::Inline(InlineValue::Owned(bytes))
        } else {
            Value::Pending(bytes)
        }
    }
}

/// A key held by a decoded node: inline up to 16 bytes (integer keys and most short ones),
/// so decoding a node or inserting an entry allocates nothing for its key. A `SmallVec` of
/// 16 bytes is as big as a `Vec`.
pub(crate) type Key = SmallVec<[u8; 16]>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) key: Key,
    pub(crate) value: Value,
}

impl Entry {
    /// Bytes this entry encodes to in a leaf (a pending value counts as its reference).
    pub(crate) fn encoded_len(&self) -> usize {
        match &self.value {
            Value::Inline(v) => inline_entry_len(self.key.len(), v.len()),
            Value::Overflow { .. } | Value::Pending(_) => overflow_entry_len(self.key.len()),
        }
    }
}

/// A decoded node, read from a page or being built in a write arena. Invariants: a leaf
/// has >= 1 entry, keys strictly ascending; a branch has `keys.len() + 1 == children.len()`
/// and >= 1 key; keys are at most `max_key_len`, inline entries at most `max_inline_entry`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Node {
    Leaf(Vec<Entry>),
    Branch { keys: Vec<Key>, children: Vec<Child> },
}

/// The child of a branch that may hold `key`.
pub(crate) fn child_index(keys: &[Key], key: &[u8]) -> usize {
    keys.partition_point(|sep| sep.as_slice() <= key)
}

/// Where `key` is (or would go) in a leaf.
pub(crate) fn search(entries: &[Entry], key: &[u8]) -> std::result::Result<usize, usize> {
    entries.binary_search_by(|e| e.key.as_slice().cmp(key))
}

impl Node {
    /// Bytes this node encodes to (a pending value counts as its overflow reference).
    pub(crate) fn encoded_len(&self) -> usize {
        HEADER_LEN
            + match self {
                Node::Leaf(entries) => entries.iter().map(Entry::encoded_len).sum::<usize>(),
                Node::Branch { keys, .. } => {
                    CHILD_LEN + keys.iter().map(|k| 2 + k.len() + CHILD_LEN).sum::<usize>()
                }
            }
    }

    /// Pages the node is encoded into: the fewest that hold it for a leaf, one for a branch.
    pub(crate) fn pages(&self, page_size: usize) -> usize {
        match self {
            Node::Leaf(_) => self.encoded_len().div_ceil(page_size).max(1),
            Node::Branch { .. } => 1,
        }
    }

    /// Encodes a node whose children are all clean and whose values are not pending (commit
    /// resolves both first) into new pages ([`Node::pages`] of them).
    #[cfg(test)]
    pub(crate) fn encode(&self, page_size: usize) -> Box<[u8]> {
        let pages = self.pages(page_size);
        let mut page = Vec::with_capacity(pages * page_size);
        self.encode_into(&mut page, pages, page_size);
        page.into_boxed_slice()
    }

    /// Encodes the node into `page`, replacing its contents with `pages` ([`Node::pages`])
    /// pages of `page_size` bytes: the node, then zeros to the end. Appending to a vector
    /// (with the room reserved) writes each byte once, where a zeroed buffer writes it twice.
    /// The check that the node needed exactly `pages` pages comes after encoding, from the
    /// count of bytes written, so it costs no pass over the entries. Returns that count (the
    /// bytes before the zeros).
    pub(crate) fn encode_into(&self, page: &mut Vec<u8>, pages: usize, page_size: usize) -> usize {
        assert!(
            (1..=max_leaf_pages(page_size)).contains(&pages),
            "a node of {pages} pages"
        );
        page.clear();
        let mut out = PageWriter { page };
        match self {
            Node::Leaf(entries) => out.put(&leaf_header(pages, entries.len())),
            Node::Branch { keys, .. } => {
                out.put(&[BRANCH, 0]);
                out.put(&(keys.len() as u16).to_le_bytes());
            }
        }
        match self {
            Node::Leaf(entries) => {
                for e in entries {
                    encode_entry(out.page, e);
                }
            }
            Node::Branch { keys, children } => {
                out.child(&children[0]);
                for (key, child) in keys.iter().zip(&children[1..]) {
                    out.put(&(key.len() as u16).to_le_bytes());
                    out.put(key);
                    out.child(child);
                }
            }
        }
        let at = page.len();
        assert!(
            at.div_ceil(page_size).max(1) == pages,
            "node of {at} bytes encoded into {pages} pages"
        );
        page.resize(pages * page_size, 0);
        at
    }

    /// Decodes one node (`bytes`: its pages of `page_size` bytes) with [`parse`], copying
    /// its values. Never panics: anything that is not exactly what [`Node::encode`] writes
    /// is `Error::Corruption`.
    #[cfg(test)]
    pub(crate) fn decode(page: PageId, bytes: &[u8], page_size: usize) -> Result<Node> {
        Self::decode_with(page, bytes, page_size, |v| InlineValue::Owned(v.to_vec()))
    }

    /// Decodes the node read into `bytes` with [`parse`] (the same checks, never a panic).
    /// The inline values of a read-cache page stay in it: each refers to the page instead of
    /// being copied out (a mapped page's values are copied, see [`InlineValue`]).
    pub(crate) fn decode_page(page: PageId, bytes: &PageRef, page_size: usize) -> Result<Node> {
        Self::decode_with(page, bytes.as_slice(), page_size, |v| {
            InlineValue::in_page(bytes, v)
        })
    }

    fn decode_with<'p>(
        page: PageId,
        bytes: &'p [u8],
        page_size: usize,
        mut inline: impl FnMut(&'p [u8]) -> InlineValue,
    ) -> Result<Node> {
        // Room for the header's count and one insert, so decoding and the first change of a
        // node copied into a write arena do not grow its vectors. The count is not checked
        // yet (`parse` rejects a wrong one), so it is capped by the most items the page could
        // hold and by `MAX_RESERVED_ITEMS`: a corrupt count reserves at most that many.
        let count = bytes
            .get(2..4)
            .map_or(0, |b| usize::from(u16::from_le_bytes([b[0], b[1]])));
        let leaf = bytes.first() == Some(&LEAF);
        let smallest_item = if leaf { ENTRY_HEAD_LEN + 2 } else { 2 + CHILD_LEN };
        let room = count.min(bytes.len() / smallest_item).min(MAX_RESERVED_ITEMS) + 1;
        let (mut entries, mut keys, mut children) = if leaf {
            (Vec::with_capacity(room), Vec::new(), Vec::new())
        } else {
            (Vec::new(), Vec::with_capacity(room), Vec::with_capacity(room + 1))
        };
        parse(page, bytes, page_size, |item| {
            match item {
                Item::Entry(key, value) => entries.push(Entry {
                    key: Key::from_slice(key),
                    value: match value {
                        ValueRef::Inline(v) => Value::Inline(inline(v)),
                        ValueRef::Overflow { page, len, crc } => Value::Overflow { page, len, crc },
                    },
                }),
                Item::Child(ptr) => children.push(Child::Clean(ptr)),
                Item::Separator(key) => keys.push(Key::from_slice(key)),
            }
            ControlFlow::Continue(())
        })?;
        // Every node has an entry, and every branch a child.
        Ok(if children.is_empty() {
            Node::Leaf(entries)
        } else {
            Node::Branch { keys, children }
        })
    }

    /// Splits an over-full node in two, leaving the left half in `self` and returning the
    /// separator and the right half. `append` (an insert at the end of the rightmost leaf)
    /// keeps the left half as full as possible, so sequential inserts fill pages; otherwise
    /// the halves are balanced by bytes. `cap` is the most bytes either half may take: a page
    /// for a branch, and for a leaf a page or, for leaves that may grow, up to
    /// [`max_leaf_pages`] pages.
    ///
    /// A split exists when a node overflows `cap` by one entry at most (at most half a usable
    /// leaf; at most `14 + page_size / 4` bytes in a branch), since every entry is at most
    /// that big: the largest left part that fits leaves a right part that fits too. A node
    /// over by more (a branch that took the separators of a leaf cut into pages) may have
    /// none: then this returns `None` and changes nothing, and [`Node::split_into`] applies.
    pub(crate) fn split(&mut self, cap: usize, append: bool) -> Option<(Key, Node)> {
        match self {
            Node::Leaf(entries) => {
                let sizes: Vec<usize> = entries.iter().map(Entry::encoded_len).collect();
                let m = split_point(&sizes, HEADER_LEN, cap, false, append)?;
                // After an append, further appends fill the right leaf, most likely with
                // entries like the left's: room for as many saves growing it one doubling at
                // a time (callgrind, W1: 2.7% fewer instructions).
                let mut right = Vec::with_capacity(if append {
                    m.max(entries.len() - m)
                } else {
                    entries.len() - m
                });
                right.extend(entries.drain(m..));
                let sep = separator(&entries[m - 1].key, &right[0].key);
                Some((sep, Node::Leaf(right)))
            }
            Node::Branch { keys, children } => {
                let sizes: Vec<usize> = keys.iter().map(|k| 2 + k.len() + CHILD_LEN).collect();
                let m = split_point(&sizes, HEADER_LEN + CHILD_LEN, cap, true, append)?;
                let right_keys = keys.split_off(m + 1);
                let right_children = children.split_off(m + 1);
                let sep = keys.pop()?;
                let right = Node::Branch {
                    keys: right_keys,
                    children: right_children,
                };
                Some((sep, right))
            }
        }
    }

    /// Cuts an over-full node into pieces of at most `cap` bytes, each as full as it can be
    /// from the left: `self` keeps the first piece, and the others come back in key order,
    /// each after its separator. A leaf longer than a page becomes one-page leaves this way,
    /// and a branch that took several separators at once fits pages again. `cap` must hold
    /// any one entry with the header (a page always does).
    ///
    /// Every piece is a valid node: a leaf piece has an entry; a branch piece has a key, since
    /// its last piece, if it would hold a lone child, takes the previous piece's last key and
    /// child (that piece was full, so it keeps at least two).
    pub(crate) fn split_into(&mut self, cap: usize) -> Vec<(Key, Node)> {
        let mut pieces = Vec::new();
        match self {
            Node::Leaf(entries) => {
                let mut starts = Vec::new();
                let mut used = HEADER_LEN;
                for (i, entry) in entries.iter().enumerate() {
                    let size = entry.encoded_len();
                    if i > 0 && used + size > cap {
                        starts.push(i);
                        used = HEADER_LEN;
                    }
                    used += size;
                }
                for &start in starts.iter().rev() {
                    let right = entries.split_off(start);
                    let sep = separator(&entries[start - 1].key, &right[0].key);
                    pieces.push((sep, Node::Leaf(right)));
                }
            }
            Node::Branch { keys, children } => {
                // `promoted[i]`: keys[promoted[i]] goes up, between two pieces.
                let mut promoted: Vec<usize> = Vec::new();
                let mut used = HEADER_LEN + CHILD_LEN;
                let mut pairs = 0;
                for (i, key) in keys.iter().enumerate() {
                    let size = 2 + key.len() + CHILD_LEN;
                    if pairs > 0 && used + size > cap {
                        promoted.push(i);
                        used = HEADER_LEN + CHILD_LEN;
                        pairs = 0;
                        continue;
                    }
                    used += size;
                    pairs += 1;
                }
                if pairs == 0 {
                    if let Some(last) = promoted.last_mut() {
                        *last -= 1;
                    }
                }
                for &at in promoted.iter().rev() {
                    let right_keys = keys.split_off(at + 1);
                    let right_children = children.split_off(at + 1);
                    if let Some(sep) = keys.pop() {
                        pieces.push((
                            sep,
                            Node::Branch {
                                keys: right_keys,
                                children: right_children,
                            },
                        ));
                    }
                }
            }
        }
        pieces.reverse();
        pieces
    }
}

/// Makes `image`, the page of a branch whose separators are those of `children`' branch,
/// hold the pointers of children `changed` (ascending positions; every other child's pointer
/// must already be in the image): each child's twelve bytes are overwritten in place, found
/// by walking the separators' length fields up to the last one changed. So a commit that
/// changed a branch's children (rewrote some, split some: [`insert_into_branch_image`]) writes
/// it for a copy of one page and a store per child changed, instead of encoding every
/// separator again. Returns false when `image` does not have that layout (another count,
/// too short), a position is out of range or below the one before it (repeats are fine),
/// or a changed child is still dirty; the image is then partly patched and must be dropped.
pub(crate) fn patch_branch_image(image: &mut [u8], children: &[Child], changed: &[usize]) -> bool {
    let count = image
        .get(2..4)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])));
    if image.first() != Some(&BRANCH) || count.map(|n| n + 1) != Some(children.len()) {
        return false;
    }
    // `at`: where the pointer of child `child` starts.
    let (mut child, mut at) = (0, HEADER_LEN);
    for &pos in changed {
        if pos < child {
            return false;
        }
        while child < pos {
            at += CHILD_LEN;
            let Some(len) = image.get(at..at + 2) else {
                return false;
            };
            at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]]));
            child += 1;
        }
        let (Some(Child::Clean(ptr)), Some(slot)) = (children.get(pos), image.get_mut(at..at + CHILD_LEN))
        else {
            return false;
        };
        slot[..8].copy_from_slice(&ptr.page.to_le_bytes());
        slot[8..].copy_from_slice(&ptr.crc.to_le_bytes());
    }
    true
}

/// A branch's page as it was written, edited as the branch changes (separators inserted,
/// children repointed), and how many of its bytes the branch takes (the rest are zeros).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BranchImage {
    pub(crate) page: Box<[u8]>,
    pub(crate) used: usize,
}

/// Inserts `seps` into `image` right after child `pos`, each followed by a child pointer of
/// zeros for the write to patch ([`patch_branch_image`]): the image's side of a branch taking
/// separators at `pos` (`keys` at `pos`, `children` after `pos`). The bytes after them move
/// up, as in a page edited in place; an insert at the end (appends) finds its place without
/// walking the separators. Returns false when the image is not a branch of more than `pos`
/// children or the separators do not fit in its page; the image is then unchanged.
pub(crate) fn insert_into_branch_image(image: &mut BranchImage, pos: usize, seps: &[Key]) -> bool {
    let BranchImage { page, used } = image;
    let Some(count) = page
        .get(2..4)
        .map(|b| usize::from(u16::from_le_bytes([b[0], b[1]])))
    else {
        return false;
    };
    let Ok(new_count) = u16::try_from(count + seps.len()) else {
        return false;
    };
    if page.first() != Some(&BRANCH) || pos > count || *used > page.len() {
        return false;
    }
    // `at`: the end of child `pos`, where the separators go.
    let mut at = HEADER_LEN + CHILD_LEN;
    if pos == count {
        at = *used;
    } else {
        for _ in 0..pos {
            let Some(len) = page.get(at..at + 2) else {
                return false;
            };
            at += 2 + usize::from(u16::from_le_bytes([len[0], len[1]])) + CHILD_LEN;
        }
    }
    let size: usize = seps.iter().map(|k| 2 + k.len() + CHILD_LEN).sum();
    if at > *used || *used + size > page.len() {
        return false;
    }
    page.copy_within(at..*used, at + size);
    for sep in seps {
        page[at..at + 2].copy_from_slice(&(sep.len() as u16).to_le_bytes());
        page[at + 2..at + 2 + sep.len()].copy_from_slice(sep);
        at += 2 + sep.len();
        page[at..at + CHILD_LEN].fill(0);
        at += CHILD_LEN;
    }
    page[2..4].copy_from_slice(&new_count.to_le_bytes());
    *used += size;
    true
}

/// Appends to a page buffer during [`Node::encode_into`], which checks the size after.
struct PageWriter<'a> {
    page: &'a mut Vec<u8>,
}

impl PageWriter<'_> {
    fn put(&mut self, bytes: &[u8]) {
        self.page.extend_from_slice(bytes);
    }

    fn child(&mut self, child: &Child) {
        match child {
            Child::Clean(ptr) => {
                self.put(&ptr.page.to_le_bytes());
                self.put(&ptr.crc.to_le_bytes());
            }
            Child::Dirty(_) => unreachable!("commit writes dirty children before their parent"),
        }
    }
}

/// What [`parse`] reads from a page, in page order, borrowed from it.
#[derive(Debug)]
pub(crate) enum Item<'p> {
    /// A leaf entry: key and value.
    Entry(&'p [u8], ValueRef<'p>),
    /// A branch child: child 0 first, then one after each separator.
    Child(NodePtr),
    /// A branch separator.
    Separator(&'p [u8]),
}

/// A leaf value as stored in the page.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ValueRef<'p> {
    Inline(&'p [u8]),
    Overflow { page: PageId, len: u64, crc: u32 },
}

impl From<ValueRef<'_>> for Value {
    fn from(value: ValueRef<'_>) -> Value {
        match value {
            ValueRef::Inline(v) => Value::Inline(InlineValue::Owned(v.to_vec())),
            ValueRef::Overflow { page, len, crc } => Value::Overflow { page, len, crc },
        }
    }
}

/// How many pages a node spans, as its first page says (header byte 1, plus one), before
/// anything is verified: the reader refuses more than [`max_leaf_pages`], the checksum
/// catches a wrong count, and [`parse`] refuses a branch over several pages. `None` when the
/// page is too short to tell.
pub(crate) fn pages_of(first_page: &[u8]) -> Option<usize> {
    first_page.get(1).map(|&more| usize::from(more) + 1)
}

/// The decoder: reads the node in `bytes` (all its pages, of `page_size` bytes each) and
/// hands each item to `f` in page order, stopping early if `f` breaks (then the rest of the
/// node is not checked). Every length and offset is bounds-checked and every rule of the format
/// enforced, so it never panics: a violation is `Error::Corruption` naming `page`. Used
/// whole by [`Node::decode_page`], and with early stops by lookups that need not copy a node.
pub(crate) fn parse<'p>(
    page: PageId,
    bytes: &'p [u8],
    page_size: usize,
    mut f: impl FnMut(Item<'p>) -> ControlFlow<()>,
) -> Result<()> {
    let max_key = max_key_len(page_size);
    let mut r = Reader { page, bytes, pos: 0 };
    let [kind, more] = r.array("header")?;
    let n = r.u16("header")?;
    let pages = usize::from(more) + 1;
    if bytes.len() != pages * page_size {
        return Err(corrupt(
            page,
            format!("node of {} bytes in {pages} pages", bytes.len()),
        ));
    }
    if pages > 1 && kind != LEAF {
        return Err(corrupt(page, "a branch spanning pages"));
    }
    if pages > max_leaf_pages(page_size) {
        return Err(corrupt(page, format!("leaf of {pages} pages")));
    }
    if n == 0 {
        return Err(corrupt(page, "node with no entries"));
    }
    let mut prev: Option<&[u8]> = None;
    let mut read_key = |r: &mut Reader<'p>, len: usize| {
        if len > max_key {
            return Err(corrupt(page, format!("key of {len} bytes, over {max_key}")));
        }
        let key = r.take(len, "key")?;
        if prev.is_some_and(|prev| prev >= key) {
            return Err(corrupt(page, "keys out of order"));
        }
        prev = Some(key);
        Ok(key)
    };
    match kind {
        LEAF => {
            for _ in 0..n {
                let key_len = usize::from(r.u16("entry")?);
                let [value_kind] = r.array("entry")?;
                let key = read_key(&mut r, key_len)?;
                let value = match value_kind {
                    INLINE => {
                        let len = usize::from(r.u16("value length")?);
                        if !is_inline(key_len, len, page_size) {
                            return Err(corrupt(page, "inline entry over half a page"));
                        }
                        ValueRef::Inline(r.take(len, "value")?)
                    }
                    OVERFLOW => {
                        let first = r.u64("overflow reference")?;
                        let len = r.u64("overflow reference")?;
                        let crc = r.u32("overflow reference")?;
                        if len > MAX_VALUE_LEN as u64 {
                            return Err(corrupt(page, format!("value of {len} bytes")));
                        }
                        if is_inline(key_len, len as usize, page_size) {
                            return Err(corrupt(page, "overflow value small enough to inline"));
                        }
                        if first.checked_add(overflow_pages(len, page_size)).is_none() {
                            return Err(corrupt(page, "overflow run past the last page"));
                        }
                        ValueRef::Overflow {
                            page: first,
                            len,
                            crc,
                        }
                    }
                    other => return Err(corrupt(page, format!("value kind {other}"))),
                };
                if f(Item::Entry(key, value)).is_break() {
                    return Ok(());
                }
            }
        }
        BRANCH => {
            if f(Item::Child(r.child()?)).is_break() {
                return Ok(());
            }
            for _ in 0..n {
                let key_len = usize::from(r.u16("separator")?);
                if f(Item::Separator(read_key(&mut r, key_len)?)).is_break()
                    || f(Item::Child(r.child()?)).is_break()
                {
                    return Ok(());
                }
            }
        }
        other => return Err(corrupt(page, format!("node kind {other}"))),
    }
    if !all_zero(&bytes[r.pos..]) {
        return Err(corrupt(page, "nonzero bytes after the last entry"));
    }
    if r.pos.div_ceil(page_size).max(1) != pages {
        return Err(corrupt(
            page,
            format!("leaf of {} bytes spanning {pages} pages", r.pos),
        ));
    }
    Ok(())
}

/// Where a node's keys begin in `bytes` (leaf entries' keys, or a branch's separators), in
/// page order, and whether it is a leaf: what [`super::index::NodeIndex`] needs to
/// binary-search the node in place. The node is parsed whole first, so it is verified by
/// every rule of the format before any offset is trusted.
pub(crate) fn key_offsets(page: PageId, bytes: &[u8], page_size: usize) -> Result<(bool, Vec<u32>)> {
    let mut offsets = Vec::with_capacity(usize::from(node_len(bytes)).min(MAX_RESERVED_ITEMS));
    let base = bytes.as_ptr() as usize;
    parse(page, bytes, page_size, |item| {
        if let Item::Entry(key, _) | Item::Separator(key) = item {
            // Inside `bytes`, which is at most MAX_LEAF_BYTES long.
            offsets.push((key.as_ptr() as usize - base) as u32);
        }
        ControlFlow::Continue(())
    })?;
    Ok((bytes[0] == LEAF, offsets))
}

/// The entry or separator count in a node's header (0 if it is too short to say).
fn node_len(bytes: &[u8]) -> u16 {
    bytes.get(2..4).map_or(0, |n| u16::from_le_bytes([n[0], n[1]]))
}

/// The key that begins at `at` in a node [`key_offsets`] indexed (`leaf` as it said).
/// Bounds-checked: a wrong offset is corruption of `page`, never a panic.
#[inline]
pub(crate) fn key_at(page: PageId, bytes: &[u8], leaf: bool, at: usize) -> Result<&[u8]> {
    let head = if leaf { ENTRY_HEAD_LEN } else { 2 };
    let key = at
        .checked_sub(head)
        .and_then(|len_at| bytes.get(len_at..len_at + 2))
        .map(|len| usize::from(u16::from_le_bytes([len[0], len[1]])))
        .and_then(|len| bytes.get(at..at.checked_add(len)?));
    key.ok_or_else(|| corrupt(page, format!("key at offset {at} runs past the end of the node")))
}

/// The value of the leaf entry whose key (of `key_len` bytes) begins at `at`.
pub(crate) fn value_at(page: PageId, bytes: &[u8], at: usize, key_len: usize) -> Result<ValueRef<'_>> {
    let mut r = Reader::at(page, bytes, at.wrapping_sub(1))?;
    let [kind] = r.array("entry")?;
    r.pos = at.saturating_add(key_len);
    match kind {
        INLINE => {
            let len = usize::from(r.u16("value length")?);
            Ok(ValueRef::Inline(r.take(len, "value")?))
        }
        OVERFLOW => Ok(ValueRef::Overflow {
            page: r.u64("overflow reference")?,
            len: r.u64("overflow reference")?,
            crc: r.u32("overflow reference")?,
        }),
        other => Err(corrupt(page, format!("value kind {other}"))),
    }
}

/// The branch child pointer that begins at `at`: [`HEADER_LEN`] for child 0, and right
/// after separator `i - 1` for child `i`.
///
/// Read in place (two loads), not through a [`Reader`]: a lookup takes a child at every
/// branch, and the reader's checks made it 110 instructions (callgrind).
#[inline]
pub(crate) fn child_at(page: PageId, bytes: &[u8], at: usize) -> Result<NodePtr> {
    let raw = at.checked_add(CHILD_LEN).and_then(|end| bytes.get(at..end));
    let raw = raw.ok_or_else(|| {
        corrupt(
            page,
            format!("child pointer at offset {at} runs past the end of the node"),
        )
    })?;
    // Twelve bytes: both conversions succeed.
    let (page_bytes, crc_bytes) = raw.split_at(8);
    Ok(NodePtr {
        page: u64::from_le_bytes(page_bytes.try_into().unwrap_or_default()),
        crc: u32::from_le_bytes(crc_bytes.try_into().unwrap_or_default()),
    })
}

/// Whether every byte is zero. OR-ing 64 bytes at a time has no branch per byte, so it
/// vectorizes; a byte loop that stops at the first nonzero byte does not, and it was most
/// of the instructions of decoding a leaf of three 1 KiB entries (a quarter page of zeros).
/// The chunks are exact (`chunks_exact`), so the compiler knows each is 64 bytes and
/// unrolls the fold: over `chunks(64)` it took about 760 instructions a leaf decoded in
/// small transactions (callgrind, leaves of two or three 1 KiB entries).
fn all_zero(bytes: &[u8]) -> bool {
    let mut chunks = bytes.chunks_exact(64);
    let whole = chunks
        .by_ref()
        .all(|chunk| chunk.iter().fold(0u8, |acc, &b| acc | b) == 0);
    whole && chunks.remainder().iter().all(|&b| b == 0)
}

/// The index `m` where a node of entries with encoded `sizes` splits: entries `..m` go left
/// and `m..` right (`promote`: entry `m` moves up instead). Both halves, each `base` bytes
/// plus their entries, must fit `cap` bytes and be non-empty; `None` if no split does.
fn split_point(sizes: &[usize], base: usize, cap: usize, promote: bool, append: bool) -> Option<usize> {
    let total: usize = sizes.iter().sum();
    let mut left = 0;
    let fitting = (1..sizes.len().saturating_sub(usize::from(promote))).filter_map(|m| {
        left += sizes[m - 1];
        let right = total - left - if promote { sizes[m] } else { 0 };
        (base + left <= cap && base + right <= cap).then_some((m, left.abs_diff(right)))
    });
    let best = if append {
        fitting.last()
    } else {
        fitting.min_by_key(|&(_, imbalance)| imbalance)
    };
    best.map(|(m, _)| m)
}

/// The shortest separator `s` with `left < s <= right` (given `left < right`): the prefix
/// of `right` one byte past what it shares with `left`.
pub(crate) fn separator(left: &[u8], right: &[u8]) -> Key {
    let common = left.iter().zip(right).take_while(|(a, b)| a == b).count();
    debug_assert_eq!(left.cmp(right), Ordering::Less);
    Key::from_slice(&right[..=common])
}

/// Bounds-checked reading of a page being decoded.
struct Reader<'a> {
    page: PageId,
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    /// A reader from `pos`, which must lie inside `bytes` (its end included).
    fn at(page: PageId, bytes: &'a [u8], pos: usize) -> Result<Self> {
        if pos > bytes.len() {
            return Err(corrupt(page, format!("offset {pos} past the end of the node")));
        }
        Ok(Reader { page, bytes, pos })
    }

    fn take(&mut self, n: usize, what: &str) -> Result<&'a [u8]> {
        let rest = self.bytes.get(self.pos..).unwrap_or_default();
        if n > rest.len() {
            return Err(corrupt(
                self.page,
                format!("{what} runs past the end of the page"),
            ));
        }
        self.pos += n;
        Ok(&rest[..n])
    }

    fn array<const N: usize>(&mut self, what: &str) -> Result<[u8; N]> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N, what)?);
        Ok(out)
    }

    fn u16(&mut self, what: &str) -> Result<u16> {
        self.array(what).map(u16::from_le_bytes)
    }

    fn u32(&mut self, what: &str) -> Result<u32> {
        self.array(what).map(u32::from_le_bytes)
    }

    fn u64(&mut self, what: &str) -> Result<u64> {
        self.array(what).map(u64::from_le_bytes)
    }

    fn child(&mut self) -> Result<NodePtr> {
        let page = self.u64("child pointer")?;
        let crc = self.u32("child pointer")?;
        Ok(NodePtr { page, crc })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_zero_finds_a_nonzero_byte_anywhere() {
        assert!(all_zero(&[]));
        for len in [1, 63, 64, 65, 200, 4096] {
            let mut bytes = vec![0u8; len];
            assert!(all_zero(&bytes), "{len} zeros");
            for at in [0, len / 2, len - 1] {
                bytes[at] = 0x80;
                assert!(!all_zero(&bytes), "{len} bytes, nonzero at {at}");
                bytes[at] = 0;
            }
        }
    }

    /// A leaf with a nonzero byte in its zero tail, at either end of the tail, is corrupt.
    #[test]
    fn a_nonzero_byte_after_the_last_entry_is_corruption() {
        let leaf = Node::Leaf(vec![Entry {
            key: Key::from_slice(b"k"),
            value: Value::Inline(vec![7; 100].into()),
        }]);
        let page = leaf.encode(512);
        let end = leaf.encoded_len();
        assert_eq!(Node::decode(1, &page, 512).unwrap(), leaf);
        for at in [end, end + 63, 511] {
            let mut bad = page.to_vec();
            bad[at] = 1;
            let err = Node::decode(1, &bad, 512).unwrap_err();
            assert!(
                err.to_string().contains("nonzero bytes after the last entry"),
                "{err}"
            );
        }
    }

    /// A read page's values are not copied: each refers to its own bytes in the page.
    #[test]
    fn decode_page_leaves_values_in_the_page() {
        let leaf = Node::Leaf(vec![
            Entry {
                key: Key::from_slice(b"a"),
                value: Value::Inline(vec![1; 100].into()),
            },
            Entry {
                key: Key::from_slice(b"b"),
                value: Value::Inline(vec![2; 50].into()),
            },
        ]);
        let page = PageRef::from(leaf.encode(512).into_vec());
        let decoded = Node::decode_page(1, &page, 512).unwrap();
        assert_eq!(decoded, leaf);
        let Node::Leaf(entries) = &decoded else {
            panic!("not a leaf")
        };
        let range = page.as_slice().as_ptr_range();
        for entry in entries {
            let Value::Inline(value @ InlineValue::InPage(_)) = &entry.value else {
                panic!("value copied out of the page: {:?}", entry.value)
            };
            assert!(range.contains(&value.as_slice().as_ptr()));
        }
        // Owned again when copied out, with the same bytes.
        let Value::Inline(first) = entries[0].value.clone() else {
            unreachable!()
        };
        assert_eq!(first.into_vec(), vec![1; 100]);
    }

    /// A mapped page's values are copied out: the mapping shows the file's current bytes.
    #[test]
    fn decode_page_copies_the_values_of_a_mapped_page() {
        use flush::{FileBackend, NoFreeSpace, SortedMerge};
        use pagecache::{CacheOptions, PageCache, ReadPath};
        let leaf = Node::Leaf(vec![Entry {
            key: Key::from_slice(b"k"),
            value: Value::Inline(vec![3; 200].into()),
        }]);
        let dir = tempfile::tempdir().unwrap();
        let backend = std::sync::Arc::new(FileBackend::open(dir.path().join("f")).unwrap());
        let options = CacheOptions::default()
            .with_page_size(512)
            .with_read_path(ReadPath::Mmap);
        let cache = PageCache::new(backend, options).unwrap();
        let mut buffer = cache.write_buffer();
        buffer.put(0, leaf.encode(512)).unwrap();
        buffer.flush(&SortedMerge::default(), &NoFreeSpace).unwrap();
        let page = cache.read_page(0).unwrap();
        assert!(page.is_mapped());
        let decoded = Node::decode_page(0, &page, 512).unwrap();
        assert_eq!(decoded, leaf);
        let Node::Leaf(entries) = decoded else {
            panic!("not a leaf")
        };
        assert!(matches!(entries[0].value, Value::Inline(InlineValue::Owned(_))));
    }

    /// Entries are moved on every insert and split: a value that refers to its page must not
    /// make them bigger than a key and a 40-byte value.
    #[test]
    #[cfg(target_pointer_width = "64")]
    fn entries_stay_small() {
        assert!(std::mem::size_of::<Value>() <= 40);
        assert!(std::mem::size_of::<Entry>() <= 64);
    }
}
