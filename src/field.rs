//! The card in the field: what boxinit keeps on the boot partition across boots, and the
//! decisions made from it. A new `box` or `init.toml` copied as `NAME.new` is tried at the
//! next boot and promoted or reverted (`trial`, recognised as complete by `copy`); the box's
//! health judged (`health`); boots in a row without a healthy box counted and, past
//! `[update] boot_loop_limit`, the machine held in safe mode (the boot-loop brake); a report
//! written before every reboot and power-off (`report`, with `pstore`'s records) and the
//! previous boot's said at boot. What changes every boot lives in preallocated fixed-size
//! text files under `boxinit/` (`state`), overwritten in place inside short write windows
//! (`window`), through `Sys`. `card` is the boot's part, `run` the run's and the shutdown's;
//! the rest is pure. `bundle` tries a whole bundle (kernel, initramfs) in a second slot
//! through the Pi firmware's `tryboot`, where the kernel can ask for it.

pub mod bundle;
pub mod card;
pub mod copy;
pub mod files;
pub mod health;
pub mod pstore;
pub mod report;
pub mod run;
pub mod slots;
pub mod state;
pub mod trial;
pub mod watch;
pub mod window;
pub mod writer;
pub mod writes;

pub use card::Card;
