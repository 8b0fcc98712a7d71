//! Tests of `bundle.rs`: a bundle trial asked for, run, committed and reverted, through the
//! recorder, on a card in a temp dir with a fake `/proc` for the firmware and the kernel.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::super::card::tests::{card_with, with_state};
use super::super::card::Card;
use super::super::slots::MANIFEST;
use super::super::state::{self, Ending, Phase, State, Trial};
use crate::config::update::Tryboot;
use crate::config::Config;
use crate::supervision::event_loop::{Beats, Judge, Stop};
use crate::sys::recorder::Recorder;
use crate::sys::Reboot;

const RPI: &str = "6.6.51+rpt-rpi-v8";
const DEBIAN: &str = "6.1.0-28-arm64";

/// A card with slots a/ (config.txt) and b/ (tryboot.txt, a complete new bundle), `state`,
/// and a root whose kernel is `release`, booted by the firmware with `tryboot`/`os_prefix`.
fn slotted(tag: &str, state: &State, release: &str, fw: Option<&str>) -> (PathBuf, PathBuf) {
    let s = with_state(state);
    let (dir, root) = card_with(
        tag,
        &[
            (state::STATE_FILE, s.as_slice()),
            ("config.txt", b"os_prefix=a/\n".as_slice()),
            ("tryboot.txt", b"os_prefix=b/\n".as_slice()),
        ],
    );
    std::fs::create_dir_all(dir.join("b")).unwrap();
    let files: [(&str, &[u8]); 2] = [
        ("kernel8.img", b"new kernel"),
        ("bcm2837-rpi-3-b.dtb", b"dtb"),
    ];
    let mut manifest = String::new();
    for (name, bytes) in files {
        std::fs::write(dir.join("b").join(name), bytes).unwrap();
        let sha = crate::sha256::hex(&crate::sha256::digest(bytes));
        manifest.push_str(&format!("{sha}  {name}\n"));
    }
    std::fs::write(dir.join("b").join(MANIFEST), manifest).unwrap();
    std::fs::create_dir_all(root.join("proc/sys/kernel")).unwrap();
    std::fs::write(
        root.join("proc/sys/kernel/osrelease"),
        format!("{release}\n"),
    )
    .unwrap();
    if let Some(prefix) = fw {
        let chosen = root.join("proc/device-tree/chosen");
        std::fs::create_dir_all(chosen.join("bootloader")).unwrap();
        std::fs::write(chosen.join("bootloader/tryboot"), [0, 0, 0, 1]).unwrap();
        std::fs::write(chosen.join("os_prefix"), format!("{prefix}\0")).unwrap();
    }
    (dir, root)
}

fn pending(phase: Phase) -> State {
    State {
        boot: 7,
        ending: Ending::Report,
        trial: Some(Trial {
            phase,
            boot: 7,
            box_: None,
            config: None,
            bundle: Some(("b/".into(), "ab".repeat(32))),
        }),
        ..State::default()
    }
}

fn boot(dir: &Path, root: &Path, rec: &mut Recorder, tryboot: Tryboot) -> Card {
    let mut cfg = Config::default();
    cfg.update.tryboot = tryboot;
    let mut card = Card::open(rec, dir, true, root);
    card.configure(&cfg, true);
    card.try_box(&cfg);
    card.try_bundle();
    card.begin(rec);
    card
}

/// The loop's turn a minute after the box started: its trial is validated (healthy).
fn healthy_after_a_minute(card: &mut Card, rec: &mut Recorder) -> Option<Stop> {
    let now = Instant::now();
    card.tick(
        rec,
        now + Duration::from_secs(60),
        Some(now),
        Beats::default(),
    )
    .0
}

fn transcript(rec: &Recorder, dir: &Path) -> String {
    super::super::card::tests::short(rec, dir)
}

