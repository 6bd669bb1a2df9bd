//! Shared workloads for the flush benchmarks: dirty-page patterns with their free space,
//! page contents that can be checked after a flush, read-back verification, and the small
//! statistics (median, min, max over rounds) that the reports print.
//!
//! A workload is one flush's worth of dirty pages. [`PageLayout`] says where they go (in
//! buffer order) and which bytes of the region around them are free; [`Workload`] adds the
//! bytes of every page, derived from its offset by [`fill_page`], so a read-back can prove
//! that a policy put every page where it belongs ([`Workload::verify`]).

use std::fmt;
use std::str::FromStr;

use anyhow::{bail, Context};
use flush::{Backend, DirtyPage, DirtyPages, FreeRanges};
use rand::rngs::SmallRng;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::{Deserialize, Serialize};

/// The page size every workload uses unless told otherwise.
pub const PAGE_SIZE: usize = 4096;

/// Where the dirty pages of one flush sit in the file.
///
/// For every pattern the *buffer order* (the order a write buffer hands pages to the flush)
/// is a seeded shuffle, never ascending: a store dirties pages in tree order, not file order,
/// and an ascending buffer would let `per-page` look sequential by accident.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Pattern {
    /// Pages `0..N`, touching: the region has no free space. Every merging policy writes one
    /// run per `max_run_bytes`.
    Contiguous,
    /// Pages `0, 2, 4, .., 2N-2` of a `2N`-page region; the odd pages are free. Sorted merging
    /// alone cannot join anything; gap merging bridges every hole.
    EveryOther,
    /// `N` distinct pages drawn uniformly from a `4N`-page region; every other page of the
    /// region is free. Holes vary in width, so a gap threshold matters.
    Random,
}

impl Pattern {
    /// Every pattern, in report order.
    pub const ALL: [Pattern; 3] = [Pattern::Contiguous, Pattern::EveryOther, Pattern::Random];

    /// The name used on command lines and in reports.
    pub fn name(self) -> &'static str {
        match self {
            Pattern::Contiguous => "contiguous",
            Pattern::EveryOther => "every-other",
            Pattern::Random => "random",
        }
    }

    /// How many pages the region of an `n`-page workload spans (`None` on overflow).
    pub fn region_pages(self, n: u64) -> Option<u64> {
        match self {
            Pattern::Contiguous => Some(n),
            Pattern::EveryOther => n.checked_mul(2),
            Pattern::Random => n.checked_mul(4),
        }
    }
}

impl fmt::Display for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Pattern {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let s = s.trim();
        Pattern::ALL
            .into_iter()
            .find(|p| p.name() == s)
            .ok_or_else(|| format!("unknown pattern `{s}`; accepted: `contiguous`, `every-other`, `random`"))
    }
}

/// Where one flush's dirty pages go and which bytes around them are free.
#[derive(Debug, Clone)]
pub struct PageLayout {
    /// The pattern that made this layout.
    pub pattern: Pattern,
    /// Bytes per page.
    pub page_size: usize,
    /// The offset of every dirty page, in buffer order (see [`Pattern`]). Distinct, page
    /// aligned, all below `region_len`.
    pub offsets: Vec<u64>,
    /// The free byte ranges of the region: never overlapping a dirty page.
    pub free: FreeRanges,
    /// The region's length in bytes, from offset 0: the file length a benchmark pre-extends
    /// to, so that no flush grows the file.
    pub region_len: u64,
}

impl PageLayout {
    /// Lays out `pages` dirty pages of `page_size` bytes in `pattern`, shuffled by `seed`.
    ///
    /// Fails when `pages` or `page_size` is zero or the region does not fit in a `u64`.
    pub fn new(pattern: Pattern, pages: usize, page_size: usize, seed: u64) -> anyhow::Result<Self> {
        if pages == 0 || page_size == 0 {
            bail!("a workload needs at least one page of at least one byte (got {pages} pages of {page_size} bytes)");
        }
        let n = pages as u64;
        let ps = page_size as u64;
        let region_pages = pattern.region_pages(n);
        let region_len = region_pages
            .and_then(|r| r.checked_mul(ps))
            .with_context(|| format!("{pages} pages of {page_size} bytes overflow the address space"))?;
        let mut rng = SmallRng::seed_from_u64(seed);
        let mut indices: Vec<u64> = match pattern {
            Pattern::Contiguous => (0..n).collect(),
            Pattern::EveryOther => (0..n).map(|i| 2 * i).collect(),
            Pattern::Random => {
                let region = usize::try_from(region_len / ps).context("region too large for this machine")?;
                rand::seq::index::sample(&mut rng, region, pages)
                    .into_iter()
                    .map(|i| i as u64)
                    .collect()
            }
        };
        indices.shuffle(&mut rng);

        let mut free = FreeRanges::new();
        match pattern {
            Pattern::Contiguous => {}
            Pattern::EveryOther => {
                for i in 0..n {
                    free.insert((2 * i + 1) * ps, (2 * i + 2) * ps);
                }
            }
            Pattern::Random => {
                let mut sorted = indices.clone();
                sorted.sort_unstable();
                let mut next_free = 0u64;
                for &page in &sorted {
                    free.insert(next_free * ps, page * ps);
                    next_free = page + 1;
                }
                free.insert(next_free * ps, region_len);
            }
        }
        Ok(Self {
            pattern,
            page_size,
            offsets: indices.into_iter().map(|i| i * ps).collect(),
            free,
            region_len,
        })
    }

