//! Wi-Fi as PID 1 sees it: `[wifi]` turned into the supervised service `wifi-IFACE`, which is
//! the network programs' binary as `boxinit-net wifi IFACE CONF DRIVER SUPPLICANT [NETWORK]`,
//! and, for an ssid/psk, the network written where only root reads it (`NETWORK`, from which
//! that program writes `CONF` with the key derived from the passphrase). What that service does
//! (wait for the interface, run Debian's `wpa_supplicant`, turn its event lines into log lines)
//! is `src/bin/boxinit-net/wifi.rs`; the 802.11 and WPA work never runs in PID 1. The address
//! comes from DHCP (`[wifi] dhcp`), which waits until the link is up, that is, associated.

use std::path::{Path, PathBuf};

use crate::config::wifi::{Source, Wifi};
use crate::config::{BoxConfig, Config, ExitAction, RestartPolicy};
use crate::supervision::program::{self, Program};

/// Where PID 1 writes the network of `[wifi] ssid`/`psk`, and `boxinit-net wifi` the
/// supplicant's config for it (a tmpfs: the passphrase never goes back to the card).
pub const GENERATED_DIR: &str = "run/boxinit";

/// The service `[wifi]` asks for, as `exe wifi IFACE CONF DRIVER SUPPLICANT [NETWORK]`; none when Wi-Fi
/// is off or cannot run (logged: what is wrong and how to fix it). `root` is `/` (a temp dir in
/// tests): the supplicant is looked for there and a generated config written there.
pub fn programs(
    cfg: &Config,
    exe: &Path,
    boot_dir: Option<&Path>,
    root: &Path,
) -> Vec<(BoxConfig, Program)> {
    let extras = !cfg.boot.extras.is_empty();
    match service(&cfg.wifi, exe, boot_dir, root, extras) {
        Ok(Some(service)) => match program::resolve(&service, None) {
            Ok(program) => vec![(service, program)],
            Err(e) => {
                log::error!("wifi: {e}; not started");
                Vec::new()
            }
        },
        Ok(None) => Vec::new(),
        Err(e) => {
            log::error!("wifi: {e}; Wi-Fi is not started");
            Vec::new()
        }
    }
}

/// The `[wifi]` service's settings, or why there is none. With `extras` (`[boot] extras`
/// lists archives) the supplicant may come later, unpacked from the card: the service then
/// waits for it (`boxinit-net wifi`).
fn service(
    wifi: &Wifi,
    exe: &Path,
    boot_dir: Option<&Path>,
    root: &Path,
    extras: bool,
) -> Result<Option<BoxConfig>, String> {
    let Some(source) = wifi.source()? else {
        return Ok(None);
    };
    let inside = |path: &str| root.join(path.trim_start_matches('/'));
    if !extras && !inside(&wifi.supplicant).is_file() {
        return Err(format!(
            "no {} in the initramfs, and no [boot] extras to bring it: make the card with \
             `cargo xtask bundle` (or `initramfs --wifi`), which packs it, or give [wifi] \
             supplicant",
            wifi.supplicant
        ));
    }
    // For ssid/psk, the network goes to a file of its own and `boxinit-net wifi` writes the
    // supplicant's config from it, with the key derived from the passphrase (PBKDF2, which
    // stays out of PID 1's binary): the passphrase never reaches the supplicant's parser.
    let (conf, network) = match source {
        Source::File(path) => match boot_dir {
            _ if Path::new(path).is_absolute() => (PathBuf::from(path), None),
            Some(dir) => (dir.join(path), None),
            None => {
                return Err(format!(
                    "config = {path:?} is relative but there is no boot partition"
                ))
            }
        },
        Source::Network => {
            let text = wifi.network().map(|n| n.to_text()).unwrap_or_default();
            let name = format!("wifi-{}.network", wifi.interface);
            write_private(&inside(GENERATED_DIR), &name, &text)?;
            let dir = Path::new("/").join(GENERATED_DIR);
            (
                dir.join(format!("wifi-{}.conf", wifi.interface)),
                Some(dir.join(name)),
            )
        }
    };
    let mut args = vec![
        "wifi".into(),
        wifi.interface.clone(),
        conf.display().to_string(),
        wifi.driver.clone(),
        wifi.supplicant.clone(),
    ];
    args.extend(network.map(|n| n.display().to_string()));
    Ok(Some(BoxConfig {
        name: Some(format!("wifi-{}", wifi.interface)),
        path: exe.display().to_string(),
        args,
        restart: RestartPolicy::Always,
        on_exit: ExitAction::Wait,
        ..BoxConfig::default()
    }))
}

