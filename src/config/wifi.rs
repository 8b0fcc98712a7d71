//! `[wifi]` in `init.toml`: which wireless interface, and either a `wpa_supplicant.conf` on
//! the boot partition or a network given by `ssid`/`psk`. Schema, validation and the
//! `wpa_supplicant.conf` text for an ssid/psk; `net/wifi.rs` runs the supplicant.

use serde::{Deserialize, Deserializer};

/// `[wifi]`: off unless `ssid` or `config` is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Wifi {
    /// The wireless interface (the first one a driver makes is `wlan0`).
    pub interface: String,
    /// A `wpa_supplicant.conf` (wpa_supplicant.conf(5)), relative to the boot partition unless
    /// absolute: every network and option it can say.
    pub config: Option<String>,
    /// The network's name, 1 to 32 bytes; boxinit writes the supplicant's config for it.
    #[serde(deserialize_with = "ssid")]
    pub ssid: Option<String>,
    /// WPA2 passphrase: 8 to 63 printable ASCII characters, or 64 hex digits (a raw key).
    /// None: an open network.
    #[serde(deserialize_with = "psk")]
    pub psk: Option<String>,
    /// ISO 3166 country code (`"DE"`) for the radio's channels and power; None: the world
    /// regulatory domain (fewer channels).
    #[serde(deserialize_with = "country")]
    pub country: Option<String>,
    /// Get an address by DHCP once associated (the interface joins `[network] dhcp`).
    pub dhcp: bool,
    /// The supplicant program, in the initramfs (`cargo xtask initramfs --wifi` packs
    /// Debian's there).
    pub supplicant: String,
    /// The supplicant's driver interface (`-D`): `nl80211` for every mac80211/cfg80211 driver.
    pub driver: String,
}

impl Default for Wifi {
    fn default() -> Wifi {
        Wifi {
            interface: "wlan0".into(),
            config: None,
            ssid: None,
            psk: None,
            country: None,
            dhcp: true,
            supplicant: "/sbin/wpa_supplicant".into(),
            driver: "nl80211".into(),
        }
    }
}

/// Where the supplicant's configuration comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source<'a> {
    /// a file of the user's
    File(&'a str),
    /// a network from `ssid`/`psk`: boxinit writes the file
    Network,
}

impl Wifi {
    /// What the section asks for: None when Wi-Fi is off (no `ssid`, no `config`), an error
    /// when both are set.
    pub fn source(&self) -> Result<Option<Source<'_>>, String> {
        match (&self.config, &self.ssid) {
            (Some(_), Some(_)) => Err(
                "[wifi] has both `config` and `ssid`: give a wpa_supplicant.conf, or ssid/psk, \
                 not both"
                    .into(),
            ),
            (Some(path), None) => Ok(Some(Source::File(path))),
            (None, Some(_)) => Ok(Some(Source::Network)),
            (None, None) if self.psk.is_some() => {
                Err("[wifi] has a `psk` but no `ssid`: name the network".into())
            }
            (None, None) => Ok(None),
        }
    }

    /// The `wpa_supplicant.conf` for `ssid`/`psk` (None without an ssid). The SSID is written
    /// in hex, so no character of it needs quoting; the passphrase is quoted (the supplicant
    /// reads up to the last quote, and a passphrase has no newline: see [`check_psk`]).
    pub fn supplicant_conf(&self) -> Option<String> {
        let ssid = self.ssid.as_ref()?;
        let hex: String = ssid.bytes().map(|b| format!("{b:02x}")).collect();
        let mut text = String::from(
            "# written by boxinit from init.toml's [wifi]\nctrl_interface=/run/wpa_supplicant\n",
        );
        if let Some(country) = &self.country {
            text += &format!("country={country}\n");
        }
        text += &format!("network={{\n\tssid={hex}\n\tscan_ssid=1\n");
        match &self.psk {
            Some(psk) if psk.len() == 64 => text += &format!("\tpsk={psk}\n"),
            Some(psk) => text += &format!("\tpsk=\"{psk}\"\n"),
            None => text += "\tkey_mgmt=NONE\n",
        }
        text += "}\n";
        Some(text)
    }
}

/// An SSID is 1 to 32 bytes (IEEE 802.11).
pub fn check_ssid(ssid: &str) -> Result<(), String> {
    match ssid.len() {
        1..=32 => Ok(()),
        n => Err(format!("an ssid is 1 to 32 bytes, `{ssid}` has {n}")),
    }
}

