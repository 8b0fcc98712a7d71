//! The `init.toml` schema: one plain struct per section with its defaults, the enums of
//! allowed words, and the serde helpers that read octal modes, umasks, durations and
//! resource limits. Only the shape and the per-value parsing; error positions are found by
//! `locate.rs`.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use super::boot_device::DeviceSpec;
use super::duration::parse_duration;
use super::error::suggest;

/// The whole configuration; every key is optional.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[system]`: machine-wide settings.
    pub system: System,
    /// `[boot]`: which partition to mount at `/boot` and how.
    pub boot: Boot,
    /// `[modules]`: kernel modules to load beyond coldplug.
    pub modules: Modules,
    /// `[box]`: the supervised program.
    #[serde(rename = "box")]
    pub box_: BoxConfig,
    /// `[[service]]`: more supervised programs, started in order after the box.
    pub service: Vec<BoxConfig>,
    /// `[watchdog]`: the hardware watchdog, petted while the machine (and the box) is alive.
    pub watchdog: Watchdog,
    /// `[shutdown]`: how the machine goes down.
    pub shutdown: Shutdown,
    /// `[[device]]`: mode, owner, group and symlinks of device nodes.
    pub device: Vec<DeviceRule>,
    /// `[[automount]]`: partitions mounted when they appear, unmounted when they go.
    pub automount: Vec<Automount>,
    /// `[board]`: Raspberry Pi features (USB serial console, sound, I2C, SPI); `config::load`
    /// adds their modules and programs to the sections above.
    pub board: super::board::Board,
    /// `[wifi]`: the wireless network and its supplicant (`wifi.rs`).
    pub wifi: super::wifi::Wifi,
    /// `[network]`: DHCP and static addresses, name servers (`network.rs`).
    pub network: super::network::Network,
    /// `[time]`: SNTP servers and the saved clock (`network.rs`).
    pub time: super::network::Time,
    /// `[update]`: trial runs of a new box or config, health, the boot-loop brake (`update.rs`).
    pub update: super::update::Update,
    /// `[report]`: shutdown reports on the card (`update.rs`).
    pub report: super::update::Report,
}

impl Config {
    /// The `[[service]]`s, each with its name: its own, or `serviceN` (1-based) when it has
    /// none, as log lines and the supervisor call it.
    pub fn named_services(&self) -> Vec<BoxConfig> {
        let mut services = self.service.clone();
        for (i, service) in services.iter_mut().enumerate() {
            if service.name.is_none() {
                service.name = Some(format!("service{}", i + 1));
            }
        }
        services
    }
}

/// `[system]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct System {
    /// Host name to set; None leaves the kernel's.
    pub hostname: Option<String>,
    /// Log verbosity.
    pub log_level: LogLevel,
    /// What to do when boot cannot go on.
    pub rescue: RescueAction,
    /// How long to show the error before the rescue action.
    #[serde(deserialize_with = "duration")]
    pub rescue_delay: Duration,
    /// What Ctrl-Alt-Del (SIGINT to PID 1) does.
    pub ctrl_alt_del: ExitAction,
    /// Keys (`"box.user"`, or a whole section: `"box"`) that only the built-in config may set:
    /// the card's `init.toml` and the kernel command line cannot (`lock.rs`).
    pub locked: Vec<String>,
    /// `size=` of the tmpfs on `/run`, `/tmp` and `/dev/shm` (`config/tmpfs.rs`).
    pub run_size: String,
    pub tmp_size: String,
    pub shm_size: String,
}

impl Default for System {
    fn default() -> System {
        System {
            hostname: None,
            log_level: LogLevel::default(),
            rescue: RescueAction::default(),
            rescue_delay: Duration::from_secs(10),
            ctrl_alt_del: ExitAction::Reboot,
            locked: Vec::new(),
            run_size: super::tmpfs::DEFAULT_RUN_SIZE.to_string(),
            tmp_size: super::tmpfs::DEFAULT_TMP_SIZE.to_string(),
            shm_size: super::tmpfs::DEFAULT_SHM_SIZE.to_string(),
        }
    }
}

/// `[boot]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Boot {
    /// Which device holds the boot partition.
    pub device: DeviceSpec,
    /// How long to wait for it to appear.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// Mount read-only: a FAT card written to when power is cut gets corrupted.
    pub read_only: bool,
    /// Archives on the boot partition (gzip-compressed newc cpio, relative paths) unpacked
    /// into the root file system where coldplug's second pass starts: what serves later than
    /// the box (`storage::extras`). xtask lists the one it writes in the built-in config.
    pub extras: Vec<String>,
}

