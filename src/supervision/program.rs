//! A program to run, resolved from `[box]` or a `[[service]]` (paths against the boot
//! partition, the environment, the child's setup of ids, limits, umask and console) into what
//! `fork` and `execve` need, with errors naming the key; and starting one. What a start or an
//! exit then means is `supervisor`'s; whether the file can run at all is `runnable`'s.

use std::ffi::CString;
use std::path::{Path, PathBuf};

use crate::config::{BoxConfig, ExitAction, RestartPolicy};
use crate::sys::exec::{ChildSetup, Exec};

/// The shell that `on_exit = "shell"` and `rescue = "shell"` run, when the initramfs has it.
pub const SHELL: &str = "/bin/sh";

/// How to start one program: everything `fork` and `execve` need, resolved and checked beforehand.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Program {
    /// What log lines call it (`box`, or the service's name).
    pub name: String,
    pub program: PathBuf,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: PathBuf,
    pub setup: ChildSetup,
}

/// Resolves `[box]` (or a `[[service]]`) against the directory where the boot partition is
/// mounted (None: no boot partition, so the path must be absolute). Errors say which key.
pub fn resolve(cfg: &BoxConfig, boot_dir: Option<&Path>) -> Result<Program, String> {
    let name = cfg.name.clone().unwrap_or_else(|| "box".to_string());
    let program = match boot_dir {
        Some(dir) => dir.join(&cfg.path),
        None if Path::new(&cfg.path).is_absolute() => PathBuf::from(&cfg.path),
        None => {
            return Err(format!(
                "{name}: path {:?} is relative but there is no boot partition ([boot] device = \"none\"); give an absolute path",
                cfg.path
            ))
        }
    };
    let root = PathBuf::from("/");
    let base = boot_dir.unwrap_or(&root);
    let working_dir = match &cfg.working_dir {
        Some(dir) => base.join(dir),
        None => base.to_path_buf(),
    };
    let mut env = vec![
        (
            "PATH".to_string(),
            "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin".to_string(),
        ),
        ("HOME".to_string(), "/".to_string()),
        (
            "TERM".to_string(),
            std::env::var("TERM").unwrap_or_else(|_| "linux".to_string()),
        ),
    ];
    if let Some(dir) = boot_dir {
        env.push(("BOXINIT_BOOT".to_string(), dir.display().to_string()));
    }
    for (key, value) in &cfg.env {
        env.retain(|(k, _)| k != key);
        env.push((key.clone(), value.clone()));
    }
    let console = match &cfg.console {
        Some(tty) => Some(
            CString::new(tty.as_str())
                .map_err(|_| format!("{name}: console {tty:?} contains a NUL byte"))?,
        ),
        None => None,
    };
    let umask = match &cfg.umask {
        Some(text) => {
            Some(crate::config::parse_umask(text).map_err(|e| format!("{name}: umask: {e}"))?)
        }
        None => None,
    };
    let mut rlimits = Vec::new();
    for (key, value) in &cfg.rlimits {
        let resource = crate::sys::exec::resource(key).ok_or_else(|| {
            format!(
                "{name}: rlimits: unknown limit `{key}` (known: {})",
                crate::config::RLIMITS.join(", ")
            )
        })?;
        rlimits.push((resource, *value));
    }
    if cfg.groups.len() > crate::sys::exec::MAX_GROUPS {
        return Err(format!(
            "{name}: groups: {} supplementary groups, at most {} are supported",
            cfg.groups.len(),
            crate::sys::exec::MAX_GROUPS
        ));
    }
    let ids = cfg.user.iter().chain(&cfg.group).chain(&cfg.groups);
    if ids.clone().any(|id| *id == u32::MAX) {
        return Err(format!("{name}: 4294967295 (-1) is not a user or group id"));
    }
    Ok(Program {
        name,
        program,
        args: cfg.args.clone(),
        env,
        working_dir,
        setup: ChildSetup {
            new_session: true,
            console,
            groups: cfg.groups.clone(),
            gid: cfg.group,
            uid: cfg.user,
            umask,
            rlimits,
            no_new_privs: cfg.no_new_privs,
        },
    })
}

