//! GUID partition tables: the header at LBA 1 and its entry array, both CRCs checked, and
//! GUIDs as blkid prints them. Pure: the bytes come from the caller (`storage::scan`).

use crate::bytes::{le16, le32, le64};

/// CRC-32 (IEEE 802.3), as GPT uses: the one gzip uses too.
pub use crate::crc32::crc32;

/// The fields of a GPT header (LBA 1) needed to find and check the entry array.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptHeader {
    /// Disk GUID, blkid style.
    pub disk_guid: String,
    /// First LBA of the partition entry array.
    pub entries_lba: u64,
    /// Number of entries in the array.
    pub entry_count: u32,
    /// Size of each entry in bytes (128 or a larger multiple of 8).
    pub entry_size: u32,
    /// CRC-32 of the whole entry array.
    pub entries_crc: u32,
}

impl GptHeader {
    /// Bytes of the entry array; None when absurd (over 1 MiB), so a corrupt header cannot
    /// make the init read a whole disk.
    pub fn entries_len(&self) -> Option<usize> {
        let len = usize::try_from(self.entry_count)
            .ok()?
            .checked_mul(usize::try_from(self.entry_size).ok()?)?;
        (len <= 1 << 20).then_some(len)
    }
}

/// One used GPT partition entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GptPart {
    /// 1-based entry index; Linux names the partition device after it.
    pub number: u32,
    /// Partition type GUID (blkid style).
    pub type_guid: String,
    /// Unique partition GUID: the PARTUUID.
    pub part_guid: String,
    /// First LBA.
    pub first_lba: u64,
    /// Last LBA (inclusive).
    pub last_lba: u64,
    /// Partition name (UTF-16LE in the entry, trailing NULs removed).
    pub name: String,
}

/// A GUID partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Gpt {
    /// Disk GUID, blkid style.
    pub disk_guid: String,
    /// Used entries, in entry order.
    pub partitions: Vec<GptPart>,
}

/// A GUID as blkid prints it: first three fields little-endian, the rest as stored, lowercase.
pub fn format_guid(b: &[u8]) -> Option<String> {
    let d1 = le32(b, 0)?;
    let d2 = le16(b, 4)?;
    let d3 = le16(b, 6)?;
    let tail = b.get(8..16)?;
    let mut s = format!("{d1:08x}-{d2:04x}-{d3:04x}-");
    for (i, x) in tail.iter().enumerate() {
        if i == 2 {
            s.push('-');
        }
        s.push_str(&format!("{x:02x}"));
    }
    Some(s)
}

/// Parse a GPT header sector (LBA 1): signature `EFI PART`, header CRC checked.
pub fn parse_gpt_header(sector: &[u8]) -> Option<GptHeader> {
    if sector.get(0..8)? != b"EFI PART" {
        return None;
    }
    let size = usize::try_from(le32(sector, 12)?).ok()?;
    if !(92..=sector.len()).contains(&size) {
        return None;
    }
    // the CRC covers the header with its own CRC field zeroed
    let mut header = sector.get(0..size)?.to_vec();
    header.get_mut(16..20)?.fill(0);
    if crc32(&header) != le32(sector, 16)? {
        return None;
    }
    Some(GptHeader {
        disk_guid: format_guid(sector.get(56..72)?)?,
        entries_lba: le64(sector, 72)?,
        entry_count: le32(sector, 80)?,
        entry_size: le32(sector, 84)?,
        entries_crc: le32(sector, 88)?,
    })
}

