//! Values the schema's types accept but that can never work: a NUL byte in a string that
//! reaches a system call, ids the kernel reads as "no change", more groups than the child's
//! setup holds, environment names it cannot set, a hostname longer than the kernel takes,
//! an automount that matches nothing, a relative program with no boot partition. Each is
//! found here, at load, so that a layer with one is ignored as any other broken layer, and
//! `boxinit check` says the same: what load accepts, process setup never rejects for a reason
//! load could have seen. Pure; each problem names its key path for `locate.rs`.

use std::path::Path;
use std::time::Duration;

use super::boot_device::DeviceSpec;
use super::schema::{BoxConfig, Config, Mode};
use super::wait_for::{self, Need, Waiter};

/// `sethostname(2)` takes at most `HOST_NAME_MAX` bytes.
pub const MAX_HOSTNAME: usize = 64;
/// Supplementary groups a program may have: the child's setup converts them on its stack.
pub const MAX_GROUPS: usize = crate::sys::exec::MAX_GROUPS;
/// The largest `crash_loop.max`: the window keeps one timestamp per restart.
pub const MAX_CRASH_LOOP: u32 = 10_000;
/// The largest `rlimits.nofile`: the kernel's default `fs.nr_open`; `setrlimit(2)` refuses
/// more, even to root.
pub const MAX_NOFILE: u64 = 1 << 20;
/// The file systems an `[[automount]]` can find (`scan::probe_fat`).
pub const AUTOMOUNT_FSTYPES: &[&str] = &["vfat"];

/// One value that cannot work, and where: `path` is the dotted key whose value is wrong
/// (array items as `service[1]`, `args[2]`), or, with `field`, the table holding the key
/// `field` that is itself wrong (an env name).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// Dotted key path, with `[n]` for array items.
    pub path: String,
    /// A key inside `path` that is the problem itself (not its value).
    pub field: Option<String>,
    /// What is wrong and what to write instead; the key is added by the caller.
    pub message: String,
}

