//! The `init.toml` schema: parse, validate and merge config layers into a [`Config`], with
//! errors that name file, line, column and key; no I/O (callers read the files and
//! `/proc/cmdline`, see `cmdline.rs`) and no policy about what to do with the result.

pub mod cmdline;

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

use crate::storage::partition::DeviceSpec;

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
}

impl Default for System {
    fn default() -> System {
        System {
            hostname: None,
            log_level: LogLevel::default(),
            rescue: RescueAction::default(),
            rescue_delay: Duration::from_secs(10),
            ctrl_alt_del: ExitAction::Reboot,
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
}

impl Default for Boot {
    fn default() -> Boot {
        Boot {
            device: DeviceSpec::Auto,
            timeout: Duration::from_secs(10),
            read_only: true,
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
}

impl Default for Modules {
    fn default() -> Modules {
        Modules {
            load: Vec::new(),
            params: BTreeMap::new(),
            coldplug: true,
            parallel: false,
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
}

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

/// Parse a human duration such as `"500ms"`, `"10s"`, `"1m 30s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write it like \"500ms\", \"10s\" or \"1m\"")
    })
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

/// "`x` is not one of a, b, c", with a suggestion when one is close.
fn not_one_of(value: &str, names: &[&str]) -> String {
    let mut msg = format!("`{value}` is not one of {}", names.join(", "));
    if let Some(s) = suggest(value, names.iter().copied()) {
        msg.push_str(&format!("; did you mean `{s}`?"));
    }
    msg
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
                    _ => Err(not_one_of(s, $name::NAMES)),
                }
            }
        }

        impl TryFrom<String> for $name {
            type Error = String;
            fn try_from(s: String) -> Result<$name, String> {
                s.parse()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

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

// ---------------------------------------------------------------------------------------------
// Errors

/// Something wrong in one config layer, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// File name, or `kernel command line`.
    pub source: String,
    /// 1-based line, when the layer is text.
    pub line: Option<usize>,
    /// 1-based column (in characters), when the layer is text.
    pub column: Option<usize>,
    /// Dotted key, e.g. `box.restat`, when known.
    pub key: Option<String>,
    /// What is wrong, in one line.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.source)?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(col) = self.column {
                write!(f, ":{col}")?;
            }
        }
        write!(f, ": {}", self.message)
    }
}

/// Edit distance counting an insertion, deletion, substitution or swap of two neighbours as
/// one edit (optimal string alignment): `evn` is one edit from `env`. Keys are short and this
/// runs only on errors, so the plain three-row table is fine.
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut before: Vec<usize> = Vec::new();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.iter().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let at = |row: &Vec<usize>, k: usize| row.get(k).copied().unwrap_or(usize::MAX - 1);
            let mut d = (at(&prev, j) + usize::from(ca != cb))
                .min(at(&prev, j + 1) + 1)
                .min(at(&cur, j) + 1);
            let swapped =
                i > 0 && j > 0 && a.get(i - 1) == Some(cb) && b.get(j - 1) == Some(ca) && ca != cb;
            if swapped {
                d = d.min(at(&before, j - 1) + 1);
            }
            cur.push(d);
        }
        before = std::mem::replace(&mut prev, cur);
    }
    prev.last().copied().unwrap_or(0)
}

/// The closest of `known` to `word`, if it is close enough to be a likely typo.
pub fn suggest<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    known
        .into_iter()
        .map(|k| (edit_distance(word, k), k))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

/// 1-based (line, column) of byte `offset` in `text`; the column counts characters.
fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = text.get(..end).unwrap_or("");
    let line = before.matches('\n').count() + 1;
    let col = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
    (line, col)
}

/// The dotted key toml records inside an error. It has no accessor, but its `Display` prints
/// "in `a.b`" on the last line when the error carries no input text.
fn error_key(err: &toml::de::Error) -> Option<String> {
    let mut bare = err.clone();
    bare.set_input(None);
    let shown = bare.to_string();
    let last = shown.lines().last()?;
    let key = last.strip_prefix("in `")?.strip_suffix('`')?;
    Some(key.to_string())
}

