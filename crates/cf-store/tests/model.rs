//! Model test: random create/drop of column families, inserts, removes, ranges, commits
//! (both durabilities), aborts, flushes and reopens across several column families, checked
//! against a `BTreeMap` model after every step and after every reopen, with snapshots held
//! across steps and checked against the state they were taken in. Run with and without
//! held pages (`DbBuilder::hold_bytes`).

use std::collections::BTreeMap;
use std::sync::Arc;

use cf_store::{CfOptions, Db, Durability, Error, FlushConfig};
use flush::{Backend, MemBackend};
use proptest::prelude::*;

type Tables = BTreeMap<String, BTreeMap<Vec<u8>, Vec<u8>>>;
type Model = BTreeMap<String, Tables>;

#[derive(Debug, Clone)]
enum TxnOp {
    /// `Table::insert`, or with `put` `Table::put`, which says only whether the key had a
    /// value.
    Insert {
        table: u8,
        key: Vec<u8>,
        value_len: usize,
        fill: u8,
        put: bool,
    },
    Remove {
        table: u8,
        key: Vec<u8>,
    },
    Range {
        table: u8,
        lo: Vec<u8>,
        hi: Vec<u8>,
        rev: bool,
    },
    DeleteTable {
        table: u8,
    },
}

#[derive(Debug, Clone)]
enum Op {
    Create(u8),
    Drop(u8),
    Txn {
        cf: u8,
        ops: Vec<TxnOp>,
        commit: bool,
        durable: bool,
    },
    Reopen,
    /// Opens a snapshot of a column family and keeps it.
    Read(u8),
    /// Releases the n-th kept snapshot (modulo their count).
    Release(usize),
    /// `ColumnFamily::flush`.
    Flush(u8),
}

fn key() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (0u64..64).prop_map(|k| k.to_be_bytes().to_vec()),
        prop::collection::vec(0u8..4, 0..6),
    ]
}

fn txn_op() -> impl Strategy<Value = TxnOp> {
    prop_oneof![
        8 => (0u8..3, key(), prop_oneof![0usize..40, 0usize..3000], any::<u8>(), prop::bool::weighted(0.25))
            .prop_map(|(table, key, value_len, fill, put)| TxnOp::Insert { table, key, value_len, fill, put }),
        2 => (0u8..3, key()).prop_map(|(table, key)| TxnOp::Remove { table, key }),
        2 => (0u8..3, key(), key(), any::<bool>()).prop_map(|(table, lo, hi, rev)| TxnOp::Range { table, lo, hi, rev }),
        1 => (0u8..3).prop_map(|table| TxnOp::DeleteTable { table }),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        2 => (0u8..4).prop_map(Op::Create),
        1 => (0u8..4).prop_map(Op::Drop),
        8 => (0u8..4, prop::collection::vec(txn_op(), 0..25), prop::bool::weighted(0.8), any::<bool>())
            .prop_map(|(cf, ops, commit, durable)| Op::Txn { cf, ops, commit, durable }),
        1 => Just(Op::Reopen),
        2 => (0u8..4).prop_map(Op::Read),
        1 => any::<usize>().prop_map(Op::Release),
        1 => (0u8..4).prop_map(Op::Flush),
    ]
}

fn value(len: usize, fill: u8) -> Vec<u8> {
    (0..len).map(|i| fill.wrapping_add(i as u8)).collect()
}

fn open(backend: &Arc<MemBackend>, page_size: u32, flush: FlushConfig, hold_bytes: u64) -> Db {
    // Both cache modes: read-through (the default) and written pages admitted.
    let admit = matches!(flush, FlushConfig::PerPage | FlushConfig::Vectored);
    Db::builder()
        .page_size(page_size)
        .initial_extent_pages(4)
        .cache_written_pages(admit)
        .hold_bytes(hold_bytes)
        .flush(flush)
        .open_backend(backend.clone(), "model")
        .unwrap()
}

