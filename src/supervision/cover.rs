//! How long the watchdog stays petted through a shutdown (issue 17, item 8). A fixed limit
//! (`shutdown::time_limit`: the graces, the kill waits and 60 s for sync and unmount) covers
//! a shutdown that goes as planned; past it, petting goes on only while the kernel's
//! write-back makes progress — `Dirty` + `Writeback` in `/proc/meminfo` reaching a new low,
//! or the disks completing writes (`/proc/diskstats`), within [`WRITEBACK_STALL`] — and never
//! longer than [`WRITEBACK_AT_MOST`] more. The second signal is needed: a page leaves
//! `Writeback` only when its whole bio is written, and a bio over contiguous free memory can
//! hold tens of MB (scenario 155: 56 of 57 MB still pending 73 s into a write-back at
//! 512 KiB/s), which a slow card writes for longer than the stall window while its requests
//! (at most `max_sectors_kb`) complete one by one. A few
//! hundred MB of dirty data on a slow SD card are written to the end; a card that stopped
//! answering (nothing falls) still ends in a reset. Once nothing is left to write, the
//! steps after it (unmounting a FAT that held a large file took 6 s in scenario 155) are
//! covered while the disks write and for [`WRITEBACK_STALL`] after.
//!
//! Pure logic: the petting thread (`watchdog::Watchdog::keep_petting`) reads `/proc/meminfo`
//! and `/proc/diskstats` and asks [`Cover::check_progress`] before each pet; the console
//! line says which progress was seen ([`Seen`]).

use std::time::{Duration, Instant};

/// Past the fixed limit, how long the write-back may go without reaching a new low before
/// petting stops.
pub const WRITEBACK_STALL: Duration = Duration::from_secs(30);

/// Past the fixed limit, how much longer a write-back that keeps falling is covered at most
/// (300 MB at 0.5 MB/s).
pub const WRITEBACK_AT_MOST: Duration = Duration::from_secs(600);

/// `Dirty` + `Writeback` of a `/proc/meminfo`, in kB: the data still to reach the disks.
/// `None` when either line is missing or unreadable.
pub fn pending_writeback(meminfo: &[u8]) -> Option<u64> {
    let field = |name: &[u8]| {
        meminfo.split(|&b| b == b'\n').find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(b":")?;
            let number = std::str::from_utf8(rest).ok()?.split_whitespace().next()?;
            number.parse::<u64>().ok()
        })
    };
    field(b"Dirty")?.checked_add(field(b"Writeback")?)
}

/// [`pending_writeback`] of this machine's `/proc/meminfo`.
pub fn pending_writeback_now() -> Option<u64> {
    pending_writeback(&std::fs::read("/proc/meminfo").ok()?)
}

/// Sectors written, summed over the whole disks of a `/proc/diskstats` (the 10th field; a
/// partition, named as its disk and a number, `vda1`, `mmcblk0p1`, is left out: its writes
/// are its disk's, and the sum is said on the console as the amount written). `None` when
/// no line has the field.
pub fn sectors_written(diskstats: &[u8]) -> Option<u64> {
    let text = String::from_utf8_lossy(diskstats);
    let lines: Vec<(&str, Option<u64>)> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let name = fields.nth(2)?;
            Some((name, fields.nth(6).and_then(|f| f.parse::<u64>().ok())))
        })
        .collect();
    let partition = |name: &str| {
        lines.iter().any(|(disk, _)| {
            name.strip_prefix(disk).is_some_and(|rest| {
                let number = rest.strip_prefix('p').unwrap_or(rest);
                !number.is_empty() && number.bytes().all(|b| b.is_ascii_digit())
            })
        })
    };
    lines
        .iter()
        .filter(|(name, _)| !partition(name))
        .filter_map(|(_, written)| *written)
        .reduce(u64::saturating_add)
}

/// One reading for [`Cover::check`]: `pending` kB of write-back ([`pending_writeback`]) and
/// the `written` sectors of [`sectors_written`]; `None`: unknown.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub pending: Option<u64>,
    pub written: Option<u64>,
}

/// This machine's [`Progress`] (`/proc/meminfo`, `/proc/diskstats`).
pub fn progress_now() -> Progress {
    Progress {
        pending: pending_writeback_now(),
        written: std::fs::read("/proc/diskstats")
            .ok()
            .and_then(|d| sectors_written(&d)),
    }
}

