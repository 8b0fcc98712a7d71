//! The hardware watchdog: open the device, set its timeout, pet it from the event loop (every
//! half timeout), optionally only while the box proves it is alive, and disarm it with the magic
//! close on an orderly shutdown. When to pet is decided here; the loop only calls [`Watchdog::tick`].
//!
//! Heartbeat protocol: with `[watchdog] heartbeat` set, the box must change the modification
//! time of `/run/boxinit/heartbeat` (write anything to it, or `touch` it) at least that often.
//! boxinit compares the time it last saw that mtime change on its own monotonic clock, so a
//! wall clock that jumps (no RTC, NTP) does not matter. A box that stops sends no more
//! heartbeats, boxinit stops petting, and the watchdog resets the machine.

use std::fs::File;
use std::io::Write;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use crate::config;
use crate::events::deadline_after;
use crate::supervision::cover::{self, Cover, Progress, Verdict, Why};

/// The file the box touches to say it is alive.
pub const HEARTBEAT: &str = "/run/boxinit/heartbeat";

/// An open watchdog device.
pub struct Watchdog {
    file: File,
    device: String,
    interval: Duration,
    next: Instant,
    heartbeat: Option<Heartbeat>,
    /// Petting stopped because the heartbeat is missing (logged once).
    starving: bool,
    /// The box's heartbeat came at least once.
    beat_seen: bool,
}

struct Heartbeat {
    path: PathBuf,
    limit: Duration,
    last_mtime: Option<SystemTime>,
    last_change: Instant,
}

/// Whether a heartbeat last seen changing at `last_change` is recent enough at `now`.
pub fn heartbeat_fresh(last_change: Instant, now: Instant, limit: Duration) -> bool {
    now.saturating_duration_since(last_change) <= limit
}

/// How often to pet a watchdog whose timeout is `timeout`: half of it, at least 100 ms.
pub fn pet_interval(timeout: Duration) -> Duration {
    (timeout / 2).max(Duration::from_millis(100))
}

impl Watchdog {
    /// Opens and arms the watchdog `[watchdog]` names, if any; every failure is logged once and
    /// means running without a watchdog.
    pub fn open(cfg: &config::Watchdog, heartbeat_path: &Path, now: Instant) -> Option<Watchdog> {
        let device = cfg.device.clone()?;
        let file = match std::fs::OpenOptions::new().write(true).open(&device) {
            Ok(file) => file,
            Err(e) => {
                log::error!("watchdog: cannot open {device}: {e}; running without a watchdog (is its driver in [modules] load?)");
                return None;
            }
        };
        let seconds = i32::try_from(cfg.timeout.as_secs().max(1)).unwrap_or(i32::MAX);
        let (timeout, interval) = match crate::sys::linux::watchdog_set_timeout(
            file.as_fd(),
            seconds,
        ) {
            Ok(chosen) => {
                let timeout = Duration::from_secs(u64::try_from(chosen).unwrap_or(1).max(1));
                (timeout, pet_interval(timeout))
            }
            Err(e) => {
                // The driver keeps a timeout we do not know: pet often enough for any.
                let interval = pet_interval(cfg.timeout).min(Duration::from_secs(1));
                log::warn!(
                    "watchdog: cannot set the timeout of {device} to {seconds}s ({e}); keeping the driver's, petting every {}",
                    crate::config::format_duration(interval)
                );
                (cfg.timeout, interval)
            }
        };
        let heartbeat = cfg.heartbeat.map(|limit| {
            if let Some(dir) = heartbeat_path.parent() {
                let _ = std::fs::create_dir_all(dir);
            }
            let created = std::fs::OpenOptions::new()
                .create(true)
                .truncate(false)
                .write(true)
                .open(heartbeat_path);
            if let Err(e) = created {
                log::error!(
                    "watchdog: cannot create {}: {e}; the box cannot send heartbeats",
                    heartbeat_path.display()
                );
            }
            // Any user may write it: the box need not run as root.
            use std::os::unix::fs::PermissionsExt;
            let _ =
                std::fs::set_permissions(heartbeat_path, std::fs::Permissions::from_mode(0o666));
            Heartbeat {
                path: heartbeat_path.to_path_buf(),
                limit,
                last_mtime: mtime(heartbeat_path),
                last_change: now,
            }
        });
        match &heartbeat {
            Some(h) => log::info!(
                "watchdog: {device} armed, timeout {}, petted while the box touches {} at least every {}",
                crate::config::format_duration(timeout),
                h.path.display(),
                crate::config::format_duration(h.limit)
            ),
            None => log::info!(
                "watchdog: {device} armed, timeout {}, petted every {}",
                crate::config::format_duration(timeout),
                crate::config::format_duration(interval)
            ),
        }
        let mut watchdog = Watchdog {
            file,
            device,
            interval,
            next: now,
            heartbeat,
            starving: false,
            beat_seen: false,
        };
        watchdog.tick(now);
        Some(watchdog)
    }

