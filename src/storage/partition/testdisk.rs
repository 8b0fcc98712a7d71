//! Tests only: MBR, GPT and FAT sectors built byte by byte, for the parsers' tests and the
//! scan's fake disks.

use super::gpt::crc32;

/// Writes `bytes` into `buf` at `at`.
pub fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
    buf[at..at + bytes.len()].copy_from_slice(bytes);
}

/// An MBR with the given (type, start, sectors) entries in slots 1.., and `boot` flags 0.
pub fn mbr(sig: u32, entries: &[(u8, u32, u32)]) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    // boot code that looks like nothing in particular
    put(&mut s, 0, &[0x33, 0xC0, 0x8E, 0xD0]);
    put(&mut s, 440, &sig.to_le_bytes());
    for (i, (ty, start, len)) in entries.iter().enumerate() {
        let e = 446 + 16 * i;
        s[e + 4] = *ty;
        put(&mut s, e + 8, &start.to_le_bytes());
        put(&mut s, e + 12, &len.to_le_bytes());
    }
    put(&mut s, 510, &[0x55, 0xAA]);
    s
}

/// A FAT12/16 boot sector: 512-byte sectors, 4 sectors/cluster, 1 reserved, 2 FATs,
/// 512 root entries, `total` sectors, `fat_size` sectors per FAT.
pub fn fat16(label: &[u8; 11], serial: u32, total: u16, fat_size: u16, state: u8) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    put(&mut s, 0, &[0xEB, 0x3C, 0x90]);
    put(&mut s, 3, b"mkfs.fat");
    put(&mut s, 11, &512u16.to_le_bytes());
    s[13] = 4;
    put(&mut s, 14, &1u16.to_le_bytes());
    s[16] = 2;
    put(&mut s, 17, &512u16.to_le_bytes());
    put(&mut s, 19, &total.to_le_bytes());
    s[21] = 0xF8;
    put(&mut s, 22, &fat_size.to_le_bytes());
    s[0x25] = state;
    s[0x26] = 0x29;
    put(&mut s, 0x27, &serial.to_le_bytes());
    put(&mut s, 0x2B, label);
    put(&mut s, 0x36, b"FAT16   ");
    // mkfs.fat's boot code message lands in the MBR table area: not a partition table
    put(&mut s, 0x1BE, b"This is not a bootable disk");
    put(&mut s, 510, &[0x55, 0xAA]);
    s
}

pub fn fat32(label: &[u8; 11], serial: u32, state: u8) -> Vec<u8> {
    let mut s = vec![0u8; 512];
    put(&mut s, 0, &[0xEB, 0x58, 0x90]);
    put(&mut s, 11, &512u16.to_le_bytes());
    s[13] = 1;
    put(&mut s, 14, &32u16.to_le_bytes());
    s[16] = 2;
    s[21] = 0xF8;
    put(&mut s, 32, &200_000u32.to_le_bytes());
    put(&mut s, 36, &1_550u32.to_le_bytes());
    put(&mut s, 44, &2u32.to_le_bytes());
    s[0x41] = state;
    s[0x42] = 0x29;
    put(&mut s, 0x43, &serial.to_le_bytes());
    put(&mut s, 0x47, label);
    put(&mut s, 0x52, b"FAT32   ");
    put(&mut s, 0x1BE, b"Press any key to reboot");
    put(&mut s, 510, &[0x55, 0xAA]);
    s
}

pub fn guid_bytes(seed: u8) -> [u8; 16] {
    let mut g = [0u8; 16];
    for (i, b) in g.iter_mut().enumerate() {
        *b = seed.wrapping_add(i as u8);
    }
    g
}

/// (LBA1 header sector, entry array) for a GPT with the given (type, part guid) entries.
pub fn gpt(entries: &[([u8; 16], [u8; 16])], count: u32) -> (Vec<u8>, Vec<u8>) {
    let mut array = vec![0u8; count as usize * 128];
    for (i, (ty, id)) in entries.iter().enumerate() {
        let e = i * 128;
        put(&mut array, e, ty);
        put(&mut array, e + 16, id);
        put(&mut array, e + 32, &2048u64.to_le_bytes());
        put(&mut array, e + 40, &4095u64.to_le_bytes());
        let name: Vec<u8> = "BOOT"
            .encode_utf16()
            .flat_map(|u| u.to_le_bytes())
            .collect();
        put(&mut array, e + 56, &name);
    }
    let mut h = vec![0u8; 512];
    put(&mut h, 0, b"EFI PART");
    put(&mut h, 8, &0x0001_0000u32.to_le_bytes());
    put(&mut h, 12, &92u32.to_le_bytes());
    put(&mut h, 24, &1u64.to_le_bytes());
    put(&mut h, 56, &guid_bytes(0xA0));
    put(&mut h, 72, &2u64.to_le_bytes());
    put(&mut h, 80, &count.to_le_bytes());
    put(&mut h, 84, &128u32.to_le_bytes());
    put(&mut h, 88, &crc32(&array).to_le_bytes());
    let crc = crc32(&h[..92]);
    put(&mut h, 16, &crc.to_le_bytes());
    (h, array)
}
