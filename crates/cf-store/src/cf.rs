//! `ColumnFamily`: a handle to one keyspace; its writer lock, committed snapshot and stats.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use arc_swap::ArcSwap;
use flush::FlushConfig;
use parking_lot::Mutex;

use crate::btree::TreeRoot;
use crate::db::DbCore;
use crate::epoch::Epoch;
use crate::source::CacheSource;
use crate::space::Space;
use crate::txn::{ReadTxn, WriteTxn};
use crate::{Error, Result};

/// Options of a new column family.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct CfOptions {
    /// Its flush policy (default: the database's). Not stored in the file: a reopened
    /// database applies its builder's policy unless [`ColumnFamily::set_flush`] changes it.
    pub flush: Option<FlushConfig>,
    /// Pages of its first extent (default: the database's, 16).
    pub initial_extent_pages: Option<u64>,
}

impl CfOptions {
    /// Sets the flush policy.
    pub fn with_flush(mut self, flush: FlushConfig) -> Self {
        self.flush = Some(flush);
        self
    }

    /// Sets the first extent's size in pages.
    pub fn with_initial_extent_pages(mut self, pages: u64) -> Self {
        self.initial_extent_pages = Some(pages);
        self
    }
}

/// A committed state of a column family: its table directory, and the epoch that keeps the
/// pages it reaches from being reused while it is held.
#[derive(Debug)]
pub(crate) struct Snapshot {
    pub dir: TreeRoot,
    pub epoch: Arc<Epoch>,
}

impl Snapshot {
    /// What a dropped column family shows: nothing, in a newer epoch than `prev`.
    pub fn tombstone(prev: &Arc<Epoch>) -> Snapshot {
        Snapshot {
            dir: TreeRoot::default(),
            epoch: prev.advance(),
        }
    }
}

/// Figures of one column family.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CfStats {
    /// Commits (with or without a sync).
    pub commits: u64,
    /// Commits that wrote a slot and waited for a sync.
    pub durable_commits: u64,
    /// Runs (write calls before IOV_MAX splits) its flushes issued.
    pub flushed_runs: u64,
    /// Page bytes its flushes wrote.
    pub flushed_page_bytes: u64,
    /// Zero-fill bytes its flushes wrote into free gaps.
    pub flushed_gap_bytes: u64,
    /// Times readying new pages ahead of a flush failed and the flush went on without
    /// (see [`crate::Populate`]), as the backend's call reported it. A `FileBackend` with
    /// serialized writes (the default) makes an allocation at the start of its next write
    /// turn, after the call returned, so such a failure is not counted here; its
    /// [`flush::IoStats`] counts it as a readying call without bytes.
    pub populate_failures: u64,
    /// Pages in its extents.
    pub pages_total: u64,
    /// Pages free now.
    pub pages_free: u64,
    /// Pages freed but kept for older snapshots or until a durable commit.
    pub pages_pending: u64,
    /// Entries of its slot's extent list: extents it holds, adjacent ones counted once.
    pub extents: usize,
    /// Branches its write transactions took from the kept branches
    /// ([`crate::DbBuilder::kept_branches`]) instead of reading and decoding their pages.
    pub kept_branches_taken: u64,
    /// Decoded branches it keeps now.
    pub kept_branches_held: usize,
    /// Sealed leaves at a tree's right edge its write transactions appended past without
    /// reading them, from the last key the commit that wrote each kept (with the kept
    /// branches; none when [`crate::DbBuilder::kept_branches`] is 0).
    pub sealed_edges_taken: u64,
    /// Bytes of its commits' pages it holds unwritten now ([`crate::DbBuilder::hold_bytes`]).
    pub held_bytes: u64,
    /// Bytes of held pages freed before they were written, so never written.
    pub held_dropped_bytes: u64,
}

pub(crate) struct CfShared {
    pub name: String,
    pub core: Arc<DbCore>,
    /// The writer lock and the writer's state.
    pub writer: Arc<Mutex<Space>>,
    /// The newest committed state; readers load it without locking.
    pub committed: ArcSwap<Snapshot>,
    pub dropped: AtomicBool,
    pub stats: Mutex<CfStats>,
    /// The pages its commits hold unwritten (the writer's [`pagecache::WriteBuffer::held`]),
    /// for its readers.
    pub held: Arc<pagecache::HeldPages>,
}

impl CfShared {
    pub fn new(name: String, core: Arc<DbCore>, space: Space) -> Self {
        let snapshot = Snapshot {
            dir: space.root,
            epoch: Arc::new(Epoch::default()),
        };
        let held = Arc::clone(space.buffer.held());
        let cf = Self {
            name,
            core,
            held,
            writer: Arc::new(Mutex::new(space)),
            committed: ArcSwap::from_pointee(snapshot),
            dropped: AtomicBool::new(false),
            stats: Mutex::new(CfStats::default()),
        };
        cf.refresh_stats(&cf.writer.lock());
        cf
    }

    /// A page source for this column family's pages: those its commits hold unwritten, then
    /// the shared cache.
    pub fn source(&self) -> CacheSource {
        CacheSource {
            held: Some(Arc::clone(&self.held)),
            ..self.core.source()
        }
    }