/// The sectors the disks have written so far (`/proc/diskstats`), if known.
pub fn written_now() -> Option<u64> {
    std::fs::read("/proc/diskstats")
        .ok()
        .and_then(|d| sectors_written(&d))
}

/// Whether the disks still complete writes, for a wait on them that has no end of its own
/// (the card's last writes, the shutdown's sync): the last count of sectors written, and
/// when it last grew.
#[derive(Debug)]
pub struct Progressing {
    written: Option<u64>,
    since: Instant,
}

impl Progressing {
    pub fn new(now: Instant, written: Option<u64>) -> Progressing {
        Progressing {
            written,
            since: now,
        }
    }

    /// Whether to go on waiting at `now`, with `written` sectors: while they grew within
    /// [`WRITEBACK_STALL`], or cannot be known.
    pub fn still(&mut self, now: Instant, written: Option<u64>) -> bool {
        self.still_within(now, written, WRITEBACK_STALL)
    }

    /// [`Progressing::still`] with a stall window of `stall` rather than [`WRITEBACK_STALL`].
    pub fn still_within(&mut self, now: Instant, written: Option<u64>, stall: Duration) -> bool {
        let Some(count) = written else {
            return true;
        };
        if self.written.is_none_or(|before| count > before) {
            self.written = Some(count);
            self.since = now;
        }
        now.saturating_duration_since(self.since) <= stall
    }
}

/// What the petting thread does next.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Within the fixed limit, or within [`WRITEBACK_STALL`] of the write-back's end (or the
    /// disks' last write) past it: pet.
    Pet,
    /// Past the fixed limit, but the write-back makes progress: pet. `first` on the first
    /// such check (said once on the console), `pending` in kB, `seen`: the progress last seen.
    WritingBack {
        pending: u64,
        first: bool,
        seen: Seen,
    },
    /// Stop petting, and why.
    Stop(Why),
}

/// The progress that kept the write-back covered, said on the console as it was seen: the
/// two signals differ (scenario 155's card writes for a minute while `Dirty` + `Writeback`
/// stay, then they fall by 19 MB at once).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    /// `Dirty` + `Writeback` reached a new low within [`WRITEBACK_STALL`].
    pub falling: bool,
    /// The disks' completed writes since the cover's first reading of `/proc/diskstats`:
    /// kB, and over how long. `None`: no statistics.
    pub written: Option<(u64, Duration)>,
}

impl Seen {
    /// The console's words for it, after "N kB left, ": "falling", "M MB written to the
    /// disks in the last S", or both.
    pub fn words(&self) -> String {
        let written = self.written.filter(|(kb, _)| *kb > 0).map(|(kb, over)| {
            let amount = match kb {
                0..=10_239 => format!("{kb} kB"),
                _ => format!("{} MB", kb / 1024),
            };
            let over = crate::config::format_duration(Duration::from_secs(over.as_secs()));
            format!("{amount} written to the disks in the last {over}")
        });
        match (self.falling, written) {
            (true, Some(w)) => format!("falling, {w}"),
            (false, Some(w)) => format!("not falling, but {w}"),
            // (a reading within the stall window is all there is)
            (true, None) => "falling".into(),
            // (within the stall window of the first reading: not said in practice)
            (false, None) => "no progress seen yet".into(),
        }
    }
}

/// Why petting stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Why {
    /// Past the fixed limit with nothing to write back (or no `/proc/meminfo`): the shutdown
    /// hangs on something else.
    Hung,
    /// The write-back reached no new low and the disks completed no write for
    /// [`WRITEBACK_STALL`]; `pending` kB left.
    Stalled { pending: u64 },
    /// The write-back kept falling, but for [`WRITEBACK_AT_MOST`] past the fixed limit;
    /// `pending` kB left.
    TooLong { pending: u64 },
}

/// The cover of one shutdown: started when the watchdog was handed to the petting thread.
#[derive(Debug)]
pub struct Cover {
    started: Instant,
    limit: Duration,
    /// The lowest `Dirty` + `Writeback` seen, and when progress was last seen (that low
    /// first reached, or more sectors written).
    low: Option<(u64, Instant)>,
    /// The sectors written at the last check.
    written: Option<u64>,
    /// The first reading of the sectors written, and when: what [`Seen::DiskWrites`] counts from.
    written_first: Option<(u64, Instant)>,
    /// When `Dirty` + `Writeback` last reached a new low.
    fell_at: Option<Instant>,
    writing_back: bool,
}

