//! Waiting for a network interface, as each network program does before its work: a USB
//! adapter, a Wi-Fi driver that waits for its firmware or a slow bus makes its interface
//! seconds after the program started, and a program that restart-looped instead would fill
//! the log (gokrazy#111). `dhcp` and `static` then bring it up and wait for its link; `wifi`
//! leaves that to the supplicant.

use std::path::Path;
use std::time::{Duration, Instant};

use boxinit::fnmatch::fnmatch;
use boxinit::net::link::{self, RouteRequest};
use boxinit::sys::Sys;
use nix::sys::signalfd::SignalFd;

use crate::process::{wait, Woke};

/// Waits until an interface matching `pattern` (a name, or a glob: the first that matches;
/// never `lo`) exists under `root`, looking every `poll`. Says once that it waits and, when
/// the interface comes, after how long; past `hint_after`, once, which interfaces there are
/// and what may be missing. `pause(d)` waits up to `d` and says whether to stop (a stop
/// signal). The interface's name, or None when told to stop first.
pub fn wait_for(
    root: &Path,
    what: &str,
    pattern: &str,
    poll: Duration,
    hint_after: Option<Duration>,
    pause: &mut dyn FnMut(Duration) -> bool,
) -> Option<String> {
    let started = Instant::now();
    let mut said = false;
    let mut hinted = false;
    loop {
        let found = link::interfaces(root)
            .into_iter()
            .find(|n| n != "lo" && fnmatch(pattern, n));
        if let Some(name) = found {
            if said {
                log::info!(
                    "{what}: {name} appeared after {}ms",
                    started.elapsed().as_millis()
                );
            }
            return Some(name);
        }
        if !said {
            log::info!("{what}: waiting for {pattern} to appear");
            said = true;
        }
        if let Some(limit) = hint_after.filter(|limit| !hinted && started.elapsed() >= *limit) {
            log::warn!("{}", missing_interface(root, what, pattern, limit));
            hinted = true;
        }
        if pause(poll) {
            return None;
        }
    }
}

/// The message for an interface that does not come: which ones exist, what to check.
fn missing_interface(root: &Path, what: &str, pattern: &str, waited: Duration) -> String {
    let present = link::interfaces(root);
    format!(
        "{what}: no {pattern} after {}s (interfaces: {}); is its driver packed and its firmware \
         under /lib/firmware? the kernel log says which file it asked for; still waiting",
        waited.as_secs(),
        if present.is_empty() {
            "none".to_string()
        } else {
            present.join(", ")
        }
    )
}

/// For `dhcp` and `static`: the interface [`wait_for`] finds, brought up, once it carries
/// traffic (its operational state is up: a cable, an association); None when told to stop
/// first.
pub fn up_and_running(
    what: &str,
    pattern: &str,
    signals: &SignalFd,
    sys: &mut dyn Sys,
) -> Option<link::Interface> {
    let root = Path::new("/");
    let mut stop = |d| matches!(wait(signals, None, d), Woke::Stop);
    let iface = loop {
        let name = wait_for(root, what, pattern, Duration::from_secs(1), None, &mut stop)?;
        match link::interface(root, &name) {
            Ok(iface) => break iface,
            // gone again between the listing and the reading: wait for it once more
            Err(_) if stop(Duration::from_secs(1)) => return None,
            Err(_) => {}
        }
    };
    if let Err(e) = sys.netlink_route(&RouteRequest::LinkUp { index: iface.index }) {
        log::warn!("{what}: cannot bring {} up: {e}", iface.name);
    }
    let mut said = false;
    while !link::is_running(root, &iface.name) {
        if !said {
            log::info!("{what}: waiting for a link on {}", iface.name);
            said = true;
        }
        if stop(Duration::from_millis(200)) {
            return None;
        }
    }
    Some(iface)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    fn temp_root(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("boxinit-iface-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("sys/class/net/lo")).unwrap();
        dir
    }

    #[test]
    fn finds_a_name_or_the_first_match_of_a_glob_never_lo() {
        let root = temp_root("find");
        for name in ["wlan1", "eth0", "wlan0"] {
            std::fs::create_dir_all(root.join("sys/class/net").join(name)).unwrap();
        }
        let mut never = |_| panic!("it should not have waited");
        let find = |pattern: &str, pause: &mut dyn FnMut(Duration) -> bool| {
            wait_for(&root, "t", pattern, Duration::ZERO, None, pause)
        };
        assert_eq!(find("wlan1", &mut never).as_deref(), Some("wlan1"));
        assert_eq!(find("wlan*", &mut never).as_deref(), Some("wlan0"));
        assert_eq!(find("*", &mut never).as_deref(), Some("eth0"));
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn waits_until_it_appears_or_it_is_told_to_stop() {
        let root = temp_root("wait");
        // it appears during the second pause: found on the third look, after two pauses
        let mut pauses = 0;
        let mut appear = |_| {
            pauses += 1;
            if pauses == 2 {
                std::fs::create_dir_all(root.join("sys/class/net/usb0")).unwrap();
            }
            false
        };
        let found = wait_for(&root, "t", "usb*", Duration::ZERO, None, &mut appear);
        assert_eq!((found.as_deref(), pauses), (Some("usb0"), 2));
        // never there: it stops when told to (lo never counts)
        let mut pauses = 0;
        let mut stop_third = |_| {
            pauses += 1;
            pauses == 3
        };
        let found = wait_for(&root, "t", "wlan0", Duration::ZERO, None, &mut stop_third);
        assert_eq!((found, pauses), (None, 3));
        assert_eq!(
            wait_for(&root, "t", "l*", Duration::ZERO, None, &mut |_| true),
            None
        );
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn the_hint_names_what_is_there() {
        let root = temp_root("hint");
        std::fs::create_dir_all(root.join("sys/class/net/wlan0")).unwrap();
        let text = missing_interface(&root, "wifi", "wlan1", Duration::from_secs(15));
        assert!(
            text.starts_with("wifi: no wlan1 after 15s (interfaces: lo, wlan0)"),
            "{text}"
        );
        std::fs::remove_dir_all(&root).unwrap();
        let text = missing_interface(&root, "dhcp", "eth*", Duration::from_secs(15));
        assert!(text.contains("(interfaces: none)"), "{text}");
    }
}