#[test]
fn a_new_bundle_is_recorded_then_tryboot_asked_for() {
    let (dir, root) = slotted("ask", &State::default(), RPI, None);
    let mut rec = Recorder::new();
    let mut card = boot(&dir, &root, &mut rec, Tryboot::Auto);
    let stop = card.tryboot().expect("a reboot with tryboot");
    assert_eq!(stop.how, Reboot::Tryboot);
    let t = card.scribe.state.trial.clone().unwrap();
    assert_eq!(
        (t.phase, t.bundle.unwrap().0.as_str()),
        (Phase::Requested, "b/")
    );
    assert_eq!(
        card.scribe.state.unhealthy, 0,
        "the asking boot runs no box: not counted"
    );
    let text = std::fs::read_to_string(dir.join(state::STATE_FILE)).unwrap();
    assert!(
        !text.contains("trial_bundle"),
        "the recorder writes nothing to disk"
    );
    assert!(transcript(&rec, &dir).contains("overwrite(B/boxinit/state.txt, 1024 bytes)"));
}

#[test]
fn a_kernel_that_cannot_says_so_and_leaves_the_slot() {
    let (dir, root) = slotted("cannot", &State::default(), DEBIAN, None);
    let mut card = boot(&dir, &root, &mut Recorder::new(), Tryboot::Auto);
    assert_eq!(card.tryboot(), None);
    assert_eq!(card.scribe.state.trial, None);
    // told it can, it asks; told never, it does not look
    let mut card = boot(&dir, &root, &mut Recorder::new(), Tryboot::On);
    assert!(card.tryboot().is_some());
    let (dir, root) = slotted("never", &State::default(), RPI, None);
    let mut card = boot(&dir, &root, &mut Recorder::new(), Tryboot::Off);
    assert_eq!(card.tryboot(), None);
    // a copy not finished is not tried
    let (dir, root) = slotted("bundle-cut", &State::default(), RPI, None);
    std::fs::write(dir.join("b/kernel8.img"), b"new ker").unwrap();
    let mut card = boot(&dir, &root, &mut Recorder::new(), Tryboot::Auto);
    assert_eq!(card.tryboot(), None);
}

#[test]
fn the_trial_boot_commits_a_healthy_bundle() {
    let (dir, root) = slotted("commit", &pending(Phase::Requested), RPI, Some("b/"));
    let mut rec = Recorder::new();
    let mut card = boot(&dir, &root, &mut rec, Tryboot::Auto);
    assert_eq!(card.tryboot(), None, "the trial boot does not ask again");
    let t = card.scribe.state.trial.clone().unwrap();
    assert_eq!(t.phase, Phase::Started);
    let rules = card.program_rules();
    let program =
        crate::supervision::program::resolve(&Config::default().box_, Some(&dir)).unwrap();
    assert!(rules
        .apply(program)
        .env
        .contains(&("BOXINIT_TRIAL".into(), "1".into())));
    assert_eq!(healthy_after_a_minute(&mut card, &mut rec), None);
    let t = transcript(&rec, &dir);
    assert!(
        t.contains("renameat2(B/config.txt, B/tryboot.txt, Exchange)\nfsync(B)\n"),
        "{t}"
    );
    assert!(
        t.contains("renameat2(B/b/bundle.sha256, B/b/bundle.good.sha256, NoReplace)"),
        "{t}"
    );
    assert_eq!(card.scribe.state.trial, None);
}

#[test]
fn a_failed_trial_boot_sets_the_slot_aside() {
    let (dir, root) = slotted("fail", &pending(Phase::Requested), RPI, Some("b/"));
    let mut rec = Recorder::new();
    let mut card = boot(&dir, &root, &mut rec, Tryboot::Auto);
    let stop = card.box_exited(&mut rec, crate::events::Exit::Code(1), None, Instant::now());
    assert_eq!(
        stop.map(|s| s.how),
        Some(Reboot::Restart),
        "back to config.txt's slot"
    );
    let t = transcript(&rec, &dir);
    assert!(
        t.contains("renameat2(B/b/bundle.sha256, B/b/bundle.failed.sha256, NoReplace)"),
        "{t}"
    );
    assert!(t.contains("create(B/b/bundle.failed.txt,"), "{t}");
    assert!(!t.contains("Exchange"), "{t}");
}

