//! Payload masking (RFC 6455 §5.3), word at a time in safe code.

/// XORs `buf` in place with the 4-byte masking `key`, as if `buf` started
/// `offset` bytes into the masked payload.
///
/// Masking is its own inverse, so the same function masks and unmasks. The
/// `offset` lets a payload be unmasked incrementally as it arrives.
///
/// ```
/// use gridmux_core::ws::apply_mask;
/// let key = [1, 2, 3, 4];
/// let mut whole = *b"hello, websocket";
/// apply_mask(&mut whole, key, 0);
/// let mut parts = *b"hello, websocket";
/// let (a, b) = parts.split_at_mut(5);
/// apply_mask(a, key, 0);
/// apply_mask(b, key, 5);
/// assert_eq!(whole, parts);
/// ```
pub fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let key = rotate_key(key, offset);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(32);
    for chunk in &mut chunks {
        for lane in chunk.chunks_exact_mut(8) {
            let mut w = [0u8; 8];
            w.copy_from_slice(lane);
            lane.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
        }
    }
    let rest = chunks.into_remainder();
    let mut lanes = rest.chunks_exact_mut(8);
    for lane in &mut lanes {
        let mut w = [0u8; 8];
        w.copy_from_slice(lane);
        lane.copy_from_slice(&(u64::from_ne_bytes(w) ^ wide).to_ne_bytes());
    }
    for (i, b) in lanes.into_remainder().iter_mut().enumerate() {
        *b ^= key[i & 3];
    }
}

/// The key as seen from `offset` bytes into the payload.
fn rotate_key(key: [u8; 4], offset: usize) -> [u8; 4] {
    let mut k = key;
    k.rotate_left(offset % 4);
    k
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(i + offset) % 4];
        }
    }

    #[test]
    fn matches_bytewise_definition_for_all_lengths_and_offsets() {
        let key = [0x12, 0x34, 0x56, 0x78];
        for len in 0..80 {
            for offset in 0..8 {
                let mut a: Vec<u8> = (0..len as u8).collect();
                let mut b = a.clone();
                apply_mask(&mut a, key, offset);
                bytewise(&mut b, key, offset);
                assert_eq!(a, b, "len {len} offset {offset}");
            }
        }
    }

    #[test]
    fn masking_twice_is_identity() {
        let key = [0xde, 0xad, 0xbe, 0xef];
        let orig: Vec<u8> = (0..=255).collect();
        let mut buf = orig.clone();
        apply_mask(&mut buf, key, 3);
        assert_ne!(buf, orig);
        apply_mask(&mut buf, key, 3);
        assert_eq!(buf, orig);
    }
}
