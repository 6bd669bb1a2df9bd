//! Seeded workload scripts: the same kind and seed always give the same steps.

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Which workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// Three column families, commits of both durabilities, syncs, one clean reopen.
    Mixed,
    /// Large (overflow) values rewritten and removed, tiny extents: growth and page reuse.
    Growth,
    /// Column families created and dropped between commits.
    Catalog,
    /// Four threads committing to their own column families at once (group commit).
    Threads,
    /// Keys appended in ascending order, many a commit, so leaves grow past a page; then
    /// rewrites and removes in random order, which cut the grown leaves into pages.
    Appends,
}

impl Kind {
    /// Every kind.
    pub const ALL: [Kind; 5] = [
        Kind::Mixed,
        Kind::Growth,
        Kind::Catalog,
        Kind::Threads,
        Kind::Appends,
    ];

    /// Its name on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Mixed => "mixed",
            Kind::Growth => "growth",
            Kind::Catalog => "catalog",
            Kind::Threads => "threads",
            Kind::Appends => "appends",
        }
    }
}

impl std::str::FromStr for Kind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Kind::ALL.into_iter().find(|k| k.name() == s).ok_or_else(|| {
            format!("unknown workload {s:?}; accepted: mixed, growth, catalog, threads, appends")
        })
    }
}

/// One step of a script.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// `create_cf`.
    Create(String),
    /// `drop_cf`.
    Drop(String),
    /// One write transaction on table `t`: puts (key, value length) and removes (key, None).
    Commit {
        /// The column family.
        cf: String,
        /// `Immediate` or `None`.
        durable: bool,
        /// The changes.
        ops: Vec<(u64, Option<usize>)>,
        /// Distinguishes this commit's values from every other's.
        tag: u32,
    },
    /// `ColumnFamily::sync`.
    Sync(String),
    /// Close the database and open it again over the same file.
    Reopen,
    /// Each list on its own thread, at the same time (each list touches only its own column
    /// family). Where the crash falls among the threads varies from run to run.
    Parallel(Vec<Vec<Step>>),
}

/// A workload: its identity and its steps.
#[derive(Debug, Clone)]
pub struct Script {
    /// Which kind.
    pub kind: Kind,
    /// Its seed.
    pub seed: u64,
    /// What it does, in order.
    pub steps: Vec<Step>,
}

fn rng_len(rng: &mut SmallRng) -> usize {
    rng.gen_range(1..12)
}

/// The value a commit writes for a key (derived, so a checker can recompute it).
pub fn value(cf: &str, key: u64, tag: u32, len: usize) -> Vec<u8> {
    let salt = cf.bytes().fold(tag as u64 ^ key.rotate_left(17), |h, b| {
        h.wrapping_mul(31).wrapping_add(b as u64)
    });
    (0..len)
        .map(|i| (salt.wrapping_add(i as u64).wrapping_mul(0x9E37_79B9) >> 24) as u8)
        .collect()
}

