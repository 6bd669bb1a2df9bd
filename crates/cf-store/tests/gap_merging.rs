//! Gap merging: with a gap policy, a store workload that frees and reuses pages gets free
//! gaps between the dirty runs of its commits, and the policy fills them (fewer writes).

use std::sync::Arc;

use cf_store::{u64_key, CfOptions, Db, Durability};
use flush::{Backend, MemBackend};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Every dirty run of a column family's commit starts either at a commit slot or at the
/// first page of a free run (first-fit allocation), so the page before a run is never free
/// and no gap between two runs is ever wholly free: the gap policies degrade to
/// sorted-merge / vectored. Passes once allocation leaves (or seeks) mergeable gaps.
#[test]
#[ignore = "known limitation (performance issue): first-fit allocation never leaves a free gap between two dirty runs of a cf commit, so gap-merge and vectored-gap never merge there"]
fn gap_policies_merge_free_gaps_in_a_churning_workload() {
    for policy in ["gap-merge:16MiB", "vectored-gap:16MiB"] {
        let backend: Arc<dyn Backend> = Arc::new(MemBackend::new());
        let db = Db::builder()
            .flush(policy.parse().unwrap())
            .initial_extent_pages(4)
            .open_backend(backend, "gaps")
            .unwrap();
        let cfs: Vec<_> = (0..3)
            .map(|i| db.create_cf(&format!("cf{i}"), CfOptions::default()).unwrap())
            .collect();
        let mut rng = SmallRng::seed_from_u64(5);
        for round in 0..400u64 {
            let cf = &cfs[rng.gen_range(0..cfs.len())];
            let mut txn = cf.begin_write().unwrap();
            txn.set_durability(if rng.gen_bool(0.5) {
                Durability::Immediate
            } else {
                Durability::None
            });
            {
                let mut t = txn.open_table("t").unwrap();
                for _ in 0..rng.gen_range(1..30) {
                    let k = u64_key(rng.gen_range(0..500));
                    if rng.gen_bool(0.45) {
                        t.remove(&k).unwrap();
                    } else {
                        let len = match rng.gen_range(0..10) {
                            0 => rng.gen_range(4_000..20_000),
                            1..=3 => rng.gen_range(500..2_000),
                            _ => rng.gen_range(0..100),
                        };
                        t.insert(&k, &vec![round as u8; len]).unwrap();
                    }
                }
            }
            txn.commit().unwrap();
        }
        let gap_bytes: u64 = cfs.iter().map(|cf| cf.stats().flushed_gap_bytes).sum();
        assert!(
            gap_bytes > 0,
            "{policy}: no commit of 400 had a free gap to merge"
        );
    }
}
