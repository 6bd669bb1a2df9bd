//! `Db`: opening (creating or recovering) a file, the catalog of column families, closing.
//!
//! The catalog is a B+tree (name -> column-family record) in its own space, committed with
//! the superblock (pages 0 and 1) as its slots. Creating or dropping a column family is one
//! catalog commit: its pages and the superblock slot are written, then one group sync.

use std::cell::RefCell;
use std::fs::File;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Weak};

use dashmap::DashMap;
use flush::{Backend, Bystanders, FileBackend, FileOptions, FlushConfig, IoStatsSnapshot};
use pagecache::{CacheOptions, CacheStats, PageCache, ReadPath};
use parking_lot::Mutex;

use crate::alloc::{ExtentAllocator, PageRuns, SpaceAllocator};
use crate::btree::{self, BranchCache, IndexCache, IndexStats, PageId, TreeRoot, WriteTree};
use crate::cf::{CfShared, ColumnFamily, Snapshot};
use crate::epoch::Epoch;
use crate::format::{self, max_extents, Extent, Slot, SlotProblem, CF_SLOT_MAGIC, SUPERBLOCK_MAGIC};
use crate::hold::HoldGate;
use crate::source::{CacheSource, CommitSink, ValuePool};
use crate::space::Space;
use crate::sync::GroupSync;
use crate::{CfOptions, Error, Result};

/// Longest column-family name, in bytes.
pub const MAX_CF_NAME_LEN: usize = 255;
/// Pages 0 and 1: the superblock slots.
const SUPERBLOCK_PAGES: PageId = 2;
/// Default page size of a new file, in bytes: the OS page size, so that a page is one
/// unit of the kernel's page cache. Larger pages suit large values appended in key order
/// (fewer, fuller leaves) and cost random writes a bigger page per changed entry; measured
/// in ARCHITECTURE.md ("Page size").
pub const DEFAULT_PAGE_SIZE: u32 = 4096;
/// Decoded branches a column family keeps by default ([`DbBuilder::kept_branches`]): with
/// 8-byte keys a 4 KiB branch has about 180 children, so 256 cover the upper levels of a
/// tree of some 46,000 leaves.
pub const DEFAULT_KEPT_BRANCHES: usize = 256;
/// Most bytes of commits without durability a column family holds unwritten by default
/// ([`DbBuilder::hold_bytes`]): 64 MiB, RocksDB's default memtable per column family. Random
/// overwrites of a tree of 50,000 1 KiB values rewrite a leaf about every 17 commits of
/// 1,000; a budget of 64 MiB spans that, 16 MiB does not (ARCHITECTURE.md, "Held pages").
pub const DEFAULT_HOLD_BYTES: u64 = 64 << 20;
/// Most bytes of indexed nodes a database keeps for lookups and ranges by default
/// ([`DbBuilder::index_bytes`]): half the read cache's default. A full 4 KiB branch of 8-byte
/// keys (about 185 separators) weighs about 6.3 KiB indexed, so this covers some 5,000 such
/// nodes, or some 500 leaves of sixteen pages.
pub const DEFAULT_INDEX_BYTES: u64 = 32 << 20;

/// The most pages a B+tree leaf spans, at page sizes up to 16 KiB (see
/// [`DbBuilder::leaf_pages`]).
pub const MAX_LEAF_PAGES: usize = btree::MAX_LEAF_PAGES;
/// Default first extent of a column family (pages); later extents double.
pub const DEFAULT_INITIAL_EXTENT_PAGES: u64 = 16;

/// How to open a database. `Db::builder().page_size(4096).flush(config).open(path)`.
#[derive(Debug, Clone)]
pub struct DbBuilder {
    page_size: u32,
    cache_bytes: u64,
    flush: FlushConfig,
    initial_extent_pages: u64,
    cache_written_pages: bool,
    populate: Populate,
    leaf_pages: usize,
    kept_branches: usize,
    hold_bytes: u64,
    index_bytes: u64,
    read_path: ReadPath,
    file: FileOptions,
}

/// How a column family readies the never-written pages of its newest extent before writing
/// them, up to 64 MiB past the pages a flush writes: by allocating their blocks
/// ([`flush::Backend::allocate`], one `fallocate`), and optionally also filling the OS page
/// cache with their zero pages ([`flush::Backend::populate`]: `fallocate`, then `readahead`).
///
/// A buffered write into blocks the file system has not allocated yet reserves each block
/// for delayed allocation as it copies, and buffered writes to one file are serialized by
/// the kernel, so that work waits for nobody else but holds up every other writer. Blocks
/// allocated ahead skip it: a 1 MiB `pwrite` into a new file took 160-164 us with its range
/// allocated first (plus 5-7 us for the `fallocate`) against 181-190 us without (a
/// throwaway program, 3 runs). `Allocate`, the default, ran W1 in one file at 1.07x of
/// `Never` at 1 writer, 1.02x at 2, 1.20x at 4 and 1.17x at 8 (8 interleaved rounds;
/// ARCHITECTURE.md has the figures).
///
/// Filling the page cache as well moves the rest of a fresh page's cost out of the
/// serialized part, but costs more than it moves (`readahead` of 1 MiB took 240-263 us, and
/// the write into its pages still 171-175 us), except in this VM's slow state (after idle
/// seconds), where the kernel's copies into new pages are several times slower: at 8
/// writers they held the write lock 854 ms with `Never`, 282 ms with `WhenContended`, which
/// then ran at 2.1x of `Never`; when fresh pages are cheap it ran at 0.82x-0.85x.
///
/// A failed readying is ignored: the writes then allocate as they would without it. On a
/// nearly full disk, readying takes blocks up to 64 MiB ahead of need per column family, so
/// later writes elsewhere may meet a full disk sooner (and fail cleanly, as any write
/// would); `Never` takes no block before it is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum Populate {
    /// Never: every write allocates its own blocks and pages.
    Never,
    /// Allocates the blocks ahead, once per 64 MiB reach into the column family's newest
    /// extent taken past the file's end (extents reused from dropped column families are not
    /// readied); the writes fill the page cache. The default.
    #[default]
    Allocate,
    /// Allocates as [`Populate::Allocate`] does, and also fills the page cache ahead while
    /// the file's recent writes had to queue behind each other
    /// ([`flush::Backend::writes_contend`]; a `FileBackend` knows only with its default
    /// serialized writes): a lone writer never pays for the fill.
    WhenContended,
    /// Allocates and fills the page cache ahead, at every reach.
    Always,
}

