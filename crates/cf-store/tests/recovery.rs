//! Recovery: growth extents survive close, crash and reopen; crash images after and during
//! commits reopen to a committed state no older than the last Immediate commit; the catalog
//! holds 10,000 column families, one sync each.

use std::collections::BTreeMap;
use std::sync::Arc;

use cf_store::{u64_key, CfOptions, Db, Durability, Error};
use flush::testing::{CrashBackend, FaultBackend};
use flush::{Backend, MemBackend};

mod common;

use common::{close_and_reopen, commit, read_all, reopen, value, State};

#[test]
fn growth_extents_survive_clean_close_crash_and_reopen() {
    let backend = Arc::new(CrashBackend::new());
    let db = Db::builder()
        .initial_extent_pages(4)
        .open_backend(backend.clone(), "grow")
        .unwrap();
    db.create_cf("a", CfOptions::default()).unwrap();
    db.create_cf("b", CfOptions::default()).unwrap();
    let (mut a, mut b) = (State::new(), State::new());
    // Interleaved growth: both CFs take many extents, alternating in the file.
    for round in 0..8u64 {
        commit(
            &db,
            "a",
            &mut a,
            round * 250..(round + 1) * 250,
            round,
            Durability::Immediate,
        );
        commit(
            &db,
            "b",
            &mut b,
            round * 100..(round + 1) * 100,
            round,
            Durability::Immediate,
        );
    }
    // Extents that start where the space's last one ends join it, so interleaved growth is
    // what makes entries.
    let extents = db.cf("a").unwrap().stats().extents;
    assert!(extents >= 5, "a grew past its first extent: {extents} extents");
    let pages = db.cf("a").unwrap().stats().pages_total;
    let durable_a = a.clone();
    // Growth by non-durable commits after the last durable one.
    let mut a_more = a.clone();
    let mut batch = 0;
    while db.cf("a").unwrap().stats().pages_total == pages {
        assert!(batch < 20, "non-durable commits never grew the CF");
        commit(
            &db,
            "a",
            &mut a_more,
            2000 + batch * 500..2500 + batch * 500,
            9,
            Durability::None,
        );
        batch += 1;
    }

    // Crash: the None commit's growth is lost, everything durable is there.
    for seed in [0, 1, 2, 3, u64::MAX - 1] {
        let crashed = reopen(backend.crash_image(seed));
        assert_eq!(read_all(&crashed, "a"), durable_a, "seed {seed}");
        assert_eq!(read_all(&crashed, "b"), b, "seed {seed}");
    }
    // The crashed image can be written on: growth after recovery reuses the lost extents.
    let crashed = reopen(backend.crash_image(7));
    let mut a2 = durable_a.clone();
    commit(&crashed, "a", &mut a2, 5000..6000, 11, Durability::Immediate);
    commit(&crashed, "b", &mut b.clone(), 0..50, 12, Durability::Immediate);
    assert_eq!(read_all(&crashed, "a"), a2);

    // Clean close: everything, the None commit included, is there.
    let reopened = close_and_reopen(db, &backend);
    assert_eq!(read_all(&reopened, "a"), a_more);
    assert_eq!(read_all(&reopened, "b"), b);
    assert!(reopened.cf("a").unwrap().stats().pages_total > pages);
}

