//! Network and time. PID 1 does only what parses nothing from the network and starts the rest
//! as supervised programs of a second binary, [`PROGRAM`] (`boxinit-net dhcp IFACE`, `static
//! IFACE CIDR [GATEWAY]`, `time ...`, `wifi ...`, in `src/bin/boxinit-net/`), so a bug in a
//! packet parser costs a restart of that program, never PID 1 (ARCHITECTURE.md), and PID 1's
//! own binary carries none of their code (nor the DNS resolver the SNTP client needs): about
//! 90 KiB less to load and translate on every boot.
//!
//! Which side each file is on:
//! - PID 1: this file (loopback up, `/etc/hosts` and the `[network] dns` resolv.conf at boot,
//!   and the network programs to supervise from `[network]`/`[time]`) and `wifi.rs` (`[wifi]`
//!   as a service, its supplicant config written).
//! - Both: `clock.rs` (the floor PID 1 applies, the time the `time` program saves),
//!   `link.rs` (rtnetlink requests, sent through `Sys` by either; interface facts from sysfs)
//!   and `resolv.rs` (the lease files and resolv.conf every writer rebuilds).
//! - The programs only: `protocol/` (DHCP, its lease state machine, IPv4/UDP headers, SNTP),
//!   pure and fuzzed, in the library so the fuzz targets and tests reach them.

pub mod clock;
pub mod link;
pub mod protocol;
pub mod resolv;
pub mod wifi;

use std::path::{Path, PathBuf};

use crate::config::{BoxConfig, Config, ExitAction, RestartPolicy};
use crate::fnmatch::fnmatch;
use crate::supervision::program::{self, Program};
use crate::sys::Sys;
use link::RouteRequest;

/// The file name of the network programs' binary (`src/bin/boxinit-net/`): it lies beside
/// the init (`/boxinit-net` in the initramfs xtask packs).
pub const PROGRAM: &str = "boxinit-net";

/// The environment variable that gives the network programs the log level PID 1 runs at.
pub const LOG_LEVEL_ENV: &str = "BOXINIT_LOG_LEVEL";

/// Where the network programs' binary is for an init running as `init_exe`: beside it.
pub fn program_beside(init_exe: &Path) -> PathBuf {
    init_exe.with_file_name(PROGRAM)
}

/// Loopback up. Only the link: bringing `lo` up makes the kernel add 127.0.0.1/8 itself (IPv4's
/// `inetdev_event` on NETDEV_UP for a loopback device, in every kernel boxinit runs on), and
/// each netlink request costs PID 1 5-10 ms under QEMU, on the way to the box.
pub fn loopback_up(sys: &mut dyn Sys, root: &Path) {
    let index = link::interface(root, "lo").map_or(1, |i| i.index);
    let request = RouteRequest::LinkUp { index };
    if let Err(e) = sys.netlink_route(&request) {
        log::warn!("loopback: cannot set {request}: {e}")
    }
}

/// `/etc/hosts`, and `/etc/resolv.conf` with the `[network] dns` servers (DHCP clients add
/// theirs as they get leases).
pub fn write_resolver_files(root: &Path, cfg: &Config) {
    let hosts = root.join(resolv::HOSTS.trim_start_matches('/'));
    if let Err(e) = resolv::write_atomically(&hosts, &resolv::hosts(cfg.system.hostname.as_deref()))
    {
        log::warn!("cannot write /etc/hosts: {e}");
    }
    let facts = resolv::Facts {
        dns: cfg.network.dns.clone(),
        ..resolv::Facts::default()
    };
    let wanted = !cfg.network.dns.is_empty()
        || !cfg.network.dhcp.is_empty()
        || !cfg.network.static_.is_empty();
    if wanted {
        if let Err(e) = resolv::publish(root, "config", Some(&facts)) {
            log::warn!("cannot write /etc/resolv.conf: {e}");
        }
    }
}