impl Default for DbBuilder {
    fn default() -> Self {
        Self {
            page_size: DEFAULT_PAGE_SIZE,
            cache_bytes: 64 << 20,
            flush: FlushConfig::default(),
            initial_extent_pages: DEFAULT_INITIAL_EXTENT_PAGES,
            cache_written_pages: false,
            populate: Populate::default(),
            leaf_pages: MAX_LEAF_PAGES,
            kept_branches: DEFAULT_KEPT_BRANCHES,
            hold_bytes: DEFAULT_HOLD_BYTES,
            index_bytes: DEFAULT_INDEX_BYTES,
            read_path: ReadPath::Cache,
            file: FileOptions::default(),
        }
    }
}

impl DbBuilder {
    /// Page size of a new file (a power of two, 512 to 65536; default
    /// [`DEFAULT_PAGE_SIZE`]). An existing file keeps the page size it was created with.
    pub fn page_size(mut self, bytes: u32) -> Self {
        self.page_size = bytes;
        self
    }

    /// Read-cache budget in bytes (default 64 MiB).
    pub fn cache_bytes(mut self, bytes: u64) -> Self {
        self.cache_bytes = bytes;
        self
    }

    /// Whether pages a commit writes also enter the read cache (default `false`: the cache
    /// is filled by reads, and of the written pages takes only the table directory's, which
    /// the column family's next transaction reads and rewrites). Admitting every written
    /// page cost W1 about a quarter of its throughput at 4 writers (shared-cache inserts and
    /// evictions, and fresh memory for each page), for readers that mostly never read those
    /// pages; a page read later costs one `pread` from the OS page cache.
    pub fn cache_written_pages(mut self, admit: bool) -> Self {
        self.cache_written_pages = admit;
        self
    }

    /// How new extents' pages are readied before they are written (default
    /// [`Populate::Allocate`]).
    pub fn populate(mut self, when: Populate) -> Self {
        self.populate = when;
        self
    }

    /// Most pages a B+tree leaf grows to while appends fill it (1 to [`MAX_LEAF_PAGES`];
    /// default [`MAX_LEAF_PAGES`] = 16; out-of-range values are clamped, and pages over
    /// 16 KiB allow fewer, so that a leaf stays within 256 KiB). A transaction that appends
    /// many entries at the end of a table lets its rightmost leaf grow past one page instead
    /// of splitting, so large values fill their pages: 1 KiB entries fill a 4 KiB page to
    /// 76%, four pages to 95% and sixteen to 99.7%. A committed leaf that is longer than a
    /// page and at least three quarters full is not rewritten by later appends, which start a
    /// new leaf after it. The first other change to a grown leaf cuts it into one-page
    /// leaves, which writes all of them once: a load in key order followed by random updates
    /// of it pays that (measured in ARCHITECTURE.md, "Leaves longer than a page"), and 1
    /// keeps every leaf at one page. Files hold leaves of any length up to the maximum
    /// whatever this is set to, so it can change between opens.
    pub fn leaf_pages(mut self, pages: usize) -> Self {
        self.leaf_pages = pages.clamp(1, MAX_LEAF_PAGES);
        self
    }

    /// Most decoded branches a column family keeps from its commits for its next write
    /// transactions (default [`DEFAULT_KEPT_BRANCHES`]; 0 keeps none). A change copies
    /// every node on its path, and the upper branches are on nearly every path: a kept
    /// branch is taken as it is instead of read from its page and decoded (with ten random
    /// inserts a transaction, 1.6x the commits a second; ARCHITECTURE.md, "Kept
    /// branches"). A decoded branch of 4 KiB with 8-byte keys takes about 9 KiB, and most
    /// are kept with their page as well (4 KiB; ARCHITECTURE.md, "Branch images"), so the
    /// default costs a column family with a large tree up to about 3.5 MiB; a tree of N
    /// leaves has about N / 180 branches. With them a column family keeps the last key of
    /// the sealed leaf a commit of appends ended in, so that the next commit's appends go
    /// past it without reading it (ARCHITECTURE.md, "The sealed right edge is kept by its
    /// last key"); 0 keeps those neither.
    pub fn kept_branches(mut self, branches: usize) -> Self {
        self.kept_branches = branches;
        self
    }

    /// Most bytes of indexed nodes kept for lookups and ranges (default
    /// [`DEFAULT_INDEX_BYTES`]; 0 keeps none). The page format has no offset array, so
    /// finding a key in a node means walking its entries from the start; the first lookup or
    /// range to reach a committed node parses it whole once and keeps where each key begins,
    /// with the node's bytes, and later ones binary-search it and take its entries without
    /// reading or decoding it (ARCHITECTURE.md, "Indexed nodes"). Each kept node weighs its
    /// bytes (which it keeps from being freed, even when the read cache drops them) and 12
    /// bytes a key. A kept node answers from the bytes it checked when it was indexed, as a
    /// cached page does, so a later change to the file under it is not seen until its entry
    /// leaves the cache. `get` and `range` use it, in read and write transactions; changes do
    /// not. With [`ReadPath::Mmap`] there is none.
    pub fn index_bytes(mut self, bytes: u64) -> Self {
        self.index_bytes = bytes;
        self
    }

    /// Most bytes of commits without durability ([`crate::Durability::None`]) a column
    /// family holds in memory instead of writing them (default [`DEFAULT_HOLD_BYTES`]; 0
    /// writes every commit's pages at once). Such a commit has no slot, so a crash loses it
    /// either way; holding its pages lets a later commit that frees one (the root, a leaf
    /// updated again) drop it unwritten. A column family holds only while that pays: while
    /// its commits free at least a quarter as many bytes as they write out of the last
    /// budget's worth they wrote (so an append load never holds; the rule is in
    /// `hold.rs`). A commit that would pass the budget first writes the oldest held pages,
    /// as many bytes as it needs; all of them are written by a commit that stops holding, by
    /// a durable commit (before its slot), by [`crate::ColumnFamily::flush`],
    /// [`crate::ColumnFamily::sync`] and [`Db::close`]. Readers find them in memory. Each
    /// writer holds up to this much on top of the commit it is building.
    pub fn hold_bytes(mut self, bytes: u64) -> Self {
        self.hold_bytes = bytes;
        self
    }

    /// Where committed pages are read from (default [`ReadPath::Cache`]): `pread` into the
    /// shared read cache, or [`ReadPath::Mmap`], a read-only shared mapping of the file.
    ///
    /// The mapping spares a system call and a copy for every page the cache does not hold,
    /// and a transaction that changes pages at random reads back many that earlier commits
    /// wrote: random keys ran at 1.22x (T=1) and 1.41x (T=4), overwrites at 1.35x / 1.38x,
    /// small transactions 1.15x / 1.12x, W1 unchanged (ARCHITECTURE.md, "The mmap read
    /// path"). It is not the default because an I/O error reading a page of the mapping
    /// raises SIGBUS and ends the process, where `pread` returns [`Error::Flush`]; checksums
    /// catch corrupt bytes either way. It needs a file the store opens itself
    /// ([`DbBuilder::open`]); [`DbBuilder::open_backend`] refuses it.
    pub fn read_path(mut self, read_path: ReadPath) -> Self {
        self.read_path = read_path;
        self
    }

