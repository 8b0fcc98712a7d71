//! Power cuts at random instants (a scenario's `power-cuts` file), and the check every cut is
//! judged by: the host's `fsck.fat -n` on the card's partition. A cut is QEMU killed (SIGKILL)
//! with the disk in `cache=writethrough`, so the image holds exactly the writes the guest had
//! completed. Each cut starts from the disk as it was before the scenario's first boot, is
//! killed at a uniformly random time from the trigger line to a little past the end of the
//! window measured on the uncut first boot, then the next boot must start a box and
//! `fsck.fat -n` must find nothing to repair but the dirty bit (which Linux sets while the
//! FAT is mounted read-write and leaves set when the cut lands in a write window: it means
//! "not unmounted", and is counted, not failed).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};

use crate::media::image;
use crate::qemu::console::{self, Watch};
use crate::qemu::machine::{self, Boot};
use crate::qemu::transcript::{self, Ending};
use crate::test::scenario::PowerCuts;

/// What `fsck.fat -n` said of a disk.
#[derive(Debug, Default)]
pub struct Fsck {
    /// The dirty bit was set.
    pub dirty: bool,
    /// Everything else it would repair, its own words.
    pub problems: Vec<String>,
}

/// Runs `fsck.fat -n` on the first partition of `disk` (copied out: fsck.fat takes no
/// offset).
pub fn fsck(disk: &Path) -> Result<Fsck> {
    use std::io::{Read, Seek, SeekFrom, Write};
    let partition = image::read_partition(disk)?;
    let copy = disk.with_extension("partition.img");
    {
        let mut from = std::fs::File::open(disk)?;
        from.seek(SeekFrom::Start(partition.start))?;
        let mut to = std::fs::File::create(&copy)?;
        let mut left = partition.len;
        let mut buf = vec![0u8; 1 << 20];
        while left > 0 {
            let n = (left.min(buf.len() as u64)) as usize;
            from.read_exact(&mut buf[..n])?;
            if buf[..n].iter().all(|b| *b == 0) {
                to.seek(SeekFrom::Current(n as i64))?;
            } else {
                to.write_all(&buf[..n])?;
            }
            left -= n as u64;
        }
        to.set_len(partition.len)?;
    }
    let program = ["fsck.fat", "/usr/sbin/fsck.fat", "/sbin/fsck.fat"]
        .into_iter()
        .find(|p| {
            Command::new(p)
                .arg("--help")
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok()
        })
        .context("fsck.fat not found: apt-get install dosfstools")?;
    let out = Command::new(program)
        .arg("-n")
        .arg(&copy)
        .output()
        .with_context(|| format!("cannot run {program}"))?;
    let _ = std::fs::remove_file(&copy);
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    Ok(judge_fsck(&text, &copy.display().to_string()))
}

/// Sorts `fsck.fat -n`'s words into the dirty bit and the rest.
fn judge_fsck(text: &str, name: &str) -> Fsck {
    let mut verdict = Fsck::default();
    for line in text.lines().map(str::trim) {
        let benign = line.is_empty()
            || line.starts_with("fsck.fat ")
            || line == "Leaving filesystem unchanged."
            || line.starts_with(&format!("{name}:")) && line.contains(" files, ");
        if line.starts_with("Dirty bit is set") || line == "Automatically removing dirty bit." {
            verdict.dirty = true;
        } else if !benign {
            verdict.problems.push(line.to_string());
        }
    }
    verdict
}

/// A small random number generator (xorshift64*): reproducible from the seed printed.
struct Random(u64);

impl Random {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// Uniform in `[0, max]`.
    fn duration(&mut self, max: Duration) -> Duration {
        let ms = max.as_millis().max(1) as u64;
        Duration::from_millis(self.next() % (ms + 1))
    }
}

/// The cuts: returns a line saying what they showed, or the failures.
pub fn run(
    cuts: &PowerCuts,
    base: &Boot,
    disk: &Path,
    pristine: &Path,
    window: (Option<Duration>, Option<Duration>),
    timeout: Duration,
) -> Result<String> {
    let (Some(from), Some(to)) = window else {
        bail!(
            "the first boot did not show both `{}` and `{}`: no window to cut in",
            cuts.trigger,
            cuts.end
        );
    };
    // a second past the end: the writes and the remount after the line, and what follows
    // (a revert's reboot writes the shutdown report)
    let span = to.saturating_sub(from) + Duration::from_secs(1);
    let seed = std::env::var("POWER_CUT_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
                | 1
        });
    let mut random = Random(seed);
    let started = Instant::now();
    let (mut dirty, mut finished, mut ended) = (0, 0, 0);
    for i in 1..=cuts.count {
        std::fs::copy(pristine, disk).context("cannot restore the disk")?;
        let delay = random.duration(span);
        let cut = boot_once(
            base,
            Watch {
                expected: &[],
                wait_for_exit: true,
                timeout,
                settle: Duration::ZERO,
                senders: Vec::new(),
                cut: Some((cuts.trigger.clone(), delay)),
                marks: std::slice::from_ref(&cuts.end),
                cut_when_seen: false,
                on_ending: &mut || {},
            },
        )?;
        let context = format!(
            "cut {i} of {} ({}ms after `{}`, seed {seed}; POWER_CUT_SEED={seed} repeats it)",
            cuts.count,
            delay.as_millis(),
            cuts.trigger
        );
        match cut.ending {
            Ending::PowerCut => {}
            // the cut came after the machine had gone down by itself: nothing was cut
            Ending::Reboot | Ending::PowerOff => ended += 1,
            other => bail!("{context}: the boot ended {} before the cut", other.line()),
        }
        finished += usize::from(cut.marks.first().is_some_and(Option::is_some));
        let check = std::slice::from_ref(&cuts.check);
        let after = boot_once(
            base,
            Watch {
                expected: check,
                wait_for_exit: false,
                timeout,
                settle: Duration::from_millis(200),
                senders: Vec::new(),
                cut: None,
                marks: &[],
                cut_when_seen: false,
                on_ending: &mut || {},
            },
        )?;
        let seen = transcript::clean(&after.raw);
        let forbidden = transcript::forbidden_lines(&after.raw);
        if transcript::first_missing(check, &seen).is_some() || !forbidden.is_empty() {
            bail!(
                "{context}: the next boot did not show `{}`{}; its console:\n    {}",
                cuts.check,
                match forbidden.is_empty() {
                    true => String::new(),
                    false => format!(" (forbidden: {})", forbidden.join("; ")),
                },
                seen.join("\n    ")
            );
        }
        let fsck = fsck(disk)?;
        if !fsck.problems.is_empty() {
            bail!(
                "{context}: fsck.fat -n would repair: {}",
                fsck.problems.join("; ")
            );
        }
        dirty += usize::from(fsck.dirty);
    }
    Ok(format!(
        "{} power cuts in {:.0}s (seed {seed}): each next boot started a box and fsck.fat -n found nothing to repair; {dirty} landed inside a write window (the dirty bit left set), {finished} after the window's end line, {ended} after the machine had gone down by itself",
        cuts.count,
        started.elapsed().as_secs_f64()
    ))
}

