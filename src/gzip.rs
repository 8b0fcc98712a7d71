//! A gzip file (RFC 1952) inflated whole in memory and checked: its header, the deflate data
//! (`miniz_oxide`, pure Rust), then the trailer's CRC-32 and size against what came out. One
//! member, nothing after it: what `xtask` writes (flate2's `GzEncoder`). Used for the extras
//! archives read from the card (`storage/extras.rs`). Pure.
//!
//! ```text
//! offset  size  field
//!      0     2  ID1 ID2      0x1f 0x8b
//!      2     1  CM           8: deflate
//!      3     1  FLG          FTEXT 1, FHCRC 2, FEXTRA 4, FNAME 8, FCOMMENT 16; others reserved (0)
//!      4     4  MTIME, then XFL (1) and OS (1)
//!     10        FEXTRA: XLEN (2, little endian) and XLEN bytes; FNAME, FCOMMENT: NUL-terminated;
//!               FHCRC: the low 16 bits of the CRC-32 of the header so far
//!               the deflate data (RFC 1951)
//!    end-8   4  CRC32        of the uncompressed data, little endian
//!    end-4   4  ISIZE        its length modulo 2^32
//! ```

use miniz_oxide::inflate::core::{decompress, inflate_flags, DecompressorOxide};
use miniz_oxide::inflate::TINFLStatus;

use crate::bytes::{byte, le16, le32};
use crate::crc32;

const FHCRC: u8 = 2;
const FEXTRA: u8 = 4;
const FNAME: u8 = 8;
const FCOMMENT: u8 = 16;
const RESERVED: u8 = 0xe0;

/// Why a file is not a good gzip file, in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Error(pub String);

