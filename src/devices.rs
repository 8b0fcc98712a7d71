//! Devices and kernel modules: the module index and loader, coldplug at boot, hotplug from the
//! uevent socket, `[[device]]` rules and nodes, and automounting what appears.

pub mod aliasindex;
pub mod automount;
pub mod coldplug;
pub mod hotplug;
pub mod modindex;
pub mod modules;
pub mod rules;
pub mod uevent;
