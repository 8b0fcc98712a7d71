//! The search for the boot partition among the block devices: sysfs lists them (`scan::list`),
//! each is read by a probe thread of its own (`probe`), and the search takes the device that
//! `[boot] device` names as soon as the reads that have answered let it decide, so a device
//! that never answers hides no other. `LABEL=`, `UUID=`, `PARTUUID=` and a path name one
//! device: the first to match is taken. `auto` (the first FAT partition) keeps the list's
//! order while every device answers, and passes over one that has not answered
//! [`PASS_OVER`] after a later one matched, saying so. Both boot waits (`hotplug`'s grace,
//! `bootpart`'s) run a search over the same probes, so they never read a device twice at
//! once; the decision itself is pure ([`decide`]).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::config::DeviceSpec;
use crate::devices::uevent;
use crate::events::Events;
use crate::storage::probe::{self, Answer, DeviceProbes};
use crate::storage::scan::{self, Candidate, Listing, ScanError};
use crate::sys::Sys;

/// What a wait does with each uevent it reads (load the new device's module: `hotplug`);
/// [`crate::events::LOST`] when some were lost.
pub type OnUevent<'a> = &'a mut dyn FnMut(&mut dyn Sys, &[u8]);

/// `auto` passes over a device that has not answered this long after a later one matched.
pub const PASS_OVER: Duration = Duration::from_secs(1);

/// While reads are under way, a wait reads the uevents that came at least this often.
const STEP: Duration = Duration::from_millis(50);

/// Where one candidate stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// It is the one asked for, known since then.
    Yes { since: Instant },
    /// It is not (or it cannot be read).
    No,
    /// Its read has not answered yet.
    Unknown,
}

/// What the search does now, given where each candidate (in the list's order) stands.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Take this candidate, passing over these ones before it, which have not answered.
    Take {
        index: usize,
        passed_over: Vec<usize>,
    },
    /// Wait for reads or devices; decide again by `until` at the latest.
    Wait { until: Option<Instant> },
}

/// The decision: the first candidate that is the one asked for; for `auto`, only once every
/// candidate before it has answered or [`PASS_OVER`] has passed since it matched.
pub fn decide(auto: bool, statuses: &[Status], now: Instant) -> Verdict {
    let mut pending = Vec::new();
    for (index, status) in statuses.iter().enumerate() {
        match *status {
            Status::Yes { since } => {
                if !auto || pending.is_empty() {
                    return Verdict::Take {
                        index,
                        passed_over: Vec::new(),
                    };
                }
                let at = crate::events::deadline_after(since, PASS_OVER);
                if now >= at {
                    return Verdict::Take {
                        index,
                        passed_over: pending,
                    };
                }
                return Verdict::Wait { until: Some(at) };
            }
            Status::No => {}
            Status::Unknown => pending.push(index),
        }
    }
    Verdict::Wait { until: None }
}

/// The other rows that match as well as the one taken at `taken`.
fn others_matching(statuses: &[Status], taken: usize) -> impl Iterator<Item = usize> + '_ {
    statuses
        .iter()
        .enumerate()
        .filter(move |(i, status)| *i != taken && matches!(status, Status::Yes { .. }))
        .map(|(i, _)| i)
}

/// What the search says after a look at the devices.
#[derive(Debug, PartialEq, Eq)]
pub enum Step {
    Found(Candidate),
    /// Not decided: come back by `until` at the latest, or when a read answers (`reading`:
    /// some are under way) or a block device comes or goes.
    Wait {
        until: Option<Instant>,
        reading: bool,
    },
}

/// One candidate as the last step saw it.
struct Row {
    name: String,
    seen: Seen,
    errors: Vec<ScanError>,
}

enum Seen {
    Read(Candidate),
    /// Its read (or its disk's, for a PARTUUID) under way since then.
    Reading(Instant),
    /// It could not be read: no thread, or the read failed without an answer.
    Lost,
}

/// A search for the partition `spec` names under `root`.
pub struct Search {
    spec: DeviceSpec,
    root: PathBuf,
    probes: DeviceProbes,
    /// The devices as sysfs listed them; listed again after a block device's uevent.
    listing: Option<Listing>,
    /// When each matching candidate was first seen to match.
    matched: BTreeMap<String, Instant>,
    rows: Vec<Row>,
}

impl Search {
    pub fn new(spec: &DeviceSpec, root: &Path, probes: &DeviceProbes) -> Search {
        Search {
            spec: spec.clone(),
            root: root.to_path_buf(),
            probes: probes.clone(),
            listing: None,
            matched: BTreeMap::new(),
            rows: Vec::new(),
        }
    }

    /// A block device came, changed or went: list them again at the next step.
    pub fn devices_changed(&mut self) {
        self.listing = None;
    }

