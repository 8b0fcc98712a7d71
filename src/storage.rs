//! Storage: the partition tables and FAT boot sectors of the disks (`partition`, pure), the
//! scan of the block devices that reads them (`scan`), reads that may hang kept off the loop
//! (`probe`), finding and mounting the boot partition (`bootpart`), and the archives on it
//! unpacked once the box can start (`extras`).

pub mod bootpart;
pub mod extras;
pub mod partition;
pub mod probe;
pub mod scan;
