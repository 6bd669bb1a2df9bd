//! Soak: writers on their own column families (random policies and durabilities), readers
//! checking every snapshot's invariant, periodic close-and-reopen; bounded in time.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use cf_store::{key_u64, u64_key, CfOptions, Db, Durability, FlushConfig};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Keys written per commit.
const PER_COMMIT: u64 = 10;

/// What a soak did.
#[derive(Debug, Clone, Default)]
pub struct SoakReport {
    /// Commits made.
    pub commits: u64,
    /// Inserts and removes made.
    pub ops: u64,
    /// Snapshot invariant checks passed.
    pub checks: u64,
    /// Close-and-reopen cycles, each verified.
    pub reopens: u64,
    /// Problems found (must be empty).
    pub errors: Vec<String>,
    /// Peak resident set, KiB.
    pub peak_rss_kb: u64,
}

fn value(commit: u64, j: u64) -> Vec<u8> {
    let mut v = commit.to_be_bytes().to_vec();
    v.extend_from_slice(&j.to_be_bytes());
    v.resize(64 + (j as usize * 97) % 900, (commit ^ j) as u8);
    v
}

/// Commit `c` of a column family: writes keys `c*10..c*10+10`, removes commit `c-2`'s keys,
/// and sets the counter. So a snapshot at counter `c` holds exactly commits `c-1` and `c`.
fn commit(db: &Db, cf: &str, c: u64, durability: Durability) -> cf_store::Result<()> {
    let handle = db.cf(cf)?;
    let mut txn = handle.begin_write()?;
    txn.set_durability(durability);
    {
        let mut data = txn.open_table("data")?;
        for j in 0..PER_COMMIT {
            data.insert(&u64_key(c * PER_COMMIT + j), &value(c, j))?;
        }
        if c >= 2 {
            for j in 0..PER_COMMIT {
                data.remove(&u64_key((c - 2) * PER_COMMIT + j))?;
            }
        }
    }
    txn.open_table("meta")?.insert(b"counter", &u64_key(c))?;
    txn.commit()
}

/// Checks a snapshot of `cf`; returns its counter.
fn check(db: &Db, cf: &str) -> Result<u64, String> {
    let read = db
        .cf(cf)
        .and_then(|h| h.begin_read())
        .map_err(|e| format!("{cf}: {e}"))?;
    let counter = match read.open_table("meta") {
        Ok(meta) => meta
            .get(b"counter")
            .map_err(|e| format!("{cf}: {e}"))?
            .and_then(|v| key_u64(&v))
            .ok_or_else(|| format!("{cf}: no counter"))?,
        Err(cf_store::Error::TableNotFound { .. }) => return Ok(0),
        Err(e) => return Err(format!("{cf}: {e}")),
    };
    let data = read.open_table("data").map_err(|e| format!("{cf}: {e}"))?;
    let first = counter.saturating_sub(1).max(1);
    let want: Vec<(Vec<u8>, Vec<u8>)> = (first..=counter)
        .flat_map(|c| (0..PER_COMMIT).map(move |j| (u64_key(c * PER_COMMIT + j).to_vec(), value(c, j))))
        .collect();
    let got: Vec<(Vec<u8>, Vec<u8>)> = data
        .iter()
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{cf}: {e}"))?;
    if got != want {
        return Err(format!(
            "{cf}: snapshot at counter {counter} holds {} entries, not commits {first}..={counter}",
            got.len()
        ));
    }
    Ok(counter)
}

fn peak_rss_kb() -> u64 {
    // SAFETY: getrusage only writes the struct we pass, which is zero-initialised and ours.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: `usage` is a valid, writable rusage.
    if unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut usage) } == 0 {
        usage.ru_maxrss.max(0) as u64
    } else {
        0
    }
}

fn open(path: &std::path::Path) -> cf_store::Result<Db> {
    Db::builder()
        .cache_bytes(8 << 20)
        .initial_extent_pages(8)
        .open(path)
}