    /// How [`DbBuilder::open`] opens its file and shapes its write calls (default
    /// [`FileOptions::default`]; `create` is always on).
    ///
    /// One of them is worth knowing: [`FileOptions::max_bytes_per_call`]. The kernel (ext4
    /// on Linux 6.18 here) caches a file in folios as large as the write call that first
    /// wrote them, up to 2 MiB, and a later one-page write into a large folio costs it more:
    /// a 4 KiB rewrite took 3.9 us in pages first written 1 MiB a call, 2.0 us at 256 KiB,
    /// 1.3 us at 4 KiB. A store that loads in big commits and then updates at random runs
    /// faster with `with_max_bytes_per_call(256 << 10)`: the overwrite workload 1.22x (T=1)
    /// and 1.15x (T=4), random keys 1.09x (T=4). Loads in key order pay for the extra calls
    /// (W1 T=1 0.92x, one file T=4 0.85x, 6 write calls per commit instead of 2), so the
    /// default is no cap. Measured in ARCHITECTURE.md ("Large folios and small rewrites").
    pub fn file_options(mut self, options: FileOptions) -> Self {
        self.file = options;
        self
    }

    /// Flush policy of every column family that does not set its own (default `vectored`).
    pub fn flush(mut self, config: FlushConfig) -> Self {
        self.flush = config;
        self
    }

    /// Pages of a new column family's first extent (default 16; at least 4). Later extents
    /// double, up to 1 GiB at 4 KiB pages, and then grow with the column family (an eighth
    /// of its size). An extent reaching past byte 2^62 of the file is
    /// [`Error::ExtentTooLarge`] at [`Db::create_cf`].
    pub fn initial_extent_pages(mut self, pages: u64) -> Self {
        self.initial_extent_pages = pages.max(4);
        self
    }

    /// Opens the file at `path`, creating a database there if the file does not exist, is
    /// empty, or is what a creation cut short by a crash leaves (two pages holding no more
    /// than part of a new file's first slot; [`Db::recovery_notes`] then says so). A
    /// creation syncs the file's directory after the file, so its name survives a crash;
    /// where that sync fails with an I/O error the open fails with
    /// [`Error::DirectorySync`] (the file is complete, and opens).
    pub fn open(self, path: impl AsRef<Path>) -> Result<Db> {
        let path = path.as_ref();
        // The file's writers yield their core to one another while no read transaction is
        // open (`FileOptions::bystanders`).
        let reads = Arc::new(Bystanders::new());
        let options = self.file.clone().with_create(true).with_bystanders(reads.clone());
        let backend: Arc<dyn Backend> = Arc::new(FileBackend::open_with(path, options)?);
        let (db, created) = self.open_over(backend, path, Some(reads))?;
        if created {
            // The file's first slot is on disk; now its name: a new directory entry is
            // durable only once the directory is synced (POSIX; ext4 happens to persist it
            // with the file's sync, other file systems need not).
            sync_parent_dir(path)?;
        }
        Ok(db)
    }

    /// Opens a database over any backend (an in-memory or crash-simulating one in tests);
    /// `label` names it in errors. [`ReadPath::Mmap`] is refused here
    /// ([`Error::MmapNeedsOwnedFile`]): the caller keeps a handle to the backend, and a
    /// write or truncation through it could change or remove pages the store has mapped.
    pub fn open_backend(self, backend: Arc<dyn Backend>, label: impl AsRef<Path>) -> Result<Db> {
        self.open_over(backend, label.as_ref(), None).map(|(db, _)| db)
    }

    /// [`DbBuilder::open_backend`]; `reads`, given when the store opened the backend itself
    /// and no one else holds it (so the file may be mapped): the count of open read
    /// transactions that the backend was given as its bystanders. Also returns whether the
    /// database was created (the file was new).
    fn open_over(
        self,
        backend: Arc<dyn Backend>,
        label: &Path,
        reads: Option<Arc<Bystanders>>,
    ) -> Result<(Db, bool)> {
        let owned = reads.is_some();
        if self.read_path == ReadPath::Mmap && !owned {
            return Err(Error::MmapNeedsOwnedFile {
                path: label.to_path_buf(),
            });
        }
        self.flush.validate()?;
        let path = label.to_path_buf();
        let len = backend.len()?;
        // A new file: empty, or left by a creation cut short, which holds nothing to lose.
        let fresh = len == 0 || is_unfinished_creation(&*backend, len)?;
        let page_size = if fresh {
            self.page_size
        } else {
            find_page_size(&*backend, len, &path)?
        };
        let cache = PageCache::new(
            backend.clone(),
            CacheOptions::default()
                .with_page_size(page_size)
                // Held pages come back as spare buffers when a flush writes them: keep up to a
                // budget's worth, or the next commits allocate (and zero) them all again.
                .with_spare_bytes(CacheOptions::default().spare_bytes.max(self.hold_bytes))
                .with_cache_bytes(self.cache_bytes)
                .with_cache_on_flush(self.cache_written_pages)
                .with_read_path(self.read_path),
        )?;
        if !fresh && len < SUPERBLOCK_PAGES * page_size as u64 {
            return Err(Error::NotADatabase {
                path,
                what: format!("truncated: {len} bytes, a superblock needs {}", 2 * page_size),
            });
        }
        let core = Arc::new(DbCore {
            path,
            page_size,
            backend,
            cache,
            populate: self.populate,
            leaf_pages: self.leaf_pages,
            kept_branches: self.kept_branches,
            hold_bytes: self.hold_bytes,
            // The mmap path's bytes are the mapping's, which a reader may use only while it
            // holds its snapshot: nothing read through it could be kept.
            index: match self.read_path {
                ReadPath::Cache => IndexCache::new(self.index_bytes, page_size).map(Arc::new),
                _ => None,
            },
            open_reads: reads.unwrap_or_default(),
            group: GroupSync::default(),
            files: Mutex::new(FileSpace::default()),
            poisoned: AtomicBool::new(false),
        });
        let shared = if fresh {
            if len > 0 {
                // Start from nothing, as for an empty file, and make that durable: a crash
                // from here on leaves an empty file or the same kind of remnant, never the
                // new slot over old bytes, and no bytes of the old page size stay behind in
                // the new slot 1.
                core.backend.set_len(0)?;
                core.backend.sync_data()?;
            }
            let mut shared = create(core, &self)?;
            if len > 0 {
                shared.recovery_notes.push(format!(
                    "a creation cut short ({len} bytes, no commit) was replaced by a new database"
                ));
            }
            shared
        } else {
            recover(core, &self)?
        };
        let db = Db {
            shared: Arc::new(shared),
        };
        Ok((db, fresh))
    }
}