impl Default for Boot {
    fn default() -> Boot {
        Boot {
            device: DeviceSpec::Auto,
            timeout: Duration::from_secs(10),
            read_only: true,
            extras: Vec::new(),
        }
    }
}

/// `[modules]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Modules {
    /// Modules to load (with their dependencies), `-` and `_` alike; aliases work too.
    pub load: Vec<String>,
    /// Module name -> parameters, `"p1=v1 p2=v2"`.
    pub params: BTreeMap<String, String>,
    /// Load what every device needs (its `modalias` matched against `modules.alias`): those
    /// present at boot, and those that appear later.
    pub coldplug: bool,
    /// Load modules that do not depend on each other at the same time. Off by default: under
    /// QEMU (1 or 2 vCPUs) it measured 5-25% slower than one after another.
    pub parallel: bool,
    /// Coldplug loads the drivers of the devices that can hold the boot partition first and
    /// the others once it is mounted: on the loader thread once the box has started (the
    /// default: the box sees those devices appear, as with hotplug, and says what it needs
    /// with `wait_for`), or, with `false`, before the box starts (every present device's
    /// driver loaded when it starts, as before).
    pub coldplug_after_box: bool,
    /// The modules that bring up the boot partition's disk (`["bcm2835"]`, a Pi 3's SD host),
    /// loaded first: with them, coldplug's first pass (a walk of sysfs) is not needed before
    /// the boot partition; it runs with the second pass, or when the partition does not show
    /// up within 2 s (a Pi booting from USB).
    pub boot: Vec<String>,
}

impl Default for Modules {
    fn default() -> Modules {
        Modules {
            load: Vec::new(),
            params: BTreeMap::new(),
            coldplug: true,
            parallel: false,
            coldplug_after_box: true,
            boot: Vec::new(),
        }
    }
}

/// `[[device]]`: what to do with the node of every device whose name matches.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceRule {
    /// Glob on the device's name under /dev (`ttyUSB*`, `input/event*`) or its kernel name.
    #[serde(rename = "match")]
    pub match_: String,
    /// Glob on the device's subsystem (`tty`, `block`, `misc`); any when absent.
    #[serde(default)]
    pub subsystem: Option<String>,
    /// Permission bits, an octal string such as `"0660"`.
    #[serde(default, deserialize_with = "octal_mode")]
    pub mode: Option<u32>,
    /// Owner, as a number (the initramfs has no user database).
    #[serde(default, alias = "uid")]
    pub owner: Option<u32>,
    /// Group, as a number.
    #[serde(default, alias = "gid")]
    pub group: Option<u32>,
    /// A link to the node: relative names are under /dev (`serial0` is `/dev/serial0`).
    #[serde(default)]
    pub symlink: Option<String>,
}

/// `[[automount]]`: a partition to mount when it appears.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Automount {
    /// The file system's label (compared without regard to case), e.g. `"STICK"`.
    #[serde(default)]
    pub label: Option<String>,
    /// The file system type, e.g. `"vfat"`.
    #[serde(default)]
    pub fstype: Option<String>,
    /// Where to mount it; created when missing.
    pub path: String,
    /// Mount read-only (the default: a stick pulled out while written to gets corrupted).
    #[serde(default = "yes")]
    pub read_only: bool,
    /// Mount options passed to the file system (`"iocharset=utf8"`).
    #[serde(default)]
    pub options: String,
}

fn yes() -> bool {
    true
}

/// Parse `"0660"` (octal permission bits, at most `07777`).
pub fn parse_mode(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim(), 8)
        .ok()
        .filter(|m| *m <= 0o7777)
        .ok_or_else(|| {
            format!("`{s}` is not a file mode; write it in octal as a string, like \"0660\"")
        })
}

fn octal_mode<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u32>, D::Error> {
    let s = String::deserialize(d)?;
    parse_mode(&s).map(Some).map_err(serde::de::Error::custom)
}