    /// How many dirty pages.
    pub fn len(&self) -> usize {
        self.offsets.len()
    }

    /// True when there are no dirty pages (never, for a layout from [`PageLayout::new`]).
    pub fn is_empty(&self) -> bool {
        self.offsets.is_empty()
    }

    /// Bytes of dirty pages.
    pub fn dirty_bytes(&self) -> u64 {
        self.offsets.len() as u64 * self.page_size as u64
    }

    /// Bytes of the region that are free.
    pub fn free_bytes(&self) -> u64 {
        self.free.iter().map(|(s, e)| e - s).sum()
    }
}

/// A [`PageLayout`] with the bytes of every page: what one flush writes.
#[derive(Clone)]
pub struct Workload {
    layout: PageLayout,
    /// Page `i` in buffer order is `data[i * page_size..(i + 1) * page_size]`.
    data: Vec<u8>,
}

impl fmt::Debug for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Workload")
            .field("pattern", &self.layout.pattern)
            .field("pages", &self.layout.len())
            .field("page_size", &self.layout.page_size)
            .field("region_len", &self.layout.region_len)
            .finish_non_exhaustive()
    }
}

impl Workload {
    /// Lays out the pages (see [`PageLayout::new`]) and fills each with its content.
    pub fn new(pattern: Pattern, pages: usize, page_size: usize, seed: u64) -> anyhow::Result<Self> {
        Ok(Self::from_layout(PageLayout::new(
            pattern, pages, page_size, seed,
        )?))
    }

    /// Fills every page of `layout` with its content ([`fill_page`]).
    pub fn from_layout(layout: PageLayout) -> Self {
        let mut data = vec![0u8; layout.offsets.len() * layout.page_size];
        for (chunk, &offset) in data.chunks_exact_mut(layout.page_size).zip(&layout.offsets) {
            fill_page(offset, chunk);
        }
        Self { layout, data }
    }

    /// The layout.
    pub fn layout(&self) -> &PageLayout {
        &self.layout
    }

    /// The free space around the pages, as the gap oracle of a flush.
    pub fn free(&self) -> &FreeRanges {
        &self.layout.free
    }

    /// The dirty pages, in buffer order, borrowing this workload's bytes.
    pub fn dirty_pages(&self) -> flush::Result<DirtyPages<'_>> {
        let pages = self
            .data
            .chunks_exact(self.layout.page_size)
            .zip(&self.layout.offsets)
            .map(|(data, &offset)| DirtyPage::new(offset, data))
            .collect();
        DirtyPages::new(pages)
    }

    /// Reads back every dirty page from `backend` and compares it with its content.
    pub fn verify_pages(&self, backend: &dyn Backend) -> anyhow::Result<()> {
        let mut buf = vec![0u8; self.layout.page_size];
        for (expected, &offset) in self
            .data
            .chunks_exact(self.layout.page_size)
            .zip(&self.layout.offsets)
        {
            backend
                .read_at(&mut buf, offset)
                .with_context(|| format!("reading back the page at offset {offset}"))?;
            if buf != expected {
                let at = buf.iter().zip(expected).position(|(a, b)| a != b).unwrap_or(0);
                bail!(
                    "page at offset {offset} holds wrong bytes (first difference at byte {at}: {:#04x}, expected {:#04x})",
                    buf[at],
                    expected[at]
                );
            }
        }
        Ok(())
    }

    /// Checks that every byte of the region outside the dirty pages is zero: true after a
    /// flush into a region that was all zeros, as gap fill is zeros. Reads in 1 MiB chunks.
    pub fn verify_rest_is_zero(&self, backend: &dyn Backend) -> anyhow::Result<()> {
        let ps = self.layout.page_size as u64;
        let mut dirty: Vec<u64> = self.layout.offsets.clone();
        dirty.sort_unstable();
        let mut buf = vec![0u8; 1 << 20];
        let mut check = |start: u64, end: u64| -> anyhow::Result<()> {
            let mut at = start;
            while at < end {
                let n = (end - at).min(buf.len() as u64) as usize;
                backend
                    .read_at(&mut buf[..n], at)
                    .with_context(|| format!("reading back {n} bytes at offset {at}"))?;
                if let Some(i) = buf[..n].iter().position(|&b| b != 0) {
                    bail!(
                        "byte at offset {} outside every dirty page is {:#04x}, expected 0",
                        at + i as u64,
                        buf[i]
                    );
                }
                at += n as u64;
            }
            Ok(())
        };
        let mut next = 0u64;
        for offset in dirty {
            check(next, offset)?;
            next = offset + ps;
        }
        check(next, self.layout.region_len)
    }

    /// Both checks: every dirty page holds its content and (for a region that was zeroed
    /// before the flush) every other byte is still zero.
    pub fn verify(&self, backend: &dyn Backend) -> anyhow::Result<()> {
        self.verify_pages(backend)?;
        self.verify_rest_is_zero(backend)
    }
}

