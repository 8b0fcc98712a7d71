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

    /// The network `ssid`/`psk` name, as PID 1 hands it to `boxinit-net wifi` (None without
    /// an ssid). The passphrase is not made into the key here: that is PBKDF2, which PID 1's
    /// binary does not carry (`src/bin/boxinit-net/wifi_key.rs` does it).
    pub fn network(&self) -> Option<Network> {
        let ssid = self.ssid.as_ref()?.as_bytes().to_vec();
        let key = match &self.psk {
            None => Key::Open,
            Some(psk) => match raw_key(psk) {
                Some(raw) => Key::Psk(raw),
                None => Key::Passphrase(psk.as_bytes().to_vec()),
            },
        };
        Some(Network {
            ssid,
            key,
            country: self.country.clone(),
        })
    }
}

/// A network given by `[wifi] ssid`/`psk`: what PID 1 writes for `boxinit-net wifi` in a file
/// only root reads, and what that program writes the supplicant's config from. Every value is
/// in hex there, so no character of an SSID or a passphrase meets a parser that quotes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Network {
    pub ssid: Vec<u8>,
    pub key: Key,
    pub country: Option<String>,
}

/// How a network is secured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// No `psk`: an open network.
    Open,
    /// A WPA passphrase (8 to 63 printable ASCII characters): the key is derived from it and
    /// the SSID.
    Passphrase(Vec<u8>),
    /// 64 hex digits in `psk`: the key itself.
    Psk([u8; 32]),
}

