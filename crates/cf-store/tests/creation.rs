//! Creating a database survives a crash: a file left by a creation cut short opens as a new
//! database (it used to be refused), anything else that is not a database is still refused
//! (`NotADatabase` or `Corruption`) and left untouched, and a created file's directory is
//! synced after its first slot.

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

/// Opens `path` with `page_size`, checks that it is a new, empty database (and says it
/// replaced a remnant) that reopens as one with nothing to note (no remnant in slot 1), and
/// that it keeps a durable commit through a reopen.
fn assert_becomes_database(path: &Path, page_size: u32, what: &str) {
    let db = Db::builder()
        .page_size(page_size)
        .open(path)
        .unwrap_or_else(|e| panic!("{what}: did not open: {e}"));
    assert!(
        db.list_cfs().is_empty(),
        "{what}: a new database has no column families"
    );
    assert!(
        db.recovery_notes()
            .iter()
            .any(|n| n.contains("creation cut short")),
        "{what}: no note of the replaced file: {:?}",
        db.recovery_notes()
    );
    drop(db);
    let db = Db::open(path).unwrap_or_else(|e| panic!("{what}: did not reopen new: {e}"));
    assert_no_recovery_notes(&db, what);
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

/// Recovery passed nothing over (a new file's never-written slot 1 is not news).
fn assert_no_recovery_notes(db: &Db, what: &str) {
    assert!(
        db.recovery_notes().is_empty(),
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
    // At 512-byte pages "the first 512 bytes" is the whole slot: a complete file, not cut.
    cases.retain(|(_, bytes)| bytes != full);
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
    assert_no_recovery_notes(&db, "a complete new file");
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
    let Some(root) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let (work, links) = (Path::new(&root).join("work"), Path::new(&root).join("links"));
    drop(Db::open(work.join("new.cf")).unwrap());
    println!("MARK reopen");
    drop(Db::open(work.join("new.cf")).unwrap());
    println!("MARK symlink");
    // A link in `links` to a file not yet made in `work`: the file is made in `work`.
    std::os::unix::fs::symlink(work.join("real.cf"), links.join("link.cf")).unwrap();
    drop(Db::open(links.join("link.cf")).unwrap());
}

/// In the trace lines `lines`, the successful `fdatasync`/`fsync` of `file` (a path shown by
/// `strace -y`) and the `fsync`s of `dir`, by line number.
fn syncs_of(lines: &[(usize, &str)], file: &Path, dir: &Path) -> (Vec<usize>, Vec<usize>) {
    let (file, dir) = (format!("<{}>", file.display()), format!("<{}>", dir.display()));
    let ok = |l: &&(usize, &str)| l.1.contains("sync(") && l.1.contains(" = 0");
    let files = lines
        .iter()
        .filter(ok)
        .filter(|l| l.1.contains(&file))
        .map(|l| l.0)
        .collect();
    let dirs = lines
        .iter()
        .filter(ok)
        .filter(|l| l.1.contains("fsync(") && l.1.contains(&dir))
        .map(|l| l.0)
        .collect();
    (files, dirs)
}

#[test]
fn creating_a_file_syncs_its_directory() {
    if !flush::testing::strace_usable("creating_a_file_syncs_its_directory") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().canonicalize().unwrap();
    let trace = root.join("trace.txt");
    let (work, links) = (root.join("work"), root.join("links"));
    std::fs::create_dir(&work).unwrap();
    std::fs::create_dir(&links).unwrap();
    // -y prints each descriptor's path; the child's marker lines split the trace in three.
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
        .env(CHILD_ENV, &root)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "child failed: {}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let trace = std::fs::read_to_string(&trace).unwrap();
    let lines: Vec<(usize, &str)> = trace.lines().enumerate().collect();
    let mark = |m: &str| {
        lines
            .iter()
            .find(|l| l.1.contains(m))
            .map(|l| l.0)
            .unwrap_or_else(|| panic!("the child's marker {m:?} is in the trace:\n{trace}"))
    };
    let (reopen, symlink) = (mark("MARK reopen"), mark("MARK symlink"));
    let (create, again, linked) = (&lines[..reopen], &lines[reopen..symlink], &lines[symlink..]);

    let (file_syncs, dir_syncs) = syncs_of(create, &work.join("new.cf"), &work);
    assert_eq!(dir_syncs.len(), 1, "creating syncs the directory once:\n{trace}");
    assert!(
        file_syncs.first().is_some_and(|&f| f < dir_syncs[0]),
        "the directory is synced after the file's first slot:\n{trace}"
    );
    let (_, dir_syncs) = syncs_of(again, &work.join("new.cf"), &work);
    assert!(
        dir_syncs.is_empty(),
        "reopening does not sync the directory:\n{trace}"
    );
    let (file_syncs, dir_syncs) = syncs_of(linked, &work.join("real.cf"), &work);
    assert_eq!(
        dir_syncs.len(),
        1,
        "through a symlink, the file's own directory:\n{trace}"
    );
    assert!(file_syncs.first().is_some_and(|&f| f < dir_syncs[0]), "{trace}");
    let (_, link_dir_syncs) = syncs_of(linked, &links.join("link.cf"), &links);
    assert!(link_dir_syncs.is_empty(), "not the link's directory:\n{trace}");
}