/// Every column family, table and entry the database shows equals the model.
fn check(db: &Db, model: &Model) {
    assert_eq!(db.list_cfs(), model.keys().cloned().collect::<Vec<_>>());
    for (cf_name, tables) in model {
        let read = db.cf(cf_name).unwrap().begin_read().unwrap();
        let names: Vec<String> = read.list_tables().unwrap();
        assert_eq!(
            names,
            tables.keys().cloned().collect::<Vec<_>>(),
            "tables of {cf_name}"
        );
        for (t, entries) in tables {
            let table = read.open_table(t).unwrap();
            assert_eq!(table.len(), entries.len() as u64);
            let got: Vec<(Vec<u8>, Vec<u8>)> = table.iter().collect::<Result<_, _>>().unwrap();
            let want: Vec<(Vec<u8>, Vec<u8>)> = entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            assert_eq!(got, want, "{cf_name}/{t}");
            let back: Vec<(Vec<u8>, Vec<u8>)> = table.iter().rev().collect::<Result<_, _>>().unwrap();
            assert_eq!(back.len(), want.len());
        }
    }
}

/// A kept snapshot: its column family, the read transaction and what it must show.
type Kept = (String, cf_store::ReadTxn, Tables);

/// Every table and entry a kept snapshot shows equals the state it was taken in.
fn check_snapshot((name, read, tables): &Kept) {
    assert_eq!(
        read.list_tables().unwrap(),
        tables.keys().cloned().collect::<Vec<_>>(),
        "tables of a snapshot of {name}"
    );
    for (t, entries) in tables {
        let got: Vec<(Vec<u8>, Vec<u8>)> = read
            .open_table(t)
            .unwrap()
            .iter()
            .collect::<Result<_, _>>()
            .unwrap();
        let want: Vec<(Vec<u8>, Vec<u8>)> = entries.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        assert_eq!(got, want, "snapshot of {name}/{t}");
    }
}