/// Syncs the directory that holds the file at `path` (through symlinks: the directory of the
/// file itself), so a file just created there keeps its name through a crash.
///
/// Best effort where a directory cannot be synced at all, as PostgreSQL's `fsync_fname`
/// is: a directory that may be written but not read (`EACCES` opening it), or a file system
/// that refuses `fsync` on a directory (`EINVAL`, `ENOTSUP`, `EISDIR`), is skipped. Any
/// other failure, an I/O error above all, is [`Error::DirectorySync`].
fn sync_parent_dir(path: &Path) -> Result<()> {
    use std::io::ErrorKind;
    let real = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
    let dir = match real.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let cannot_sync = |e: &std::io::Error, opening: bool| {
        matches!(
            e.kind(),
            ErrorKind::InvalidInput | ErrorKind::Unsupported | ErrorKind::IsADirectory
        ) || (opening && e.kind() == ErrorKind::PermissionDenied)
    };
    let result = match File::open(&dir) {
        Err(e) if cannot_sync(&e, true) => return Ok(()),
        Err(e) => Err(e),
        Ok(d) => match d.sync_all() {
            Err(e) if cannot_sync(&e, false) => return Ok(()),
            other => other,
        },
    };
    result.map_err(|source| Error::DirectorySync { dir, source })
}

/// True when the file is a creation cut short: exactly two pages at some page size, the
/// second all zeros, and the first holding no more than parts of a new file's first
/// superblock (each byte zero or that slot's byte there, so a write torn at any
/// granularity qualifies) without being all of it. Such a file was never a database that
/// held anything, so opening it creates one in its place. A complete first slot is a
/// database (an empty one) and opens as such.
fn is_unfinished_creation(backend: &dyn Backend, len: u64) -> Result<bool> {
    let mut ps = pagecache::MIN_PAGE_SIZE;
    while ps <= pagecache::MAX_PAGE_SIZE {
        if len == SUPERBLOCK_PAGES * u64::from(ps) {
            let Some(slot) = Slot::new_file_superblock().encode(ps as usize) else {
                return Ok(false);
            };
            let mut bytes = vec![0u8; len as usize];
            backend.read_at(&mut bytes, 0)?;
            let (first, rest) = bytes.split_at(ps as usize);
            let partial = first.iter().zip(slot.iter()).all(|(&b, &s)| b == 0 || b == s);
            return Ok(partial && first != &slot[..] && rest.iter().all(|&b| b == 0));
        }
        ps *= 2;
    }
    Ok(false)
}

/// Finds the page size of an existing file from its superblock (slot 0, else slot 1).
fn find_page_size(backend: &dyn Backend, len: u64, path: &Path) -> Result<u32> {
    let mut head = [0u8; 16];
    if len >= 16 {
        backend.read_at(&mut head, 0)?;
        if let Some(ps) = format::peek_page_size(&head) {
            if pagecache::CacheOptions::default()
                .with_page_size(ps)
                .validate()
                .is_ok()
            {
                return Ok(ps);
            }
        }
    }
    // Slot 0 unreadable: look for slot 1 at each possible page size.
    let mut ps = pagecache::MIN_PAGE_SIZE;
    while ps <= pagecache::MAX_PAGE_SIZE {
        if len >= ps as u64 + 16 {
            backend.read_at(&mut head, ps as u64)?;
            if format::peek_page_size(&head) == Some(ps) {
                return Ok(ps);
            }
        }
        ps *= 2;
    }
    let what = if len < 16 {
        format!("{len} bytes, too short for a superblock")
    } else {
        "no cf-store superblock in either slot".to_string()
    };
    Err(Error::NotADatabase {
        path: path.to_owned(),
        what,
    })
}

/// What every part of an open database shares: the file, the cache, group sync, extents.
pub(crate) struct DbCore {
    pub path: PathBuf,
    pub page_size: u32,
    pub backend: Arc<dyn Backend>,
    pub cache: Arc<PageCache>,
    pub populate: Populate,
    /// [`DbBuilder::leaf_pages`].
    pub leaf_pages: usize,
    /// [`DbBuilder::kept_branches`].
    pub kept_branches: usize,
    /// [`DbBuilder::hold_bytes`].
    pub hold_bytes: u64,
    /// [`DbBuilder::index_bytes`]: the indexed nodes of every column family's lookups.
    pub index: Option<Arc<IndexCache>>,
    /// Read transactions open now, on every column family ([`crate::ReadTxn`]); the file's
    /// writers yield their core to one another only while there are none
    /// (`FileOptions::bystanders`).
    pub open_reads: Arc<Bystanders>,
    group: GroupSync,
    files: Mutex<FileSpace>,
    poisoned: AtomicBool,
}

/// The file's extents and the extents of dropped spaces waiting for their last reader.
#[derive(Default)]
struct FileSpace {
    extents: ExtentAllocator,
    waiting: Vec<(Weak<Epoch>, Vec<Extent>)>,
}

impl FileSpace {
    fn release_ready(&mut self) {
        let ready: Vec<_> = self.waiting.iter().map(|(g, _)| g.strong_count() == 0).collect();
        let mut i = 0;
        self.waiting.retain(|(_, extents)| {
            let keep = !ready[i];
            if !keep {
                for e in extents {
                    self.extents.release(*e);
                }
            }
            i += 1;
            keep
        });
    }
}

impl std::fmt::Debug for DbCore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DbCore")
            .field("path", &self.path)
            .field("page_size", &self.page_size)
            .finish()
    }
}

impl DbCore {
    /// A page source over the shared cache.
    pub fn source(&self) -> CacheSource {
        CacheSource {
            cache: self.cache.clone(),
            leaf_pages: self.leaf_pages,
            held: None,
            index: self.index.clone(),
        }
    }

    /// Takes an extent of `pages` pages from the file, and says whether it lies past every
    /// extent the file knew of. [`Error::ExtentTooLarge`], taking nothing, when it would
    /// reach past byte 2^62: the file backend writes no byte past `i64::MAX`, and recovery
    /// refuses a column family whose slots lie past 2^62 bytes.
    pub fn take_extent(&self, pages: u64) -> Result<(Extent, bool)> {
        let mut files = self.files.lock();
        files.release_ready();
        let end = files.extents.end();
        let limit = (1 << 62) / u64::from(self.page_size);
        let e = files
            .extents
            .take(pages, limit)
            .ok_or(Error::ExtentTooLarge { pages, end })?;
        Ok((e, e.start >= end))
    }

