//! The block devices under a root (`sys/class/block` + `dev`): which disks and partitions
//! there are, their PARTUUIDs and FAT boot sectors read from the device nodes, and the one a
//! `[boot] device` names. It only reads files: no blkid, no mount, no waiting for devices to
//! appear (`bootpart` and `hotplug` do those); the bytes are parsed by `partition`.

use std::fmt;
use std::fs;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

use crate::config::DeviceSpec;
use crate::storage::partition::fat::{parse_fat_boot_sector, volume_label_in_dir, FatInfo};
use crate::storage::partition::gpt::{parse_gpt, parse_gpt_header, Gpt};
use crate::storage::partition::mbr::{mbr_partuuid, parse_mbr};

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
    use crate::storage::partition::testdisk::{fat16, fat32, gpt, guid_bytes, mbr, put};

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
