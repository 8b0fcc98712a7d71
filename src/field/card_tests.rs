//! Tests of `card.rs` (the card), in their own file to keep the module short.

use super::*;
use crate::sys::recorder::{Call, Recorder};

/// A card in a temp dir (`boot/`) with these files, and a root for `/run`.
pub(crate) fn card_with(tag: &str, files: &[(&str, &[u8])]) -> (PathBuf, PathBuf) {
    let base = std::env::temp_dir().join(format!("boxinit-card-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&base);
    let (dir, root) = (base.join("boot"), base.join("root"));
    std::fs::create_dir_all(dir.join(state::DIR)).unwrap();
    // boxinit's private mount of the card, as the tests' recorder cannot bind-mount: the
    // same files under the path the windows write to
    let private = root.join(PRIVATE_MOUNT);
    std::fs::create_dir_all(private.parent().unwrap()).unwrap();
    std::os::unix::fs::symlink(&dir, &private).unwrap();
    for (name, bytes) in state::initial_files() {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    for (name, bytes) in files {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
    (dir, root)
}

/// A transcript with the card's paths (`/boot` and boxinit's private mount of it, made by
/// `card_with`'s layout) as `B`, without the private mount's making (its own test sees it).
pub(crate) fn short(rec: &Recorder, dir: &Path) -> String {
    let private = dir.with_file_name("root").join(PRIVATE_MOUNT);
    let folder = private.parent().unwrap_or(&private).display().to_string();
    let run = private.parent().and_then(Path::parent);
    let run = run.unwrap_or(&private).display().to_string();
    let private = private.display().to_string();
    let made = |l: &str| {
        l == format!("mkdir({run}, 755)")
            || l == format!("mkdir({folder}, 700)")
            || l == format!("mkdir({private}, 700)")
            || (l.starts_with("mount(") && l.contains(&format!(", {private}, ")))
    };
    rec.transcript()
        .lines()
        .filter(|l| !made(l))
        .map(|l| {
            l.replace(&private, "B")
                .replace(&dir.display().to_string(), "B")
                + "\n"
        })
        .collect()
}

pub(crate) fn with_state(state: &State) -> Vec<u8> {
    state::format(state, state::STATE_LEN).unwrap()
}

#[test]
fn a_new_card_says_so_and_a_cut_boot_is_named() {
    let (dir, root) = card_with("first", &[]);
    let card = Card::open(&mut Recorder::new(), &dir, true, &root);
    assert!(!card.run.previous_without_report);
    assert!(!root.join(PREVIOUS_BOOT).exists());
    let running = with_state(&State {
        boot: 4,
        ending: Ending::Running,
        ..State::default()
    });
    let (dir, root) = card_with("cut", &[(state::STATE_FILE, running.as_slice())]);
    let card = Card::open(&mut Recorder::new(), &dir, true, &root);
    assert!(card.run.previous_without_report);
    let text = std::fs::read_to_string(root.join(PREVIOUS_BOOT)).unwrap();
    assert!(
        text.starts_with("previous boot (4) ended without a shutdown report"),
        "{text}"
    );
}

#[test]
fn the_previous_report_is_said_and_kept_for_the_box() {
    let report = report::format(&report::Report {
        boot: 9,
        why: "asked for by SIGUSR2 to PID 1".into(),
        action: "power-off".into(),
        uptime: std::time::Duration::from_secs(75),
        ..report::Report::default()
    });
    let s = with_state(&State {
        boot: 9,
        ending: Ending::Report,
        report: 2,
        ..State::default()
    });
    let (dir, root) = card_with(
        "report",
        &[
            (state::STATE_FILE, s.as_slice()),
            ("boxinit/report-2.txt", report.as_slice()),
        ],
    );
    Card::open(&mut Recorder::new(), &dir, true, &root);
    let text = std::fs::read_to_string(root.join(PREVIOUS_BOOT)).unwrap();
    assert!(text.starts_with("previous boot (9): power-off after 1m15s: asked for by SIGUSR2 to PID 1 (report in boxinit/report-2.txt)\n\nboxinit shutdown report\n"), "{text}");
}

#[test]
fn a_trial_without_a_verdict_is_reverted_and_a_promotion_finished() {
    let sha = crate::sha256::hex(&crate::sha256::digest(b"#!/bin/sh\n"));
    let trial = |phase| {
        with_state(&State {
            boot: 3,
            ending: Ending::Running,
            trial: Some(Trial {
                phase,
                boot: 3,
                box_: Some(("box".into(), sha.clone())),
                config: None,
                bundle: None,
            }),
            ..State::default()
        })
    };
    let started = trial(Phase::Started);
    let (dir, root) = card_with(
        "revert",
        &[
            (state::STATE_FILE, started.as_slice()),
            ("box", b"old".as_slice()),
            ("box.new", b"#!/bin/sh\n".as_slice()),
        ],
    );
    let mut rec = Recorder::new();
    let card = Card::open(&mut rec, &dir, true, &root);
    let t = short(&rec, &dir);
    assert!(
        t.contains(
            "renameat2(B/box.new, B/box.failed, NoReplace)\nfsync(B)\ncreate(B/box.failed.txt,"
        ),
        "{t}"
    );
    assert!(
        t.ends_with("remount(B, MountFlags(NOATIME | NODEV | NOSUID | RDONLY))\n"),
        "{t}"
    );
    assert_eq!(card.scribe.state.trial, None);
    let promoting = trial(Phase::Promoting);
    let (dir, root) = card_with(
        "promote",
        &[
            (state::STATE_FILE, promoting.as_slice()),
            ("box", b"old".as_slice()),
            ("box.new", b"#!/bin/sh\n".as_slice()),
        ],
    );
    let mut rec = Recorder::new();
    Card::open(&mut rec, &dir, false, &root);
    let t = short(&rec, &dir);
    assert!(t.starts_with("renameat2(B/box.new, B/box, Exchange)\nfsync(B)\nrenameat2(B/box.new, B/box.previous, NoReplace)\n"), "{t}");
}

#[test]
fn new_files_are_checked_recorded_and_the_brake_holds() {
    let (dir, root) = card_with(
        "begin",
        &[
            ("box", b"old".as_slice()),
            ("box.new", b"#!/bin/sh\necho cut sho".as_slice()),
        ],
    );
    let mut rec = Recorder::new();
    let mut card = Card::open(&mut rec, &dir, true, &root);
    card.configure(&Config::default(), true);
    card.try_box(&Config::default());
    assert!(card.trial.is_none(), "a cut script is not tried");
    card.begin(&mut rec);
    let t = short(&rec, &dir);
    assert!(
        t.contains("renameat2(B/box.new, B/box.failed, NoReplace)"),
        "{t}"
    );
    assert!(
        t.contains("overwrite(B/boxinit/state.txt, 1024 bytes)"),
        "{t}"
    );
    assert_eq!(
        (card.scribe.state.boot, card.scribe.state.unhealthy),
        (1, 1)
    );
    assert_eq!(card.scribe.state.ending, Ending::Running);
    // five boots without a healthy box: safe mode, unless something new is to be tried
    let held = with_state(&State {
        boot: 5,
        unhealthy: 5,
        ..State::default()
    });
    let (dir, root) = card_with("brake", &[(state::STATE_FILE, held.as_slice())]);
    let mut card = Card::open(&mut Recorder::new(), &dir, true, &root);
    card.configure(&Config::default(), true);
    card.begin(&mut Recorder::new());
    assert!(card
        .safe_mode()
        .is_some_and(|why| why.starts_with("5 boots in a row")));
    let (dir, root) = card_with(
        "brake-new",
        &[
            (state::STATE_FILE, held.as_slice()),
            ("box.new", b"#!/bin/sh\n".as_slice()),
        ],
    );
    let mut card = Card::open(&mut Recorder::new(), &dir, true, &root);
    card.configure(&Config::default(), true);
    card.try_box(&Config::default());
    card.begin(&mut Recorder::new());
    assert_eq!(card.safe_mode(), None);
    assert!(card.scribe.state.trial.is_some());
    let rules = card.program_rules();
    let program =
        crate::supervision::program::resolve(&Config::default().box_, Some(&dir)).unwrap();
    let program = rules.apply(program);
    assert_eq!(program.program, dir.join("box.new"));
    assert!(program.env.contains(&("BOXINIT_TRIAL".into(), "1".into())));
}

#[test]
fn a_hand_made_card_gets_its_files_once() {
    let (dir, root) = card_with("hand", &[]);
    std::fs::remove_dir_all(dir.join(state::DIR)).unwrap();
    let mut rec = Recorder::new();
    let mut card = Card::open(&mut rec, &dir, true, &root);
    card.configure(&Config::default(), true);
    card.begin(&mut rec);
    // nothing to try: the record waits for the box to run (the loop's first turn)
    assert_eq!(short(&rec, &dir), "");
    use crate::supervision::event_loop::{Beats, Judge};
    card.tick(&mut rec, Instant::now(), None, Beats::default());
    let t = short(&rec, &dir);
    assert!(t.contains("mkdir(B/boxinit, 755)"), "{t}");
    for n in 1..=4 {
        assert!(
            t.contains(&format!("create(B/boxinit/report-{n}.txt, 16384 bytes)")),
            "{t}"
        );
    }
    assert!(t.contains("create(B/boxinit/state.txt, 1024 bytes)"), "{t}");
    // both features off: nothing is written at all
    let (dir, root) = card_with("off", &[]);
    let mut cfg = Config::default();
    cfg.update.enabled = false;
    cfg.report.enabled = false;
    let mut rec = Recorder::new();
    let mut card = Card::open(&mut rec, &dir, true, &root);
    card.configure(&cfg, true);
    card.begin(&mut rec);
    assert_eq!(short(&rec, &dir), "");
}

#[test]
fn safe_mode_never_reboots_on_its_own() {
    let mut cfg = Config::default();
    cfg.watchdog.heartbeat = Some(std::time::Duration::from_secs(5));
    cfg.service.push(cfg.box_.clone());
    let safe = safe_config(cfg);
    use crate::config::{ExitAction, RescueAction};
    for p in std::iter::once(&safe.box_).chain(&safe.service) {
        assert_eq!(
            (p.on_exit, p.crash_loop.action),
            (ExitAction::Wait, ExitAction::Wait)
        );
    }
    assert_eq!(safe.system.rescue, RescueAction::Wait);
    assert_eq!(safe.watchdog.heartbeat, None);
}

#[test]
fn windows_write_through_boxinits_own_mount_never_boot() {
    let (dir, root) = card_with("private", &[]);
    let mut rec = Recorder::new();
    let mut card = Card::open(&mut rec, &dir, true, &root);
    card.configure(&Config::default(), true);
    let private = root.join(PRIVATE_MOUNT);
    let t = rec.transcript();
    assert!(
        t.contains(&format!(
            "mkdir({}, 755)\nmkdir({}, 700)\nmkdir({}, 700)\nmount({}, {}, , MountFlags(BIND), \"\")",
            private.parent().unwrap().parent().unwrap().display(),
            private.parent().unwrap().display(),
            private.display(),
            dir.display(),
            private.display()
        )),
        "{t}"
    );
    let mut rec = Recorder::new();
    assert!(card.window(&mut rec, "test", |w, _| w
        .overwrite("boxinit/state.txt", b"x")));
    let t = rec.transcript();
    let boot = format!("({},", dir.display());
    assert!(
        !t.contains(&boot),
        "/boot itself is never remounted or written: {t}"
    );
    assert!(
        t.starts_with(&format!("remount({},", private.display())),
        "{t}"
    );
    // a card boxinit could not mount privately: the windows remount /boot itself
    let mut rec = Recorder::new();
    rec.fail_when(|c| matches!(c, Call::Mount { .. }), 1);
    let mut card = Card::open(&mut rec, &dir, true, &root);
    card.configure(&Config::default(), true);
    let mut rec = Recorder::new();
    assert!(card.window(&mut rec, "test", |w, _| w
        .overwrite("boxinit/state.txt", b"x")));
    assert!(rec
        .transcript()
        .starts_with(&format!("remount({},", dir.display())));
    // a read-write /boot ([boot] read_only = false) is written as it is, not remounted
    card.configure(&Config::default(), false);
    let mut rec = Recorder::new();
    assert!(card.window(&mut rec, "test", |w, _| w
        .overwrite("boxinit/state.txt", b"x")));
    assert!(rec
        .transcript()
        .starts_with(&format!("overwrite({}/", dir.display())));
}
