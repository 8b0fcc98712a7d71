//! The network programs' protocols, pure: DHCP messages (`dhcp`) and the client's lease state
//! machine (`dhcp_state`), the IPv4/UDP headers of its broadcasts from 0.0.0.0 (`ipv4`), and
//! SNTP packets and offsets (`sntp`). Only `boxinit-net` runs them (never PID 1: nothing parsed
//! from the network runs there); they live in the library so the fuzz targets and the unit
//! tests reach them, and xtask's test responder answers with `sntp`.

pub mod dhcp;
pub mod dhcp_state;
pub mod ipv4;
pub mod sntp;