/// Where an error's key stands in `text`, as a byte offset: the unknown key itself when there is
/// one (`field`), else the value of the key at `path` (a bad value). Errors from a table carry
/// the key's path but not its place, so the path is looked up in the spanned parse of the text.
/// Path segments may index arrays of tables: `service[1].name`.
fn key_offset(text: &str, path: Option<&str>, field: Option<&str>) -> Option<usize> {
    let doc = toml::de::DeTable::parse(text).ok()?;
    let mut segments: Vec<&str> = path.map(|p| p.split('.').collect()).unwrap_or_default();
    segments.extend(field);
    let mut table = doc.get_ref();
    let mut offset = None;
    for (i, segment) in segments.iter().enumerate() {
        let (name, index) = match segment.split_once('[') {
            Some((name, rest)) => (name, rest.trim_end_matches(']').parse::<usize>().ok()),
            None => (*segment, None),
        };
        let (key, value) = table.iter().find(|(k, _)| k.get_ref() == name)?;
        let last = i + 1 == segments.len();
        if last {
            return Some(if field.is_none() {
                value.span().start
            } else {
                key.span().start
            });
        }
        offset = Some(key.span().start);
        let next = segments
            .get(i + 1)
            .map(|s| s.split('[').next().unwrap_or(s));
        let value = match (value.get_ref(), index) {
            (toml::de::DeValue::Array(items), Some(n)) => items.get(n)?.get_ref(),
            // No index (serde names `device.mode`, not which [[device]]): the first entry
            // that has the next key.
            (toml::de::DeValue::Array(items), None) => items
                .iter()
                .map(|item| item.get_ref())
                .find(|item| match (item, next) {
                    (toml::de::DeValue::Table(t), Some(next)) => {
                        t.iter().any(|(k, _)| k.get_ref() == next)
                    }
                    _ => false,
                })
                .or_else(|| items.first().map(|item| item.get_ref()))?,
            (other, _) => other,
        };
        match value {
            toml::de::DeValue::Table(inner) => table = inner,
            _ => break,
        }
    }
    offset
}

/// The words between backquotes in `s`.
fn backquoted(s: &str) -> Vec<&str> {
    s.split('`').skip(1).step_by(2).collect()
}

/// serde's "unknown field `x`, expected one of `a`, `b`" split into (`x`, [a, b]).
fn unknown_field(message: &str) -> Option<(&str, Vec<&str>)> {
    let rest = message.strip_prefix("unknown field `")?;
    let (field, expected) = rest.split_once('`')?;
    Some((field, backquoted(expected)))
}

/// Turn a toml/serde error into a [`ConfigError`]; `text` is the layer's text, if it has one,
/// to turn the error's byte span into a line and column.
fn to_config_error(source: &str, text: Option<&str>, err: &toml::de::Error) -> ConfigError {
    // toml's own message is one line; its multi-line snippet lives only in Display
    let raw = err
        .message()
        .lines()
        .next()
        .unwrap_or("")
        .trim_end_matches('.');
    let section = error_key(err);
    let offset = match text {
        Some(text) => err
            .span()
            .map(|span| span.start)
            .or_else(|| key_offset(text, section.as_deref(), unknown_field(raw).map(|(f, _)| f))),
        None => None,
    };
    let (line, column) = match (text, offset) {
        (Some(text), Some(offset)) => {
            let (l, c) = line_col(text, offset);
            (Some(l), Some(c))
        }
        _ => (None, None),
    };
    let (key, message) = match unknown_field(raw) {
        Some((field, known)) => unknown_key(section.as_deref(), field, &known, line.is_some()),
        None => match section {
            Some(key) => (Some(key.clone()), format!("`{key}`: {raw}")),
            None => (None, raw.to_string()),
        },
    };
    ConfigError {
        source: source.to_string(),
        line,
        column,
        key,
        message,
    }
}

/// (dotted key, message) for an unknown key `field` in `section` (None: the top level).
/// With a location the message names the section like a TOML header; without one (a table
/// built from the command line) it names the full dotted key.
fn unknown_key(
    section: Option<&str>,
    field: &str,
    known: &[&str],
    located: bool,
) -> (Option<String>, String) {
    let key = match section {
        Some(s) => format!("{s}.{field}"),
        None => field.to_string(),
    };
    let what = match (section, located) {
        (None, _) => format!("unknown section `{field}`"),
        (Some(s), true) => format!("unknown key `{field}` in [{s}]"),
        (Some(_), false) => format!("unknown key `{key}`"),
    };
    let hint = match suggest(field, known.iter().copied()) {
        Some(s) => format!(", did you mean `{s}`?"),
        None if known.is_empty() => String::new(),
        None => format!(" (known: {})", known.join(", ")),
    };
    (Some(key), format!("{what}{hint}"))
}

