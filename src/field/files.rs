//! The card's files that boxinit writes, the way it writes them: the state file in place at
//! its length (or made once when missing), any fixed-length file replaced in place when its
//! length allows, the report files a card lacks, and the dates written into them. Shared by
//! the boot's part (`card.rs`) and the run's (`run.rs`).

use std::path::Path;

use super::state::{self, State};
use super::window::Window;

/// Writes the state file: in place at its length on the card, or created when missing.
pub(crate) fn write_state(w: &mut Window, state: &State, dir: &Path) -> std::io::Result<()> {
    let on_card = std::fs::metadata(dir.join(state::STATE_FILE))
        .map(|m| m.len() as usize)
        .ok();
    let len = on_card
        .filter(|len| *len >= state::STATE_LEN)
        .unwrap_or(state::STATE_LEN);
    let bytes = state::format(state, len).ok_or_else(|| {
        std::io::Error::other("the state does not fit in its file (a [box] path that long?)")
    })?;
    match on_card {
        Some(l) if l == len => w.overwrite(state::STATE_FILE, &bytes),
        Some(_) => {
            w.remove(state::STATE_FILE)?;
            w.create(state::STATE_FILE, &bytes)
        }
        None => w.create(state::STATE_FILE, &bytes),
    }
}

/// A blank report for `boxinit/report-N.txt`.
pub(crate) fn report_blank(name: &str) -> Vec<u8> {
    let n = name
        .trim_start_matches("boxinit/report-")
        .trim_end_matches(".txt")
        .parse()
        .unwrap_or(0);
    state::blank_report(n)
}

/// The wall clock as a date, for files on the card.
pub(crate) fn now_text() -> String {
    crate::net::clock::date(crate::net::clock::now_seconds())
}

/// The report files missing on the card, or of another length than they must have.
pub(crate) fn missing_reports(dir: &Path) -> Vec<String> {
    (1..=state::REPORTS)
        .map(state::report_file)
        .filter(|name| {
            std::fs::metadata(dir.join(name)).map(|m| m.len()).ok()
                != Some(state::REPORT_LEN as u64)
        })
        .collect()
}

/// Writes `bytes` as `name`: in place when the file has that length, else it is made anew.
pub(crate) fn replace(w: &mut Window, dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    match std::fs::metadata(dir.join(name)).map(|m| m.len()) {
        Ok(len) if len == bytes.len() as u64 => w.overwrite(name, bytes),
        Ok(_) => {
            w.remove(name)?;
            w.create(name, bytes)
        }
        Err(_) => w.create(name, bytes),
    }
}
