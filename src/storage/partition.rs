//! Finding the boot partition: the device spec (`LABEL=`, `UUID=`, ...), MBR/GPT and FAT boot
//! sector parsers, and a scan of `sys/class/block` + `dev` under a given root; it only reads
//! files (no blkid, no mount, no waiting for devices to appear: the caller does those).

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Which device holds the boot partition, as written in `init.toml` or on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The first partition (or unpartitioned disk) holding a FAT file system.
    #[default]
    Auto,
    /// A FAT volume label, compared case-insensitively (`LABEL=BOOT`).
    Label(String),
    /// A FAT volume serial as blkid prints it (`UUID=1234-ABCD`).
    Uuid(String),
    /// A partition id: MBR `0badcafe-01` or a GPT partition GUID (`PARTUUID=...`).
    PartUuid(String),
    /// A device node path (`/dev/vda1`).
    Path(String),
    /// No boot partition: the box has an absolute path (in the initramfs, or on the host when
    /// boxinit runs as PID 1 of a PID namespace) and the config comes from the initramfs or
    /// `BOXINIT_CONFIG`.
    None,
}

/// What a device spec may look like, for error messages.
const SPEC_FORMS: &str = "expected `auto`, `none`, `LABEL=<label>`, `UUID=<XXXX-XXXX>`, \
     `PARTUUID=<xxxxxxxx-nn or GPT GUID>` or `/dev/<name>`";

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<DeviceSpec, String> {
        let bad = |why: &str| format!("bad boot device `{s}`: {why}; {SPEC_FORMS}");
        if s.eq_ignore_ascii_case("auto") {
            return Ok(DeviceSpec::Auto);
        }
        if s.eq_ignore_ascii_case("none") {
            return Ok(DeviceSpec::None);
        }
        if s.starts_with('/') {
            return Ok(DeviceSpec::Path(s.to_string()));
        }
        let Some((kind, value)) = s.split_once('=') else {
            return Err(bad("unknown form"));
        };
        if value.is_empty() {
            return Err(bad("empty value"));
        }
        match kind.to_ascii_uppercase().as_str() {
            "LABEL" => Ok(DeviceSpec::Label(value.to_string())),
            "UUID" if is_fat_uuid(value) => Ok(DeviceSpec::Uuid(value.to_string())),
            "UUID" => Err(bad("a FAT volume id looks like `1234-ABCD`")),
            "PARTUUID" if is_mbr_partuuid(value) || is_guid(value) => {
                Ok(DeviceSpec::PartUuid(value.to_string()))
            }
            "PARTUUID" => Err(bad("not an MBR or GPT partition id")),
            _ => Err(bad("unknown form")),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;
    fn try_from(s: String) -> Result<DeviceSpec, String> {
        s.parse()
    }
}

impl<'de> serde::Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DeviceSpec, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Label(l) => write!(f, "LABEL={l}"),
            DeviceSpec::Uuid(u) => write!(f, "UUID={u}"),
            DeviceSpec::PartUuid(p) => write!(f, "PARTUUID={p}"),
            DeviceSpec::Path(p) => write!(f, "{p}"),
            DeviceSpec::None => write!(f, "none"),
        }
    }
}

/// Whether `s` is hex digits in groups of the given lengths joined by `-`.
fn is_hex_groups(s: &str, lens: &[usize]) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == lens.len()
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == *n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_fat_uuid(s: &str) -> bool {
    is_hex_groups(s, &[4, 4])
}

fn is_mbr_partuuid(s: &str) -> bool {
    is_hex_groups(s, &[8, 2])
}

fn is_guid(s: &str) -> bool {
    is_hex_groups(s, &[8, 4, 4, 4, 12])
}

// ---------------------------------------------------------------------------------------------
// Byte helpers: every read is bounds-checked, a short buffer gives None.

fn le16(b: &[u8], at: usize) -> Option<u16> {
    let bytes = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_le_bytes(bytes.try_into().ok()?))
}