/// The 32 bytes that 64 hex digits spell, if they are that.
fn raw_key(text: &str) -> Option<[u8; 32]> {
    let bytes = from_hex(text)?;
    bytes.try_into().ok()
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn from_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

impl Network {
    /// The file's text: `ssid=HEX`, then `passphrase=HEX` or `psk=HEX` (none: open), then
    /// `country=XX`.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "# written by boxinit from init.toml's [wifi], for boxinit-net wifi\nssid={}\n",
            to_hex(&self.ssid)
        );
        match &self.key {
            Key::Open => {}
            Key::Passphrase(p) => text += &format!("passphrase={}\n", to_hex(p)),
            Key::Psk(k) => text += &format!("psk={}\n", to_hex(k)),
        }
        if let Some(country) = &self.country {
            text += &format!("country={country}\n");
        }
        text
    }

    /// Reads [`Network::to_text`] back, checked as `[wifi]` checks its keys.
    pub fn parse(text: &str) -> Result<Network, String> {
        let mut ssid = None;
        let mut key = Key::Open;
        let mut country = None;
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (name, value) = line
                .split_once('=')
                .ok_or_else(|| format!("`{line}` is not NAME=VALUE"))?;
            let hex = || from_hex(value).ok_or_else(|| format!("{name}: not hex digits"));
            match name {
                "ssid" => ssid = Some(hex()?),
                "passphrase" => key = Key::Passphrase(hex()?),
                "psk" => {
                    key = Key::Psk(
                        raw_key(value).ok_or("psk: not 64 hex digits (32 bytes)".to_string())?,
                    )
                }
                "country" => {
                    check_country(value)?;
                    country = Some(value.to_string());
                }
                _ => return Err(format!("unknown name `{name}`")),
            }
        }
        let ssid = ssid.ok_or("no ssid")?;
        if !(1..=32).contains(&ssid.len()) {
            return Err(format!(
                "an ssid is 1 to 32 bytes, this one has {}",
                ssid.len()
            ));
        }
        if let Key::Passphrase(p) = &key {
            let printable = p.iter().all(|b| (b' '..=b'~').contains(b));
            if !(8..=63).contains(&p.len()) || !printable {
                return Err("a passphrase is 8 to 63 printable ASCII characters".into());
            }
        }
        Ok(Network { ssid, key, country })
    }

    /// The `wpa_supplicant.conf` for this network, with `psk` its 32-byte key (derived from
    /// the passphrase by the caller; None for an open network). The SSID and the key are
    /// written in hex (wpa_supplicant.conf(5): `ssid` as hex digits, `psk` as 64 of them), so
    /// nothing in it is quoted: wpa_supplicant 2.10 cuts a line at a `#` after a second `"`
    /// (DESIGN.md), which a passphrase may hold.
    pub fn supplicant_conf(&self, psk: Option<&[u8; 32]>) -> String {
        let mut text = String::from(
            "# written by boxinit from init.toml's [wifi]\nctrl_interface=/run/wpa_supplicant\n",
        );
        if let Some(country) = &self.country {
            text += &format!("country={country}\n");
        }
        text += &format!("network={{\n\tssid={}\n\tscan_ssid=1\n", to_hex(&self.ssid));
        match psk {
            Some(key) => text += &format!("\tpsk={}\n", to_hex(key)),
            None => text += "\tkey_mgmt=NONE\n",
        }
        text += "}\n";
        text
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
        assert_eq!(w.network(), None);
        assert_eq!(wifi("[wifi]\n").unwrap().source(), Ok(None));
    }

    #[test]
    fn a_file_or_a_network() {
        let w = wifi("[wifi]\nconfig = \"wpa_supplicant.conf\"\n").unwrap();
        assert_eq!(w.source(), Ok(Some(Source::File("wpa_supplicant.conf"))));
        assert_eq!(w.network(), None);
        let w =
            wifi("[wifi]\nssid = \"box\"\npsk = \"correct horse\"\ncountry = \"DE\"\n").unwrap();
        assert_eq!(w.source(), Ok(Some(Source::Network)));
        let network = w.network().unwrap();
        assert_eq!(
            network,
            Network {
                ssid: b"box".to_vec(),
                key: Key::Passphrase(b"correct horse".to_vec()),
                country: Some("DE".into()),
            }
        );
        let key = [0xab; 32];
        assert_eq!(
            network.supplicant_conf(Some(&key)),
            format!(
                "# written by boxinit from init.toml's [wifi]\nctrl_interface=/run/wpa_supplicant\n\
                 country=DE\nnetwork={{\n\tssid=626f78\n\tscan_ssid=1\n\tpsk={}\n}}\n",
                "ab".repeat(32)
            )
        );
        let raw = "a".repeat(64);
        let w = wifi(&format!("[wifi]\nssid = \"x\\\"y\"\npsk = \"{raw}\"\n")).unwrap();
        let network = w.network().unwrap();
        assert_eq!(network.key, Key::Psk([0xaa; 32]));
        assert!(network
            .supplicant_conf(Some(&[0xaa; 32]))
            .contains("\tssid=782279\n"));
        let open = wifi("[wifi]\nssid = \"cafe\"\n")
            .unwrap()
            .network()
            .unwrap();
        assert_eq!(open.key, Key::Open);
        assert!(open.supplicant_conf(None).contains("\tkey_mgmt=NONE\n"));
    }

    /// Issue 17: a passphrase with `"` and `#` and an SSID with an accent reach the file for
    /// `boxinit-net wifi` as hex, and back unchanged; what is not such a file is an error.
    #[test]
    fn the_network_file_round_trips_any_passphrase() {
        let w = wifi("[wifi]\nssid = \"Caf\u{e9} puzzle box\"\npsk = 'p\"ss #word; 42'\n").unwrap();
        let network = w.network().unwrap();
        let text = network.to_text();
        assert!(!text.contains('"') && !text.contains("#word"), "{text}");
        assert!(
            text.contains("\nssid=436166c3a92070757a7a6c6520626f78\n"),
            "{text}"
        );
        assert!(
            text.contains("\npassphrase=702273732023776f72643b203432\n"),
            "{text}"
        );
        assert_eq!(Network::parse(&text), Ok(network));
        for open in [
            wifi("[wifi]\nssid = \"a\"\ncountry = \"GB\"\n").unwrap(),
            wifi(&format!(
                "[wifi]\nssid = \"a\"\npsk = \"{}\"\n",
                "0f".repeat(32)
            ))
            .unwrap(),
        ] {
            let n = open.network().unwrap();
            assert_eq!(Network::parse(&n.to_text()), Ok(n));
        }
        for (bad, want) in [
            ("", "no ssid"),
            ("ssid=zz\n", "ssid: not hex"),
            ("ssid=616\n", "ssid: not hex"),
            ("ssid=61\npsk=00\n", "psk: not 64 hex"),
            ("ssid=61\npassphrase=3132\n", "8 to 63 printable"),
            (
                "ssid=61\npassphrase=0a0a0a0a0a0a0a0a0a\n",
                "8 to 63 printable",
            ),
            ("ssid=61\ncountry=de\n", "not a country code"),
            ("ssid=61\nwhat=1\n", "unknown name `what`"),
            ("ssid\n", "not NAME=VALUE"),
            (&format!("ssid={}\n", "61".repeat(33)), "1 to 32 bytes"),
        ] {
            let e = Network::parse(bad).unwrap_err();
            assert!(e.contains(want), "{bad:?}: {e}");
        }
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
