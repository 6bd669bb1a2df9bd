//! Crash points: run a script until the k-th I/O call fails, then check that every image a
//! power cut could leave reopens to states that were committed.

use std::collections::BTreeMap;
use std::sync::Arc;

use cf_store::{u64_key, CfOptions, Db, Durability, Error};
use flush::testing::CrashBackend;
use flush::{Backend, MemBackend};

use crate::script::{value, Kind, Script, Step};

/// A table's contents.
pub type State = BTreeMap<Vec<u8>, Vec<u8>>;

/// What the run committed to one column family.
#[derive(Debug, Clone, Default)]
pub struct CfHistory {
    /// `create_cf` returned.
    pub created: bool,
    /// `create_cf` was under way at the crash.
    pub create_in_flight: bool,
    /// `drop_cf` returned.
    pub dropped: bool,
    /// `drop_cf` was under way at the crash.
    pub drop_in_flight: bool,
    /// Every committed state, oldest first (the empty state first).
    pub states: Vec<State>,
    /// Index in `states` of the newest state made durable by a returned call.
    pub last_durable: usize,
    /// The state a commit under way at the crash would have made.
    pub in_flight: Option<State>,
}

/// What a run did before it crashed.
#[derive(Debug, Clone, Default)]
pub struct History {
    /// Per column family.
    pub cfs: BTreeMap<String, CfHistory>,
    /// Bytes of held pages (`DbBuilder::hold_bytes`) the live column families dropped
    /// unwritten by the end of the run, since it last opened the database: shows that the
    /// crash points cover commits whose pages were held.
    pub held_dropped_bytes: u64,
}

/// Small pages and extents, and a hold budget of 16 pages, so that the scripts fill it:
/// commits hold pages, drop some unwritten, and write the oldest a commit's worth at a time,
/// all within the few hundred I/O calls a script makes.
fn builder() -> cf_store::DbBuilder {
    Db::builder()
        .page_size(1024)
        .initial_extent_pages(4)
        .hold_bytes(16 << 10)
}

/// Runs `script` against `backend` until the end or the first error (the crash).
pub fn run_to_crash(script: &Script, backend: Arc<CrashBackend>) -> History {
    let mut h = History::default();
    let dyn_backend: Arc<dyn Backend> = backend;
    let Ok(mut db) = builder().open_backend(dyn_backend.clone(), "torture") else {
        return h;
    };
    for step in &script.steps {
        let result = match step {
            Step::Reopen => reopen(&mut db, &mut h, &dyn_backend),
            Step::Parallel(lists) => parallel(&db, lists, &mut h),
            other => apply(&db, other, &mut h),
        };
        if result.is_err() {
            break;
        }
    }
    h.held_dropped_bytes = db
        .list_cfs()
        .iter()
        .filter_map(|name| db.cf(name).ok())
        .map(|cf| cf.stats().held_dropped_bytes)
        .sum();
    h
}

fn reopen(db: &mut Db, h: &mut History, backend: &Arc<dyn Backend>) -> Result<(), Error> {
    db.close()?;
    // Closing made every column family's newest commit durable.
    for cf in h.cfs.values_mut().filter(|c| c.created && !c.dropped) {
        cf.last_durable = cf.states.len() - 1;
    }
    *db = builder().open_backend(backend.clone(), "torture")?;
    Ok(())
}