    /// Returns `extents` to the file once no snapshot keeps `guard` alive.
    fn release_extents(&self, guard: Weak<Epoch>, extents: Vec<Extent>) {
        let mut files = self.files.lock();
        files.waiting.push((guard, extents));
        files.release_ready();
    }

    /// A group sync; a failure poisons the database.
    pub fn sync(&self) -> Result<()> {
        self.group
            .sync(&*self.backend)
            .inspect_err(|_| self.poisoned.store(true, Ordering::SeqCst))
    }

    /// Fails once a sync has failed.
    pub fn check_writable(&self) -> Result<()> {
        if self.poisoned.load(Ordering::SeqCst) {
            return Err(Error::SyncFailed);
        }
        Ok(())
    }
}

/// The catalog: its space (slots = the superblock) and the next column-family id.
struct Catalog {
    space: Space,
    next_cf_id: u64,
}

/// A catalog entry: where a column family's slots are, and which catalog commit made it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CfRecord {
    id: u64,
    slot_page: PageId,
    created: u64,
}

impl CfRecord {
    fn encode(&self) -> [u8; 24] {
        let mut out = [0u8; 24];
        out[0..8].copy_from_slice(&self.id.to_le_bytes());
        out[8..16].copy_from_slice(&self.slot_page.to_le_bytes());
        out[16..24].copy_from_slice(&self.created.to_le_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<CfRecord> {
        if bytes.len() != 24 {
            return None;
        }
        let u = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().expect("8 bytes"));
        Some(CfRecord {
            id: u(0),
            slot_page: u(8),
            created: u(16),
        })
    }
}

/// The database, shared by every handle (`Db` is cheap to clone and `Send + Sync`).
pub(crate) struct DbShared {
    core: Arc<DbCore>,
    catalog: Mutex<Catalog>,
    cfs: DashMap<String, Arc<CfShared>>,
    default_flush: FlushConfig,
    initial_extent_pages: u64,
    /// What recovery passed over to open the file (slots that failed verification).
    recovery_notes: Vec<String>,
}

/// An open database: one file holding any number of column families.
#[derive(Clone)]
pub struct Db {
    shared: Arc<DbShared>,
}

impl std::fmt::Debug for Db {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Db")
            .field("path", &self.shared.core.path)
            .field("column_families", &self.shared.cfs.len())
            .finish()
    }
}

/// Database-wide figures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct DbStats {
    /// Every system call and byte of the file's I/O so far.
    pub io: IoStatsSnapshot,
    /// Page size.
    pub page_size: u32,
    /// File length in bytes.
    pub file_bytes: u64,
    /// Live column families.
    pub column_families: usize,
    /// Pages between extents, free for any space to take.
    pub free_extent_pages: u64,
    /// The shared read cache's counters: hits, misses, resident pages, and how many times a
    /// page read from the file was marked checked after its checksum passed
    /// (`checked_pages`); later reads take a marked page without checking it again.
    pub cache: CacheStats,
    /// The indexed nodes of point lookups ([`DbBuilder::index_bytes`]): lookups that
    /// searched a kept node, nodes indexed, and what is kept now (all zero when it is off).
    pub index: IndexStats,
}

fn new_space(
    core: &DbCore,
    owner: u64,
    magic: [u8; 8],
    slot_pages: [PageId; 2],
    alloc: SpaceAllocator,
    flush: FlushConfig,
) -> Space {
    Space {
        owner,
        magic,
        slot_pages,
        alloc,
        buffer: core.cache.write_buffer(),
        policy: flush.build(),
        hold: HoldGate::new(
            if owner == 0 { 0 } else { core.hold_bytes },
            u64::from(core.page_size),
        ),
        values: ValuePool::default(),
        branches: RefCell::new(BranchCache::new(core.kept_branches)),
        reclaimed: Vec::new(),
        root: TreeRoot::default(),
        aux: 0,
        last_txn: 0,
        durable_txn: 0,
        durable_slot: 1,
        commits: 0,
        durable_commits: 0,
        flushed_runs: 0,
        flushed_page_bytes: 0,
        flushed_gap_bytes: 0,
        held_dropped_bytes: 0,
        fresh_tail: None,
        populate_failures: 0,
    }
}

/// A new file: superblock slot 0 with an empty catalog, synced.
fn create(core: Arc<DbCore>, b: &DbBuilder) -> Result<DbShared> {
    *core.files.lock() = FileSpace {
        extents: ExtentAllocator::new(SUPERBLOCK_PAGES, &[]),
        waiting: Vec::new(),
    };
    let alloc = SpaceAllocator::new(
        Vec::new(),
        &PageRuns::default(),
        b.initial_extent_pages,
        max_extents(core.page_size as usize),
    );
    let mut space = new_space(&core, 0, SUPERBLOCK_MAGIC, [0, 1], alloc, b.flush);
    // The first commit writes exactly `Slot::new_file_superblock`, which is how a reopen
    // tells a creation cut short from a damaged database (`is_unfinished_creation`).
    let first = Slot::new_file_superblock();
    space.aux = first.aux;
    space.last_txn = first.txn - 1;
    // Both superblock slots exist from the start (slot 1 zeroed), so any file shorter than
    // two pages is truncated.
    core.backend.set_len(SUPERBLOCK_PAGES * core.page_size as u64)?;
    space.commit(&core, first.root, Vec::new(), true, Weak::new())?;
    Ok(DbShared {
        core,
        catalog: Mutex::new(Catalog { space, next_cf_id: 1 }),
        cfs: DashMap::new(),
        default_flush: b.flush,
        initial_extent_pages: b.initial_extent_pages,
        recovery_notes: Vec::new(),
    })
}

/// The valid slots of a space, each with its index (0 or 1), newest first.
type ValidSlots = Vec<(usize, Slot)>;