// ---------------------------------------------------------------------------------------------
// Layers

/// One source of configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// TOML text, e.g. a file's contents; `name` is what errors call it (its path).
    Text {
        /// Name for error messages.
        name: String,
        /// The TOML text.
        text: String,
    },
    /// An already built table, e.g. from the kernel command line.
    Table {
        /// Name for error messages.
        name: String,
        /// The keys it sets.
        table: toml::Table,
    },
}

/// Check one layer against the schema; its table when valid.
fn validate(layer: &Layer) -> Result<toml::Table, ConfigError> {
    match layer {
        Layer::Text { name, text } => {
            // One parse of the text when it is valid (boot time): text to table, table to
            // schema. Only a layer with an error is read again the slow way, for the error's
            // line and column, so errors are exactly what `validate_text` reports.
            let table = text.parse::<toml::Table>().ok();
            match table {
                Some(table) if table.clone().try_into::<Config>().is_ok() => Ok(table),
                _ => validate_text(name, text),
            }
        }
        Layer::Table { name, table } => {
            table
                .clone()
                .try_into::<Config>()
                .map_err(|e| to_config_error(name, None, &e))?;
            Ok(table.clone())
        }
    }
}

/// A text layer: text to table (syntax errors carry their span), table to schema (errors
/// carry the key's path; `to_config_error` finds its line and column in the text).
///
/// The schema is deserialized from tables only, never straight from text: each serde
/// deserializer instantiates all of the schema's code again, and the second one cost the
/// static binary 130 KiB.
fn validate_text(name: &str, text: &str) -> Result<toml::Table, ConfigError> {
    let table = text
        .parse::<toml::Table>()
        .map_err(|e| to_config_error(name, Some(text), &e))?;
    table
        .clone()
        .try_into::<Config>()
        .map_err(|e| to_config_error(name, Some(text), &e))?;
    Ok(table)
}

