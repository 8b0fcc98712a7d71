//! Task `image`: the boot disk — an MBR with one FAT partition labelled `BOOT` holding
//! `init.toml`, `box`, any other files, and boxinit's own files preallocated (`boxinit/state.txt`
//! and the report files, which the init then only overwrites in place) — plus readers for tests: the partition table and
//! the FAT boot sector (both with the init's own parsers), and files read back. The FAT layout
//! is the `fatfs` crate's; the MBR and GPT are written here.
//!
//! MBR (sector 0): bytes 0x1B8..0x1BC hold the disk signature (the kernel's PARTUUID is
//! `<signature as 8 hex digits>-<partition number as 2>`), 0x1BE..0x1FE the four 16-byte
//! partition entries (status, CHS first, type, CHS last, LBA start u32, sector count u32;
//! little endian), 0x1FE..0x200 the boot signature 0x55 0xAA.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use boxinit::storage::partition::{parse_fat_boot_sector, parse_mbr, FatInfo};

use crate::media::fat_time::{fat_date_time, BuildTime};

use crate::{display_path, format_size};

/// The partition's FAT volume label, for `boot.device = "LABEL=BOOT"`; boxinit's default,
/// `auto` (the first FAT partition), finds it whatever its label.
pub const LABEL: &str = "BOOT";
/// The FAT volume id: fixed, so images are reproducible; `UUID=B0C5-0001` finds it.
pub const VOLUME_ID: u32 = 0xB0C5_0001;
/// The MBR disk signature: fixed, so the partition is `PARTUUID=b0c50001-01`.
pub const DISK_SIGNATURE: u32 = 0xB0C5_0001;
/// The partition starts at 1 MiB, as partitioning tools align it.
pub const PARTITION_START_SECTOR: u32 = 2048;
pub const SECTOR: u64 = 512;
/// Default disk size.
pub const DEFAULT_SIZE_MIB: u32 = 64;
/// The GPT partition's unique GUID (`--gpt`): fixed, so it is `PARTUUID=` [`GPT_PARTUUID`].
const GPT_PART_GUID: [u8; 16] = [
    0x01, 0x00, 0xc5, 0xb0, 0x00, 0x00, 0x00, 0x40, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
];
/// [`GPT_PART_GUID`] as the kernel and blkid print it.
pub const GPT_PARTUUID: &str = "b0c50001-0000-4000-8000-000000000001";
/// The GPT disk GUID (`--gpt`).
const GPT_DISK_GUID: [u8; 16] = [
    0x01, 0x00, 0xc5, 0xb0, 0x00, 0x00, 0x00, 0x40, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
];
/// "Microsoft basic data", the type of a FAT partition on GPT (EBD0A0A2-B9E5-4433-87C0-68B6B72699C7).
const GPT_BASIC_DATA: [u8; 16] = [
    0xA2, 0xA0, 0xD0, 0xEB, 0xE5, 0xB9, 0x33, 0x44, 0x87, 0xC0, 0x68, 0xB6, 0xB7, 0x26, 0x99, 0xC7,
];
/// Entries in a GPT's array, each 128 bytes: 32 sectors, as every tool writes.
const GPT_ENTRIES: u32 = 128;

/// What goes on the boot partition.
#[derive(Clone, Debug, Default)]
pub struct ImageOptions {
    /// disk size in MiB (the partition fills all but the first MiB)
    pub size_mib: u32,
    /// copied as `box`
    pub box_path: Option<PathBuf>,
    /// copied as `init.toml`
    pub config: Option<PathBuf>,
    /// every file under this directory is copied, subdirectories too (before `box` and
    /// `init.toml`, which win over files of the same name)
    pub files: Option<PathBuf>,
    /// the FAT volume label (at most 11 characters); `None`: [`LABEL`]
    pub label: Option<String>,
    /// a GPT (protective MBR, primary and backup tables) instead of an MBR
    pub gpt: bool,
    /// leave out boxinit's own files (`boxinit/state.txt`, the reports), as on a card made
    /// by hand: the init then creates them once
    pub hand_made: bool,
    /// files copied to the top of the partition under their own names (the extras archive
    /// beside the initramfs, `pack/extras_archive.rs`); a file of `files` of the same name
    /// wins (a scenario's damaged archive)
    pub beside: Vec<PathBuf>,
}