/// Reads both slot pages of a space and returns the valid ones, newest first, with the
/// problems of the others. A slot whose checksum holds but whose format version this build
/// does not read was written by another build, not torn: it is an error, not a slot to
/// fall back from (falling back would lose its commit, and the next commit would overwrite
/// it).
fn read_slots(core: &DbCore, pages: [PageId; 2], magic: [u8; 8]) -> Result<(ValidSlots, Vec<String>)> {
    let ps = core.page_size as usize;
    let mut valid = Vec::new();
    let mut problems = Vec::new();
    let file_pages = core.backend.len().unwrap_or(0) / ps as u64;
    for (i, page) in pages.into_iter().enumerate() {
        if page >= file_pages {
            problems.push(format!(
                "slot at page {page}: BadMagic (never written: beyond the end of the file)"
            ));
            continue;
        }
        let read = btree::PageSource::read(&core.source(), page);
        match read {
            Ok(bytes) => match Slot::decode(&bytes, magic, ps) {
                Ok(slot) => valid.push((i, slot)),
                // Slots that were never written are all zeros (a new file's second superblock
                // slot, a new column family's second slot): expected, not news.
                Err(SlotProblem::BadMagic) if bytes.iter().all(|&b| b == 0) => {
                    problems.push(format!("slot at page {page}: BadMagic (never written: zeros)"))
                }
                Err(SlotProblem::Version(found)) => {
                    return Err(Error::UnsupportedVersion {
                        path: core.path.clone(),
                        found,
                        supported: format::FORMAT_VERSION,
                    })
                }
                Err(p) => problems.push(format!("slot at page {page}: corrupt: {p:?}")),
            },
            Err(e) => problems.push(format!("slot at page {page}: {e}")),
        }
    }
    valid.sort_by_key(|s| std::cmp::Reverse(s.1.txn));
    Ok((valid, problems))
}

/// Every page run reachable from a space's tree (for a column family: its table directory
/// and every table), each verified, each inside the space's extents, none twice.
fn reachable(core: &DbCore, root: &TreeRoot, extents: &[Extent], owner: u64) -> Result<PageRuns> {
    let source = core.source();
    let mut runs: Vec<(PageId, u64)> = Vec::new();
    btree::visit_pages(&source, root, true, &mut |p, n| runs.push((p, n)))?;
    if owner != 0 {
        let mut tables = Vec::new();
        for entry in btree::range(&source, root, ..) {
            let (name, value) = entry?;
            let table = TreeRoot::decode(&value).ok_or_else(|| Error::Corruption {
                page: root.root.map_or(0, |r| r.page),
                what: format!("table {:?} has a malformed root", String::from_utf8_lossy(&name)),
            })?;
            tables.push(table);
        }
        for table in tables {
            btree::visit_pages(&source, &table, true, &mut |p, n| runs.push((p, n)))?;
        }
    }
    // Adjacent extents form one run of pages, and an allocation may span them.
    let mut owned = PageRuns::default();
    for e in extents {
        if owned.overlaps(e.start, e.end()) {
            return Err(Error::Corruption {
                page: e.start,
                what: format!("space {owner} lists overlapping extents"),
            });
        }
        owned.insert(e.start, e.end());
    }
    let mut used = PageRuns::default();
    for (page, count) in runs {
        let end = page.saturating_add(count);
        if !owned.contains(page, end) || used.overlaps(page, end) {
            return Err(Error::Corruption {
                page,
                what: format!("space {owner} reaches pages {page}..{end} outside its extents or twice"),
            });
        }
        used.insert(page, end);
    }
    Ok(used)
}

/// Opens an existing file: the newest superblock whose catalog verifies, then each column
/// family's newest slot whose trees verify.
fn recover(core: Arc<DbCore>, b: &DbBuilder) -> Result<DbShared> {
    let (slots, problems) = read_slots(&core, [0, 1], SUPERBLOCK_MAGIC)?;
    if slots.is_empty() {
        return Err(superblock_error(&core.path, &problems));
    }
    let newest = slots[0].1.txn;
    let mut notes: Vec<String> = problems
        .into_iter()
        .filter(|p| !p.contains("never written"))
        .collect();
    let mut rejected: Vec<PageId> = Vec::new();
    let mut last_err = None;
    for (index, slot) in slots {
        match load_catalog(&core, b, index, &slot, &mut notes, &mut rejected) {
            Ok(mut shared) => {
                if slot.txn != newest {
                    notes.push(format!(
                        "superblock: fell back from txn {newest} to txn {}",
                        slot.txn
                    ));
                }
                shared.recovery_notes = notes;
                settle(&core, &rejected)?;
                return Ok(shared);
            }
            Err(e) => {
                notes.push(format!("superblock txn {}: {e}", slot.txn));
                rejected.push(index as PageId);
                last_err = Some(e);
            }
        }
    }
    Err(last_err.expect("at least one slot was tried"))
}

/// Makes what recovery chose durable before anything builds on it: zeroes every newer slot
/// it rejected (so a later session can never bring that commit back by rewriting its missing
/// pages) and syncs once (what recovery read may have come from the OS cache only).
fn settle(core: &DbCore, rejected: &[PageId]) -> Result<()> {
    let ps = core.page_size as u64;
    let zeros = vec![0u8; ps as usize];
    for &page in rejected {
        core.backend.write_at(&zeros, page * ps)?;
        core.cache.invalidate(page * ps);
    }
    core.backend.sync_data()?;
    Ok(())
}

/// Why no superblock slot is valid (a slot of an unsupported version has already failed
/// the open with [`Error::UnsupportedVersion`] in [`read_slots`]).
fn superblock_error(path: &Path, problems: &[String]) -> Error {
    if problems.iter().all(|p| p.contains("BadMagic")) {
        return Error::NotADatabase {
            path: path.to_owned(),
            what: "no cf-store superblock in either slot".into(),
        };
    }
    Error::Corruption {
        page: 0,
        what: format!("no superblock slot verifies: {}", problems.join("; ")),
    }
}

