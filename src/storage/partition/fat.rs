//! FAT boot sectors (FAT12, FAT16, FAT32: label, serial, where the root directory is) and the
//! volume label entry of a root directory. Pure: the bytes come from the caller
//! (`storage::scan`, `devices::automount` through it).

use crate::bytes::{byte, le16, le32};

/// FAT variant, decided from the BPB as the kernel and blkid do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FatKind {
    /// Fewer than 4085 clusters.
    Fat12,
    /// 4085 clusters or more, with a 16-bit FAT size.
    Fat16,
    /// The BPB's 16-bit FAT size is 0: the FAT32 layout.
    Fat32,
}

/// What the boot sector of a FAT file system says about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FatInfo {
    /// FAT12, FAT16 or FAT32.
    pub kind: FatKind,
    /// Volume label, trailing spaces removed; None when blank or `NO NAME`. [`scan`] replaces
    /// it with the root directory's label when there is one, as blkid does (Windows renames a
    /// volume only there).
    pub label: Option<String>,
    /// Volume serial number.
    pub serial: u32,
    /// The serial as blkid prints it: `ABCD-1234`.
    pub uuid: String,
    /// The "not cleanly unmounted" bit of the state byte.
    pub dirty: bool,
    /// Byte offset of the root directory from the start of the volume (for its label entry).
    pub root_dir_offset: u64,
    /// Bytes of root directory worth reading for the label (FAT12/16: the whole fixed root
    /// directory; FAT32: its first cluster), capped at 64 KiB.
    pub root_dir_len: usize,
}

/// The BPB fields shared by all FAT variants.
struct Bpb {
    bytes_per_sector: u32,
    sectors_per_cluster: u32,
    reserved: u32,
    fats: u32,
    root_entries: u32,
    total_sectors: u32,
    fat_size: u32,
}

fn parse_bpb(s: &[u8]) -> Option<Bpb> {
    if s.len() < 512 || !matches!(byte(s, 0)?, 0xEB | 0xE9) {
        return None;
    }
    let bytes_per_sector = u32::from(le16(s, 11)?);
    let sectors_per_cluster = u32::from(byte(s, 13)?);
    let reserved = u32::from(le16(s, 14)?);
    let fats = u32::from(byte(s, 16)?);
    let media = byte(s, 21)?;
    let sane = bytes_per_sector.is_power_of_two()
        && (512..=4096).contains(&bytes_per_sector)
        && sectors_per_cluster.is_power_of_two()
        && reserved > 0
        && fats >= 1
        && (media == 0xF0 || media >= 0xF8);
    if !sane {
        return None;
    }
    let total16 = u32::from(le16(s, 19)?);
    let total_sectors = if total16 != 0 { total16 } else { le32(s, 32)? };
    let fat16_size = u32::from(le16(s, 22)?);
    let fat_size = if fat16_size != 0 {
        fat16_size
    } else {
        le32(s, 36)?
    };
    if total_sectors == 0 || fat_size == 0 {
        return None;
    }
    Some(Bpb {
        bytes_per_sector,
        sectors_per_cluster,
        reserved,
        fats,
        root_entries: u32::from(le16(s, 17)?),
        total_sectors,
        fat_size,
    })
}