    /// Whether the box's heartbeat has come at least once.
    pub fn heartbeat_seen(&self) -> bool {
        self.beat_seen
    }

    /// Whether petting stopped because the heartbeat is missing (a reset is coming).
    pub fn starving(&self) -> bool {
        self.starving
    }

    /// When [`tick`](Self::tick) next has work to do.
    pub fn deadline(&self) -> Instant {
        self.next
    }

    /// The box (re)started: it gets a whole heartbeat period before its first beat is due.
    pub fn box_started(&mut self, now: Instant) {
        if let Some(h) = &mut self.heartbeat {
            h.last_change = now;
            h.last_mtime = mtime(&h.path);
            if self.starving {
                log::info!("watchdog: box restarted, petting {} again", self.device);
                self.starving = false;
            }
        }
    }

    /// Pets the watchdog when due, unless the box's heartbeat is missing.
    pub fn tick(&mut self, now: Instant) {
        if let Some(h) = &mut self.heartbeat {
            let seen = mtime(&h.path);
            if seen != h.last_mtime {
                h.last_mtime = seen;
                h.last_change = now;
                self.beat_seen = true;
                if self.starving {
                    log::info!("watchdog: heartbeat back, petting {} again", self.device);
                    self.starving = false;
                }
            }
            if !heartbeat_fresh(h.last_change, now, h.limit) {
                if !self.starving {
                    log::error!(
                        "watchdog: no heartbeat from the box for {}: no longer petting {}, the machine resets when it expires",
                        crate::config::format_duration(h.limit),
                        self.device
                    );
                    self.starving = true;
                }
                self.next = deadline_after(now, self.interval.min(Duration::from_millis(500)));
                return;
            }
        }
        if now < self.next {
            return;
        }
        self.pet();
        self.next = deadline_after(now, self.interval);
    }

    /// One keep-alive: any write but 'V'.
    fn pet(&mut self) {
        if let Err(e) = self.file.write_all(b"\0") {
            log::warn!("watchdog: cannot pet {}: {e}", self.device);
        }
    }

    /// Hands the watchdog to a thread that pets it every interval while PID 1 shuts down:
    /// the grace period, sync and unmount may each take longer than the timeout, and sync and
    /// unmount are single system calls the loop cannot interrupt to pet. Up to `limit` it
    /// pets; past it, only while the write-back makes progress (`progress`: `Dirty` +
    /// `Writeback` falling, or the disks' sectors written growing, see [`cover`]), for a
    /// bounded time, so a long sync to a slow card is not reset
    /// midway while a shutdown that hangs (a card that never answers) still ends in a reset.
    /// Without a thread to be had (out of memory) the device is closed without the magic
    /// close: it still resets the machine if the shutdown outlasts it.
    pub fn keep_petting(
        mut self,
        limit: Duration,
        progress: impl Fn() -> Progress + Send + 'static,
    ) -> Keeper {
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        let interval = self.interval;
        let device = self.device.clone();
        let spawned = std::thread::Builder::new()
            .name("watchdog".into())
            .stack_size(64 * 1024)
            .spawn(move || {
                let mut cover = Cover::new(Instant::now(), limit);
                self.pet();
                loop {
                    match stopped.recv_timeout(interval) {
                        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                        // Told to stop, or the other end is gone: hand the watchdog back.
                        _ => return self,
                    }
                    match cover.check_progress(Instant::now(), progress()) {
                        Verdict::Pet | Verdict::WritingBack { first: false, .. } => {}
                        Verdict::WritingBack {
                            pending,
                            first: true,
                            seen,
                        } => log::warn!(
                            "watchdog: shutdown not done after {}, still writing back ({} kB left, {}): petting {} while it makes progress, for {} more at most",
                            crate::config::format_duration(cover.limit()),
                            pending,
                            seen.words(),
                            self.device,
                            crate::config::format_duration(cover::WRITEBACK_AT_MOST)
                        ),
                        Verdict::Stop(why) => {
                            log::error!(
                                "watchdog: shutdown not done after {}{}: no longer petting {}, the machine resets when it expires",
                                crate::config::format_duration(cover.limit()),
                                match why {
                                    Why::Hung => String::new(),
                                    Why::Stalled { pending } => format!(
                                        " and the write-back made no progress for {} ({pending} kB left, no new low, no write completed by the disks)",
                                        crate::config::format_duration(cover::WRITEBACK_STALL)
                                    ),
                                    Why::TooLong { pending } => format!(
                                        " and {} of write-back ({pending} kB left)",
                                        crate::config::format_duration(cover::WRITEBACK_AT_MOST)
                                    ),
                                },
                                self.device
                            );
                            let _ = stopped.recv();
                            return self;
                        }
                    }
                    self.pet();
                }
            });
        match spawned {
            Ok(thread) => Keeper::Thread { stop, thread },
            Err(e) => {
                log::warn!("watchdog: no thread to pet {device} during shutdown ({e})");
                Keeper::Gone
            }
        }
    }

