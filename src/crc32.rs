//! CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): the checksum of GPT headers and
//! entry arrays and of gzip members (RFC 1952 section 8). Table-driven, the table made at
//! compile time (1 KiB): a gzip archive of megabytes is checked at boot. Pure.

/// The table of the CRC of each byte value.
const TABLE: [u32; 256] = table();

// Evaluated at compile time only: an index out of bounds would fail the build, never a boot.
#[allow(clippy::indexing_slicing)]
const fn table() -> [u32; 256] {
    let mut table = [0u32; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u32;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// The CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    update(0, data)
}

/// The CRC-32 of the bytes that gave `crc`, followed by `data`: `update(crc32(a), b)` is the
/// CRC of `a` then `b`.
pub fn update(crc: u32, data: &[u8]) -> u32 {
    let mut crc = !crc;
    for &b in data {
        let index = usize::from((crc as u8) ^ b);
        crc = (crc >> 8) ^ TABLE.get(index).copied().unwrap_or(0);
    }
    !crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_vectors() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
        assert_eq!(
            crc32(b"The quick brown fox jumps over the lazy dog"),
            0x414F_A339
        );
        assert_eq!(update(crc32(b"1234"), b"56789"), 0xCBF4_3926);
    }
}
