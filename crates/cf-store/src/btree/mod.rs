//! Copy-on-write B+tree over pages: lookups, ranges and updates of one table (being written).
//!
//! [`node`] defines the page format; [`read`] reads committed trees (and a write
//! transaction's own changes); [`write`] changes a tree and commits it to new pages.

// The store uses these in the next step (transactions, recovery); until then some items are
// only reached from tests.
#![allow(dead_code, unused_imports)]

mod node;
mod read;
mod store;
#[cfg(test)]
mod tests;
mod write;

pub(crate) use node::{check_sizes, max_key_len, MAX_VALUE_LEN};
pub(crate) use read::{get, range, visit_pages, Range};
pub(crate) use store::{NodePtr, PageId, PageSink, PageSource, TreeRoot};
pub(crate) use write::WriteTree;
