//! Storage: the partition tables and FAT boot sectors of the disks (`partition`, pure), the
//! scan of the block devices that reads them (`scan`), reads that may hang kept off the loop
//! (`probe`), and finding and mounting the boot partition (`bootpart`).

pub mod bootpart;
pub mod partition;
pub mod probe;
pub mod scan;
