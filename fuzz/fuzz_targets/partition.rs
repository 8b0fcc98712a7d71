//! Fuzz target `partition`: the first sectors of a disk through the MBR, GPT and FAT parsers
//! as `storage::scan` uses them (sector 0 as an MBR and as a FAT boot sector, sector 1 as a
//! GPT header with the entry array after it, the root directory for a volume label). Never a
//! panic, and what they return is consistent (a GPT's entry array length is bounded). Then
//! the same bytes as a whole disk `vda` with a partition `vda1` in a fake root, through
//! `storage::scan` itself: the reads its parsers' offsets and lengths lead to.
#![no_main]

use std::path::PathBuf;
use std::sync::OnceLock;

use boxinit::storage::partition as p;
use boxinit::storage::scan;
use libfuzzer_sys::fuzz_target;

const PREFIX: &str = "boxinit-fuzz-partition-";

/// Fake roots of earlier runs whose process is gone (libFuzzer exits without cleaning up).
fn remove_stale(base: &std::path::Path) {
    for entry in std::fs::read_dir(base).into_iter().flatten().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix(PREFIX) {
            if !std::path::Path::new("/proc").join(pid).exists() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }
}

/// A fake root with `sys/class/block/{vda,vda1}` and `dev/`, made once per process.
fn root() -> &'static PathBuf {
    static ROOT: OnceLock<PathBuf> = OnceLock::new();
    ROOT.get_or_init(|| {
        let shm = std::path::Path::new("/dev/shm");
        // tmpfs: rewriting a file on ext4 each run flushes it (auto_da_alloc), 50x slower
        let base = if shm.is_dir() {
            shm.to_path_buf()
        } else {
            std::env::temp_dir()
        };
        remove_stale(&base);
        let root = base.join(format!("{PREFIX}{}", std::process::id()));
        let block = root.join("sys/class/block");
        std::fs::create_dir_all(block.join("vda")).unwrap();
        std::fs::create_dir_all(block.join("vda1")).unwrap();
        std::fs::write(block.join("vda1/partition"), "1\n").unwrap();
        std::fs::create_dir_all(root.join("dev")).unwrap();
        root
    })
}

fuzz_target!(|data: &[u8]| {
    let sector0 = data.get(..512).unwrap_or(data);
    if let Some(mbr) = p::parse_mbr(sector0) {
        assert!(mbr.partitions.len() <= 4);
        for part in &mbr.partitions {
            assert!((1..=4).contains(&part.number));
            let _ = p::mbr_partuuid(mbr.disk_signature, part.number);
        }
        let _ = mbr.is_protective();
    }
    if let Some(fat) = p::parse_fat_boot_sector(sector0) {
        assert!(fat.root_dir_len <= 64 * 1024);
        let start = usize::try_from(fat.root_dir_offset).unwrap_or(usize::MAX);
        if let Some(dir) = data.get(start..) {
            let dir = dir.get(..fat.root_dir_len).unwrap_or(dir);
            let _ = p::volume_label_in_dir(dir);
        }
    }
    let sector1 = data.get(512..1024).unwrap_or_default();
    if let Some(header) = p::parse_gpt_header(sector1) {
        if let Some(len) = header.entries_len() {
            assert!(len <= 1 << 20);
        }
        let entries = data.get(1024..).unwrap_or_default();
        if let Some(gpt) = p::parse_gpt(sector1, entries) {
            for part in &gpt.partitions {
                assert_eq!(part.part_guid.len(), 36);
            }
        }
    }
    let _ = p::volume_label_in_dir(data);
    let _ = p::format_guid(data);

    let root = root();
    std::fs::write(root.join("dev/vda"), data).unwrap();
    std::fs::write(root.join("dev/vda1"), data).unwrap();
    let scan = scan::scan(root);
    assert!(scan.found.len() == 1, "{scan:?}");
    for spec in [
        "auto",
        "LABEL=BOOT",
        "UUID=1234-ABCD",
        "PARTUUID=0badcafe-01",
    ] {
        let _ = scan::select(&scan.found, &spec.parse().unwrap());
    }
});
