//! `[boot] device`: which device holds the boot partition, as written in `init.toml` or on the
//! command line (`auto`, `none`, `LABEL=`, `UUID=`, `PARTUUID=`, a `/dev` path), parsed and
//! shown. A config value only: matching it against the disks is `storage::scan`'s job.

use std::fmt;
use std::str::FromStr;

/// Which device holds the boot partition, as written in `init.toml` or on the command line.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum DeviceSpec {
    /// The first partition (or unpartitioned disk) holding a FAT file system.
    #[default]
    Auto,
    /// A FAT volume label, compared case-insensitively (`LABEL=BOOT`).
    Label(String),
    /// A FAT volume serial as blkid prints it (`UUID=1234-ABCD`).
    Uuid(String),
    /// A partition id: MBR `0badcafe-01` or a GPT partition GUID (`PARTUUID=...`).
    PartUuid(String),
    /// A device node path (`/dev/vda1`).
    Path(String),
    /// No boot partition: the box has an absolute path (in the initramfs, or on the host when
    /// boxinit runs as PID 1 of a PID namespace) and the config comes from the initramfs or
    /// `BOXINIT_CONFIG`.
    None,
}

/// What a device spec may look like, for error messages.
const SPEC_FORMS: &str = "expected `auto`, `none`, `LABEL=<label>`, `UUID=<XXXX-XXXX>`, \
     `PARTUUID=<xxxxxxxx-nn or GPT GUID>` or `/dev/<name>`";

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<DeviceSpec, String> {
        let bad = |why: &str| format!("bad boot device `{s}`: {why}; {SPEC_FORMS}");
        if s.eq_ignore_ascii_case("auto") {
            return Ok(DeviceSpec::Auto);
        }
        if s.eq_ignore_ascii_case("none") {
            return Ok(DeviceSpec::None);
        }
        if s.starts_with('/') {
            return Ok(DeviceSpec::Path(s.to_string()));
        }
        let Some((kind, value)) = s.split_once('=') else {
            return Err(bad("unknown form"));
        };
        if value.is_empty() {
            return Err(bad("empty value"));
        }
        match kind.to_ascii_uppercase().as_str() {
            "LABEL" => Ok(DeviceSpec::Label(value.to_string())),
            "UUID" if is_fat_uuid(value) => Ok(DeviceSpec::Uuid(value.to_string())),
            "UUID" => Err(bad("a FAT volume id looks like `1234-ABCD`")),
            "PARTUUID" if is_mbr_partuuid(value) || is_guid(value) => {
                Ok(DeviceSpec::PartUuid(value.to_string()))
            }
            "PARTUUID" => Err(bad("not an MBR or GPT partition id")),
            _ => Err(bad("unknown form")),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;
    fn try_from(s: String) -> Result<DeviceSpec, String> {
        s.parse()
    }
}

impl<'de> serde::Deserialize<'de> for DeviceSpec {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<DeviceSpec, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Label(l) => write!(f, "LABEL={l}"),
            DeviceSpec::Uuid(u) => write!(f, "UUID={u}"),
            DeviceSpec::PartUuid(p) => write!(f, "PARTUUID={p}"),
            DeviceSpec::Path(p) => write!(f, "{p}"),
            DeviceSpec::None => write!(f, "none"),
        }
    }
}

/// Whether `s` is hex digits in groups of the given lengths joined by `-`.
fn is_hex_groups(s: &str, lens: &[usize]) -> bool {
    let groups: Vec<&str> = s.split('-').collect();
    groups.len() == lens.len()
        && groups
            .iter()
            .zip(lens)
            .all(|(g, n)| g.len() == *n && g.chars().all(|c| c.is_ascii_hexdigit()))
}

fn is_fat_uuid(s: &str) -> bool {
    is_hex_groups(s, &[4, 4])
}

fn is_mbr_partuuid(s: &str) -> bool {
    is_hex_groups(s, &[8, 2])
}

fn is_guid(s: &str) -> bool {
    is_hex_groups(s, &[8, 4, 4, 4, 12])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn device_spec_parse_and_display() {
        let ok = [
            ("auto", DeviceSpec::Auto, "auto"),
            ("AUTO", DeviceSpec::Auto, "auto"),
            ("none", DeviceSpec::None, "none"),
            ("LABEL=BOOT", DeviceSpec::Label("BOOT".into()), "LABEL=BOOT"),
            (
                "label=my boot",
                DeviceSpec::Label("my boot".into()),
                "LABEL=my boot",
            ),
            ("LABEL=A=B", DeviceSpec::Label("A=B".into()), "LABEL=A=B"),
            (
                "UUID=1234-ABCD",
                DeviceSpec::Uuid("1234-ABCD".into()),
                "UUID=1234-ABCD",
            ),
            (
                "UUID=1234-abcd",
                DeviceSpec::Uuid("1234-abcd".into()),
                "UUID=1234-abcd",
            ),
            (
                "PARTUUID=0badcafe-01",
                DeviceSpec::PartUuid("0badcafe-01".into()),
                "PARTUUID=0badcafe-01",
            ),
            (
                "PARTUUID=c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
                DeviceSpec::PartUuid("c12a7328-f81f-11d2-ba4b-00a0c93ec93b".into()),
                "PARTUUID=c12a7328-f81f-11d2-ba4b-00a0c93ec93b",
            ),
            (
                "/dev/vda1",
                DeviceSpec::Path("/dev/vda1".into()),
                "/dev/vda1",
            ),
            (
                "/dev/disk/by-label/BOOT",
                DeviceSpec::Path("/dev/disk/by-label/BOOT".into()),
                "/dev/disk/by-label/BOOT",
            ),
        ];
        for (text, want, shown) in ok {
            let got: DeviceSpec = text.parse().unwrap();
            assert_eq!(got, want, "{text}");
            assert_eq!(got.to_string(), shown, "{text}");
            assert_eq!(
                shown.parse::<DeviceSpec>().unwrap(),
                want,
                "round trip {text}"
            );
        }
        let bad = [
            ("", "unknown form"),
            ("vda1", "unknown form"),
            ("LABEL=", "empty value"),
            ("SERIAL=1", "unknown form"),
            ("UUID=1234ABCD", "1234-ABCD"),
            ("UUID=1234-ABCG", "1234-ABCD"),
            ("PARTUUID=0badcafe", "not an MBR or GPT"),
            ("PARTUUID=0badcafe-1", "not an MBR or GPT"),
            (
                "PARTUUID=c12a7328-f81f-11d2-ba4b-00a0c93ec93",
                "not an MBR or GPT",
            ),
        ];
        for (text, why) in bad {
            let err = text.parse::<DeviceSpec>().unwrap_err();
            assert!(err.contains(why), "{text}: {err}");
            assert!(err.contains("LABEL=<label>"), "{text}: {err}");
            assert!(
                err.starts_with(&format!("bad boot device `{text}`")),
                "{err}"
            );
        }
        assert_eq!(DeviceSpec::default(), DeviceSpec::Auto);
        assert_eq!(
            DeviceSpec::try_from("auto".to_string()),
            Ok(DeviceSpec::Auto)
        );
    }
}
