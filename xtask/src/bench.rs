//! Measuring: task `bench` (`task`) boots boxinit against the seed's busybox script and a
//! floor (`overhead`, with the inits compared in `inits`), adds the small build, the whole
//! module tree and coldplug at scale (`extra`, `coldplug_scale`), the instruction counts of
//! the kernel-free phases (`callgrind`) and the Raspberry Pi row (`pi`), then writes
//! `BENCHMARKS.md` (`report`) and its chart (`chart`); `bench-net` times DHCP and SNTP (`net`).
//! Shared by these: a boot until a line (`boot`), the console's markers (`markers`) and the
//! statistics (`stats`). Takes `qemu/` (boots, consoles), `media/`, `pack/`, `fetch/`, and
//! from `test/` the scenario runner `net` boots scenario 101 with.

pub mod boot;
pub mod callgrind;
pub mod chart;
pub mod coldplug_scale;
pub mod extra;
pub mod inits;
pub mod markers;
pub mod net;
pub mod overhead;
pub mod pi;
pub mod report;
pub mod stats;
pub mod task;
