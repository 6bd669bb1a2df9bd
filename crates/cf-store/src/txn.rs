//! Transactions: `WriteTxn` and its `Table`s, `ReadTxn` and its `ReadTable`s, and `Range`.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::{Bound, RangeBounds};
use std::sync::Arc;

use parking_lot::lock_api::ArcMutexGuard;
use parking_lot::RawMutex;

use crate::btree::{self, OldValue, PageId, TreeRoot, WriteTree};
use crate::cf::{CfShared, Snapshot};
use crate::source::{CacheSource, CommitSink, ValuePool, WriteSource};
use crate::space::Space;
use crate::{Error, Result};

/// When a commit returns, how safe is it?
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// No slot, no sync. The commit is visible to readers at once, and survives a clean
    /// close, but a crash may lose it (never partially). Its pages go to the OS at once, or,
    /// while the column family's commits free enough of what they wrote, are held in memory
    /// until a later commit writes them ([`crate::DbBuilder::hold_bytes`]);
    /// [`crate::ColumnFamily::flush`] hands them to the OS.
    None,
    /// Pages and the commit slot are written, then synced (shared with concurrent
    /// committers): the commit survives a crash.
    #[default]
    Immediate,
}

fn check_table_name(name: &str, page_size: usize) -> Result<()> {
    let max = btree::max_key_len(page_size);
    if name.is_empty() || name.len() > max {
        return Err(Error::InvalidTableName { len: name.len(), max });
    }
    Ok(())
}

fn table_root(dir_value: Option<Vec<u8>>, dir: &TreeRoot, name: &str) -> Result<Option<TreeRoot>> {
    dir_value
        .map(|v| {
            TreeRoot::decode(&v).ok_or_else(|| Error::Corruption {
                page: dir.root.map_or(0, |r| r.page),
                what: format!("table {name:?} has a malformed root"),
            })
        })
        .transpose()
}

fn byte_bounds<'a, K: AsRef<[u8]> + ?Sized + 'a, R: RangeBounds<K>>(
    range: &'a R,
) -> (Bound<&'a [u8]>, Bound<&'a [u8]>) {
    fn bytes<K: AsRef<[u8]> + ?Sized>(b: Bound<&K>) -> Bound<&[u8]> {
        match b {
            Bound::Included(k) => Bound::Included(k.as_ref()),
            Bound::Excluded(k) => Bound::Excluded(k.as_ref()),
            Bound::Unbounded => Bound::Unbounded,
        }
    }
    (bytes(range.start_bound()), bytes(range.end_bound()))
}

/// The entries of a table within a range, in key order (iterate from either end). Each item
/// is a `(key, value)` pair or the error that ended the iteration.
pub struct Range<'t> {
    inner: btree::Range<'t>,
}

impl std::fmt::Debug for Range<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.inner.fmt(f)
    }
}

impl Iterator for Range<'_> {
    type Item = Result<(Vec<u8>, Vec<u8>)>;
    fn next(&mut self) -> Option<Self::Item> {
        self.inner.next()
    }
}

impl DoubleEndedIterator for Range<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        self.inner.next_back()
    }
}

/// A table's tree while the transaction holds it, or lent to an open `Table`.
enum TableSlot {
    /// The tree boxed: a `WriteTree` is some 250 bytes, which a `Lent` slot does not need.
    Idle {
        tree: Box<WriteTree>,
        new: bool,
    },
    Lent,
}

struct TxnState {
    /// The table directory: table name -> encoded `TreeRoot`.
    dir: WriteTree,
    tables: HashMap<String, TableSlot>,
    /// Pages of deleted tables.
    freed: Vec<(PageId, u64)>,
    /// The space's value buffers, lent for this transaction's inserts and given back at
    /// commit.
    values: ValuePool,
}

/// The one write transaction of a column family. Tables opened from it commit atomically
/// together. Dropping it without [`WriteTxn::commit`] aborts it.
pub struct WriteTxn {
    cf: Arc<CfShared>,
    space: ArcMutexGuard<RawMutex, Space>,
    base: Arc<Snapshot>,
    state: RefCell<TxnState>,
    durability: Durability,
    source: CacheSource,
}

impl std::fmt::Debug for WriteTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WriteTxn")
            .field("cf", &self.cf.name)
            .field("durability", &self.durability)
            .finish()
    }
}

