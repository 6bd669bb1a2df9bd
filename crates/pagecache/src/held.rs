//! `HeldPages`: the committed pages one writer holds in memory instead of writing them yet,
//! readable by every reader of that writer's pages until they are written or freed.
//!
//! A non-durable commit need not reach the file at once: no commit slot names its pages, so a
//! crash loses it either way. Holding its pages lets a later commit that frees one (an
//! overwritten leaf, the root every commit rewrites) drop it unwritten, and lets many commits
//! go to the file in one turn at its write lock. Readers must then find those pages here
//! before they look in the read cache or the file.
//!
//! # Coherence
//!
//! The owner of the [`crate::WriteBuffer`] is the only writer. A page enters before the commit
//! that wrote it is visible to any reader, and leaves either after it was written to the file
//! and the read cache was brought up to date for its offsets (so a reader that misses here
//! finds the same bytes there), or when it was freed and no reader can reach it (MVCC).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::RwLock;

use crate::PageRef;

/// About how many entries one walk passes for the cost of one search of the map
/// ([`HeldPages::remove_ranges`]).
const WALK_PER_SEARCH: usize = 16;

/// Committed, unwritten pages of one writer, by offset: each entry one page or several
/// contiguous pages, as the writer buffered them. Shared (`Arc`) between the writer's
/// [`crate::WriteBuffer`] and its readers.
#[derive(Debug, Default)]
pub struct HeldPages {
    /// Entry start -> its bytes.
    entries: RwLock<BTreeMap<u64, Bytes>>,
    /// Bytes of all entries, readable without the lock.
    bytes: AtomicU64,
}

impl HeldPages {
    /// `len` bytes at `offset` if one held entry covers all of them (a slice of it, no copy).
    /// `None` when no entry covers `offset`, or the span would run past the entry that does:
    /// the caller then reads through the cache.
    pub fn read(&self, offset: u64, len: u64) -> Option<PageRef> {
        if self.bytes.load(Ordering::Acquire) == 0 {
            return None;
        }
        let entries = self.entries.read();
        let (&start, data) = entries.range(..=offset).next_back()?;
        let from = offset - start;
        let to = from.checked_add(len)?;
        // Held bytes are this writer's own encoded pages: known good.
        (to <= data.len() as u64).then(|| PageRef::checked(data.slice(from as usize..to as usize)))
    }

