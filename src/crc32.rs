//! CRC-32 (IEEE 802.3, reflected, polynomial 0xEDB88320): the checksum of GPT headers and
//! entry arrays and of gzip members (RFC 1952 section 8). Table-driven, eight bytes a step,
//! the tables made at compile time: a gzip archive of megabytes is checked at boot. Pure.

/// The tables of slicing-by-8 (Intel's, as zlib and crc32fast use it): `TABLES[0]` the CRC
/// of each byte value, `TABLES[k]` of each byte value followed by `k` zero bytes; 8 KiB,
/// made at compile time. Eight bytes a step: about five times the speed of a byte a step
/// (an extras archive of 19 MB is checked at boot, after the box starts).
const TABLES: [[u32; 256]; 8] = tables();

// Evaluated at compile time only: an index out of bounds would fail the build, never a boot.
#[allow(clippy::indexing_slicing)]
const fn tables() -> [[u32; 256]; 8] {
    let mut t = [[0u32; 256]; 8];
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
        t[0][i] = crc;
        i += 1;
    }
    let mut k = 1;
    while k < 8 {
        let mut i = 0;
        while i < 256 {
            let prev = t[k - 1][i];
            t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            i += 1;
        }
        k += 1;
    }
    t
}

/// `TABLES[k][byte]`.
fn entry(k: usize, byte: u32) -> u32 {
    TABLES
        .get(k)
        .and_then(|t| t.get((byte & 0xff) as usize))
        .copied()
        .unwrap_or(0)
}

/// The CRC-32 of `data`.
pub fn crc32(data: &[u8]) -> u32 {
    update(0, data)
}

/// The CRC-32 of the bytes that gave `crc`, followed by `data`: `update(crc32(a), b)` is the
/// CRC of `a` then `b`.
pub fn update(crc: u32, data: &[u8]) -> u32 {
    let mut crc = !crc;
    let mut chunks = data.chunks_exact(8);
    for chunk in &mut chunks {
        let Ok(word) = <[u8; 8]>::try_from(chunk) else {
            continue;
        };
        let lo = u32::from_le_bytes([word[0], word[1], word[2], word[3]]) ^ crc;
        let hi = u32::from_le_bytes([word[4], word[5], word[6], word[7]]);
        crc = entry(7, lo)
            ^ entry(6, lo >> 8)
            ^ entry(5, lo >> 16)
            ^ entry(4, lo >> 24)
            ^ entry(3, hi)
            ^ entry(2, hi >> 8)
            ^ entry(1, hi >> 16)
            ^ entry(0, hi >> 24);
    }
    for &b in chunks.remainder() {
        crc = (crc >> 8) ^ entry(0, crc ^ u32::from(b));
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
        // eight bytes a step gives what a bit a step gives, at every length and offset
        let data: Vec<u8> = (0..1000u32).map(|i| (i * 7 + i / 13) as u8).collect();
        for start in 0..9 {
            for len in [0, 1, 7, 8, 9, 15, 16, 17, 100, 991 - start] {
                let part = &data[start..start + len];
                assert_eq!(crc32(part), bitwise(part), "{start} {len}");
            }
        }
    }

    fn bitwise(data: &[u8]) -> u32 {
        let mut crc = !0u32;
        for &b in data {
            crc ^= u32::from(b);
            for _ in 0..8 {
                crc = (crc >> 1) ^ (0xEDB8_8320 & (crc & 1).wrapping_neg());
            }
        }
        !crc
    }
}