/// A WPA passphrase is 8 to 63 printable ASCII characters; 64 hex digits are the raw key.
pub fn check_psk(psk: &str) -> Result<(), String> {
    let printable = psk.bytes().all(|b| (b' '..=b'~').contains(&b));
    let hex = psk.len() == 64 && psk.bytes().all(|b| b.is_ascii_hexdigit());
    match psk.len() {
        _ if hex => Ok(()),
        8..=63 if printable => Ok(()),
        8..=63 => Err("a psk is printable ASCII only (no newline, no accents)".into()),
        n => Err(format!(
            "a psk is 8 to 63 characters (or 64 hex digits), this one has {n}"
        )),
    }
}

/// A country is two ASCII capitals (ISO 3166-1 alpha-2), as the supplicant wants them.
pub fn check_country(country: &str) -> Result<(), String> {
    if country.len() == 2 && country.bytes().all(|b| b.is_ascii_uppercase()) {
        Ok(())
    } else {
        Err(format!(
            "`{country}` is not a country code: two capitals, e.g. \"DE\", \"US\", \"GB\""
        ))
    }
}

fn checked<'de, D: Deserializer<'de>>(
    d: D,
    check: fn(&str) -> Result<(), String>,
) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    check(&s).map_err(serde::de::Error::custom)?;
    Ok(Some(s))
}

fn ssid<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, check_ssid)
}

fn psk<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, check_psk)
}

fn country<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    checked(d, check_country)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wifi(text: &str) -> Result<Wifi, String> {
        crate::config::tests::parse(text).map(|cfg| cfg.wifi)
    }

    #[test]
    fn off_by_default() {
        let w = wifi("").unwrap();
        assert_eq!(w, Wifi::default());
        assert_eq!(w.source(), Ok(None));
        assert_eq!(w.supplicant_conf(), None);
        assert_eq!(wifi("[wifi]\n").unwrap().source(), Ok(None));
    }

    #[test]
    fn a_file_or_a_network() {
        let w = wifi("[wifi]\nconfig = \"wpa_supplicant.conf\"\n").unwrap();
        assert_eq!(w.source(), Ok(Some(Source::File("wpa_supplicant.conf"))));
        let w =
            wifi("[wifi]\nssid = \"box\"\npsk = \"correct horse\"\ncountry = \"DE\"\n").unwrap();
        assert_eq!(w.source(), Ok(Some(Source::Network)));
        assert_eq!(
            w.supplicant_conf().unwrap(),
            "# written by boxinit from init.toml's [wifi]\nctrl_interface=/run/wpa_supplicant\n\
             country=DE\nnetwork={\n\tssid=626f78\n\tscan_ssid=1\n\tpsk=\"correct horse\"\n}\n"
        );
        let raw = "a".repeat(64);
        let w = wifi(&format!("[wifi]\nssid = \"x\\\"y\"\npsk = \"{raw}\"\n")).unwrap();
        assert!(w.supplicant_conf().unwrap().contains("\tssid=782279\n"));
        assert!(w
            .supplicant_conf()
            .unwrap()
            .contains(&format!("\tpsk={raw}\n")));
        let open = wifi("[wifi]\nssid = \"cafe\"\n").unwrap();
        assert!(open
            .supplicant_conf()
            .unwrap()
            .contains("\tkey_mgmt=NONE\n"));
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            ("[wifi]\npsk = \"short\"\n", "a psk is 8 to 63 characters"),
            (
                "[wifi]\npsk = \"caf\u{e9} au lait\"\n",
                "printable ASCII only",
            ),
            ("[wifi]\nssid = \"\"\n", "an ssid is 1 to 32 bytes"),
            ("[wifi]\ncountry = \"de\"\n", "not a country code"),
            ("[wifi]\nssd = \"x\"\n", "did you mean `ssid`?"),
        ];
        for (text, want) in cases {
            let err = wifi(text).unwrap_err();
            assert!(err.contains(want), "{text}: {err}");
            assert!(err.starts_with("/boot/init.toml:2:"), "{text}: {err}");
        }
        // what the supplicant's start would refuse is an error at load (config/validate.rs)
        let both = wifi("[wifi]\nssid = \"a\"\nconfig = \"w.conf\"\n").unwrap_err();
        assert!(
            both.starts_with("/boot/init.toml:3:10: ") && both.contains("not both"),
            "{both}"
        );
        let no_ssid = wifi("[wifi]\npsk = \"12345678\"\n").unwrap_err();
        assert!(
            no_ssid.starts_with("/boot/init.toml:2:7: ") && no_ssid.contains("no `ssid`"),
            "{no_ssid}"
        );
    }
}
