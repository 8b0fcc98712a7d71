//! Tests of loading whole layers: defaults, values, the exact error messages with their
//! positions, merging, and the documented example.

use super::*;
use crate::config::DeviceSpec;
use std::time::Duration;

fn text(name: &str, text: &str) -> Layer {
    Layer::Text {
        name: name.into(),
        text: text.into(),
    }
}

/// `t` as the boot partition's init.toml: the config, or every error, a line each (the config
/// modules' own tests use it too).
pub(super) fn parse(t: &str) -> Result<Config, String> {
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
            "/boot/init.toml:2:1: unknown key `coffee` in [box] (known: name, path, args, env, working_dir, restart, on_exit, backoff, crash_loop, mode, console, user, group, groups, umask, rlimits, no_new_privs, wait_for, wait_timeout)",
        ),
        (
            "[bx]\npath = \"x\"\n",
            "/boot/init.toml:1:2: unknown section `bx`, did you mean `box`?",
        ),
        (
            "hostname = \"x\"\n",
            "/boot/init.toml:1:1: unknown section `hostname` (known: system, boot, modules, box, service, watchdog, shutdown, device, automount, board, wifi, network, time, update, report)",
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
            "/boot/init.toml:2:9: `shutdown.grace`: `5 parsecs` is not a duration: unknown unit `parsecs` (units: ms, s, m, h)",
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
            "/boot/init.toml:2:8: `box.args`: invalid type: string \"--fast\", expected a sequence; write a list: [\"--fast\"]",
        ),
        (
            "[network]\ndhcp = \"eth0\"\n",
            "/boot/init.toml:2:8: `network.dhcp`: invalid type: string \"eth0\", expected a sequence; write a list: [\"eth0\"]",
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

/// A file read early, as bytes, is checked exactly as the same text.
#[test]
fn a_file_is_its_text() {
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
        let file = Layer::File {
            name: "/boot/init.toml".into(),
            bytes: t.as_bytes().to_vec(),
            place: Place::Early,
        };
        assert_eq!(validate(&layer), validate(&file), "{t}");
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

mod device_tests {
    use super::*;

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

mod example_tests {
    use super::*;

    /// The commented example in config/init.toml is valid and shows the defaults.
    #[test]
    fn the_documented_example_is_the_default() {
        let text = include_str!("../../config/init.toml").to_string();
        let (cfg, errors) = load(&[Layer::Text {
            name: "config/init.toml".into(),
            text,
        }]);
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(cfg, Config::default());
    }
}

#[test]
fn services_without_a_name_are_called_service_n() {
    let cfg = Config {
        service: vec![
            BoxConfig::default(),
            BoxConfig {
                name: Some("shell".into()),
                ..BoxConfig::default()
            },
            BoxConfig::default(),
        ],
        ..Config::default()
    };
    let names: Vec<_> = cfg.named_services().into_iter().map(|s| s.name).collect();
    assert_eq!(
        names,
        [
            Some("service1".to_string()),
            Some("shell".to_string()),
            Some("service3".to_string())
        ]
    );
}

mod wait_for_tests {
    use super::*;

    #[test]
    fn wait_for_words_and_their_timeout() {
        let c = parse(
            "[box]\nwait_for = [\"/dev/spidev0.0\", \"module:snd-bcm2835\", \"net:usb*\", \"time-synced\", \"coldplug\", \"service:web\"]\nwait_timeout = \"1m\"\n\
             [[service]]\nname = \"web\"\npath = \"/bin/web\"\n[modules]\nboot = [\"bcm2835\"]\n",
        )
        .unwrap();
        let shown: Vec<String> = c.box_.wait_for.iter().map(|n| n.to_string()).collect();
        assert_eq!(
            shown,
            [
                "/dev/spidev0.0",
                "module:snd_bcm2835",
                "net:usb*",
                "time-synced",
                "coldplug",
                "service:web"
            ]
        );
        assert_eq!(c.box_.wait_timeout, secs(60));
        assert_eq!(c.service[0].wait_timeout, secs(30));
        assert_eq!(c.modules.boot, ["bcm2835"]);
        assert!(c.modules.coldplug_after_box);
    }

    /// What `boxinit check` says about a wait that cannot work: (card init.toml, the error).
    #[test]
    fn waits_that_cannot_work_are_named_where_they_are() {
        let cases = [
            (
                "[box]\nwait_for = [\"/dev/x\", \"clock\"]\n",
                "/boot/init.toml:2:12: `box.wait_for`: `clock` is not something to wait for, did you mean `time-synced`? (one of /PATH, module:NAME, net:IFACE, service:NAME, time-synced, coldplug)",
            ),
            (
                "[box]\nwait_for = [\"service:db\"]\n[[service]]\nname = \"dB\"\npath = \"/db\"\n",
                "/boot/init.toml:2:13: `box.wait_for`: `service:db` names no [[service]], did you mean `service:dB`?",
            ),
            (
                "[[service]]\nname = \"web\"\npath = \"/web\"\nwait_for = [\"service:web\"]\n",
                "/boot/init.toml:4:13: `service.wait_for`: `service:web`: web would wait for itself",
            ),
            (
                "[box]\nwait_for = [\"service:a\"]\n[[service]]\nname = \"a\"\npath = \"/a\"\nwait_for = [\"service:box\"]\n",
                "/boot/init.toml:6:13: `service.wait_for`: a circle of waits: box waits for a waits for box; none of them would start before its wait_timeout",
            ),
            (
                "[box]\nmode = \"exec\"\nwait_for = [\"net:eth0\"]\n",
                "/boot/init.toml:3:13: `box.wait_for`: `net:eth0` can never come with mode = \"exec\": no service or network program runs beside an exec'd box; wait for a path or a module, or supervise the box",
            ),
            (
                "[box]\nwait_for = [\"/dev/x\"]\nwait_timeout = \"0s\"\n",
                "/boot/init.toml:3:16: `box.wait_timeout`: `0s` would never wait: give the time `wait_for` may take, like \"30s\"",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_err(), want, "{text}");
        }
        // a service `[board] usb_serial = "shell"` adds can be waited for
        assert!(parse(
            "[board]\nusb_serial = \"shell\"\n[box]\nwait_for = [\"service:usb-serial-shell\"]\n"
        )
        .is_ok());
    }
}

#[test]
fn a_config_file_over_the_size_cap_is_an_error_naming_it() {
    let file = |bytes: Vec<u8>| Layer::File {
        name: "/boot/init.toml".into(),
        bytes,
        place: Place::BootPartition,
    };
    // 1 MiB exactly (comments) is read; one byte more is not, in the loader and in `check`.
    let mut at_cap = b"[box]\nargs = [\"big\"]\n".to_vec();
    at_cap.resize(MAX_FILE_BYTES, b'#');
    let (config, errors) = load(&[file(at_cap.clone())]);
    assert!(errors.is_empty(), "{errors:?}");
    assert_eq!(config.box_.args, ["big"]);
    let mut over = at_cap;
    over.push(b'#');
    let builtin = text("/etc/init.toml", "[box]\nargs = [\"builtin\"]\n");
    let (config, errors) = load(&[builtin, file(over.clone())]);
    assert_eq!(config.box_.args, ["builtin"]);
    let expected = "/boot/init.toml: larger than 1024 KiB, the most a config file may be; the file is ignored (an init.toml is a few KiB: is this the right file?)";
    assert_eq!(
        errors.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        [expected]
    );
    let checked = check_file("/boot/init.toml", over, Place::BootPartition);
    assert_eq!(
        checked.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
        [expected]
    );
}

#[test]
fn a_merge_that_does_not_deserialize_fails_closed() {
    // Each layer is validated alone first, so no real layer reaches this today; if one did,
    // it must be the layer left out, never the built-in locks (it once fell to the defaults).
    let mut bad = toml::Table::new();
    bad.insert("box".into(), toml::Value::Integer(5));
    let problem = fit(&bad).unwrap_err();
    assert!(
        problem
            .message
            .starts_with("does not fit the layers below it: "),
        "{problem:?}"
    );
    assert!(problem.path.is_empty());
    let good: toml::Table = "[system]\nlocked = [\"box\"]\n".parse().unwrap();
    assert_eq!(fit(&good).unwrap().system.locked, ["box"]);
}

#[test]
fn tmpfs_sizes() {
    let c = parse("[system]\ntmp_size = \"64m\"\n").unwrap();
    assert_eq!(
        (c.system.tmp_size.as_str(), c.system.run_size.as_str()),
        ("64m", "10%")
    );
    assert_eq!(
        parse("[system]\nshm_size = \"0\"\n").unwrap_err(),
        "/boot/init.toml:2:12: `system.shm_size`: \"0\" would leave it unbounded (tmpfs reads 0 as no limit); give a size, e.g. \"25%\""
    );
}

/// `boxinit check` shows every error of a file in one run, in the order of its lines (issue
/// 18: one a run, not always the first).
#[test]
fn every_error_of_a_file_in_line_order() {
    let text = "[network]\ndhcp = \"eth0\"\n\n[box]\nrestat = \"always\"\nargs = \"--fast\"\n\n\
                [[service]]\nname = \"a\"\npath = \"/a\"\nrestart = \"sometimes\"\n\n\
                [shutdown]\ngrace = \"5 parsecs\"\n\n[boot]\ntimeout = \"1s\"\n";
    let errors = check_file(
        "/boot/init.toml",
        text.as_bytes().to_vec(),
        Place::BootPartition,
    );
    let at: Vec<(Option<usize>, Option<String>)> =
        errors.iter().map(|e| (e.line, e.key.clone())).collect();
    let key = |k: &str| Some(k.to_string());
    assert_eq!(
        at,
        [
            (Some(2), key("network.dhcp")),
            (Some(5), key("box.restat")),
            (Some(6), key("box.args")),
            (Some(11), key("service.restart")),
            (Some(14), key("shutdown.grace")),
            (Some(17), key("boot.timeout")),
        ],
        "{errors:#?}"
    );
    // the init logs the same, and ignores the whole file
    let (config, loaded) = load(&[Layer::File {
        name: "/boot/init.toml".into(),
        bytes: text.as_bytes().to_vec(),
        place: Place::BootPartition,
    }]);
    assert_eq!(loaded, errors);
    assert!(config.network.dhcp.is_empty());
}

/// Syntax errors too, each of them (toml's parser recovers after one), in line order: one run
/// of `boxinit check` shows every mistake of a hand-edited file (issue 18).
#[test]
fn every_syntax_error_of_a_file() {
    let text = "[box]\nargs = [\"a\" \"b\"]\nrestart = always\n\n[network\ndhcp = [\"eth0\"]\n\
                [shutdown]\ngrace = \"5s\n";
    let errors = check_file(
        "/boot/init.toml",
        text.as_bytes().to_vec(),
        Place::BootPartition,
    );
    let shown: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        shown,
        [
            "/boot/init.toml:2:13: missing comma between array elements, expected `,`",
            "/boot/init.toml:3:11: string values must be quoted, expected literal string",
            "/boot/init.toml:5:9: unclosed table, expected `]`",
            "/boot/init.toml:8:12: invalid basic string, expected `\"`",
        ]
    );
}