fn run(ops: Vec<Op>, page_size: u32, flush: FlushConfig, hold_bytes: u64) {
    let backend = Arc::new(MemBackend::new());
    let mut db = open(&backend, page_size, flush, hold_bytes);
    let mut model = Model::new();
    let mut kept: Vec<Kept> = Vec::new();
    for op in ops {
        match op {
            Op::Create(i) => {
                let name = format!("cf{i}");
                let r = db.create_cf(&name, CfOptions::default());
                match model.entry(name) {
                    std::collections::btree_map::Entry::Occupied(_) => {
                        assert!(matches!(r, Err(Error::CfExists { .. })), "{r:?}")
                    }
                    std::collections::btree_map::Entry::Vacant(slot) => {
                        r.unwrap();
                        slot.insert(Tables::new());
                    }
                }
            }
            Op::Drop(i) => {
                let name = format!("cf{i}");
                let r = db.drop_cf(&name);
                if model.remove(&name).is_some() {
                    r.unwrap();
                } else {
                    assert!(matches!(r, Err(Error::CfNotFound { .. })), "{r:?}");
                }
            }
            Op::Txn {
                cf,
                ops,
                commit,
                durable,
            } => {
                let name = format!("cf{cf}");
                let Some(committed) = model.get(&name) else {
                    assert!(matches!(db.cf(&name), Err(Error::CfNotFound { .. })));
                    continue;
                };
                let mut pending = committed.clone();
                let handle = db.cf(&name).unwrap();
                let mut txn = handle.begin_write().unwrap();
                txn.set_durability(if durable {
                    Durability::Immediate
                } else {
                    Durability::None
                });
                for op in ops {
                    match op {
                        TxnOp::Insert {
                            table,
                            key,
                            value_len,
                            fill,
                            put,
                        } => {
                            let t = format!("t{table}");
                            let v = value(value_len, fill);
                            let mut table = txn.open_table(&t).unwrap();
                            let entries = pending.entry(t).or_default();
                            if put {
                                let had = table.put(&key, &v).unwrap();
                                assert_eq!(had, entries.insert(key, v).is_some());
                            } else {
                                let old = table.insert(&key, &v).unwrap();
                                assert_eq!(old, entries.insert(key, v));
                            }
                        }
                        TxnOp::Remove { table, key } => {
                            let t = format!("t{table}");
                            let old = txn.open_table(&t).unwrap().remove(&key).unwrap();
                            let entries = pending.entry(t).or_default();
                            assert_eq!(old, entries.remove(&key));
                        }
                        TxnOp::Range { table, lo, hi, rev } => {
                            let t = format!("t{table}");
                            let (lo, hi) = if lo <= hi { (lo, hi) } else { (hi, lo) };
                            let table = txn.open_table(&t).unwrap();
                            let mut got: Vec<_> = if rev {
                                table
                                    .range(lo.as_slice()..hi.as_slice())
                                    .rev()
                                    .collect::<Result<_, _>>()
                                    .unwrap()
                            } else {
                                table
                                    .range(lo.as_slice()..hi.as_slice())
                                    .collect::<Result<_, _>>()
                                    .unwrap()
                            };
                            drop(table);
                            pending.entry(t.clone()).or_default();
                            let mut want: Vec<_> = pending[&t]
                                .range(lo..hi)
                                .map(|(k, v)| (k.clone(), v.clone()))
                                .collect();
                            if rev {
                                want.reverse();
                            }
                            got.truncate(want.len() + 1);
                            assert_eq!(got, want);
                        }
                        TxnOp::DeleteTable { table } => {
                            let t = format!("t{table}");
                            let existed = txn.delete_table(&t).unwrap();
                            assert_eq!(existed, pending.remove(&t).is_some());
                        }
                    }
                }
                if commit {
                    txn.commit().unwrap();
                    *model.get_mut(&name).unwrap() = pending;
                } else {
                    txn.abort();
                }
            }
            Op::Read(i) => {
                let name = format!("cf{i}");
                if let Some(tables) = model.get(&name) {
                    let read = db.cf(&name).unwrap().begin_read().unwrap();
                    kept.push((name, read, tables.clone()));
                }
            }
            Op::Release(n) => {
                if !kept.is_empty() {
                    kept.remove(n % kept.len());
                }
            }
            Op::Flush(i) => {
                let name = format!("cf{i}");
                if model.contains_key(&name) {
                    let cf = db.cf(&name).unwrap();
                    cf.flush().unwrap();
                    assert_eq!(cf.stats().held_bytes, 0, "flush leaves nothing held");
                }
            }
            Op::Reopen => {
                kept.clear();
                db.close().unwrap();
                drop(db);
                db = open(&backend, page_size, flush, hold_bytes);
                assert_eq!(
                    db.recovery_notes(),
                    &[] as &[String],
                    "a clean close needs no fallback"
                );
            }
        }
        check(&db, &model);
        // Snapshots (of dropped column families too) read what they were taken on, whether
        // their pages are held, written, or freed by later commits.
        kept.iter().for_each(check_snapshot);
        for name in model.keys() {
            let held = db.cf(name).unwrap().stats().held_bytes;
            assert!(
                held <= hold_bytes,
                "{name} holds {held} bytes with a budget of {hold_bytes}"
            );
        }
    }
    kept.clear();
    db.close().unwrap();
    drop(db);
    let db = open(&backend, page_size, flush, hold_bytes);
    assert_eq!(
        db.recovery_notes(),
        &[] as &[String],
        "a clean close needs no fallback"
    );
    check(&db, &model);
    assert!(backend.len().unwrap() > 0);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, max_shrink_iters: 2000, ..ProptestConfig::default() })]

    #[test]
    fn matches_a_btreemap_model_small_pages(ops in prop::collection::vec(op(), 1..40)) {
        run(ops, 512, FlushConfig::VectoredGap { max_gap: flush::ByteSize(2048) }, 0);
    }

    #[test]
    fn matches_a_btreemap_model_default_pages(ops in prop::collection::vec(op(), 1..40), policy in 0usize..5) {
        run(ops, 4096, FlushConfig::all_defaults()[policy], 0);
    }

    /// Held pages: a budget a few pages long (a commit often passes it and writes all), and
    /// one nothing in a case passes (only durable commits, flushes and closes write).
    #[test]
    fn matches_a_btreemap_model_holding_pages(
        ops in prop::collection::vec(op(), 1..40),
        policy in 0usize..5,
        hold in prop_oneof![Just(2048u64), Just(16 << 10), Just(64 << 20)],
        page_size in prop_oneof![Just(512u32), Just(4096)],
    ) {
        run(ops, page_size, FlushConfig::all_defaults()[policy], hold);
    }
}
