//! Snapshot epochs: tell a writer when no snapshot older than a commit is alive, lock-free.
//!
//! Each committed state holds an `Arc<Epoch>`; each epoch holds the next one. So epoch `k`
//! stays alive exactly while some state at or before `k` is held (by a reader, a writer's
//! base, or the column family itself). Pages freed by commit `T` wait on a `Weak` of epoch
//! `T - 1`: once it cannot be upgraded, no reader can reach them.

use std::sync::{Arc, OnceLock};

/// One link of the chain. See the module docs.
#[derive(Debug, Default)]
pub struct Epoch {
    next: OnceLock<Arc<Epoch>>,
}

impl Epoch {
    /// The epoch after `self` (created once; later calls return the same one).
    pub fn advance(self: &Arc<Self>) -> Arc<Epoch> {
        self.next.get_or_init(|| Arc::new(Epoch::default())).clone()
    }
}

impl Drop for Epoch {
    /// Drops the chain iteratively, so a long chain released at once cannot overflow the stack.
    fn drop(&mut self) {
        let mut next = self.next.take();
        while let Some(arc) = next {
            next = match Arc::try_unwrap(arc) {
                Ok(mut epoch) => epoch.next.take(),
                Err(_) => None,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn older_holders_keep_newer_epochs_alive() {
        let e0 = Arc::new(Epoch::default());
        let e1 = e0.advance();
        let e2 = e1.advance();
        let (w0, w1) = (Arc::downgrade(&e0), Arc::downgrade(&e1));
        drop(e1);
        assert!(w1.upgrade().is_some(), "e0 is held, and e0 holds e1");
        drop(e0);
        assert!(w0.upgrade().is_none() && w1.upgrade().is_none());
        assert!(Arc::strong_count(&e2) == 1);
    }

    #[test]
    fn a_long_chain_drops_without_recursion() {
        let first = Arc::new(Epoch::default());
        let mut cur = first.clone();
        for _ in 0..1_000_000 {
            cur = cur.advance();
        }
        drop(cur);
        drop(first);
    }
}
