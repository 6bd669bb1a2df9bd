//! At least 2,000 crash points over three workloads: every crash image reopens to committed
//! states, none older than the last durable commit, no column family changed by another's work.

use torture::{explore, replay_command, script::Kind, Script};

/// Images per crash point: nothing unsynced kept, everything kept, and two seeded subsets
/// with torn sectors.
const IMAGES: [u64; 4] = [0, u64::MAX, 0x5eed_0001, 0x5eed_0002];

/// Seeds per workload: enough for at least 700 crash points each.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=8;

/// Crashes every script of `kind` at every one of its I/O calls; returns (points, images).
fn crash_everywhere(kind: Kind) -> (u64, u64) {
    let (mut points, mut images) = (0, 0);
    for seed in SEEDS {
        let script = Script::new(kind, seed);
        let calls = torture::crash::total_calls(&script);
        assert!(calls > 20, "{kind:?} seed {seed} makes only {calls} I/O calls");
        match explore(&script, 0..=calls, &IMAGES) {
            Ok(checked) => images += checked,
            Err(f) => panic!("{}\nreplay: {}", f.message, replay_command(&f)),
        }
        points += calls + 1;
    }
    eprintln!("{}: {points} crash points, {images} images verified", kind.name());
    (points, images)
}

#[test]
fn mixed_durability_across_three_column_families() {
    assert!(crash_everywhere(Kind::Mixed).0 >= 700);
}

#[test]
fn growth_and_large_values() {
    assert!(crash_everywhere(Kind::Growth).0 >= 700);
}

#[test]
fn creates_and_drops() {
    assert!(crash_everywhere(Kind::Catalog).0 >= 700);
}

#[test]
fn four_threads_committing_at_once() {
    // The crash point falls wherever the threads' interleaving puts it; each image must
    // still hold committed states only.
    assert!(crash_everywhere(Kind::Threads).0 >= 700);
}
