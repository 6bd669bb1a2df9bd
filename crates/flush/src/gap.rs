//! `GapOracle`: the owner of the file's space answers which byte ranges are free to overwrite.

use std::collections::BTreeMap;

/// Answers "may the byte range `[start, end)` be overwritten with anything?". A gap-merging
/// policy fills a gap between two dirty pages only when the oracle says it is free. The
/// store answers from its allocator: free means no committed or pending state can reach it.
pub trait GapOracle {
    /// True only if every byte of `[start, end)` is free. Never called with `start >= end`.
    fn is_free(&self, start: u64, end: u64) -> bool;
}

/// Nothing is free: gaps are never merged.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoFreeSpace;

impl GapOracle for NoFreeSpace {
    fn is_free(&self, _start: u64, _end: u64) -> bool {
        false
    }
}

impl<F: Fn(u64, u64) -> bool> GapOracle for F {
    fn is_free(&self, start: u64, end: u64) -> bool {
        self(start, end)
    }
}

/// A set of free byte ranges, kept merged. For tests, benchmarks and simple callers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FreeRanges {
    /// start -> end of each maximal free range.
    ranges: BTreeMap<u64, u64>,
}

impl FreeRanges {
    /// No free space.
    pub fn new() -> Self {
        Self::default()
    }

    /// Marks `[start, end)` free, merging with neighbours.
    pub fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        let (mut start, mut end) = (start, end);
        if let Some((&s, &e)) = self.ranges.range(..=start).next_back() {
            if e >= start {
                start = s;
                end = end.max(e);
            }
        }
        let absorbed: Vec<u64> = self.ranges.range(start..=end).map(|(&s, _)| s).collect();
        for s in absorbed {
            if let Some(e) = self.ranges.remove(&s) {
                end = end.max(e);
            }
        }
        self.ranges.insert(start, end);
    }

    /// The maximal free ranges, ascending.
    pub fn iter(&self) -> impl Iterator<Item = (u64, u64)> + '_ {
        self.ranges.iter().map(|(&s, &e)| (s, e))
    }
}

impl GapOracle for FreeRanges {
    fn is_free(&self, start: u64, end: u64) -> bool {
        matches!(self.ranges.range(..=start).next_back(), Some((_, &e)) if e >= end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn free_ranges_merge_and_answer_containment() {
        let mut f = FreeRanges::new();
        f.insert(10, 20);
        f.insert(30, 40);
        assert!(f.is_free(10, 20));
        assert!(f.is_free(12, 15));
        assert!(!f.is_free(15, 25));
        assert!(!f.is_free(5, 12));
        f.insert(20, 30);
        assert_eq!(f.iter().collect::<Vec<_>>(), vec![(10, 40)]);
        assert!(f.is_free(10, 40));
        f.insert(5, 12);
        f.insert(38, 50);
        assert_eq!(f.iter().collect::<Vec<_>>(), vec![(5, 50)]);
        assert!(!NoFreeSpace.is_free(0, 1));
        let odd = |s: u64, _e: u64| s % 2 == 1;
        assert!(odd.is_free(1, 2));
    }
}
