//! The wall clock at boot: a floor it is never set below (the initramfs's build time, which
//! xtask writes, and the last time boxinit saw, kept in a file where the card is writable),
//! and dates for messages. Decisions are pure; setting the clock goes through `Sys`.
//!
//! A Pi has no real-time clock: it boots in 1970, and every TLS certificate is then "not yet
//! valid". The floor is only a floor — not "synced" (erlinit's README); the saved time is
//! restored only when ahead of the clock and saved again periodically (gokrazy PR#392,
//! systemd#10620), so a board with a battery-backed clock is never set back.

use std::io;
use std::path::Path;

use crate::sys::Sys;

/// Written by `cargo xtask initramfs`: the build time, in seconds since 1970.
pub const BUILD_TIME_FILE: &str = "/etc/boxinit/build-time";
/// Created once the clock has been set from a time server; the box can wait for it.
pub const SYNCED_FILE: &str = "/run/boxinit/time-synced";

/// Seconds since 1970 in a file (`1796083200`, a newline allowed); None when it holds none.
pub fn parse_seconds(text: &str) -> Option<i64> {
    text.trim().parse().ok().filter(|s: &i64| *s > 0)
}

/// The floor: the latest of the times known to have passed.
pub fn floor(known: &[Option<i64>]) -> Option<i64> {
    known.iter().flatten().copied().max()
}

/// The time to step the clock to, if the floor is ahead of it.
pub fn step_to(now: i64, floor: Option<i64>) -> Option<i64> {
    floor.filter(|f| *f > now)
}

/// The initramfs's build time under `root` ([`BUILD_TIME_FILE`]), if it has one: a time known
/// to have passed.
pub fn build_time(root: &Path) -> Option<i64> {
    std::fs::read_to_string(root.join(BUILD_TIME_FILE.trim_start_matches('/')))
        .ok()
        .and_then(|t| parse_seconds(&t))
}

/// Whole seconds since 1970 of a time in nanoseconds (rounded down).
pub fn seconds_of(nanos: i128) -> i64 {
    i64::try_from(nanos.div_euclid(1_000_000_000)).unwrap_or(i64::MAX)
}

/// Reads the floor's sources and steps the clock up to it when it is behind; says what it did.
/// `saved` is the file of the last time seen (on the boot partition), if configured.
pub fn apply_floor(sys: &mut dyn Sys, root: &Path, saved: Option<&Path>) {
    let read = |path: &Path| {
        std::fs::read_to_string(path)
            .ok()
            .and_then(|t| parse_seconds(&t))
    };
    let build = build_time(root);
    let last = saved.and_then(read);
    let now = now_seconds();
    if let Some(to) = step_to(now, floor(&[build, last])) {
        let source = if Some(to) == last {
            "the last time saved"
        } else {
            "the initramfs build time"
        };
        match sys.clock_settime(i128::from(to) * 1_000_000_000) {
            Ok(()) => log::info!(
                "time: clock was {}, set to {} ({source}; not synced yet)",
                date(now),
                date(to)
            ),
            Err(e) => log::warn!("time: cannot set the clock to {} ({source}): {e}", date(to)),
        }
    }
}

/// Writes the time to `path` (via a temporary file and a rename, so a power cut leaves the
/// old time or the new one).
pub fn save(path: &Path, seconds: i64) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, format!("{seconds}\n"))
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| io::Error::new(e.kind(), format!("{}: {e}", path.display())))
}

/// The wall clock, in whole seconds since 1970.
pub fn now_seconds() -> i64 {
    rustix::time::clock_gettime(rustix::time::ClockId::Realtime).tv_sec
}

/// The wall clock in nanoseconds since 1970.
pub fn now_nanos() -> i128 {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::Realtime);
    i128::from(t.tv_sec) * 1_000_000_000 + i128::from(t.tv_nsec)
}

/// `2026-11-30 07:12:00 UTC`: the civil date of seconds since 1970 (proleptic Gregorian,
/// the days-from-civil algorithm of <https://howardhinnant.github.io/date_algorithms.html>).
pub fn date(seconds: i64) -> String {
    let days = seconds.div_euclid(86_400);
    let rest = seconds.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rest / 3600,
        rest / 60 % 60,
        rest % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01.
pub fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recorder::Recorder;

    #[test]
    fn dates() {
        assert_eq!(date(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(date(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(
            date(1_795_996_800 + 7 * 3600 + 12 * 60 + 5),
            "2026-11-30 07:12:05 UTC"
        );
        assert_eq!(date(4_102_444_799), "2099-12-31 23:59:59 UTC");
        assert_eq!(date(-1), "1969-12-31 23:59:59 UTC");
    }

    #[test]
    fn the_floor_only_moves_the_clock_forward() {
        assert_eq!(parse_seconds("1796083200\n"), Some(1_796_083_200));
        assert_eq!(parse_seconds("garbage"), None);
        assert_eq!(parse_seconds("-5"), None);
        assert_eq!(parse_seconds(""), None);
        assert_eq!(floor(&[Some(5), None, Some(9)]), Some(9));
        assert_eq!(floor(&[None, None]), None);
        assert_eq!(step_to(100, Some(200)), Some(200));
        assert_eq!(
            step_to(300, Some(200)),
            None,
            "a clock ahead of the floor stays"
        );
        assert_eq!(step_to(100, None), None);
    }

    #[test]
    fn apply_floor_steps_to_the_latest_known_time() {
        let dir = std::env::temp_dir().join(format!("boxinit-clock-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("etc/boxinit")).unwrap();
        let far = 4_000_000_000i64; // 2096: ahead of any clock running this test
        std::fs::write(dir.join("etc/boxinit/build-time"), format!("{far}\n")).unwrap();
        let saved = dir.join("saved-time");
        save(&saved, far + 10).unwrap();
        assert_eq!(
            std::fs::read_to_string(&saved).unwrap(),
            format!("{}\n", far + 10)
        );
        let mut sys = Recorder::new();
        apply_floor(&mut sys, &dir, Some(&saved));
        assert_eq!(
            sys.transcript(),
            format!("clock_settime({})\n", date(far + 10))
        );
        // without the saved file: the build time
        let mut sys = Recorder::new();
        apply_floor(&mut sys, &dir, Some(&dir.join("missing")));
        assert_eq!(sys.transcript(), format!("clock_settime({})\n", date(far)));
        // a build time in the past: nothing to do
        std::fs::write(dir.join("etc/boxinit/build-time"), "1000\n").unwrap();
        let mut sys = Recorder::new();
        apply_floor(&mut sys, &dir, None);
        assert_eq!(sys.transcript(), "");
        let e = save(&dir.join("no/such/dir/t"), 1).unwrap_err().to_string();
        assert!(e.contains("no/such/dir/t"), "{e}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