fn le32(b: &[u8], at: usize) -> Option<u32> {
    let bytes = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(bytes.try_into().ok()?))
}

fn le64(b: &[u8], at: usize) -> Option<u64> {
    let bytes = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(bytes.try_into().ok()?))
}

fn byte(b: &[u8], at: usize) -> Option<u8> {
    b.get(at).copied()
}

/// CRC-32 (IEEE 802.3, as GPT uses), bitwise: a few KiB per boot does not need a table.
pub fn crc32(data: &[u8]) -> u32 {
    let mut crc = !0u32;
    for b in data {
        crc ^= u32::from(*b);
        for _ in 0..8 {
            let mask = (crc & 1).wrapping_neg();
            crc = (crc >> 1) ^ (0xEDB8_8320 & mask);
        }
    }
    !crc
}

// ---------------------------------------------------------------------------------------------
// MBR

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

// ---------------------------------------------------------------------------------------------
// GPT

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

// ---------------------------------------------------------------------------------------------
// FAT

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

/// An 11-byte FAT label: trailing spaces and NULs removed; None when blank or `NO NAME`.
fn clean_label(raw: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(raw);
    let label = text.trim_end_matches([' ', '\0']);
    (!label.is_empty() && label != "NO NAME").then(|| label.to_string())
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

// ---------------------------------------------------------------------------------------------
// Scanning a (possibly fake) root

/// A block device that might be the boot partition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The device node as the running system sees it (`/dev/vda1`), not prefixed by the root.
    pub dev: PathBuf,
    /// The whole disk it belongs to (`vda`).
    pub disk: String,
    /// Partition number; None for an unpartitioned disk (a "superfloppy").
    pub number: Option<u32>,
    /// MBR or GPT partition id, when the disk's table could be read.
    pub partuuid: Option<String>,
    /// What the FAT boot sector says, when there is one.
    pub fat: Option<FatInfo>,
}

/// A device that could not be examined; the caller logs these at debug level.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ScanError {
    /// The file that could not be read (under the scanned root).
    pub path: PathBuf,
    /// What went wrong.
    pub message: String,
}

impl fmt::Display for ScanError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

/// The result of [`scan`]: candidates in disk-name then partition-number order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scan {
    /// Partitions, and unpartitioned disks, with what was learnt about them.
    pub found: Vec<Candidate>,
    /// Devices that could not be read.
    pub errors: Vec<ScanError>,
}

/// Block devices that never hold the boot partition.
fn is_ignored(name: &str) -> bool {
    ["loop", "ram", "zram"].iter().any(|p| name.starts_with(p))
}

/// The device name of partition `number` of `disk`: `vda1`, but `mmcblk0p1`, `nvme0n1p1`.
pub fn partition_name(disk: &str, number: u32) -> String {
    if disk.ends_with(|c: char| c.is_ascii_digit()) {
        format!("{disk}p{number}")
    } else {
        format!("{disk}{number}")
    }
}

/// Read `len` bytes at `offset` of a file.
fn read_at(path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let file = fs::File::open(path)?;
    let mut buf = vec![0u8; len];
    file.read_exact_at(&mut buf, offset)?;
    Ok(buf)
}