    /// Looks at what the probes know (starting reads for the devices not read yet) and decides.
    pub fn step(&mut self, now: Instant) -> Step {
        let listing = match self.listing.take() {
            Some(listing) => listing,
            None => scan::list(&self.root),
        };
        let mut statuses = Vec::with_capacity(listing.nodes.len());
        self.rows.clear();
        for node in &listing.nodes {
            let row = self.row(node);
            let status = match &row.seen {
                Seen::Read(c) if scan::matches(c, &self.spec) => Status::Yes {
                    since: *self.matched.entry(row.name.clone()).or_insert(now),
                },
                Seen::Read(_) | Seen::Lost => {
                    self.matched.remove(&row.name);
                    Status::No
                }
                Seen::Reading(_) => Status::Unknown,
            };
            statuses.push(status);
            self.rows.push(row);
        }
        self.listing = Some(listing);
        let reading = statuses.contains(&Status::Unknown);
        match decide(self.spec == DeviceSpec::Auto, &statuses, now) {
            Verdict::Take { index, passed_over } => {
                let Some(Row {
                    seen: Seen::Read(found),
                    ..
                }) = self.rows.get(index)
                else {
                    return Step::Wait {
                        until: None,
                        reading,
                    };
                };
                for row in passed_over.iter().filter_map(|&i| self.rows.get(i)) {
                    self.log_passed_over(row, found, now);
                }
                // Two cards or sticks with the same label: the one taken is said, and why.
                let twins: Vec<String> = if self.spec == DeviceSpec::Auto {
                    Vec::new()
                } else {
                    others_matching(&statuses, index)
                        .filter_map(|i| self.rows.get(i))
                        .map(|row| format!("/dev/{}", row.name))
                        .collect()
                };
                if !twins.is_empty() {
                    log::warn!(
                        "boot partition {}: {} matches too; took {}, the first in device order: give the other one another label, or name the boot partition by UUID= or PARTUUID=",
                        self.spec,
                        twins.join(", "),
                        found.dev.display()
                    );
                }
                Step::Found(found.clone())
            }
            Verdict::Wait { until } => Step::Wait { until, reading },
        }
    }

    /// `node` as the probes know it: its own read, and for a PARTUUID its disk's table.
    fn row(&self, node: &scan::Node) -> Row {
        let name = node.name.clone();
        let mut errors = Vec::new();
        let own = match self.probes.ask(&node.name) {
            Answer::Ready(look) => look,
            Answer::NotYet { since } => {
                return Row {
                    name,
                    seen: Seen::Reading(since),
                    errors,
                }
            }
            Answer::Lost => {
                return Row {
                    name,
                    seen: Seen::Lost,
                    errors,
                }
            }
        };
        errors.extend(own.errors.iter().cloned());
        // Only a PARTUUID needs the disk's partition table: no thread for it otherwise.
        let wants_table = matches!(self.spec, DeviceSpec::PartUuid(_))
            && node.number.is_some()
            && !node.disk.is_empty();
        let disk = match wants_table.then(|| self.probes.ask(&node.disk)) {
            Some(Answer::NotYet { since }) => {
                return Row {
                    name,
                    seen: Seen::Reading(since),
                    errors,
                }
            }
            Some(Answer::Ready(look)) => {
                errors.extend(look.errors.iter().cloned());
                Some(look)
            }
            Some(Answer::Lost) | None => None,
        };
        Row {
            name,
            seen: Seen::Read(scan::candidate(node, &own, disk.as_ref())),
            errors,
        }
    }

    fn log_passed_over(&self, row: &Row, found: &Candidate, now: Instant) {
        let Seen::Reading(since) = row.seen else {
            return;
        };
        self.probes.mark_named(&row.name);
        log::warn!(
            "boot partition auto: passed over /dev/{}, which has not answered a read in {}ms, for {}; a failing disk or card? check dmesg for I/O errors; [boot] device = \"LABEL=...\" names the boot partition whatever the order of the disks",
            row.name,
            now.saturating_duration_since(since).as_millis(),
            found.dev.display()
        );
    }

