//! Little-endian fields read out of byte buffers (partition tables, FAT boot sectors, ELF
//! headers): every read is bounds-checked and a short buffer gives None, never a panic.

/// The byte at `at`.
pub fn byte(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

/// The little-endian `u16` at `at`.
pub fn le16(b: &[u8], at: usize) -> Option<u16> {
    let bytes = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

/// The little-endian `u32` at `at`.
pub fn le32(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

/// The little-endian `u64` at `at`.
pub fn le64(b: &[u8], at: usize) -> Option<u64> {
    let bytes = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_in_bounds_and_none_past_the_end() {
        let b = [1, 2, 3, 4, 5, 6, 7, 8, 9];
        assert_eq!(byte(&b, 8), Some(9));
        assert_eq!(byte(&b, 9), None);
        assert_eq!(le16(&b, 0), Some(0x0201));
        assert_eq!(le16(&b, 8), None);
        assert_eq!(le32(&b, 5), Some(0x0908_0706));
        assert_eq!(le32(&b, 6), None);
        assert_eq!(le64(&b, 1), Some(0x0908_0706_0504_0302));
        assert_eq!(le64(&b, 2), None);
        assert_eq!(le64(&b, usize::MAX), None);
    }
}
