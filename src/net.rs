//! Network: Wi-Fi's supervised supplicant (`wifi.rs`).

pub mod wifi;
