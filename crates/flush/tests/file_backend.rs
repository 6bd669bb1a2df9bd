//! `FileBackend` on a real temp file: splitting at IOV_MAX, continuing capped writes, reads, errors.

use std::io::IoSlice;

use flush::{Backend, FileBackend, FileOptions, FlushError};

fn pattern(len: usize, seed: u8) -> Vec<u8> {
    (0..len)
        .map(|i| (i as u8).wrapping_mul(7).wrapping_add(seed))
        .collect()
}

fn read_all(b: &dyn Backend) -> Vec<u8> {
    let mut buf = vec![0; b.len().unwrap() as usize];
    b.read_at(&mut buf, 0).unwrap();
    buf
}

/// 2,500 slices of uneven sizes (some empty): more than twice IOV_MAX.
fn uneven_slices() -> Vec<Vec<u8>> {
    (0..2500).map(|i| pattern((i * 37) % 700, i as u8)).collect()
}

#[test]
fn vectored_write_of_more_than_iov_max_slices_writes_the_right_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::open(dir.path().join("f")).unwrap();
    assert_eq!(b.iov_max(), 1024, "Linux's IOV_MAX");
    let bufs = uneven_slices();
    let iov: Vec<IoSlice<'_>> = bufs.iter().map(|v| IoSlice::new(v)).collect();
    b.write_vectored_at(&iov, 100).unwrap();
    let expected: Vec<u8> = std::iter::repeat_n(0, 100).chain(bufs.concat()).collect();
    assert_eq!(read_all(&b), expected);
    assert_eq!(b.stats().snapshot().vectored_calls, 3);
    assert_eq!(b.stats().snapshot().bytes_written, bufs.concat().len() as u64);
}

#[test]
fn capped_calls_continue_where_the_previous_one_stopped() {
    for cap in [1usize, 999, 4096, 65_537] {
        let dir = tempfile::tempdir().unwrap();
        let options = FileOptions::default().with_max_bytes_per_call(cap);
        let b = FileBackend::open_with(dir.path().join("f"), options).unwrap();
        let bufs: Vec<Vec<u8>> = uneven_slices()
            .into_iter()
            .take(if cap == 1 { 40 } else { 2500 })
            .collect();
        let iov: Vec<IoSlice<'_>> = bufs.iter().map(|v| IoSlice::new(v)).collect();
        let total: usize = bufs.iter().map(Vec::len).sum();
        b.write_vectored_at(&iov, 0).unwrap();
        let single = pattern(10_000, 3);
        b.write_at(&single, total as u64).unwrap();
        let mut expected = bufs.concat();
        expected.extend_from_slice(&single);
        assert_eq!(read_all(&b), expected, "cap {cap}");
        let s = b.stats().snapshot();
        assert_eq!(s.write_calls, single.len().div_ceil(cap) as u64, "cap {cap}");
        assert!(s.vectored_calls >= total.div_ceil(cap) as u64, "cap {cap}");
        assert_eq!(s.bytes_written, (total + single.len()) as u64);
    }
}

#[test]
fn reads_past_the_end_and_overflowing_offsets_are_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let b = FileBackend::open(dir.path().join("f")).unwrap();
    b.write_at(&[1; 100], 0).unwrap();
    let mut buf = [0u8; 50];
    match b.read_at(&mut buf, 80) {
        Err(FlushError::UnexpectedEof {
            offset: 80,
            len: 50,
            file_len: 100,
        }) => {}
        other => panic!("expected UnexpectedEof, got {other:?}"),
    }
    assert!(matches!(
        b.write_at(&[1], u64::MAX),
        Err(FlushError::OffsetOverflow { .. })
    ));
    // Past off_t's range: the kernel would refuse; we refuse first, with the offset, and
    // make no system call.
    let calls = b.stats().snapshot();
    let err = b.write_vectored_at(&[IoSlice::new(&[1])], 1 << 63).unwrap_err();
    assert!(
        matches!(err, FlushError::OffsetOverflow { offset, .. } if offset == 1 << 63),
        "{err:?}"
    );
    let err = b.write_at(&[1], (1 << 63) - 1).unwrap_err();
    assert!(
        matches!(err, FlushError::OffsetOverflow { len: 1, .. }),
        "{err:?}"
    );
    assert!(matches!(
        b.read_at(&mut buf, 1 << 63),
        Err(FlushError::OffsetOverflow { .. })
    ));
    assert_eq!(b.stats().snapshot(), calls);
}

#[test]
fn set_len_sync_and_open_errors() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let b = FileBackend::open(&path).unwrap();
    b.set_len(8192).unwrap();
    assert_eq!(b.len().unwrap(), 8192);
    b.sync_data().unwrap();
    assert_eq!(b.stats().snapshot().sync_calls, 1);
    assert_eq!(b.path(), path);
    assert!(b.file().is_some());
    // A directory cannot be opened for writing.
    let err = FileBackend::open(dir.path()).unwrap_err();
    assert!(matches!(err, FlushError::Open { .. }), "{err:?}");
    assert!(err.to_string().contains(&dir.path().display().to_string()));
    // Without `create`, a missing file is an error.
    let options = FileOptions::default().with_create(false);
    assert!(matches!(
        FileBackend::open_with(dir.path().join("missing"), options),
        Err(FlushError::Open { .. })
    ));
}

/// Eight threads write interleaved ranges of one file, through `pwrite` and `pwritev`,
/// with and without serialized writes: every byte lands where it was aimed, and every call
/// is counted.
#[test]
fn concurrent_writers_land_every_byte_with_and_without_serialized_writes() {
    const THREADS: usize = 8;
    const CHUNK: usize = 4096;
    const ROUNDS: usize = 16;
    for serialize in [true, false] {
        let dir = tempfile::tempdir().unwrap();
        let b = FileBackend::open_with(
            dir.path().join("f"),
            FileOptions::default().with_serialize_writes(serialize),
        )
        .unwrap();
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let b = &b;
                s.spawn(move || {
                    for r in 0..ROUNDS {
                        let at = ((r * THREADS + t) * CHUNK) as u64;
                        let bytes = pattern(CHUNK, (t * ROUNDS + r) as u8);
                        if r % 2 == 0 {
                            b.write_at(&bytes, at).unwrap();
                        } else {
                            let (x, y) = bytes.split_at(1000);
                            b.write_vectored_at(&[IoSlice::new(x), IoSlice::new(y)], at)
                                .unwrap();
                        }
                    }
                });
            }
        });
        let all = read_all(&b);
        assert_eq!(all.len(), THREADS * ROUNDS * CHUNK, "serialize {serialize}");
        for r in 0..ROUNDS {
            for t in 0..THREADS {
                let at = (r * THREADS + t) * CHUNK;
                assert_eq!(
                    &all[at..at + CHUNK],
                    &pattern(CHUNK, (t * ROUNDS + r) as u8)[..],
                    "serialize {serialize}: thread {t} round {r}"
                );
            }
        }
        let s = b.stats().snapshot();
        assert_eq!(
            s.write_calls,
            (THREADS * ROUNDS / 2) as u64,
            "serialize {serialize}"
        );
        assert_eq!(
            s.vectored_calls,
            (THREADS * ROUNDS / 2) as u64,
            "serialize {serialize}"
        );
        // Only a serialized backend takes turns at its lock, and each turn holds it a while.
        assert_eq!(s.write_lock_hold_ns > 0, serialize, "{s:?}");
        if !serialize {
            assert_eq!(s.write_lock_wait_ns, 0);
        }
    }
}