/// The interfaces to run DHCP on: each name as is (its client waits for it); each glob
/// expanded over the interfaces present, or left a glob when none matches yet (its client
/// takes the first that appears).
pub fn dhcp_interfaces(patterns: &[String], present: &[String]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for pattern in patterns {
        let is_glob = pattern.contains(['*', '?', '[']);
        let matches: Vec<&String> = present
            .iter()
            .filter(|name| *name != "lo" && fnmatch(pattern, name))
            .collect();
        if !is_glob || matches.is_empty() {
            out.push(pattern.clone());
        } else {
            out.extend(matches.into_iter().cloned());
        }
    }
    let mut seen = Vec::new();
    out.retain(|name| {
        let new = !seen.contains(name);
        seen.push(name.clone());
        new
    });
    out
}

/// The network and time programs `cfg` asks for, as supervised services of `exe` (the
/// [`PROGRAM`] binary): `dhcp-IFACE`, `static-IFACE`, `time`. Restarted with the default backoff when
/// they exit.
pub fn programs(
    cfg: &Config,
    exe: &Path,
    present: &[String],
    boot_dir: Option<&Path>,
) -> Vec<(BoxConfig, Program)> {
    let mut wanted: Vec<(String, Vec<String>)> = Vec::new();
    for iface in dhcp_interfaces(&dhcp_patterns(cfg), present) {
        wanted.push((format!("dhcp-{iface}"), vec!["dhcp".into(), iface]));
    }
    for s in &cfg.network.static_ {
        let mut args = vec!["static".into(), s.interface.clone(), s.address.to_string()];
        args.extend(s.gateway.map(|g| g.to_string()));
        wanted.push((format!("static-{}", s.interface), args));
    }
    if let Some(args) = time_args(cfg, boot_dir) {
        wanted.push(("time".into(), args));
    }
    let level = cfg.system.log_level.as_str().to_string();
    wanted
        .into_iter()
        .filter_map(|(name, args)| {
            let service = BoxConfig {
                name: Some(name),
                path: exe.display().to_string(),
                args,
                env: [(LOG_LEVEL_ENV.to_string(), level.clone())].into(),
                restart: RestartPolicy::Always,
                on_exit: ExitAction::Wait,
                ..BoxConfig::default()
            };
            match program::resolve(&service, None) {
                Ok(program) => Some((service, program)),
                Err(e) => {
                    log::error!("network: {e}; not started");
                    None
                }
            }
        })
        .collect()
}

/// `[network] dhcp`, and the `[wifi]` interface when Wi-Fi asks for DHCP.
fn dhcp_patterns(cfg: &Config) -> Vec<String> {
    let mut patterns = cfg.network.dhcp.clone();
    patterns.extend(wifi::dhcp_interface(&cfg.wifi).map(str::to_string));
    patterns
}

/// `boxinit-net time` arguments, when `[time]` has anything to do: servers to ask (its own, or
/// DHCP's when DHCP runs), or a file to keep the time in.
fn time_args(cfg: &Config, boot_dir: Option<&Path>) -> Option<Vec<String>> {
    let t = &cfg.time;
    let dhcp = t.dhcp_servers && !dhcp_patterns(cfg).is_empty();
    // With a boot partition the time goes to tmpfs, and PID 1 copies it to the file in a
    // write window (`field::run`): the card stays read-only, and nothing but PID 1 writes it.
    let save = t
        .save
        .as_deref()
        .and_then(|p| save_path(p, boot_dir))
        .map(|p| match boot_dir {
            Some(_) => PathBuf::from(TIME_SAVED),
            None => p,
        });
    if t.servers.is_empty() && !dhcp && save.is_none() {
        return None;
    }
    let mut args = vec![
        "time".to_string(),
        "--interval".to_string(),
        t.interval.as_secs().max(1).to_string(),
    ];
    if dhcp {
        args.push("--dhcp-servers".into());
    }
    if let Some(path) = save {
        args.push("--save".into());
        args.push(path.display().to_string());
    }
    args.extend(t.servers.iter().cloned());
    Some(args)
}

/// Where the time program saves the time when there is a boot partition: PID 1 copies it to
/// `[time] save` (`field::run::TIME_FROM`).
pub const TIME_SAVED: &str = "/run/boxinit/time";

