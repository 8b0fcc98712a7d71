//! `modes=DIR/PREFIX*:N:MODE` (issue 17, a burst of devices): waits until N files of DIR
//! start with PREFIX, then until they all have MODE (a `[[device]]` rule applied to each),
//! and says how many have each mode: a uevent the init missed leaves its node as it was.
//! `chmod=DIR/PREFIX*:MODE` sets them back, for a replay of their uevents to set again.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::say;

/// How long the files may take to appear (a SCSI scan of hundreds of disks under TCG).
const APPEAR_WAIT: Duration = Duration::from_secs(120);
/// How long the modes may take to settle once they are all there.
const SETTLE_WAIT: Duration = Duration::from_secs(20);
/// How often the directory is read.
const POLL: Duration = Duration::from_millis(250);

/// Splits `DIR/PREFIX*` into the directory and the name prefix.
pub fn pattern(text: &str) -> Option<(PathBuf, String)> {
    let pattern = Path::new(text.strip_suffix('*')?);
    let dir = pattern.parent()?.to_path_buf();
    let prefix = pattern.file_name()?.to_str()?.to_string();
    Some((dir, prefix))
}

/// An octal mode such as `0600`.
pub fn mode(text: &str) -> Option<u32> {
    u32::from_str_radix(text, 8)
        .ok()
        .filter(|mode| *mode <= 0o7777)
}

/// Splits `DIR/PREFIX*:N:MODE` into the directory, the name prefix, the count and the mode.
pub fn parse(spec: &str) -> Option<(PathBuf, String, usize, u32)> {
    let (rest, wanted) = spec.rsplit_once(':')?;
    let (pattern_text, count) = rest.rsplit_once(':')?;
    let (dir, prefix) = pattern(pattern_text)?;
    Some((dir, prefix, count.parse().ok()?, mode(wanted)?))
}

/// `chmod=DIR/PREFIX*:MODE`: gives every file of DIR whose name starts with `prefix` the
/// mode, and says how many.
pub fn chmod(dir: &Path, prefix: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let mut changed = 0;
    for entry in fs::read_dir(dir).into_iter().flatten().flatten() {
        if entry.file_name().to_string_lossy().starts_with(prefix)
            && fs::set_permissions(entry.path(), fs::Permissions::from_mode(mode)).is_ok()
        {
            changed += 1;
        }
    }
    say!(
        "{}/{prefix}*: mode {mode:04o} set on {changed}",
        dir.display()
    );
}

/// The modes of DIR's files whose names start with `prefix`: how many have each.
fn count_modes(dir: &Path, prefix: &str) -> BTreeMap<u32, usize> {
    let mut modes = BTreeMap::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return modes;
    };
    for entry in entries.flatten() {
        if !entry.file_name().to_string_lossy().starts_with(prefix) {
            continue;
        }
        if let Ok(meta) = fs::symlink_metadata(entry.path()) {
            *modes.entry(meta.mode() & 0o7777).or_default() += 1;
        }
    }
    modes
}

/// Waits for `count` files, then for all of them to have mode `wanted`, and says what it
/// found.
pub fn wait(dir: &Path, prefix: &str, count: usize, wanted: u32) {
    let started = Instant::now();
    let mut modes = count_modes(dir, prefix);
    while modes.values().sum::<usize>() < count && started.elapsed() < APPEAR_WAIT {
        thread::sleep(POLL);
        modes = count_modes(dir, prefix);
    }
    let settle = Instant::now();
    while modes.keys().any(|mode| *mode != wanted) && settle.elapsed() < SETTLE_WAIT {
        thread::sleep(POLL);
        modes = count_modes(dir, prefix);
    }
    let found: usize = modes.values().sum();
    let by_mode: Vec<String> = (modes.iter())
        .map(|(mode, n)| format!("mode {mode:04o}: {n}"))
        .collect();
    say!(
        "{}/{prefix}*: {found} of {count} there, {}",
        dir.display(),
        by_mode.join(", ")
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn specs() {
        assert_eq!(
            parse("/dev/sd*:512:0600"),
            Some((PathBuf::from("/dev"), "sd".to_string(), 512, 0o600))
        );
        assert_eq!(parse("/dev/sd:512:0600"), None);
        assert_eq!(parse("/dev/sd*:512"), None);
        assert_eq!(parse("/dev/sd*:many:0600"), None);
        assert_eq!(parse("/dev/sd*:5:0900"), None);
        assert_eq!(
            pattern("/dev/sd*"),
            Some((PathBuf::from("/dev"), "sd".to_string()))
        );
        assert_eq!(mode("0660"), Some(0o660));
        assert_eq!(mode("17777"), None);
    }
}