    /// Orderly shutdown: pet once more, then the magic close ('V', then close) disarms it, so
    /// the machine is not reset while it powers off or halts.
    pub fn close(mut self) {
        self.pet();
        match self.file.write_all(b"V") {
            Ok(()) => log::info!("watchdog: {} disarmed (magic close)", self.device),
            Err(e) => log::warn!("watchdog: magic close of {} failed: {e}", self.device),
        }
    }
}

/// The watchdog during shutdown (see [`Watchdog::keep_petting`]).
pub enum Keeper {
    /// Petted by this thread until `stop` says so; it hands the watchdog back when joined.
    Thread {
        stop: std::sync::mpsc::Sender<()>,
        thread: std::thread::JoinHandle<Watchdog>,
    },
    /// No thread could be started, and the watchdog went with the attempt.
    Gone,
}

impl Keeper {
    /// Stops petting and disarms the watchdog (magic close): the shutdown is done.
    pub fn close(self) {
        match self {
            Keeper::Thread { stop, thread } => {
                let _ = stop.send(());
                match thread.join() {
                    Ok(watchdog) => watchdog.close(),
                    Err(_) => log::warn!("watchdog: the petting thread failed; not disarmed"),
                }
            }
            Keeper::Gone => {}
        }
    }
}

fn mtime(path: &Path) -> Option<SystemTime> {
    std::fs::metadata(path).and_then(|m| m.modified()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn heartbeat_freshness() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let table = [(0, 5, true), (5, 5, true), (6, 5, false), (100, 5, false)];
        for (age, limit, want) in table {
            assert_eq!(
                heartbeat_fresh(t0, t0 + s(age), s(limit)),
                want,
                "{age} {limit}"
            );
        }
        // A last change "in the future" (clock weirdness) counts as fresh, never panics.
        assert!(heartbeat_fresh(t0 + s(10), t0, s(1)));
    }

    /// A watchdog on a plain file in a fresh temp dir: each pet appends a byte, the magic close
    /// a 'V'. Its timeout cannot be set, so it is petted every 100 ms (half of 200 ms).
    fn file_watchdog(name: &str) -> (PathBuf, PathBuf, Watchdog) {
        let dir = std::env::temp_dir().join(format!("boxinit-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let device = dir.join("watchdog");
        std::fs::write(&device, "").unwrap();
        let cfg = config::Watchdog {
            device: Some(device.display().to_string()),
            timeout: Duration::from_millis(200),
            ..config::Watchdog::default()
        };
        let watchdog = Watchdog::open(&cfg, &dir.join("heartbeat"), Instant::now()).unwrap();
        (dir, device, watchdog)
    }

    fn pets(device: &Path) -> u64 {
        std::fs::metadata(device).unwrap().len()
    }

    #[test]
    fn petted_through_a_shutdown_longer_than_its_timeout() {
        let (dir, device, watchdog) = file_watchdog("keeper");
        let before = pets(&device);
        let keeper = watchdog.keep_petting(Duration::from_secs(60), Progress::default);
        // A long wait of the shutdown (grace, sync, unmount): still petted.
        std::thread::sleep(Duration::from_millis(650));
        let during = pets(&device) - before;
        assert!(during >= 4, "only {during} pets in 650 ms");
        keeper.close();
        let bytes = std::fs::read(&device).unwrap();
        assert_eq!(bytes.last(), Some(&b'V'));
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn a_hung_shutdown_is_no_longer_petted_after_its_limit() {
        let (dir, device, watchdog) = file_watchdog("keeper-limit");
        let keeper = watchdog.keep_petting(Duration::from_millis(250), Progress::default);
        std::thread::sleep(Duration::from_millis(500));
        let at_limit = pets(&device);
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(pets(&device), at_limit);
        keeper.close();
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn pets_at_half_the_timeout() {
        assert_eq!(
            pet_interval(Duration::from_secs(15)),
            Duration::from_millis(7500)
        );
        assert_eq!(pet_interval(Duration::ZERO), Duration::from_millis(100));
    }
}