impl WriteTxn {
    pub(crate) fn new(cf: Arc<CfShared>, mut space: ArcMutexGuard<RawMutex, Space>) -> Result<WriteTxn> {
        // A drop may have completed while this writer waited for the lock.
        cf.check_alive()?;
        space.reclaim();
        let base = cf.committed.load_full();
        let source = cf.source();
        Ok(WriteTxn {
            state: RefCell::new(TxnState {
                dir: WriteTree::new(base.dir),
                tables: HashMap::new(),
                freed: Vec::new(),
                values: {
                    // The spares of a leaf's most pages go with the value buffers, for the
                    // images of the leaves this transaction appends to.
                    let mut values = std::mem::take(&mut space.values);
                    let pages = cf.core.leaf_pages;
                    values.lend_leaf_buffers(space.buffer.take_spares(pages));
                    values
                },
            }),
            cf,
            space,
            base,
            durability: Durability::default(),
            source,
        })
    }

    /// The source a write transaction's changes descend through: committed pages, and the
    /// branches its space's commits kept.
    fn write_source(&self) -> WriteSource<'_> {
        WriteSource {
            pages: &self.source,
            branches: &self.space.branches,
        }
    }

    /// Sets this commit's durability (default [`Durability::Immediate`]).
    pub fn set_durability(&mut self, durability: Durability) {
        self.durability = durability;
    }

    /// Opens (creating if needed) the table `name`. A table may be open once at a time.
    pub fn open_table(&self, name: &str) -> Result<Table<'_>> {
        check_table_name(name, self.source.cache.page_size() as usize)?;
        let mut st = self.state.borrow_mut();
        if let Some(slot) = st.tables.get_mut(name) {
            return match std::mem::replace(slot, TableSlot::Lent) {
                TableSlot::Idle { tree, new } => Ok(Table {
                    txn: self,
                    name: name.to_owned(),
                    tree: Some(*tree),
                    new,
                }),
                TableSlot::Lent => Err(Error::TableAlreadyOpen {
                    name: name.to_owned(),
                }),
            };
        }
        let found = st.dir.get(&self.source, name.as_bytes())?;
        let root = table_root(found, &self.base.dir, name)?;
        st.tables.insert(name.to_owned(), TableSlot::Lent);
        Ok(Table {
            txn: self,
            name: name.to_owned(),
            new: root.is_none(),
            tree: Some(WriteTree::new(root.unwrap_or_default())),
        })
    }

    /// Deletes the table `name` and its contents; false if it did not exist.
    pub fn delete_table(&self, name: &str) -> Result<bool> {
        check_table_name(name, self.source.cache.page_size() as usize)?;
        let mut st = self.state.borrow_mut();
        let tree = match st.tables.remove(name) {
            Some(TableSlot::Lent) => {
                st.tables.insert(name.to_owned(), TableSlot::Lent);
                return Err(Error::TableAlreadyOpen {
                    name: name.to_owned(),
                });
            }
            Some(TableSlot::Idle { tree, .. }) => Some(*tree),
            None => None,
        };
        let stored = st.dir.remove(&self.write_source(), name.as_bytes())?;
        let tree = match (tree, table_root(stored, &self.base.dir, name)?) {
            (Some(tree), _) => tree,
            (None, Some(root)) => WriteTree::new(root),
            (None, None) => return Ok(false),
        };
        let freed = tree.free_all(&self.source)?;
        st.freed.extend(freed);
        Ok(true)
    }

    /// Names of the tables as this transaction sees them, sorted.
    pub fn list_tables(&self) -> Result<Vec<String>> {
        let st = self.state.borrow();
        let mut names: Vec<String> = st.tables.keys().cloned().collect();
        for entry in st.dir.range(&self.source, ..) {
            names.push(String::from_utf8_lossy(&entry?.0).into_owned());
        }
        names.sort();
        names.dedup();
        Ok(names)
    }

    /// Commits every table's changes atomically. With [`Durability::Immediate`] it returns
    /// once the commit is durable. On error nothing of it is visible, and the column family
    /// stays usable at its previous state (after a failed sync the whole database refuses
    /// writes until reopened).
    pub fn commit(self) -> Result<()> {
        let WriteTxn {
            cf,
            mut space,
            base,
            state,
            durability,
            source,
        } = self;
        cf.check_alive()?;
        let core = cf.core.clone();
        core.check_writable()?;
        let mut st = state.into_inner();
        let durable = durability == Durability::Immediate;
        let changed = !st.freed.is_empty()
            || st.dir.is_dirty()
            || st
                .tables
                .values()
                .any(|s| matches!(s, TableSlot::Idle { tree, new } if *new || tree.is_dirty()));
        // The spares not used go back first, for the commit's own node buffers.
        space.buffer.give_spares(st.values.return_leaf_buffers());
        if !changed {
            space.values = st.values;
            drop(space);
            return if durable { cf.make_durable(true) } else { Ok(()) };
        }
        let space = &mut *space;
        let mut fresh = None;
        let mut grow = Space::grower(&core, &mut fresh);
        let built = (|| {
            let source = WriteSource {
                pages: &source,
                branches: &space.branches,
            };
            let mut sink = CommitSink {
                alloc: &mut space.alloc,
                buffer: &mut space.buffer,
                grow: &mut grow,
                values: &mut st.values,
                branches: Some(&space.branches),
                index: core.index.as_deref(),
                cache_written: false,
            };
            let mut freed = std::mem::take(&mut st.freed);
            let mut names: Vec<String> = st.tables.keys().cloned().collect();
            names.sort();
            for name in names {
                if let Some(TableSlot::Idle { tree, new }) = st.tables.remove(&name) {
                    if new || tree.is_dirty() {
                        let (root, f) = tree.commit(&source, &mut sink)?;
                        freed.extend(f);
                        st.dir.insert(&source, name.as_bytes(), &root.encode())?;
                    }
                }
            }
            // The directory's pages are read again by the next transaction (its tables'
            // roots) and replaced by its commit: they enter the read cache.
            sink.cache_written = true;
            let (dir, f) = st.dir.commit(&source, &mut sink)?;
            freed.extend(f);
            Ok::<_, Error>((dir, freed))
        })();
        drop(grow);
        space.values = std::mem::take(&mut st.values);
        if let Some(e) = fresh {
            space.fresh_extent(e);
        }
        let (dir, freed) = match built {
            Ok(x) => x,
            Err(e) => {
                space.alloc.rollback();
                space.buffer.clear();
                return Err(e);
            }
        };
        space.commit(&core, dir, freed, durable, Arc::downgrade(&base.epoch))?;
        cf.committed.store(Arc::new(Snapshot {
            dir,
            epoch: base.epoch.advance(),
        }));
        cf.refresh_stats(space);
        Ok(())
    }

    /// Discards every change (the same as dropping the transaction).
    pub fn abort(self) {}
}

