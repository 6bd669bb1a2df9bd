//! `HoldGate`: decides, commit by commit, whether a space holds the pages of its commits
//! without durability in memory ([`crate::DbBuilder::hold_bytes`]), from how much of what it
//! wrote lately its later commits freed.
//!
//! Holding pays when pages are freed before the budget fills, so they are never written:
//! the root and upper branches that every commit rewrites, leaves that random updates revisit.
//! It costs when nothing is freed: an append load (W1) writes the same bytes later, from
//! buffers that have gone cold in the CPU's caches meanwhile (measured 0.70x-0.89x; see
//! ARCHITECTURE.md, "Held pages"). So the gate keeps a shadow of the last `budget` bytes the
//! space wrote or held, by offset, and counts the bytes each commit frees out of it: the bytes
//! that holding with this budget would have spared (or did spare). It holds while, on
//! average over the last commits, those are at least a quarter of the bytes the commits
//! write, and stops below an eighth. The shadow is kept whether the space holds or not, so
//! the gate needs no trial period and an append load never holds at all.
//!
//! It counts pages when a commit frees them, not when they can be reused: a snapshot kept
//! open for many commits keeps the freed held pages from being dropped, and they are written
//! at the budget after all. So the gate also judges each window (a budget's worth of bytes
//! held over at least eight commits, or what was held before everything held was written, if
//! that is at least a quarter of the budget): when less than an eighth of what it held was
//! dropped unwritten, it
//! writes every commit at once for the next 16 commits, then 32, and so on up to 1,024,
//! until a window pays again.

use std::collections::VecDeque;

use rustc_hash::FxHashMap;

use crate::btree::PageId;

/// Weight of the newest commit in the running averages: about the last eight commits count.
const NEWEST_WEIGHT: f64 = 1.0 / 8.0;
/// The shadow spans the budget, up to this: a gate with a huge budget and an append load
/// would otherwise remember every page ever written.
const MAX_SHADOW_BYTES: u64 = 1 << 30;
/// Commits written at once after the first window that did not pay, doubling after each
/// further one up to [`MAX_BACKOFF`].
const MIN_BACKOFF: u64 = 16;
const MAX_BACKOFF: u64 = 1024;
/// A window that held a budget's worth ends only once it spans this many holding commits
/// (the running averages' horizon), so that the pages of a commit that holds much at once
/// have commits after it to be revisited in before the window is judged.
const MIN_WINDOW_COMMITS: u64 = 8;
/// Holding starts when the freed share of the bytes written reaches this...
const START_SHARE: f64 = 1.0 / 4.0;
/// ...and stops when it falls below this.
const STOP_SHARE: f64 = 1.0 / 8.0;

/// See the module docs. Offsets are in pages.
#[derive(Debug)]
pub struct HoldGate {
    budget: u64,
    /// Entries written or held lately: start page -> (pages, sequence number).
    recent: FxHashMap<PageId, (u64, u64)>,
    /// The same entries, oldest first, with the sequence number each was noted under (an entry
    /// noted again at the same start is a new one).
    order: VecDeque<(PageId, u64)>,
    recent_bytes: u64,
    next_seq: u64,
    page_size: u64,
    /// Running averages of the bytes a commit writes and of those it frees out of `recent`.
    avg_written: f64,
    avg_freed: f64,
    holding: bool,
    /// Bytes held since everything held was last written, and of them dropped unwritten,
    /// and the commits that held them.
    window_held: u64,
    window_dropped: u64,
    window_commits: u64,
    /// Commits still to write at once after a window that did not pay, and the next pause.
    skip: u64,
    backoff: u64,
}

impl HoldGate {
    /// A gate for a space with this budget (0: never holds) and page size.
    pub fn new(budget: u64, page_size: u64) -> Self {
        Self {
            budget,
            recent: FxHashMap::default(),
            order: VecDeque::new(),
            recent_bytes: 0,
            next_seq: 0,
            page_size,
            avg_written: 0.0,
            avg_freed: 0.0,
            holding: false,
            window_held: 0,
            window_dropped: 0,
            window_commits: 0,
            skip: 0,
            backoff: MIN_BACKOFF,
        }
    }

    /// A commit held `bytes`. A budget's worth held over at least [`MIN_WINDOW_COMMITS`]
    /// commits ends a window (held pages are written oldest first as new ones come, so a
    /// window need not end with everything written).
    pub fn held(&mut self, bytes: u64) {
        self.window_held += bytes;
        self.window_commits += 1;
        if self.window_held >= self.budget && self.window_commits >= MIN_WINDOW_COMMITS {
            self.judge();
        }
    }

