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

#[cfg(test)]
mod tests {
    //! Runs under Miri too (`cargo +nightly miri test -p cf-store --lib btree::image`): the
    //! values' slices are read after later appends, a truncation and the header's write.

    use super::LeafImage;
    use crate::btree::node::{Entry, ImageSlice, InlineValue, Key, Node, Value};

    fn entry(key: &[u8], value: Value) -> Entry {
        Entry {
            key: Key::from_slice(key),
            value,
        }
    }

    #[test]
    fn an_image_is_the_leafs_encoding_and_its_values_stay_readable() {
        let page_size = 512;
        let mut image = LeafImage::new(Vec::with_capacity(2 * page_size));
        let mut entries = Vec::new();
        let mut slices: Vec<(ImageSlice, Vec<u8>)> = Vec::new();
        for i in 0u8..9 {
            let value = vec![i; 90 + usize::from(i)];
            let slice = image.push_inline(&[i], &value).expect("room for nine entries");
            entries.push(entry(&[i], Value::Inline(InlineValue::InImage(slice))));
            slices.push((slice, value));
            // Every value so far reads back after each later append.
            assert!(slices.iter().all(|(s, v)| s.as_slice() == v.as_slice()));
        }
        // A tenth does not fit: nothing changes.
        assert!(image.push_inline(&[9], &[9; 200]).is_none());
        assert_eq!(image.entries(), 9);
        // An entry copied in (an overflow reference) is encoded as the leaf would be.
        let overflow = entry(
            &[20],
            Value::Overflow {
                page: 7,
                len: 5000,
                crc: 3,
            },
        );
        assert!(image.push_entry(&overflow));
        entries.push(overflow);
        // Forget the last two, then append again over their bytes.
        let kept: usize = 4 + entries[..8].iter().map(Entry::encoded_len).sum::<usize>();
        image.truncate(8, kept);
        entries.truncate(8);
        slices.truncate(8);
        let slice = image
            .push_inline(&[30], &[30; 40])
            .expect("room after the truncation");
        entries.push(entry(&[30], Value::Inline(InlineValue::InImage(slice))));
        slices.push((slice, vec![30; 40]));
        assert!(slices.iter().all(|(s, v)| s.as_slice() == v.as_slice()));
        let leaf = Node::Leaf(entries);
        let mut expected = Vec::new();
        leaf.encode_into(&mut expected, 2, page_size);
        let pages = image.finish(2, page_size);
        assert_eq!(*pages, *expected);
    }

    #[test]
    fn a_pending_value_is_not_copied_in() {
        let mut image = LeafImage::new(Vec::with_capacity(512));
        assert!(!image.push_entry(&entry(b"k", Value::Pending(vec![1; 600]))));
        assert_eq!(image.entries(), 0);
    }
}