/// Runs a soak for `secs` seconds with `writers` writer and `readers` reader threads,
/// reopening every `reopen_every`. Stops by itself.
pub fn soak(secs: u64, writers: usize, readers: usize, reopen_every: Duration, seed: u64) -> SoakReport {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("soak.cf");
    let db = open(&path).expect("create");
    let names: Vec<String> = (0..writers).map(|i| format!("w{i}")).collect();
    for n in &names {
        db.create_cf(n, CfOptions::default()).expect("create cf");
    }
    let db = Arc::new(RwLock::new(db));
    let stop = Arc::new(AtomicBool::new(false));
    let last: Arc<Vec<AtomicU64>> = Arc::new(names.iter().map(|_| AtomicU64::new(0)).collect());
    let (commits, ops, checks) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let errors = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut threads = Vec::new();
    for (i, name) in names.iter().enumerate() {
        let (db, stop, last, commits, ops, errors, name) = (
            db.clone(),
            stop.clone(),
            last.clone(),
            commits.clone(),
            ops.clone(),
            errors.clone(),
            name.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut rng = SmallRng::seed_from_u64(seed + i as u64);
            let mut c = 0u64;
            while !stop.load(Ordering::SeqCst) {
                c += 1;
                let guard = db.read().unwrap_or_else(|e| e.into_inner());
                let policy = FlushConfig::all_defaults()[rng.gen_range(0..5)];
                let durability = if rng.gen_bool(0.3) {
                    Durability::Immediate
                } else {
                    Durability::None
                };
                let result = guard
                    .cf(&name)
                    .and_then(|cf| cf.set_flush(policy))
                    .and_then(|_| commit(&guard, &name, c, durability));
                match result {
                    Ok(()) => {
                        last[i].store(c, Ordering::SeqCst);
                        commits.fetch_add(1, Ordering::Relaxed);
                        ops.fetch_add(2 * PER_COMMIT + 1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        errors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("writer {name}: {e}"));
                        return;
                    }
                }
            }
        }));
    }
    for r in 0..readers {
        let (db, stop, checks, errors, names) = (
            db.clone(),
            stop.clone(),
            checks.clone(),
            errors.clone(),
            names.clone(),
        );
        threads.push(std::thread::spawn(move || {
            let mut rng = SmallRng::seed_from_u64(seed ^ 0xdead_beef ^ r as u64);
            let mut seen = vec![0u64; names.len()];
            while !stop.load(Ordering::SeqCst) {
                let i = rng.gen_range(0..names.len());
                let guard = db.read().unwrap_or_else(|e| e.into_inner());
                match check(&guard, &names[i]) {
                    Ok(c) if c >= seen[i] => {
                        seen[i] = c;
                        checks.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(c) => {
                        errors
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(format!("{}: counter went back from {} to {c}", names[i], seen[i]));
                    }
                    Err(e) => errors.lock().unwrap_or_else(|e| e.into_inner()).push(e),
                }
            }
        }));
    }
    let mut reopens = 0;
    let mut next_reopen = Instant::now() + reopen_every;
    while Instant::now() < deadline && errors.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
        std::thread::sleep(Duration::from_millis(50));
        if Instant::now() >= next_reopen {
            let mut guard = db.write().unwrap_or_else(|e| e.into_inner());
            let reopened = guard.close().and_then(|_| {
                drop(std::mem::replace(&mut *guard, open(&path)?));
                Ok(())
            });
            let mut errs = errors.lock().unwrap_or_else(|e| e.into_inner());
            match reopened {
                Err(e) => errs.push(format!("reopen: {e}")),
                Ok(()) => {
                    if !guard.recovery_notes().is_empty() {
                        errs.push(format!("a clean reopen fell back: {:?}", guard.recovery_notes()));
                    }
                    for (i, n) in names.iter().enumerate() {
                        match check(&guard, n) {
                            Ok(c) if c == last[i].load(Ordering::SeqCst) => {}
                            Ok(c) => errs.push(format!(
                                "{n}: reopened at counter {c}, last commit {}",
                                last[i].load(Ordering::SeqCst)
                            )),
                            Err(e) => errs.push(e),
                        }
                    }
                }
            }
            reopens += 1;
            next_reopen = Instant::now() + reopen_every;
        }
    }
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        let _ = t.join();
    }
    let errors = std::mem::take(&mut *errors.lock().unwrap_or_else(|e| e.into_inner()));
    SoakReport {
        commits: commits.load(Ordering::SeqCst),
        ops: ops.load(Ordering::SeqCst),
        checks: checks.load(Ordering::SeqCst),
        reopens,
        errors,
        peak_rss_kb: peak_rss_kb(),
    }
}