fn load_catalog(
    core: &Arc<DbCore>,
    b: &DbBuilder,
    index: usize,
    slot: &Slot,
    notes: &mut Vec<String>,
    rejected: &mut Vec<PageId>,
) -> Result<DbShared> {
    let used = reachable(core, &slot.root, &slot.extents, 0)?;
    let mut records = Vec::new();
    for entry in btree::range(&core.source(), &slot.root, ..) {
        let (name, value) = entry?;
        let record = CfRecord::decode(&value);
        let name = String::from_utf8(name).ok();
        match (name, record) {
            (Some(n), Some(r))
                if r.id < slot.aux
                    && r.slot_page >= SUPERBLOCK_PAGES
                    && r.slot_page < (1 << 62) / core.page_size as u64
                    && !n.is_empty()
                    && n.len() <= MAX_CF_NAME_LEN =>
            {
                records.push((n, r))
            }
            _ => {
                return Err(Error::Corruption {
                    page: slot.root.root.map_or(0, |r| r.page),
                    what: "a catalog entry is malformed".into(),
                })
            }
        }
    }
    let mut all_extents: Vec<(u64, Extent)> = slot.extents.iter().map(|e| (0, *e)).collect();
    let cfs = DashMap::new();
    for (name, record) in records {
        let cf = recover_cf(core, b, &name, record, notes, rejected)?;
        all_extents.extend(cf.writer.lock().alloc.extents().iter().map(|e| (record.id, *e)));
        cfs.insert(name, Arc::new(cf));
    }
    // No two spaces may share a page, and none may use the superblock.
    all_extents.sort_by_key(|(_, e)| e.start);
    let mut end = SUPERBLOCK_PAGES;
    for (owner, e) in &all_extents {
        if e.start < end {
            return Err(Error::Corruption {
                page: e.start,
                what: format!(
                    "extent {}..{} of space {owner} overlaps another space or the superblock",
                    e.start,
                    e.end()
                ),
            });
        }
        end = e.end();
    }
    *core.files.lock() = FileSpace {
        extents: ExtentAllocator::new(
            SUPERBLOCK_PAGES,
            &all_extents.iter().map(|(_, e)| *e).collect::<Vec<_>>(),
        ),
        waiting: Vec::new(),
    };
    let alloc = SpaceAllocator::new(
        slot.extents.clone(),
        &used,
        b.initial_extent_pages,
        max_extents(core.page_size as usize),
    );
    let mut space = new_space(core, 0, SUPERBLOCK_MAGIC, [0, 1], alloc, b.flush);
    space.root = slot.root;
    space.aux = slot.aux;
    space.last_txn = slot.txn;
    space.durable_txn = slot.txn;
    space.durable_slot = index;
    Ok(DbShared {
        core: core.clone(),
        catalog: Mutex::new(Catalog {
            space,
            next_cf_id: slot.aux,
        }),
        cfs,
        default_flush: b.flush,
        initial_extent_pages: b.initial_extent_pages,
        recovery_notes: Vec::new(),
    })
}

fn recover_cf(
    core: &Arc<DbCore>,
    b: &DbBuilder,
    name: &str,
    record: CfRecord,
    notes: &mut Vec<String>,
    rejected: &mut Vec<PageId>,
) -> Result<CfShared> {
    let pages = [record.slot_page, record.slot_page + 1];
    let (slots, mut problems) = read_slots(core, pages, CF_SLOT_MAGIC)?;
    for (index, slot) in slots {
        if slot.owner != record.id || slot.aux != record.created {
            // A stale slot of an earlier owner of this space: expected, not news.
            continue;
        }
        let holds_slots = slot
            .extents
            .first()
            .is_some_and(|e| e.start == record.slot_page && e.pages >= 2);
        if !holds_slots {
            problems.push(format!("slot {index}: the first extent does not hold the slots"));
            continue;
        }
        match reachable(core, &slot.root, &slot.extents, record.id) {
            Ok(mut used) => {
                if used.overlaps(record.slot_page, record.slot_page + 2) {
                    problems.push(format!(
                        "slot {index} (txn {}): its tree uses the slot pages",
                        slot.txn
                    ));
                    rejected.push(pages[index]);
                    continue;
                }
                used.insert(record.slot_page, record.slot_page + 2);
                let alloc = SpaceAllocator::new(
                    slot.extents.clone(),
                    &used,
                    b.initial_extent_pages,
                    max_extents(core.page_size as usize),
                );
                let mut space = new_space(core, record.id, CF_SLOT_MAGIC, pages, alloc, b.flush);
                space.root = slot.root;
                space.aux = record.created;
                space.last_txn = slot.txn;
                space.durable_txn = slot.txn;
                space.durable_slot = index;
                // A never-written second slot is expected; a torn one or a newer one that
                // failed verification is news.
                notes.extend(
                    problems
                        .iter()
                        .filter(|p| !p.contains("never written"))
                        .map(|p| format!("column family {name:?}: passed over {p}")),
                );
                return Ok(CfShared::new(name.to_owned(), core.clone(), space));
            }
            Err(e) => {
                problems.push(format!("slot {index} (txn {}): {e}", slot.txn));
                rejected.push(pages[index]);
            }
        }
    }
    Err(Error::Corruption {
        page: record.slot_page,
        what: format!(
            "column family {name:?}: no commit slot verifies: {}",
            problems.join("; ")
        ),
    })
}

/// A name is 1 to 255 bytes, and at most a catalog key long (`page_size / 4`: 128 bytes at
/// 512-byte pages).
fn check_cf_name(name: &str, page_size: u32) -> Result<()> {
    let max = MAX_CF_NAME_LEN.min(btree::max_key_len(page_size as usize));
    if name.is_empty() || name.len() > max {
        return Err(Error::InvalidCfName {
            name: name.chars().take(64).collect(),
            len: name.len(),
            max,
        });
    }
    Ok(())
}

impl Db {
    /// A builder with the defaults.
    pub fn builder() -> DbBuilder {
        DbBuilder::default()
    }

    /// Opens (or creates) the file at `path` with the defaults.
    pub fn open(path: impl AsRef<Path>) -> Result<Db> {
        DbBuilder::default().open(path)
    }

    /// Creates a column family. One catalog commit: at most one sync.
    pub fn create_cf(&self, name: &str, options: CfOptions) -> Result<ColumnFamily> {
        let core = &self.shared.core;
        check_cf_name(name, core.page_size)?;
        core.check_writable()?;
        let mut catalog = self.shared.catalog.lock();
        if self.shared.cfs.contains_key(name) {
            return Err(Error::CfExists {
                name: name.to_owned(),
            });
        }
        let flush = options.flush.unwrap_or(self.shared.default_flush);
        flush.validate()?;
        let initial = options
            .initial_extent_pages
            .unwrap_or(self.shared.initial_extent_pages)
            .max(4);
        // The first extent holds the column family's two slots, which the catalog's commit
        // writes; its other pages are readied like any fresh extent's (below).
        let (extent, fresh) = core.take_extent(initial)?;
        let record = CfRecord {
            id: catalog.next_cf_id,
            slot_page: extent.start,
            created: catalog.space.last_txn + 1,
        };
        let cf_slot = Slot {
            magic: CF_SLOT_MAGIC,
            owner: record.id,
            txn: 1,
            root: TreeRoot::default(),
            aux: record.created,
            extents: vec![extent],
        };
        let ps = core.page_size as u64;
        let result = (|| {
            let mut tree = WriteTree::new(catalog.space.root);
            tree.insert(&core.source(), name.as_bytes(), &record.encode())?;
            let slot_bytes = cf_slot.encode(ps as usize).expect("one extent fits");
            catalog.space.buffer.put(extent.start * ps, slot_bytes)?;
            // The second slot starts as zeros ("never written"), whatever this space held
            // before, so recovery can tell a corrupt slot from an unused one.
            catalog
                .space
                .buffer
                .put((extent.start + 1) * ps, vec![0u8; ps as usize].into_boxed_slice())?;
            catalog.space.aux = record.id + 1;
            commit_catalog(core, &mut catalog.space, tree)
        })();
        if let Err(e) = result {
            // Nothing of the failed create may reach a later catalog commit: the new column
            // family's slot pages lie in an extent that is released now.
            catalog.space.buffer.clear();
            catalog.space.alloc.rollback();
            catalog.space.aux = catalog.next_cf_id;
            core.release_extents(Weak::new(), vec![extent]);
            return Err(e);
        }
        catalog.next_cf_id += 1;
        let mut used = PageRuns::default();
        used.insert(extent.start, extent.start + 2);
        let alloc = SpaceAllocator::new(vec![extent], &used, initial, max_extents(core.page_size as usize));
        let mut space = new_space(
            core,
            record.id,
            CF_SLOT_MAGIC,
            [extent.start, extent.start + 1],
            alloc,
            flush,
        );
        space.aux = record.created;
        space.last_txn = 1;
        space.durable_txn = 1;
        space.durable_slot = 0;
        if fresh {
            // `initial >= 4`: pages remain past the slots.
            space.fresh_extent(Extent {
                start: extent.start + 2,
                pages: extent.pages - 2,
            });
        }
        let cf = Arc::new(CfShared::new(name.to_owned(), core.clone(), space));
        self.shared.cfs.insert(name.to_owned(), cf.clone());
        Ok(ColumnFamily::from_shared(cf))
    }