/// `[box]`, and each `[[service]]` (same keys).
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BoxConfig {
    /// What log lines call it; a service's name (`[box]`: "box").
    pub name: Option<String>,
    /// The program, relative to the boot partition unless absolute.
    pub path: String,
    /// Arguments after the program name.
    pub args: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Working directory; None means the boot partition's mount point.
    pub working_dir: Option<String>,
    /// When to restart it after it exits.
    pub restart: RestartPolicy,
    /// What the machine does when it exits and is not restarted.
    pub on_exit: ExitAction,
    /// Delays between restarts.
    pub backoff: Backoff,
    /// Too many restarts in a short time: give up and act.
    pub crash_loop: CrashLoop,
    /// Supervise it, or hand PID 1 over to it.
    pub mode: Mode,
    /// A tty for stdin/stdout/stderr, made its controlling terminal; None: init's console.
    pub console: Option<String>,
    /// User id to run as; None: root.
    pub user: Option<u32>,
    /// Group id to run as; None: root.
    pub group: Option<u32>,
    /// Supplementary group ids.
    pub groups: Vec<u32>,
    /// File mode creation mask, octal as a string (`"022"`); None: the init's (022).
    #[serde(deserialize_with = "umask")]
    pub umask: Option<String>,
    /// Resource limits, soft = hard: `{ nofile = 1024, core = 0 }`.
    #[serde(deserialize_with = "rlimits")]
    pub rlimits: BTreeMap<String, u64>,
    /// Set `PR_SET_NO_NEW_PRIVS`: setuid programs cannot gain privileges.
    pub no_new_privs: bool,
    /// What it needs before it starts (`wait_for.rs`): it is started once all is there.
    pub wait_for: Vec<super::wait_for::Need>,
    /// How long it waits for `wait_for`; then it starts anyway, with an error naming what
    /// never came.
    #[serde(deserialize_with = "duration")]
    pub wait_timeout: Duration,
}

/// The default `wait_timeout`.
pub const WAIT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for BoxConfig {
    fn default() -> BoxConfig {
        BoxConfig {
            name: None,
            path: "box".to_string(),
            args: Vec::new(),
            env: BTreeMap::new(),
            working_dir: None,
            restart: RestartPolicy::default(),
            on_exit: ExitAction::default(),
            backoff: Backoff::default(),
            crash_loop: CrashLoop::default(),
            mode: Mode::default(),
            console: None,
            user: None,
            group: None,
            groups: Vec::new(),
            umask: None,
            rlimits: BTreeMap::new(),
            no_new_privs: false,
            wait_for: Vec::new(),
            wait_timeout: WAIT_TIMEOUT,
        }
    }
}

/// `[box.crash_loop]`: more than `max` restarts within `within` means the box cannot run.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CrashLoop {
    /// Restarts allowed within the window; 0 turns the limit off.
    pub max: u32,
    /// The window.
    #[serde(deserialize_with = "duration")]
    pub within: Duration,
    /// What to do then.
    pub action: ExitAction,
}

impl Default for CrashLoop {
    fn default() -> CrashLoop {
        CrashLoop {
            max: 0,
            within: Duration::from_secs(60),
            action: ExitAction::Reboot,
        }
    }
}

/// `[watchdog]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Watchdog {
    /// The watchdog device; None: no watchdog.
    pub device: Option<String>,
    /// The timeout set on the device (whole seconds); it is petted every half of it.
    #[serde(deserialize_with = "duration")]
    pub timeout: Duration,
    /// If set, pet only while the box touched `/run/boxinit/heartbeat` within this long.
    #[serde(deserialize_with = "optional_duration")]
    pub heartbeat: Option<Duration>,
}

impl Default for Watchdog {
    fn default() -> Watchdog {
        Watchdog {
            device: None,
            timeout: Duration::from_secs(15),
            heartbeat: None,
        }
    }
}

/// An octal umask string (`"022"`, `"0o027"`) as a number.
pub fn parse_umask(s: &str) -> Result<u32, String> {
    let digits = s.trim().trim_start_matches("0o");
    u32::from_str_radix(digits, 8)
        .ok()
        .filter(|m| *m <= 0o777)
        .ok_or_else(|| format!("`{s}` is not an octal umask such as \"022\""))
}

/// `[box.backoff]`: see `backoff.rs` for how these are used.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Backoff {
    /// Delay before the first restart.
    #[serde(deserialize_with = "duration")]
    pub initial: Duration,
    /// Longest delay.
    #[serde(deserialize_with = "duration")]
    pub max: Duration,
    /// A run at least this long resets the delay to `initial`.
    #[serde(deserialize_with = "duration")]
    pub reset_after: Duration,
}

impl Default for Backoff {
    fn default() -> Backoff {
        Backoff {
            initial: Duration::from_millis(100),
            max: Duration::from_secs(30),
            reset_after: Duration::from_secs(60),
        }
    }
}

/// `[shutdown]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Shutdown {
    /// How long services get between SIGTERM and SIGKILL.
    #[serde(deserialize_with = "duration")]
    pub grace: Duration,
}

impl Default for Shutdown {
    fn default() -> Shutdown {
        Shutdown {
            grace: Duration::from_secs(5),
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).map_err(serde::de::Error::custom)
}

fn optional_duration<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    duration(d).map(Some)
}