/// Fills `buf` with the content of the page at `offset`: pseudo-random bytes seeded by the
/// offset, none of them zero (so a page can never be mistaken for gap fill or a hole).
pub fn fill_page(offset: u64, buf: &mut [u8]) {
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let word = splitmix64(offset ^ (i as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)).to_le_bytes();
        for (b, w) in chunk.iter_mut().zip(word) {
            *b = if w == 0 { 0xA5 } else { w };
        }
    }
}

/// The content of the `page_size`-byte page at `offset` (see [`fill_page`]).
pub fn page_content(offset: u64, page_size: usize) -> Vec<u8> {
    let mut buf = vec![0u8; page_size];
    fill_page(offset, &mut buf);
    buf
}

fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Median, minimum and maximum of a set of measurements.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Spread {
    /// The median (mean of the two middle values for an even count).
    pub median: f64,
    /// The smallest value.
    pub min: f64,
    /// The largest value.
    pub max: f64,
}

impl Spread {
    /// The spread of `values`, or `None` when there are none (NaNs sort last).
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_unstable_by(f64::total_cmp);
        let mid = v.len() / 2;
        let median = if v.len() % 2 == 1 {
            v[mid]
        } else {
            (v[mid - 1] + v[mid]) / 2.0
        };
        Some(Self {
            median,
            min: v[0],
            max: v[v.len() - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use flush::{FlushConfig, GapOracle, MemBackend, PlanExecutor};

    use super::*;

    fn check_layout(layout: &PageLayout, n: usize) {
        let ps = layout.page_size as u64;
        assert_eq!(layout.len(), n);
        let distinct: HashSet<u64> = layout.offsets.iter().copied().collect();
        assert_eq!(distinct.len(), n, "offsets must be distinct");
        for &o in &layout.offsets {
            assert_eq!(o % ps, 0, "offsets are page aligned");
            assert!(o + ps <= layout.region_len, "pages lie inside the region");
        }
        for (s, e) in layout.free.iter() {
            assert!(
                s < e && e <= layout.region_len,
                "free range [{s}, {e}) outside the region"
            );
            for &o in &layout.offsets {
                assert!(
                    e <= o || s >= o + ps,
                    "free range [{s}, {e}) overlaps the page at {o}"
                );
            }
        }
        assert_eq!(
            layout.dirty_bytes() + layout.free_bytes(),
            layout.region_len,
            "{:?}: every byte of the region is either dirty or free",
            layout.pattern
        );
    }

    #[test]
    fn patterns_parse_and_display() {
        for p in Pattern::ALL {
            assert_eq!(p.to_string().parse::<Pattern>().unwrap(), p);
        }
        assert_eq!(" every-other ".parse::<Pattern>().unwrap(), Pattern::EveryOther);
        let err = "sequential".parse::<Pattern>().unwrap_err();
        assert!(err.contains("sequential") && err.contains("every-other"), "{err}");
        assert_eq!(
            serde_json::to_string(&Pattern::EveryOther).unwrap(),
            "\"every-other\""
        );
    }

    #[test]
    fn contiguous_is_a_shuffle_of_the_first_pages() {
        for n in [1, 2, 7, 256] {
            let layout = PageLayout::new(Pattern::Contiguous, n, PAGE_SIZE, 1).unwrap();
            check_layout(&layout, n);
            let mut sorted = layout.offsets.clone();
            sorted.sort_unstable();
            assert_eq!(
                sorted,
                (0..n as u64).map(|i| i * PAGE_SIZE as u64).collect::<Vec<_>>()
            );
            assert_eq!(layout.free_bytes(), 0);
            assert_eq!(layout.region_len, n as u64 * PAGE_SIZE as u64);
        }
        let layout = PageLayout::new(Pattern::Contiguous, 256, PAGE_SIZE, 1).unwrap();
        assert!(
            layout.offsets.windows(2).any(|w| w[0] > w[1]),
            "buffer order must not be ascending"
        );
    }

    #[test]
    fn every_other_leaves_the_odd_pages_free() {
        let n = 100;
        let layout = PageLayout::new(Pattern::EveryOther, n, PAGE_SIZE, 2).unwrap();
        check_layout(&layout, n);
        let ps = PAGE_SIZE as u64;
        let mut sorted = layout.offsets.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..n as u64).map(|i| 2 * i * ps).collect::<Vec<_>>());
        for i in 0..n as u64 {
            assert!(layout.free.is_free((2 * i + 1) * ps, (2 * i + 2) * ps));
            assert!(!layout.free.is_free(2 * i * ps, 2 * i * ps + 1));
        }
        assert!(layout.offsets.windows(2).any(|w| w[0] > w[1]));
    }

    #[test]
    fn random_draws_distinct_pages_from_four_times_the_region() {
        for (n, seed) in [(1, 0), (10, 3), (4096, 4)] {
            let layout = PageLayout::new(Pattern::Random, n, PAGE_SIZE, seed).unwrap();
            check_layout(&layout, n);
            assert_eq!(layout.region_len, 4 * n as u64 * PAGE_SIZE as u64);
        }
        let a = PageLayout::new(Pattern::Random, 64, PAGE_SIZE, 9).unwrap();
        let b = PageLayout::new(Pattern::Random, 64, PAGE_SIZE, 9).unwrap();
        let c = PageLayout::new(Pattern::Random, 64, PAGE_SIZE, 10).unwrap();
        assert_eq!(a.offsets, b.offsets, "same seed, same layout");
        assert_ne!(a.offsets, c.offsets, "another seed, another layout");
    }

    #[test]
    fn bad_sizes_are_errors() {
        assert!(PageLayout::new(Pattern::Random, 0, PAGE_SIZE, 0).is_err());
        assert!(PageLayout::new(Pattern::Random, 1, 0, 0).is_err());
        assert!(PageLayout::new(Pattern::Random, usize::MAX / 2, PAGE_SIZE, 0).is_err());
    }

    #[test]
    fn page_content_is_nonzero_and_depends_on_the_offset() {
        let a = page_content(0, PAGE_SIZE);
        let b = page_content(PAGE_SIZE as u64, PAGE_SIZE);
        assert!(a.iter().all(|&x| x != 0));
        assert!(b.iter().all(|&x| x != 0));
        assert_ne!(a, b);
        assert_eq!(a, page_content(0, PAGE_SIZE));
        let odd = page_content(12345, 13);
        assert_eq!(odd.len(), 13);
        assert!(odd.iter().all(|&x| x != 0));
    }

    #[test]
    fn every_default_policy_passes_verification_and_a_wrong_file_fails_it() {
        for pattern in Pattern::ALL {
            let w = Workload::new(pattern, 64, PAGE_SIZE, 5).unwrap();
            let pages = w.dirty_pages().unwrap();
            for config in FlushConfig::all_defaults() {
                let backend = MemBackend::new();
                backend.set_len(w.layout().region_len).unwrap();
                PlanExecutor::new()
                    .flush(&*config.build(), &pages, w.free(), &backend)
                    .unwrap();
                w.verify(&backend)
                    .unwrap_or_else(|e| panic!("{pattern} {config}: {e:#}"));
                assert_eq!(backend.len().unwrap(), w.layout().region_len, "no growth");
            }
            let backend = MemBackend::new();
            backend.set_len(w.layout().region_len).unwrap();
            assert!(w.verify_pages(&backend).is_err(), "an empty file fails");
            let stray = w.layout().free.iter().next();
            if let Some((s, _)) = stray {
                PlanExecutor::new()
                    .flush(&*FlushConfig::PerPage.build(), &pages, w.free(), &backend)
                    .unwrap();
                backend.write_at(&[1], s).unwrap();
                assert!(w.verify_pages(&backend).is_ok());
                assert!(w.verify_rest_is_zero(&backend).is_err(), "a stray byte fails");
            }
        }
    }

    #[test]
    fn spread_of_values() {
        assert_eq!(Spread::of(&[]), None);
        let s = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.0, 1.0, 3.0));
        let s = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!((s.median, s.min, s.max), (2.5, 1.0, 4.0));
    }
}