impl std::fmt::Display for Error {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn error(what: impl Into<String>) -> Error {
    Error(what.into())
}

/// The uncompressed contents of the gzip file `bytes`, at most `limit` bytes: every check
/// passed, or an error saying which failed. The trailer's size is only a hint for the buffer
/// (in a truncated file it is whatever bytes end it): the deflate data says where it ends, and
/// then exactly the trailer must follow.
pub fn decompress_all(bytes: &[u8], limit: usize) -> Result<Vec<u8>, Error> {
    let body = bytes
        .get(header_len(bytes)?..)
        .ok_or_else(|| error("truncated: the gzip header is cut short"))?;
    let hint = bytes
        .len()
        .checked_sub(4)
        .and_then(|at| le32(bytes, at))
        .map_or(0, |n| n as usize);
    let mut out = vec![
        0u8;
        if hint <= limit {
            hint
        } else {
            limit.min(1 << 20)
        }
    ];
    let mut state = DecompressorOxide::new();
    let flags = inflate_flags::TINFL_FLAG_USING_NON_WRAPPING_OUTPUT_BUF;
    let (mut read, mut written) = (0, 0);
    loop {
        let rest = body.get(read..).unwrap_or_default();
        let (status, r, w) = decompress(&mut state, rest, &mut out, written, flags);
        read += r;
        written += w;
        match status {
            TINFLStatus::Done => break,
            TINFLStatus::HasMoreOutput if out.len() < limit => {
                let grown = out.len().saturating_mul(2).clamp(64 << 10, limit);
                out.resize(grown, 0);
            }
            TINFLStatus::HasMoreOutput => {
                return Err(error(format!(
                    "it unpacks to more than the {limit} bytes allowed"
                )))
            }
            TINFLStatus::NeedsMoreInput | TINFLStatus::FailedCannotMakeProgress => {
                return Err(error("truncated: the compressed data is cut short"))
            }
            _ => return Err(error("corrupt: the compressed data is damaged")),
        }
    }
    out.truncate(written);
    let trailer = body.get(read..).unwrap_or_default();
    if trailer.len() < 8 {
        return Err(error("truncated: the gzip trailer is cut short"));
    }
    if trailer.len() > 8 {
        return Err(error(format!(
            "corrupt: {} bytes after the compressed data (a second member?)",
            trailer.len() - 8
        )));
    }
    let (crc, size) = (le32(trailer, 0), le32(trailer, 4));
    if size != Some(written as u32) {
        return Err(error(format!(
            "corrupt: it inflates to {written} bytes, its trailer says {}",
            size.unwrap_or_default()
        )));
    }
    let actual = crc32::crc32(&out);
    if crc != Some(actual) {
        return Err(error(format!(
            "corrupt: CRC-32 {actual:08x} of the data, its trailer says {:08x}",
            crc.unwrap_or_default()
        )));
    }
    Ok(out)
}

/// The length of the header at the start of `bytes`, checked.
fn header_len(bytes: &[u8]) -> Result<usize, Error> {
    let truncated = || error("truncated: the gzip header is cut short");
    if bytes.get(..2) != Some(&[0x1f, 0x8b][..]) {
        return Err(error("not a gzip file (no magic 1f 8b)"));
    }
    if byte(bytes, 2).ok_or_else(truncated)? != 8 {
        return Err(error("not deflate-compressed (gzip method is not 8)"));
    }
    let flags = byte(bytes, 3).ok_or_else(truncated)?;
    if flags & RESERVED != 0 {
        return Err(error("a gzip header with reserved flags set"));
    }
    let mut pos = 10;
    if flags & FEXTRA != 0 {
        let xlen = le16(bytes, pos).ok_or_else(truncated)?;
        pos += 2 + usize::from(xlen);
    }
    for flag in [FNAME, FCOMMENT] {
        if flags & flag != 0 {
            let rest = bytes.get(pos..).ok_or_else(truncated)?;
            let end = rest.iter().position(|&b| b == 0).ok_or_else(truncated)?;
            pos += end + 1;
        }
    }
    if flags & FHCRC != 0 {
        let want = le16(bytes, pos).ok_or_else(truncated)?;
        let header = bytes.get(..pos).ok_or_else(truncated)?;
        if crc32::crc32(header) as u16 != want {
            return Err(error("corrupt: the gzip header's CRC does not match"));
        }
        pos += 2;
    }
    if pos > bytes.len() {
        return Err(truncated());
    }
    Ok(pos)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `data` deflated with miniz_oxide, wrapped as gzip with `flags`' optional fields.
    fn gzip(data: &[u8], flags: u8) -> Vec<u8> {
        let mut out = vec![0x1f, 0x8b, 8, flags, 0, 0, 0, 0, 0, 3];
        if flags & FEXTRA != 0 {
            out.extend([3, 0, b'a', b'b', b'c']);
        }
        if flags & FNAME != 0 {
            out.extend(b"extras.cpio\0");
        }
        if flags & FCOMMENT != 0 {
            out.extend(b"a comment\0");
        }
        if flags & FHCRC != 0 {
            let crc = crc32::crc32(&out) as u16;
            out.extend(crc.to_le_bytes());
        }
        out.extend(miniz_oxide::deflate::compress_to_vec(data, 6));
        out.extend(crc32::crc32(data).to_le_bytes());
        out.extend((data.len() as u32).to_le_bytes());
        out
    }

    #[test]
    fn good_files_with_every_optional_field() {
        let data: Vec<u8> = (0..100_000u32)
            .flat_map(|i| (i % 251).to_le_bytes())
            .collect();
        for flags in [0, FNAME, FEXTRA | FNAME | FCOMMENT | FHCRC, 1] {
            assert_eq!(decompress_all(&gzip(&data, flags), 1 << 20).unwrap(), data);
        }
        assert_eq!(decompress_all(&gzip(b"", 0), 0).unwrap(), b"");
    }

    #[test]
    fn damage_is_an_error_that_says_what() {
        let data = b"boxinit extras ".repeat(1000);
        let good = gzip(&data, FNAME);
        let err = |bytes: &[u8], limit| decompress_all(bytes, limit).unwrap_err().0;
        // every truncation
        for len in 0..good.len() {
            assert!(
                decompress_all(&good[..len], 1 << 20).is_err(),
                "cut at {len}"
            );
        }
        for len in [5, 12, good.len() / 2, good.len() - 9, good.len() - 1] {
            assert!(
                err(&good[..len], 1 << 20).starts_with("truncated"),
                "cut at {len}"
            );
        }
        // the size bound
        assert!(err(&good, 100).contains("more than the 100 bytes allowed"));
        // a flipped bit in the data or the trailer's CRC
        let mut bad_crc = good.clone();
        let at = bad_crc.len() - 8;
        bad_crc[at] ^= 1;
        assert!(
            err(&bad_crc, 1 << 20).contains("CRC-32"),
            "{}",
            err(&bad_crc, 1 << 20)
        );
        // a trailer that says fewer bytes than come out
        let mut short = good.clone();
        let at = short.len() - 4;
        short[at..].copy_from_slice(&100u32.to_le_bytes());
        assert!(err(&short, 1 << 20).contains("its trailer says 100"));
        // a trailer that says more
        let mut long = good.clone();
        long[at..].copy_from_slice(&((data.len() + 1) as u32).to_le_bytes());
        assert!(err(&long, 1 << 20).contains("its trailer says 15001"));
        // not gzip, or reserved flags
        assert!(err(b"070701...........", 10).contains("not a gzip file"));
        let mut reserved = good.clone();
        reserved[3] |= 0x80;
        assert!(err(&reserved, 1 << 20).contains("reserved"));
        // a header CRC that does not match
        let mut hcrc = gzip(&data, FHCRC);
        hcrc[10] ^= 1;
        assert!(err(&hcrc, 1 << 20).contains("header's CRC"));
        // two members
        let mut two = good.clone();
        two.extend(&good);
        assert!(err(&two, 1 << 20).contains("after the compressed data"));
    }

    #[test]
    fn flipped_bytes_in_the_deflate_data_never_pass() {
        let data = b"0123456789abcdef".repeat(500);
        let good = gzip(&data, 0);
        for at in 10..good.len() - 8 {
            let mut bad = good.clone();
            bad[at] ^= 0x55;
            assert!(decompress_all(&bad, 1 << 20).is_err(), "flipped at {at}");
        }
    }
}
