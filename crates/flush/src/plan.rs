//! `WritePlan`: what a policy decided (runs of pages and gap fills), checked before any I/O.

use crate::{DirtyPages, FlushError, GapOracle, Result};

/// How the executor issues one run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RunShape {
    /// Concatenate the run into one buffer (zeros for gaps) and write it with one `pwrite`.
    Copy,
    /// Hand the pages (and a shared zero page for gaps) to `pwritev`: no copy.
    Vectored,
}

/// One piece of a run, in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Segment {
    /// The dirty page at this buffer position.
    Page(usize),
    /// This many free bytes, written as zeros.
    Gap(u64),
}

/// One contiguous write: `len` bytes at `offset`, made of `segments` in file order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Run<'p> {
    /// Where the run starts.
    pub offset: u64,
    /// Its length (pages plus gaps).
    pub len: u64,
    /// How to issue it.
    pub shape: RunShape,
    /// What it holds.
    pub segments: &'p [Segment],
}

impl Run<'_> {
    /// Zero-fill bytes in this run.
    pub fn gap_bytes(&self) -> u64 {
        self.segments
            .iter()
            .map(|s| match s {
                Segment::Gap(n) => *n,
                Segment::Page(_) => 0,
            })
            .sum()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct RunHeader {
    offset: u64,
    len: u64,
    shape: RunShape,
    first_segment: usize,
}

/// A flush policy's decision: the runs to write, in the order to write them. Built with
/// [`WritePlan::start_run`] and [`WritePlan::push_page`] / [`WritePlan::push_gap`]; stored
/// flat (one vector of runs, one of segments) so planning allocates twice per flush.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WritePlan {
    runs: Vec<RunHeader>,
    segments: Vec<Segment>,
}

impl WritePlan {
    /// An empty plan.
    pub fn new() -> Self {
        Self::default()
    }

    /// An empty plan with room for `runs` runs and `segments` segments.
    pub fn with_capacity(runs: usize, segments: usize) -> Self {
        Self {
            runs: Vec::with_capacity(runs),
            segments: Vec::with_capacity(segments),
        }
    }

    /// Opens a new run at `offset`; later pushes extend it.
    pub fn start_run(&mut self, offset: u64, shape: RunShape) {
        self.runs.push(RunHeader {
            offset,
            len: 0,
            shape,
            first_segment: self.segments.len(),
        });
    }

    /// Appends the page at buffer position `index` (of `len` bytes) to the open run.
    ///
    /// # Panics
    /// If no run was started: a planner bug, not an input error.
    pub fn push_page(&mut self, index: usize, len: u64) {
        self.open_run().len += len;
        self.segments.push(Segment::Page(index));
    }

    /// Appends `len` zero-filled gap bytes to the open run.
    ///
    /// # Panics
    /// If no run was started.
    pub fn push_gap(&mut self, len: u64) {
        self.open_run().len += len;
        self.segments.push(Segment::Gap(len));
    }

    fn open_run(&mut self) -> &mut RunHeader {
        self.runs.last_mut().expect("start_run before pushing segments")
    }

    /// Number of runs (write calls, before any split at `IOV_MAX` or short writes).
    pub fn run_count(&self) -> usize {
        self.runs.len()
    }

    /// The runs, in execution order.
    pub fn runs(&self) -> impl ExactSizeIterator<Item = Run<'_>> + '_ {
        self.runs.iter().enumerate().map(move |(i, h)| {
            let end = self
                .runs
                .get(i + 1)
                .map_or(self.segments.len(), |n| n.first_segment);
            Run {
                offset: h.offset,
                len: h.len,
                shape: h.shape,
                segments: &self.segments[h.first_segment..end],
            }
        })
    }

    /// Total zero-fill bytes.
    pub fn gap_bytes(&self) -> u64 {
        self.runs().map(|r| r.gap_bytes()).sum()
    }

    /// Checks the plan against the pages it was made for: every page appears exactly once, at
    /// its own offset; runs are non-empty, start with a page, and are contiguous inside; every
    /// gap is free per `gaps`. So a plan that passes writes nothing outside the dirty pages and
    /// the free gaps. `seen` is scratch space (reused across calls to avoid allocating).
    pub fn check(&self, pages: &DirtyPages<'_>, gaps: &dyn GapOracle, seen: &mut Vec<bool>) -> Result<()> {
        let bad = |msg: String| Err(FlushError::InvalidPlan(msg));
        seen.clear();
        seen.resize(pages.len(), false);
        for (r, run) in self.runs().enumerate() {
            if !matches!(run.segments.first(), Some(Segment::Page(_)))
                || !matches!(run.segments.last(), Some(Segment::Page(_)))
            {
                return bad(format!("run {r} must start and end with a page"));
            }
            let mut at = run.offset;
            for seg in run.segments {
                match *seg {
                    Segment::Page(i) => {
                        let Some(page) = pages.get(i) else {
                            return bad(format!(
                                "run {r} names page {i}, but the flush has {}",
                                pages.len()
                            ));
                        };
                        if page.offset != at {
                            return bad(format!(
                                "run {r} puts page {i} (offset {}) at offset {at}",
                                page.offset
                            ));
                        }
                        if std::mem::replace(&mut seen[i], true) {
                            return bad(format!("page {i} (offset {}) is written twice", page.offset));
                        }
                        at = page.end();
                    }
                    Segment::Gap(n) => {
                        if n == 0 {
                            return bad(format!("run {r} has an empty gap at offset {at}"));
                        }
                        let end = at.saturating_add(n);
                        if !gaps.is_free(at, end) {
                            return bad(format!("run {r} fills [{at}, {end}), which is not free"));
                        }
                        at = end;
                    }
                }
            }
            if at - run.offset != run.len {
                return bad(format!(
                    "run {r} says {} bytes but holds {}",
                    run.len,
                    at - run.offset
                ));
            }
        }
        if let Some(i) = seen.iter().position(|s| !s) {
            return bad(format!("page {i} is never written"));
        }
        Ok(())
    }
}
