//! The block devices under a root (`sys/class/block` + `dev`): which disks and partitions
//! there are (`list`, sysfs only), what one device's first sectors say (`look`: its FAT boot
//! sector, its PARTUUIDs), and whether a candidate is the one a `[boot] device` names
//! (`matches`). It only reads files: no blkid, no mount, no threads, no waiting for devices
//! (`probe`, `search` and `hotplug` do those); the bytes are parsed by `partition`.

use std::collections::BTreeMap;
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

/// A block device as sysfs lists it, before anything is read from it: a candidate for the
/// boot partition (a partition, or a disk without partitions).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Node {
    /// The kernel's name (`vda1`); its node is `/dev/<name>`.
    pub name: String,
    /// The whole disk it belongs to (`vda`), whose partition table holds its PARTUUID; empty
    /// when sysfs does not list that disk.
    pub disk: String,
    /// Partition number; None for an unpartitioned disk (a "superfloppy").
    pub number: Option<u32>,
}

/// The result of [`list`]: candidates in disk-name then partition-number order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Listing {
    pub nodes: Vec<Node>,
    /// sysfs entries that could not be read.
    pub errors: Vec<ScanError>,
}

/// What one read of a device's first sectors found ([`look`]). Which part counts depends on
/// what the device is: a partition's or a superfloppy's `fat`, a partitioned disk's
/// `partuuids`.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Look {
    /// What the FAT boot sector says, when there is one.
    pub fat: Option<FatInfo>,
    /// (partition number, PARTUUID) of each entry of an MBR or GPT.
    pub partuuids: Vec<(u32, String)>,
    /// What could not be read.
    pub errors: Vec<ScanError>,
}

/// A partition seen in sysfs: its name and number.
struct SysPart {
    name: String,
    number: u32,
}

/// Every disk and partition under `root/sys/class/block`, from sysfs alone (no device is
/// read: sysfs always answers, a device may not), in the order [`select`] prefers.
///
/// Which partitions exist is taken from sysfs (the kernel already parsed the tables). A disk
/// with no partitions in sysfs is a candidate itself, as a FAT file system without a
/// partition table; partitions whose disk is not listed come last.
pub fn list(root: &Path) -> Listing {
    let mut out = Listing::default();
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
    disks.sort_unstable();
    for disk in &disks {
        let (mut mine, rest): (Vec<SysPart>, Vec<SysPart>) = std::mem::take(&mut parts)
            .into_iter()
            .partition(|p| p.name == partition_name(disk, p.number));
        parts = rest;
        mine.sort_unstable_by_key(|p| p.number);
        if mine.is_empty() {
            out.nodes.push(Node {
                name: disk.clone(),
                disk: disk.clone(),
                number: None,
            });
        }
        out.nodes.extend(mine.into_iter().map(|p| Node {
            name: p.name,
            disk: disk.clone(),
            number: Some(p.number),
        }));
    }
    // partitions whose disk was not listed: still candidates, without a PARTUUID
    parts.sort_unstable_by(|a, b| a.name.cmp(&b.name));
    out.nodes.extend(parts.into_iter().map(|p| Node {
        name: p.name,
        disk: String::new(),
        number: Some(p.number),
    }));
    out
}

/// Reads the first sectors of `root/dev/<name>`: the FAT boot sector (and the label in its
/// root directory) and the MBR or GPT, whichever the bytes hold. This is the read that may
/// hang on a failing device: callers run it in a probe thread (`storage::probe`).
pub fn look(root: &Path, name: &str) -> Look {
    let dev = root.join("dev").join(name);
    let mut out = Look::default();
    let sector0 = match read_at(&dev, 0, 512) {
        Ok(s) => s,
        Err(e) => {
            out.errors.push(ScanError {
                path: dev,
                message: e.to_string(),
            });
            return out;
        }
    };
    out.fat = read_fat(&dev, &sector0);
    match read_partuuids(&dev, &sector0, sector_size(root, name)) {
        Ok(ids) => out.partuuids = ids,
        Err(e) => out.errors.push(ScanError {
            path: dev,
            message: e.to_string(),
        }),
    }
    out
}

/// The candidate `node` is, from its own [`look`] and its disk's (None: not read, or no disk).
pub fn candidate(node: &Node, own: &Look, disk: Option<&Look>) -> Candidate {
    let partuuid = match (node.number, disk) {
        (Some(number), Some(disk)) if !node.disk.is_empty() => disk
            .partuuids
            .iter()
            .find(|(n, _)| *n == number)
            .map(|(_, id)| id.clone()),
        _ => None,
    };
    Candidate {
        dev: PathBuf::from("/dev").join(&node.name),
        disk: node.disk.clone(),
        number: node.number,
        partuuid,
        fat: own.fat.clone(),
    }
}

