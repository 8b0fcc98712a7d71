//! What the fuzz targets assert, shared by them: the properties of a configuration that
//! `config::load` accepted (the init can act on all of it: no later step rejects it for a
//! reason the text already showed) and the reference `fnmatch` (glibc's). It owns no target
//! and reads no files; the targets are in `fuzz_targets/`, one per parser.

use std::ffi::CString;
use std::time::{Duration, Instant};

use boxinit::config::{BoxConfig, Config, DeviceSpec};
use boxinit::supervision::program::{self, Program};

/// `PATH_MAX`: a path this long (with its NUL) fails with `ENAMETOOLONG`.
/// See <https://man7.org/linux/man-pages/man3/realpath.3.html>.
const PATH_MAX: usize = 4096;
/// `MAX_ARG_STRLEN`: an argument or `KEY=VALUE` string this long (with its NUL) makes
/// `execve(2)` fail with `E2BIG` (see its man page, "Limits on size of arguments").
const MAX_ARG_STRLEN: usize = 32 * 4096;
/// `HOST_NAME_MAX`: `sethostname(2)` fails with `EINVAL` beyond it.
const HOST_NAME_MAX: usize = 64;

/// Panics (a fuzz finding) when a configuration that `load` accepted would be rejected later
/// by the init or by the kernel for a reason `load` could have seen. `what` says where
/// the configuration came from, for the message.
pub fn assert_runnable(cfg: &Config, what: &str) {
    let problems = problems(cfg);
    assert!(
        problems.is_empty(),
        "config::load accepted {what}, but it cannot run:\n  {}\nconfig: {cfg:#?}",
        problems.join("\n  ")
    );
}

/// Everything wrong with an accepted configuration, one line each; empty when it can run.
pub fn problems(cfg: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    // As main.rs: no boot partition with `device = "none"`, else it is mounted on /boot.
    let boot_dir = match cfg.boot.device {
        DeviceSpec::None => None,
        _ => Some(std::path::Path::new("/boot")),
    };
    for (label, program_cfg) in programs(cfg) {
        match program::resolve(&program_cfg, boot_dir) {
            Err(e) => problems.push(format!("{label}: program::resolve rejects it: {e}")),
            Ok(program) => {
                let found = exec_problems(&program, &program_cfg.path);
                problems.extend(found.into_iter().map(|p| format!("{label}: {p}")));
            }
        }
    }
    problems.extend(system_problems(cfg));
    problems.extend(deadline_problems(cfg));
    problems
}

/// The box and each service, named as `main.rs` names them (`box`, `serviceN`).
fn programs(cfg: &Config) -> Vec<(String, BoxConfig)> {
    let mut all = vec![("[box]".to_string(), cfg.box_.clone())];
    for (i, service) in cfg.named_services().into_iter().enumerate() {
        all.push((format!("[[service]] {}", i + 1), service));
    }
    all
}

/// What `sys::exec::Exec::new` refuses before it forks (a NUL byte anywhere: "... contains a
/// NUL byte") and what `execve(2)`/`chdir(2)` refuse or misread.
fn exec_problems(program: &Program, configured_path: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let path = program.program.to_string_lossy();
    let dir = program.working_dir.to_string_lossy();
    let mut strings: Vec<(&str, String)> = vec![("path", path.to_string())];
    strings.push(("working_dir", dir.to_string()));
    strings.extend(program.args.iter().map(|a| ("args", a.clone())));
    for (key, value) in &program.env {
        strings.push(("env name", key.clone()));
        strings.push(("env value", value.clone()));
    }
    for (what, s) in &strings {
        if CString::new(s.as_bytes()).is_err() {
            problems.push(format!(
                "{what} {s:?} has a NUL byte: Exec::new refuses to start it"
            ));
        }
    }
    for (key, value) in &program.env {
        if key.is_empty() || key.contains('=') {
            problems.push(format!(
                "env name {key:?} is empty or has `=`: the program would see another variable"
            ));
        }
        if key.len() + 1 + value.len() + 1 > MAX_ARG_STRLEN {
            problems.push(format!("env {key}: longer than execve takes (E2BIG)"));
        }
    }
    if program.args.iter().any(|a| a.len() + 1 > MAX_ARG_STRLEN) {
        problems.push("an argument is longer than execve takes (E2BIG)".to_string());
    }
    for (what, p) in [("path", &path), ("working_dir", &dir)] {
        if p.len() + 1 > PATH_MAX {
            problems.push(format!("{what} is longer than PATH_MAX (ENAMETOOLONG)"));
        }
    }
    let last = configured_path.rsplit('/').next().unwrap_or("");
    if matches!(last, "" | "." | "..") {
        problems.push(format!(
            "path {configured_path:?} names a directory, not a program: execve fails"
        ));
    }
    problems
}