fn umask<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let s = String::deserialize(d)?;
    parse_umask(&s).map_err(serde::de::Error::custom)?;
    Ok(Some(s))
}

/// The limits `[box] rlimits` knows, named as `prlimit(1)` does.
pub const RLIMITS: &[&str] = &[
    "cpu",
    "fsize",
    "data",
    "stack",
    "core",
    "rss",
    "nproc",
    "nofile",
    "memlock",
    "as",
    "locks",
    "sigpending",
    "msgqueue",
    "nice",
    "rtprio",
    "rttime",
];

fn rlimits<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, u64>, D::Error> {
    let map = BTreeMap::<String, u64>::deserialize(d)?;
    for key in map.keys() {
        if !RLIMITS.contains(&key.as_str()) {
            let mut msg = format!("unknown limit `{key}` (known: {})", RLIMITS.join(", "));
            if let Some(s) = suggest(key, RLIMITS.iter().copied()) {
                msg = format!("unknown limit `{key}`, did you mean `{s}`?");
            }
            return Err(serde::de::Error::custom(msg));
        }
    }
    Ok(map)
}

/// An enum read from a lowercase string (case-insensitively, for hand-edited files), with
/// `FromStr`, `Display`, `NAMES` and an error listing the allowed values.
macro_rules! choice {
    ($(#[$meta:meta])* $name:ident default $default:ident {
        $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+
    }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
        #[serde(try_from = "String")]
        pub enum $name {
            $($(#[$vmeta])* $variant,)+
        }

        impl $name {
            /// Every accepted value, as written in `init.toml`.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The value as written in `init.toml`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }
        }

        impl Default for $name {
            fn default() -> $name {
                $name::$default
            }
        }

        impl std::str::FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<$name, String> {
                match s.to_ascii_lowercase().as_str() {
                    $($text => Ok($name::$variant),)+
                    _ => Err($crate::config::error::not_one_of(s, $name::NAMES)),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<$name, String> {
                s.parse()
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

/// For the other sections' files (`update.rs`).
pub(crate) use choice;

choice! {
    /// `system.log_level`
    LogLevel default Info {
        /// Errors only.
        Error = "error",
        /// Errors and warnings.
        Warn = "warn",
        /// The boot story (the default).
        Info = "info",
        /// Details for debugging a boot.
        Debug = "debug",
        /// Everything.
        Trace = "trace",
    }
}

impl From<LogLevel> for log::LevelFilter {
    fn from(l: LogLevel) -> log::LevelFilter {
        match l {
            LogLevel::Error => log::LevelFilter::Error,
            LogLevel::Warn => log::LevelFilter::Warn,
            LogLevel::Info => log::LevelFilter::Info,
            LogLevel::Debug => log::LevelFilter::Debug,
            LogLevel::Trace => log::LevelFilter::Trace,
        }
    }
}

choice! {
    /// `system.rescue`: what to do when boot cannot go on.
    RescueAction default Reboot {
        /// Reboot after `rescue_delay` (the default: an appliance should come back by itself).
        Reboot = "reboot",
        /// Power off after `rescue_delay`.
        Poweroff = "poweroff",
        /// Halt after `rescue_delay`.
        Halt = "halt",
        /// A shell on the console when the initramfs has `/bin/sh`, else reboot.
        Shell = "shell",
        /// Stay up doing nothing, so the console can be read.
        Wait = "wait",
    }
}

choice! {
    /// `box.restart`: when to restart the box after it exits.
    RestartPolicy default Always {
        /// Whatever the exit status.
        Always = "always",
        /// Only after a non-zero exit status or a signal.
        OnFailure = "on-failure",
        /// Never; `on_exit` applies at once.
        Never = "never",
    }
}

choice! {
    /// `box.on_exit`: what the machine does when the box is not restarted.
    ExitAction default Reboot {
        /// Power off.
        Poweroff = "poweroff",
        /// Reboot (the default).
        Reboot = "reboot",
        /// Halt.
        Halt = "halt",
        /// A shell on the console when the initramfs has `/bin/sh`, else reboot.
        Shell = "shell",
        /// Stay up doing nothing.
        Wait = "wait",
    }
}

choice! {
    /// `box.mode`: how the box runs.
    Mode default Supervise {
        /// boxinit stays PID 1, restarts it and shuts down cleanly (the default).
        Supervise = "supervise",
        /// After setup, boxinit execs the box as PID 1; the box must reap and handle signals.
        Exec = "exec",
    }
}