/// What [`make`] wrote.
#[derive(Clone, Debug)]
pub struct Image {
    pub path: PathBuf,
    pub size: u64,
    pub fat_type: fatfs::FatType,
    /// MBR partition type: 0x0C FAT32 (LBA), 0x0E FAT16 (LBA), 0x01 FAT12
    pub partition_type: u8,
    /// paths on the partition, as written
    pub files: Vec<String>,
}

/// Writes the disk image to `out` (a sparse file where the host allows).
pub fn make(out: &Path, opts: &ImageOptions) -> Result<Image> {
    let size_mib = if opts.size_mib == 0 {
        DEFAULT_SIZE_MIB
    } else {
        opts.size_mib
    };
    if size_mib < 2 {
        bail!("--size {size_mib}: the disk needs at least 2 MiB (1 MiB before the partition)");
    }
    let disk_bytes = u64::from(size_mib) << 20;
    let part_start = u64::from(PARTITION_START_SECTOR) * SECTOR;
    // A GPT keeps its backup (entries and header, 33 sectors) at the end of the disk.
    let backup = if opts.gpt {
        u64::from(GPT_ENTRIES) * 128 + SECTOR
    } else {
        0
    };
    let part_bytes = disk_bytes - part_start - backup;

    let mut contents: Vec<(String, PathBuf)> = Vec::new();
    for source in &opts.beside {
        let name = source.file_name().unwrap_or_default().to_string_lossy();
        contents.push((name.into_owned(), source.clone()));
    }
    if let Some(dir) = &opts.files {
        let mut files = Vec::new();
        collect_files(dir, dir, &mut files)
            .with_context(|| format!("cannot list the files of {}", dir.display()))?;
        contents.retain(|(n, _)| !files.iter().any(|(f, _)| f.eq_ignore_ascii_case(n)));
        contents.extend(files);
    }
    for (name, source) in [("box", &opts.box_path), ("init.toml", &opts.config)] {
        if let Some(source) = source {
            contents.retain(|(n, _)| !n.eq_ignore_ascii_case(name));
            contents.push((name.to_string(), source.clone()));
        }
    }

    // boxinit's state and report files, preallocated at their fixed lengths (unless the
    // files given hold their own)
    let mut generated: Vec<(String, Vec<u8>)> = Vec::new();
    if !opts.hand_made {
        for (name, bytes) in boxinit::field::state::initial_files() {
            if !contents.iter().any(|(n, _)| n.eq_ignore_ascii_case(&name)) {
                generated.push((name, bytes));
            }
        }
    }

    let mut partition = io::Cursor::new(vec![0u8; part_bytes as usize]);
    let label_text = opts.label.as_deref().unwrap_or(LABEL).to_ascii_uppercase();
    if label_text.len() > 11 || !label_text.is_ascii() {
        bail!("the FAT label `{label_text}` must be at most 11 ASCII characters");
    }
    let mut label = [b' '; 11];
    label[..label_text.len()].copy_from_slice(label_text.as_bytes());
    fatfs::format_volume(
        &mut partition,
        fatfs::FormatVolumeOptions::new()
            .volume_label(label)
            .volume_id(VOLUME_ID),
    )
    .context("cannot format the FAT partition")?;
    partition.set_position(0);
    let fat_type = {
        // the files' dates: the build time (SOURCE_DATE_EPOCH when set), not 1980-00-00
        let stamp: &'static BuildTime = Box::leak(Box::new(BuildTime(fat_date_time(
            crate::pack::initramfs::build_time(),
        ))));
        let fs =
            fatfs::FileSystem::new(&mut partition, fatfs::FsOptions::new().time_provider(stamp))?;
        let read = contents.iter().map(|(name, source)| {
            std::fs::read(source)
                .with_context(|| format!("cannot read {}", source.display()))
                .map(|data| (name.clone(), data))
        });
        for item in read.chain(generated.iter().cloned().map(Ok)) {
            let (name, data) = item?;
            let root = fs.root_dir();
            let mut dir = root;
            let mut parts: Vec<&str> = name.split('/').collect();
            let file_name = parts.pop().unwrap_or_default();
            for part in parts {
                dir = match dir.open_dir(part) {
                    Ok(d) => d,
                    Err(_) => dir.create_dir(part)?,
                };
            }
            let mut file = dir
                .create_file(file_name)
                .with_context(|| format!("cannot create {name} on the FAT partition"))?;
            file.truncate()?;
            file.write_all(&data).with_context(|| {
                format!(
                    "cannot write {name} ({}): is --size big enough?",
                    format_size(data.len() as u64)
                )
            })?;
        }
        let fat_type = fs.fat_type();
        fs.unmount().context("cannot finish the FAT file system")?;
        fat_type
    };
    let mut partition = partition.into_inner();
    crate::media::fat_dots::repair(&mut partition)?;
    // fatfs writes 0 "hidden sectors" (sectors before the volume); record the real offset
    // as formatting tools do, in the boot sector and in FAT32's backup copy (sector 6).
    for sector in [0, 6] {
        let at = sector * SECTOR as usize + 0x1C;
        if sector == 0 || fat_type == fatfs::FatType::Fat32 {
            partition[at..at + 4].copy_from_slice(&PARTITION_START_SECTOR.to_le_bytes());
        }
    }
    let partition_type = match fat_type {
        fatfs::FatType::Fat12 => 0x01,
        fatfs::FatType::Fat16 => 0x0E,
        fatfs::FatType::Fat32 => 0x0C,
    };
    let (head, tail) = if opts.gpt {
        gpt(disk_bytes / SECTOR, u64::from(PARTITION_START_SECTOR))
    } else {
        let mbr = mbr(
            DISK_SIGNATURE,
            partition_type,
            PARTITION_START_SECTOR,
            (part_bytes / SECTOR) as u32,
        );
        (mbr.to_vec(), Vec::new())
    };
    write_sparse(out, disk_bytes, &head, &tail, part_start, &partition)
        .with_context(|| format!("cannot write {}", out.display()))?;
    Ok(Image {
        path: out.to_path_buf(),
        size: disk_bytes,
        fat_type,
        partition_type,
        files: contents
            .into_iter()
            .map(|(n, _)| n)
            .chain(generated.into_iter().map(|(n, _)| n))
            .collect(),
    })
}

