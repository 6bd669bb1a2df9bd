//! manifold-db 3 (peer): its column families ("cfN", one per thread) in ONE file, the
//! write-ahead log off (`ColumnFamilyDatabase::builder().without_wal()`, i.e. pool size 0), one
//! write transaction per commit on the thread's column family.
//!
//! manifold's transactions are redb's: durability none is `Durability::None` through
//! `WriteTransaction::set_durability` (no sync; durable with a later durable commit),
//! immediate is `Durability::Immediate`. Column families get manifold's default first segment (1 GiB,
//! reserved with `set_len`, so sparse).

use std::path::Path;

use anyhow::{Context, Result};
use manifold::column_family::{ColumnFamily, ColumnFamilyDatabase};
use manifold::TableDefinition;

use super::{Engine, IoCounters, Writer, TABLE};
use crate::cell::{CellConfig, Durability};

const BENCH: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new(TABLE);

/// The database and the column families not yet handed to writers.
pub struct Manifold {
    db: ColumnFamilyDatabase,
    cfs: Vec<ColumnFamily>,
}

impl Manifold {
    pub fn open(config: &CellConfig, dir: &Path) -> Result<Self> {
        let path = dir.join("bench.manifold");
        let db = ColumnFamilyDatabase::builder()
            .without_wal()
            .open(&path)
            .with_context(|| format!("opening {}", path.display()))?;
        let cfs = (0..config.threads)
            .map(|t| {
                let name = format!("cf{t}");
                db.create_column_family(name.as_str(), None)
                    .with_context(|| format!("creating column family {name}"))
            })
            .collect::<Result<_>>()?;
        Ok(Self { db, cfs })
    }
}

impl Engine for Manifold {
    fn writers(&mut self) -> Result<Vec<Box<dyn Writer>>> {
        Ok(self
            .cfs
            .drain(..)
            .map(|cf| Box::new(ManifoldWriter { cf }) as Box<dyn Writer>)
            .collect())
    }

    fn io(&self) -> Result<IoCounters> {
        IoCounters::proc_self_io()
    }

    fn finish(self: Box<Self>) -> Result<()> {
        drop(self.db);
        Ok(())
    }
}

/// One thread's column family.
struct ManifoldWriter {
    cf: ColumnFamily,
}

impl ManifoldWriter {
    fn txn(&self, durability: manifold::Durability) -> Result<manifold::WriteTransaction> {
        let mut txn = self.cf.begin_write()?;
        txn.set_durability(durability)?;
        Ok(txn)
    }
}

impl Writer for ManifoldWriter {
    fn commit(&mut self, keys: &[u64], value: &[u8], durability: Durability) -> Result<()> {
        let txn = self.txn(match durability {
            Durability::None => manifold::Durability::None,
            Durability::Immediate => manifold::Durability::Immediate,
        })?;
        {
            let mut table = txn.open_table(BENCH)?;
            for &k in keys {
                table.insert(&k.to_be_bytes()[..], value)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn settle(&mut self) -> Result<()> {
        self.txn(manifold::Durability::Immediate)?.commit()?;
        Ok(())
    }
}
