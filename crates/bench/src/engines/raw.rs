//! raw: the ceiling. Each thread `pwrite`s, per commit, exactly the bytes the engines insert
//! (`ops_per_txn` x (8-byte key + value)) in calls of at most 1 MiB, appending within its own
//! region of ONE shared file, with one `fdatasync` per commit when durability is immediate.
//! No tree, no cache, no commit record.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use flush::{Backend, FileBackend};

use super::{Engine, IoCounters, Writer};
use crate::cell::{CellConfig, Durability};

/// The most bytes one `pwrite` carries.
const MAX_CALL: usize = 1 << 20;

/// The shared file and the layout of the threads' regions.
#[derive(Debug)]
pub struct Raw {
    backend: Arc<FileBackend>,
    threads: usize,
    /// Bytes of one thread's region: every commit of the timed phase.
    region: u64,
    commit_bytes: usize,
}

impl Raw {
    pub fn open(config: &CellConfig, dir: &Path) -> Result<Self> {
        let path = dir.join("raw.bin");
        let backend = FileBackend::open(&path).with_context(|| format!("opening {}", path.display()))?;
        // The sizes were checked to fit when the configuration was made.
        let commit_bytes = config.ops_per_txn as usize * (8 + config.value_size);
        Ok(Self {
            backend: Arc::new(backend),
            threads: config.threads,
            region: config.txns * commit_bytes as u64,
            commit_bytes,
        })
    }
}

impl Engine for Raw {
    fn writers(&mut self) -> Result<Vec<Box<dyn Writer>>> {
        Ok((0..self.threads as u64)
            .map(|t| {
                let base = t * self.region;
                Box::new(RawWriter {
                    backend: self.backend.clone(),
                    base,
                    next: base,
                    buf: Vec::with_capacity(self.commit_bytes),
                }) as Box<dyn Writer>
            })
            .collect())
    }

    fn io(&self) -> Result<IoCounters> {
        Ok(IoCounters::from_iostats(self.backend.stats().snapshot()))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// One thread's region.
#[derive(Debug)]
struct RawWriter {
    backend: Arc<FileBackend>,
    base: u64,
    /// Where the next commit's bytes go.
    next: u64,
    /// One commit's bytes, rebuilt per commit (the copy an engine makes too).
    buf: Vec<u8>,
}

impl Writer for RawWriter {
    fn commit(&mut self, keys: &[u64], value: &[u8], durability: Durability) -> Result<()> {
        self.buf.clear();
        for &k in keys {
            self.buf.extend_from_slice(&k.to_be_bytes());
            self.buf.extend_from_slice(value);
        }
        let mut offset = self.next;
        for chunk in self.buf.chunks(MAX_CALL) {
            self.backend.write_at(chunk, offset)?;
            offset += chunk.len() as u64;
        }
        if durability == Durability::Immediate {
            self.backend.sync_data()?;
        }
        self.next = offset;
        Ok(())
    }

    /// After the preload the timed phase overwrites the region from its start: the raw
    /// counterpart of rewriting existing keys.
    fn settle(&mut self) -> Result<()> {
        self.backend.sync_data()?;
        self.next = self.base;
        Ok(())
    }
}