/// One line for the user.
pub fn describe(image: &Image) -> String {
    format!(
        "image {}  {}, {:?} partition (type {:#04x}) labelled {LABEL}: {}",
        display_path(&image.path),
        format_size(image.size),
        image.fat_type,
        image.partition_type,
        if image.files.is_empty() {
            "empty".to_string()
        } else {
            image.files.join(" ")
        }
    )
}

/// A master boot record with one active partition (and no boot code).
pub fn mbr(signature: u32, partition_type: u8, start: u32, sectors: u32) -> [u8; 512] {
    let mut mbr = [0u8; 512];
    mbr[0x1B8..0x1BC].copy_from_slice(&signature.to_le_bytes());
    let entry = &mut mbr[0x1BE..0x1CE];
    entry[0] = 0x80; // active (the Pi and Linux ignore it; some BIOSes want one)
                     // CHS fields say "use LBA": 0xFE 0xFF 0xFF is the conventional "beyond 8 GiB" value.
    entry[1..4].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    entry[4] = partition_type;
    entry[5..8].copy_from_slice(&[0xFE, 0xFF, 0xFF]);
    entry[8..12].copy_from_slice(&start.to_le_bytes());
    entry[12..16].copy_from_slice(&sectors.to_le_bytes());
    mbr[0x1FE] = 0x55;
    mbr[0x1FF] = 0xAA;
    mbr
}

