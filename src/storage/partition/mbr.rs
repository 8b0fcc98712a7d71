//! DOS (MBR) partition tables: sector 0 parsed into its primary entries, and the PARTUUID
//! Linux gives each. Pure: the bytes come from the caller (`storage::scan`).

use crate::bytes::{byte, le32};

/// One used entry of an MBR partition table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MbrPart {
    /// Slot number 1-4; Linux names the partition device after it (`vda2` for slot 2).
    pub number: u32,
    /// Partition type (0x0C FAT32 LBA, 0x0E FAT16 LBA, 0x83 Linux, 0xEE GPT protective ...).
    pub type_byte: u8,
    /// First sector.
    pub start_lba: u32,
    /// Length in sectors.
    pub sectors: u32,
}

/// A DOS partition table (primary entries only; logical partitions are not walked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mbr {
    /// The disk signature at offset 440; with the slot number it makes the PARTUUID.
    pub disk_signature: u32,
    /// Used entries, in slot order.
    pub partitions: Vec<MbrPart>,
}

impl Mbr {
    /// Whether this is the protective MBR of a GPT disk (an entry of type 0xEE).
    pub fn is_protective(&self) -> bool {
        self.partitions.iter().any(|p| p.type_byte == 0xEE)
    }
}

/// Parse sector 0 as an MBR; None when there is no 0x55AA signature or an entry's boot flag is
/// neither 0x00 nor 0x80 (the kernel's test that tells a FAT boot sector from a partition table).
pub fn parse_mbr(sector0: &[u8]) -> Option<Mbr> {
    if sector0.get(510..512)? != [0x55, 0xAA] {
        return None;
    }
    let table = sector0.get(446..510)?;
    let mut partitions = Vec::new();
    for (slot, entry) in (1u32..).zip(table.chunks_exact(16)) {
        let boot = byte(entry, 0)?;
        if boot != 0 && boot != 0x80 {
            return None;
        }
        let type_byte = byte(entry, 4)?;
        let start_lba = le32(entry, 8)?;
        let sectors = le32(entry, 12)?;
        if type_byte == 0 || sectors == 0 {
            continue;
        }
        partitions.push(MbrPart {
            number: slot,
            type_byte,
            start_lba,
            sectors,
        });
    }
    Some(Mbr {
        disk_signature: le32(sector0, 440)?,
        partitions,
    })
}

/// The PARTUUID Linux and blkid give an MBR partition: `0badcafe-01`.
pub fn mbr_partuuid(disk_signature: u32, number: u32) -> String {
    format!("{disk_signature:08x}-{number:02x}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::partition::testdisk::{fat16, fat32, mbr, put};

    #[test]
    fn mbr_cases() {
        let two = mbr(0x0BAD_CAFE, &[(0x0C, 2048, 4096), (0x83, 8192, 100_000)]);
        let m = parse_mbr(&two).unwrap();
        assert_eq!(m.disk_signature, 0x0BAD_CAFE);
        assert_eq!(
            m.partitions,
            vec![
                MbrPart {
                    number: 1,
                    type_byte: 0x0C,
                    start_lba: 2048,
                    sectors: 4096
                },
                MbrPart {
                    number: 2,
                    type_byte: 0x83,
                    start_lba: 8192,
                    sectors: 100_000
                },
            ]
        );
        assert!(!m.is_protective());

        // empty slots are skipped but keep their numbers
        let gap = mbr(
            1,
            &[(0, 0, 0), (0x0E, 63, 1000), (0x0B, 5, 0), (0x83, 2000, 10)],
        );
        let nums: Vec<u32> = parse_mbr(&gap)
            .unwrap()
            .partitions
            .iter()
            .map(|p| p.number)
            .collect();
        assert_eq!(nums, vec![2, 4]);

        let prot = mbr(0, &[(0xEE, 1, 0xFFFF_FFFF)]);
        assert!(parse_mbr(&prot).unwrap().is_protective());

        assert_eq!(parse_mbr(&mbr(7, &[])).unwrap().partitions, vec![]);

        let mut bad_sig = two.clone();
        bad_sig[511] = 0;
        let mut bad_boot = two.clone();
        bad_boot[446] = 0x12;
        let mut active = two.clone();
        active[446] = 0x80;
        let cases: &[(&[u8], bool)] = &[
            (&bad_sig, false),
            (&bad_boot, false),
            (&active, true),
            (&two[..511], false),
            (&[], false),
            (&fat16(b"BOOT       ", 1, 40_000, 40, 0), false),
            (&fat32(b"BOOT       ", 1, 0), false),
        ];
        // zeros with a signature are an MBR without partitions (the kernel agrees); scan then
        // still looks for FAT on the whole disk
        let mut zeros = vec![0u8; 512];
        put(&mut zeros, 510, &[0x55, 0xAA]);
        assert_eq!(parse_mbr(&zeros).unwrap().partitions, vec![]);
        for (i, (bytes, some)) in cases.iter().enumerate() {
            assert_eq!(parse_mbr(bytes).is_some(), *some, "case {i}");
        }
        assert_eq!(mbr_partuuid(0x0BAD_CAFE, 1), "0badcafe-01");
        assert_eq!(mbr_partuuid(0xABCDEF01, 12), "abcdef01-0c");
    }
}
