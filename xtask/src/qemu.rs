//! Booting in QEMU: the machines and a boot's command line (`machine`), what a boot needs
//! made into a folder (`prepare`), the `run` task (`run`: the console on this terminal), and
//! reading a boot's console (`console`: until the lines looked for appear; the monitor) and
//! cleaning and matching it (`transcript`). Takes `media/` (disk images, the Pi bundle),
//! `pack/` and `fetch/`; what a test expects of a boot is `test/`'s.

pub mod console;
pub mod machine;
pub mod prepare;
pub mod run;
pub mod transcript;
