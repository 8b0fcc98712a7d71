//! `boxinit check --builtin FILE` against what a booted init does with FILE: for every file of
//! the config seed corpus (`fuzz/seeds/config/`, each NUL-separated part as one file), the real
//! binary boots as PID 1 of a PID namespace with the file as its built-in `/etc/init.toml`, and
//! the config errors it logs must be check's, message for message and in order; then, as the
//! check said the file is good or not, the box runs with the file's `[box] args` (read here
//! with the `toml` crate, not boxinit's code) or without them (the file ignored).
//!
//! The boot: `unshare --pid --fork --mount-proc --mount --uts --ipc`, a shell as PID 1 that
//! lays the file over the host's `/etc` (a read-only overlay, in the namespace only) and execs
//! boxinit, with `BOXINIT_LOG=console` and `BOXINIT_CONFIG` naming this test's own layer on
//! top: no boot partition, no modules, no services, rules, automounts, network or watchdog,
//! and a box that prints its arguments, exits, and powers the namespace off. Before booting,
//! that layer is checked in-process to win over the file (so nothing of the corpus acts on
//! the host); a file it cannot tame fails the test rather than boot.
//!
//! Root is needed (as for `tests/namespace.rs`); the test fails, never skips, without it.

// Test code may panic: the no-panic lints are for the init (Cargo.toml).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

mod pidns;

use std::io::Read;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use boxinit::config::{self, Config, DeviceSpec, Layer, Place};

/// How the init names its built-in config, where the overlay puts each file.
const BUILTIN: &str = "/etc/init.toml";
/// What the init adds to each config error it logs.
const IGNORED: &str = "; that file or setting is ignored, boot goes on without it";
/// reboot(2) to power off in a PID namespace ends it with SIGINT.
const SIGINT: i32 = 2;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every file of the config seed corpus, split at NUL bytes (the fuzz target's separator).
fn corpus_files() -> Vec<(String, Vec<u8>)> {
    let dir = root().join("fuzz/seeds/config");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    let mut files = Vec::new();
    for path in paths {
        let bytes = std::fs::read(&path).unwrap();
        for (i, part) in bytes.split(|b| *b == 0).enumerate() {
            let name = path.file_name().unwrap().to_string_lossy();
            files.push((format!("{name}#{i}"), part.to_vec()));
        }
    }
    files
}

/// A scratch directory the namespace sees (`pidns::scratch_root`).
fn scratch(name: &str) -> PathBuf {
    let dir = pidns::scratch_root("check-agrees").join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("etc")).unwrap();
    dir
}

/// This test's layer over the file: what keeps a booted init from acting on the host, and
/// the box that says what it was given.
fn taming_layer(dir: &Path) -> String {
    format!(
        "service = []\ndevice = []\nautomount = []\n\
         [system]\nlog_level = \"info\"\nrescue = \"poweroff\"\nrescue_delay = \"10ms\"\n\
         [boot]\ndevice = \"none\"\n\
         [modules]\ncoldplug = false\nload = []\n\
         [network]\ndhcp = []\nstatic = []\n\
         [time]\nservers = []\n\
         [watchdog]\ndevice = {:?}\n\
         [shutdown]\ngrace = \"1s\"\n\
         [box]\npath = {:?}\nrestart = \"never\"\non_exit = \"poweroff\"\n",
        dir.join("no-watchdog").display().to_string(),
        dir.join("box.sh").display().to_string()
    )
}

/// Why the init would act on the host with the file under the taming layer, if it would:
/// checked before the boot, with the library's own loader.
fn untamed(file: &[u8], layer: &str, dir: &Path) -> Option<String> {
    let layers = [
        Layer::File {
            name: BUILTIN.into(),
            bytes: file.to_vec(),
            place: Place::Early,
        },
        Layer::Text {
            name: "taming layer".into(),
            text: layer.into(),
        },
    ];
    let (cfg, errors): (Config, _) = config::load_with_cmdline(&layers, "");
    if let Some(e) = errors.iter().find(|e| e.source != BUILTIN) {
        return Some(format!("the taming layer is refused: {e}"));
    }
    let box_sh = dir.join("box.sh").display().to_string();
    let checks = [
        (cfg.boot.device == DeviceSpec::None, "a boot partition"),
        (!cfg.modules.coldplug, "coldplug"),
        (cfg.modules.load.is_empty(), "modules to load"),
        (cfg.service.is_empty(), "services"),
        (cfg.device.is_empty(), "device rules"),
        (cfg.automount.is_empty(), "automounts"),
        (
            cfg.watchdog
                .device
                .as_deref()
                .is_some_and(|d| d.starts_with(&*dir.to_string_lossy())),
            "a watchdog",
        ),
        (
            cfg.network.dhcp.is_empty() && cfg.network.static_.is_empty(),
            "network",
        ),
        (
            cfg.time.servers.is_empty() && cfg.time.save.is_none(),
            "time",
        ),
        (matches!(cfg.wifi.source(), Ok(None)), "Wi-Fi"),
        (cfg.box_.path == box_sh, "another box"),
        (
            cfg.box_.user.is_none() && cfg.box_.console.is_none(),
            "a box user or console",
        ),
    ];
    let left: Vec<&str> = checks
        .iter()
        .filter(|(tame, _)| !tame)
        .map(|(_, what)| *what)
        .collect();
    (!left.is_empty()).then(|| format!("it would still have {}", left.join(", ")))
}