/// `[time] save`: relative to the boot partition unless absolute; None (with a warning) when
/// relative and there is no boot partition.
pub fn save_path(path: &str, boot_dir: Option<&Path>) -> Option<PathBuf> {
    let p = Path::new(path);
    match boot_dir {
        _ if p.is_absolute() => Some(p.to_path_buf()),
        Some(dir) => Some(dir.join(p)),
        None => {
            log::warn!("[time] save = {path:?} is relative but there is no boot partition; the time is not kept");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recorder::Recorder;

    fn names(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn dhcp_interface_patterns() {
        let present = names(&["eth0", "eth1", "lo", "wlan0"]);
        assert_eq!(
            dhcp_interfaces(&names(&["eth*"]), &present),
            ["eth0", "eth1"]
        );
        assert_eq!(
            dhcp_interfaces(&names(&["*"]), &present),
            ["eth0", "eth1", "wlan0"]
        );
        assert_eq!(
            dhcp_interfaces(&names(&["usb*"]), &present),
            ["usb*"],
            "waits for one"
        );
        assert_eq!(
            dhcp_interfaces(&names(&["eth2"]), &present),
            ["eth2"],
            "waits for it"
        );
        assert_eq!(
            dhcp_interfaces(&names(&["eth0", "eth*"]), &present),
            ["eth0", "eth1"]
        );
    }

    #[test]
    fn programs_from_the_config() {
        let cfg: Config = {
            let (c, e) = crate::config::load(&[crate::config::Layer::Text {
                name: "t".into(),
                text: r#"
[network]
dhcp = ["eth*"]
[[network.static]]
interface = "eth9"
address = "192.168.1.10/24"
gateway = "192.168.1.1"
[time]
servers = ["10.0.2.2:1123"]
save = "clock"
"#
                .into(),
            }]);
            assert!(e.is_empty(), "{e:?}");
            c
        };
        let p = programs(
            &cfg,
            Path::new("/boxinit-net"),
            &names(&["eth0", "lo"]),
            Some(Path::new("/boot")),
        );
        let shown: Vec<String> = p
            .iter()
            .map(|(_, p)| format!("{}: {} {}", p.name, p.program.display(), p.args.join(" ")))
            .collect();
        assert_eq!(
            shown,
            [
                "dhcp-eth0: /boxinit-net dhcp eth0",
                "static-eth9: /boxinit-net static eth9 192.168.1.10/24 192.168.1.1",
                "time: /boxinit-net time --interval 1800 --dhcp-servers --save /run/boxinit/time 10.0.2.2:1123",
            ]
        );
        assert!(p.iter().all(|(c, _)| c.restart == RestartPolicy::Always));
        // nothing configured: nothing runs
        assert!(programs(&Config::default(), Path::new("/boxinit-net"), &[], None).is_empty());
        assert_eq!(save_path("/data/t", None), Some(PathBuf::from("/data/t")));
        assert_eq!(save_path("t", None), None);
    }

    /// `[wifi]` with `dhcp = true` (its default) gets a DHCP client on its interface, which
    /// waits for the association (the link) before it asks.
    #[test]
    fn wifi_interface_gets_dhcp() {
        let (cfg, e) = crate::config::load(&[crate::config::Layer::Text {
            name: "t".into(),
            text: "[wifi]\nssid = \"box\"\npsk = \"12345678\"\n".into(),
        }]);
        assert!(e.is_empty(), "{e:?}");
        let p = programs(&cfg, Path::new("/boxinit-net"), &[], None);
        let shown: Vec<String> = p
            .iter()
            .map(|(_, p)| format!("{} {}", p.name, p.args.join(" ")))
            .collect();
        assert_eq!(
            shown,
            [
                "dhcp-wlan0 dhcp wlan0",
                "time time --interval 1800 --dhcp-servers"
            ]
        );
    }

    #[test]
    fn loopback_is_one_request_and_survives_its_failure() {
        let mut sys = Recorder::new();
        sys.fail_when(
            |c| matches!(c, crate::sys::recorder::Call::NetlinkRoute { .. }),
            19,
        );
        loopback_up(&mut sys, Path::new("/nonexistent"));
        assert_eq!(sys.transcript(), "netlink(link 1 up)\n");
    }
}
