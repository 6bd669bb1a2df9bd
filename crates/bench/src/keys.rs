//! The keys of a cell: which u64 each insert uses (stored big-endian, 8 bytes, by every
//! engine), per thread and transaction, and the overwrite preload.

use clap::ValueEnum;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// How a transaction picks its keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum KeyMode {
    /// Key `txn * ops_per_txn + i`: every thread inserts `0..txns * ops_per_txn` in order.
    Sequential,
    /// A seeded random u64 per insert (a different stream per thread).
    Random,
    /// First an untimed preload of the sequential keys, then timed transactions that rewrite
    /// keys drawn uniformly from that set.
    Overwrite,
}

impl KeyMode {
    /// The name on the command line and in the JSON.
    pub fn name(self) -> &'static str {
        match self {
            KeyMode::Sequential => "sequential",
            KeyMode::Random => "random",
            KeyMode::Overwrite => "overwrite",
        }
    }

    /// Whether the cell starts with an untimed preload of the sequential keys.
    pub fn preloads(self) -> bool {
        self == KeyMode::Overwrite
    }
}

/// One thread's key stream.
#[derive(Debug)]
pub struct KeyGen {
    mode: KeyMode,
    ops_per_txn: u64,
    /// `txns * ops_per_txn`: the sequential set (and the overwrite range).
    key_space: u64,
    rng: SmallRng,
}

impl KeyGen {
    /// The keys thread `thread` of a cell with `txns` transactions of `ops_per_txn` inserts
    /// uses. The caller has checked that `txns * ops_per_txn` fits a u64.
    pub fn new(mode: KeyMode, thread: u64, txns: u64, ops_per_txn: u64, seed: u64) -> Self {
        // Distinct, reproducible streams per thread: a SplitMix-style odd multiplier spreads
        // neighbouring thread numbers over the seed space.
        let stream = seed ^ thread.wrapping_add(1).wrapping_mul(0x9E37_79B9_7F4A_7C15);
        Self {
            mode,
            ops_per_txn,
            key_space: txns * ops_per_txn,
            rng: SmallRng::seed_from_u64(stream),
        }
    }

    /// Replaces `out` with the keys of timed transaction `txn`.
    pub fn fill(&mut self, txn: u64, out: &mut Vec<u64>) {
        out.clear();
        match self.mode {
            KeyMode::Sequential => sequential(txn, self.ops_per_txn, out),
            KeyMode::Random => out.extend((0..self.ops_per_txn).map(|_| self.rng.gen::<u64>())),
            KeyMode::Overwrite => {
                let space = self.key_space;
                out.extend((0..self.ops_per_txn).map(|_| self.rng.gen_range(0..space)));
            }
        }
    }
}

/// Replaces `out` with the sequential keys of transaction `txn` (also the overwrite preload's).
pub fn sequential(txn: u64, ops_per_txn: u64, out: &mut Vec<u64>) {
    out.clear();
    let first = txn * ops_per_txn;
    out.extend(first..first + ops_per_txn);
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    fn all(mode: KeyMode, thread: u64, txns: u64, ops: u64, seed: u64) -> Vec<Vec<u64>> {
        let mut g = KeyGen::new(mode, thread, txns, ops, seed);
        (0..txns)
            .map(|t| {
                let mut v = Vec::new();
                g.fill(t, &mut v);
                v
            })
            .collect()
    }

    #[test]
    fn sequential_keys_are_txn_times_ops_plus_i() {
        let keys = all(KeyMode::Sequential, 3, 4, 5, 42);
        assert_eq!(keys.len(), 4);
        for (txn, batch) in keys.iter().enumerate() {
            let want: Vec<u64> = (0..5).map(|i| txn as u64 * 5 + i).collect();
            assert_eq!(batch, &want);
        }
        // Every thread writes the same set: they go to different CFs, files or keyspaces.
        assert_eq!(keys, all(KeyMode::Sequential, 0, 4, 5, 7));
        let mut v = vec![99];
        sequential(2, 1000, &mut v);
        assert_eq!((v.len(), v[0], v[999]), (1000, 2000, 2999));
    }

    #[test]
    fn random_keys_are_seeded_per_thread() {
        let a = all(KeyMode::Random, 0, 10, 100, 42);
        assert_eq!(a, all(KeyMode::Random, 0, 10, 100, 42), "same seed, same keys");
        assert_ne!(a, all(KeyMode::Random, 1, 10, 100, 42), "threads differ");
        assert_ne!(a, all(KeyMode::Random, 0, 10, 100, 43), "seeds differ");
        let flat: Vec<u64> = a.iter().flatten().copied().collect();
        assert_eq!(flat.len(), 1000);
        let distinct: HashSet<u64> = flat.iter().copied().collect();
        assert_eq!(distinct.len(), 1000, "64-bit random keys do not collide here");
        // Spread over the whole u64 range, not a small prefix.
        assert!(flat.iter().any(|&k| k > u64::MAX / 2));
        assert!(flat.iter().any(|&k| k < u64::MAX / 2));
    }

    #[test]
    fn overwrite_keys_come_from_the_preloaded_set() {
        let (txns, ops) = (20, 50);
        let mut preloaded = HashSet::new();
        let mut v = Vec::new();
        for t in 0..txns {
            sequential(t, ops, &mut v);
            preloaded.extend(v.iter().copied());
        }
        assert_eq!(preloaded.len(), (txns * ops) as usize);
        let keys = all(KeyMode::Overwrite, 2, txns, ops, 42);
        let flat: Vec<u64> = keys.iter().flatten().copied().collect();
        assert_eq!(flat.len(), (txns * ops) as usize);
        assert!(flat.iter().all(|k| preloaded.contains(k)));
        // Uniform over the set: not sequential, and reaching both ends' halves.
        assert_ne!(flat, (0..txns * ops).collect::<Vec<_>>());
        assert!(flat.iter().any(|&k| k < 100) && flat.iter().any(|&k| k >= 900));
        assert_eq!(keys, all(KeyMode::Overwrite, 2, txns, ops, 42));
        assert!(KeyMode::Overwrite.preloads());
        assert!(!KeyMode::Sequential.preloads() && !KeyMode::Random.preloads());
    }
}