impl Script {
    /// The script of `kind` for `seed`.
    pub fn new(kind: Kind, seed: u64) -> Script {
        let mut rng = SmallRng::seed_from_u64(seed ^ (kind as u64) << 56);
        let mut steps = Vec::new();
        let mut tag = 0u32;
        let mut commit =
            |rng: &mut SmallRng, cf: &str, n: usize, keys: u64, sizes: (usize, usize), p_durable: f64| {
                tag += 1;
                let ops = (0..n)
                    .map(|_| {
                        let key = rng.gen_range(0..keys);
                        let value = (!rng.gen_bool(0.15)).then(|| rng.gen_range(sizes.0..=sizes.1));
                        (key, value)
                    })
                    .collect();
                Step::Commit {
                    cf: cf.to_owned(),
                    durable: rng.gen_bool(p_durable),
                    ops,
                    tag,
                }
            };
        match kind {
            Kind::Threads => {
                let cfs = ["t0", "t1", "t2", "t3"];
                steps.extend(cfs.iter().map(|c| Step::Create(c.to_string())));
                for round in 0..2 {
                    let lists = cfs
                        .iter()
                        .map(|cf| {
                            (0..6)
                                .map(|_| {
                                    let big = rng.gen_bool(0.2);
                                    let sizes = if big { (1500, 6000) } else { (8, 200) };
                                    let n = rng_len(&mut rng);
                                    commit(&mut rng, cf, n, 60, sizes, 0.6)
                                })
                                .collect()
                        })
                        .collect();
                    steps.push(Step::Parallel(lists));
                    if round == 0 {
                        steps.push(Step::Reopen);
                    }
                }
            }
            Kind::Mixed => {
                let cfs = ["a", "b", "c"];
                steps.extend(cfs.iter().map(|c| Step::Create(c.to_string())));
                for i in 0..36 {
                    let cf = cfs[rng.gen_range(0..3)];
                    let n = rng.gen_range(1..20);
                    steps.push(commit(&mut rng, cf, n, 200, (8, 300), 0.5));
                    if i == 12 {
                        steps.push(Step::Reopen);
                    }
                    if i % 10 == 9 {
                        steps.push(Step::Sync(cf.to_string()));
                    }
                }
            }
            Kind::Growth => {
                steps.push(Step::Create("big".into()));
                steps.push(Step::Create("small".into()));
                for _ in 0..24 {
                    let (cf, n, sizes) = if rng.gen_bool(0.7) {
                        ("big", rng.gen_range(1..5), (1500, 9000))
                    } else {
                        ("small", 10, (8, 64))
                    };
                    steps.push(commit(&mut rng, cf, n, 30, sizes, 0.6));
                }
            }
            Kind::Appends => {
                steps.push(Step::Create("log".into()));
                steps.push(Step::Create("other".into()));
                let mut next = 0u64;
                for i in 0..10 {
                    let n = rng.gen_range(20..50);
                    // A commit of `n` random operations, its keys then made the next `n`.
                    let mut step = commit(&mut rng, "log", n as usize, 1, (60, 400), 0.5);
                    if let Step::Commit { ops, .. } = &mut step {
                        for (key, value) in ops.iter_mut() {
                            *key = next;
                            value.get_or_insert(100);
                            next += 1;
                        }
                    }
                    steps.push(step);
                    if i == 5 {
                        steps.push(Step::Reopen);
                    }
                }
                steps.push(Step::Sync("log".into()));
                for _ in 0..10 {
                    let cf = if rng.gen_bool(0.8) { "log" } else { "other" };
                    let n = rng.gen_range(3..12);
                    steps.push(commit(&mut rng, cf, n, next, (60, 400), 0.5));
                }
            }
            Kind::Catalog => {
                let mut live: Vec<String> = Vec::new();
                for i in 0..10u32 {
                    let name = format!("c{i}");
                    steps.push(Step::Create(name.clone()));
                    live.push(name);
                    for _ in 0..2 {
                        let cf = live[rng.gen_range(0..live.len())].clone();
                        steps.push(commit(&mut rng, &cf, 5, 50, (8, 200), 0.5));
                    }
                    if live.len() > 2 && rng.gen_bool(0.4) {
                        let gone = live.remove(rng.gen_range(0..live.len()));
                        steps.push(Step::Drop(gone));
                    }
                }
            }
        }
        Script { kind, seed, steps }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scripts_are_deterministic_and_differ_by_seed() {
        for kind in Kind::ALL {
            assert_eq!(Script::new(kind, 7).steps, Script::new(kind, 7).steps);
            assert_ne!(Script::new(kind, 7).steps, Script::new(kind, 8).steps);
        }
        assert_eq!("growth".parse::<Kind>(), Ok(Kind::Growth));
        assert!("nope".parse::<Kind>().is_err());
    }
}