/// What `boxinit check --builtin PATH` prints on stderr, one error a line, with PATH named as
/// the init names its built-in file; and whether it said ok.
fn check(path: &Path) -> (Vec<String>, bool) {
    let out = Command::new(env!("CARGO_BIN_EXE_boxinit"))
        .args(["check", "--builtin"])
        .arg(path)
        .output()
        .unwrap();
    let shown = path.display().to_string();
    let errors = String::from_utf8_lossy(&out.stderr)
        .lines()
        .map(|l| match l.strip_prefix(&shown) {
            Some(rest) => format!("{BUILTIN}{rest}"),
            None => l.to_string(),
        })
        .collect();
    (errors, out.status.success())
}

/// Boots boxinit in a PID namespace with `dir/etc/init.toml` as its built-in config and
/// `dir/taming.toml` over it; the signal that ended the namespace and its output lines.
fn boot(dir: &Path) -> (Option<i32>, Vec<String>) {
    let prelude = format!(
        "mount -t overlay overlay -o lowerdir={}:/etc /etc && exec {}",
        dir.join("etc").display(),
        env!("CARGO_BIN_EXE_boxinit")
    );
    let (mut reader, writer) = std::io::pipe().unwrap();
    let mut child = pidns::unshare()
        .args(["/bin/sh", "-c", &prelude])
        .env("BOXINIT_CONFIG", dir.join("taming.toml"))
        .stdin(Stdio::null())
        .stdout(writer.try_clone().unwrap())
        .stderr(writer)
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run unshare (util-linux): {e}; run as root"));
    let output = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = reader.read_to_string(&mut text);
        text
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the namespace did not end within 30 s");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let text = output.join().unwrap();
    (status.signal(), text.lines().map(str::to_string).collect())
}

/// The `[box] args` of a file, read with the `toml` crate alone: what the box gets when the
/// init takes the file.
fn box_args(file: &[u8]) -> Vec<String> {
    let table: toml::Table = std::str::from_utf8(file).unwrap().parse().unwrap();
    let args = table.get("box").and_then(|b| b.get("args"));
    args.and_then(|a| a.as_array())
        .map(|a| a.iter().map(|v| v.as_str().unwrap().to_string()).collect())
        .unwrap_or_default()
}

#[test]
fn check_says_what_a_booted_init_does_with_each_corpus_file() {
    let files = corpus_files();
    assert!(files.len() >= 20, "only {} corpus files", files.len());
    let dir = scratch("boot");
    std::fs::write(dir.join("box.sh"), "#!/bin/sh\necho \"box: $#: $*\"\n").unwrap();
    std::fs::set_permissions(
        dir.join("box.sh"),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let layer = taming_layer(&dir);
    std::fs::write(dir.join("taming.toml"), &layer).unwrap();
    let started = Instant::now();
    let mut disagreements = Vec::new();
    for (from, bytes) in &files {
        if let Some(why) = untamed(bytes, &layer, &dir) {
            panic!("{from}: cannot boot it safely: {why}; adjust taming_layer");
        }
        let path = dir.join("etc/init.toml");
        std::fs::write(&path, bytes).unwrap();
        let (checked, ok) = check(&path);
        let (ended_by, lines) = boot(&dir);
        let logged: Vec<String> = lines
            .iter()
            .filter_map(|l| l.strip_prefix("boxinit: ")?.strip_suffix(IGNORED))
            .map(str::to_string)
            .collect();
        let args = if ok { box_args(bytes) } else { Vec::new() };
        let want_box = format!("box: {}: {}", args.len(), args.join(" "));
        let ran: Vec<&String> = lines.iter().filter(|l| l.starts_with("box: ")).collect();
        let mut wrong = Vec::new();
        if logged != checked || ok != logged.is_empty() {
            wrong.push(format!(
                "  check: {checked:?} (ok: {ok})\n  init:  {logged:?}"
            ));
        }
        if ran != [&want_box] {
            wrong.push(format!("  box: expected {want_box:?}, it printed {ran:?}"));
        }
        if ended_by != Some(SIGINT) {
            wrong.push(format!("  ended by {ended_by:?}, not a power-off"));
        }
        if !wrong.is_empty() {
            disagreements.push(format!(
                "{from}:\n{}\n  the init's output:\n    {}",
                wrong.join("\n"),
                lines.join("\n    ")
            ));
        }
    }
    let took = started.elapsed();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        disagreements.is_empty(),
        "boxinit check and the booted init disagree on {} file(s):\n{}",
        disagreements.len(),
        disagreements.join("\n")
    );
    eprintln!("{} files booted in {took:?}", files.len());
}
