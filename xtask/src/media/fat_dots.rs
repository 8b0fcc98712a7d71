//! A repair of what `fatfs` 0.3.6 writes for a new directory: a long-name entry before each of
//! `.` and `..` (rafalh/rust-fatfs#117; fixed upstream, not in a release), which `fsck.fat`
//! reports ("Expected a valid '.' entry in this slot") and would rewrite. The directory's
//! first cluster is moved down two slots each, so `.` and `..` are its first two entries, as
//! the FAT specification and Linux's vfat write them.

use std::path::Path;

use anyhow::{bail, Result};

/// A directory entry's size.
const ENTRY: usize = 32;
/// The attribute byte of a long-name entry.
const LONG_NAME: u8 = 0x0F;

/// Repairs every directory of the FAT volume `volume` (its bytes from the boot sector on);
/// returns how many it repaired.
pub fn repair(volume: &mut [u8]) -> Result<usize> {
    let (Some(bps), Some(&spc)) = (volume.get(11..13), volume.get(13)) else {
        bail!("no FAT boot sector");
    };
    let sector = usize::from(u16::from_le_bytes([bps[0], bps[1]]));
    let cluster = sector * usize::from(spc);
    if sector < 512 || cluster == 0 {
        bail!("a FAT boot sector with {sector}-byte sectors and {spc} sectors a cluster");
    }
    let mut repaired = 0;
    let mut at = 0;
    while at + 4 * ENTRY <= volume.len() {
        if starts_with_long_dots(&volume[at..]) {
            let end = (at + cluster).min(volume.len());
            let dir = &mut volume[at..end];
            if dir[dir.len() - 2 * ENTRY..].iter().any(|&b| b != 0) {
                bail!("a directory of the image fills its first cluster: fewer files in it");
            }
            // LFN(.) . LFN(..) .. rest  →  . .. rest
            dir.copy_within(ENTRY..2 * ENTRY, 0);
            dir.copy_within(3 * ENTRY..4 * ENTRY, ENTRY);
            dir.copy_within(4 * ENTRY.., 2 * ENTRY);
            let len = dir.len();
            dir[len - 2 * ENTRY..].fill(0);
            repaired += 1;
        }
        at += sector;
    }
    Ok(repaired)
}

/// [`repair`] of the volume at `start`, `len` bytes long, of the disk image `image`, in place.
pub fn repair_in_file(image: &Path, start: u64, len: u64) -> Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)?;
    let mut bytes = vec![0u8; usize::try_from(len)?];
    file.seek(SeekFrom::Start(start))?;
    file.read_exact(&mut bytes)?;
    if repair(&mut bytes)? > 0 {
        file.seek(SeekFrom::Start(start))?;
        file.write_all(&bytes)?;
    }
    Ok(())
}

/// Whether `bytes` begins with a long-name entry, `.`, a long-name entry and `..`.
fn starts_with_long_dots(bytes: &[u8]) -> bool {
    let entry = |i: usize| bytes.get(i * ENTRY..(i + 1) * ENTRY);
    let is_long = |e: Option<&[u8]>| e.and_then(|e| e.get(11)) == Some(&LONG_NAME);
    let named = |e: Option<&[u8]>, name: &[u8; 11]| {
        e.is_some_and(|e| {
            e.get(..11) == Some(name.as_slice()) && e.get(11).is_some_and(|a| a & 0x10 != 0)
        })
    };
    is_long(entry(0))
        && named(entry(1), b".          ")
        && is_long(entry(2))
        && named(entry(3), b"..         ")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(name: &[u8; 11], attr: u8) -> Vec<u8> {
        let mut e = vec![0u8; ENTRY];
        e[..11].copy_from_slice(name);
        e[11] = attr;
        e
    }

    #[test]
    fn the_dots_come_first() {
        let mut volume = vec![0u8; 4096];
        volume[11..13].copy_from_slice(&512u16.to_le_bytes());
        volume[13] = 2;
        let dir: Vec<u8> = [
            entry(b"A.         ", LONG_NAME),
            entry(b".          ", 0x10),
            entry(b"A..        ", LONG_NAME),
            entry(b"..         ", 0x10),
            entry(b"STATE   TXT", 0x20),
        ]
        .concat();
        volume[1024..1024 + dir.len()].copy_from_slice(&dir);
        assert_eq!(repair(&mut volume).unwrap(), 1);
        assert_eq!(&volume[1024..1035], b".          ");
        assert_eq!(&volume[1056..1067], b"..         ");
        assert_eq!(&volume[1088..1099], b"STATE   TXT");
        assert!(volume[1120..2048].iter().all(|&b| b == 0));
        // done once
        assert_eq!(repair(&mut volume).unwrap(), 0);
    }
}