    /// The error of a search that timed out: every device seen and what it holds, those that
    /// did not answer, and what could not be read.
    pub fn report_not_found(&self, timeout: Duration) {
        let now = Instant::now();
        let seen: Vec<String> = self
            .rows
            .iter()
            .map(|row| match &row.seen {
                Seen::Read(c) => format!("{} ({})", c.dev.display(), scan::describe(c)),
                Seen::Reading(_) => format!("/dev/{} (no answer)", row.name),
                Seen::Lost => format!("/dev/{} (not read)", row.name),
            })
            .collect();
        log::error!(
            "boot partition {} not found after {}; block devices seen: {}; set [boot] device in the built-in init.toml or boxinit.boot= on the kernel command line (LABEL=, UUID=, PARTUUID=, /dev/..., auto), and check that the disk's driver is loaded",
            self.spec,
            crate::config::format_duration(timeout),
            if seen.is_empty() {
                "none".to_string()
            } else {
                seen.join(", ")
            }
        );
        let silent: Vec<String> = self
            .rows
            .iter()
            .filter_map(|row| match row.seen {
                Seen::Reading(since) => Some(format!(
                    "/dev/{} (reading for {}s)",
                    row.name,
                    now.saturating_duration_since(since).as_secs()
                )),
                _ => None,
            })
            .collect();
        if !silent.is_empty() {
            log::error!(
                "block devices that did not answer a read: {}; a failing card or disk? replace it or check its cable (dmesg may show I/O errors)",
                silent.join(", ")
            );
        }
        let listing_errors = self.listing.iter().flat_map(|l| l.errors.iter());
        for e in listing_errors.chain(self.rows.iter().flat_map(|r| r.errors.iter())) {
            log::error!("  {e}");
        }
    }
}

/// Runs `search` until it finds the partition or `deadline` passes. Between looks it sleeps
/// until a read answers or the kernel announces a device (uevent), not on a fixed period;
/// each uevent goes to `on_uevent` first (it may load the driver of the disk being waited
/// for), and a block device's makes the search list the devices again. Reads that take
/// longer than [`probe::SLOW`] are named in a warning.
pub fn run(
    sys: &mut dyn Sys,
    events: &Events,
    search: &mut Search,
    deadline: Instant,
    on_uevent: OnUevent,
) -> Option<Candidate> {
    loop {
        let answers = search.probes.answers();
        let now = Instant::now();
        let (until, reading) = match search.step(now) {
            Step::Found(found) => return Some(found),
            Step::Wait { until, reading } => (until, reading),
        };
        name_slow(&search.probes, now);
        if now >= deadline {
            return None;
        }
        let wake = until.map_or(deadline, |u| u.min(deadline));
        let wait = wake.saturating_duration_since(now);
        // Signals stay queued for the main loop.
        let messages = if reading {
            search.probes.wait_answer(answers, wait.min(STEP));
            events.wait_uevent(Duration::ZERO)
        } else {
            events.wait_uevent(wait)
        };
        for message in messages {
            on_uevent(sys, &message);
            if uevent::is_block(&message) {
                search.devices_changed();
            }
        }
        if events.take_lost() {
            // which devices came or went is unknown: list them again, and pass the loss on
            on_uevent(sys, crate::events::LOST);
            search.devices_changed();
        }
    }
}