/// Merge `top` over `base`: tables key by key, anything else (arrays too) replaced.
pub fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Build the configuration from `layers`, lowest precedence first.
///
/// Each layer is validated alone; a layer with an error is skipped entirely (boot goes on
/// with the others) and the error returned. Only the first error of a layer is reported.
pub fn load(layers: &[Layer]) -> (Config, Vec<ConfigError>) {
    let mut merged = toml::Table::new();
    let mut errors = Vec::new();
    for layer in layers {
        match validate(layer) {
            Ok(table) => merge(&mut merged, table),
            Err(e) => errors.push(e),
        }
    }
    // Layers valid alone merge into a valid whole; this fallback is a safety net only.
    match merged.try_into::<Config>() {
        Ok(config) => (config, errors),
        Err(e) => {
            errors.push(to_config_error("merged configuration", None, &e));
            (Config::default(), errors)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(name: &str, text: &str) -> Layer {
        Layer::Text {
            name: name.into(),
            text: text.into(),
        }
    }

    fn parse(t: &str) -> Result<Config, String> {
        match load(&[text("/boot/init.toml", t)]) {
            (c, e) if e.is_empty() => Ok(c),
            (_, e) => Err(e
                .iter()
                .map(|e| e.to_string())
                .collect::<Vec<_>>()
                .join("\n")),
        }
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    #[test]
    fn defaults() {
        let c = parse("").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.system.hostname, None);
        assert_eq!(c.system.log_level, LogLevel::Info);
        assert_eq!(c.system.rescue, RescueAction::Reboot);
        assert_eq!(c.system.rescue_delay, secs(10));
        assert_eq!(c.boot.device, DeviceSpec::Auto);
        assert_eq!(c.boot.timeout, secs(10));
        assert!(c.boot.read_only);
        assert!(c.modules.load.is_empty());
        assert!(c.modules.params.is_empty());
        assert_eq!(c.box_.path, "box");
        assert!(c.box_.args.is_empty());
        assert!(c.box_.env.is_empty());
        assert_eq!(c.box_.working_dir, None);
        assert_eq!(c.box_.restart, RestartPolicy::Always);
        assert_eq!(c.box_.on_exit, ExitAction::Reboot);
        assert_eq!(c.box_.backoff.initial, Duration::from_millis(100));
        assert_eq!(c.box_.backoff.max, secs(30));
        assert_eq!(c.box_.backoff.reset_after, secs(60));
        assert_eq!(c.shutdown.grace, secs(5));
        // empty sections keep the defaults too
        assert_eq!(
            parse("[system]\n[boot]\n[box]\n[box.backoff]\n").unwrap(),
            Config::default()
        );
    }

    #[test]
    fn full_file() {
        let c = parse(
            r#"
[system]
hostname = "puzzlebox"
log_level = "debug"
rescue = "wait"
rescue_delay = "1m 30s"

[boot]
device = "LABEL=BOOT"
timeout = "500ms"
read_only = false

[modules]
load = ["spi-bcm2835", "i2c_bcm2835"]
params = { snd-bcm2835 = "enable_headphones=1" }

[box]
path = "/bin/box"
args = ["--fast", "x y"]
env = { LANG = "C.UTF-8" }
working_dir = "/tmp"
restart = "on-failure"
on_exit = "poweroff"
backoff = { initial = "1s", max = "1m", reset_after = "2h" }

[shutdown]
grace = "0s"
"#,
        )
        .unwrap();
        assert_eq!(c.system.hostname.as_deref(), Some("puzzlebox"));
        assert_eq!(c.system.log_level, LogLevel::Debug);
        assert_eq!(c.system.rescue, RescueAction::Wait);
        assert_eq!(c.system.rescue_delay, secs(90));
        assert_eq!(c.boot.device, DeviceSpec::Label("BOOT".into()));
        assert_eq!(c.boot.timeout, Duration::from_millis(500));
        assert!(!c.boot.read_only);
        assert_eq!(c.modules.load, vec!["spi-bcm2835", "i2c_bcm2835"]);
        assert_eq!(
            c.modules.params.get("snd-bcm2835").map(String::as_str),
            Some("enable_headphones=1")
        );
        assert_eq!(c.box_.path, "/bin/box");
        assert_eq!(c.box_.args, vec!["--fast", "x y"]);
        assert_eq!(c.box_.env.get("LANG").map(String::as_str), Some("C.UTF-8"));
        assert_eq!(c.box_.working_dir.as_deref(), Some("/tmp"));
        assert_eq!(c.box_.restart, RestartPolicy::OnFailure);
        assert_eq!(c.box_.on_exit, ExitAction::Poweroff);
        assert_eq!(c.box_.backoff.initial, secs(1));
        assert_eq!(c.box_.backoff.max, secs(60));
        assert_eq!(c.box_.backoff.reset_after, secs(7200));
        assert_eq!(c.shutdown.grace, secs(0));
    }

    #[test]
    fn enum_values() {
        let cases = [
            ("[system]\nlog_level = \"error\"", LogLevel::Error),
            ("[system]\nlog_level = \"warn\"", LogLevel::Warn),
            ("[system]\nlog_level = \"TRACE\"", LogLevel::Trace),
        ];
        for (t, want) in cases {
            assert_eq!(parse(t).unwrap().system.log_level, want, "{t}");
        }
        for name in RescueAction::NAMES {
            let c = parse(&format!("[system]\nrescue = \"{name}\"")).unwrap();
            assert_eq!(c.system.rescue.as_str(), *name);
        }
        for name in RestartPolicy::NAMES {
            let c = parse(&format!("[box]\nrestart = \"{name}\"")).unwrap();
            assert_eq!(c.box_.restart.to_string(), *name);
        }
        for name in ExitAction::NAMES {
            let c = parse(&format!("[box]\non_exit = \"{name}\"")).unwrap();
            assert_eq!(c.box_.on_exit.to_string(), *name);
        }
        let levels = [
            (LogLevel::Error, log::LevelFilter::Error),
            (LogLevel::Warn, log::LevelFilter::Warn),
            (LogLevel::Info, log::LevelFilter::Info),
            (LogLevel::Debug, log::LevelFilter::Debug),
            (LogLevel::Trace, log::LevelFilter::Trace),
        ];
        for (l, f) in levels {
            assert_eq!(log::LevelFilter::from(l), f);
        }
    }

    /// Each case: (init.toml text, the one error it must give as displayed).
    #[test]
    fn error_messages() {
        let cases = [
            (
                "[box]\nrestat = \"never\"\n",
                "/boot/init.toml:2:1: unknown key `restat` in [box], did you mean `restart`?",
            ),
            (
                "[system]\nhostnme = \"x\"\n",
                "/boot/init.toml:2:1: unknown key `hostnme` in [system], did you mean `hostname`?",
            ),
            (
                "[system]\nloglevel = \"x\"\n",
                "/boot/init.toml:2:1: unknown key `loglevel` in [system], did you mean `log_level`?",
            ),
            (
                "[boot]\n  timout = \"1s\"\n",
                "/boot/init.toml:2:3: unknown key `timout` in [boot], did you mean `timeout`?",
            ),
            (
                "[modules]\nlaod = []\n",
                "/boot/init.toml:2:1: unknown key `laod` in [modules], did you mean `load`?",
            ),
            (
                "[shutdown]\ngrase = \"1s\"\n",
                "/boot/init.toml:2:1: unknown key `grase` in [shutdown], did you mean `grace`?",
            ),
            (
                "[box]\nbackoff = { initial = \"1s\", reset-after = \"1s\" }\n",
                "/boot/init.toml:2:29: unknown key `reset-after` in [box.backoff], did you mean `reset_after`?",
            ),
            (
                "[box.backoff]\nmx = \"1s\"\n",
                "/boot/init.toml:2:1: unknown key `mx` in [box.backoff], did you mean `max`?",
            ),
            (
                "[box]\ncoffee = 1\n",
                "/boot/init.toml:2:1: unknown key `coffee` in [box] (known: name, path, args, env, working_dir, restart, on_exit, backoff, crash_loop, mode, console, user, group, groups, umask, rlimits, no_new_privs)",
            ),
            (
                "[bx]\npath = \"x\"\n",
                "/boot/init.toml:1:2: unknown section `bx`, did you mean `box`?",
            ),
            (
                "hostname = \"x\"\n",
                "/boot/init.toml:1:1: unknown section `hostname` (known: system, boot, modules, box, service, watchdog, shutdown, device, automount)",
            ),
            (
                "[box]\nrestart = \"sometimes\"\n",
                "/boot/init.toml:2:11: `box.restart`: `sometimes` is not one of always, on-failure, never",
            ),
            (
                "[box]\nrestart = \"on_failure\"\n",
                "/boot/init.toml:2:11: `box.restart`: `on_failure` is not one of always, on-failure, never; did you mean `on-failure`?",
            ),
            (
                "[system]\nlog_level = 3\n",
                "/boot/init.toml:2:13: `system.log_level`: invalid type: integer `3`, expected a string",
            ),
            (
                "[box]\numask = \"999\"\n",
                "/boot/init.toml:2:9: `box.umask`: `999` is not an octal umask such as \"022\"",
            ),
            (
                "[box]\nrlimits = { nofiles = 1 }\n",
                "/boot/init.toml:2:11: `box.rlimits`: unknown limit `nofiles`, did you mean `nofile`?",
            ),
            (
                "[system]\nrescue = \"shel\"\n",
                "/boot/init.toml:2:10: `system.rescue`: `shel` is not one of reboot, poweroff, halt, shell, wait; did you mean `shell`?",
            ),
            (
                "[shutdown]\ngrace = \"5 parsecs\"\n",
                "/boot/init.toml:2:9: `shutdown.grace`: `5 parsecs` is not a duration (unknown time unit \"parsecs\", supported units: ns, us/µs, ms, sec, min, hours, days, weeks, months, years (and few variations)); write it like \"500ms\", \"10s\" or \"1m\"",
            ),
            (
                "[shutdown]\ngrace = 5\n",
                "/boot/init.toml:2:9: `shutdown.grace`: invalid type: integer `5`, expected a string",
            ),
            (
                "[boot]\ndevice = \"sda1\"\n",
                "/boot/init.toml:2:10: `boot.device`: bad boot device `sda1`: unknown form; expected `auto`, `none`, `LABEL=<label>`, `UUID=<XXXX-XXXX>`, `PARTUUID=<xxxxxxxx-nn or GPT GUID>` or `/dev/<name>`",
            ),
            (
                "[box]\nargs = \"--fast\"\n",
                "/boot/init.toml:2:8: `box.args`: invalid type: string \"--fast\", expected a sequence",
            ),
            (
                "[box]\npath = \"abc\n",
                "/boot/init.toml:2:12: invalid basic string, expected `\"`",
            ),
            (
                "[system]\n\nhostname = puzzlebox\n",
                "/boot/init.toml:3:12: string values must be quoted, expected literal string",
            ),
            (
                "[box]\npath = \"a\"\npath = \"b\"\n",
                "/boot/init.toml:3:1: duplicate key",
            ),
            ("[box\n", "/boot/init.toml:1:5: unclosed table, expected `]`"),
            (
                "# é\n[box]\nenv = { \"é\" = 1 }\n",
                "/boot/init.toml:3:15: `box.env.é`: invalid type: integer `1`, expected a string",
            ),
        ];
        for (t, want) in cases {
            let got = parse(t).unwrap_err();
            assert!(!got.contains('\n'), "one line only: {got}");
            assert_eq!(got, want, "{t}");
        }
    }

    /// The boot path parses a valid text layer once; what it returns must be what the two
    /// parses (schema from text, then table from text) returned, valid or not.
    #[test]
    fn one_parse_gives_what_two_gave() {
        let full = "[system]\nhostname = \"p\"\nlog_level = \"debug\"\nrescue_delay = \"1m 30s\"\n\
                    [boot]\ndevice = \"LABEL=BOOT\"\ntimeout = \"500ms\"\nread_only = false\n\
                    [modules]\nload = [\"vfat\"]\nparams = { snd-bcm2835 = \"x=1\" }\n\
                    [box]\nargs = [\"rss\", \"x y\"]\nenv = { LANG = \"C\" }\n\
                    backoff = { initial = \"1s\", max = \"1m\" }\n[shutdown]\ngrace = \"0s\"\n";
        let texts = [
            "",
            "# only a comment\n",
            full,
            "[box]\nargs = [\"rss\", \"poweroff\"]\n",
            "[modules]\nload = [\"virtio_blk\", \"vfat\"]\n[boot]\ndevice = \"auto\"\n",
            "[box]\nrestat = 1\n",
            "[boot]\ndevice = \"sda1\"\n",
            "[shutdown]\ngrace = 5\n",
            "[box\n",
            "[box]\npath = \"a\"\npath = \"b\"\n",
            "[system]\nhostname = 3\n",
        ];
        for t in texts {
            let layer = text("/boot/init.toml", t);
            assert_eq!(validate(&layer), validate_text("/boot/init.toml", t), "{t}");
        }
    }

    #[test]
    fn error_fields() {
        let (_, errs) = load(&[text("/boot/init.toml", "\n[box]\nrestat = 1\n")]);
        assert_eq!(
            errs,
            vec![ConfigError {
                source: "/boot/init.toml".into(),
                line: Some(3),
                column: Some(1),
                key: Some("box.restat".into()),
                message: "unknown key `restat` in [box], did you mean `restart`?".into(),
            }]
        );
    }

    fn table(t: &str) -> toml::Table {
        t.parse().unwrap()
    }

    fn cmdline(t: &str) -> Layer {
        Layer::Table {
            name: "kernel command line".into(),
            table: table(t),
        }
    }

    #[test]
    fn table_layer_errors_name_the_key() {
        let cases = [
            (
                "box.restat = 1",
                "kernel command line: unknown key `box.restat`, did you mean `restart`?",
                Some("box.restat"),
            ),
            (
                "box.backoff.mx = \"1s\"",
                "kernel command line: unknown key `box.backoff.mx`, did you mean `max`?",
                Some("box.backoff.mx"),
            ),
            (
                "sytem.hostname = \"x\"",
                "kernel command line: unknown section `sytem`, did you mean `system`?",
                Some("sytem"),
            ),
            (
                "box.restart = \"no\"",
                "kernel command line: `box.restart`: `no` is not one of always, on-failure, never",
                Some("box.restart"),
            ),
            (
                "boot.read_only = \"yes\"",
                "kernel command line: `boot.read_only`: invalid type: string \"yes\", expected a boolean",
                Some("boot.read_only"),
            ),
        ];
        for (t, want, key) in cases {
            let (c, errs) = load(&[cmdline(t)]);
            assert_eq!(c, Config::default());
            assert_eq!(errs.len(), 1, "{t}");
            assert_eq!(errs[0].to_string(), want, "{t}");
            assert_eq!(errs[0].key.as_deref(), key, "{t}");
            assert_eq!((errs[0].line, errs[0].column), (None, None));
        }
    }

    #[test]
    fn merge_precedence() {
        let builtin = text(
            "/etc/init.toml",
            "[system]\nhostname = \"base\"\nlog_level = \"warn\"\n[box]\nargs = [\"a\", \"b\"]\nenv = { A = \"1\", B = \"2\" }\n[modules]\nload = [\"virtio_blk\", \"vfat\"]\n",
        );
        let card = text(
            "/boot/init.toml",
            "[system]\nhostname = \"card\"\n[box]\nargs = [\"c\"]\nenv = { B = \"3\" }\nbackoff = { max = \"5s\" }\n",
        );
        let cmd = cmdline("system.log_level = \"trace\"\nbox.backoff.initial = \"1s\"");
        let (c, errs) = load(&[builtin.clone(), card.clone(), cmd.clone()]);
        assert!(errs.is_empty(), "{errs:?}");
        assert_eq!(c.system.hostname.as_deref(), Some("card"));
        assert_eq!(c.system.log_level, LogLevel::Trace);
        // arrays are replaced, not appended
        assert_eq!(c.box_.args, vec!["c"]);
        assert_eq!(c.modules.load, vec!["virtio_blk", "vfat"]);
        // tables merge key by key, down to nested ones
        let env: Vec<(&str, &str)> = c
            .box_
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(env, vec![("A", "1"), ("B", "3")]);
        assert_eq!(c.box_.backoff.initial, secs(1));
        assert_eq!(c.box_.backoff.max, secs(5));
        assert_eq!(c.box_.backoff.reset_after, secs(60));

        // order matters: the last layer wins
        let (c, _) = load(&[card, builtin]);
        assert_eq!(c.system.hostname.as_deref(), Some("base"));
        assert_eq!(c.box_.args, vec!["a", "b"]);
    }

    #[test]
    fn broken_layer_is_skipped_others_apply() {
        let builtin = text(
            "/etc/init.toml",
            "[system]\nhostname = \"base\"\n[box]\npath = \"/bin/box\"\n",
        );
        // valid keys first, then a typo: the whole layer must be ignored
        let card = text(
            "/boot/init.toml",
            "[system]\nhostname = \"card\"\n[box]\nrestat = \"never\"\n",
        );
        let cmd = cmdline("system.log_level = \"debug\"");
        let (c, errs) = load(&[builtin, card, cmd]);
        assert_eq!(c.system.hostname.as_deref(), Some("base"));
        assert_eq!(c.box_.path, "/bin/box");
        assert_eq!(c.box_.restart, RestartPolicy::Always);
        assert_eq!(c.system.log_level, LogLevel::Debug);
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].source, "/boot/init.toml");
        assert_eq!(errs[0].line, Some(4));

        // every layer broken: defaults, one error each
        let (c, errs) = load(&[text("a", "x = 1"), text("b", "[box"), cmdline("y.z = 1")]);
        assert_eq!(c, Config::default());
        let sources: Vec<&str> = errs.iter().map(|e| e.source.as_str()).collect();
        assert_eq!(sources, vec!["a", "b", "kernel command line"]);
        assert_eq!(load(&[]), (Config::default(), vec![]));
    }

    #[test]
    fn merge_replaces_non_tables() {
        let mut base = table("a = 1\nb = [1, 2]\n[t]\nx = 1\ny = 2\n[u]\nz = 1");
        merge(&mut base, table("b = [3]\nc = 4\nu = 5\n[t]\ny = 9\nw = 0"));
        assert_eq!(
            base,
            table("a = 1\nb = [3]\nc = 4\nu = 5\n[t]\nx = 1\ny = 9\nw = 0")
        );
    }

    #[test]
    fn display_forms() {
        let mut e = ConfigError {
            source: "f".into(),
            line: Some(3),
            column: Some(7),
            key: None,
            message: "m".into(),
        };
        assert_eq!(e.to_string(), "f:3:7: m");
        e.column = None;
        assert_eq!(e.to_string(), "f:3: m");
        e.line = None;
        e.column = Some(1);
        assert_eq!(e.to_string(), "f: m");
    }

    #[test]
    fn edit_distances_and_suggestions() {
        let cases = [
            ("", "", 0),
            ("abc", "", 3),
            ("", "abc", 3),
            ("restat", "restart", 1),
            ("kitten", "sitting", 3),
            ("on_failure", "on-failure", 1),
            ("é", "e", 1),
            ("evn", "env", 1),
            ("laod", "load", 1),
            ("ab", "ba", 1),
            ("abc", "ca", 3),
        ];
        for (a, b, d) in cases {
            assert_eq!(edit_distance(a, b), d, "{a} {b}");
        }
        let keys = ["path", "args", "env", "restart", "on_exit", "backoff"];
        let cases = [
            ("restat", Some("restart")),
            ("pth", Some("path")),
            ("evn", Some("env")),
            ("onexit", Some("on_exit")),
            ("xyz", None),
            ("hostname", None),
            ("", None),
        ];
        for (w, want) in cases {
            assert_eq!(suggest(w, keys), want, "{w}");
        }
    }

    #[test]
    fn line_col_positions() {
        let t = "ab\ncé\n\nx";
        let cases = [
            (0, (1, 1)),
            (1, (1, 2)),
            (3, (2, 1)),
            (4, (2, 2)),
            (5, (2, 2)),
            (6, (2, 3)),
            (7, (3, 1)),
            (8, (4, 1)),
            (9, (4, 2)),
            (99, (4, 2)),
        ];
        for (off, want) in cases {
            assert_eq!(line_col(t, off), want, "{off}");
        }
        assert_eq!(line_col("", 5), (1, 1));
    }

    #[test]
    fn durations() {
        let ok = [
            ("500ms", 500),
            ("10s", 10_000),
            ("1m", 60_000),
            (" 2s ", 2000),
            ("1s 500ms", 1500),
            ("0s", 0),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for s in ["", "10", "ten seconds", "-1s"] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.starts_with(&format!("`{s}` is not a duration")), "{e}");
        }
    }
}

