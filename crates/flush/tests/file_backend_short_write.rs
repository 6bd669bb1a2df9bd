//! A genuine short write from the kernel: with RLIMIT_FSIZE set, a write that crosses the
//! limit is cut short, and the next call fails with EFBIG.
//!
//! The limit is process-wide and also applies to stdout when it is redirected to a file (as
//! in CI logs), so the limited work runs in a child process (this binary, re-run with
//! `--ignored --exact short_write_child`) whose output is a pipe.

use std::io::IoSlice;
use std::process::Command;

use flush::{Backend, FileBackend, FlushError, IoOp};

const LIMIT: u64 = 10_000;
const CHILD_ENV: &str = "CF_SHORT_WRITE_CHILD";

#[test]
fn short_writes_continue_and_the_error_names_the_offset_reached() {
    let out = Command::new(std::env::current_exe().unwrap())
        .args([
            "--ignored",
            "--exact",
            "short_write_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_ENV, "1")
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "child failed:\n{text}");
    assert!(
        text.contains("SHORT-WRITE-CHECKS-PASSED"),
        "the child ran its checks:\n{text}"
    );
}

#[test]
#[ignore = "run by `short_writes_continue_and_the_error_names_the_offset_reached` in a child process"]
fn short_write_child() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    // SAFETY: ignoring SIGXFSZ makes writes past the limit return EFBIG instead of killing
    // the process; no other code in this test binary depends on that signal.
    unsafe { libc::signal(libc::SIGXFSZ, libc::SIG_IGN) };
    let limit = libc::rlimit {
        rlim_cur: LIMIT,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `limit` is a valid rlimit that outlives the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &limit) }, 0);

    let dir = tempfile::tempdir().unwrap();
    let data: Vec<u8> = (0..16_384u32).map(|i| (i % 251) as u8).collect();

    let b = FileBackend::open(dir.path().join("plain")).unwrap();
    let err = b.write_at(&data, 0).unwrap_err();
    match &err {
        FlushError::Io {
            op: IoOp::Write,
            offset,
            len,
            source,
        } => {
            assert_eq!(*offset, LIMIT, "the error names where the short write stopped");
            assert_eq!(*len, data.len() as u64 - LIMIT);
            assert_eq!(source.raw_os_error(), Some(libc::EFBIG));
        }
        other => panic!("expected an Io error, got {other:?}"),
    }
    assert!(err.is_out_of_space());
    let s = b.stats().snapshot();
    assert_eq!(
        (s.write_calls, s.bytes_written),
        (2, LIMIT),
        "one short call, one failed call"
    );
    let mut back = vec![0; LIMIT as usize];
    b.read_at(&mut back, 0).unwrap();
    assert_eq!(back, data[..LIMIT as usize]);

    let v = FileBackend::open(dir.path().join("vectored")).unwrap();
    let iov: Vec<IoSlice<'_>> = data.chunks(3000).map(IoSlice::new).collect();
    let err = v.write_vectored_at(&iov, 0).unwrap_err();
    assert!(
        matches!(
            &err,
            FlushError::Io {
                op: IoOp::WriteVectored,
                offset: LIMIT,
                ..
            }
        ),
        "{err:?}"
    );
    let s = v.stats().snapshot();
    assert_eq!((s.vectored_calls, s.bytes_written), (2, LIMIT));
    v.read_at(&mut back, 0).unwrap();
    assert_eq!(back, data[..LIMIT as usize]);
    // Lift the limit before printing: stdout may be a file.
    let unlimited = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: `unlimited` is a valid rlimit that outlives the call.
    assert_eq!(unsafe { libc::setrlimit(libc::RLIMIT_FSIZE, &unlimited) }, 0);
    println!("SHORT-WRITE-CHECKS-PASSED");
}
