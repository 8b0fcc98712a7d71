//! What the tests that boot boxinit as PID 1 of a PID namespace share (`namespace.rs`,
//! `check_agrees.rs`): the `unshare` command and where their files may live.

use std::path::{Path, PathBuf};
use std::process::Command;

/// `unshare --pid --fork --mount-proc --mount --uts --ipc` with a clean environment (`PATH`,
/// and `BOXINIT_LOG=console`: the init logs on the stderr the test reads, not the host's
/// kmsg); the caller adds the program and its `BOXINIT_CONFIG`. Root is needed.
pub fn unshare() -> Command {
    let mut command = Command::new("unshare");
    command
        .args([
            "--pid",
            "--fork",
            "--mount-proc",
            "--mount",
            "--uts",
            "--ipc",
        ])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin")
        .env("BOXINIT_LOG", "console");
    command
}

/// A directory for a test's files that the namespace sees: under the target dir's scratch
/// space as `name`, unless the init's early mounts would hide it there (a checkout under
/// /tmp: boxinit mounts a fresh tmpfs on it, as it must for the box); then
/// `/var/tmp/boxinit-NAME`, which no early mount covers.
pub fn scratch_root(name: &str) -> PathBuf {
    let target = Path::new(env!("CARGO_TARGET_TMPDIR"));
    let real = std::fs::canonicalize(target).unwrap();
    match boxinit::mounts::hidden_by_early_mounts(&real) {
        false => target.join(name),
        true => PathBuf::from(format!("/var/tmp/boxinit-{name}")),
    }
}