/// Read up to `len` bytes at `offset`, fewer if the file ends first.
fn read_upto(path: &Path, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    let file = fs::File::open(path)?;
    let mut buf = vec![0u8; len];
    let mut got = 0;
    while let Some(rest) = buf.get_mut(got..).filter(|r| !r.is_empty()) {
        let pos = offset.saturating_add(got as u64);
        match file.read_at(rest, pos) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    buf.truncate(got);
    Ok(buf)
}

/// A partition seen in sysfs: its name and number.
struct SysPart {
    name: String,
    number: u32,
}

/// List every disk and partition under `root/sys/class/block`, read their partition tables and
/// FAT boot sectors from `root/dev`, and return the candidates in the order [`select`] prefers.
///
/// Which partitions exist is taken from sysfs (the kernel already parsed the tables); the
/// tables are read here only for PARTUUIDs. A disk with no partitions in sysfs is examined
/// itself, as a FAT file system without a partition table.
pub fn scan(root: &Path) -> Scan {
    let mut out = Scan::default();
    let class = root.join("sys/class/block");
    let entries = match fs::read_dir(&class) {
        Ok(e) => e,
        Err(e) => {
            out.errors.push(ScanError {
                path: class,
                message: e.to_string(),
            });
            return out;
        }
    };
    let mut disks = Vec::new();
    let mut parts = Vec::new();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if is_ignored(&name) {
            continue;
        }
        match fs::read_to_string(class.join(&name).join("partition")) {
            Ok(n) => match n.trim().parse() {
                Ok(number) => parts.push(SysPart { name, number }),
                Err(_) => out.errors.push(ScanError {
                    path: class.join(&name).join("partition"),
                    message: format!("not a partition number: `{}`", n.trim()),
                }),
            },
            Err(e) if e.kind() == io::ErrorKind::NotFound => disks.push(name),
            Err(e) => out.errors.push(ScanError {
                path: class.join(&name).join("partition"),
                message: e.to_string(),
            }),
        }
    }
    disks.sort();
    for disk in &disks {
        scan_disk(root, disk, &mut parts, &mut out);
    }
    // partitions whose disk was not listed: still candidates, without a PARTUUID
    parts.sort_by(|a, b| a.name.cmp(&b.name));
    for p in parts {
        let fat = read_fat(root, &p.name, &mut out.errors);
        out.found.push(Candidate {
            dev: PathBuf::from("/dev").join(&p.name),
            disk: String::new(),
            number: Some(p.number),
            partuuid: None,
            fat,
        });
    }
    out
}

/// Examine one whole disk; the partitions of `parts` that belong to it are taken out.
fn scan_disk(root: &Path, disk: &str, parts: &mut Vec<SysPart>, out: &mut Scan) {
    let (mut mine, rest): (Vec<SysPart>, Vec<SysPart>) = std::mem::take(parts)
        .into_iter()
        .partition(|p| p.name == partition_name(disk, p.number));
    *parts = rest;
    mine.sort_by_key(|p| p.number);
    if mine.is_empty() {
        let fat = read_fat(root, disk, &mut out.errors);
        out.found.push(Candidate {
            dev: PathBuf::from("/dev").join(disk),
            disk: disk.to_string(),
            number: None,
            partuuid: None,
            fat,
        });
        return;
    }
    let ids = read_partuuids(root, disk, &mut out.errors);
    for p in mine {
        let fat = read_fat(root, &p.name, &mut out.errors);
        let partuuid = ids
            .iter()
            .find(|(n, _)| *n == p.number)
            .map(|(_, id)| id.clone());
        out.found.push(Candidate {
            dev: PathBuf::from("/dev").join(&p.name),
            disk: disk.to_string(),
            number: Some(p.number),
            partuuid,
            fat,
        });
    }
}

/// The disk's logical sector size from sysfs; 512 when unknown (GPT's LBA 1 is there).
fn sector_size(root: &Path, disk: &str) -> u64 {
    let path = root
        .join("sys/class/block")
        .join(disk)
        .join("queue/logical_block_size");
    fs::read_to_string(path)
        .ok()
        .and_then(|s| s.trim().parse::<u64>().ok())
        .filter(|n| n.is_power_of_two() && (512..=4096).contains(n))
        .unwrap_or(512)
}

