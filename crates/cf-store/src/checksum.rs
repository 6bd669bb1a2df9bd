//! crc32c (CRC-32/ISCSI, Castagnoli) of pages and values: the one checksum of the file format.
//!
//! Computed by `crc-fast`, which folds with carry-less multiplies (AVX-512 VPCLMULQDQ where
//! the CPU has it) instead of the SSE4.2 `crc32` instruction alone: on the development
//! machine 86 GB/s against 19 GB/s for a 16 KiB leaf. The values are the same as every
//! other crc32c's (the tests forge pages with the `crc32c` crate, an independent
//! implementation).

use crc_fast::{CrcAlgorithm, Digest};

/// crc32c of `bytes`.
pub(crate) fn crc32c(bytes: &[u8]) -> u32 {
    crc_fast::crc32_iscsi(bytes)
}

/// crc32c of bytes given in pieces: the same as [`crc32c`] of their concatenation.
pub(crate) struct Crc32c(Digest);

impl Crc32c {
    pub(crate) fn new() -> Self {
        Self(Digest::new(CrcAlgorithm::Crc32Iscsi))
    }

    pub(crate) fn update(&mut self, piece: &[u8]) {
        self.0.update(piece);
    }

    pub(crate) fn finish(&self) -> u32 {
        // CRC-32/ISCSI is 32 bits wide: the digest's upper half is zero.
        self.0.finalize() as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check value of CRC-32/ISCSI, and agreement with the `crc32c` crate at every
    /// length around the vector widths, whole and in pieces.
    #[test]
    fn matches_crc32c() {
        assert_eq!(crc32c(b"123456789"), 0xe306_9283);
        let bytes: Vec<u8> = (0..5000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        for len in (0..300).chain([4092, 4096, 4999, 5000]) {
            let want = ::crc32c::crc32c(&bytes[..len]);
            assert_eq!(crc32c(&bytes[..len]), want, "length {len}");
            let mut pieces = Crc32c::new();
            for piece in bytes[..len].chunks(97) {
                pieces.update(piece);
            }
            assert_eq!(pieces.finish(), want, "length {len} in pieces");
        }
        // Pieces longer than the vector paths' blocks, of uneven lengths, as a value's
        // overflow pages are fed.
        let big: Vec<u8> = (0..300_000u32)
            .map(|i| (i.wrapping_mul(2_246_822_519) >> 24) as u8)
            .collect();
        for piece_len in [4096, 4095, 65_536, 70_001] {
            let mut pieces = Crc32c::new();
            for piece in big.chunks(piece_len) {
                pieces.update(piece);
            }
            assert_eq!(pieces.finish(), ::crc32c::crc32c(&big), "pieces of {piece_len}");
        }
        assert_eq!(crc32c(&big), ::crc32c::crc32c(&big));
    }
}
