//! How dirty pages reach a file: positional-I/O [`Backend`]s with [`IoStats`] counters,
//! [`FlushPolicy`] planners that turn a flush's [`DirtyPages`] into a [`WritePlan`] (never
//! doing I/O themselves), the [`PlanExecutor`] that carries any plan out, and the serde
//! [`FlushConfig`] that names a policy.
//!
//! ```
//! use flush::{Backend, DirtyPage, DirtyPages, FlushConfig, MemBackend, NoFreeSpace, PlanExecutor};
//!
//! let backend = MemBackend::new();
//! let pages = [[1u8; 4096], [2u8; 4096]];
//! let dirty = DirtyPages::new(vec![DirtyPage::new(4096, &pages[1]), DirtyPage::new(0, &pages[0])]).unwrap();
//! let policy = "sorted-merge".parse::<FlushConfig>().unwrap().build();
//! PlanExecutor::new().flush(&*policy, &dirty, &NoFreeSpace, &backend).unwrap();
//! assert_eq!(backend.stats().snapshot().write_calls, 1); // two touching pages, one pwrite
//! ```

mod backend;
mod bystanders;
mod config;
mod error;
mod executor;
mod gap;
mod page;
mod plan;
mod policy;
mod stats;
pub mod testing;

pub use backend::{Backend, FileBackend, FileOptions, MemBackend, WriteCall};
pub use bystanders::Bystanders;
pub use config::{ByteSize, FlushConfig, MAX_GAP_LIMIT, MAX_RUN_LIMIT};
pub use error::{FlushError, IoOp, Result, ACCEPTED_FORMS};
pub use executor::{FlushReport, PlanExecutor};
pub use gap::{FreeRanges, GapOracle, NoFreeSpace};
pub use page::{DirtyPage, DirtyPages};
pub use plan::{Run, RunShape, Segment, WritePlan};
pub use policy::{FlushPolicy, GapMerge, PerPage, SortedMerge, Vectored, VectoredGap};
pub use stats::{IoStats, IoStatsSnapshot, WriteLockWait};
