//! Group commit: concurrent committers share one `fdatasync` (one file, so one sync covers all).

use parking_lot::{Condvar, Mutex};

use flush::Backend;

use crate::{Error, Result};

/// Leader/follower `fdatasync`. A caller whose writes are complete asks for a sync; the first
/// asker while no sync runs becomes leader and syncs on behalf of everyone who asked before
/// it started; the others wait for a sync that *started* after they asked. A failed sync is
/// never retried: it poisons this `GroupSync`, and every later call fails.
#[derive(Debug, Default)]
pub struct GroupSync {
    state: Mutex<SyncState>,
    done: Condvar,
}

#[derive(Debug, Default)]
struct SyncState {
    requested: u64,
    completed: u64,
    leader_running: bool,
    failed: bool,
}

impl GroupSync {
    /// Returns once a `sync_data` that began after this call has completed.
    pub fn sync(&self, backend: &dyn Backend) -> Result<()> {
        let mut st = self.state.lock();
        st.requested += 1;
        let ticket = st.requested;
        loop {
            if st.failed {
                return Err(Error::SyncFailed);
            }
            if st.completed >= ticket {
                return Ok(());
            }
            if !st.leader_running {
                st.leader_running = true;
                let target = st.requested;
                drop(st);
                let result = backend.sync_data();
                st = self.state.lock();
                st.leader_running = false;
                match result {
                    Ok(()) => st.completed = target,
                    Err(e) => {
                        st.failed = true;
                        self.done.notify_all();
                        return Err(Error::Flush(e));
                    }
                }
                self.done.notify_all();
                continue;
            }
            self.done.wait(&mut st);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flush::MemBackend;
    use std::sync::Arc;

    #[test]
    fn concurrent_callers_share_syncs_and_each_is_covered() {
        let backend = Arc::new(MemBackend::new());
        let group = Arc::new(GroupSync::default());
        let threads: Vec<_> = (0..8)
            .map(|_| {
                let (b, g) = (backend.clone(), group.clone());
                std::thread::spawn(move || {
                    for _ in 0..200 {
                        g.sync(&*b).unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let syncs = backend.stats().snapshot().sync_calls;
        assert!((1..=1600).contains(&syncs), "{syncs}");
        let st = group.state.lock();
        assert_eq!(st.completed, st.requested, "every request was covered");
    }
}