/// A GPT for a disk of `sectors` with one FAT partition from `start` to the last usable
/// sector: (protective MBR, header and entries from sector 0; backup entries and header that
/// end the disk). The layout of the UEFI spec, chapter 5, as the kernel's efi.c checks it.
pub fn gpt(sectors: u64, start: u64) -> (Vec<u8>, Vec<u8>) {
    let entries_sectors = u64::from(GPT_ENTRIES) * 128 / SECTOR;
    let last_usable = sectors - 2 - entries_sectors;
    let mut entries = vec![0u8; (u64::from(GPT_ENTRIES) * 128) as usize];
    entries[0..16].copy_from_slice(&GPT_BASIC_DATA);
    entries[16..32].copy_from_slice(&GPT_PART_GUID);
    entries[32..40].copy_from_slice(&start.to_le_bytes());
    entries[40..48].copy_from_slice(&last_usable.to_le_bytes());
    for (i, unit) in LABEL.encode_utf16().enumerate() {
        entries[56 + 2 * i..58 + 2 * i].copy_from_slice(&unit.to_le_bytes());
    }
    let entries_crc = boxinit::storage::partition::crc32(&entries);
    let header = |my_lba: u64, alternate: u64, entries_lba: u64| {
        let mut h = vec![0u8; SECTOR as usize];
        h[0..8].copy_from_slice(b"EFI PART");
        h[8..12].copy_from_slice(&0x0001_0000u32.to_le_bytes());
        h[12..16].copy_from_slice(&92u32.to_le_bytes());
        h[24..32].copy_from_slice(&my_lba.to_le_bytes());
        h[32..40].copy_from_slice(&alternate.to_le_bytes());
        h[40..48].copy_from_slice(&(2 + entries_sectors).to_le_bytes());
        h[48..56].copy_from_slice(&last_usable.to_le_bytes());
        h[56..72].copy_from_slice(&GPT_DISK_GUID);
        h[72..80].copy_from_slice(&entries_lba.to_le_bytes());
        h[80..84].copy_from_slice(&GPT_ENTRIES.to_le_bytes());
        h[84..88].copy_from_slice(&128u32.to_le_bytes());
        h[88..92].copy_from_slice(&entries_crc.to_le_bytes());
        let crc = boxinit::storage::partition::crc32(&h[..92]);
        h[16..20].copy_from_slice(&crc.to_le_bytes());
        h
    };
    let last = sectors - 1;
    let protective = mbr(0, 0xEE, 1, u32::try_from(last).unwrap_or(u32::MAX));
    let mut head = protective.to_vec();
    head[0x1BE] = 0; // a protective MBR's entry is not active
    head.extend(header(1, last, 2));
    head.extend(&entries);
    let mut tail = entries.clone();
    tail.extend(header(last, 1, last - entries_sectors));
    (head, tail)
}

/// Writes `head` at the start of the disk, `tail` at its end and the partition in between.
fn write_sparse(
    out: &Path,
    total: u64,
    head: &[u8],
    tail: &[u8],
    part_start: u64,
    partition: &[u8],
) -> io::Result<()> {
    let mut file = File::create(out)?;
    file.set_len(total)?; // a hole where nothing is written
    file.write_all(head)?;
    file.seek(SeekFrom::Start(total - tail.len() as u64))?;
    file.write_all(tail)?;
    const CHUNK: usize = 64 * 1024;
    for (i, chunk) in partition.chunks(CHUNK).enumerate() {
        if chunk.iter().any(|&b| b != 0) {
            file.seek(SeekFrom::Start(part_start + (i * CHUNK) as u64))?;
            file.write_all(chunk)?;
        }
    }
    file.sync_all()
}

fn collect_files(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> io::Result<()> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)?.collect::<io::Result<_>>()?;
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect_files(root, &path, out)?;
        } else {
            let name = path.strip_prefix(root).unwrap_or(&path);
            out.push((name.to_string_lossy().replace('\\', "/"), path));
        }
    }
    Ok(())
}

/// The first partition of a disk image's MBR.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Partition {
    pub partition_type: u8,
    /// in bytes from the start of the disk
    pub start: u64,
    pub len: u64,
    pub disk_signature: u32,
}