    /// Bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes.load(Ordering::Acquire)
    }

    /// The offsets of every held entry.
    pub(crate) fn offsets(&self) -> rustc_hash::FxHashSet<u64> {
        self.entries.read().keys().copied().collect()
    }

    /// The entry that starts at `offset`, if held (a clone of the shared buffer).
    pub(crate) fn get(&self, offset: u64) -> Option<Bytes> {
        if self.is_empty() {
            return None;
        }
        self.entries.read().get(&offset).cloned()
    }

    /// The byte offset just past the highest held entry (0 when nothing is held).
    pub fn end(&self) -> u64 {
        if self.is_empty() {
            return 0;
        }
        self.entries
            .read()
            .last_key_value()
            .map_or(0, |(&o, d)| o.saturating_add(d.len() as u64))
    }

    /// Entries held.
    pub fn len(&self) -> usize {
        self.entries.read().len()
    }

    /// True when nothing is held.
    pub fn is_empty(&self) -> bool {
        self.bytes() == 0
    }

    /// Every entry, in offset order (clones of the shared buffers, no copy of the bytes).
    pub(crate) fn snapshot(&self) -> Vec<(u64, Bytes)> {
        self.entries.read().iter().map(|(&o, d)| (o, d.clone())).collect()
    }

    /// Adds entries. An entry at an offset already held replaces it.
    pub(crate) fn insert(&self, new: impl IntoIterator<Item = (u64, Bytes)>) {
        let mut entries = self.entries.write();
        let mut bytes = self.bytes.load(Ordering::Relaxed);
        for (offset, data) in new {
            bytes += data.len() as u64;
            if let Some(old) = entries.insert(offset, data) {
                bytes -= old.len() as u64;
            }
        }
        self.bytes.store(bytes, Ordering::Release);
    }

    /// Removes the entries that start in any of the byte ranges `[start, end)`, returning
    /// them in no particular order. One turn at the lock for all of them: a commit releases
    /// a run per freed node.
    ///
    /// Few ranges are looked up one by one; many are met in one walk over the entries, as a
    /// search costs about as much as passing [`WALK_PER_SEARCH`] entries. (A commit of
    /// random inserts frees hundreds of runs, most of them written long ago; looking each
    /// up, and again after each removal, took 5% of such a run's instructions.)
    pub(crate) fn remove_ranges(&self, ranges: &[(u64, u64)]) -> Vec<(u64, Bytes)> {
        if self.bytes() == 0 {
            return Vec::new();
        }
        let mut entries = self.entries.write();
        let mut removed = Vec::with_capacity(ranges.len());
        if ranges.len().saturating_mul(WALK_PER_SEARCH) < entries.len() {
            for &(start, end) in ranges {
                if start >= end {
                    continue;
                }
                removed.extend(entries.extract_if(start..end, |_, _| true));
            }
        } else {
            let mut sorted: Vec<(u64, u64)> = ranges
                .iter()
                .copied()
                .filter(|(start, end)| start < end)
                .collect();
            sorted.sort_unstable();
            let mut next = 0;
            entries.retain(|&offset, data| {
                // Ranges that end at or before this entry cannot hold it or any later one.
                while sorted.get(next).is_some_and(|&(_, end)| end <= offset) {
                    next += 1;
                }
                // The range at `next` ends past `offset`; if it does not start by `offset`,
                // no later range (sorted by start) does.
                let inside = sorted.get(next).is_some_and(|&(start, _)| start <= offset);
                if inside {
                    // Taking leaves an empty `Bytes` (no allocation) in the entry dropped.
                    removed.push((offset, std::mem::take(data)));
                }
                !inside
            });
        }
        let gone: u64 = removed.iter().map(|(_, d)| d.len() as u64).sum();
        self.bytes.fetch_sub(gone, Ordering::AcqRel);
        removed
    }

    /// Removes the entries starting at `offsets` (those held), returning them.
    pub(crate) fn remove(&self, offsets: impl IntoIterator<Item = u64>) -> Vec<(u64, Bytes)> {
        let mut entries = self.entries.write();
        self.take(&mut entries, offsets)
    }

    /// Takes the entries at `offsets` out of `entries` (the locked map), keeping the byte
    /// count exact.
    fn take(
        &self,
        entries: &mut BTreeMap<u64, Bytes>,
        offsets: impl IntoIterator<Item = u64>,
    ) -> Vec<(u64, Bytes)> {
        let removed: Vec<(u64, Bytes)> = offsets
            .into_iter()
            .filter_map(|o| entries.remove(&o).map(|d| (o, d)))
            .collect();
        let gone: u64 = removed.iter().map(|(_, d)| d.len() as u64).sum();
        self.bytes.fetch_sub(gone, Ordering::AcqRel);
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_slices_of_whole_entries_only() {
        let held = HeldPages::default();
        assert!(held.read(0, 512).is_none());
        let run: Vec<u8> = (0..3 * 512).map(|i| (i / 512) as u8 + 1).collect();
        held.insert([(1024, Bytes::from(run)), (4096, Bytes::from(vec![9u8; 512]))]);
        assert_eq!(held.bytes(), 4 * 512);
        assert_eq!(held.len(), 2);
        assert_eq!(held.end(), 4096 + 512);
        assert_eq!(&held.read(1024, 512).unwrap()[..], &[1u8; 512][..]);
        assert_eq!(&held.read(1536, 1024).unwrap()[..512], &[2u8; 512][..]);
        assert_eq!(&held.read(2048, 512).unwrap()[..], &[3u8; 512][..]);
        assert!(held.read(2048, 1024).is_none(), "past the entry's end");
        assert!(held.read(2560, 512).is_none(), "between entries");
        assert!(held.read(512, 512).is_none(), "before the first entry");
        // Replacing keeps the byte count exact; removing returns what was held.
        held.insert([(4096, Bytes::from(vec![8u8; 1024]))]);
        assert_eq!(held.bytes(), 5 * 512);
        let gone = held.remove([4096, 8192]);
        assert_eq!(gone.len(), 1);
        assert_eq!(&gone[0].1[..], &[8u8; 1024][..]);
        assert_eq!(held.bytes(), 3 * 512);
        assert_eq!(held.snapshot().len(), 1);
        held.remove([1024]);
        assert!(held.is_empty() && held.read(1024, 512).is_none());
    }

    /// Ranges remove the entries that start inside them, whatever their length; empty
    /// ranges and ranges that only reach into an entry remove nothing.
    #[test]
    fn remove_ranges_takes_entries_starting_in_them() {
        let held = HeldPages::default();
        held.insert([
            (0, Bytes::from(vec![1u8; 512])),
            (1024, Bytes::from(vec![2u8; 1536])),
            (4096, Bytes::from(vec![3u8; 512])),
            (8192, Bytes::from(vec![4u8; 512])),
        ]);
        assert_eq!(held.bytes(), 3072);
        assert!(held
            .remove_ranges(&[(1100, 2000), (5000, 5000), (9000, 8000)])
            .is_empty());
        let gone = held.remove_ranges(&[(4096, 8193), (0, 1), (0, 1)]);
        let mut offsets: Vec<u64> = gone.iter().map(|&(o, _)| o).collect();
        offsets.sort_unstable();
        assert_eq!(offsets, vec![0, 4096, 8192]);
        assert_eq!(held.bytes(), 1536);
        assert_eq!(held.snapshot().len(), 1);
        assert!(held.read(1024, 512).is_some());
        assert!(HeldPages::default().remove_ranges(&[(0, 4096)]).is_empty());
    }

    proptest::proptest! {
        /// Both ways of removing (a search per range, one walk over the entries) take exactly
        /// the entries that start in some range, whatever the ranges (overlapping, empty,
        /// reversed, unsorted), and keep the byte count exact. All the ranges in one call
        /// take the walk, unless there are fewer than one range per `WALK_PER_SEARCH`
        /// entries; one range per call, with more than `WALK_PER_SEARCH` entries held, takes
        /// the searches.
        #[test]
        fn remove_ranges_matches_a_model(
            lens in proptest::collection::vec(0u64..4, 40..200),
            ranges in proptest::collection::vec((0u64..220, 0u64..24, proptest::bool::weighted(0.2)), 0..40),
        ) {
            // Entries of 1-3 units of 8 bytes; a zero length leaves a unit's gap.
            let (walked, searched) = (HeldPages::default(), HeldPages::default());
            let mut model = BTreeMap::new();
            let mut at = 0u64;
            for len in lens {
                if len > 0 {
                    model.insert(at * 8, len * 8);
                    for held in [&walked, &searched] {
                        held.insert([(at * 8, Bytes::from(vec![len as u8; (len * 8) as usize]))]);
                    }
                }
                at += len.max(1);
            }
            // Starts off entry boundaries now and then; some ranges reversed (ignored).
            let ranges: Vec<(u64, u64)> = ranges
                .iter()
                .map(|&(s, l, reversed)| {
                    let (start, end) = (s * 8 + l % 3, (s + l) * 8);
                    if reversed { (end, start) } else { (start, end) }
                })
                .collect();
            let want: Vec<u64> = model
                .keys()
                .copied()
                .filter(|&o| ranges.iter().any(|&(s, e)| s <= o && o < e))
                .collect();
            let mut by_walk: Vec<u64> =
                walked.remove_ranges(&ranges).iter().map(|&(o, _)| o).collect();
            let mut by_search: Vec<u64> = ranges
                .iter()
                .flat_map(|r| searched.remove_ranges(std::slice::from_ref(r)))
                .map(|(o, _)| o)
                .collect();
            by_walk.sort_unstable();
            by_search.sort_unstable();
            proptest::prop_assert_eq!(&by_walk, &want);
            proptest::prop_assert_eq!(&by_search, &want);
            for o in &want {
                model.remove(o);
            }
            for held in [&walked, &searched] {
                proptest::prop_assert_eq!(held.bytes(), model.values().sum::<u64>());
                proptest::prop_assert_eq!(held.offsets().len(), model.len());
            }
        }
    }
}
