//! What the bytes at the start of a disk or partition say, parsed without I/O: DOS (MBR) and
//! GUID (GPT) partition tables and FAT boot sectors. The reads are `storage::scan`'s; xtask
//! checks the images it writes with these same parsers, and the fuzz target feeds them bytes.

pub mod fat;
pub mod gpt;
pub mod mbr;
#[cfg(test)]
pub mod testdisk;

pub use fat::{parse_fat_boot_sector, volume_label_in_dir, FatInfo, FatKind};
pub use gpt::{crc32, format_guid, parse_gpt, parse_gpt_header, Gpt, GptHeader, GptPart};
pub use mbr::{mbr_partuuid, parse_mbr, Mbr, MbrPart};
