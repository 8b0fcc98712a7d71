//! Kernel uevent messages, as read from the netlink socket (`ACTION@DEVPATH\0KEY=VALUE\0...`)
//! or from a device's `uevent` file in sysfs (`KEY=VALUE\n...`), parsed into a [`Uevent`].
//! Pure: reading the socket is `events`' job, acting on a message is `hotplug`'s.

use std::collections::BTreeMap;

/// What happened to the device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Add,
    Remove,
    Change,
    Move,
    Bind,
    Unbind,
    Online,
    Offline,
    /// An action this version does not know.
    Other(String),
}

impl Action {
    fn parse(word: &str) -> Action {
        match word {
            "add" => Action::Add,
            "remove" => Action::Remove,
            "change" => Action::Change,
            "move" => Action::Move,
            "bind" => Action::Bind,
            "unbind" => Action::Unbind,
            "online" => Action::Online,
            "offline" => Action::Offline,
            other => Action::Other(other.to_string()),
        }
    }
}

/// One device event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Uevent {
    pub action: Action,
    /// `DEVPATH`, under `/sys` (`/devices/pci0000:00/0000:00:04.0/virtio1`).
    pub devpath: String,
    /// Every `KEY=VALUE` of the message, `ACTION` and `DEVPATH` included.
    pub vars: BTreeMap<String, String>,
}

impl Uevent {
    /// A variable of the message (`SUBSYSTEM`, `MODALIAS`, `DEVNAME`, ...).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.vars.get(key).map(String::as_str)
    }

    /// `SUBSYSTEM` (`block`, `misc`, `virtio`, ...), empty when absent.
    pub fn subsystem(&self) -> &str {
        self.get("SUBSYSTEM").unwrap_or("")
    }

    /// `MODALIAS`, the string matched against `modules.alias`.
    pub fn modalias(&self) -> Option<&str> {
        self.get("MODALIAS").filter(|m| !m.is_empty())
    }

    /// `DEVNAME` relative to `/dev` (`vda1`, `input/event0`), for devices with a node.
    pub fn devname(&self) -> Option<&str> {
        self.get("DEVNAME")
            .map(|n| n.trim_start_matches("/dev/"))
            .filter(|n| !n.is_empty())
    }

    /// The device's name in the kernel: the last component of `DEVPATH` (`vda1`, `hwrng`).
    pub fn kernel_name(&self) -> &str {
        self.devpath.rsplit('/').next().unwrap_or("")
    }

    /// `MAJOR:MINOR`, for devices with a node.
    pub fn dev_number(&self) -> Option<(u32, u32)> {
        let major = self.get("MAJOR")?.parse().ok()?;
        let minor = self.get("MINOR")?.parse().ok()?;
        Some((major, minor))
    }
}

/// Whether a raw netlink message is about a block device (`SUBSYSTEM=block`): the only kind
/// that can change what a scan of the block devices finds. Without parsing the rest.
pub fn is_block(message: &[u8]) -> bool {
    message
        .split(|&b| b == 0)
        .any(|field| field == b"SUBSYSTEM=block")
}

/// Parses a netlink message from the kernel. None for anything else (a `libudev` message, a
/// truncated or empty one): the socket is bound to the kernel's group, but a message that
/// does not look right is dropped rather than trusted.
pub fn parse(message: &[u8]) -> Option<Uevent> {
    let mut parts = message.split(|&b| b == 0);
    let header = std::str::from_utf8(parts.next()?).ok()?;
    let (action, devpath) = header.split_once('@')?;
    let mut vars = BTreeMap::new();
    for part in parts {
        let Ok(text) = std::str::from_utf8(part) else {
            continue;
        };
        if let Some((key, value)) = text.split_once('=') {
            vars.insert(key.to_string(), value.to_string());
        }
    }
    let action = vars.get("ACTION").map_or(action, String::as_str);
    let devpath = vars.get("DEVPATH").map_or(devpath, String::as_str);
    if devpath.is_empty() {
        return None;
    }
    Some(Uevent {
        action: Action::parse(action),
        devpath: devpath.to_string(),
        vars,
    })
}