/// (partition number, PARTUUID) for each entry of the disk's MBR or GPT.
fn read_partuuids(root: &Path, disk: &str, errors: &mut Vec<ScanError>) -> Vec<(u32, String)> {
    let dev = root.join("dev").join(disk);
    let mut fail = |e: io::Error| {
        errors.push(ScanError {
            path: dev.clone(),
            message: e.to_string(),
        });
        Vec::new()
    };
    let sector0 = match read_at(&dev, 0, 512) {
        Ok(s) => s,
        Err(e) => return fail(e),
    };
    let Some(mbr) = parse_mbr(&sector0) else {
        return Vec::new();
    };
    if !mbr.is_protective() {
        return mbr
            .partitions
            .iter()
            .map(|p| (p.number, mbr_partuuid(mbr.disk_signature, p.number)))
            .collect();
    }
    match read_gpt(&dev, sector_size(root, disk)) {
        Ok(Some(gpt)) => gpt
            .partitions
            .into_iter()
            .map(|p| (p.number, p.part_guid))
            .collect(),
        Ok(None) => Vec::new(),
        Err(e) => fail(e),
    }
}

/// Read and parse the primary GPT: LBA 1, then its entry array.
fn read_gpt(dev: &Path, sector: u64) -> io::Result<Option<Gpt>> {
    let header_bytes = read_at(dev, sector, 512)?;
    let Some(header) = parse_gpt_header(&header_bytes) else {
        return Ok(None);
    };
    let (Some(len), Some(offset)) = (header.entries_len(), header.entries_lba.checked_mul(sector))
    else {
        return Ok(None);
    };
    let entries = read_at(dev, offset, len)?;
    Ok(parse_gpt(&header_bytes, &entries))
}

/// The FAT file system on `root/dev/<name>`, if that is what it holds: for automount rules.
pub fn probe_fat(root: &Path, name: &str) -> Option<FatInfo> {
    read_fat(root, name, &mut Vec::new())
}

/// The FAT boot sector of `root/dev/<name>`, with the label from the root directory if any.
fn read_fat(root: &Path, name: &str, errors: &mut Vec<ScanError>) -> Option<FatInfo> {
    let dev = root.join("dev").join(name);
    let sector = match read_at(&dev, 0, 512) {
        Ok(s) => s,
        Err(e) => {
            errors.push(ScanError {
                path: dev,
                message: e.to_string(),
            });
            return None;
        }
    };
    let mut fat = parse_fat_boot_sector(&sector)?;
    // a root directory that cannot be read leaves the boot sector label: not worth an error
    if let Ok(dir) = read_upto(&dev, fat.root_dir_offset, fat.root_dir_len) {
        if let Some(label) = volume_label_in_dir(&dir) {
            fat.label = Some(label);
        }
    }
    Some(fat)
}

