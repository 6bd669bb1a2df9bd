//! cf-store: T column families in one file (`cf-store`) or one file per thread
//! (`cf-store-files`), each thread writing table `bench` of its own column family "cfN".

use std::path::Path;

use anyhow::{Context, Result};
use cf_store::{u64_key, CfOptions, ColumnFamily, Db};

use super::{Engine, IoCounters, Writer, TABLE};
use crate::cell::{CellConfig, Durability, EngineKind, Populate, ReadPath};

/// The databases of a cf-store cell and the column families not yet handed to writers.
#[derive(Debug)]
pub struct CfStore {
    dbs: Vec<Db>,
    cfs: Vec<ColumnFamily>,
}

impl CfStore {
    pub fn open(config: &CellConfig, dir: &Path) -> Result<Self> {
        let policy = config.policy.unwrap_or_default();
        let page_size = config.page_size.unwrap_or(cf_store::DEFAULT_PAGE_SIZE);
        let leaf_pages = config.leaf_pages.unwrap_or(cf_store::MAX_LEAF_PAGES);
        let kept_branches = config.kept_branches.unwrap_or(cf_store::DEFAULT_KEPT_BRANCHES);
        let hold_bytes = config.hold_bytes.unwrap_or(cf_store::DEFAULT_HOLD_BYTES);
        let read_path = match config.read_path.unwrap_or(ReadPath::Cache) {
            ReadPath::Cache => cf_store::ReadPath::Cache,
            ReadPath::Mmap => cf_store::ReadPath::Mmap,
        };
        let populate = match config.populate.unwrap_or(Populate::Allocate) {
            Populate::Never => cf_store::Populate::Never,
            Populate::Allocate => cf_store::Populate::Allocate,
            Populate::WhenContended => cf_store::Populate::WhenContended,
            Populate::Always => cf_store::Populate::Always,
        };
        let mut file = cf_store::FileOptions::default();
        if let Some(bytes) = config.max_write_bytes {
            file = file.with_max_bytes_per_call(bytes);
        }
        let open = |name: &str| -> Result<Db> {
            let path = dir.join(name);
            Db::builder()
                .page_size(page_size)
                .leaf_pages(leaf_pages)
                .kept_branches(kept_branches)
                .hold_bytes(hold_bytes)
                .read_path(read_path)
                .populate(populate)
                .file_options(file.clone())
                .flush(policy)
                .open(&path)
                .with_context(|| format!("opening {}", path.display()))
        };
        let mut dbs = Vec::new();
        let mut cfs = Vec::with_capacity(config.threads);
        for t in 0..config.threads {
            let db = match config.engine {
                EngineKind::CfStoreFiles => {
                    dbs.push(open(&format!("t{t}.cf"))?);
                    &dbs[t]
                }
                _ => {
                    if dbs.is_empty() {
                        dbs.push(open("bench.cf")?);
                    }
                    &dbs[0]
                }
            };
            let name = format!("cf{t}");
            cfs.push(
                db.create_cf(&name, CfOptions::default())
                    .with_context(|| format!("creating column family {name}"))?,
            );
        }
        Ok(Self { dbs, cfs })
    }
}

impl Engine for CfStore {
    fn writers(&mut self) -> Result<Vec<Box<dyn Writer>>> {
        Ok(self
            .cfs
            .drain(..)
            .map(|cf| Box::new(CfWriter { cf }) as Box<dyn Writer>)
            .collect())
    }

    fn io(&self) -> Result<IoCounters> {
        let mut sum = flush::IoStatsSnapshot::default();
        for db in &self.dbs {
            sum = sum + db.stats()?.io;
        }
        Ok(IoCounters::from_iostats(sum))
    }

    fn finish(self: Box<Self>) -> Result<()> {
        for db in &self.dbs {
            db.close()?;
        }
        Ok(())
    }
}

/// One thread's column family.
#[derive(Debug)]
struct CfWriter {
    cf: ColumnFamily,
}

impl Writer for CfWriter {
    fn commit(&mut self, keys: &[u64], value: &[u8], durability: Durability) -> Result<()> {
        let mut txn = self.cf.begin_write()?;
        txn.set_durability(match durability {
            Durability::None => cf_store::Durability::None,
            Durability::Immediate => cf_store::Durability::Immediate,
        });
        {
            let mut table = txn.open_table(TABLE)?;
            for &k in keys {
                table.put(&u64_key(k), value)?;
            }
        }
        txn.commit()?;
        Ok(())
    }

    fn settle(&mut self) -> Result<()> {
        Ok(self.cf.sync()?)
    }

    fn end_timed(&mut self) -> Result<()> {
        Ok(self.cf.flush()?)
    }
}