/// Reads the MBR's first used partition entry, with the init's own parser
/// (`boxinit::storage::partition::parse_mbr`).
pub fn read_partition(image: &Path) -> Result<Partition> {
    let mut sector = [0u8; 512];
    File::open(image)
        .and_then(|mut f| f.read_exact(&mut sector))
        .with_context(|| format!("cannot read the MBR of {}", image.display()))?;
    let mbr = parse_mbr(&sector)
        .with_context(|| format!("{} has no MBR (no 0x55AA signature)", image.display()))?;
    let first = mbr
        .partitions
        .first()
        .with_context(|| format!("{}: the partition table is empty", image.display()))?;
    Ok(Partition {
        partition_type: first.type_byte,
        start: u64::from(first.start_lba) * SECTOR,
        len: u64::from(first.sectors) * SECTOR,
        disk_signature: mbr.disk_signature,
    })
}

/// The boot sector of an image's first partition as the init reads it
/// (`boxinit::storage::partition::parse_fat_boot_sector`): the FAT type, label and serial,
/// and whether it was left dirty (Linux sets bit 0 of the state byte while the volume is
/// mounted read-write and clears it on a clean unmount: `fs/fat/inode.c`, `fat_set_state`).
pub fn fat_state(image: &Path) -> Result<FatInfo> {
    let partition = read_partition(image)?;
    let mut boot = [0u8; 512];
    let mut file = File::open(image)?;
    file.seek(SeekFrom::Start(partition.start))?;
    file.read_exact(&mut boot)
        .with_context(|| format!("cannot read the FAT boot sector of {}", image.display()))?;
    parse_fat_boot_sector(&boot)
        .with_context(|| format!("{}: the partition has no FAT boot sector", image.display()))
}

/// Reads `name` (`/`-separated, case-insensitive as FAT is) from an image's FAT partition;
/// `None` when there is no such file.
pub fn read_file(image: &Path, name: &str) -> Result<Option<Vec<u8>>> {
    with_fs(image, |fs| {
        let mut file = match fs.root_dir().open_file(name.trim_start_matches('/')) {
            Ok(file) => file,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut data = Vec::new();
        file.read_to_end(&mut data)?;
        Ok(Some(data))
    })
}

/// Every file path on an image's FAT partition, sorted.
pub fn list_files(image: &Path) -> Result<Vec<String>> {
    fn walk<T: fatfs::ReadWriteSeek>(
        dir: fatfs::Dir<T>,
        prefix: &str,
        out: &mut Vec<String>,
    ) -> io::Result<()> {
        for entry in dir.iter() {
            let entry = entry?;
            let name = entry.file_name();
            if name == "." || name == ".." {
                continue;
            }
            let path = format!("{prefix}{name}");
            if entry.is_dir() {
                walk(entry.to_dir(), &format!("{path}/"), out)?;
            } else {
                out.push(path);
            }
        }
        Ok(())
    }
    with_fs(image, |fs| {
        let mut out = Vec::new();
        walk(fs.root_dir(), "", &mut out)?;
        out.sort();
        Ok(out)
    })
}

/// Writes every file under `dir` onto an image's FAT partition (replacing files of the same
/// name, making folders), as a user copying files from a computer would: a multi-boot
/// scenario's `files-N/` before boot N.
pub fn write_files(image: &Path, dir: &Path) -> Result<Vec<String>> {
    let mut found = Vec::new();
    collect_files(dir, dir, &mut found)
        .with_context(|| format!("cannot list the files of {}", dir.display()))?;
    let partition = read_partition(image)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open(image)
        .with_context(|| format!("cannot open {}", image.display()))?;
    let slice = Slice::new(file, partition.start, partition.len)?;
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new().update_accessed_date(false))
        .with_context(|| format!("cannot read the FAT file system of {}", image.display()))?;
    for (name, source) in &found {
        let data =
            std::fs::read(source).with_context(|| format!("cannot read {}", source.display()))?;
        let mut parent = fs.root_dir();
        let mut parts: Vec<&str> = name.split('/').collect();
        let file_name = parts.pop().unwrap_or_default();
        for part in parts {
            parent = match parent.open_dir(part) {
                Ok(d) => d,
                Err(_) => parent.create_dir(part)?,
            };
        }
        let mut file = parent
            .create_file(file_name)
            .with_context(|| format!("cannot create {name} on {}", image.display()))?;
        file.truncate()?;
        file.write_all(&data)?;
    }
    fs.unmount().context("cannot finish the FAT file system")?;
    crate::media::fat_dots::repair_in_file(image, partition.start, partition.len)?;
    Ok(found.into_iter().map(|(n, _)| n).collect())
}