/// Writes `dir/name` readable by root only (it holds a passphrase).
fn write_private(dir: &Path, name: &str, text: &str) -> Result<(), String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

/// The `[wifi]` interface for DHCP: the name `[network] dhcp` should hold (None when Wi-Fi is
/// off or `dhcp = false`).
pub fn dhcp_interface(wifi: &Wifi) -> Option<&str> {
    match wifi.source() {
        Ok(Some(_)) if wifi.dhcp => Some(&wifi.interface),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(text: &str) -> Config {
        let (cfg, errors) = crate::config::load(&[crate::config::Layer::Text {
            name: "t".into(),
            text: text.into(),
        }]);
        assert!(errors.is_empty(), "{errors:?}");
        cfg
    }

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("boxinit-wifi-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sbin")).unwrap();
        std::fs::write(dir.join("sbin/wpa_supplicant"), b"\x7fELF").unwrap();
        dir
    }

    #[test]
    fn service_from_a_file_on_the_card() {
        let root = temp_root("file");
        let cfg = config("[wifi]\nconfig = \"wpa_supplicant.conf\"\n");
        let p = programs(
            &cfg,
            Path::new("/boxinit-net"),
            Some(Path::new("/boot")),
            &root,
        );
        let shown: Vec<String> = p
            .iter()
            .map(|(_, p)| format!("{}: {} {}", p.name, p.program.display(), p.args.join(" ")))
            .collect();
        assert_eq!(shown, ["wifi-wlan0: /boxinit-net wifi wlan0 /boot/wpa_supplicant.conf nl80211 /sbin/wpa_supplicant"]);
        assert_eq!(p[0].0.restart, RestartPolicy::Always);
        assert_eq!(dhcp_interface(&cfg.wifi), Some("wlan0"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn service_from_ssid_and_psk_writes_a_private_config() {
        use std::os::unix::fs::PermissionsExt;
        let root = temp_root("ssid");
        let cfg = config(
            "[wifi]\nssid = \"box\"\npsk = \"12345678\"\ninterface = \"wlan1\"\ndhcp = false\n",
        );
        let p = programs(&cfg, Path::new("/boxinit-net"), None, &root);
        assert_eq!(p.len(), 1);
        assert_eq!(
            p[0].1.args[1..],
            [
                "wlan1",
                "/run/boxinit/wifi-wlan1.conf",
                "nl80211",
                "/sbin/wpa_supplicant",
                "/run/boxinit/wifi-wlan1.network"
            ]
        );
        // the network for boxinit-net, which writes the supplicant's config from it
        let file = root.join("run/boxinit/wifi-wlan1.network");
        let text = std::fs::read_to_string(&file).unwrap();
        assert!(
            text.contains("\nssid=626f78\npassphrase=3132333435363738\n"),
            "{text}"
        );
        assert!(!root.join("run/boxinit/wifi-wlan1.conf").exists());
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        assert_eq!(dhcp_interface(&cfg.wifi), None);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn no_service_when_off_or_unable() {
        let root = temp_root("off");
        assert!(programs(&Config::default(), Path::new("/boxinit-net"), None, &root).is_empty());
        assert_eq!(dhcp_interface(&Config::default().wifi), None);
        // no supplicant in the initramfs
        let cfg = config("[wifi]\nssid = \"box\"\nsupplicant = \"/usr/sbin/nothing\"\n");
        let err = service(&cfg.wifi, Path::new("/boxinit-net"), None, &root, false).unwrap_err();
        assert!(err.contains("no [boot] extras to bring it"), "{err}");
        // it may come with the extras from the card: the service waits for it
        let cfg = config(
            "[wifi]\nssid = \"box\"\nsupplicant = \"/usr/sbin/nothing\"\n[boot]\nextras = [\"extras.cpio.gz\"]\n",
        );
        let p = programs(
            &cfg,
            Path::new("/boxinit-net"),
            Some(Path::new("/boot")),
            &root,
        );
        assert_eq!(p[0].1.args[4], "/usr/sbin/nothing");
        // a relative config without a boot partition
        let cfg = config("[wifi]\nconfig = \"w.conf\"\n");
        let err = service(&cfg.wifi, Path::new("/boxinit-net"), None, &root, false).unwrap_err();
        assert!(err.contains("no boot partition"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }
}
