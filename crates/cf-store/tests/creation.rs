//! Creating a database survives a crash: a file left by a creation cut short opens as a new
//! database instead of `NotADatabase`, anything else stays foreign and untouched, and a
//! created file's directory is synced after its first slot.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use cf_store::{u64_key, CfOptions, Db, Durability, Error};
use flush::{Backend, MemBackend};

/// The exact file a new database of `page_size` is (two pages), as the store writes it.
fn created_file(page_size: u32) -> Vec<u8> {
    let backend = Arc::new(MemBackend::new());
    let dyn_backend: Arc<dyn Backend> = backend.clone();
    let db = Db::builder()
        .page_size(page_size)
        .open_backend(dyn_backend, "new")
        .unwrap();
    drop(db);
    let bytes = backend.contents();
    assert_eq!(bytes.len(), 2 * page_size as usize, "a new file is two pages");
    assert!(
        bytes[page_size as usize..].iter().all(|&b| b == 0),
        "slot 1 of a new file is zeros"
    );
    bytes
}

/// Opens `path` with `page_size`, checks that it is a new, empty database that reopens as
/// one (its slot 1 never written, no remnant there), and that it keeps a durable commit
/// through a reopen.
fn assert_becomes_database(path: &Path, page_size: u32, what: &str) {
    let db = Db::builder()
        .page_size(page_size)
        .open(path)
        .unwrap_or_else(|e| panic!("{what}: did not open: {e}"));
    assert!(
        db.list_cfs().is_empty(),
        "{what}: a new database has no column families"
    );
    drop(db);
    let db = Db::open(path).unwrap_or_else(|e| panic!("{what}: did not reopen new: {e}"));
    assert_only_unwritten_slots(&db, what);
    let cf = db.create_cf("c", CfOptions::default()).unwrap();
    let mut txn = cf.begin_write().unwrap();
    txn.set_durability(Durability::Immediate);
    {
        let mut t = txn.open_table("t").unwrap();
        t.insert(&u64_key(7), b"seven").unwrap();
    }
    txn.commit().unwrap();
    drop((cf, db));
    let db = Db::open(path).unwrap_or_else(|e| panic!("{what}: did not reopen: {e}"));
    assert!(
        db.recovery_notes().is_empty(),
        "{what}: {:?}",
        db.recovery_notes()
    );
    let read = db.cf("c").unwrap().begin_read().unwrap();
    let got = read.open_table("t").unwrap().get(&u64_key(7)).unwrap();
    assert_eq!(got.as_deref(), Some(&b"seven"[..]), "{what}");
}

/// The only recovery notes are of slots never written (a new file's slot 1).
fn assert_only_unwritten_slots(db: &Db, what: &str) {
    assert!(
        db.recovery_notes().iter().all(|n| n.contains("never written")),
        "{what}: {:?}",
        db.recovery_notes()
    );
}

/// Opening `bytes` is refused (`NotADatabase`, or `Corruption` where a superblock is
/// recognizable) and leaves them as they were.
fn assert_refused_untouched(path: &Path, bytes: &[u8], what: &str) {
    std::fs::write(path, bytes).unwrap();
    match Db::open(path) {
        Err(Error::NotADatabase { .. } | Error::Corruption { .. }) => {}
        Err(e) => panic!("{what}: expected NotADatabase or Corruption, got {e}"),
        Ok(_) => panic!("{what}: opened"),
    }
    assert!(
        std::fs::read(path).unwrap() == bytes,
        "{what}: a failed open changed the file"
    );
}

/// Every way a crash can cut the creation short, at the byte level: the file sized but its
/// first slot missing, or torn in any pattern of sectors or bytes.
fn cut_short(full: &[u8], page_size: usize) -> Vec<(String, Vec<u8>)> {
    let zeros = vec![0u8; full.len()];
    let keep = |pred: &dyn Fn(usize) -> bool| -> Vec<u8> {
        (0..full.len())
            .map(|i| if pred(i) { full[i] } else { 0 })
            .collect()
    };
    let mut cases = vec![
        ("zeros".to_string(), zeros),
        ("first 512 bytes".to_string(), keep(&|i| i < 512)),
        ("all but the first 512 bytes".to_string(), keep(&|i| i >= 512)),
        (
            "every other 512-byte sector".to_string(),
            keep(&|i| (i / 512) % 2 == 1),
        ),
        ("only the checksum".to_string(), keep(&|i| i >= page_size - 4)),
        ("all but the checksum".to_string(), keep(&|i| i < page_size - 4)),
        ("odd bytes".to_string(), keep(&|i| i % 2 == 1)),
    ];
    for cut in [1, 8, 15, 16, 40, 71, 72] {
        cases.push((format!("the first {cut} bytes"), keep(&|i| i < cut)));
    }
    cases
}

#[test]
fn creations_cut_short_become_databases() {
    let dir = tempfile::tempdir().unwrap();
    for page_size in [512u32, 4096, 16384] {
        let full = created_file(page_size);
        for (what, bytes) in cut_short(&full, page_size as usize) {
            let what = format!("{page_size}-byte pages, {what}");
            let path = dir
                .path()
                .join(format!("cut-{page_size}-{}", what.replace(' ', "_")));
            std::fs::write(&path, &bytes).unwrap();
            assert_becomes_database(&path, page_size, &what);
        }
    }
}

