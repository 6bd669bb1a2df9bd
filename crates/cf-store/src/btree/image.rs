//! Leaf images: the page of a leaf that a write transaction appends to, encoded as its
//! entries arrive, so that an appended value is copied once, into the page that commit
//! writes, instead of into a buffer of its own and again into the page at commit.
//!
//! An image holds the encoding of a prefix of its leaf's entries (all of them while the
//! leaf is only appended to) after four bytes left for the header, which commit fills in
//! with the zeros after the last entry. An entry appended into the image keeps its value as
//! an [`ImageSlice`] of the image's bytes, so reads of the transaction's own changes and a
//! commit that cannot use the image read the value from there.
//!
//! # Safety
//!
//! Values point into an image's buffer without owning it. [`super::write::WriteTree`] keeps
//! them readable by these rules:
//! - the buffer never reallocates: an image writes only within the capacity it was made
//!   with ([`LeafImage::push_inline`] and [`LeafImage::push_entry`] refuse what does not fit);
//! - bytes of the held prefix never change: an image only appends, and forgets entries
//!   ([`LeafImage::truncate`]) only after every value pointing into the forgotten bytes has
//!   been given bytes of its own;
//! - a slice into an image lives only in the entries of that image's own leaf: an entry
//!   that leaves the leaf (a split's right piece) first gets its bytes copied out;
//! - an image whose prefix no longer matches its leaf is not dropped but kept, unread and
//!   unchanged, until the tree is done (`WriteTree::retired`), since the leaf's entries may
//!   still point into it;
//! - commit hands an image's buffer to the write buffer (its pages, or a spare when the
//!   leaf took fewer pages than it has room for) only while writing that image's leaf,
//!   after which none of the leaf's entries is read again;
//! - nothing keeps a leaf of the arena, or a clone of one of its values, past the tree:
//!   reads copy the bytes out, and only branches are kept after commit.

use super::node::{
    encode_entry, encode_inline_entry, inline_entry_len, leaf_header, Entry, ImageSlice, HEADER_LEN,
};

/// The encoded page of a leaf's first [`LeafImage::entries`] entries, being appended to.
pub(crate) struct LeafImage {
    /// The header's room, then the entries. Its capacity, set when it was made, is never
    /// exceeded (values point into it).
    buf: Vec<u8>,
    /// How many of the leaf's first entries `buf` holds.
    entries: usize,
}

impl std::fmt::Debug for LeafImage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LeafImage")
            .field("entries", &self.entries)
            .field("len", &self.buf.len())
            .field("capacity", &self.buf.capacity())
            .finish()
    }
}

impl LeafImage {
    /// An image of no entries in `buf` (its contents are dropped; its capacity is the most
    /// the leaf may take).
    pub(crate) fn new(mut buf: Vec<u8>) -> LeafImage {
        buf.clear();
        buf.extend_from_slice(&[0; HEADER_LEN]);
        LeafImage { buf, entries: 0 }
    }

    /// How many of the leaf's first entries the image holds.
    pub(crate) fn entries(&self) -> usize {
        self.entries
    }

    /// The most bytes the leaf's pages may take in this image.
    pub(crate) fn capacity(&self) -> usize {
        self.buf.capacity()
    }

    /// The buffer, for other use: only once no value points into it.
    pub(crate) fn into_buffer(self) -> Vec<u8> {
        self.buf
    }

    fn fits(&self, len: usize) -> bool {
        self.buf.capacity() - self.buf.len() >= len
    }

    /// Appends an entry with an inline value; returns the value's bytes in the image, or
    /// `None` (changing nothing) when the entry does not fit.
    pub(crate) fn push_inline(&mut self, key: &[u8], value: &[u8]) -> Option<ImageSlice> {
        if !self.fits(inline_entry_len(key.len(), value.len())) {
            return None;
        }
        encode_inline_entry(&mut self.buf, key, value);
        self.entries += 1;
        let bytes = &self.buf[self.buf.len() - value.len()..];
        // SAFETY: the buffer never reallocates (everything written fits its capacity) and
        // these bytes, inside the held prefix, are not changed while the entry can point at
        // them (the module's rules, kept by `WriteTree`).
        Some(unsafe { ImageSlice::new(bytes) })
    }

    /// Appends a copy of `entry` (an inline or written overflow value); false (changing
    /// nothing) when it does not fit or its value is still pending.
    pub(crate) fn push_entry(&mut self, entry: &Entry) -> bool {
        if matches!(entry.value, super::node::Value::Pending(_)) || !self.fits(entry.encoded_len()) {
            return false;
        }
        encode_entry(&mut self.buf, entry);
        self.entries += 1;
        true
    }

    /// Keeps only the first `entries` entries, which take `len` bytes with the header. The
    /// values of the dropped ones must no longer point into the image.
    pub(crate) fn truncate(&mut self, entries: usize, len: usize) {
        debug_assert!(entries <= self.entries && len <= self.buf.len());
        self.entries = entries;
        self.buf.truncate(len);
    }

    /// The leaf's pages: the header of `pages` pages and [`LeafImage::entries`] entries,
    /// the entries, and zeros to the end. `pages` pages must be the image's capacity, so
    /// the buffer becomes the pages without a new allocation.
    pub(crate) fn finish(mut self, pages: usize, page_size: usize) -> Box<[u8]> {
        let len = pages * page_size;
        // As `Node::encode_into` checks: the leaf needs exactly `pages` pages.
        assert!(
            len == self.buf.capacity() && self.buf.len().div_ceil(page_size).max(1) == pages,
            "an image of {} bytes in {} finished as {pages} pages",
            self.buf.len(),
            self.buf.capacity()
        );
        let header = leaf_header(pages, self.entries);
        // SAFETY: the buffer's first `HEADER_LEN` bytes are the header's room (`new`). They
        // are written through the vector's raw pointer, not through a reference to all its
        // bytes, so the values' slices of the entries after them stay valid to read.
        unsafe { std::ptr::copy_nonoverlapping(header.as_ptr(), self.buf.as_mut_ptr(), HEADER_LEN) };
        self.buf.resize(len, 0);
        self.buf.into_boxed_slice()
    }
}
