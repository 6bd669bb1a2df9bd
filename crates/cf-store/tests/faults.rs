//! Fault injection at every write of a commit (ENOSPC, EIO, and short writes that land half
//! their bytes): each fault is a typed error, the column family keeps its previous state and
//! works again once the fault clears, the other column family is untouched, and a reopen
//! recovers exactly what was committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use cf_store::{u64_key, CfOptions, ColumnFamily, Db, Durability, Error};
use flush::testing::FaultBackend;
use flush::{Backend, MemBackend};

type State = BTreeMap<Vec<u8>, Vec<u8>>;
type Faulty = FaultBackend<MemBackend>;

fn contents(cf: &ColumnFamily) -> State {
    let read = cf.begin_read().unwrap();
    match read.open_table("t") {
        Ok(t) => t.iter().map(|e| e.unwrap()).collect(),
        Err(Error::TableNotFound { .. }) => State::new(),
        Err(e) => panic!("{e}"),
    }
}

/// Commits `n` puts starting at `from` (every 9th value large) and removes every 5th of the
/// previous keys; returns the resulting state, or the commit's error.
fn change(
    cf: &ColumnFamily,
    base: &State,
    from: u64,
    n: u64,
    durability: Durability,
) -> Result<State, Error> {
    let mut next = base.clone();
    let mut txn = cf.begin_write()?;
    txn.set_durability(durability);
    {
        let mut t = txn.open_table("t")?;
        for k in from..from + n {
            let v = vec![(k % 251) as u8; if k % 9 == 0 { 5000 } else { 100 }];
            t.insert(&u64_key(k), &v)?;
            next.insert(u64_key(k).to_vec(), v);
        }
        for k in base.keys().step_by(5).cloned().collect::<Vec<_>>() {
            t.remove(&k)?;
            next.remove(&k);
        }
    }
    txn.commit()?;
    Ok(next)
}

fn reopen(backend: &Faulty) -> Db {
    let copy: Arc<dyn Backend> = Arc::new(MemBackend::from_bytes(backend.inner().contents()));
    Db::builder().open_backend(copy, "reopened").unwrap()
}

#[derive(Debug, Clone, Copy)]
struct Fault {
    errno: i32,
    partial: bool,
}

const FAULTS: [Fault; 3] = [
    Fault {
        errno: libc::ENOSPC,
        partial: false,
    },
    Fault {
        errno: libc::EIO,
        partial: false,
    },
    Fault {
        errno: libc::ENOSPC,
        partial: true,
    },
];

#[test]
fn a_fault_at_any_write_of_a_commit_loses_nothing() {
    let mut faults_hit = 0;
    for fault in FAULTS {
        for durability in [Durability::None, Durability::Immediate] {
            for policy in ["vectored", "per-page", "gap-merge:64KiB"] {
                for k in 0.. {
                    let backend = Arc::new(FaultBackend::new(MemBackend::new()));
                    let db = Db::builder()
                        .page_size(1024)
                        .initial_extent_pages(4)
                        .flush(policy.parse().unwrap())
                        .open_backend(backend.clone(), "faults")
                        .unwrap();
                    let f = db.create_cf("f", CfOptions::default()).unwrap();
                    let g = db.create_cf("g", CfOptions::default()).unwrap();
                    let s0 = change(&f, &State::new(), 0, 60, Durability::Immediate).unwrap();
                    let g0 = change(&g, &State::new(), 1000, 30, Durability::Immediate).unwrap();

                    backend.partial_writes(fault.partial);
                    backend.fail_writes_after(k, fault.errno);
                    let what = format!("{fault:?} {durability:?} {policy} at write {k}");
                    let s1 = match change(&f, &s0, 100, 80, durability) {
                        Ok(_) => break, // k is past the commit's last write: every write point done
                        Err(e) => e,
                    };
                    faults_hit += 1;
                    assert!(
                        matches!(&s1, Error::Flush(e) if e.raw_os_error() == Some(fault.errno)),
                        "{what}: {s1:?}"
                    );
                    assert_eq!(s1.is_out_of_space(), fault.errno == libc::ENOSPC, "{what}");
                    assert_eq!(contents(&f), s0, "{what}: the failed commit is not visible");
                    assert_eq!(contents(&g), g0, "{what}: the other column family is untouched");
                    // A reopen now (as after a crash) recovers the last commits.
                    let now = reopen(&backend);
                    assert_eq!(contents(&now.cf("f").unwrap()), s0, "{what}: reopened");
                    assert_eq!(contents(&now.cf("g").unwrap()), g0, "{what}: reopened");
                    drop(now);

                    backend.heal_writes();
                    let s2 =
                        change(&f, &s0, 200, 50, durability).unwrap_or_else(|e| panic!("{what}: retry: {e}"));
                    assert_eq!(contents(&f), s2, "{what}: after the fault clears");
                    db.close().unwrap();
                    drop((f, g, db));
                    let after = reopen(&backend);
                    assert!(
                        after.recovery_notes().is_empty(),
                        "{what}: {:?}",
                        after.recovery_notes()
                    );
                    assert_eq!(
                        contents(&after.cf("f").unwrap()),
                        s2,
                        "{what}: reopened after retry"
                    );
                    assert_eq!(
                        contents(&after.cf("g").unwrap()),
                        g0,
                        "{what}: reopened after retry"
                    );
                }
            }
        }
    }
    assert!(faults_hit >= 30, "{faults_hit} fault points");
}

#[test]
fn a_fault_at_any_write_of_create_cf_leaves_no_trace() {
    for fault in FAULTS {
        for k in 0.. {
            let backend = Arc::new(FaultBackend::new(MemBackend::new()));
            let db = Db::builder()
                .page_size(1024)
                .open_backend(backend.clone(), "faults")
                .unwrap();
            let a = db.create_cf("a", CfOptions::default()).unwrap();
            let s0 = change(&a, &State::new(), 0, 40, Durability::Immediate).unwrap();
            backend.partial_writes(fault.partial);
            backend.fail_writes_after(k, fault.errno);
            let what = format!("{fault:?} at write {k}");
            let err = match db.create_cf("b", CfOptions::default()) {
                Ok(_) => break,
                Err(e) => e,
            };
            assert!(
                matches!(&err, Error::Flush(e) if e.raw_os_error() == Some(fault.errno)),
                "{what}: {err:?}"
            );
            assert_eq!(db.list_cfs(), ["a"], "{what}");
            assert_eq!(reopen(&backend).list_cfs(), ["a"], "{what}: reopened");
            backend.heal_writes();
            let b = db.create_cf("b", CfOptions::default()).unwrap();
            let b1 = change(&b, &State::new(), 7, 10, Durability::Immediate).unwrap();
            db.close().unwrap();
            let after = reopen(&backend);
            assert_eq!(after.list_cfs(), ["a", "b"], "{what}");
            assert_eq!(contents(&after.cf("a").unwrap()), s0);
            assert_eq!(contents(&after.cf("b").unwrap()), b1);
        }
    }
}