#[test]
fn a_creation_cut_short_may_be_finished_with_another_page_size() {
    let dir = tempfile::tempdir().unwrap();
    for (old, new) in [(1024u32, 4096u32), (8192, 4096), (16384, 4096), (4096, 512)] {
        let full = created_file(old);
        let torn: Vec<u8> = full
            .iter()
            .enumerate()
            .map(|(i, &b)| if i < 512 { b } else { 0 })
            .collect();
        let mut torn_crc = vec![0u8; full.len()];
        torn_crc[old as usize - 4..old as usize].copy_from_slice(&full[old as usize - 4..old as usize]);
        for (what, bytes) in [("first sector", torn), ("checksum only", torn_crc)] {
            let what = format!("{old} -> {new}, {what}");
            let path = dir.path().join(what.replace([' ', '>'], "_"));
            std::fs::write(&path, &bytes).unwrap();
            assert_becomes_database(&path, new, &what);
            assert_eq!(
                std::fs::metadata(&path).unwrap().len() % u64::from(new),
                0,
                "{what}: the file is laid out in the new page size"
            );
        }
    }
}

#[test]
fn near_misses_are_refused_and_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let ps = 4096usize;
    let full = created_file(ps as u32);
    let path = dir.path().join("near");

    let mut other_byte = full.clone();
    other_byte[200] = 0x55; // zero in a new file's slot
    assert_refused_untouched(&path, &other_byte, "a byte the slot does not have");

    let mut wrong_value = vec![0u8; full.len()];
    wrong_value[..8].copy_from_slice(&full[..8]);
    wrong_value[24] = 2; // txn 2, not the new file's 1
    assert_refused_untouched(&path, &wrong_value, "another txn");

    let mut second_page = vec![0u8; full.len()];
    second_page[..512].copy_from_slice(&full[..512]);
    second_page[ps + 100] = 1;
    assert_refused_untouched(&path, &second_page, "a nonzero byte in slot 1");

    let mut longer = full[..512].to_vec();
    longer.resize(2 * ps + 1, 0);
    assert_refused_untouched(&path, &longer, "one byte longer than two pages");

    assert_refused_untouched(&path, &vec![0u8; 3 * ps], "three pages of zeros");
    assert_refused_untouched(&path, &vec![0u8; 2 * ps - 512], "zeros short of two pages");
}

#[test]
fn a_complete_new_file_opens_as_it_is() {
    let dir = tempfile::tempdir().unwrap();
    let full = created_file(4096);
    let path = dir.path().join("complete");
    std::fs::write(&path, &full).unwrap();
    let db = Db::open(&path).unwrap();
    assert_only_unwritten_slots(&db, "a complete new file");
    drop(db);
    assert!(
        std::fs::read(&path).unwrap() == full,
        "opening a new database rewrote it"
    );
}

// ---------------------------------------------------------------------------------------
// The directory sync, seen by strace

const CHILD_ENV: &str = "CF_CREATION_STRACE_CHILD";

#[test]
#[ignore = "run by `creating_a_file_syncs_its_directory` under strace"]
fn creation_strace_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let dir = Path::new(&dir);
    let db = Db::open(dir.join("new.cf")).unwrap();
    drop(db);
    println!("REOPEN");
    let db = Db::open(dir.join("new.cf")).unwrap();
    drop(db);
}

fn strace_unusable(reason: String) {
    if std::env::var("CF_REQUIRE_STRACE").as_deref() == Ok("1") {
        panic!("strace is required here (CF_REQUIRE_STRACE=1) but {reason}");
    }
    eprintln!("creating_a_file_syncs_its_directory: not checked: {reason}");
}

#[test]
fn creating_a_file_syncs_its_directory() {
    match Command::new("strace")
        .args(["-f", "-o", "/dev/null", "true"])
        .output()
    {
        Err(e) => return strace_unusable(format!("strace cannot be run ({e})")),
        Ok(out) if !out.status.success() => {
            return strace_unusable(format!(
                "strace cannot trace here: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ))
        }
        Ok(_) => {}
    }
    let dir = tempfile::tempdir().unwrap();
    let dir_path = dir.path().canonicalize().unwrap();
    let trace = dir_path.join("trace.txt");
    let work = dir_path.join("work");
    std::fs::create_dir(&work).unwrap();
    // -y prints each descriptor's path; the marker write separates create from reopen.
    let out = Command::new("strace")
        .args(["-f", "-y", "-e", "trace=fsync,fdatasync,write", "-o"])
        .arg(&trace)
        .arg(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "creation_strace_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, &work)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = std::fs::read_to_string(&trace).unwrap();
    let file = format!("<{}>", work.join("new.cf").display());
    let dir_fd = format!("<{}>", work.display());
    let syncs: Vec<(usize, &str)> = trace
        .lines()
        .enumerate()
        .filter(|(_, l)| l.contains("sync(") && l.contains(" = 0"))
        .collect();
    let marker = trace
        .lines()
        .position(|l| l.contains("REOPEN"))
        .expect("the child's marker is in the trace");
    let file_sync = syncs
        .iter()
        .find(|(_, l)| l.contains(&file))
        .map(|&(i, _)| i)
        .unwrap_or_else(|| panic!("no sync of {file}:\n{trace}"));
    let dir_syncs: Vec<usize> = syncs
        .iter()
        .filter(|(_, l)| l.contains("fsync(") && l.contains(&dir_fd))
        .map(|&(i, _)| i)
        .collect();
    assert_eq!(
        dir_syncs.len(),
        1,
        "one directory sync, at creation only:\n{trace}"
    );
    assert!(
        file_sync < dir_syncs[0] && dir_syncs[0] < marker,
        "the directory is synced after the file's first slot, during creation:\n{trace}"
    );
}