/// The machine-wide settings the kernel takes as C strings or with a length limit, and the
/// rules that can never match.
fn system_problems(cfg: &Config) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(name) = &cfg.system.hostname {
        if name.len() > HOST_NAME_MAX || name.contains('\0') {
            problems.push(format!(
                "hostname {name:?}: sethostname(2) takes at most {HOST_NAME_MAX} bytes, no NUL"
            ));
        }
    }
    for (i, rule) in cfg.automount.iter().enumerate() {
        let n = i + 1;
        if rule.label.is_none() && rule.fstype.is_none() {
            problems.push(format!(
                "[[automount]] {n}: neither label nor fstype, it never matches"
            ));
        }
        let strings = [
            Some(&rule.path),
            Some(&rule.options),
            rule.label.as_ref(),
            rule.fstype.as_ref(),
        ];
        if strings.into_iter().flatten().any(|s| s.contains('\0')) {
            problems.push(format!(
                "[[automount]] {n}: a NUL byte in what mount(2) takes as C strings"
            ));
        }
    }
    for (i, rule) in cfg.device.iter().enumerate() {
        if rule.symlink.as_deref().is_some_and(|s| s.contains('\0')) {
            problems.push(format!("[[device]] {}: a NUL byte in symlink", i + 1));
        }
    }
    if let Some(device) = &cfg.watchdog.device {
        if device.contains('\0') {
            problems.push("watchdog.device: a NUL byte in a path".to_string());
        }
    }
    problems
}

/// Every duration must fit a deadline (`Instant::now() + d`): `Instant + Duration` panics on
/// overflow, so an unbounded duration that load accepts kills PID 1 the first time it is used.
fn deadline_problems(cfg: &Config) -> Vec<String> {
    let mut durations: Vec<(String, Duration)> = vec![
        ("system.rescue_delay".into(), cfg.system.rescue_delay),
        ("boot.timeout".into(), cfg.boot.timeout),
        ("watchdog.timeout".into(), cfg.watchdog.timeout),
        ("shutdown.grace".into(), cfg.shutdown.grace),
    ];
    if let Some(h) = cfg.watchdog.heartbeat {
        durations.push(("watchdog.heartbeat".into(), h));
    }
    for (label, p) in programs(cfg) {
        durations.push((format!("{label} backoff.initial"), p.backoff.initial));
        durations.push((format!("{label} backoff.max"), p.backoff.max));
        durations.push((
            format!("{label} backoff.reset_after"),
            p.backoff.reset_after,
        ));
        durations.push((format!("{label} crash_loop.within"), p.crash_loop.within));
    }
    let now = Instant::now();
    durations
        .into_iter()
        .filter(|(_, d)| now.checked_add(*d).is_none())
        .map(|(key, d)| format!("{key} = {d:?}: Instant + Duration overflows (a panic in PID 1)"))
        .collect()
}

/// glibc's `fnmatch(pattern, text, 0)`, which libkmod uses for `modules.alias`: the reference
/// the init's own `fnmatch` must agree with. None for strings with a NUL (C cannot take them).
pub fn glibc_fnmatch(pattern: &str, text: &str) -> Option<bool> {
    let pattern = CString::new(pattern).ok()?;
    let text = CString::new(text).ok()?;
    // SAFETY: both are valid NUL-terminated strings that live for the call; fnmatch only
    // reads them.
    let r = unsafe { libc::fnmatch(pattern.as_ptr(), text.as_ptr(), 0) };
    Some(r == 0)
}
