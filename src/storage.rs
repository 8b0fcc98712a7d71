//! Storage: the partition tables and FAT boot sectors of the disks (`partition`, pure), the
//! listing of the block devices and the reads of each (`scan`), reads that may hang kept off
//! the loop, a thread per device (`probe`), the search for the boot partition over those
//! reads (`search`), finding and mounting the boot partition (`bootpart`), and the archives
//! on it unpacked once the box can start (`extras`).

pub mod bootpart;
pub mod extras;
pub mod partition;
pub mod probe;
pub mod scan;
pub mod search;