/// Runs each list on its own thread with its own share of the history; the first error (the
/// crash) ends every thread at its next I/O.
fn parallel(db: &Db, lists: &[Vec<Step>], h: &mut History) -> Result<(), Error> {
    let results: Vec<(History, Result<(), Error>)> = std::thread::scope(|scope| {
        let handles: Vec<_> = lists
            .iter()
            .map(|list| {
                let mut mine = History::default();
                for step in list {
                    if let Step::Commit { cf, .. } | Step::Sync(cf) = step {
                        if let Some(c) = h.cfs.get(cf) {
                            mine.cfs.insert(cf.clone(), c.clone());
                        }
                    }
                }
                scope.spawn(move || {
                    let result = list.iter().try_for_each(|step| apply(db, step, &mut mine));
                    (mine, result)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|t| t.join().expect("a torture thread panicked"))
            .collect()
    });
    let mut first_error = Ok(());
    for (mine, result) in results {
        h.cfs.extend(mine.cfs);
        if first_error.is_ok() {
            first_error = result;
        }
    }
    first_error
}

fn apply(db: &Db, step: &Step, h: &mut History) -> Result<(), Error> {
    match step {
        Step::Create(name) => {
            let cf = h.cfs.entry(name.clone()).or_default();
            cf.create_in_flight = true;
            db.create_cf(name, CfOptions::default())?;
            cf.create_in_flight = false;
            cf.created = true;
            cf.states = vec![State::new()];
        }
        Step::Drop(name) => {
            let cf = h.cfs.get_mut(name).expect("scripts drop only what they created");
            cf.drop_in_flight = true;
            db.drop_cf(name)?;
            cf.drop_in_flight = false;
            cf.dropped = true;
        }
        Step::Commit {
            cf: name,
            durable,
            ops,
            tag,
        } => {
            let hist = h
                .cfs
                .get_mut(name)
                .expect("scripts commit only to what they created");
            let mut next = hist.states.last().cloned().unwrap_or_default();
            let handle = db.cf(name)?;
            let mut txn = handle.begin_write()?;
            txn.set_durability(if *durable {
                Durability::Immediate
            } else {
                Durability::None
            });
            {
                let mut t = txn.open_table("t")?;
                for (key, len) in ops {
                    let k = u64_key(*key).to_vec();
                    match len {
                        Some(len) => {
                            let v = value(name, *key, *tag, *len);
                            t.insert(&k, &v)?;
                            next.insert(k, v);
                        }
                        None => {
                            t.remove(&k)?;
                            next.remove(&k);
                        }
                    }
                }
            }
            hist.in_flight = Some(next.clone());
            txn.commit()?;
            hist.in_flight = None;
            hist.states.push(next);
            if *durable {
                hist.last_durable = hist.states.len() - 1;
            }
        }
        Step::Sync(name) => {
            let hist = h.cfs.get_mut(name).expect("scripts sync only what they created");
            // Until it returns, the newest state may or may not be durable; it was committed.
            db.cf(name)?.sync()?;
            hist.last_durable = hist.states.len() - 1;
        }
        Step::Reopen | Step::Parallel(_) => unreachable!("run_to_crash handles these itself"),
    }
    Ok(())
}

fn contents(db: &Db, name: &str) -> Result<State, String> {
    let read = db
        .cf(name)
        .and_then(|cf| cf.begin_read())
        .map_err(|e| format!("{name}: {e}"))?;
    match read.open_table("t") {
        Ok(t) => t
            .iter()
            .collect::<Result<State, _>>()
            .map_err(|e| format!("{name}: reading: {e}")),
        Err(Error::TableNotFound { .. }) => Ok(State::new()),
        Err(e) => Err(format!("{name}: {e}")),
    }
}

/// Opens `image` and checks it against `h`: the database opens; every column family that
/// must exist does, holding one of its committed states no older than its last durable one;
/// none that must not exist does.
pub fn verify_image(image: Vec<u8>, h: &History) -> Result<(), String> {
    let db = match builder().open_backend(Arc::new(MemBackend::from_bytes(image)), "image") {
        Ok(db) => db,
        // Even a creation cut short opens (as a new database): no image may fail to open.
        Err(e) => return Err(format!("the image does not open: {e}")),
    };
    let live = db.list_cfs();
    for name in &live {
        if !h.cfs.contains_key(name) {
            return Err(format!("column family {name:?} exists but was never created"));
        }
    }
    for (name, cf) in &h.cfs {
        let exists = live.contains(name);
        let must_exist = cf.created && !cf.dropped && !cf.drop_in_flight;
        let may_exist = must_exist || cf.create_in_flight || (cf.created && cf.drop_in_flight);
        if must_exist && !exists {
            return Err(format!("{name:?} was created durably but is missing"));
        }
        if exists && !may_exist {
            return Err(format!(
                "{name:?} was dropped durably (or never created) but exists"
            ));
        }
        if !exists {
            continue;
        }
        let got = contents(&db, name)?;
        let allowed_newer = cf.states.get(cf.last_durable..).unwrap_or(&[]);
        let ok = allowed_newer.contains(&got)
            || cf.in_flight.as_ref() == Some(&got)
            || (cf.create_in_flight && got.is_empty());
        if !ok {
            let older = cf.states[..cf.last_durable.min(cf.states.len())].contains(&got);
            return Err(format!(
                "{name:?} holds {} entries: {}",
                got.len(),
                if older {
                    "a state older than its last durable commit"
                } else {
                    "a state that was never committed"
                }
            ));
        }
    }
    Ok(())
}

/// A crash point whose image did not verify, with what is needed to replay it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The workload.
    pub kind: Kind,
    /// Its seed.
    pub seed: u64,
    /// The crash point (mutating I/O calls allowed before the crash).
    pub point: u64,
    /// The image seed.
    pub image_seed: u64,
    /// What was wrong.
    pub message: String,
}

/// The one-line command that replays `f` (for the `threads` workload the interleaving, and
/// so the exact crash, may differ from run to run).
pub fn replay_command(f: &Failure) -> String {
    format!(
        "cargo xtask crash --workload {} --seed {} --point {} --image-seed {}",
        f.kind.name(),
        f.seed,
        f.point,
        f.image_seed
    )
}

/// Mutating I/O calls of the whole script without a crash, and the bytes of held pages it
/// dropped unwritten ([`History::held_dropped_bytes`]).
pub fn total_calls(script: &Script) -> (u64, u64) {
    let backend = Arc::new(CrashBackend::new());
    let h = run_to_crash(script, backend.clone());
    (backend.mutating_calls(), h.held_dropped_bytes)
}

/// Crashes `script` at each of `points` and checks the images of every `image_seeds`.
/// Returns the number of (point, image) checks, or the first failure.
pub fn explore(
    script: &Script,
    points: impl IntoIterator<Item = u64>,
    image_seeds: &[u64],
) -> Result<u64, Box<Failure>> {
    let mut checked = 0;
    for point in points {
        let backend = Arc::new(CrashBackend::new());
        backend.crash_after(point);
        let history = run_to_crash(script, backend.clone());
        for &image_seed in image_seeds {
            verify_image(backend.crash_image(image_seed), &history).map_err(|message| {
                Box::new(Failure {
                    kind: script.kind,
                    seed: script.seed,
                    point,
                    image_seed,
                    message,
                })
            })?;
            checked += 1;
        }
    }
    Ok(checked)
}
