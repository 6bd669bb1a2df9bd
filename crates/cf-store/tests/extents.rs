//! Extents: a column family that grows alone adds no entries to its slot's extent list, across
//! commits, crashes and reopens; one that grows in turn with another takes an entry per extent; an
//! extent past the 2^62 bytes the store addresses is a typed error that takes nothing.

use std::sync::Arc;

use cf_store::{CfOptions, Db, Durability, Error};
use flush::testing::CrashBackend;

mod common;

use common::{close_and_reopen, commit, read_all, reopen, State};

#[test]
fn a_column_family_growing_alone_adds_no_extent_entries() {
    let backend = Arc::new(CrashBackend::new());
    let db = Db::builder()
        .initial_extent_pages(4)
        .open_backend(backend.clone(), "alone")
        .unwrap();
    db.create_cf("a", CfOptions::default()).unwrap();
    let mut a = State::new();
    // The first commit grows the space past its first extent, which the catalog's own first
    // extent follows (the catalog commit that created the column family took it): two
    // entries. After that every extent starts where the last one ends.
    commit(&db, "a", &mut a, 0..300, 0, Durability::Immediate);
    let first = db.cf("a").unwrap().stats();
    assert_eq!(first.extents, 2);
    for round in 1..6u64 {
        commit(
            &db,
            "a",
            &mut a,
            round * 300..(round + 1) * 300,
            round,
            Durability::Immediate,
        );
    }
    let stats = db.cf("a").unwrap().stats();
    assert!(
        stats.pages_total >= 4 * first.pages_total,
        "{} pages",
        stats.pages_total
    );
    assert_eq!(stats.extents, 2, "every extent joined the last entry");
    // Growth by commits without durability, then a crash: the durable state is there, and
    // the space still has its two entries.
    let pages = stats.pages_total;
    let mut more = a.clone();
    let mut k = 1800;
    while db.cf("a").unwrap().stats().pages_total == pages {
        assert!(k < 20_000, "the space never grew");
        commit(&db, "a", &mut more, k..k + 300, 0, Durability::None);
        k += 300;
    }
    assert_eq!(db.cf("a").unwrap().stats().extents, 2);
    for seed in [0, 1, u64::MAX - 1] {
        let crashed = reopen(backend.crash_image(seed));
        assert_eq!(read_all(&crashed, "a"), a, "seed {seed}");
        assert_eq!(crashed.cf("a").unwrap().stats().extents, 2, "seed {seed}");
        // It grows on, into the same entries.
        let mut after = a.clone();
        commit(
            &crashed,
            "a",
            &mut after,
            50_000..51_000,
            0,
            Durability::Immediate,
        );
        assert_eq!(read_all(&crashed, "a"), after);
        assert_eq!(crashed.cf("a").unwrap().stats().extents, 2, "seed {seed}");
    }
    let reopened = close_and_reopen(db, &backend);
    assert_eq!(read_all(&reopened, "a"), more);
    assert_eq!(reopened.cf("a").unwrap().stats().extents, 2);
}

#[test]
fn column_families_growing_in_turn_take_an_entry_per_extent() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("turns.cf");
    let db = Db::builder().initial_extent_pages(4).open(&path).unwrap();
    db.create_cf("a", CfOptions::default()).unwrap();
    db.create_cf("b", CfOptions::default()).unwrap();
    let (mut a, mut b) = (State::new(), State::new());
    for round in 0..6u64 {
        for (name, state) in [("a", &mut a), ("b", &mut b)] {
            commit(
                &db,
                name,
                state,
                round * 300..(round + 1) * 300,
                round,
                Durability::Immediate,
            );
        }
    }
    let (sa, sb) = (db.cf("a").unwrap().stats(), db.cf("b").unwrap().stats());
    assert!(
        sa.extents >= 4 && sb.extents >= 4,
        "{} and {}",
        sa.extents,
        sb.extents
    );
    db.close().unwrap();
    drop(db);
    let db = Db::open(&path).unwrap();
    assert!(db.recovery_notes().is_empty(), "{:?}", db.recovery_notes());
    assert_eq!(read_all(&db, "a"), a);
    assert_eq!(read_all(&db, "b"), b);
    assert_eq!(db.cf("a").unwrap().stats().extents, sa.extents);
}

#[test]
fn an_extent_past_the_addressable_file_is_an_error_that_takes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("huge.cf");
    let db = Db::open(&path).unwrap();
    let small = db.create_cf("small", CfOptions::default()).unwrap();
    let mut state = State::new();
    commit(&db, "small", &mut state, 0..100, 0, Durability::Immediate);
    // 2^52 pages of 4 KiB is past the last byte a u64 offset names, 2^50 past byte 2^62.
    for pages in [u64::MAX, 1 << 52, 1 << 50] {
        match db.create_cf("huge", CfOptions::default().with_initial_extent_pages(pages)) {
            Err(Error::ExtentTooLarge { pages: asked, .. }) => assert_eq!(asked, pages),
            other => panic!("expected ExtentTooLarge, got {:?}", other.map(|_| ())),
        }
    }
    assert_eq!(db.list_cfs(), ["small"]);
    // Nothing was taken: the next column family's first extent follows the small one's.
    let next = db.create_cf("next", CfOptions::default()).unwrap();
    commit(&db, "next", &mut State::new(), 0..10, 0, Durability::Immediate);
    assert_eq!(next.stats().extents, 1);
    commit(&db, "small", &mut state, 100..200, 0, Durability::Immediate);
    let file_bytes = db.stats().unwrap().file_bytes;
    assert!(file_bytes < 64 << 20, "{file_bytes} bytes");
    // The builder's default goes through the same check.
    drop((small, next));
    db.close().unwrap();
    drop(db);
    let db = Db::builder().initial_extent_pages(u64::MAX).open(&path).unwrap();
    assert!(matches!(
        db.create_cf("huge", CfOptions::default()),
        Err(Error::ExtentTooLarge { .. })
    ));
    assert_eq!(read_all(&db, "small"), state);
    assert_eq!(db.list_cfs(), ["next", "small"]);
}