/// A table open in a write transaction: reads see the transaction's own changes.
pub struct Table<'t> {
    txn: &'t WriteTxn,
    name: String,
    tree: Option<WriteTree>,
    new: bool,
}

impl std::fmt::Debug for Table<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Table").field("name", &self.name).finish()
    }
}

impl Drop for Table<'_> {
    fn drop(&mut self) {
        if let Some(tree) = self.tree.take() {
            let slot = TableSlot::Idle {
                tree: Box::new(tree),
                new: self.new,
            };
            self.txn
                .state
                .borrow_mut()
                .tables
                .insert(std::mem::take(&mut self.name), slot);
        }
    }
}

impl Table<'_> {
    fn tree(&self) -> &WriteTree {
        self.tree.as_ref().expect("a Table holds its tree until dropped")
    }

    /// Inserts or replaces; returns the previous value.
    pub fn insert(&mut self, key: &[u8], value: &[u8]) -> Result<Option<Vec<u8>>> {
        Ok(self.set(key, value, OldValue::Read)?.1)
    }

    /// Inserts or replaces, like [`Table::insert`], without reading the value it replaces:
    /// no copy of it, and no read of its overflow pages when it is large. Returns whether
    /// `key` had a value.
    pub fn put(&mut self, key: &[u8], value: &[u8]) -> Result<bool> {
        Ok(self.set(key, value, OldValue::Skip)?.0)
    }

    /// [`WriteTree::set`] on this table's tree.
    fn set(&mut self, key: &[u8], value: &[u8], old: OldValue) -> Result<(bool, Option<Vec<u8>>)> {
        let source = &self.txn.write_source();
        let mut st = self.txn.state.borrow_mut();
        self.tree
            .as_mut()
            .expect("a Table holds its tree until dropped")
            .set(source, key, value, &mut st.values, old)
    }

    /// Removes; returns the value it had.
    pub fn remove(&mut self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        let source = &self.txn.write_source();
        self.tree
            .as_mut()
            .expect("a Table holds its tree until dropped")
            .remove(source, key)
    }

    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        self.tree().get(&self.txn.source, key)
    }

    /// Entries with keys in `range`. For the whole table use [`Table::iter`].
    pub fn range<K: AsRef<[u8]> + ?Sized, R: RangeBounds<K>>(&self, range: R) -> Range<'_> {
        Range {
            inner: self.tree().range(&self.txn.source, byte_bounds(&range)),
        }
    }

    /// Every entry.
    pub fn iter(&self) -> Range<'_> {
        self.range::<[u8], _>(..)
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.tree().len()
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.tree().is_empty()
    }
}

