//! A trial's files on the card, for one name (`box`, `bin/app`, `init.toml`): what is there
//! (`Facts`), and the two ways a trial ends, as renames inside a write window. Promotion:
//! `NAME.new` and `NAME` exchanged at once (`RENAME_EXCHANGE`), the old one then renamed
//! `NAME.previous`; each step can be redone from what is on the card, so a boot that finds
//! the state "promoting" runs it again and it finishes. Set aside (a revert, or a copy found
//! incomplete): `NAME.new` renamed `NAME.failed`, and `NAME.failed.txt` written with why.

use std::io;
use std::path::Path;

use super::window::Window;

/// What is on the card for one name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Facts {
    /// The sha256 of `NAME.new`, when it exists (and could be read).
    pub new: Option<String>,
    /// `NAME` exists.
    pub current: bool,
    pub previous: bool,
    pub failed: bool,
    pub failed_txt: bool,
    /// `NAME.new.sha256` exists.
    pub sha_file: bool,
}

/// `NAME.new`, `NAME.previous`, ... beside `NAME`.
pub fn beside(name: &str, suffix: &str) -> String {
    format!("{name}.{suffix}")
}

impl Facts {
    /// Looks at the card mounted at `dir` for `name`; `hash` says whether `NAME.new`'s
    /// digest is needed (it reads the whole file).
    pub fn read(dir: &Path, name: &str, hash: bool) -> Facts {
        let exists = |suffix: Option<&str>| {
            let file = match suffix {
                Some(s) => beside(name, s),
                None => name.to_string(),
            };
            dir.join(file).is_file()
        };
        let new_path = dir.join(beside(name, "new"));
        let new = match (new_path.is_file(), hash) {
            (false, _) => None,
            (true, false) => Some(String::new()),
            (true, true) => Some(crate::sha256::file_hex(&new_path).unwrap_or_default()),
        };
        Facts {
            new,
            current: exists(None),
            previous: exists(Some("previous")),
            failed: exists(Some("failed")),
            failed_txt: exists(Some("failed.txt")),
            sha_file: exists(Some("new.sha256")),
        }
    }
}

/// Puts the validated `NAME.new` (digest `sha`) in place of `NAME`, the old one as
/// `NAME.previous`. From any point a power cut may have left it at (the state says
/// "promoting"): `NAME.new` still the new file (digest `sha`): exchange; `NAME.new` another
/// file: the old one, left there by the exchange: on to `.previous`; no `NAME.new`: done.
pub fn promote(w: &mut Window, name: &str, sha: &str, f: &Facts) -> io::Result<()> {
    let new = beside(name, "new");
    let previous = beside(name, "previous");
    let mut old_at_new = false;
    match &f.new {
        Some(s) if s == sha => {
            if !f.current {
                w.rename(&new, name)?;
            } else if w.exchange(&new, name)? {
                old_at_new = true;
            } else {
                // A kernel without RENAME_EXCHANGE on vfat (before 6.0): one rename at a time,
                // the old file first out of the way; a cut between the two leaves no `NAME`,
                // and the next boot (state "promoting") renames `NAME.new` then.
                if f.previous {
                    w.remove(&previous)?;
                }
                w.rename(name, &previous)?;
                w.rename(&new, name)?;
            }
        }
        Some(_) => old_at_new = true,
        None => {}
    }
    if old_at_new {
        if f.previous {
            w.remove(&previous)?;
        }
        w.rename(&new, &previous)?;
    }
    if f.sha_file {
        w.remove(&beside(&new, "sha256"))?;
    }
    Ok(())
}

/// Moves `NAME.new` aside as `NAME.failed` (replacing an older one) and writes
/// `NAME.failed.txt` with `why`; the `.sha256` that came with it goes too (the next copy
/// brings its own).
pub fn set_aside(w: &mut Window, name: &str, why: &str, f: &Facts) -> io::Result<()> {
    let new = beside(name, "new");
    let failed = beside(name, "failed");
    let txt = beside(name, "failed.txt");
    if f.new.is_some() {
        if f.failed {
            w.remove(&failed)?;
        }
        w.rename(&new, &failed)?;
    }
    if f.failed_txt {
        w.remove(&txt)?;
    }
    w.create(&txt, why.as_bytes())?;
    if f.sha_file {
        w.remove(&beside(&new, "sha256"))?;
    }
    Ok(())
}