#[test]
fn a_boot_back_without_the_flag_reverts_and_a_cut_commit_finishes() {
    // asked, but back without the flag (a kernel that cannot), or the firmware fell back to
    // the root files, or the trial boot died
    for (tag, phase, fw) in [
        ("noflag", Phase::Requested, None),
        ("fallback", Phase::Requested, Some("")),
        ("died", Phase::Started, None),
    ] {
        let (dir, root) = slotted(tag, &pending(phase), RPI, fw);
        let mut rec = Recorder::new();
        let card = Card::open(&mut rec, &dir, true, &root);
        let t = transcript(&rec, &dir);
        assert!(
            t.contains("renameat2(B/b/bundle.sha256, B/b/bundle.failed.sha256, NoReplace)"),
            "{tag}: {t}"
        );
        assert!(!t.contains("Exchange"), "{tag}: {t}");
        assert_eq!(card.scribe.state.trial, None, "{tag}");
        assert!(card.trial.is_none(), "{tag}");
    }
    // a cut after the exchange: config.txt names b/ already, only the mark is left to do
    let (dir, root) = slotted("finish", &pending(Phase::Promoting), RPI, None);
    std::fs::write(dir.join("config.txt"), "os_prefix=b/\n").unwrap();
    std::fs::write(dir.join("tryboot.txt"), "os_prefix=a/\n").unwrap();
    let mut rec = Recorder::new();
    Card::open(&mut rec, &dir, true, &root);
    let t = transcript(&rec, &dir);
    assert!(!t.contains("Exchange"), "{t}");
    assert!(
        t.contains("renameat2(B/b/bundle.sha256, B/b/bundle.good.sha256, NoReplace)"),
        "{t}"
    );
}

/// A `box.new` copied with a new bundle: the asking boot records the bundle alone (its box
/// never runs), and the bundle's trial boot tries both, keeping or reverting them together.
#[test]
fn a_new_box_beside_a_new_bundle_is_tried_on_the_bundles_trial_boot() {
    let with_box = |tag: &str, state: &State, fw: Option<&str>| {
        let (dir, root) = slotted(tag, state, RPI, fw);
        std::fs::write(dir.join("box.new"), b"#!/bin/sh\n").unwrap();
        (dir, root)
    };
    let (dir, root) = with_box("bundle-box-ask", &State::default(), None);
    let mut card = boot(&dir, &root, &mut Recorder::new(), Tryboot::Auto);
    assert!(card.tryboot().is_some());
    let t = card.scribe.state.trial.clone().unwrap();
    assert_eq!(
        (t.phase, t.box_, t.bundle.is_some()),
        (Phase::Requested, None, true)
    );

    let (dir, root) = with_box("bundle-box-keep", &pending(Phase::Requested), Some("b/"));
    let mut rec = Recorder::new();
    let mut card = boot(&dir, &root, &mut rec, Tryboot::Auto);
    assert_eq!(card.tryboot(), None);
    let t = card.scribe.state.trial.clone().unwrap();
    assert_eq!(t.phase, Phase::Started);
    assert_eq!(t.box_.map(|(path, _)| path), Some("box".to_string()));
    assert_eq!(healthy_after_a_minute(&mut card, &mut rec), None);
    let t = transcript(&rec, &dir);
    assert!(
        t.contains("renameat2(B/config.txt, B/tryboot.txt, Exchange)"),
        "{t}"
    );
    // (no box on this card before: moved rather than exchanged)
    assert!(t.contains("renameat2(B/box.new, B/box, NoReplace)"), "{t}");
    assert_eq!(card.scribe.state.trial, None);

    let (dir, root) = with_box("bundle-box-fail", &pending(Phase::Requested), Some("b/"));
    let mut rec = Recorder::new();
    let mut card = boot(&dir, &root, &mut rec, Tryboot::Auto);
    let stop = card.box_exited(&mut rec, crate::events::Exit::Code(1), None, Instant::now());
    assert_eq!(stop.map(|s| s.how), Some(Reboot::Restart));
    let t = transcript(&rec, &dir);
    assert!(
        t.contains("renameat2(B/b/bundle.sha256, B/b/bundle.failed.sha256, NoReplace)"),
        "{t}"
    );
    assert!(
        t.contains("renameat2(B/box.new, B/box.failed, NoReplace)"),
        "{t}"
    );
    assert!(!t.contains("Exchange"), "{t}");
}
