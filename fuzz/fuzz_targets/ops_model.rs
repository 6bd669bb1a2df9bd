//! Fuzz target: a random sequence of operations on three column families (inserts, removes,
//! ranges, point lookups, commits of both durabilities, aborts, clean reopens, and snapshots
//! kept open while later commits reuse pages), checked against a `BTreeMap` model after
//! every commit and reopen, inside each write transaction, and in every kept snapshot.
#![no_main]

use std::collections::BTreeMap;
use std::sync::Arc;

use arbitrary::Arbitrary;
use cf_store::{CfOptions, Db, Durability};
use flush::MemBackend;
use libfuzzer_sys::fuzz_target;

#[derive(Arbitrary, Debug)]
enum Op {
    Put {
        cf: u8,
        key: u8,
        len: u16,
    },
    Remove {
        cf: u8,
        key: u8,
    },
    Range {
        cf: u8,
        lo: u8,
        hi: u8,
        rev: bool,
    },
    Get {
        cf: u8,
        key: u8,
    },
    /// Keep a snapshot of a column family (at most [`MAX_PINNED`]; the oldest goes first).
    Pin {
        cf: u8,
    },
    /// Look up keys and scan a range in a kept snapshot: it must still see its own state.
    PinnedRead {
        slot: u8,
        key: u8,
        lo: u8,
        hi: u8,
    },
    Unpin {
        slot: u8,
    },
    Commit {
        cf: u8,
        durable: bool,
    },
    Abort {
        cf: u8,
    },
    Reopen,
}

type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// Snapshots kept open at once.
const MAX_PINNED: usize = 4;

fn open(backend: &Arc<MemBackend>) -> Db {
    Db::builder()
        .page_size(512)
        .initial_extent_pages(4)
        .open_backend(backend.clone(), "fuzz")
        .expect("open")
}

fn read(db: &Db, cf: usize) -> State {
    let r = db.cf(&format!("cf{cf}")).unwrap().begin_read().unwrap();
    match r.open_table("t") {
        Ok(t) => t.iter().map(|e| e.unwrap()).collect(),
        Err(_) => State::new(),
    }
}

/// The model's entries with keys in `lo..hi`.
fn model_range(state: &State, lo: u8, hi: u8) -> Vec<(Vec<u8>, Vec<u8>)> {
    state
        .range(vec![lo]..vec![hi])
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

/// A key set to a value, or removed (`None`).
type Change = (Vec<u8>, Option<Vec<u8>>);

fuzz_target!(|ops: Vec<Op>| {
    let backend = Arc::new(MemBackend::new());
    let mut db = open(&backend);
    for i in 0..3 {
        db.create_cf(&format!("cf{i}"), CfOptions::default()).unwrap();
    }
    let mut committed = [State::new(), State::new(), State::new()];
    // Pending changes per column family (applied in one transaction at Commit).
    let mut pending: [Vec<Change>; 3] = Default::default();
    // Kept snapshots and the state each must see.
    let mut pinned: Vec<(cf_store::ReadTxn, State)> = Vec::new();
    for op in ops.into_iter().take(200) {
        match op {
            Op::Put { cf, key, len } => {
                let v = vec![key; (len % 3000) as usize];
                pending[cf as usize % 3].push((vec![key], Some(v)));
            }
            Op::Remove { cf, key } => pending[cf as usize % 3].push((vec![key], None)),
            Op::Range { cf, lo, hi, rev } => {
                let i = cf as usize % 3;
                let (lo, hi) = (lo.min(hi), lo.max(hi));
                let r = db.cf(&format!("cf{i}")).unwrap().begin_read().unwrap();
                if let Ok(t) = r.open_table("t") {
                    let mut got: Vec<_> = if rev {
                        t.range([lo].as_slice()..[hi].as_slice())
                            .rev()
                            .map(|e| e.unwrap())
                            .collect()
                    } else {
                        t.range([lo].as_slice()..[hi].as_slice())
                            .map(|e| e.unwrap())
                            .collect()
                    };
                    if rev {
                        got.reverse();
                    }
                    assert_eq!(got, model_range(&committed[i], lo, hi));
                }
            }
            Op::Get { cf, key } => {
                let i = cf as usize % 3;
                let r = db.cf(&format!("cf{i}")).unwrap().begin_read().unwrap();
                if let Ok(t) = r.open_table("t") {
                    // Several lookups in one table: from its second, it keeps its top levels.
                    for k in [key, key.wrapping_add(1), key.wrapping_sub(1), key] {
                        assert_eq!(t.get(&[k]).unwrap().as_ref(), committed[i].get(&vec![k]));
                    }
                }
            }
            Op::Pin { cf } => {
                let i = cf as usize % 3;
                if pinned.len() == MAX_PINNED {
                    pinned.remove(0);
                }
                let r = db.cf(&format!("cf{i}")).unwrap().begin_read().unwrap();
                pinned.push((r, committed[i].clone()));
            }
            Op::PinnedRead { slot, key, lo, hi } => {
                if let Some((r, state)) = pinned.get(slot as usize % pinned.len().max(1)) {
                    match r.open_table("t") {
                        Ok(t) => {
                            for k in [key, key.wrapping_add(1), key] {
                                assert_eq!(t.get(&[k]).unwrap().as_ref(), state.get(&vec![k]));
                            }
                            let (lo, hi) = (lo.min(hi), lo.max(hi));
                            let got: Vec<_> = t
                                .range([lo].as_slice()..[hi].as_slice())
                                .map(|e| e.unwrap())
                                .collect();
                            assert_eq!(got, model_range(state, lo, hi));
                        }
                        Err(_) => assert!(state.is_empty()),
                    }
                }
            }
            Op::Unpin { slot } => {
                if !pinned.is_empty() {
                    let at = slot as usize % pinned.len();
                    pinned.remove(at);
                }
            }
            Op::Commit { cf, durable } => {
                let i = cf as usize % 3;
                let handle = db.cf(&format!("cf{i}")).unwrap();
                let mut txn = handle.begin_write().unwrap();
                txn.set_durability(if durable {
                    Durability::Immediate
                } else {
                    Durability::None
                });
                {
                    let mut t = txn.open_table("t").unwrap();
                    for (k, v) in pending[i].drain(..) {
                        match v {
                            Some(v) => {
                                t.insert(&k, &v).unwrap();
                                committed[i].insert(k.clone(), v);
                            }
                            None => {
                                t.remove(&k).unwrap();
                                committed[i].remove(&k);
                            }
                        }
                        // The transaction sees its own change, through dirty and clean nodes.
                        assert_eq!(t.get(&k).unwrap().as_ref(), committed[i].get(&k));
                    }
                }
                txn.commit().unwrap();
                assert_eq!(read(&db, i), committed[i]);
            }
            Op::Abort { cf } => pending[cf as usize % 3].clear(),
            Op::Reopen => {
                pinned.clear();
                db.close().unwrap();
                drop(db);
                db = open(&backend);
                assert!(db.recovery_notes().is_empty());
                for (i, state) in committed.iter().enumerate() {
                    assert_eq!(&read(&db, i), state);
                }
            }
        }
    }
});
