//! Devices and kernel modules: the module index and loader, coldplug at boot, hotplug from the
//! uevent socket, `[[device]]` rules and nodes, and automounting what appears; once the box
//! runs, module loading on its own thread (`load_thread`).

pub mod aliasindex;
pub mod automount;
pub mod coldplug;
pub mod hotplug;
pub mod load_thread;
pub mod modindex;
pub mod modules;
pub mod rules;
pub mod uevent;