/// A snapshot of a column family: sees exactly one commit, never blocks writers, and keeps
/// the pages it reaches from being reused until dropped.
pub struct ReadTxn {
    cf: Arc<CfShared>,
    snapshot: Arc<Snapshot>,
    source: CacheSource,
    /// Its shard in `DbCore::open_reads`, which counts it until it drops.
    open_shard: usize,
}

impl Drop for ReadTxn {
    fn drop(&mut self) {
        self.cf.core.open_reads.leave(self.open_shard);
    }
}

impl std::fmt::Debug for ReadTxn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ReadTxn").field("cf", &self.cf.name).finish()
    }
}

impl ReadTxn {
    pub(crate) fn new(cf: Arc<CfShared>, snapshot: Arc<Snapshot>) -> ReadTxn {
        let source = cf.source();
        let open_shard = cf.core.open_reads.enter();
        ReadTxn {
            cf,
            snapshot,
            source,
            open_shard,
        }
    }

    /// The table `name` as of this snapshot; [`Error::TableNotFound`] if it does not exist.
    pub fn open_table(&self, name: &str) -> Result<ReadTable<'_>> {
        check_table_name(name, self.source.cache.page_size() as usize)?;
        let found = btree::get(&self.source, &self.snapshot.dir, name.as_bytes())?;
        let root = table_root(found, &self.snapshot.dir, name)?.ok_or_else(|| Error::TableNotFound {
            name: name.to_owned(),
        })?;
        Ok(ReadTable {
            txn: self,
            root,
            top: btree::TopLevels::default(),
        })
    }

    /// Names of the tables in this snapshot, sorted.
    pub fn list_tables(&self) -> Result<Vec<String>> {
        btree::range(&self.source, &self.snapshot.dir, ..)
            .map(|e| e.map(|(k, _)| String::from_utf8_lossy(&k).into_owned()))
            .collect()
    }
}

/// A table in a snapshot.
#[derive(Debug)]
pub struct ReadTable<'t> {
    txn: &'t ReadTxn,
    root: TreeRoot,
    /// The indexed nodes of the tree's top two levels, once lookups needed them: the
    /// snapshot keeps them as they are, so this table's lookups take them from here, not from
    /// the shared index.
    top: btree::TopLevels,
}

impl ReadTable<'_> {
    /// The value of `key`.
    pub fn get(&self, key: &[u8]) -> Result<Option<Vec<u8>>> {
        btree::get_with_top(&self.txn.source, &self.root, &self.top, key)
    }

    /// Entries with keys in `range`.
    pub fn range<K: AsRef<[u8]> + ?Sized, R: RangeBounds<K>>(&self, range: R) -> Range<'_> {
        Range {
            inner: btree::range(&self.txn.source, &self.root, byte_bounds(&range)),
        }
    }

    /// Every entry.
    pub fn iter(&self) -> Range<'_> {
        self.range::<[u8], _>(..)
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.root.len
    }

    /// True when the table has no entries.
    pub fn is_empty(&self) -> bool {
        self.root.len == 0
    }
}

#[cfg(test)]
mod tests {
    use crate::{CfOptions, Db};

    /// Read transactions count in the file's bystanders from begin to drop, on any column
    /// family, whichever thread drops them: the file's writers yield to one another only
    /// while none is open (`FileOptions::bystanders`).
    #[test]
    fn read_transactions_count_as_bystanders_while_open() {
        let dir = tempfile::tempdir().unwrap();
        let db = Db::builder().open(dir.path().join("f.cf")).unwrap();
        let (a, b) = (
            db.create_cf("a", CfOptions::default()).unwrap(),
            db.create_cf("b", CfOptions::default()).unwrap(),
        );
        let open = || a.begin_read().unwrap().cf.core.open_reads.clone();
        let reads = open();
        assert!(!reads.any(), "the one begun above was dropped");
        let first = a.begin_read().unwrap();
        let second = b.begin_read().unwrap();
        assert!(reads.any());
        drop(first);
        assert!(reads.any(), "one is still open");
        std::thread::scope(|s| s.spawn(move || drop(second)).join().unwrap());
        assert!(!reads.any());
    }
}
