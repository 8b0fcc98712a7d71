//! The supplicant's config for `[wifi] ssid`/`psk`: the network file PID 1 writes
//! (`config::wifi::Network`) read, the 32-byte key derived from the passphrase as
//! `wpa_passphrase` does (PBKDF2-HMAC-SHA1, the SSID as salt, 4096 rounds: IEEE 802.11i
//! H.4), and the config written as 64 hex digits, readable by root only. So no passphrase
//! reaches the supplicant's config parser, which cuts a line at a `#` after a second `"`
//! (DESIGN.md); and the key derivation stays out of PID 1's binary.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use boxinit::config::wifi::{Key, Network};

/// The rounds IEEE 802.11i sets for the passphrase-to-PSK mapping.
const ROUNDS: u32 = 4096;

/// The 32-byte PSK of `passphrase` on the network `ssid`.
pub fn psk(passphrase: &[u8], ssid: &[u8]) -> [u8; 32] {
    let mut key = [0u8; 32];
    pbkdf2::pbkdf2_hmac::<sha1::Sha1>(passphrase, ssid, ROUNDS, &mut key);
    key
}

/// The supplicant's config for a network file's text.
pub fn supplicant_conf(network_text: &str) -> Result<String, String> {
    let network = Network::parse(network_text)?;
    let key = match &network.key {
        Key::Open => None,
        Key::Passphrase(p) => Some(psk(p, &network.ssid)),
        Key::Psk(k) => Some(*k),
    };
    Ok(network.supplicant_conf(key.as_ref()))
}

/// Writes `conf` from the network file `network`, mode 0600 (it holds the key).
pub fn write_conf(network: &Path, conf: &Path) -> Result<(), String> {
    let text = std::fs::read_to_string(network)
        .map_err(|e| format!("cannot read {}: {e}", network.display()))?;
    let conf_text = supplicant_conf(&text).map_err(|e| format!("{}: {e}", network.display()))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(conf)
        .and_then(|mut f| f.write_all(conf_text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", conf.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// IEEE 802.11i-2004 H.4.1's test vectors, and the passphrase as Debian's
    /// `wpa_passphrase` 2.10 gives it (`wpa_passphrase 'Café puzzle box' 'p"ss #word; 42'`).
    #[test]
    fn keys_as_the_standard_and_wpa_passphrase_give_them() {
        let table: [(&[u8], &[u8], &str); 3] = [
            (
                b"password",
                b"IEEE",
                "f42c6fc52df0ebef9ebb4b90b38a5f902e83fe1b135a70e23aed762e9710a12e",
            ),
            (
                b"ThisIsAPassword",
                b"ThisIsASSID",
                "0dc0d6eb90555ed6419756b9a15ec3e3209b63df707dd508d14581f8982721af",
            ),
            (
                b"p\"ss #word; 42",
                "Café puzzle box".as_bytes(),
                WPA_PASSPHRASE_CAFE,
            ),
        ];
        for (passphrase, ssid, want) in table {
            assert_eq!(hex(&psk(passphrase, ssid)), want, "{passphrase:?}");
        }
    }

    const WPA_PASSPHRASE_CAFE: &str =
        "a7857634a73a39261bad1d942b1ae6a9e86ccdf8030d8f1956eaf5bee239048b";

    #[test]
    fn the_config_holds_no_passphrase() {
        let text = "ssid=436166c3a92070757a7a6c6520626f78\npassphrase=702273732023776f72643b203432\ncountry=DE\n";
        let conf = supplicant_conf(text).unwrap();
        assert_eq!(
            conf,
            format!(
                "# written by boxinit from init.toml's [wifi]\nctrl_interface=/run/wpa_supplicant\n\
                 country=DE\nnetwork={{\n\tssid=436166c3a92070757a7a6c6520626f78\n\tscan_ssid=1\n\
                 \tpsk={WPA_PASSPHRASE_CAFE}\n}}\n"
            )
        );
        assert!(supplicant_conf("ssid=61\n")
            .unwrap()
            .contains("key_mgmt=NONE"));
        let e = supplicant_conf("ssid=61\npsk=1\n").unwrap_err();
        assert!(e.contains("64 hex"), "{e}");
    }

    #[test]
    fn writes_a_private_file() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("boxinit-wifi-key-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let network = dir.join("wifi-wlan0.network");
        let conf = dir.join("wifi-wlan0.conf");
        std::fs::write(&network, "ssid=49454545\npassphrase=70617373776f7264\n").unwrap();
        write_conf(&network, &conf).unwrap();
        let text = std::fs::read_to_string(&conf).unwrap();
        assert!(text.contains("\tssid=49454545\n"), "{text}");
        assert_eq!(
            std::fs::metadata(&conf).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let e = write_conf(&dir.join("missing"), &conf).unwrap_err();
        assert!(
            e.starts_with("cannot read ") && e.contains("missing"),
            "{e}"
        );
        std::fs::write(&network, "ssid=\n").unwrap();
        let e = write_conf(&network, &conf).unwrap_err();
        assert!(
            e.contains("wifi-wlan0.network: an ssid is 1 to 32 bytes"),
            "{e}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