/// Starts a program in its own session and process group, on its console (init's fds 0-2
/// unless it has one), with a clean environment and its setup. Returns its pid.
pub fn spawn(spec: &Program) -> std::io::Result<i32> {
    Exec::new(&spec.program, &spec.args, &spec.env, &spec.working_dir)?.spawn(&spec.setup)
    // The loop reaps the child with waitpid(-1).
}

/// [`spawn`] without waiting for the child's `execve` (which may read a hung card): its pid
/// and the pipe that says how the exec went (`sys::exec::exec_outcome`). For the loop.
pub fn spawn_pending(spec: &Program) -> std::io::Result<(i32, std::os::fd::OwnedFd)> {
    Exec::new(&spec.program, &spec.args, &spec.env, &spec.working_dir)?.spawn_pending(&spec.setup)
}

/// The rescue shell: `/bin/sh` on init's console, never restarted, reboot when it exits.
pub fn shell_program() -> Option<(BoxConfig, Program)> {
    if !Path::new(SHELL).exists() {
        return None;
    }
    let cfg = BoxConfig {
        name: Some("shell".to_string()),
        path: SHELL.to_string(),
        restart: RestartPolicy::Never,
        on_exit: ExitAction::Reboot,
        ..BoxConfig::default()
    };
    let spec = resolve(&cfg, None).ok()?;
    Some((cfg, spec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;

    #[test]
    fn program_resolves_against_the_boot_partition() {
        let mut cfg = Config::default().box_;
        cfg.args = vec!["a".into()];
        cfg.env.insert("PATH".into(), "/x".into());
        cfg.working_dir = Some("data".into());
        let spec = resolve(&cfg, Some(Path::new("/boot"))).unwrap();
        assert_eq!(spec.name, "box");
        assert_eq!(spec.program, Path::new("/boot/box"));
        assert_eq!(spec.working_dir, Path::new("/boot/data"));
        assert!(spec.env.contains(&("PATH".into(), "/x".into())));
        assert!(spec.env.contains(&("BOXINIT_BOOT".into(), "/boot".into())));
        assert_eq!(spec.env.iter().filter(|(k, _)| k == "PATH").count(), 1);
        assert!(spec.setup.new_session);
        cfg.path = "/bin/sh".into();
        let spec = resolve(&cfg, Some(Path::new("/boot"))).unwrap();
        assert_eq!(spec.program, Path::new("/bin/sh"));
    }

    #[test]
    fn program_without_a_boot_partition() {
        let mut cfg = Config::default().box_;
        let err = resolve(&cfg, None).unwrap_err();
        assert!(err.contains("absolute"), "{err}");
        cfg.path = "/usr/bin/app".into();
        let spec = resolve(&cfg, None).unwrap();
        assert_eq!(spec.working_dir, Path::new("/"));
        assert!(!spec.env.iter().any(|(k, _)| k == "BOXINIT_BOOT"));
    }

    #[test]
    fn program_setup_from_config() {
        let mut cfg = Config::default().box_;
        cfg.path = "/app".into();
        cfg.user = Some(1000);
        cfg.group = Some(100);
        cfg.groups = vec![5, 20];
        cfg.umask = Some("027".into());
        cfg.rlimits.insert("nofile".into(), 512);
        cfg.no_new_privs = true;
        cfg.console = Some("/dev/ttyS1".into());
        let setup = resolve(&cfg, None).unwrap().setup;
        assert_eq!(setup.uid, Some(1000));
        assert_eq!(setup.gid, Some(100));
        assert_eq!(setup.groups, [5, 20]);
        assert_eq!(setup.umask, Some(0o027));
        assert_eq!(setup.rlimits, [(rustix::process::Resource::Nofile, 512)]);
        assert!(setup.no_new_privs);
        assert_eq!(setup.console.unwrap().to_str().unwrap(), "/dev/ttyS1");
        cfg.rlimits.insert("nofiles".into(), 1);
        assert!(resolve(&cfg, None)
            .unwrap_err()
            .contains("unknown limit `nofiles`"));
        cfg.rlimits.clear();
        cfg.umask = Some("999".into());
        assert!(resolve(&cfg, None).unwrap_err().contains("umask"));
        cfg.umask = None;
        cfg.user = Some(u32::MAX);
        assert!(resolve(&cfg, None).is_err());
        cfg.user = None;
        cfg.groups = (0..65).collect();
        assert!(resolve(&cfg, None).unwrap_err().contains("at most 64"));
    }
}
