//! Storage: partition tables and FAT boot sectors, and finding and mounting the boot partition.

pub mod bootpart;
pub mod partition;
pub mod probe;
