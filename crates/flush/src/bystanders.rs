//! `Bystanders`: a count of the threads that want cores beside a file's writers, which
//! [`crate::FileBackend`]'s waiters read to choose between yielding and sleeping
//! ([`crate::FileOptions::bystanders`]). Kept in cache-line shards, one picked per thread,
//! so that threads entering and leaving (cf-store's read transactions, one per lookup in
//! some programs) do not bounce one cache line between cores. (A single shared counter
//! measured 0.89x and then 1.14x of the build without it in two 2-thread A/Bs of
//! lookups that each open a read transaction: inside this machine's noise, but a cost
//! the shards avoid by construction.)

use std::cell::Cell;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Shards of the count: enough for a thread each on most machines; threads beyond share.
const SHARDS: usize = 16;

/// One shard on a cache line of its own (128 bytes: adjacent-line prefetch pairs 64-byte lines).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Shard(AtomicUsize);

/// See the module docs. [`Bystanders::enter`] and [`Bystanders::leave`] must pair, with the
/// shard `enter` returned (from any thread).
#[derive(Debug, Default)]
pub struct Bystanders {
    shards: [Shard; SHARDS],
}

thread_local! {
    /// This thread's shard, given out in turn.
    static SHARD: Cell<Option<usize>> = const { Cell::new(None) };
}

/// The next shard to give a thread.
static NEXT_SHARD: AtomicUsize = AtomicUsize::new(0);

impl Bystanders {
    /// A count of zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// Counts one more bystander, on the calling thread's shard, and returns that shard for
    /// [`Bystanders::leave`].
    pub fn enter(&self) -> usize {
        let shard = SHARD.with(|s| match s.get() {
            Some(i) => i,
            None => {
                let i = NEXT_SHARD.fetch_add(1, Ordering::Relaxed) % SHARDS;
                s.set(Some(i));
                i
            }
        });
        self.shards[shard].0.fetch_add(1, Ordering::Relaxed);
        shard
    }

    /// Counts one bystander fewer on `shard` (as [`Bystanders::enter`] returned it).
    pub fn leave(&self, shard: usize) {
        self.shards[shard % SHARDS].0.fetch_sub(1, Ordering::Relaxed);
    }

    /// Whether any bystander is counted now (a hint: it may change as soon as it is read).
    pub fn any(&self) -> bool {
        self.shards.iter().any(|s| s.0.load(Ordering::Relaxed) != 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_count_until_they_leave_from_any_thread() {
        let b = Bystanders::new();
        assert!(!b.any());
        let here = b.enter();
        let there = std::thread::scope(|s| s.spawn(|| b.enter()).join().unwrap());
        assert!(b.any());
        // Each leaves from the other's thread.
        std::thread::scope(|s| s.spawn(|| b.leave(here)).join().unwrap());
        assert!(b.any(), "one is still in");
        b.leave(there);
        assert!(!b.any());
    }

    #[test]
    fn many_threads_share_the_shards_and_the_count_stays_exact() {
        let b = Bystanders::new();
        let shards: Vec<usize> = std::thread::scope(|s| {
            (0..3 * SHARDS)
                .map(|_| s.spawn(|| b.enter()))
                .collect::<Vec<_>>()
                .into_iter()
                .map(|h| h.join().unwrap())
                .collect()
        });
        assert!(b.any());
        for shard in shards {
            b.leave(shard);
        }
        assert!(!b.any());
    }
}