    /// Held pages of `bytes` were dropped unwritten.
    pub fn dropped(&mut self, bytes: u64) {
        self.window_dropped += bytes;
    }

    /// Everything held was written: the window ends.
    pub fn written(&mut self) {
        self.judge();
    }

    /// Ends a window. One that held at least a quarter of the budget and dropped less than
    /// an eighth of it pauses holding.
    fn judge(&mut self) {
        if self.window_held >= self.budget / 4 && self.window_held > 0 {
            if self.window_dropped.saturating_mul(8) < self.window_held {
                self.skip = self.backoff;
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            } else {
                self.backoff = MIN_BACKOFF;
            }
        }
        self.window_held = 0;
        self.window_dropped = 0;
        self.window_commits = 0;
    }

    /// The budget in bytes.
    pub fn budget(&self) -> u64 {
        self.budget
    }

    /// Takes one commit into account: `freed`, the runs it frees (as `(first page, pages)`;
    /// adjacent nodes' runs merged), and `written`, the entries it writes or holds. Returns whether a commit without
    /// durability should hold its pages (the caller still checks the budget).
    pub fn commit(
        &mut self,
        freed: &[(PageId, u64)],
        written: impl IntoIterator<Item = (PageId, u64)>,
    ) -> bool {
        if self.budget == 0 {
            return false;
        }
        let mut freed_bytes = 0;
        for &(start, pages) in freed {
            // A run is whole nodes: probe each page that could start one.
            let end = start.saturating_add(pages);
            let mut p = start;
            while p < end {
                match self.recent.remove(&p) {
                    Some((n, _)) => {
                        freed_bytes += n * self.page_size;
                        self.recent_bytes -= n * self.page_size;
                        p = p.saturating_add(n.max(1));
                    }
                    None => p += 1,
                }
            }
        }
        let mut written_bytes = 0;
        for (start, pages) in written {
            let seq = self.next_seq;
            self.next_seq += 1;
            if let Some((old, _)) = self.recent.insert(start, (pages, seq)) {
                self.recent_bytes -= old * self.page_size;
            }
            self.order.push_back((start, seq));
            self.recent_bytes += pages * self.page_size;
            written_bytes += pages * self.page_size;
        }
        while self.recent_bytes > self.budget.min(MAX_SHADOW_BYTES) {
            let Some((start, seq)) = self.order.pop_front() else {
                break;
            };
            if self.recent.get(&start).is_some_and(|&(_, s)| s == seq) {
                let (n, _) = self.recent.remove(&start).expect("just found");
                self.recent_bytes -= n * self.page_size;
            }
        }
        // Drop queue entries whose pages were freed or noted again, so it stays as long as
        // `recent` (not as long as every entry ever noted).
        if self.order.len() > 2 * self.recent.len() + 64 {
            let recent = &self.recent;
            self.order
                .retain(|(start, seq)| recent.get(start).is_some_and(|&(_, s)| s == *seq));
        }
        self.avg_written += NEWEST_WEIGHT * (written_bytes as f64 - self.avg_written);
        self.avg_freed += NEWEST_WEIGHT * (freed_bytes as f64 - self.avg_freed);
        let share = if self.avg_written > 0.0 {
            self.avg_freed / self.avg_written
        } else {
            0.0
        };
        self.holding = if self.holding {
            share >= STOP_SHARE
        } else {
            share >= START_SHARE
        };
        if self.skip > 0 {
            self.skip -= 1;
            return false;
        }
        self.holding
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PAGE: u64 = 4096;

    /// Appends: every commit writes new pages and frees only a few (the right edge): the gate
    /// never holds.
    #[test]
    fn appends_never_hold() {
        let mut gate = HoldGate::new(64 << 20, PAGE);
        let mut next = 0;
        let mut edge: Vec<(PageId, u64)> = Vec::new();
        for _ in 0..200 {
            let mut written: Vec<(PageId, u64)> = (0..68).map(|i| (next + i * 4, 4)).collect();
            next += 68 * 4;
            let spine = vec![(next, 1), (next + 1, 1)];
            next += 2;
            written.extend(&spine);
            assert!(!gate.commit(&edge, written));
            edge = spine;
        }
    }

    /// Rewriting the same pages commit after commit (the root, small transactions): the gate
    /// holds from the first commits on.
    #[test]
    fn rewrites_hold() {
        let mut gate = HoldGate::new(16 << 20, PAGE);
        let mut prev: Vec<(PageId, u64)> = Vec::new();
        let mut held = 0;
        for c in 0..50u64 {
            let written: Vec<(PageId, u64)> = (0..10).map(|i| (1000 + (c % 2) * 100 + i, 1)).collect();
            if gate.commit(&prev, written.clone()) {
                held += 1;
            }
            prev = written;
        }
        assert!(held >= 45, "held {held} of 50");
    }

    /// Pages freed long after they were written (more than the budget later) do not count:
    /// with a budget too small for the distance between rewrites the gate does not hold, with
    /// one large enough it does.
    #[test]
    fn the_budget_decides_which_frees_count() {
        let run = |budget: u64| {
            let mut gate = HoldGate::new(budget, PAGE);
            // Each commit writes 100 one-page entries and frees the ones written 10 commits
            // (1,000 pages) before.
            let mut gens: VecDeque<Vec<(PageId, u64)>> = VecDeque::new();
            let mut next = 0;
            let mut held = 0;
            for c in 0..200 {
                let written: Vec<(PageId, u64)> = (0..100).map(|i| (next + i, 1)).collect();
                next += 100;
                let freed = if gens.len() == 10 {
                    gens.pop_front().unwrap()
                } else {
                    Vec::new()
                };
                if gate.commit(&freed, written.clone()) && c >= 20 {
                    held += 1;
                }
                gens.push_back(written);
            }
            held
        };
        assert_eq!(
            run(100 * PAGE * 5),
            0,
            "rewrites come 10 commits later, the budget holds 5"
        );
        assert_eq!(run(100 * PAGE * 12), 180, "the budget holds 12 commits");
        assert_eq!(run(0), 0, "no budget, no holding");
    }

    /// Windows that drop nothing (their frees pinned by a snapshot) pause holding for 16
    /// commits, then 32; one that pays ends the pauses.
    #[test]
    fn windows_that_drop_nothing_pause_holding() {
        let budget = 64 * PAGE;
        let mut gate = HoldGate::new(budget, PAGE);
        let mut prev: Vec<(PageId, u64)> = Vec::new();
        let mut step = |gate: &mut HoldGate, c: u64| {
            let written: Vec<(PageId, u64)> = (0..8).map(|i| (1000 + (c % 2) * 100 + i, 1)).collect();
            let hold = gate.commit(&prev, written.clone());
            prev = written;
            hold
        };
        let mut c = 0;
        while !step(&mut gate, c) {
            c += 1;
        }
        // A window of the whole budget with nothing dropped (it ends when a budget's worth
        // was held over eight commits, with or without a write of everything). One commit
        // of the whole budget is not a window yet.
        gate.held(budget);
        assert!(step(&mut gate, c + 1), "one commit is not a window");
        c += 1;
        for _ in 1..MIN_WINDOW_COMMITS {
            gate.held(0);
        }
        let paused = (0..16).filter(|i| step(&mut gate, c + 1 + i)).count();
        assert_eq!(paused, 0, "16 commits written at once");
        assert!(step(&mut gate, c + 17), "then it holds again");
        gate.held(budget / 2);
        gate.written();
        assert_eq!(
            (0..32).filter(|i| step(&mut gate, c + 18 + i)).count(),
            0,
            "then 32"
        );
        // A window that pays resets the pause; one too small to judge changes nothing.
        gate.dropped(budget / 2);
        gate.held(budget);
        gate.held(budget / 8);
        gate.written();
        assert!(step(&mut gate, c + 100));
        for _ in 0..MIN_WINDOW_COMMITS {
            gate.held(budget / 8);
        }
        assert_eq!(
            (0..16).filter(|i| step(&mut gate, c + 101 + i)).count(),
            0,
            "16 again"
        );
    }

    /// The shadow stays within its budget however many entries pass through it, and a freed
    /// run counts every entry that starts in it.
    #[test]
    fn the_shadow_is_bounded_and_runs_cover_entries() {
        let mut gate = HoldGate::new(64 * PAGE, PAGE);
        for c in 0..1000u64 {
            gate.commit(&[], (0..8).map(|i| (c * 8 + i, 1)));
            assert!(gate.recent_bytes <= 64 * PAGE);
            assert!(gate.order.len() <= 2 * gate.recent.len() + 64 + 8);
        }
        let last: Vec<(PageId, u64)> = (0..8).map(|i| (9000 + i * 2, 2)).collect();
        gate.commit(&[], last);
        let before = gate.recent_bytes;
        gate.commit(&[(9000, 6), (9100, 1)], std::iter::empty());
        assert_eq!(before - gate.recent_bytes, 6 * PAGE);
    }
}
