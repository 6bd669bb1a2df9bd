//! fjall 3 (peer): one database (a directory), one keyspace ("cfN") per thread, one write
//! batch per transaction.
//!
//! Durability none is fjall's default batch (`Database::batch`: `PersistMode::Buffer`, the
//! journal handed to the OS, no sync), the counterpart of cf-store's `None`; immediate adds
//! `PersistMode::SyncData` (`fdatasync` of the journal) to each batch. fjall is built without
//! its `lz4` feature, so neither its journal nor its blocks are compressed, like the B+trees.
//! Its flushes and compactions run on its own background threads: /proc/self/io counts what
//! they write during the timed phase, not what they write after it.

use std::path::Path;

use anyhow::{Context, Result};
use fjall::{Database, Keyspace, KeyspaceCreateOptions, PersistMode};

use super::{Engine, IoCounters, Writer};
use crate::cell::{CellConfig, Durability};

/// The database and the keyspaces not yet handed to writers.
pub struct Fjall {
    db: Database,
    keyspaces: Vec<Keyspace>,
}

impl Fjall {
    pub fn open(config: &CellConfig, dir: &Path) -> Result<Self> {
        let path = dir.join("fjall");
        let db = Database::builder(&path)
            .open()
            .with_context(|| format!("opening {}", path.display()))?;
        let keyspaces = (0..config.threads)
            .map(|t| {
                let name = format!("cf{t}");
                db.keyspace(&name, KeyspaceCreateOptions::default)
                    .with_context(|| format!("creating keyspace {name}"))
            })
            .collect::<Result<_>>()?;
        Ok(Self { db, keyspaces })
    }
}

impl Engine for Fjall {
    fn writers(&mut self) -> Result<Vec<Box<dyn Writer>>> {
        let db = &self.db;
        Ok(self
            .keyspaces
            .drain(..)
            .map(|keyspace| {
                Box::new(FjallWriter {
                    db: db.clone(),
                    keyspace,
                }) as Box<dyn Writer>
            })
            .collect())
    }

    fn io(&self) -> Result<IoCounters> {
        IoCounters::proc_self_io()
    }

    fn finish(self: Box<Self>) -> Result<()> {
        self.db.persist(PersistMode::SyncAll)?;
        Ok(())
    }
}

/// One thread's keyspace.
struct FjallWriter {
    db: Database,
    keyspace: Keyspace,
}

impl Writer for FjallWriter {
    fn commit(&mut self, keys: &[u64], value: &[u8], durability: Durability) -> Result<()> {
        let mut batch = self.db.batch();
        if durability == Durability::Immediate {
            batch = batch.durability(Some(PersistMode::SyncData));
        }
        for &k in keys {
            batch.insert(&self.keyspace, &k.to_be_bytes()[..], value);
        }
        batch.commit()?;
        Ok(())
    }

    fn settle(&mut self) -> Result<()> {
        self.db.persist(PersistMode::SyncData)?;
        Ok(())
    }
}