/// Opens the image's FAT partition read-only: fatfs's bounds want `Write` even for reading,
/// and a `File` opened for reading refuses writes at run time, so the image stays untouched.
fn with_fs<R>(
    image: &Path,
    f: impl FnOnce(&fatfs::FileSystem<Slice<File>>) -> Result<R>,
) -> Result<R> {
    let partition = read_partition(image)?;
    let file = File::open(image).with_context(|| format!("cannot open {}", image.display()))?;
    let slice = Slice::new(file, partition.start, partition.len)?;
    let fs = fatfs::FileSystem::new(slice, fatfs::FsOptions::new().update_accessed_date(false))
        .with_context(|| format!("cannot read the FAT file system of {}", image.display()))?;
    f(&fs)
}

/// A window `[start, start + len)` of a stream: what fatfs sees as its volume.
pub struct Slice<T> {
    inner: T,
    start: u64,
    len: u64,
    pos: u64,
}

impl<T: Seek> Slice<T> {
    pub fn new(mut inner: T, start: u64, len: u64) -> io::Result<Self> {
        inner.seek(SeekFrom::Start(start))?;
        Ok(Slice {
            inner,
            start,
            len,
            pos: 0,
        })
    }
}

impl<T: Read + Seek> Read for Slice<T> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        let n = (buf.len() as u64).min(left) as usize;
        let n = self.inner.read(&mut buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }
}

impl<T: Write + Seek> Write for Slice<T> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let left = self.len.saturating_sub(self.pos);
        if left == 0 && !buf.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                "write past the partition's end",
            ));
        }
        let n = (buf.len() as u64).min(left) as usize;
        let n = self.inner.write(&buf[..n])?;
        self.pos += n as u64;
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

