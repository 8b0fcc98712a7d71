//! Task `test`, everything in order (`suite`): the unit tests, the QEMU boot scenarios of
//! `tests/boot/` (`scenario`: a folder read; `boot`: one run and its verdict), the test SNTP
//! server they ask the time (`sntp_responder`), the NBD server of a disk that stops answering
//! (`nbd_hang`), the host-made Pi card a scenario can ask for (`host_card`), the Pi firmware's
//! stand-in for whole-bundle trials (`firmware`: two slots, `tryboot`), power cuts at
//! random instants and `fsck.fat` (`power_cuts`), README's size of `/init` against the build
//! (`readme_size`), and the fuzz targets (`fuzz`, also the `fuzz` task). Takes `qemu/` (boots,
//! consoles), `media/`, `pack/`, `fetch/`, and from `bench/` the instruction counts and the
//! coldplug-at-scale check it runs.

pub mod boot;
pub mod firmware;
pub mod fuzz;
pub mod host_card;
pub mod nbd_hang;
pub mod power_cuts;
pub mod readme_size;
pub mod scenario;
pub mod sntp_responder;
pub mod suite;