impl Cover {
    pub fn new(started: Instant, limit: Duration) -> Cover {
        Cover {
            started,
            limit,
            low: None,
            written: None,
            written_first: None,
            fell_at: None,
            writing_back: false,
        }
    }

    /// The fixed limit this cover extends.
    pub fn limit(&self) -> Duration {
        self.limit
    }

    /// Whether to pet at `now`, with `pending` kB of write-back (`None`: unknown) and no
    /// disk statistics.
    pub fn check(&mut self, now: Instant, pending: Option<u64>) -> Verdict {
        self.check_progress(
            now,
            Progress {
                pending,
                written: None,
            },
        )
    }

    /// Whether to pet at `now`, given this [`Progress`]. Every check records it, so checks
    /// within the fixed limit count as history.
    pub fn check_progress(&mut self, now: Instant, progress: Progress) -> Verdict {
        let wrote = matches!((self.written, progress.written), (Some(a), Some(b)) if b > a);
        if let Some(w) = progress.written {
            self.written = Some(w);
            self.written_first.get_or_insert((w, now));
        }
        let pending = progress.pending;
        if let Some(p) = pending {
            match self.low {
                Some((low, _)) if p >= low => {
                    if wrote {
                        self.low = Some((low, now));
                    }
                }
                Some(_) => {
                    self.low = Some((p, now));
                    self.fell_at = Some(now);
                }
                None => self.low = Some((p, now)),
            }
        }
        let elapsed = now.saturating_duration_since(self.started);
        if elapsed <= self.limit {
            return Verdict::Pet;
        }
        let since_low = self
            .low
            .map_or(Duration::MAX, |(_, at)| now.saturating_duration_since(at));
        let pending = match pending {
            // The write-back ended within the stall window (scenario 155 on a slow CI
            // machine: 105 s of it, then 6 s to unmount /boot): what follows is covered as
            // long as a write-back would be.
            Some(0) if since_low <= WRITEBACK_STALL => return Verdict::Pet,
            None | Some(0) => return Verdict::Stop(Why::Hung),
            Some(p) => p,
        };
        if elapsed > self.limit.saturating_add(WRITEBACK_AT_MOST) {
            return Verdict::Stop(Why::TooLong { pending });
        }
        if since_low > WRITEBACK_STALL {
            return Verdict::Stop(Why::Stalled { pending });
        }
        let first = !self.writing_back;
        self.writing_back = true;
        let seen = Seen {
            falling: self
                .fell_at
                .is_some_and(|at| now.saturating_duration_since(at) <= WRITEBACK_STALL),
            written: match (self.written_first, self.written) {
                // sectors of 512 bytes, whatever the disk's own
                (Some((from, at)), Some(to)) => Some((
                    to.saturating_sub(from) / 2,
                    now.saturating_duration_since(at),
                )),
                _ => None,
            },
        };
        Verdict::WritingBack {
            pending,
            first,
            seen,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// This host's whole `/proc/meminfo`, recorded with 871 MB dirty.
    const MEMINFO: &str = include_str!("testdata/meminfo-host.txt");

    /// Recorded on this host while `sync` wrote back 871 MB to its disk (ms since the sync,
    /// Dirty kB, Writeback kB): what falling looks like, Writeback rising as Dirty drains.
    const HOST_SYNC: &[(u64, u64, u64)] = &[
        (5, 869_544, 2_080),
        (268, 723_208, 43_980),
        (495, 388_416, 208_080),
        (704, 41_560, 247_208),
        (928, 312, 0),
    ];

    fn meminfo(dirty: u64, writeback: u64) -> String {
        MEMINFO
            .lines()
            .map(|l| match l.split(':').next() {
                Some("Dirty") => format!("Dirty:          {dirty:>8} kB"),
                Some("Writeback") => format!("Writeback:      {writeback:>8} kB"),
                _ => l.to_string(),
            })
            .collect::<Vec<_>>()
            .join("\n")
    }

    #[test]
    fn pending_is_dirty_and_writeback_not_writebacktmp() {
        assert_eq!(pending_writeback(MEMINFO.as_bytes()), Some(871_468));
        assert_eq!(
            pending_writeback(meminfo(10, 5).as_bytes()),
            Some(15),
            "WritebackTmp must not be taken for Writeback"
        );
        for bad in [
            "",
            "Dirty: 5 kB\n",
            "Writeback: 5 kB\n",
            "Dirty: x kB\nWriteback: 1 kB",
        ] {
            assert_eq!(pending_writeback(bad.as_bytes()), None, "{bad:?}");
        }
    }

    /// Runs a cover with a fixed limit of 60 s over readings `(seconds, Dirty, Writeback)`
    /// taken from whole meminfo texts; returns each verdict.
    fn run(readings: &[(u64, u64, u64)]) -> Vec<Verdict> {
        let t0 = Instant::now();
        let mut cover = Cover::new(t0, Duration::from_secs(60));
        readings
            .iter()
            .map(|&(s, dirty, writeback)| {
                let text = meminfo(dirty, writeback);
                cover.check(
                    t0 + Duration::from_secs(s),
                    pending_writeback(text.as_bytes()),
                )
            })
            .collect()
    }

    /// The host's recorded sync slowed down 100 times (a slow SD card: 871 MB in 93 s)
    /// and read every 7.5 s (a 15 s watchdog): petted to the end, said once.
    #[test]
    fn a_slow_write_back_that_falls_is_covered_past_the_limit() {
        let slow: Vec<(u64, u64, u64)> = (0..=13)
            .map(|i| {
                let s = i * 15 / 2;
                let at_ms = s * 10; // the host's ms, slowed down 100 times
                let (d, w) = HOST_SYNC
                    .iter()
                    .rev()
                    .find(|(ms, _, _)| *ms <= at_ms)
                    .map_or((871_468, 0), |&(_, d, w)| (d, w));
                (s, d, w)
            })
            .collect();
        let verdicts = run(&slow);
        let past: Vec<&Verdict> = verdicts
            .iter()
            .zip(&slow)
            .filter(|(_, (s, _, _))| *s > 60)
            .map(|(v, _)| v)
            .collect();
        assert!(!past.is_empty());
        assert!(
            past.iter()
                .all(|v| matches!(v, Verdict::WritingBack { .. } | Verdict::Stop(Why::Hung))),
            "{verdicts:?}"
        );
        assert!(matches!(
            past.first(),
            Some(Verdict::WritingBack { first: true, .. })
        ));
        // Done writing (312 kB is the floor the host kept): still petted, since 312 was a new low.
        assert!(
            !verdicts.iter().any(|v| matches!(v, Verdict::Stop(_))),
            "{verdicts:?}"
        );
    }

    #[test]
    fn a_write_back_that_stops_falling_is_not_covered() {
        let verdicts = run(&[
            (0, 400_000, 20_000),
            (30, 300_000, 20_000),
            // The card stops answering: Writeback stays, Dirty too.
            (45, 290_000, 30_000),
            (60, 290_000, 30_000),
            (70, 290_000, 30_000),
            (80, 290_000, 30_000),
        ]);
        assert_eq!(
            verdicts,
            [
                Verdict::Pet,
                Verdict::Pet,
                Verdict::Pet,
                Verdict::Pet,
                // 320,000 at 30 s was the last low: 40 s ago at 70 s.
                Verdict::Stop(Why::Stalled { pending: 320_000 }),
                Verdict::Stop(Why::Stalled { pending: 320_000 }),
            ]
        );
    }

    #[test]
    fn a_rise_is_no_progress_only_a_new_low_is() {
        let verdicts = run(&[
            (0, 100_000, 0),
            (61, 100_500, 0),
            (80, 100_200, 0),
            (95, 99_000, 0),
        ]);
        assert_eq!(
            verdicts,
            [
                Verdict::Pet,
                // 61 s past the last low.
                Verdict::Stop(Why::Stalled { pending: 100_500 }),
                Verdict::Stop(Why::Stalled { pending: 100_200 }),
                // A new low: petting again (a stall is no final word, the limit is).
                Verdict::WritingBack {
                    pending: 99_000,
                    first: true,
                    seen: Seen {
                        falling: true,
                        written: None
                    },
                },
            ]
        );
    }

    #[test]
    fn diskstats_sum_the_sectors_written() {
        let stats = b"   7       0 loop0 50 0 800 3 0 0 0 0 0 20 3 0 0 0 0 0 0\n \
                      254       0 vda 120 4 9000 60 300 7 56016 9000 3 9100 9060 0 0 0 0\n \
                      254       1 vda1 100 4 8000 50 298 7 56000 8990 0 9000 9040 0 0 0 0\n";
        // vda1 is vda's
        assert_eq!(sectors_written(stats), Some(56_016));
        let pi =
            b"179 0 mmcblk0 1 0 2 0 3 0 4000 0 0 0 0\n179 1 mmcblk0p1 1 0 2 0 3 0 3000 0 0 0 0\n\
                   179 2 mmcblk0p2 1 0 2 0 3 0 1000 0 0 0 0\n8 0 sda 1 0 2 0 3 0 5 0 0 0 0\n";
        assert_eq!(sectors_written(pi), Some(4_005));
        assert_eq!(sectors_written(b""), None);
        assert_eq!(sectors_written(b"254 0 vda 1 2\n"), None);
    }

    /// Scenario 155's shutdown: 19,216 kB stay in Writeback for 37 s (one bio), while the
    /// disk completes a 128 KiB request every 250 ms: petted. Once the disk stops, the stall.
    #[test]
    fn a_write_back_held_in_one_bio_is_progress_while_the_disk_writes() {
        let t0 = Instant::now();
        let mut cover = Cover::new(t0, Duration::from_secs(60));
        let at = |s: u64| t0 + Duration::from_secs(s);
        let sample = |written: u64| Progress {
            pending: Some(19_216),
            written: Some(written),
        };
        assert_eq!(cover.check_progress(at(50), sample(1_000)), Verdict::Pet);
        let mut verdicts = Vec::new();
        for s in (55..=100).step_by(5) {
            verdicts.push(cover.check_progress(at(s), sample(1_000 + s * 1_024)));
        }
        assert!(
            verdicts
                .iter()
                .all(|v| matches!(v, Verdict::Pet | Verdict::WritingBack { .. })),
            "{verdicts:?}"
        );
        // Said as it was seen: the disks' writes since the first reading (50 s), not a fall.
        assert_eq!(
            verdicts.iter().find(|v| *v != &Verdict::Pet),
            Some(&Verdict::WritingBack {
                pending: 19_216,
                first: true,
                // 65 * 1,024 sectors more than at 50 s, 15 s before; no fall
                seen: Seen {
                    falling: false,
                    written: Some((33_280, Duration::from_secs(15)))
                },
            })
        );
        // The disk stops: 30 s later, no more petting.
        let stuck = sample(1_000 + 100 * 1_024);
        assert!(matches!(
            cover.check_progress(at(120), stuck),
            Verdict::WritingBack { .. }
        ));
        assert_eq!(
            cover.check_progress(at(131), stuck),
            Verdict::Stop(Why::Stalled { pending: 19_216 })
        );
        // Without disk statistics the same hold is a stall (the rule before).
        let mut blind = Cover::new(t0, Duration::from_secs(60));
        blind.check(at(50), Some(19_216));
        assert_eq!(
            blind.check(at(85), Some(19_216)),
            Verdict::Stop(Why::Stalled { pending: 19_216 })
        );
    }

    /// Which progress is said: a new low within the stall window, the disks' writes, both.
    #[test]
    fn the_progress_is_said_as_it_was_seen() {
        let t0 = Instant::now();
        let at = |s: u64| t0 + Duration::from_secs(s);
        let p = |pending: u64, written: Option<u64>| Progress {
            pending: Some(pending),
            written,
        };
        let none = None;
        // (pending kB, sectors written) at 0, 30 and 61 s; the verdict's `seen` at 61 s.
        let table = [
            // falling, the disks writing too: both
            (
                [(900, Some(0)), (800, Some(2_000)), (700, Some(4_000))],
                true,
                Some((2_000, 61)),
            ),
            // a fall 31 s ago is no longer said; the disks' writes are
            (
                [(900, Some(0)), (800, Some(2_000)), (800, Some(4_000))],
                false,
                Some((2_000, 61)),
            ),
            // held in one bio while the disks write
            (
                [(900, Some(0)), (900, Some(2_000)), (900, Some(4_000))],
                false,
                Some((2_000, 61)),
            ),
            // a fall 31 s ago and no write since: a stall
            (
                [(900, Some(0)), (800, Some(2_000)), (800, Some(2_000))],
                false,
                Some((1_000, 61)),
            ),
            // no disk statistics
            ([(900, none), (800, none), (700, none)], true, None),
        ];
        for (readings, falling, written) in table {
            let mut cover = Cover::new(t0, Duration::from_secs(60));
            let mut last = Verdict::Pet;
            for ((pending, sectors), s) in readings.into_iter().zip([0, 30, 61]) {
                last = cover.check_progress(at(s), p(pending, sectors));
            }
            let want = Seen {
                falling,
                written: written.map(|(kb, s)| (kb, Duration::from_secs(s))),
            };
            match last {
                Verdict::WritingBack { seen, .. } => assert_eq!(seen, want, "{readings:?}"),
                // the fall 31 s ago with no write since: a stall
                other => assert!(
                    readings[2].1 == readings[1].1
                        && other == Verdict::Stop(Why::Stalled { pending: 800 }),
                    "{readings:?}: {other:?}"
                ),
            }
        }
    }

    #[test]
    fn the_progress_in_words() {
        let written = |kb: u64, ms: u64| Some((kb, Duration::from_millis(ms)));
        let table = [
            (true, None, "falling"),
            (true, written(0, 9_000), "falling"),
            (false, None, "no progress seen yet"),
            (
                true,
                written(10_239, 63_900),
                "falling, 10239 kB written to the disks in the last 1m 3s",
            ),
            (
                false,
                written(57_000, 73_000),
                "not falling, but 55 MB written to the disks in the last 1m 13s",
            ),
        ];
        for (falling, written, words) in table {
            let seen = Seen { falling, written };
            assert_eq!(seen.words(), words, "{seen:?}");
        }
    }

    #[test]
    fn nothing_to_write_back_past_the_limit_is_a_hang() {
        let verdicts = run(&[(10, 500, 0), (20, 0, 0), (61, 0, 0)]);
        assert_eq!(
            verdicts,
            [Verdict::Pet, Verdict::Pet, Verdict::Stop(Why::Hung)]
        );
        let t0 = Instant::now();
        let mut cover = Cover::new(t0, Duration::from_secs(60));
        assert_eq!(
            cover.check(t0 + Duration::from_secs(61), None),
            Verdict::Stop(Why::Hung)
        );
    }

    /// Scenario 155 on a slow machine: the write-back ends well past the limit; the
    /// unmounts after it are petted through for a while, a hang after them is not.
    #[test]
    fn the_end_of_a_write_back_past_the_limit_is_covered_a_little() {
        let verdicts = run(&[
            (50, 56_000, 0),
            (70, 40_000, 0),
            (100, 0, 0),
            (101, 0, 0),
            (130, 0, 0),
            (131, 0, 0),
        ]);
        assert!(matches!(verdicts[1], Verdict::WritingBack { .. }));
        assert_eq!(verdicts[2..5], [Verdict::Pet, Verdict::Pet, Verdict::Pet]);
        assert_eq!(verdicts[5], Verdict::Stop(Why::Hung));
    }

    #[test]
    fn a_write_back_that_keeps_falling_is_bounded() {
        // 1 kB less every 5 s for an hour: covered up to 60 s + 600 s, then no more.
        let readings: Vec<(u64, u64, u64)> = (0..720).map(|i| (i * 5, 1_000_000 - i, 0)).collect();
        let verdicts = run(&readings);
        for (v, (s, _, _)) in verdicts.iter().zip(&readings) {
            match *s {
                0..=60 => assert_eq!(*v, Verdict::Pet, "{s}"),
                61..=660 => assert!(matches!(v, Verdict::WritingBack { .. }), "{s}: {v:?}"),
                _ => assert!(
                    matches!(v, Verdict::Stop(Why::TooLong { .. })),
                    "{s}: {v:?}"
                ),
            }
        }
    }

    #[test]
    fn waiting_goes_on_while_the_disks_write() {
        let t0 = Instant::now();
        let s = Duration::from_secs;
        let mut p = Progressing::new(t0, Some(100));
        assert!(p.still(t0 + s(20), Some(100)));
        assert!(p.still(t0 + s(25), Some(180)), "writing");
        assert!(
            p.still(t0 + s(55), Some(180)),
            "within 30 s of the last write"
        );
        assert!(!p.still(t0 + s(56), Some(180)), "nothing for 31 s");
        // without diskstats nothing tells a dead card from a slow one
        let mut p = Progressing::new(t0, None);
        assert!(p.still(t0 + s(600), None));
    }
}