    /// The column family `name`.
    pub fn cf(&self, name: &str) -> Result<ColumnFamily> {
        self.shared
            .cfs
            .get(name)
            .map(|cf| ColumnFamily::from_shared(cf.clone()))
            .ok_or_else(|| Error::CfNotFound {
                name: name.to_owned(),
            })
    }

    /// The column family `name`, created with default options if missing.
    pub fn cf_or_create(&self, name: &str) -> Result<ColumnFamily> {
        match self.cf(name) {
            Ok(cf) => Ok(cf),
            Err(Error::CfNotFound { .. }) => match self.create_cf(name, CfOptions::default()) {
                Err(Error::CfExists { .. }) => self.cf(name),
                other => other,
            },
            Err(e) => Err(e),
        }
    }

    /// Drops a column family: one catalog commit. Waits for its writer to finish; after it,
    /// every handle's calls fail with [`Error::CfDropped`]. Its extents become reusable once
    /// the last snapshot of it is released.
    ///
    /// Locks are always taken writer, then catalog, then file extents, so a thread holding
    /// another column family's write transaction may create or drop column families. Calling
    /// `drop_cf` on a column family whose write transaction the calling thread holds waits
    /// forever: commit or drop that transaction first.
    pub fn drop_cf(&self, name: &str) -> Result<()> {
        let core = &self.shared.core;
        core.check_writable()?;
        let cf = self.cf(name)?.shared;
        let writer = cf.writer.lock();
        let mut catalog = self.shared.catalog.lock();
        // Another thread may have dropped it while this one waited.
        cf.check_alive()?;
        let result = (|| {
            let mut tree = WriteTree::new(catalog.space.root);
            tree.remove(&core.source(), name.as_bytes())?;
            commit_catalog(core, &mut catalog.space, tree)
        })();
        result?;
        cf.dropped.store(true, Ordering::SeqCst);
        self.shared.cfs.remove(name);
        let old = cf
            .committed
            .swap(Arc::new(Snapshot::tombstone(&cf.committed.load().epoch)));
        core.release_extents(Arc::downgrade(&old.epoch), writer.alloc.extents().to_vec());
        drop(old);
        drop(writer);
        core.release_extents(Weak::new(), Vec::new());
        Ok(())
    }

    /// Names of the live column families, sorted.
    pub fn list_cfs(&self) -> Vec<String> {
        let mut names: Vec<String> = self.shared.cfs.iter().map(|e| e.key().clone()).collect();
        names.sort();
        names
    }

    /// What recovery passed over when this database was opened: commit slots that failed
    /// verification (torn by a crash, or corrupt) and fell back to the previous commit. Empty
    /// after a clean close.
    pub fn recovery_notes(&self) -> &[String] {
        &self.shared.recovery_notes
    }

    /// Database-wide figures.
    pub fn stats(&self) -> Result<DbStats> {
        let core = &self.shared.core;
        Ok(DbStats {
            io: core.backend.stats().snapshot(),
            page_size: core.page_size,
            file_bytes: core.backend.len()?,
            column_families: self.shared.cfs.len(),
            free_extent_pages: core.files.lock().extents.free_pages(),
            cache: core.cache.stats(),
            index: core.index.as_ref().map(|index| index.stats()).unwrap_or_default(),
        })
    }

    /// Makes every column family's latest commit durable (one slot write each, one group
    /// sync). Called on drop of the last `Db` handle too, where errors cannot be reported.
    ///
    /// Each column family with a non-durable commit costs one slot write and one sync. The
    /// first error stops the close and is returned. A write transaction open on the calling
    /// thread makes `close` wait forever: commit or drop it first.
    pub fn close(&self) -> Result<()> {
        for cf in self.handles() {
            cf.make_durable(true)?;
        }
        Ok(())
    }

    /// The live column families, copied out so no map lock is held while using them.
    fn handles(&self) -> Vec<Arc<CfShared>> {
        self.shared.cfs.iter().map(|e| e.value().clone()).collect()
    }
}

impl Drop for DbShared {
    /// Best effort: a column family whose writer lock is held (possibly by this very thread)
    /// is skipped rather than waited for.
    fn drop(&mut self) {
        if self.core.check_writable().is_ok() {
            let cfs: Vec<Arc<CfShared>> = self.cfs.iter().map(|e| e.value().clone()).collect();
            for cf in cfs {
                let _ = cf.make_durable(false);
            }
        }
    }
}

/// Commits a catalog tree: its pages and the superblock slot, one group sync.
fn commit_catalog(core: &DbCore, space: &mut Space, tree: WriteTree) -> Result<()> {
    // The catalog's pages are few and small: it readies none.
    let mut fresh = None;
    let mut grow = Space::grower(core, &mut fresh);
    let committed = {
        let mut sink = CommitSink {
            alloc: &mut space.alloc,
            buffer: &mut space.buffer,
            grow: &mut grow,
            values: &mut space.values,
            branches: None,
            index: core.index.as_deref(),
            cache_written: false,
        };
        tree.commit(&core.source(), &mut sink)
    };
    let (root, freed) = match committed {
        Ok(r) => r,
        Err(e) => {
            space.alloc.rollback();
            space.buffer.clear();
            return Err(e);
        }
    };
    space.commit(core, root, freed, true, Weak::new()).map(|_| ())
}