/// Parse a GPT from its header sector and its entry array (both CRCs checked: a stale or torn
/// table is not trusted).
pub fn parse_gpt(header_lba1: &[u8], entries: &[u8]) -> Option<Gpt> {
    let header = parse_gpt_header(header_lba1)?;
    let len = header.entries_len()?;
    let size = usize::try_from(header.entry_size).ok()?;
    if size < 128 {
        return None;
    }
    let array = entries.get(..len)?;
    if crc32(array) != header.entries_crc {
        return None;
    }
    let mut partitions = Vec::new();
    for (number, entry) in (1u32..).zip(array.chunks_exact(size)) {
        let type_bytes = entry.get(0..16)?;
        if type_bytes.iter().all(|b| *b == 0) {
            continue;
        }
        partitions.push(GptPart {
            number,
            type_guid: format_guid(type_bytes)?,
            part_guid: format_guid(entry.get(16..32)?)?,
            first_lba: le64(entry, 32)?,
            last_lba: le64(entry, 40)?,
            name: utf16_name(entry.get(56..128)?),
        });
    }
    Some(Gpt {
        disk_guid: header.disk_guid,
        partitions,
    })
}

fn utf16_name(b: &[u8]) -> String {
    let units: Vec<u16> = b
        .chunks_exact(2)
        .map(|c| {
            u16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ])
        })
        .take_while(|u| *u != 0)
        .collect();
    String::from_utf16_lossy(&units)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::partition::testdisk::{gpt, guid_bytes};

    #[test]
    fn crc32_known_vector() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

    #[test]
    fn guid_format_is_mixed_endian() {
        // the EFI system partition type GUID as stored on disk
        let esp = [
            0x28, 0x73, 0x2A, 0xC1, 0x1F, 0xF8, 0xD2, 0x11, 0xBA, 0x4B, 0x00, 0xA0, 0xC9, 0x3E,
            0xC9, 0x3B,
        ];
        assert_eq!(
            format_guid(&esp).unwrap(),
            "c12a7328-f81f-11d2-ba4b-00a0c93ec93b"
        );
        assert_eq!(format_guid(&esp[..15]), None);
    }

    #[test]
    fn gpt_cases() {
        let (h, a) = gpt(
            &[
                (guid_bytes(1), guid_bytes(0x10)),
                ([0; 16], [0; 16]),
                (guid_bytes(2), guid_bytes(0x20)),
            ],
            4,
        );
        let g = parse_gpt(&h, &a).unwrap();
        assert_eq!(g.disk_guid, "a3a2a1a0-a5a4-a7a6-a8a9-aaabacadaeaf");
        let got: Vec<(u32, &str, &str)> = g
            .partitions
            .iter()
            .map(|p| (p.number, p.part_guid.as_str(), p.name.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (1, "13121110-1514-1716-1819-1a1b1c1d1e1f", "BOOT"),
                (3, "23222120-2524-2726-2829-2a2b2c2d2e2f", "BOOT"),
            ]
        );
        assert_eq!(
            g.partitions[0].type_guid,
            "04030201-0605-0807-090a-0b0c0d0e0f10"
        );
        assert_eq!(
            (g.partitions[0].first_lba, g.partitions[0].last_lba),
            (2048, 4095)
        );

        let mut bad_header_crc = h.clone();
        bad_header_crc[80] = 5;
        let mut bad_sig = h.clone();
        bad_sig[0] = b'X';
        let mut bad_entries = a.clone();
        bad_entries[40] ^= 1;
        let cases: &[(&[u8], &[u8], bool)] = &[
            (&h, &a, true),
            (&bad_header_crc, &a, false),
            (&bad_sig, &a, false),
            (&h, &bad_entries, false),
            (&h, &a[..a.len() - 1], false),
            (&h[..91], &a, false),
            (&[], &[], false),
        ];
        for (i, (hh, aa, some)) in cases.iter().enumerate() {
            assert_eq!(parse_gpt(hh, aa).is_some(), *some, "case {i}");
        }
        // an absurd entry array is refused before anything is read
        let hdr = parse_gpt_header(&h).unwrap();
        assert_eq!(hdr.entries_len(), Some(512));
        let huge = GptHeader {
            entry_count: 100_000,
            ..hdr
        };
        assert_eq!(huge.entries_len(), None);
    }
}
