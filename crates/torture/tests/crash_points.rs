//! At least 3,500 crash points over five workloads: every crash image reopens to committed
//! states, none older than the last durable commit, no column family changed by another's work.

use torture::{explore, replay_command, script::Kind, Script};

/// Images per crash point: nothing unsynced kept, everything kept, and two seeded subsets
/// with torn sectors.
const IMAGES: [u64; 4] = [0, u64::MAX, 0x5eed_0001, 0x5eed_0002];

/// Seeds per workload: at least this many, and more until 700 crash points are reached.
const MIN_SEEDS: u64 = 8;
const MIN_POINTS: u64 = 700;

/// Crashes every script of `kind` at every one of its I/O calls; returns (points, images,
/// bytes of held pages dropped unwritten in the uncrashed runs).
fn crash_everywhere(kind: Kind) -> (u64, u64, u64) {
    let (mut points, mut images, mut dropped) = (0, 0, 0);
    let mut seed = 0;
    while seed < MIN_SEEDS || points < MIN_POINTS {
        seed += 1;
        let script = Script::new(kind, seed);
        let (calls, held_dropped) = torture::crash::total_calls(&script);
        dropped += held_dropped;
        assert!(calls > 20, "{kind:?} seed {seed} makes only {calls} I/O calls");
        match explore(&script, 0..=calls, &IMAGES) {
            Ok(checked) => images += checked,
            Err(f) => panic!("{}\nreplay: {}", f.message, replay_command(&f)),
        }
        points += calls + 1;
    }
    eprintln!(
        "{}: {points} crash points, {images} images verified, {dropped} held bytes dropped",
        kind.name()
    );
    (points, images, dropped)
}

#[test]
fn mixed_durability_across_three_column_families() {
    let (points, _, dropped) = crash_everywhere(Kind::Mixed);
    assert!(points >= MIN_POINTS);
    // Its commits rewrite their keys, so the column families hold pages and drop some
    // unwritten: the crash points cover held pages.
    assert!(dropped > 0, "no held page was dropped");
}

#[test]
fn growth_and_large_values() {
    assert!(crash_everywhere(Kind::Growth).0 >= MIN_POINTS);
}

#[test]
fn creates_and_drops() {
    assert!(crash_everywhere(Kind::Catalog).0 >= MIN_POINTS);
}

#[test]
fn four_threads_committing_at_once() {
    // The crash point falls wherever the threads' interleaving puts it; each image must
    // still hold committed states only.
    assert!(crash_everywhere(Kind::Threads).0 >= MIN_POINTS);
}

#[test]
fn appended_leaves_grow_and_are_cut() {
    assert!(crash_everywhere(Kind::Appends).0 >= MIN_POINTS);
}
