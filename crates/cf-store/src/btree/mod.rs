//! Copy-on-write B+tree over pages: lookups, ranges and updates of one table (being written).
//!
//! [`node`] defines the page format; [`read`] reads committed trees (and a write
//! transaction's own changes), binary-searching the nodes [`index`] keeps indexed; [`write`]
//! changes a tree and commits it to new pages, encoding the leaf it appends to as it goes
//! ([`image`]).

mod branches;
mod image;
mod index;
mod node;
mod read;
mod store;
#[cfg(test)]
mod tests;
mod write;

pub(crate) use branches::{BranchCache, KeptBranch, SealedEdge};
pub(crate) use index::IndexCache;
pub use index::IndexStats;
pub(crate) use node::{max_key_len, Key, MAX_LEAF_PAGES, MAX_VALUE_LEN};
pub(crate) use read::{get, get_with_top, range, visit_pages, Range, TopLevels};
pub(crate) use store::NodePtr;
pub(crate) use store::{InsertBuffers, PageId, PageSink, PageSource, TreeRoot};
pub(crate) use write::{OldValue, WriteTree};