#[cfg(test)]
mod device_tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, String> {
        let (cfg, errors) = load(&[Layer::Text {
            name: "/boot/init.toml".into(),
            text: text.into(),
        }]);
        match errors.first() {
            None => Ok(cfg),
            Some(e) => Err(e.to_string()),
        }
    }

    #[test]
    fn modules_devices_and_automounts() {
        let c = Config::default();
        assert!(c.modules.coldplug && !c.modules.parallel);
        assert!(c.device.is_empty() && c.automount.is_empty());
        let c = parse(
            "[modules]\ncoldplug = false\nparallel = true\n\
             [[device]]\nmatch = \"ttyAMA0\"\nsymlink = \"serial0\"\n\
             [[device]]\nmatch = \"hwrng\"\nsubsystem = \"misc\"\nmode = \"0640\"\nuid = 1\ngid = 20\n\
             [[automount]]\nlabel = \"STICK\"\npath = \"/mnt/stick\"\n",
        )
        .unwrap();
        assert!(!c.modules.coldplug && c.modules.parallel);
        assert_eq!(
            c.device,
            [
                DeviceRule {
                    match_: "ttyAMA0".into(),
                    subsystem: None,
                    mode: None,
                    owner: None,
                    group: None,
                    symlink: Some("serial0".into()),
                },
                DeviceRule {
                    match_: "hwrng".into(),
                    subsystem: Some("misc".into()),
                    mode: Some(0o640),
                    owner: Some(1),
                    group: Some(20),
                    symlink: None,
                },
            ]
        );
        assert_eq!(
            c.automount,
            [Automount {
                label: Some("STICK".into()),
                fstype: None,
                path: "/mnt/stick".into(),
                read_only: true,
                options: String::new(),
            }]
        );
    }

    #[test]
    fn rule_errors_say_where() {
        let cases = [
            (
                "[[device]]\nmatch = \"x\"\nmode = \"rw\"\n",
                "/boot/init.toml:3:8: `device.mode`: `rw` is not a file mode; write it in octal as a string, like \"0660\"",
            ),
            (
                "[[device]]\nmatch = \"x\"\nmode = \"10000\"\n",
                "/boot/init.toml:3:8: `device.mode`: `10000` is not a file mode; write it in octal as a string, like \"0660\"",
            ),
            (
                "[[device]]\nmatch = \"x\"\nsymlnk = \"y\"\n",
                "/boot/init.toml:3:1: unknown key `symlnk` in [device], did you mean `symlink`?",
            ),
            (
                "[[automount]]\nlabel = \"x\"\n",
                "/boot/init.toml:1:1: `automount`: missing field `path`",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_err(), want, "{text}");
        }
        assert_eq!(parse_mode("0755"), Ok(0o755));
        assert_eq!(parse_mode(" 4755 "), Ok(0o4755));
        assert!(parse_mode("9").is_err());
    }
}

#[cfg(test)]
mod example_tests {
    use super::*;

    /// The commented example in config/init.toml is valid and shows the defaults.
    #[test]
    fn the_documented_example_is_the_default() {
        let text = include_str!("../config/init.toml").to_string();
        let (cfg, errors) = load(&[Layer::Text {
            name: "config/init.toml".into(),
            text,
        }]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(cfg, Config::default());
    }
}