/// Names in a warning, once each, the reads under way for [`probe::SLOW`]; returns when the
/// next one will be due.
pub fn name_slow(probes: &DeviceProbes, now: Instant) -> Option<Instant> {
    for (name, reading) in probes.take_slow(now, probe::SLOW) {
        log::warn!(
            "block device /dev/{name} has not answered a read in {}ms; a failing disk or card? nothing waits for it; check dmesg for I/O errors, replace it or its cable",
            reading.as_millis()
        );
    }
    probes.next_slow(probe::SLOW)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_partition_with_the_label_is_found() {
        let now = Instant::now();
        let yes = Status::Yes { since: now };
        let statuses = [Status::No, yes, Status::Unknown, yes];
        assert_eq!(others_matching(&statuses, 1).collect::<Vec<_>>(), [3]);
        assert_eq!(others_matching(&statuses[..3], 1).count(), 0);
    }
    use crate::storage::partition::testdisk::{fat32, mbr};
    use crate::storage::probe::{fake::Hang, Probes};
    use crate::sys::recorder::Recorder;

    #[test]
    fn decisions() {
        let now = Instant::now();
        let yes = |ago_ms: u64| Status::Yes {
            since: now - Duration::from_millis(ago_ms),
        };
        let (no, unknown) = (Status::No, Status::Unknown);
        let take = |index, passed_over: &[usize]| Verdict::Take {
            index,
            passed_over: passed_over.to_vec(),
        };
        let wait_ms = |ms: u64| Verdict::Wait {
            until: Some(now + Duration::from_millis(ms)),
        };
        let wait = Verdict::Wait { until: None };
        // (auto?, statuses, verdict)
        let cases = [
            (true, vec![no, yes(0)], take(1, &[])),
            (true, vec![yes(0), unknown], take(0, &[])),
            (true, vec![unknown, unknown], wait),
            (true, vec![], Verdict::Wait { until: None }),
            (true, vec![unknown, yes(0)], wait_ms(1000)),
            (true, vec![unknown, yes(400)], wait_ms(600)),
            (true, vec![unknown, yes(1000)], take(1, &[0])),
            (
                true,
                vec![unknown, no, unknown, yes(2000)],
                take(3, &[0, 2]),
            ),
            // the first match in order holds back a later one, also one matched earlier
            (true, vec![unknown, yes(300), yes(5000)], wait_ms(700)),
            (false, vec![unknown, yes(0)], take(1, &[])),
            (false, vec![unknown, no, yes(0), yes(0)], take(2, &[])),
            (false, vec![no, unknown], Verdict::Wait { until: None }),
        ];
        for (auto, statuses, want) in cases {
            assert_eq!(decide(auto, &statuses, now), want, "{auto} {statuses:?}");
        }
    }

    /// A root with two disks: `vda` whose partition `vda1` is FAT32 labelled FIRST, and
    /// `vdb` whose `vdb1` is FAT32 labelled BOOT.
    fn two_disks(tag: &str) -> PathBuf {
        let root = std::env::temp_dir().join(format!(
            "boxinit-search-{tag}-{}-{:?}",
            std::process::id(),
            std::thread::current().id()
        ));
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(root.join("dev")).unwrap();
        for (disk, sig, label) in [("vda", 0xA, b"FIRST      "), ("vdb", 0xB, b"BOOT       ")] {
            let class = root.join("sys/class/block");
            std::fs::create_dir_all(class.join(disk)).unwrap();
            let part = format!("{disk}1");
            std::fs::create_dir_all(class.join(&part)).unwrap();
            std::fs::write(class.join(&part).join("partition"), "1\n").unwrap();
            std::fs::write(root.join("dev").join(disk), mbr(sig, &[(0x0C, 2048, 8192)])).unwrap();
            std::fs::write(root.join("dev").join(&part), fat32(label, sig, 0)).unwrap();
        }
        root
    }

    /// Runs a search for `spec` over `probes` for at most 5 s: what it found, and when.
    fn search(spec: &str, root: &Path, probes: &DeviceProbes) -> (Option<String>, Duration) {
        search_for(spec, root, probes, Duration::from_secs(5))
    }

    fn search_for(
        spec: &str,
        root: &Path,
        probes: &DeviceProbes,
        limit: Duration,
    ) -> (Option<String>, Duration) {
        let events = Events::open().unwrap();
        let spec: DeviceSpec = spec.parse().unwrap();
        let mut search = Search::new(&spec, root, probes);
        let t0 = Instant::now();
        let deadline = t0 + limit;
        let found = run(
            &mut Recorder::new(),
            &events,
            &mut search,
            deadline,
            &mut |_, _| {},
        );
        (found.map(|c| c.dev.display().to_string()), t0.elapsed())
    }

    /// Probes over `root` whose `hung` devices never answer until released.
    fn probes(root: &Path, hang: &Hang, hung: &'static [&'static str]) -> DeviceProbes {
        let root = root.to_path_buf();
        Probes::new(hang.reader(hung, move |name| scan::look(&root, name)))
    }

    #[test]
    fn a_device_that_never_answers_hides_no_other() {
        let root = two_disks("hung");
        let hang = Hang::default();
        // one match: taken as soon as it answers
        for spec in [
            "LABEL=BOOT",
            "UUID=0000-000B",
            "/dev/vdb1",
            "PARTUUID=0000000b-01",
        ] {
            let (found, took) = search(spec, &root, &probes(&root, &hang, &["vda1"]));
            assert_eq!(found.as_deref(), Some("/dev/vdb1"), "{spec}");
            assert!(took < PASS_OVER, "{spec}: {took:?}");
        }
        // auto: the first FAT partition, but not for ever: vda1 is passed over after a bound
        let (found, took) = search("auto", &root, &probes(&root, &hang, &["vda1"]));
        assert_eq!(found.as_deref(), Some("/dev/vdb1"));
        assert!(took >= PASS_OVER && took < PASS_OVER * 3, "{took:?}");
        // a PARTUUID whose disk's table never comes is not guessed
        let limit = Duration::from_millis(1500);
        let no_table = probes(&root, &hang, &["vdb"]);
        let (found, took) = search_for("PARTUUID=0000000b-01", &root, &no_table, limit);
        assert_eq!(found, None);
        assert!(took >= limit && took < limit * 2, "{took:?}");
        hang.release();
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn auto_keeps_the_order_when_every_device_answers() {
        let root = two_disks("order");
        let hang = Hang::default();
        let probes = probes(&root, &hang, &["vda1"]);
        // vda1 answers 300 ms late, after vdb1: still the first FAT partition
        let late = hang.clone();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(300));
            late.release();
        });
        let (found, took) = search("auto", &root, &probes);
        assert_eq!(found.as_deref(), Some("/dev/vda1"));
        // (the search starts a little after the sleep does)
        assert!(
            took >= Duration::from_millis(250) && took < PASS_OVER,
            "{took:?}"
        );
        std::fs::remove_dir_all(&root).unwrap();
    }
}