/// Parse a FAT boot sector; None for anything else (an MBR, ext4, zeros, a short buffer).
pub fn parse_fat_boot_sector(sector: &[u8]) -> Option<FatInfo> {
    let bpb = parse_bpb(sector)?;
    let fat32 = le16(sector, 22)? == 0;
    // (state byte, serial, label) offsets differ between the FAT32 and FAT12/16 layouts
    let (state_at, serial_at, label_at) = if fat32 {
        (0x41, 0x43, 0x47)
    } else {
        (0x25, 0x27, 0x2B)
    };
    if !fat32 && bpb.root_entries == 0 {
        return None;
    }
    let bps = u64::from(bpb.bytes_per_sector);
    let fat_area = u64::from(bpb.reserved) + u64::from(bpb.fats) * u64::from(bpb.fat_size);
    let root_dir_sectors = (u64::from(bpb.root_entries) * 32).div_ceil(bps);
    let data_start = fat_area + root_dir_sectors;
    let data_sectors = u64::from(bpb.total_sectors).checked_sub(data_start)?;
    let clusters = data_sectors / u64::from(bpb.sectors_per_cluster);
    let kind = match (fat32, clusters < 4085) {
        (true, _) => FatKind::Fat32,
        (false, true) => FatKind::Fat12,
        (false, false) => FatKind::Fat16,
    };
    let (root_dir_offset, root_dir_len) = if fat32 {
        let root_cluster = u64::from(le32(sector, 44)?);
        let cluster = root_cluster.checked_sub(2)?;
        let sector_no =
            data_start.checked_add(cluster.checked_mul(bpb.sectors_per_cluster.into())?)?;
        (
            sector_no.checked_mul(bps)?,
            bps * u64::from(bpb.sectors_per_cluster),
        )
    } else {
        (fat_area.checked_mul(bps)?, u64::from(bpb.root_entries) * 32)
    };
    let serial = le32(sector, serial_at)?;
    Some(FatInfo {
        kind,
        label: clean_label(sector.get(label_at..label_at + 11)?),
        serial,
        uuid: format!("{:04X}-{:04X}", serial >> 16, serial & 0xFFFF),
        dirty: byte(sector, state_at)? & 1 == 1,
        root_dir_offset,
        root_dir_len: usize::try_from(root_dir_len.min(64 * 1024)).ok()?,
    })
}

/// An 11-byte FAT label: trailing spaces and NULs removed; None when blank or `NO NAME`. A
/// label that is not UTF-8 text (an OEM code page, or garbage) keeps its printable ASCII and
/// shows every other byte as `\xNN`, as does a control character: a message shows what the
/// disk holds, never a replacement character or a byte that moves the console's cursor.
fn clean_label(raw: &[u8]) -> Option<String> {
    let end = raw
        .iter()
        .rposition(|&b| b != b' ' && b != 0)
        .map_or(0, |i| i + 1);
    let trimmed = raw.get(..end).unwrap_or_default();
    let label = match std::str::from_utf8(trimmed) {
        Ok(text) if !text.chars().any(char::is_control) => text.to_string(),
        _ => trimmed
            .iter()
            .map(|&b| match b {
                0x20..=0x7e => char::from(b).to_string(),
                _ => format!("\\x{b:02x}"),
            })
            .collect(),
    };
    (!label.is_empty() && label != "NO NAME").then_some(label)
}