/// One boot of `base` watched as `watch` says.
fn boot_once(base: &Boot, watch: Watch<'_>) -> Result<console::Watched> {
    let mut child = machine::command(base, false)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("cannot run {}", base.arch.qemu_binary()))?;
    console::watch_with(&mut child, watch)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fsck_words() {
        let clean = "fsck.fat 4.2 (2021-01-31)\n/t/p.img: 5 files, 10/16343 clusters\n";
        let v = judge_fsck(clean, "/t/p.img");
        assert!(!v.dirty && v.problems.is_empty());
        let dirty = "fsck.fat 4.2 (2021-01-31)\nDirty bit is set. Fs was not properly unmounted and some data may be corrupt.\n Automatically removing dirty bit.\n\nLeaving filesystem unchanged.\n/t/p.img: 0 files, 0/16343 clusters\n";
        let v = judge_fsck(dirty, "/t/p.img");
        assert!(v.dirty && v.problems.is_empty(), "{v:?}");
        let broken = "fsck.fat 4.2 (2021-01-31)\n/box.new\n  and\n/box\n  share clusters.\nReclaimed 3 unused clusters (12288 bytes) in 1 chain.\n";
        assert_eq!(judge_fsck(broken, "/t/p.img").problems.len(), 5);
    }

    #[test]
    fn random_instants_are_bounded_and_repeatable() {
        let (mut a, mut b) = (Random(7), Random(7));
        for _ in 0..1000 {
            let d = a.duration(Duration::from_millis(50));
            assert!(d <= Duration::from_millis(50));
            assert_eq!(d, b.duration(Duration::from_millis(50)));
        }
    }

    /// A real image made by xtask, then marked dirty: only the dirty bit is reported.
    #[test]
    fn fsck_of_an_image() {
        let dir = crate::tools::testing::temp_dir("fsck");
        let disk = dir.join("d.img");
        image::make(
            &disk,
            &image::ImageOptions {
                size_mib: 16,
                ..Default::default()
            },
        )
        .unwrap();
        let v = fsck(&disk).unwrap();
        assert!(!v.dirty && v.problems.is_empty(), "{v:?}");
        // FAT16's state byte: bit 0 is "dirty"
        use std::io::{Seek, SeekFrom, Write};
        let start = image::read_partition(&disk).unwrap().start;
        let mut f = std::fs::OpenOptions::new().write(true).open(&disk).unwrap();
        f.seek(SeekFrom::Start(start + 37)).unwrap();
        f.write_all(&[1]).unwrap();
        drop(f);
        let v = fsck(&disk).unwrap();
        assert!(v.dirty && v.problems.is_empty(), "{v:?}");
    }

    /// A directory xtask writes (fatfs's, repaired by `media/fat_dots.rs`) is one fsck
    /// accepts: `.` and `..` first.
    #[test]
    fn a_directory_on_an_image_is_clean() {
        let dir = crate::tools::testing::temp_dir("fsck-dir");
        let files = dir.join("files");
        std::fs::create_dir_all(files.join("overlays")).unwrap();
        std::fs::write(files.join("overlays/a.dtbo"), [1, 2, 3]).unwrap();
        let disk = dir.join("d.img");
        let opts = image::ImageOptions {
            size_mib: 16,
            hand_made: true,
            files: Some(files.clone()),
            ..Default::default()
        };
        image::make(&disk, &opts).unwrap();
        let v = fsck(&disk).unwrap();
        assert!(v.problems.is_empty(), "{v:?}");
        // and one made on an image already there
        std::fs::create_dir_all(files.join("more")).unwrap();
        std::fs::write(files.join("more/b.txt"), b"b").unwrap();
        image::write_files(&disk, &files).unwrap();
        let v = fsck(&disk).unwrap();
        assert!(v.problems.is_empty(), "{v:?}");
    }
}