/// The candidate `spec` names.
///
/// `Auto` takes the first candidate with a FAT file system; `Label` and `Uuid` compare
/// case-insensitively with the FAT label and volume id; `PartUuid` with the partition id.
/// `Path` only matches a scanned candidate with that exact `/dev` path: when none does the
/// caller may still try to mount the path as given (a device this scan does not list).
pub fn select<'a>(cands: &'a [Candidate], spec: &DeviceSpec) -> Option<&'a Candidate> {
    let eq = |a: &Option<String>, b: &str| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b));
    cands.iter().find(|c| match spec {
        DeviceSpec::Auto => c.fat.is_some(),
        DeviceSpec::Label(l) => c.fat.as_ref().is_some_and(|f| eq(&f.label, l)),
        DeviceSpec::Uuid(u) => c
            .fat
            .as_ref()
            .is_some_and(|f| f.uuid.eq_ignore_ascii_case(u)),
        DeviceSpec::PartUuid(p) => eq(&c.partuuid, p),
        DeviceSpec::Path(p) => c.dev == Path::new(p),
        DeviceSpec::None => false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    // ---- sector builders ----

    fn put(buf: &mut [u8], at: usize, bytes: &[u8]) {
        buf[at..at + bytes.len()].copy_from_slice(bytes);
    }

    /// An MBR with the given (type, start, sectors) entries in slots 1.., and `boot` flags 0.
    fn mbr(sig: u32, entries: &[(u8, u32, u32)]) -> Vec<u8> {
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
    fn fat16(label: &[u8; 11], serial: u32, total: u16, fat_size: u16, state: u8) -> Vec<u8> {
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

    fn fat32(label: &[u8; 11], serial: u32, state: u8) -> Vec<u8> {
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

    fn guid_bytes(seed: u8) -> [u8; 16] {
        let mut g = [0u8; 16];
        for (i, b) in g.iter_mut().enumerate() {
            *b = seed.wrapping_add(i as u8);
        }
        g
    }

    /// (LBA1 header sector, entry array) for a GPT with the given (type, part guid) entries.
    fn gpt(entries: &[([u8; 16], [u8; 16])], count: u32) -> (Vec<u8>, Vec<u8>) {
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

    // ---- DeviceSpec ----

    #[test]
    fn device_spec_parse_and_display() {
        let ok = [
            ("auto", DeviceSpec::Auto, "auto"),
            ("AUTO", DeviceSpec::Auto, "auto"),
            ("none", DeviceSpec::None, "none"),
            ("LABEL=BOOT", DeviceSpec::Label("BOOT".into()), "LABEL=BOOT"),
            (
                "label=my boot",
                DeviceSpec::Label("my boot".into()),
                "LABEL=my boot",
            ),
            ("LABEL=A=B", DeviceSpec::Label("A=B".into()), "LABEL=A=B"),
            (
                "UUID=1234-ABCD",
                DeviceSpec::Uuid("1234-ABCD".into()),
                "UUID=1234-ABCD",
            ),
            (
                "UUID=1234-abcd",
                DeviceSpec::Uuid("1234-abcd".into()),
                "UUID=1234-abcd",
            ),
            (
                "PARTUUID=0badcafe-01",
                DeviceSpec::PartUuid("0badcafe-01".into()),
                "PARTUUID=0badcafe-01",
            ),
            (
                "PARTUUID=c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
                DeviceSpec::PartUuid("c12a7328-f81f-11d2-ba4b-00a0c93ec93b".into()),
                "PARTUUID=c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
            ),
            (
                "/dev/vda1",
                DeviceSpec::Path("/dev/vda1".into()),
                "/dev/vda1",
            ),
            (
                "/dev/disk/by-label/BOOT",
                DeviceSpec::Path("/dev/disk/by-label/BOOT".into()),
                "/dev/disk/by-label/BOOT",
            ),
        ];
        for (text, want, shown) in ok {
            let got: DeviceSpec = text.parse().unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), shown, "{text}");
            assert_eq!(
                shown.parse::<DeviceSpec>().unwrap(),
                want,
                "round trip {text}"
            );
        }
        let bad = [
            ("", "unknown form"),
            ("vda1", "unknown form"),
            ("LABEL=", "empty value"),
            ("SERIAL=1", "unknown form"),
            ("UUID=1234ABCD", "1234-ABCD"),
            ("UUID=1234-ABCG", "1234-ABCD"),
            ("PARTUUID=0badcafe", "not an MBR or GPT"),
            ("PARTUUID=0badcafe-1", "not an MBR or GPT"),
            (
                "PARTUUID=c12a7328-f81f-11d2-ba4b-00a0c93ec93",
                "not an MBR or GPT",
            ),
        ];
        for (text, why) in bad {
            let err = text.parse::<DeviceSpec>().unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("LABEL=<label>"), "{text}: {err}");
            assert!(
                err.starts_with(&format!("bad boot device `{text}`")),
                "{err}"
            );
        }
        assert_eq!(DeviceSpec::default(), DeviceSpec::Auto);
        assert_eq!(
            DeviceSpec::try_from("auto".to_string()),
            Ok(DeviceSpec::Auto)
        );
    }

    // ---- byte parsers ----

    #[test]
    fn crc32_known_vector() {
        assert_eq!(crc32(b"123456789"), 0xCBF4_3926);
        assert_eq!(crc32(b""), 0);
    }

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

    #[test]
    fn partition_names() {
        let cases = [
            ("vda", 1, "vda1"),
            ("sda", 12, "sda12"),
            ("mmcblk0", 1, "mmcblk0p1"),
            ("nvme0n1", 2, "nvme0n1p2"),
        ];
        for (disk, n, want) in cases {
            assert_eq!(partition_name(disk, n), want);
        }
    }

    // ---- scan + select on a fake root ----

    struct FakeRoot(PathBuf);

    impl FakeRoot {
        fn new(tag: &str) -> FakeRoot {
            let dir = std::env::temp_dir().join(format!(
                "boxinit-partition-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(dir.join("dev")).unwrap();
            fs::create_dir_all(dir.join("sys/class/block")).unwrap();
            FakeRoot(dir)
        }
        fn disk(&self, name: &str, image: &[u8]) {
            fs::create_dir_all(self.0.join("sys/class/block").join(name)).unwrap();
            fs::write(self.0.join("dev").join(name), image).unwrap();
        }
        fn part(&self, name: &str, number: u32, image: Option<&[u8]>) {
            let d = self.0.join("sys/class/block").join(name);
            fs::create_dir_all(&d).unwrap();
            fs::write(d.join("partition"), format!("{number}\n")).unwrap();
            if let Some(image) = image {
                fs::write(self.0.join("dev").join(name), image).unwrap();
            }
        }
    }

    impl Drop for FakeRoot {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    /// A FAT16 volume image: boot sector, FATs, then a root directory holding `dir_label`.
    fn fat16_volume(label: &[u8; 11], serial: u32, dir_label: Option<&[u8; 11]>) -> Vec<u8> {
        let mut v = fat16(label, serial, 40_000, 40, 0);
        v.resize((1 + 2 * 40) * 512 + 1024, 0);
        if let Some(l) = dir_label {
            let at = (1 + 2 * 40) * 512;
            put(&mut v, at, l);
            v[at + 11] = 0x08;
        }
        v
    }

    #[test]
    fn scan_mbr_disk_and_select() {
        let root = FakeRoot::new("mbr");
        let vol = fat16_volume(b"BOOT       ", 0x1234_ABCD, None);
        let mut image = mbr(0x0BAD_CAFE, &[(0x0E, 1, 81), (0x83, 200, 100)]);
        image.extend_from_slice(&vol);
        root.disk("vda", &image);
        root.part("vda1", 1, Some(&vol));
        root.part("vda2", 2, Some(&vec![0u8; 1024]));
        root.disk("loop0", &[]);
        root.disk("ram0", &[]);
        root.disk("zram0", &[]);
        // an unreadable disk: listed in sysfs, no /dev node
        fs::create_dir_all(root.0.join("sys/class/block/vdb")).unwrap();
        // a superfloppy: FAT on the whole disk, relabelled in the root directory only
        root.disk(
            "vdc",
            &fat16_volume(b"NO NAME    ", 0xFEED_0001, Some(b"CARD       ")),
        );

        let s = scan(&root.0);
        type Row = (String, Option<u32>, Option<String>, Option<String>);
        let summary: Vec<Row> = s
            .found
            .iter()
            .map(|c| {
                (
                    c.dev.display().to_string(),
                    c.number,
                    c.partuuid.clone(),
                    c.fat.as_ref().and_then(|f| f.label.clone()),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                (
                    "/dev/vda1".into(),
                    Some(1),
                    Some("0badcafe-01".into()),
                    Some("BOOT".into())
                ),
                (
                    "/dev/vda2".into(),
                    Some(2),
                    Some("0badcafe-02".into()),
                    None
                ),
                ("/dev/vdb".into(), None, None, None),
                ("/dev/vdc".into(), None, None, Some("CARD".into())),
            ]
        );
        assert!(s.found[1].fat.is_none());
        assert_eq!(s.found[0].disk, "vda");
        assert_eq!(s.errors.len(), 1, "{:?}", s.errors);
        assert!(s.errors[0].path.ends_with("dev/vdb"), "{}", s.errors[0]);

        let c = &s.found;
        let cases = [
            ("auto", Some("/dev/vda1")),
            ("LABEL=BOOT", Some("/dev/vda1")),
            ("LABEL=boot", Some("/dev/vda1")),
            ("LABEL=card", Some("/dev/vdc")),
            ("LABEL=NOPE", None),
            ("UUID=1234-abcd", Some("/dev/vda1")),
            ("UUID=FEED-0001", Some("/dev/vdc")),
            ("UUID=0000-0000", None),
            ("PARTUUID=0BADCAFE-02", Some("/dev/vda2")),
            ("PARTUUID=0badcafe-03", None),
            ("/dev/vdc", Some("/dev/vdc")),
            ("/dev/vda", None),
        ];
        for (spec, want) in cases {
            let spec: DeviceSpec = spec.parse().unwrap();
            let got = select(c, &spec).map(|c| c.dev.display().to_string());
            assert_eq!(got.as_deref(), want, "{spec}");
        }
    }

    #[test]
    fn scan_gpt_disk_mmc_names() {
        let root = FakeRoot::new("gpt");
        let (h, a) = gpt(
            &[
                (guid_bytes(1), guid_bytes(0x10)),
                (guid_bytes(2), guid_bytes(0x20)),
            ],
            4,
        );
        let mut image = mbr(0, &[(0xEE, 1, 0xFFFF_FFFF)]);
        image.extend_from_slice(&h);
        image.extend_from_slice(&a);
        root.disk("mmcblk0", &image);
        root.part("mmcblk0p2", 2, Some(&fat32(b"SECOND     ", 2, 0)));
        root.part("mmcblk0p1", 1, Some(&fat32(b"FIRST      ", 1, 0)));
        // a partition whose disk is not listed still counts, after the disks
        root.part("orphan1", 1, Some(&fat32(b"ORPHAN     ", 3, 0)));
        let s = scan(&root.0);
        let got: Vec<(String, Option<String>)> = s
            .found
            .iter()
            .map(|c| (c.dev.display().to_string(), c.partuuid.clone()))
            .collect();
        assert_eq!(
            got,
            vec![
                (
                    "/dev/mmcblk0p1".into(),
                    Some("13121110-1514-1716-1819-1a1b1c1d1e1f".into())
                ),
                (
                    "/dev/mmcblk0p2".into(),
                    Some("23222120-2524-2726-2829-2a2b2c2d2e2f".into())
                ),
                ("/dev/orphan1".into(), None),
            ]
        );
        assert!(s.errors.is_empty(), "{:?}", s.errors);
        let auto = select(&s.found, &DeviceSpec::Auto).unwrap();
        assert_eq!(auto.fat.as_ref().unwrap().label.as_deref(), Some("FIRST"));
        let spec = DeviceSpec::PartUuid("23222120-2524-2726-2829-2A2B2C2D2E2F".into());
        assert_eq!(select(&s.found, &spec).unwrap().number, Some(2));
        // a 4096-byte sector disk puts LBA 1 elsewhere: with the wrong size no GPT is found
        fs::create_dir_all(root.0.join("sys/class/block/mmcblk0/queue")).unwrap();
        fs::write(
            root.0
                .join("sys/class/block/mmcblk0/queue/logical_block_size"),
            "4096\n",
        )
        .unwrap();
        let s = scan(&root.0);
        assert_eq!(s.found[0].partuuid, None);
    }

    #[test]
    fn scan_missing_root_is_an_error_not_a_panic() {
        let s = scan(Path::new("/nonexistent/boxinit-root"));
        assert!(s.found.is_empty());
        assert_eq!(s.errors.len(), 1);
        let root = FakeRoot::new("empty");
        let s = scan(&root.0);
        assert!(s.found.is_empty() && s.errors.is_empty());
        assert_eq!(select(&s.found, &DeviceSpec::Auto), None);
    }
}
