//! Wi-Fi: Debian's `wpa_supplicant` as a supervised service. PID 1 only turns `[wifi]` into
//! a service (and writes the supplicant's config for an ssid/psk); the service is this binary
//! as `boxinit-net wifi IFACE CONF DRIVER SUPPLICANT`, which waits for the interface to appear
//! (its driver may be waiting for firmware: gokrazy#111 restart-looped instead), starts the
//! supplicant and turns its event lines into log lines: "associated", "wrong key", "network
//! not found". The supplicant does the 802.11 work; the address comes from DHCP (`[wifi]
//! dhcp`), which waits until the link is up, that is, associated.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::config::wifi::{Source, Wifi};
use crate::config::{BoxConfig, Config, ExitAction, RestartPolicy};
use crate::supervision::program::{self, Program};

/// Where PID 1 writes the supplicant's config for `[wifi] ssid`/`psk` (a tmpfs: the
/// passphrase never goes back to the card).
pub const GENERATED_DIR: &str = "run/boxinit";

/// How often the service looks for its interface while it waits.
const POLL: Duration = Duration::from_millis(250);
/// After this long without the interface, say what may be missing (and go on waiting).
const PATIENCE: Duration = Duration::from_secs(15);

/// The service `[wifi]` asks for, as `exe wifi IFACE CONF DRIVER SUPPLICANT`; none when Wi-Fi
/// is off or cannot run (logged: what is wrong and how to fix it). `root` is `/` (a temp dir in
/// tests): the supplicant is looked for there and a generated config written there.
pub fn programs(
    cfg: &Config,
    exe: &Path,
    boot_dir: Option<&Path>,
    root: &Path,
) -> Vec<(BoxConfig, Program)> {
    match service(&cfg.wifi, exe, boot_dir, root) {
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

/// The `[wifi]` service's settings, or why there is none.
fn service(
    wifi: &Wifi,
    exe: &Path,
    boot_dir: Option<&Path>,
    root: &Path,
) -> Result<Option<BoxConfig>, String> {
    let Some(source) = wifi.source()? else {
        return Ok(None);
    };
    let inside = |path: &str| root.join(path.trim_start_matches('/'));
    if !inside(&wifi.supplicant).is_file() {
        return Err(format!(
            "no {} in the initramfs: build it with `cargo xtask initramfs --wifi` (or give \
             [wifi] supplicant)",
            wifi.supplicant
        ));
    }
    let conf = match source {
        Source::File(path) => match boot_dir {
            _ if Path::new(path).is_absolute() => PathBuf::from(path),
            Some(dir) => dir.join(path),
            None => {
                return Err(format!(
                    "config = {path:?} is relative but there is no boot partition"
                ))
            }
        },
        Source::Network => {
            let text = wifi.supplicant_conf().unwrap_or_default();
            let name = format!("wifi-{}.conf", wifi.interface);
            write_private(&inside(GENERATED_DIR), &name, &text)?;
            Path::new("/").join(GENERATED_DIR).join(name)
        }
    };
    Ok(Some(BoxConfig {
        name: Some(format!("wifi-{}", wifi.interface)),
        path: exe.display().to_string(),
        args: vec![
            "wifi".into(),
            wifi.interface.clone(),
            conf.display().to_string(),
            wifi.driver.clone(),
            wifi.supplicant.clone(),
        ],
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

/// What a supplicant line tells (wpa_supplicant prints its events on stdout, `IFACE: EVENT`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `Trying to associate with BSSID (SSID='name' freq=2412 MHz)`
    Associating { ssid: String },
    /// `CTRL-EVENT-CONNECTED - Connection to BSSID completed`
    Connected { bssid: String },
    /// `CTRL-EVENT-DISCONNECTED bssid=... reason=N`
    Disconnected { reason: String },
    /// `CTRL-EVENT-SSID-TEMP-DISABLED ... reason=WRONG_KEY`: the passphrase is wrong
    WrongKey { ssid: String },
    /// `CTRL-EVENT-NETWORK-NOT-FOUND`: no configured network in range
    NotFound,
    /// any other line
    Other,
}

/// Reads one line of the supplicant's output.
pub fn parse_event(line: &str) -> Event {
    // lines are "wlan0: EVENT ..." (interface events) or bare messages
    let text = line.split_once(": ").map_or(line, |(_, rest)| rest);
    let word = |key: &str| {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(key))
            .map(|v| v.trim_matches(|c| c == '"' || c == '\'').to_string())
    };
    if let Some(rest) = text.strip_prefix("CTRL-EVENT-CONNECTED - Connection to ") {
        let bssid = rest.split_whitespace().next().unwrap_or("").to_string();
        return Event::Connected { bssid };
    }
    if text.starts_with("CTRL-EVENT-DISCONNECTED") {
        return Event::Disconnected {
            reason: word("reason=").unwrap_or_default(),
        };
    }
    if text.starts_with("CTRL-EVENT-SSID-TEMP-DISABLED") && text.contains("reason=WRONG_KEY") {
        return Event::WrongKey {
            ssid: quoted(text, "ssid=\"").unwrap_or_default(),
        };
    }
    if text.starts_with("CTRL-EVENT-NETWORK-NOT-FOUND") {
        return Event::NotFound;
    }
    if text.starts_with("Trying to associate with ") {
        return Event::Associating {
            ssid: quoted(text, "SSID='").unwrap_or_default(),
        };
    }
    Event::Other
}

/// The text after `open` up to the matching closing quote (the last one of its kind).
fn quoted(text: &str, open: &str) -> Option<String> {
    let close = open.chars().last()?;
    let start = text.find(open)? + open.len();
    let rest = text.get(start..)?;
    let end = rest.rfind(close)?;
    rest.get(..end).map(str::to_string)
}

/// The service's state between lines: what to say, said once.
#[derive(Debug, Default)]
pub struct Watcher {
    ssid: String,
    connected: bool,
    not_found_said: bool,
}

impl Watcher {
    /// The log line (level, text) a supplicant line deserves, if any; `iface` names it.
    pub fn on_line(&mut self, iface: &str, line: &str) -> Option<(log::Level, String)> {
        match parse_event(line) {
            Event::Associating { ssid } => {
                self.ssid = ssid;
                None
            }
            Event::Connected { bssid } => {
                self.connected = true;
                self.not_found_said = false;
                Some((
                    log::Level::Info,
                    format!("wifi: {iface} associated with \"{}\" ({bssid})", self.ssid),
                ))
            }
            Event::Disconnected { reason } if self.connected => {
                self.connected = false;
                Some((
                    log::Level::Warn,
                    format!("wifi: {iface} lost \"{}\" (reason {reason})", self.ssid),
                ))
            }
            Event::Disconnected { .. } | Event::Other => None,
            Event::WrongKey { ssid } => Some((
                log::Level::Error,
                format!("wifi: {iface}: wrong passphrase for \"{ssid}\"; check [wifi] psk or the psk in the supplicant's config"),
            )),
            Event::NotFound if !self.not_found_said => {
                self.not_found_said = true;
                Some((
                    log::Level::Warn,
                    format!("wifi: {iface}: no configured network in range yet; still scanning"),
                ))
            }
            Event::NotFound => None,
        }
    }
}

/// `boxinit-net wifi IFACE CONF DRIVER SUPPLICANT`: waits for the interface, then runs the
/// supplicant with its output read line by line; exits with the supplicant's status (the
/// supervisor restarts it).
pub fn wifi_main(args: &[String]) -> i32 {
    crate::kmsg::init(log::LevelFilter::Info);
    if crate::kmsg::open_kmsg().is_err() {
        // no /dev/kmsg (a PID namespace, a host): the console it is
    }
    let [iface, conf, driver, supplicant] = args else {
        eprintln!("usage: boxinit-net wifi IFACE CONF DRIVER SUPPLICANT");
        return 2;
    };
    if !wait_for_interface(Path::new("/"), iface) {
        return 1;
    }
    if !Path::new(conf).is_file() {
        log::error!("wifi: no {conf}: put a wpa_supplicant.conf there, or give [wifi] ssid/psk");
        return 1;
    }
    log::info!("wifi: starting {supplicant} on {iface}");
    let child = Command::new(supplicant)
        .args(["-i", iface, "-c", conf, "-D", driver])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn();
    let mut child = match child {
        Ok(child) => child,
        Err(e) => {
            log::error!("wifi: cannot run {supplicant}: {e}");
            return 1;
        }
    };
    let mut watcher = Watcher::default();
    if let Some(out) = child.stdout.take() {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            match watcher.on_line(iface, &line) {
                Some((level, text)) => log::log!(level, "{text}"),
                None => log::debug!("wifi: {line}"),
            }
        }
    }
    match child.wait() {
        Ok(status) => {
            log::warn!("wifi: {supplicant} ended ({status})");
            status.code().unwrap_or(1)
        }
        Err(e) => {
            log::error!("wifi: cannot wait for {supplicant}: {e}");
            1
        }
    }
}

/// Polls `root/sys/class/net/IFACE` until it exists: a Wi-Fi driver makes its interface only
/// once its firmware is loaded, which may take seconds. Says so once, and again after
/// [`PATIENCE`] with what may be missing. Always true (it waits for as long as it takes).
fn wait_for_interface(root: &Path, iface: &str) -> bool {
    let dir = root.join("sys/class/net").join(iface);
    let started = Instant::now();
    let mut said = false;
    let mut warned = false;
    while !dir.exists() {
        if !said {
            log::info!("wifi: waiting for {iface} (its driver and firmware)");
            said = true;
        }
        if !warned && started.elapsed() >= PATIENCE {
            log::warn!("{}", missing_interface(root, iface, started.elapsed()));
            warned = true;
        }
        std::thread::sleep(POLL);
    }
    if said {
        log::info!(
            "wifi: {iface} appeared after {}ms",
            started.elapsed().as_millis()
        );
    }
    true
}

/// The message for an interface that does not come: which ones exist, what to check.
fn missing_interface(root: &Path, iface: &str, waited: Duration) -> String {
    let mut present: Vec<String> = std::fs::read_dir(root.join("sys/class/net"))
        .map(|d| {
            d.flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    present.sort();
    format!(
        "wifi: no {iface} after {}s (interfaces: {}); is its driver packed and its firmware \
         under /lib/firmware? the kernel log says which file it asked for; still waiting",
        waited.as_secs(),
        if present.is_empty() {
            "none".to_string()
        } else {
            present.join(", ")
        }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn supplicant_lines() {
        let cases = [
            (
                "wlan0: Trying to associate with 02:00:00:00:01:00 (SSID='boxinit test' freq=2412 MHz)",
                Event::Associating { ssid: "boxinit test".into() },
            ),
            (
                "wlan0: CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]",
                Event::Connected { bssid: "02:00:00:00:01:00".into() },
            ),
            (
                "wlan0: CTRL-EVENT-DISCONNECTED bssid=02:00:00:00:01:00 reason=3 locally_generated=1",
                Event::Disconnected { reason: "3".into() },
            ),
            (
                "wlan0: CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid=\"box\" auth_failures=1 duration=10 reason=WRONG_KEY",
                Event::WrongKey { ssid: "box".into() },
            ),
            ("wlan0: CTRL-EVENT-NETWORK-NOT-FOUND", Event::NotFound),
            ("Successfully initialized wpa_supplicant", Event::Other),
            ("", Event::Other),
            ("wlan0: Trying to associate with 02:00 (SSID=", Event::Associating { ssid: String::new() }),
        ];
        for (line, want) in cases {
            assert_eq!(parse_event(line), want, "{line}");
        }
    }

    #[test]
    fn watcher_says_each_thing_once() {
        let mut w = Watcher::default();
        let mut say = |line: &str| w.on_line("wlan0", line).map(|(l, t)| format!("{l}: {t}"));
        assert_eq!(
            say("wlan0: CTRL-EVENT-NETWORK-NOT-FOUND").as_deref(),
            Some("WARN: wifi: wlan0: no configured network in range yet; still scanning")
        );
        assert_eq!(say("wlan0: CTRL-EVENT-NETWORK-NOT-FOUND"), None);
        assert_eq!(
            say("wlan0: CTRL-EVENT-DISCONNECTED bssid=00:00:00:00:00:00 reason=3"),
            None
        );
        assert_eq!(
            say("wlan0: Trying to associate with 02:00:00:00:01:00 (SSID='box' freq=2412 MHz)"),
            None
        );
        assert_eq!(
            say("wlan0: CTRL-EVENT-CONNECTED - Connection to 02:00:00:00:01:00 completed [id=0 id_str=]").as_deref(),
            Some("INFO: wifi: wlan0 associated with \"box\" (02:00:00:00:01:00)")
        );
        assert_eq!(
            say("wlan0: CTRL-EVENT-DISCONNECTED bssid=02:00:00:00:01:00 reason=4").as_deref(),
            Some("WARN: wifi: wlan0 lost \"box\" (reason 4)")
        );
        assert!(say("wlan0: CTRL-EVENT-SSID-TEMP-DISABLED id=0 ssid=\"box\" auth_failures=1 duration=10 reason=WRONG_KEY").unwrap().contains("wrong passphrase for \"box\""));
    }

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
        assert_eq!(p[0].1.args[2], "/run/boxinit/wifi-wlan1.conf");
        let file = root.join("run/boxinit/wifi-wlan1.conf");
        assert!(std::fs::read_to_string(&file)
            .unwrap()
            .contains("psk=\"12345678\""));
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
        let err = service(&cfg.wifi, Path::new("/boxinit-net"), None, &root).unwrap_err();
        assert!(err.contains("cargo xtask initramfs --wifi"), "{err}");
        // a relative config without a boot partition
        let cfg = config("[wifi]\nconfig = \"w.conf\"\n");
        let err = service(&cfg.wifi, Path::new("/boxinit-net"), None, &root).unwrap_err();
        assert!(err.contains("no boot partition"), "{err}");
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn interface_wait_and_its_message() {
        let root = temp_root("iface");
        std::fs::create_dir_all(root.join("sys/class/net/wlan0")).unwrap();
        std::fs::create_dir_all(root.join("sys/class/net/lo")).unwrap();
        assert!(wait_for_interface(&root, "wlan0"));
        let text = missing_interface(&root, "wlan1", Duration::from_secs(15));
        assert!(
            text.starts_with("wifi: no wlan1 after 15s (interfaces: lo, wlan0)"),
            "{text}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