/// The key as messages show it: the path without array indices (`service.args`).
pub fn shown_key(path: &str) -> String {
    let mut out = String::new();
    let mut depth = 0;
    for c in path.chars() {
        match c {
            '[' => depth += 1,
            ']' => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

/// Collects problems with their paths.
struct Checks {
    found: Vec<Problem>,
}

impl Checks {
    fn add(&mut self, path: String, message: String) {
        self.found.push(Problem {
            path,
            field: None,
            message,
        });
    }

    fn add_field(&mut self, path: String, field: &str, message: String) {
        self.found.push(Problem {
            path,
            field: Some(field.to_string()),
            message,
        });
    }

    /// A string that goes to the kernel as a C string.
    fn no_nul(&mut self, path: String, value: &str) {
        if value.contains('\0') {
            self.add(
                path,
                format!(
                    "{:?} contains a NUL byte, which the kernel cannot take",
                    value
                ),
            );
        }
    }

    /// A user or group id: `(uid_t)-1` means "leave unchanged" to the kernel.
    fn id(&mut self, path: String, id: u32) {
        if id == u32::MAX {
            self.add(
                path,
                format!(
                    "{id} (-1) is not a user or group id; the largest is {}",
                    u32::MAX - 1
                ),
            );
        }
    }
}

/// Every problem of one config (a layer alone, with defaults for what it does not set).
pub fn problems(config: &Config) -> Vec<Problem> {
    let mut c = Checks { found: Vec::new() };
    if let Some(name) = &config.system.hostname {
        c.no_nul("system.hostname".into(), name);
        if name.len() > MAX_HOSTNAME {
            c.add(
                "system.hostname".into(),
                format!(
                    "{} bytes long; the kernel takes at most {MAX_HOSTNAME}",
                    name.len()
                ),
            );
        }
    }
    for (key, size) in [
        ("system.run_size", &config.system.run_size),
        ("system.tmp_size", &config.system.tmp_size),
        ("system.shm_size", &config.system.shm_size),
    ] {
        if let Some(message) = super::tmpfs::size_problem(size) {
            c.add(key.into(), message);
        }
    }
    // A path goes to open(2) and mount(2); a label or id with a NUL could never match.
    match &config.boot.device {
        DeviceSpec::Path(text)
        | DeviceSpec::Label(text)
        | DeviceSpec::Uuid(text)
        | DeviceSpec::PartUuid(text) => c.no_nul("boot.device".into(), text),
        DeviceSpec::Auto | DeviceSpec::None => {}
    }
    for (i, name) in config.boot.extras.iter().enumerate() {
        extras_name(&mut c, format!("boot.extras[{i}]"), name);
    }
    for (i, name) in config.modules.load.iter().enumerate() {
        c.no_nul(format!("modules.load[{i}]"), name);
    }
    for (i, name) in config.modules.boot.iter().enumerate() {
        c.no_nul(format!("modules.boot[{i}]"), name);
    }
    for (module, params) in &config.modules.params {
        if module.contains('\0') {
            c.add_field(
                "modules.params".into(),
                module,
                "a module name contains a NUL byte".into(),
            );
        }
        c.no_nul(format!("modules.params.{module}"), params);
    }
    program("box", &config.box_, &mut c);
    for (i, service) in config.service.iter().enumerate() {
        program(&format!("service[{i}]"), service, &mut c);
    }
    if let Some(device) = &config.watchdog.device {
        c.no_nul("watchdog.device".into(), device);
    }
    if config.watchdog.heartbeat == Some(Duration::ZERO) {
        c.add(
            "watchdog.heartbeat".into(),
            "`0s` can never be met: no beat is ever that recent".into(),
        );
    }
    for (path, message) in super::update::problems(&config.update) {
        c.add(path, message);
    }
    let wifi = &config.wifi;
    for (key, value) in [
        ("interface", &wifi.interface),
        ("supplicant", &wifi.supplicant),
        ("driver", &wifi.driver),
    ] {
        c.no_nul(format!("wifi.{key}"), value);
    }
    if let Some(path) = &wifi.config {
        c.no_nul("wifi.config".into(), path);
    }
    for (i, rule) in config.device.iter().enumerate() {
        let at = format!("device[{i}]");
        if let Some(link) = &rule.symlink {
            c.no_nul(format!("{at}.symlink"), link);
        }
        for (key, id) in [("owner", rule.owner), ("group", rule.group)] {
            if let Some(id) = id {
                c.id(format!("{at}.{key}"), id);
            }
        }
    }
    for (i, mount) in config.automount.iter().enumerate() {
        let at = format!("automount[{i}]");
        if mount.label.is_none() && mount.fstype.is_none() {
            c.add(
                at.clone(),
                "sets neither `label` nor `fstype`, so it matches nothing; set one".into(),
            );
        }
        if let Some(fstype) = &mount.fstype {
            if !AUTOMOUNT_FSTYPES.contains(&fstype.as_str()) {
                c.add(
                    format!("{at}.fstype"),
                    format!(
                        "`{fstype}` is not a file system automount recognises ({})",
                        AUTOMOUNT_FSTYPES.join(", ")
                    ),
                );
            }
        }
        if !Path::new(&mount.path).is_absolute() {
            c.add(
                format!("{at}.path"),
                format!(
                    "{:?} is not an absolute path, like \"/mnt/stick\"",
                    mount.path
                ),
            );
        }
        c.no_nul(format!("{at}.path"), &mount.path);
        c.no_nul(format!("{at}.options"), &mount.options);
        if let Some(label) = &mount.label {
            c.no_nul(format!("{at}.label"), label);
        }
    }
    c.found
}

/// Problems that only the merged layers show, as one layer may set `[boot] device = "none"`
/// and another the program's path: a relative program needs a boot partition; `[wifi]`
/// takes `config` or `ssid`, not both (and no `psk` without `ssid`).
pub fn merged_problems(config: &Config) -> Vec<Problem> {
    let mut c = Checks { found: Vec::new() };
    wait_problems(config, &mut c);
    if let Err(message) = config.wifi.source() {
        let key = match config.wifi.config {
            Some(_) => "wifi.config",
            None => "wifi.psk",
        };
        c.add(key.into(), message);
    }
    if config.boot.device == DeviceSpec::None && !config.boot.extras.is_empty() {
        c.add(
            "boot.extras".into(),
            "names archives on the boot partition, but there is none ([boot] device = \"none\")"
                .into(),
        );
    }
    if config.boot.device == DeviceSpec::None {
        let programs = std::iter::once(("box".to_string(), &config.box_)).chain(
            config
                .service
                .iter()
                .enumerate()
                .map(|(i, s)| (format!("service[{i}]"), s)),
        );
        for (at, program) in programs {
            if !Path::new(&program.path).is_absolute() {
                c.add(
                    format!("{at}.path"),
                    format!(
                        "{:?} is relative but there is no boot partition ([boot] device = \"none\"); give an absolute path",
                        program.path
                    ),
                );
            }
        }
    }
    c.found
}

/// A `[boot] extras` name: a file on the boot partition, named from its top (no `/` first,
/// no empty, `.` or `..` part).
fn extras_name(c: &mut Checks, path: String, name: &str) {
    let plain =
        !name.starts_with('/') && name.split('/').all(|part| !matches!(part, "" | "." | ".."));
    if !plain {
        c.add(
            path.clone(),
            format!(
                "{name:?} is not a file on the boot partition; name it from the partition's top, like \"extras.cpio.gz\""
            ),
        );
    }
    c.no_nul(path, name);
}

/// The checks of `[box]` or one `[[service]]`, under the key path `at`.
fn program(at: &str, p: &BoxConfig, c: &mut Checks) {
    if p.path.is_empty() {
        c.add(
            format!("{at}.path"),
            "empty; name the program to run".into(),
        );
    } else if matches!(p.path.rsplit('/').next(), Some("" | "." | "..")) {
        // found by fuzzing: `path = "dir/"` passed, then every start failed in execve
        c.add(
            format!("{at}.path"),
            format!(
                "{:?} names a directory; name the program file in it",
                p.path
            ),
        );
    }
    c.no_nul(format!("{at}.path"), &p.path);
    for (i, arg) in p.args.iter().enumerate() {
        c.no_nul(format!("{at}.args[{i}]"), arg);
    }
    for (key, value) in &p.env {
        let table = format!("{at}.env");
        if key.is_empty() {
            c.add_field(table.clone(), key, "an empty variable name".into());
        } else if key.contains('=') {
            c.add_field(
                table.clone(),
                key,
                format!("the variable name `{key}` contains `=`, which ends a name"),
            );
        } else if key.contains('\0') {
            c.add_field(
                table.clone(),
                key,
                "a variable name contains a NUL byte".into(),
            );
        }
        c.no_nul(format!("{table}.{key}"), value);
    }
    if let Some(dir) = &p.working_dir {
        c.no_nul(format!("{at}.working_dir"), dir);
    }
    if let Some(console) = &p.console {
        c.no_nul(format!("{at}.console"), console);
    }
    if let Some(user) = p.user {
        c.id(format!("{at}.user"), user);
    }
    if let Some(group) = p.group {
        c.id(format!("{at}.group"), group);
    }
    if p.groups.len() > MAX_GROUPS {
        c.add(
            format!("{at}.groups"),
            format!(
                "{} supplementary groups; at most {MAX_GROUPS} are supported",
                p.groups.len()
            ),
        );
    }
    for (i, gid) in p.groups.iter().enumerate() {
        c.id(format!("{at}.groups[{i}]"), *gid);
    }
    if let Some(nofile) = p.rlimits.get("nofile").filter(|n| **n > MAX_NOFILE) {
        c.add(
            format!("{at}.rlimits.nofile"),
            format!("{nofile} is more than the kernel allows ({MAX_NOFILE}, fs.nr_open)"),
        );
    }
    if p.crash_loop.max > MAX_CRASH_LOOP {
        c.add(
            format!("{at}.crash_loop.max"),
            format!("{} is more than {MAX_CRASH_LOOP}", p.crash_loop.max),
        );
    }
    for (i, need) in p.wait_for.iter().enumerate() {
        if let Need::Path(path) = need {
            c.no_nul(format!("{at}.wait_for[{i}]"), path);
        }
    }
    if p.wait_timeout.is_zero() && !p.wait_for.is_empty() {
        c.add(
            format!("{at}.wait_timeout"),
            "`0s` would never wait: give the time `wait_for` may take, like \"30s\"".into(),
        );
    }
}

/// The `wait_for`s of the box and the services taken together (`wait_for::problems`).
fn wait_problems(config: &Config, c: &mut Checks) {
    let box_ = &config.box_;
    let mut waiters = vec![Waiter {
        at: "box".into(),
        name: box_.name.clone().unwrap_or_else(|| "box".into()),
        exec: box_.mode == Mode::Exec,
        needs: &box_.wait_for,
    }];
    // named as the supervisor names them: their own name or `serviceN`
    for (i, (service, named)) in config
        .service
        .iter()
        .zip(config.named_services())
        .enumerate()
    {
        waiters.push(Waiter {
            at: format!("service[{i}]"),
            name: named.name.unwrap_or_default(),
            exec: false,
            needs: &service.wait_for,
        });
    }
    for (path, message) in wait_for::problems(&waiters) {
        c.add(path, message);
    }
}

#[cfg(test)]
mod tests {
    use crate::config::{check_file, load, Layer, Place};

    /// The one error of `text` as the boot partition's file, as displayed.
    fn card_error(text: &str) -> String {
        let errors = check_file(
            "/boot/init.toml",
            text.as_bytes().to_vec(),
            Place::BootPartition,
        );
        errors
            .iter()
            .map(|e| e.to_string())
            .collect::<Vec<_>>()
            .join("\n")
    }

    /// Class 3: values the schema takes but the kernel or process setup never would. Each
    /// case: (init.toml, the exact error with its position).
    #[test]
    fn values_that_can_never_work() {
        let nul = "contains a NUL byte, which the kernel cannot take";
        let cases = [
            (
                "[box]\npath = \"bo\\u0000x\"\n",
                format!("/boot/init.toml:2:8: `box.path`: \"bo\\0x\" {nul}"),
            ),
            (
                "[box]\nargs = [\"-v\", \"a\\u0000\"]\n",
                format!("/boot/init.toml:2:15: `box.args`: \"a\\0\" {nul}"),
            ),
            (
                "[box]\nenv = { A = \"x\\u0000\" }\n",
                format!("/boot/init.toml:2:13: `box.env.A`: \"x\\0\" {nul}"),
            ),
            (
                "[box]\nenv = { \"A=B\" = \"x\" }\n",
                "/boot/init.toml:2:9: `box.env`: the variable name `A=B` contains `=`, which ends a name".into(),
            ),
            (
                "[box]\nenv = { \"\" = \"x\" }\n",
                "/boot/init.toml:2:9: `box.env`: an empty variable name".into(),
            ),
            (
                "[box]\nworking_dir = \"d\\u0000\"\n",
                format!("/boot/init.toml:2:15: `box.working_dir`: \"d\\0\" {nul}"),
            ),
            (
                "[box]\nconsole = \"/dev/tty\\u0000S1\"\n",
                format!("/boot/init.toml:2:11: `box.console`: \"/dev/tty\\0S1\" {nul}"),
            ),
            (
                "[box]\npath = \"\"\n",
                "/boot/init.toml:2:8: `box.path`: empty; name the program to run".into(),
            ),
            // fuzz findings: a path that names a directory fails in execve at every start
            (
                "[box]\npath = \"bin/\"\n",
                "/boot/init.toml:2:8: `box.path`: \"bin/\" names a directory; name the program file in it".into(),
            ),
            (
                "[[service]]\npath = \"/opt/..\"\n",
                "/boot/init.toml:2:8: `service.path`: \"/opt/..\" names a directory; name the program file in it".into(),
            ),
            (
                "[box]\nuser = 4294967295\n",
                "/boot/init.toml:2:8: `box.user`: 4294967295 (-1) is not a user or group id; the largest is 4294967294".into(),
            ),
            (
                "[box]\ngroup = 4294967295\n",
                "/boot/init.toml:2:9: `box.group`: 4294967295 (-1) is not a user or group id; the largest is 4294967294".into(),
            ),
            (
                "[box]\nuser = 4294967296\n",
                "/boot/init.toml:2:8: `box.user`: invalid value: integer `4294967296`, expected u32".into(),
            ),
            (
                "[box]\nuser = -1\n",
                "/boot/init.toml:2:8: `box.user`: invalid value: integer `-1`, expected u32".into(),
            ),
            (
                "[box]\ngroups = [1, 4294967295]\n",
                "/boot/init.toml:2:14: `box.groups`: 4294967295 (-1) is not a user or group id; the largest is 4294967294".into(),
            ),
            (
                &format!("[box]\ngroups = [{}]\n", vec!["7"; 65].join(", ")),
                "/boot/init.toml:2:10: `box.groups`: 65 supplementary groups; at most 64 are supported".into(),
            ),
            (
                "[box]\nrlimits = { nofile = 2000000 }\n",
                "/boot/init.toml:2:22: `box.rlimits.nofile`: 2000000 is more than the kernel allows (1048576, fs.nr_open)".into(),
            ),
            (
                "[box]\ncrash_loop = { max = 10001 }\n",
                "/boot/init.toml:2:22: `box.crash_loop.max`: 10001 is more than 10000".into(),
            ),
            (
                "[[service]]\nname = \"a\"\n[[service]]\nname = \"b\"\nargs = [\"\\u0000\"]\n",
                format!("/boot/init.toml:5:9: `service.args`: \"\\0\" {nul}"),
            ),
            (
                "[system]\nhostname = \"a\\u0000b\"\n",
                format!("/boot/init.toml:2:12: `system.hostname`: \"a\\0b\" {nul}"),
            ),
            (
                &format!("[system]\nhostname = \"{}\"\n", "h".repeat(65)),
                "/boot/init.toml:2:12: `system.hostname`: 65 bytes long; the kernel takes at most 64".into(),
            ),
            (
                "[modules]\nparams = { snd = \"a=\\u0000\" }\n",
                format!("/boot/init.toml:2:18: `modules.params.snd`: \"a=\\0\" {nul}"),
            ),
            (
                "[modules]\nload = [\"vfat\\u0000\"]\n",
                format!("/boot/init.toml:2:9: `modules.load`: \"vfat\\0\" {nul}"),
            ),
            (
                "[watchdog]\ndevice = \"/dev/watchdog\\u0000\"\n",
                format!("/boot/init.toml:2:10: `watchdog.device`: \"/dev/watchdog\\0\" {nul}"),
            ),
            (
                "[watchdog]\nheartbeat = \"0s\"\n",
                "/boot/init.toml:2:13: `watchdog.heartbeat`: `0s` can never be met: no beat is ever that recent".into(),
            ),
            (
                "[[device]]\nmatch = \"tty*\"\nowner = 4294967295\n",
                "/boot/init.toml:3:9: `device.owner`: 4294967295 (-1) is not a user or group id; the largest is 4294967294".into(),
            ),
            (
                "[[device]]\nmatch = \"tty*\"\nsymlink = \"s\\u0000\"\n",
                format!("/boot/init.toml:3:11: `device.symlink`: \"s\\0\" {nul}"),
            ),
            (
                "[[automount]]\npath = \"/mnt/x\"\n",
                "/boot/init.toml:1:1: `automount`: sets neither `label` nor `fstype`, so it matches nothing; set one".into(),
            ),
            (
                "[[automount]]\nfstype = \"ext4\"\npath = \"/mnt/x\"\n",
                "/boot/init.toml:2:10: `automount.fstype`: `ext4` is not a file system automount recognises (vfat)".into(),
            ),
            (
                "[[automount]]\nlabel = \"STICK\"\npath = \"mnt\"\n",
                "/boot/init.toml:3:8: `automount.path`: \"mnt\" is not an absolute path, like \"/mnt/stick\"".into(),
            ),
            (
                "[[automount]]\nlabel = \"STICK\"\npath = \"/mnt/s\"\noptions = \"a\\u0000\"\n",
                format!("/boot/init.toml:4:11: `automount.options`: \"a\\0\" {nul}"),
            ),
            (
                "[boot]\ndevice = \"/dev/vda\\u00001\"\n",
                "/boot/init.toml:2:10: `boot.device`: cannot be set in the boot partition's init.toml, which is read once that partition is found; set it in the built-in config (`cargo xtask initramfs --config`) or on the kernel command line (`boxinit.boot=`)".into(),
            ),
            (
                "[boot]\nread_only = false\ntimeout = \"1m\"\n",
                "/boot/init.toml:3:11: `boot.timeout`: cannot be set in the boot partition's init.toml, which is read once that partition is found; set it in the built-in config (`cargo xtask initramfs --config`) or on the kernel command line (`boxinit.boot.timeout=`)".into(),
            ),
        ];
        for (text, want) in cases {
            assert_eq!(card_error(text), want, "{text}");
        }
        // what is allowed there
        assert_eq!(card_error("[boot]\nread_only = false\n"), "");
        assert_eq!(
            card_error("[boot]\nextras = [\"extras.cpio.gz\", \"more/wifi.cpio.gz\"]\n"),
            ""
        );
    }

    /// `[boot] extras` names files on the boot partition, from its top, and needs one.
    #[test]
    fn extras_are_files_on_the_boot_partition() {
        for name in [
            "/etc/x.cpio.gz",
            "../x.cpio.gz",
            "a/../../x",
            "",
            "a//b",
            "./x",
        ] {
            let text = format!("[boot]\nextras = [\"ok.gz\", {name:?}]\n");
            assert_eq!(
                card_error(&text),
                format!("/boot/init.toml:2:20: `boot.extras`: {name:?} is not a file on the boot partition; name it from the partition's top, like \"extras.cpio.gz\""),
                "{name}"
            );
        }
        let (_, errors) = load(&[Layer::Text {
            name: "/etc/init.toml".into(),
            text: "[boot]\ndevice = \"none\"\nextras = [\"x.gz\"]\n[box]\npath = \"/b\"\n".into(),
        }]);
        assert_eq!(
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ["/etc/init.toml:3:10: `boot.extras`: names archives on the boot partition, but there is none ([boot] device = \"none\")"]
        );
    }

    /// Class 1 for files: a config that is not UTF-8 is an error at its first bad byte.
    #[test]
    fn a_file_that_is_not_utf8() {
        let latin1 = b"[system]\n# caf\xe9\nhostname = \"x\"\n".to_vec();
        let errors = check_file("/boot/init.toml", latin1, Place::BootPartition);
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            ["/boot/init.toml:2:6: not UTF-8 text (byte 0xe9); save it as UTF-8 (a Latin-1 editor writes `é` as the one byte 0xe9)"]
        );
        // a byte-order mark is not an error
        let bom = b"\xef\xbb\xbf[system]\nhostname = \"x\"\n".to_vec();
        assert_eq!(check_file("f", bom, Place::Early), vec![]);
    }

    /// A layer valid alone that does not fit the layers under it is the one ignored.
    #[test]
    fn no_boot_partition_needs_absolute_paths() {
        let builtin = Layer::Text {
            name: "/etc/init.toml".into(),
            text: "[box]\npath = \"/bin/box\"\n".into(),
        };
        let none = |name: &str| Layer::Text {
            name: name.into(),
            text: "# no card\n[boot]\ndevice = \"none\"\n[[service]]\npath = \"svc\"\n".into(),
        };
        let (config, errors) = load(&[builtin.clone(), none("extra.toml")]);
        assert_eq!(config.box_.path, "/bin/box");
        let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        assert_eq!(
            shown,
            ["extra.toml:5:8: `service.path`: \"svc\" is relative but there is no boot partition ([boot] device = \"none\"); give an absolute path"]
        );
        let (_, errors) = load(&[Layer::Text {
            name: "/etc/init.toml".into(),
            text: "[boot]\ndevice = \"none\"\n".into(),
        }]);
        assert_eq!(
            errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            ["/etc/init.toml: `box.path`: \"box\" is relative but there is no boot partition ([boot] device = \"none\"); give an absolute path"]
        );
    }
}

#[cfg(test)]
mod bound_tests {
    use crate::config::{cmdline, load, Layer, Place, RLIMITS};

    /// Class 2: durations past the bound and units that are not ours, in a file (with the
    /// position) and on the command line. Each case: (layer, the exact error).
    #[test]
    fn durations_past_the_bound() {
        let file = |text: &str| Layer::File {
            name: "/etc/init.toml".into(),
            bytes: text.as_bytes().to_vec(),
            place: Place::Early,
        };
        let words = |line: &str| Layer::Table {
            name: cmdline::SOURCE.into(),
            table: cmdline::overrides(line).0,
        };
        let cases = [
            (
                file("[boot]\ntimeout = \"18446744073709551615s\"\n"),
                "/etc/init.toml:2:11: `boot.timeout`: `18446744073709551615s` is longer than 24h, the longest duration boxinit takes",
            ),
            (
                file("[box]\nbackoff = { max = \"1M\" }\n"),
                "/etc/init.toml:2:19: `box.backoff.max`: `1M` is not a duration: unknown unit `M`, did you mean \"1m\" (a minute)? (units: ms, s, m, h)",
            ),
            (
                file("[shutdown]\ngrace = \"2d\"\n"),
                "/etc/init.toml:2:9: `shutdown.grace`: `2d` is not a duration: unknown unit `d` (units: ms, s, m, h)",
            ),
            (
                words("boxinit.boot.timeout=18446744073709551615s"),
                "kernel command line: `boot.timeout`: `18446744073709551615s` is longer than 24h, the longest duration boxinit takes",
            ),
            (
                words("boxinit.system.rescue_delay=99999999999999999999"),
                "kernel command line: `system.rescue_delay`: `99999999999999999999` is not a duration: `99999999999999999999` needs a unit (ms, s, m, h)",
            ),
        ];
        for (layer, want) in cases {
            let (config, errors) = load(std::slice::from_ref(&layer));
            assert_eq!(config, Default::default());
            let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            assert_eq!(shown, [want]);
        }
    }

    /// Every limit the schema takes, process setup knows.
    #[test]
    fn every_rlimit_name_is_known_to_process_setup() {
        for name in RLIMITS {
            assert!(crate::sys::exec::resource(name).is_some(), "{name}");
        }
    }

    /// In the built-in config, where `[boot] device` belongs, a NUL byte is still an error.
    #[test]
    fn boot_device_with_a_nul_byte() {
        for text in [
            "[boot]\ndevice = \"LABEL=BO\\u0000OT\"\n",
            "[boot]\ndevice = \"/dev/vd\\u0000a\"\n",
        ] {
            let errors =
                crate::config::check_file("/etc/init.toml", text.as_bytes().to_vec(), Place::Early);
            let shown: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
            assert_eq!(shown.len(), 1, "{text}");
            assert!(
                shown[0].starts_with("/etc/init.toml:2:10: `boot.device`: "),
                "{shown:?}"
            );
            assert!(
                shown[0].ends_with("contains a NUL byte, which the kernel cannot take"),
                "{shown:?}"
            );
        }
    }

    /// `[wifi]` settings the supplicant's start would refuse are load errors too, also when
    /// two layers set them.
    #[test]
    fn wifi_settings_that_cannot_start() {
        let early = |text: &str| Layer::Text {
            name: "/etc/init.toml".into(),
            text: text.into(),
        };
        let card = |text: &str| Layer::File {
            name: "/boot/init.toml".into(),
            bytes: text.as_bytes().to_vec(),
            place: Place::BootPartition,
        };
        let shown = |layers: &[Layer]| -> Vec<String> {
            load(layers).1.iter().map(|e| e.to_string()).collect()
        };
        assert_eq!(
            shown(&[card("[wifi]\nssid = \"net\"\nconfig = \"w.conf\"\n")]),
            ["/boot/init.toml:3:10: `wifi.config`: [wifi] has both `config` and `ssid`: give a wpa_supplicant.conf, or ssid/psk, not both"]
        );
        assert_eq!(
            shown(&[early("[wifi]\nssid = \"net\"\n"), card("[wifi]\nconfig = \"w.conf\"\n")]),
            ["/boot/init.toml:2:10: `wifi.config`: [wifi] has both `config` and `ssid`: give a wpa_supplicant.conf, or ssid/psk, not both"]
        );
        assert_eq!(
            shown(&[card("[wifi]\ninterface = \"wlan\\u00000\"\n")]),
            ["/boot/init.toml:2:13: `wifi.interface`: \"wlan\\00\" contains a NUL byte, which the kernel cannot take"]
        );
    }
}
