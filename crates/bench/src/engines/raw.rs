//! raw and raw-files: the ceilings. Each thread `pwrite`s, per commit, exactly the bytes the
//! engines insert (`ops_per_txn` x (8-byte key + value)) in calls of at most 1 MiB, appending
//! within its own region of ONE shared file (raw) or to a file of its own (raw-files), with
//! one `fdatasync` per commit when durability is immediate. No tree, no cache, no commit
//! record. Their ratio is what the kernel alone charges for sharing one file.

use std::path::Path;
use std::sync::Arc;

use anyhow::{Context, Result};
use flush::{Backend, FileBackend};

use super::{Engine, IoCounters, Writer};
use crate::cell::{CellConfig, Durability};

/// The most bytes one `pwrite` carries.
const MAX_CALL: usize = 1 << 20;

/// The file(s) and the layout of the threads' regions.
#[derive(Debug)]
pub struct Raw {
    /// One shared file, or one per thread.
    backends: Vec<Arc<FileBackend>>,
    threads: usize,
    /// Bytes of one thread's region: every commit of the timed phase.
    region: u64,
    commit_bytes: usize,
}

impl Raw {
    /// `per_thread_files`: a file per thread (raw-files) instead of one shared file (raw).
    pub fn open(config: &CellConfig, dir: &Path, per_thread_files: bool) -> Result<Self> {
        let files = if per_thread_files { config.threads } else { 1 };
        let backends = (0..files)
            .map(|i| {
                let path = dir.join(format!("raw-{i}.bin"));
                let backend =
                    FileBackend::open(&path).with_context(|| format!("opening {}", path.display()))?;
                Ok(Arc::new(backend))
            })
            .collect::<Result<Vec<_>>>()?;
        // The sizes were checked to fit when the configuration was made.
        let commit_bytes = config.ops_per_txn as usize * (8 + config.value_size);
        Ok(Self {
            backends,
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
                let shared = self.backends.len() == 1;
                let base = if shared { t * self.region } else { 0 };
                let backend = self.backends[if shared { 0 } else { t as usize }].clone();
                Box::new(RawWriter {
                    backend,
                    base,
                    next: base,
                    buf: Vec::with_capacity(self.commit_bytes),
                }) as Box<dyn Writer>
            })
            .collect())
    }

    fn io(&self) -> Result<IoCounters> {
        Ok(IoCounters::from_iostats(
            self.backends.iter().map(|b| b.stats().snapshot()).sum(),
        ))
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
