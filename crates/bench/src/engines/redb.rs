//! redb 4 (peer): one database file per thread, one write transaction per commit.
//!
//! Durability none is redb's `Durability::None` (`WriteTransaction::set_durability`): the
//! commit writes its pages (one `pwrite` per page, as measured) but no commit slot and no
//! sync; a later `Immediate` commit makes it durable. Immediate is redb's default
//! `Durability::Immediate`. Everything else is redb's defaults (1 GiB cache per database,
//! quick-repair off, `ConcurrencyMode::ExclusiveWriter`, which allows `Durability::None`).

use std::path::Path;

use anyhow::{Context, Result};
use redb::{Database, TableDefinition};

use super::{Engine, IoCounters, Writer, TABLE};
use crate::cell::{CellConfig, Durability};

const BENCH: TableDefinition<'static, &'static [u8], &'static [u8]> = TableDefinition::new(TABLE);

/// The databases not yet handed to writers.
pub struct Redb {
    dbs: Vec<Database>,
}

impl Redb {
    pub fn open(config: &CellConfig, dir: &Path) -> Result<Self> {
        let dbs = (0..config.threads)
            .map(|t| {
                let path = dir.join(format!("t{t}.redb"));
                Database::create(&path).with_context(|| format!("creating {}", path.display()))
            })
            .collect::<Result<_>>()?;
        Ok(Self { dbs })
    }
}

impl Engine for Redb {
    fn writers(&mut self) -> Result<Vec<Box<dyn Writer>>> {
        Ok(self
            .dbs
            .drain(..)
            .map(|db| Box::new(RedbWriter { db }) as Box<dyn Writer>)
            .collect())
    }

    fn io(&self) -> Result<IoCounters> {
        IoCounters::proc_self_io()
    }

    fn finish(self: Box<Self>) -> Result<()> {
        Ok(())
    }
}

/// One thread's database (closed, with a final durable commit of redb's own, on drop).
struct RedbWriter {
    db: Database,
}

impl RedbWriter {
    fn txn(&self, durability: redb::Durability) -> Result<redb::WriteTransaction> {
        let mut txn = self.db.begin_write()?;
        txn.set_durability(durability)?;
        Ok(txn)
    }
}

impl Writer for RedbWriter {
    fn commit(&mut self, keys: &[u64], value: &[u8], durability: Durability) -> Result<()> {
        let txn = self.txn(match durability {
            Durability::None => redb::Durability::None,
            Durability::Immediate => redb::Durability::Immediate,
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
        self.txn(redb::Durability::Immediate)?.commit()?;
        Ok(())
    }
}
