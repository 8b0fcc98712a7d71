//! `[system] run_size`, `tmp_size`, `shm_size`: how much of the RAM the tmpfs on `/run`,
//! `/tmp` and `/dev/shm` may hold, their defaults and what a value may be. A tmpfs without
//! `size=` may take half the RAM, two of them all of it: a box that filled `/tmp` and
//! `/dev/shm` left the kernel nothing and it panicked ("System is deadlocked on memory").

/// `/run`: lease files, the heartbeat, the supplicant's config; small.
pub const DEFAULT_RUN_SIZE: &str = "10%";
/// `/tmp`: the box's scratch space, the largest.
pub const DEFAULT_TMP_SIZE: &str = "25%";
/// `/dev/shm`: shared memory between the box's processes.
pub const DEFAULT_SHM_SIZE: &str = "10%";

/// What is wrong with a size (`"25%"` of the RAM, or bytes with an optional `k`, `m` or `g`:
/// `"64m"`), as tmpfs's `size=` takes it; `None` when it is fine. `0` is refused: to tmpfs
/// it means no bound at all.
pub fn size_problem(value: &str) -> Option<String> {
    let (digits, unit) = match value.char_indices().last() {
        Some((i, c)) if "%kKmMgG".contains(c) => (value.get(..i).unwrap_or(""), Some(c)),
        _ => (value, None),
    };
    let number = match digits.parse::<u64>() {
        Ok(n) if digits.bytes().all(|b| b.is_ascii_digit()) => n,
        _ => {
            return Some(format!(
                "{value:?} is not a size: write a share of the RAM (\"25%\") or bytes with k, m or g (\"64m\")"
            ))
        }
    };
    match (number, unit) {
        (0, _) => Some(format!(
            "{value:?} would leave it unbounded (tmpfs reads 0 as no limit); give a size, e.g. \"25%\""
        )),
        (n, Some('%')) if n > 100 => Some(format!("{value:?} is more than the RAM (at most \"100%\")")),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        for fine in [
            "10%",
            "100%",
            "1",
            "64m",
            "64M",
            "512k",
            "1g",
            DEFAULT_TMP_SIZE,
        ] {
            assert_eq!(size_problem(fine), None, "{fine}");
        }
        for (bad, says) in [
            ("0", "unbounded"),
            ("0%", "unbounded"),
            ("101%", "more than the RAM"),
            ("", "not a size"),
            ("%", "not a size"),
            ("-5%", "not a size"),
            ("+5%", "not a size"),
            ("1.5g", "not a size"),
            ("64 m", "not a size"),
            ("64mb", "not a size"),
            ("99999999999999999999k", "not a size"),
        ] {
            let problem = size_problem(bad).unwrap_or_default();
            assert!(problem.contains(says), "{bad}: {problem}");
        }
    }
}
