//! Fuzz target `uevent`: a netlink message (`ACTION@DEVPATH\0KEY=VALUE\0...`) through
//! `uevent::parse`, and the same bytes as a sysfs `uevent` file through `from_sysfs`; then
//! every accessor hotplug uses. Never a panic; a parsed event has a devpath.
#![no_main]

use boxinit::devices::uevent;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Some(event) = uevent::parse(data) {
        assert!(!event.devpath.is_empty());
        use_every_accessor(&event);
    }
    let text = String::from_utf8_lossy(data);
    let (devpath, file) = text.split_once('\n').unwrap_or(("/devices/x", &text));
    let event = uevent::from_sysfs(devpath, file);
    assert_eq!(event.action, uevent::Action::Add);
    use_every_accessor(&event);
});

fn use_every_accessor(event: &uevent::Uevent) {
    let _ = (event.subsystem(), event.modalias(), event.kernel_name());
    if let Some(name) = event.devname() {
        assert!(!name.is_empty());
    }
    let _ = event.dev_number();
}