/// Parses a sysfs `uevent` file (`MAJOR=253\nMINOR=1\nDEVNAME=vda1\n...`) of the device at
/// `devpath`, as an `add` event: what coldplug and the device rules replay at boot.
pub fn from_sysfs(devpath: &str, text: &str) -> Uevent {
    let mut vars: BTreeMap<String, String> = text
        .lines()
        .filter_map(|l| l.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    vars.insert("ACTION".into(), "add".into());
    vars.insert("DEVPATH".into(), devpath.to_string());
    Uevent {
        action: Action::Add,
        devpath: devpath.to_string(),
        vars,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg(parts: &[&str]) -> Vec<u8> {
        parts.join("\0").into_bytes()
    }

    #[test]
    fn block_events_are_told_from_the_others() {
        let disk = msg(&[
            "add@/devices/virtio0/block/vda",
            "ACTION=add",
            "SUBSYSTEM=block",
        ]);
        let module = msg(&["add@/module/fat", "ACTION=add", "SUBSYSTEM=module"]);
        let lookalike = msg(&["add@/x", "SUBSYSTEM=blockish", "DEVNAME=SUBSYSTEM=block2"]);
        assert!(is_block(&disk));
        assert!(!is_block(&module));
        assert!(!is_block(&lookalike));
        assert!(!is_block(b""));
    }

    #[test]
    fn kernel_messages() {
        let m = msg(&[
            "add@/devices/pci0000:00/0000:00:04.0/virtio1",
            "ACTION=add",
            "DEVPATH=/devices/pci0000:00/0000:00:04.0/virtio1",
            "SUBSYSTEM=virtio",
            "MODALIAS=virtio:d00000004v00001AF4",
            "SEQNUM=1234",
            "",
        ]);
        let e = parse(&m).unwrap();
        assert_eq!(e.action, Action::Add);
        assert_eq!(e.devpath, "/devices/pci0000:00/0000:00:04.0/virtio1");
        assert_eq!(e.subsystem(), "virtio");
        assert_eq!(e.modalias(), Some("virtio:d00000004v00001AF4"));
        assert_eq!(e.kernel_name(), "virtio1");
        assert_eq!(e.devname(), None);
        assert_eq!(e.get("SEQNUM"), Some("1234"));

        let m = msg(&[
            "remove@/devices/virtual/misc/hwrng",
            "ACTION=remove",
            "DEVPATH=/devices/virtual/misc/hwrng",
            "SUBSYSTEM=misc",
            "MAJOR=10",
            "MINOR=183",
            "DEVNAME=hwrng",
            "DEVMODE=0600",
        ]);
        let e = parse(&m).unwrap();
        assert_eq!(e.action, Action::Remove);
        assert_eq!(e.devname(), Some("hwrng"));
        assert_eq!(e.dev_number(), Some((10, 183)));
        assert_eq!(e.modalias(), None);
    }

    #[test]
    fn odd_messages() {
        // libudev's re-broadcasts have a binary header and no `@`
        assert_eq!(parse(b"libudev\0\xfe\xed\xca\xfe"), None);
        assert_eq!(parse(b""), None);
        assert_eq!(parse(b"add@"), None);
        // a header alone is enough; unknown actions are kept; junk fields are skipped
        let e = parse(b"frobnicate@/devices/x\0NOEQUALS\0\xff\xfe\0MODALIAS=\0").unwrap();
        assert_eq!(e.action, Action::Other("frobnicate".into()));
        assert_eq!(e.devpath, "/devices/x");
        assert_eq!(e.modalias(), None);
        assert_eq!(e.subsystem(), "");
        assert_eq!(e.dev_number(), None);
        let e = parse(b"bind@/devices/y\0MAJOR=x\0MINOR=1\0DEVNAME=/dev/sda").unwrap();
        assert_eq!(e.action, Action::Bind);
        assert_eq!(e.dev_number(), None);
        assert_eq!(e.devname(), Some("sda"));
    }

    #[test]
    fn sysfs_uevent_files() {
        let e = from_sysfs(
            "/devices/pci0000:00/0000:00:05.0/virtio2/block/vda/vda1",
            "MAJOR=253\nMINOR=1\nDEVNAME=vda1\nDEVTYPE=partition\nDISKSEQ=2\nPARTN=1\n",
        );
        assert_eq!(e.action, Action::Add);
        assert_eq!(e.devname(), Some("vda1"));
        assert_eq!(e.dev_number(), Some((253, 1)));
        assert_eq!(e.get("DEVTYPE"), Some("partition"));
        assert_eq!(e.kernel_name(), "vda1");
    }
}