/// The text of `NAME.failed.txt`.
pub fn failed_text(name: &str, why: &str, boot: u64, when: &str, ran_instead: &str) -> String {
    format!(
        "boxinit did not keep {name}.new, now {name}.failed:\r\n{why}\r\n\r\nwhen: boot {boot}, {when}\r\nwhat ran instead: {ran_instead}\r\nTo try again, copy a fixed file as {name}.new (and, if you like, its {name}.new.sha256 last).\r\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sys::recorder::{Call, Recorder};

    fn run(f: impl FnOnce(&mut Window)) -> String {
        let mut rec = Recorder::new();
        let mut w = Window::open(&mut rec, Path::new("/b"), false, "test").unwrap();
        f(&mut w);
        drop(w);
        rec.transcript()
            .lines()
            .filter(|l| !l.starts_with("fsync("))
            .map(|l| format!("{l}\n"))
            .collect()
    }

    const SHA: &str = "new";

    #[test]
    fn promotion_from_every_point_a_cut_leaves() {
        let fresh = Facts {
            new: Some(SHA.into()),
            current: true,
            previous: true,
            sha_file: true,
            ..Facts::default()
        };
        // validated: exchange, the old one to .previous, the .sha256 gone
        assert_eq!(
            run(|w| promote(w, "box", SHA, &fresh).unwrap()),
            "renameat2(/b/box.new, /b/box, Exchange)\nunlink(/b/box.previous)\nrenameat2(/b/box.new, /b/box.previous, NoReplace)\nunlink(/b/box.new.sha256)\n"
        );
        // cut after the exchange: the old one is at .new
        let exchanged = Facts {
            new: Some("old".into()),
            current: true,
            ..Facts::default()
        };
        assert_eq!(
            run(|w| promote(w, "box", SHA, &exchanged).unwrap()),
            "renameat2(/b/box.new, /b/box.previous, NoReplace)\n"
        );
        // cut after all the renames: nothing left to do
        let done = Facts {
            current: true,
            previous: true,
            ..Facts::default()
        };
        assert_eq!(run(|w| promote(w, "box", SHA, &done).unwrap()), "");
        // no init.toml before: the new one takes the name
        let first = Facts {
            new: Some(SHA.into()),
            ..Facts::default()
        };
        assert_eq!(
            run(|w| promote(w, "init.toml", SHA, &first).unwrap()),
            "renameat2(/b/init.toml.new, /b/init.toml, NoReplace)\n"
        );
    }

    #[test]
    fn promotion_without_rename_exchange() {
        let mut rec = Recorder::new();
        rec.fail_when(
            |c| {
                matches!(
                    c,
                    Call::Rename {
                        how: crate::sys::Rename::Exchange,
                        ..
                    }
                )
            },
            22,
        );
        let mut w = Window::open(&mut rec, Path::new("/b"), false, "test").unwrap();
        let f = Facts {
            new: Some(SHA.into()),
            current: true,
            ..Facts::default()
        };
        promote(&mut w, "box", SHA, &f).unwrap();
        drop(w);
        assert_eq!(
            rec.transcript(),
            "renameat2(/b/box.new, /b/box, Exchange)\nrenameat2(/b/box, /b/box.previous, NoReplace)\nfsync(/b)\nrenameat2(/b/box.new, /b/box, NoReplace)\nfsync(/b)\n"
        );
    }

    #[test]
    fn set_aside_replaces_an_older_failure() {
        let f = Facts {
            new: Some(SHA.into()),
            current: true,
            failed: true,
            failed_txt: true,
            sha_file: true,
            ..Facts::default()
        };
        assert_eq!(
            run(|w| set_aside(w, "box", "it crashed", &f).unwrap()),
            "unlink(/b/box.failed)\nrenameat2(/b/box.new, /b/box.failed, NoReplace)\nunlink(/b/box.failed.txt)\ncreate(/b/box.failed.txt, 10 bytes)\nunlink(/b/box.new.sha256)\n"
        );
        // a revert finished before a cut: only the reason is written again
        let moved = Facts {
            current: true,
            failed: true,
            ..Facts::default()
        };
        assert_eq!(
            run(|w| set_aside(w, "box", "again", &moved).unwrap()),
            "create(/b/box.failed.txt, 5 bytes)\n"
        );
    }

    #[test]
    fn facts_from_a_card() {
        let dir = std::env::temp_dir().join(format!("boxinit-facts-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).unwrap();
        std::fs::write(dir.join("bin/app"), "old").unwrap();
        std::fs::write(dir.join("bin/app.new"), "abc").unwrap();
        std::fs::write(dir.join("bin/app.failed.txt"), "x").unwrap();
        let f = Facts::read(&dir, "bin/app", true);
        assert_eq!(
            f,
            Facts {
                new: Some(
                    "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad".into()
                ),
                current: true,
                failed_txt: true,
                ..Facts::default()
            }
        );
        assert_eq!(Facts::read(&dir, "bin/app", false).new, Some(String::new()));
        assert_eq!(Facts::read(&dir, "box", true), Facts::default());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