/// Lists the block devices under `root` and reads each of them in turn, on this thread: every
/// candidate with what was learnt about it. For a root whose devices all answer (tests, the
/// fuzz target); the init reads through probes (`storage::search`).
pub fn scan(root: &Path) -> Scan {
    let listing = list(root);
    let mut out = Scan {
        found: Vec::new(),
        errors: listing.errors,
    };
    let mut looks: BTreeMap<&str, Look> = BTreeMap::new();
    for node in &listing.nodes {
        for name in [node.name.as_str(), node.disk.as_str()] {
            if !name.is_empty() && !looks.contains_key(name) {
                let look = look(root, name);
                out.errors.extend(look.errors.iter().cloned());
                looks.insert(name, look);
            }
        }
    }
    for node in &listing.nodes {
        let own = looks.get(node.name.as_str()).cloned().unwrap_or_default();
        out.found
            .push(candidate(node, &own, looks.get(node.disk.as_str())));
    }
    out
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

/// (partition number, PARTUUID) for each entry of the MBR or GPT that starts with `sector0`.
fn read_partuuids(dev: &Path, sector0: &[u8], sector: u64) -> io::Result<Vec<(u32, String)>> {
    let Some(mbr) = parse_mbr(sector0) else {
        return Ok(Vec::new());
    };
    if !mbr.is_protective() {
        return Ok(mbr
            .partitions
            .iter()
            .map(|p| (p.number, mbr_partuuid(mbr.disk_signature, p.number)))
            .collect());
    }
    Ok(match read_gpt(dev, sector)? {
        Some(gpt) => gpt
            .partitions
            .into_iter()
            .map(|p| (p.number, p.part_guid))
            .collect(),
        None => Vec::new(),
    })
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

/// The FAT file system whose boot sector is `sector0`, with the label from the root directory
/// if any.
fn read_fat(dev: &Path, sector0: &[u8]) -> Option<FatInfo> {
    let mut fat = parse_fat_boot_sector(sector0)?;
    // a root directory that cannot be read leaves the boot sector label: not worth an error
    if let Ok(dir) = read_upto(dev, fat.root_dir_offset, fat.root_dir_len) {
        if let Some(label) = volume_label_in_dir(&dir) {
            fat.label = Some(label);
        }
    }
    Some(fat)
}

/// Whether `c` is the boot partition `spec` names.
///
/// `Auto` takes any candidate with a FAT file system; `Label` and `Uuid` compare
/// case-insensitively with the FAT label and volume id; `PartUuid` with the partition id;
/// `Path` the `/dev` path exactly.
pub fn matches(c: &Candidate, spec: &DeviceSpec) -> bool {
    let eq = |a: &Option<String>, b: &str| a.as_deref().is_some_and(|a| a.eq_ignore_ascii_case(b));
    match spec {
        DeviceSpec::Auto => c.fat.is_some(),
        DeviceSpec::Label(l) => c.fat.as_ref().is_some_and(|f| eq(&f.label, l)),
        DeviceSpec::Uuid(u) => c
            .fat
            .as_ref()
            .is_some_and(|f| f.uuid.eq_ignore_ascii_case(u)),
        DeviceSpec::PartUuid(p) => eq(&c.partuuid, p),
        DeviceSpec::Path(p) => c.dev == Path::new(p),
        DeviceSpec::None => false,
    }
}

/// What a candidate holds, for messages: `FAT, label BOOT, UUID 1234-ABCD` or `not FAT`.
pub fn describe(c: &Candidate) -> String {
    match &c.fat {
        Some(fat) => format!(
            "FAT, label {}, UUID {}",
            fat.label.as_deref().unwrap_or("none"),
            fat.uuid
        ),
        None => "not FAT".to_string(),
    }
}

/// The first candidate `spec` names ([`matches`]), in the order of the list.
///
/// `Path` only matches a scanned candidate with that exact `/dev` path: when none does the
/// caller may still try to mount the path as given (a device this scan does not list).
pub fn select<'a>(cands: &'a [Candidate], spec: &DeviceSpec) -> Option<&'a Candidate> {
    cands.iter().find(|c| matches(c, spec))
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