    pub fn check_alive(&self) -> Result<()> {
        if self.dropped.load(Ordering::SeqCst) {
            return Err(Error::CfDropped {
                name: self.name.clone(),
            });
        }
        Ok(())
    }

    pub fn refresh_stats(&self, space: &Space) {
        *self.stats.lock() = CfStats {
            commits: space.commits,
            durable_commits: space.durable_commits,
            flushed_runs: space.flushed_runs,
            flushed_page_bytes: space.flushed_page_bytes,
            flushed_gap_bytes: space.flushed_gap_bytes,
            populate_failures: space.populate_failures,
            pages_total: space.alloc.total_pages(),
            pages_free: space.alloc.free_pages(),
            pages_pending: space.alloc.pending_pages(),
            held_bytes: space.buffer.held_bytes(),
            held_dropped_bytes: space.held_dropped_bytes,
            extents: space.alloc.extents().len(),
            kept_branches_taken: space.branches.borrow().taken(),
            kept_branches_held: space.branches.borrow().len(),
            sealed_edges_taken: space.branches.borrow().edges_taken(),
        };
    }

    /// Writes a slot for the newest commit if it is not durable yet (close, sync). With
    /// `wait` false, a held writer lock makes it return at once without writing.
    pub fn make_durable(&self, wait: bool) -> Result<()> {
        let mut space = if wait {
            self.writer.lock()
        } else {
            match self.writer.try_lock() {
                Some(guard) => guard,
                None => return Ok(()),
            }
        };
        // Under the writer lock: `drop_cf` sets the flag while holding it, so a dropped column
        // family's space (perhaps reused already) is never written.
        if self.dropped.load(Ordering::SeqCst) {
            return Ok(());
        }
        if space.last_txn > space.durable_txn {
            let root = space.root;
            space.commit(&self.core, root, Vec::new(), true, Weak::new())?;
            self.refresh_stats(&space);
        }
        Ok(())
    }
}

/// A handle to one column family. Cheap to clone, `Send + Sync`: give each writer thread
/// its own clone.
#[derive(Clone)]
pub struct ColumnFamily {
    pub(crate) shared: Arc<CfShared>,
}

impl std::fmt::Debug for ColumnFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ColumnFamily")
            .field("name", &self.shared.name)
            .finish()
    }
}

impl ColumnFamily {
    pub(crate) fn from_shared(shared: Arc<CfShared>) -> Self {
        Self { shared }
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.shared.name
    }

    /// Opens the write transaction of this column family, waiting while another is open.
    /// Writers of different column families never wait for each other.
    pub fn begin_write(&self) -> Result<WriteTxn> {
        self.shared.check_alive()?;
        self.shared.core.check_writable()?;
        let guard = self.shared.writer.lock_arc();
        WriteTxn::new(self.shared.clone(), guard)
    }

    /// Like [`ColumnFamily::begin_write`], but fails with [`Error::WouldBlock`] instead of
    /// waiting.
    pub fn try_begin_write(&self) -> Result<WriteTxn> {
        self.shared.check_alive()?;
        self.shared.core.check_writable()?;
        let guard = self
            .shared
            .writer
            .try_lock_arc()
            .ok_or_else(|| Error::WouldBlock {
                name: self.shared.name.clone(),
            })?;
        WriteTxn::new(self.shared.clone(), guard)
    }

    /// A snapshot of the newest commit. Never waits for writers; any number may be open.
    pub fn begin_read(&self) -> Result<ReadTxn> {
        self.shared.check_alive()?;
        let snapshot = self.shared.committed.load_full();
        self.shared.check_alive()?;
        Ok(ReadTxn::new(self.shared.clone(), snapshot))
    }

    /// Writes the pages of its commits that it holds in memory ([`crate::DbBuilder::
    /// hold_bytes`]) to the file, without a slot or a sync: afterwards its commits' pages are
    /// in the OS, as if none had been held, and their memory is free. It makes no commit
    /// durable (only [`ColumnFamily::sync`] and a durable commit write a slot). Waits for an
    /// open writer.
    pub fn flush(&self) -> Result<()> {
        self.shared.check_alive()?;
        let mut space = self.shared.writer.lock();
        // Under the writer lock, as in `make_durable`: nothing is written for a dropped one.
        self.shared.check_alive()?;
        space.flush_held(&self.shared.core)?;
        self.shared.refresh_stats(&space);
        Ok(())
    }

    /// Makes the newest commit durable if it is not (a slot write and a group sync).
    pub fn sync(&self) -> Result<()> {
        self.shared.check_alive()?;
        self.shared.make_durable(true)?;
        self.shared.check_alive()
    }

    /// Changes the flush policy of later commits (waits for an open writer).
    pub fn set_flush(&self, config: FlushConfig) -> Result<()> {
        config.validate()?;
        self.shared.writer.lock().policy = config.build();
        Ok(())
    }

    /// Figures as of the last commit.
    pub fn stats(&self) -> CfStats {
        *self.shared.stats.lock()
    }
}
