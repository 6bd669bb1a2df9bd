//! Integer keys that sort like their numbers: big-endian encodings and their inverses.

/// `n` as 8 big-endian bytes: byte order equals numeric order.
pub fn u64_key(n: u64) -> [u8; 8] {
    n.to_be_bytes()
}

/// The `u64` of an 8-byte [`u64_key`]; `None` for any other length.
pub fn key_u64(key: &[u8]) -> Option<u64> {
    Some(u64::from_be_bytes(key.try_into().ok()?))
}

/// `n` as 8 bytes that sort like signed numbers (sign bit flipped, big-endian).
pub fn i64_key(n: i64) -> [u8; 8] {
    ((n as u64) ^ (1 << 63)).to_be_bytes()
}

/// The `i64` of an [`i64_key`]; `None` for any other length.
pub fn key_i64(key: &[u8]) -> Option<i64> {
    Some((u64::from_be_bytes(key.try_into().ok()?) ^ (1 << 63)) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_order_is_numeric_order() {
        let us = [0u64, 1, 255, 256, u64::MAX - 1, u64::MAX];
        assert!(us.windows(2).all(|w| u64_key(w[0]) < u64_key(w[1])));
        let is = [i64::MIN, -256, -1, 0, 1, 255, i64::MAX];
        assert!(is.windows(2).all(|w| i64_key(w[0]) < i64_key(w[1])));
        for n in is {
            assert_eq!(key_i64(&i64_key(n)), Some(n));
        }
        assert_eq!(key_u64(&u64_key(77)), Some(77));
        assert_eq!(key_u64(b"short"), None);
    }
}