/// The volume label entry of a FAT directory (attribute 0x08, not a long-name entry), if any.
pub fn volume_label_in_dir(dir: &[u8]) -> Option<String> {
    for entry in dir.chunks_exact(32) {
        let first = byte(entry, 0)?;
        if first == 0 {
            return None; // end of directory
        }
        let attr = byte(entry, 11)?;
        // 0xE5 marks a deleted entry; 0x0F attributes mark a long-file-name fragment
        if first == 0xE5 || attr & 0x0F == 0x0F || attr & 0x08 == 0 {
            continue;
        }
        return clean_label(entry.get(0..11)?);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_that_are_not_text_are_shown_escaped() {
        assert_eq!(clean_label(b"BOOT       ").as_deref(), Some("BOOT"));
        assert_eq!(clean_label(b"PI BOOT\0\0\0\0").as_deref(), Some("PI BOOT"));
        assert_eq!(clean_label(b"NO NAME    "), None);
        assert_eq!(clean_label(b"           "), None);
        assert_eq!(
            clean_label(b"CAF\xc3\xa9     ").as_deref(),
            Some("CAF\u{e9}")
        );
        assert_eq!(
            clean_label(b"BO\xffT\x1b[2J  ").as_deref(),
            Some("BO\\xffT\\x1b[2J")
        );
    }
    use crate::storage::partition::testdisk::{fat16, fat32, mbr, put};

    #[test]
    fn fat_cases() {
        let f = parse_fat_boot_sector(&fat16(b"BOOT       ", 0x1234_ABCD, 40_000, 40, 0)).unwrap();
        assert_eq!(f.kind, FatKind::Fat16);
        assert_eq!(f.label.as_deref(), Some("BOOT"));
        assert_eq!(f.uuid, "1234-ABCD");
        assert_eq!(f.serial, 0x1234_ABCD);
        assert!(!f.dirty);
        assert_eq!(f.root_dir_offset, (1 + 2 * 40) * 512);
        assert_eq!(f.root_dir_len, 512 * 32);

        let small = parse_fat_boot_sector(&fat16(b"NO NAME    ", 0xABC, 2_000, 2, 1)).unwrap();
        assert_eq!(small.kind, FatKind::Fat12);
        assert_eq!(small.label, None);
        assert_eq!(small.uuid, "0000-0ABC");
        assert!(small.dirty);

        let f32 = parse_fat_boot_sector(&fat32(b"PI BOOT    ", 0xDEAD_BEEF, 3)).unwrap();
        assert_eq!(f32.kind, FatKind::Fat32);
        assert_eq!(f32.label.as_deref(), Some("PI BOOT"));
        assert_eq!(f32.uuid, "DEAD-BEEF");
        assert!(f32.dirty);
        assert_eq!(f32.root_dir_offset, (32 + 2 * 1550) * 512);
        assert_eq!(f32.root_dir_len, 512);

        let blank = parse_fat_boot_sector(&fat32(b"           ", 1, 0)).unwrap();
        assert_eq!(blank.label, None);

        // not FAT: each sanity check on its own
        let base = fat16(b"BOOT       ", 1, 40_000, 40, 0);
        let broken: &[(&str, usize, &[u8])] = &[
            ("jump", 0, &[0x33]),
            ("bytes/sector 0", 11, &[0, 0]),
            ("bytes/sector 1000", 11, &[0xE8, 0x03]),
            ("bytes/sector 8192", 11, &[0x00, 0x20]),
            ("sectors/cluster 0", 13, &[0]),
            ("sectors/cluster 3", 13, &[3]),
            ("reserved 0", 14, &[0, 0]),
            ("fats 0", 16, &[0]),
            ("media", 21, &[0x12]),
            ("total 0", 19, &[0, 0]),
            ("root entries 0", 17, &[0, 0]),
            ("fat bigger than disk", 22, &[0xFF, 0x7F]),
        ];
        for (what, at, bytes) in broken {
            let mut s = base.clone();
            put(&mut s, *at, bytes);
            assert_eq!(parse_fat_boot_sector(&s), None, "{what}");
        }
        let mut e9 = base.clone();
        e9[0] = 0xE9;
        assert!(parse_fat_boot_sector(&e9).is_some());
        assert_eq!(parse_fat_boot_sector(&base[..100]), None);
        assert_eq!(parse_fat_boot_sector(&[]), None);
        assert_eq!(parse_fat_boot_sector(&vec![0u8; 512]), None);
        assert_eq!(parse_fat_boot_sector(&mbr(1, &[(0x0C, 2048, 4096)])), None);
    }

    #[test]
    fn directory_labels() {
        fn entry(name: &[u8; 11], attr: u8) -> Vec<u8> {
            let mut e = vec![0u8; 32];
            put(&mut e, 0, name);
            e[11] = attr;
            e
        }
        let cases: &[(&[Vec<u8>], Option<&str>)] = &[
            (&[entry(b"MYCARD     ", 0x08)], Some("MYCARD")),
            (
                &[entry(b"BOOT    TXT", 0x20), entry(b"MYCARD     ", 0x08)],
                Some("MYCARD"),
            ),
            (
                &[entry(b"\xE5OLD       ", 0x08), entry(b"NEW        ", 0x08)],
                Some("NEW"),
            ),
            (
                &[
                    entry(b"Aa\0b\0c\0d\0e\0", 0x0F),
                    entry(b"X          ", 0x28),
                ],
                Some("X"),
            ),
            (&[entry(b"BOOT    TXT", 0x20)], None),
            (&[vec![0u8; 32], entry(b"LATE       ", 0x08)], None),
            (&[entry(b"NO NAME    ", 0x08)], None),
            (&[], None),
        ];
        for (i, (entries, want)) in cases.iter().enumerate() {
            assert_eq!(
                volume_label_in_dir(&entries.concat()).as_deref(),
                *want,
                "case {i}"
            );
        }
    }
}
