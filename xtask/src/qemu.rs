//! Booting in QEMU: the machines and a boot's command line (`machine`), what a boot needs
//! made into a folder (`prepare`), and the `run` task (`run`: the console on this terminal).
//! Takes `media/` (disk images, the Pi bundle), `pack/` and `fetch/`.

pub mod machine;
pub mod prepare;
pub mod run;