impl<T: Seek> Seek for Slice<T> {
    fn seek(&mut self, to: SeekFrom) -> io::Result<u64> {
        let pos = match to {
            SeekFrom::Start(p) => Some(p),
            SeekFrom::Current(d) => self.pos.checked_add_signed(d),
            SeekFrom::End(d) => self.len.checked_add_signed(d),
        };
        let Some(pos) = pos.filter(|&p| p <= self.len) else {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "seek outside the partition",
            ));
        };
        self.inner.seek(SeekFrom::Start(self.start + pos))?;
        self.pos = pos;
        Ok(pos)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    use boxinit::storage::partition::FatKind;

    #[test]
    fn a_gpt_disk_reads_back_with_the_inits_parser() {
        use boxinit::storage::partition::{format_guid, parse_gpt, parse_mbr};
        let dir = std::env::temp_dir().join(format!("xtask-gpt-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let out = dir.join("gpt.img");
        make(
            &out,
            &ImageOptions {
                size_mib: 16,
                gpt: true,
                ..Default::default()
            },
        )
        .unwrap();
        let disk = std::fs::read(&out).unwrap();
        let mbr = parse_mbr(&disk[..512]).unwrap();
        assert!(mbr.is_protective());
        let sectors = disk.len() / 512;
        let gpt = parse_gpt(&disk[512..1024], &disk[1024..1024 + 128 * 128]).unwrap();
        assert_eq!(gpt.partitions.len(), 1);
        let part = &gpt.partitions[0];
        assert_eq!(part.part_guid, GPT_PARTUUID);
        assert_eq!(format_guid(&GPT_PART_GUID).unwrap(), GPT_PARTUUID);
        assert_eq!(part.first_lba, u64::from(PARTITION_START_SECTOR));
        assert_eq!(part.last_lba, sectors as u64 - 34);
        // The backup header at the last sector, pointing back at the primary.
        let backup = &disk[(sectors - 1) * 512..];
        let entries = &disk[(sectors - 33) * 512..(sectors - 1) * 512];
        assert!(parse_gpt(backup, entries).is_some());
        // The FAT volume inside it is as on an MBR disk.
        let start = PARTITION_START_SECTOR as usize * 512;
        let fat = boxinit::storage::partition::parse_fat_boot_sector(&disk[start..start + 512]);
        assert_eq!(fat.unwrap().label.as_deref(), Some("BOOT"));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn mbr_bytes() {
        let mbr = mbr(0x1234_5678, 0x0C, 2048, 129_024);
        assert_eq!(&mbr[0x1B8..0x1BC], &[0x78, 0x56, 0x34, 0x12]);
        assert_eq!(mbr[0x1BE], 0x80);
        assert_eq!(mbr[0x1C2], 0x0C);
        assert_eq!(&mbr[0x1C6..0x1CA], &2048u32.to_le_bytes());
        assert_eq!(&mbr[0x1CA..0x1CE], &129_024u32.to_le_bytes());
        assert!(
            mbr[0x1CE..0x1FE].iter().all(|&b| b == 0),
            "one partition only"
        );
        assert_eq!(&mbr[0x1FE..], &[0x55, 0xAA]);
        assert!(mbr[..0x1B8].iter().all(|&b| b == 0), "no boot code");
    }

    #[test]
    fn image_round_trip() {
        let dir = crate::tools::testing::temp_dir("image");
        let files = dir.join("files");
        std::fs::create_dir_all(files.join("overlays")).unwrap();
        std::fs::write(files.join("config.txt"), "arm_64bit=1\n").unwrap();
        std::fs::write(files.join("overlays/a.dtbo"), [1, 2, 3]).unwrap();
        std::fs::write(files.join("box"), "replaced by --box").unwrap();
        let box_path = dir.join("mybox");
        let big: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&box_path, &big).unwrap();
        let config = dir.join("init.toml");
        std::fs::write(&config, "[box]\nrestart = \"never\"\n").unwrap();
        let out = dir.join("disk.img");
        let image = make(
            &out,
            &ImageOptions {
                size_mib: 64,
                box_path: Some(box_path),
                config: Some(config),
                files: Some(files),
                label: None,
                gpt: false,
                hand_made: false,
                beside: Vec::new(),
            },
        )
        .unwrap();
        assert_eq!(image.size, 64 << 20);
        assert_eq!(std::fs::metadata(&out).unwrap().len(), 64 << 20);
        assert_eq!(image.fat_type, fatfs::FatType::Fat16);
        assert_eq!(image.partition_type, 0x0E);

        let partition = read_partition(&out).unwrap();
        assert_eq!(
            partition,
            Partition {
                partition_type: 0x0E,
                start: 2048 * 512,
                len: (64 << 20) - 2048 * 512,
                disk_signature: DISK_SIGNATURE,
            }
        );
        let mut sector = [0u8; 512];
        File::open(&out).unwrap().read_exact(&mut sector).unwrap();
        assert_eq!(sector[0x1BE], 0x80, "the partition is marked active");
        let state = fat_state(&out).unwrap();
        assert!(!state.dirty, "{state:?}");
        assert_eq!(state.kind, FatKind::Fat16);
        assert_eq!(state.label.as_deref(), Some("BOOT"));
        assert_eq!(state.serial, VOLUME_ID);

        assert_eq!(read_file(&out, "box").unwrap().unwrap(), big);
        assert_eq!(
            read_file(&out, "INIT.TOML").unwrap().unwrap(),
            b"[box]\nrestart = \"never\"\n"
        );
        assert_eq!(
            read_file(&out, "overlays/a.dtbo").unwrap().unwrap(),
            [1, 2, 3]
        );
        assert_eq!(read_file(&out, "missing").unwrap(), None);
        assert_eq!(
            list_files(&out).unwrap(),
            [
                "box",
                "boxinit/report-1.txt",
                "boxinit/report-2.txt",
                "boxinit/report-3.txt",
                "boxinit/report-4.txt",
                "boxinit/state.txt",
                "config.txt",
                "init.toml",
                "overlays/a.dtbo"
            ]
        );
        // the files are dated by the build time, not FAT's zero (1980-00-00)
        let year = with_fs(&out, |fs| {
            let entry = fs
                .root_dir()
                .iter()
                .find_map(|e| e.ok().filter(|e| e.is_file()));
            Ok(entry.unwrap().modified().date.year)
        })
        .unwrap();
        assert!(year >= 2025, "{year}");
        // the label is in the root directory too, where Linux (blkid, vfat) looks first
        let fs_label = with_fs(&out, |fs| Ok(fs.read_volume_label_from_root_dir()?)).unwrap();
        assert_eq!(fs_label.as_deref().map(str::trim_end), Some("BOOT"));

        // a set state bit reads back as dirty
        let mut bytes = std::fs::read(&out).unwrap();
        bytes[partition.start as usize + 0x25] |= 1;
        std::fs::write(&out, &bytes).unwrap();
        assert!(fat_state(&out).unwrap().dirty);
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn big_disks_are_fat32_and_images_are_reproducible() {
        let dir = crate::tools::testing::temp_dir("image32");
        let opts = ImageOptions {
            size_mib: 600,
            ..ImageOptions::default()
        };
        let a = make(&dir.join("a.img"), &opts).unwrap();
        assert_eq!(a.fat_type, fatfs::FatType::Fat32);
        assert_eq!(read_partition(&a.path).unwrap().partition_type, 0x0C);
        let state = fat_state(&a.path).unwrap();
        assert!(
            state.kind == FatKind::Fat32 && !state.dirty && state.label.as_deref() == Some("BOOT"),
            "{state:?}"
        );
        let small = ImageOptions {
            size_mib: 8,
            ..ImageOptions::default()
        };
        let (b, c) = (
            make(&dir.join("b.img"), &small).unwrap(),
            make(&dir.join("c.img"), &small).unwrap(),
        );
        assert_eq!(
            std::fs::read(&b.path).unwrap(),
            std::fs::read(&c.path).unwrap()
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// A folder on the image is one `fsck.fat` (dosfstools) accepts: fatfs writes long-name
    /// entries before `.` and `..`, which `media/fat_dots.rs` repairs.
    #[test]
    fn fsck_accepts_the_folders() {
        let dir = std::env::temp_dir().join(format!("xtask-fsck-{}", std::process::id()));
        let files = dir.join("files");
        std::fs::create_dir_all(files.join("overlays")).unwrap();
        std::fs::write(files.join("overlays/a.dtbo"), [1, 2, 3]).unwrap();
        let disk = dir.join("d.img");
        let opts = ImageOptions {
            size_mib: 16,
            files: Some(files.clone()),
            ..Default::default()
        };
        make(&disk, &opts).unwrap();
        let partition = read_partition(&disk).unwrap();
        let mut bytes = vec![0u8; partition.len as usize];
        let mut f = File::open(&disk).unwrap();
        f.seek(SeekFrom::Start(partition.start)).unwrap();
        f.read_exact(&mut bytes).unwrap();
        let volume = dir.join("volume.img");
        std::fs::write(&volume, &bytes).unwrap();
        let out = ["fsck.fat", "/usr/sbin/fsck.fat", "/sbin/fsck.fat"]
            .iter()
            .find_map(|p| {
                std::process::Command::new(p)
                    .arg("-n")
                    .arg(&volume)
                    .output()
                    .ok()
            })
            .expect("fsck.fat: apt-get install dosfstools");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        assert!(out.status.success(), "{text}");
        assert!(
            !text.contains("Expected a valid") && !text.contains("Bad short file name"),
            "{text}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