/// After every commit, and during an Immediate commit's sync, crash images of 3 column
/// families reopen to states between the last returned Immediate commit and the newest.
#[test]
fn crash_images_reopen_to_a_committed_state() {
    // A power cut during a sync: the sync fails, and the crash image is taken after it.
    let backend = Arc::new(FaultBackend::new(CrashBackend::new()));
    let crash = backend.inner();
    let db = Db::builder()
        .page_size(1024)
        .initial_extent_pages(4)
        .open_backend(backend.clone(), "crash")
        .unwrap();
    let names = ["x", "y", "z"];
    // Per CF: every committed state, and the index of the last Immediate one that returned.
    let mut history: BTreeMap<&str, (Vec<State>, usize)> = BTreeMap::new();
    for n in names {
        db.create_cf(n, CfOptions::default()).unwrap();
        history.insert(n, (vec![State::new()], 0));
    }
    let mut checked = 0;
    for step in 0..30u64 {
        let name = names[(step % 3) as usize];
        let durable = step % 4 != 1;
        let (states, last_durable) = history.get_mut(name).unwrap();
        let mut s = states.last().unwrap().clone();
        let start = (step * 37) % 300;
        commit(
            &db,
            name,
            &mut s,
            start..start + 40,
            step,
            if durable {
                Durability::Immediate
            } else {
                Durability::None
            },
        );
        states.push(s);
        if durable {
            *last_durable = states.len() - 1;
        }
        for seed in 0..12u64 {
            let image = crash.crash_image(seed * 1_000_003 + step);
            let recovered = reopen(image);
            for n in names {
                let got = read_all(&recovered, n);
                let (states, last_durable) = &history[n];
                assert!(
                    states[*last_durable..].contains(&got),
                    "step {step} seed {seed}: {n} holds a state that was never committed or is older than its last durable commit"
                );
                checked += 1;
            }
        }
    }
    // A power cut during an Immediate commit's sync: the commit fails, the database refuses
    // writes, and every crash image holds either the old or the new state.
    let (states, _) = &history["x"];
    let before = states.last().unwrap().clone();
    let mut after = before.clone();
    backend.fail_syncs(5); // EIO
    let handle = db.cf("x").unwrap();
    let txn = handle.begin_write().unwrap();
    {
        let mut t = txn.open_table("t").unwrap();
        for k in 900..960u64 {
            let v = value(k, 99, 1024);
            t.insert(&u64_key(k), &v).unwrap();
            after.insert(u64_key(k).to_vec(), v);
        }
    }
    assert!(matches!(txn.commit(), Err(Error::Flush(_))));
    assert!(matches!(handle.begin_write().map(|_| ()), Err(Error::SyncFailed)));
    assert!(matches!(
        db.create_cf("w", CfOptions::default()).map(|_| ()),
        Err(Error::SyncFailed)
    ));
    assert_eq!(read_all(&db, "x"), before, "the failed commit is not visible");
    for seed in 0..40u64 {
        let got = read_all(&reopen(crash.crash_image(seed)), "x");
        assert!(
            got == before || got == after,
            "seed {seed}: neither the old nor the new state"
        );
    }
    assert_eq!(
        read_all(&reopen(crash.crash_image(0)), "x"),
        before,
        "nothing unsynced kept: the old state"
    );
    assert_eq!(
        read_all(&reopen(crash.crash_image(u64::MAX)), "x"),
        after,
        "everything kept: the new state"
    );
    assert!(checked >= 1000);
}

#[test]
fn ten_thousand_column_families_one_sync_each() {
    let backend = Arc::new(MemBackend::new());
    let db = Db::builder()
        .page_size(1024)
        .initial_extent_pages(4)
        .open_backend(backend.clone(), "many")
        .unwrap();
    for i in 0..10_000u32 {
        let before = backend.stats().snapshot().sync_calls;
        db.create_cf(&format!("cf-{i:05}"), CfOptions::default()).unwrap();
        assert_eq!(
            backend.stats().snapshot().sync_calls - before,
            1,
            "create {i}: exactly one sync"
        );
    }
    let cf = db.cf("cf-04321").unwrap();
    let txn = cf.begin_write().unwrap();
    txn.open_table("t").unwrap().insert(b"k", b"v").unwrap();
    txn.commit().unwrap();
    db.drop_cf("cf-00000").unwrap();
    db.close().unwrap();
    drop((cf, db));
    let db = Db::builder().open_backend(backend.clone(), "many").unwrap();
    let names = db.list_cfs();
    assert_eq!(names.len(), 9_999);
    assert_eq!(names[0], "cf-00001");
    let read = db.cf("cf-04321").unwrap().begin_read().unwrap();
    assert_eq!(
        read.open_table("t").unwrap().get(b"k").unwrap().as_deref(),
        Some(&b"v"[..])
    );
}
