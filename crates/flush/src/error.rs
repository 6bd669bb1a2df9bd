//! The crate's one error type: I/O failures with their offsets, bad dirty-page sets, bad plans and bad configs.

use std::io;

/// The flush-policy forms a config string or file may use; every config error repeats them.
pub const ACCEPTED_FORMS: &str = "accepted forms: `per-page`, `sorted-merge[:MAX_RUN]`, \
`gap-merge[:MAX_GAP[:MAX_RUN]]`, `vectored`, `vectored-gap[:MAX_GAP]`; sizes are whole byte \
counts such as `4096`, `16KiB`, `1MiB` (K, M, G are binary; no fractions); MAX_GAP at most 16MiB; MAX_RUN \
from 1 byte to 1GiB";

/// Which positional I/O call failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum IoOp {
    /// `pread`.
    Read,
    /// `pwrite`.
    Write,
    /// `pwritev`.
    WriteVectored,
    /// `fdatasync`.
    Sync,
    /// `ftruncate`.
    SetLen,
    /// `fstat` (file length).
    Len,
    /// `fallocate` (readying a range for writes).
    Allocate,
}

impl std::fmt::Display for IoOp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoOp::Read => "pread",
            IoOp::Write => "pwrite",
            IoOp::WriteVectored => "pwritev",
            IoOp::Sync => "fdatasync",
            IoOp::SetLen => "ftruncate",
            IoOp::Len => "fstat",
            IoOp::Allocate => "fallocate",
        })
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FlushError {
    /// The operating system refused an I/O call.
    #[error("{op} of {len} bytes at offset {offset} failed: {source}")]
    Io {
        /// The call that failed.
        op: IoOp,
        /// The file offset the call started at (after any bytes already written by earlier calls).
        offset: u64,
        /// How many bytes the call still had to move.
        len: u64,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// The file could not be opened or created.
    #[error("cannot open {}: {source}", path.display())]
    Open {
        /// The path given.
        path: std::path::PathBuf,
        /// The OS error.
        #[source]
        source: io::Error,
    },
    /// A read reached the end of the file before filling its buffer.
    #[error("read of {len} bytes at offset {offset} runs past the end of the file ({file_len} bytes)")]
    UnexpectedEof {
        /// Where the read started.
        offset: u64,
        /// How many bytes were asked for.
        len: u64,
        /// The file's length.
        file_len: u64,
    },
    /// An offset plus a length does not fit in a `u64`.
    #[error("range of {len} bytes at offset {offset} overflows the file's address space")]
    OffsetOverflow {
        /// The start.
        offset: u64,
        /// The length.
        len: u64,
    },
    /// A dirty page with no bytes.
    #[error("dirty page at offset {offset} is empty")]
    EmptyPage {
        /// Its offset.
        offset: u64,
    },
    /// Two dirty pages of one flush cover a common byte.
    #[error("dirty pages overlap: [{first_start}, {first_end}) and [{second_start}, {second_end})")]
    OverlappingPages {
        /// Start of the lower page.
        first_start: u64,
        /// End of the lower page.
        first_end: u64,
        /// Start of the higher page.
        second_start: u64,
        /// End of the higher page.
        second_end: u64,
    },
    /// A write plan that would write a byte it must not, or miss a page. Only a faulty
    /// `FlushPolicy` produces one; the executor checks every plan before any I/O.
    #[error("invalid write plan: {0}")]
    InvalidPlan(String),
    /// A flush policy name that is not one of ours.
    #[error("unknown flush policy `{input}`; {ACCEPTED_FORMS}")]
    UnknownPolicy {
        /// What was given.
        input: String,
    },
    /// A size that does not parse.
    #[error("flush policy `{input}`: `{size}` is not a size ({reason}); {ACCEPTED_FORMS}")]
    BadSize {
        /// The whole policy text.
        input: String,
        /// The size part.
        size: String,
        /// Why it did not parse.
        reason: String,
    },
    /// A gap threshold above the limit.
    #[error("flush policy `{input}`: gap {gap} bytes is over the 16MiB limit; {ACCEPTED_FORMS}")]
    GapTooLarge {
        /// The whole policy text.
        input: String,
        /// The gap asked for, in bytes.
        gap: u64,
    },
    /// A run cap of zero or above 1 GiB.
    #[error("flush policy `{input}`: run cap {max_run} bytes is outside 1 byte..=1GiB; {ACCEPTED_FORMS}")]
    BadRunCap {
        /// The whole policy text.
        input: String,
        /// The cap asked for, in bytes.
        max_run: u64,
    },
    /// A policy given more parameters than it takes.
    #[error("flush policy `{input}` takes at most {max} parameter(s); {ACCEPTED_FORMS}")]
    TooManyParameters {
        /// The whole policy text.
        input: String,
        /// How many it takes.
        max: usize,
    },
}

impl FlushError {
    /// The OS error number behind an [`FlushError::Io`], if any (e.g. `libc::ENOSPC`).
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            FlushError::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }

    /// True when the file system reported it is out of space (`ENOSPC`) or over a
    /// quota or size limit (`EDQUOT`, `EFBIG`).
    pub fn is_out_of_space(&self) -> bool {
        matches!(
            self.raw_os_error(),
            Some(libc::ENOSPC) | Some(libc::EDQUOT) | Some(libc::EFBIG)
        )
    }
}

/// Shorthand for this crate's results.
pub type Result<T, E = FlushError> = std::result::Result<T, E>;
