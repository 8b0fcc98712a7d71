//! Durations as `init.toml` and the kernel command line write them (`"500ms"`, `"10s"`,
//! `"1m 30s"`): the parser, with the units the README lists and a bound, and the format log
//! lines use. Written here rather than taken from `humantime`: that crate also reads months
//! and years (`"1M"` is a month to it, a minute to many people) and has no upper bound, and a
//! dependency less is a smaller init.

use std::time::Duration;

/// The longest duration any key takes: a day. Longer waits are not a setting an appliance
/// needs (`rescue = "wait"` waits for ever), and the bound keeps every deadline computed from
/// a duration far from `Instant`'s overflow.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

/// The units, as written, with their length and a word for messages; the README lists these.
const UNITS: &[(&str, Duration, &str)] = &[
    ("ms", Duration::from_millis(1), "a millisecond"),
    ("s", Duration::from_secs(1), "a second"),
    ("m", Duration::from_secs(60), "a minute"),
    ("h", Duration::from_secs(3600), "an hour"),
];

/// Other spellings people write, and the unit they most likely meant. `M` is a month to some
/// parsers; in a config of timeouts it is almost always a minute typed with shift held.
const SPELLINGS: &[(&str, &str)] = &[
    ("msec", "ms"),
    ("msecs", "ms"),
    ("millis", "ms"),
    ("millisecond", "ms"),
    ("milliseconds", "ms"),
    ("sec", "s"),
    ("secs", "s"),
    ("second", "s"),
    ("seconds", "s"),
    ("min", "m"),
    ("mins", "m"),
    ("minute", "m"),
    ("minutes", "m"),
    ("hr", "h"),
    ("hrs", "h"),
    ("hour", "h"),
    ("hours", "h"),
];

/// "ms, s, m, h", for messages.
fn unit_list() -> String {
    UNITS
        .iter()
        .map(|(u, _, _)| *u)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The unit `written` most likely stands for: a known unit in another case (`M`, `S`, `MS`)
/// or a long spelling (`min`, `seconds`).
fn likely_unit(written: &str) -> Option<&'static str> {
    let lower = written.to_ascii_lowercase();
    UNITS
        .iter()
        .map(|(u, _, _)| *u)
        .find(|u| *u == lower)
        .or_else(|| {
            SPELLINGS
                .iter()
                .find(|(spelling, _)| *spelling == lower)
                .map(|(_, u)| *u)
        })
}

/// One `<number><unit>` group of a duration, as written.
struct Group<'a> {
    number: &'a str,
    unit: &'a str,
}

/// Split `s` into groups: digits, optional spaces, a unit (letters), optional spaces. None when
/// something else is in the way (a sign, a dot, a number without digits).
fn groups(s: &str) -> Option<Vec<Group<'_>>> {
    let mut out = Vec::new();
    let mut rest = s.trim();
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return None;
        }
        let (number, after) = rest.split_at(digits);
        let after = after.trim_start();
        let letters = after
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(letters);
        out.push(Group { number, unit });
        rest = after.trim_start();
    }
    Some(out)
}

/// Parse a duration such as `"500ms"`, `"10s"`, `"1m 30s"`: whole numbers, each with one of
/// the units `ms`, `s`, `m`, `h`, summed; at most [`MAX_DURATION`]. Errors say what is wrong
/// and, when it is likely a typo, what was meant (`"1M"`: did you mean "1m", a minute?).
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let example = "write it like \"500ms\", \"10s\", \"1m 30s\" or \"2h\"";
    let Some(groups) = groups(s).filter(|g| !g.is_empty()) else {
        return Err(format!("`{s}` is not a duration; {example}"));
    };
    let mut total = Duration::ZERO;
    for group in &groups {
        let Some((_, length, _)) = UNITS.iter().find(|(u, _, _)| *u == group.unit) else {
            return Err(unknown_unit(s, &groups, group));
        };
        // A number too big for u64 is far past the bound anyway.
        let part = group
            .number
            .parse::<u32>()
            .ok()
            .and_then(|n| length.checked_mul(n))
            .and_then(|part| total.checked_add(part))
            .filter(|sum| *sum <= MAX_DURATION);
        match part {
            Some(sum) => total = sum,
            None => {
                return Err(format!(
                    "`{s}` is longer than {}, the longest duration boxinit takes",
                    format_duration(MAX_DURATION)
                ))
            }
        }
    }
    Ok(total)
}

/// The error for a group whose unit is not one of [`UNITS`], with the whole duration as it
/// was likely meant when every unit in it can be guessed.
fn unknown_unit(s: &str, groups: &[Group<'_>], bad: &Group<'_>) -> String {
    let units = unit_list();
    if bad.unit.is_empty() {
        let as_seconds = bad
            .number
            .parse::<u64>()
            .is_ok_and(|n| n <= MAX_DURATION.as_secs());
        return match as_seconds {
            true => format!(
                "`{s}` is not a duration: `{}` needs a unit, such as \"{}s\" (units: {units})",
                bad.number, bad.number
            ),
            false => format!(
                "`{s}` is not a duration: `{}` needs a unit ({units})",
                bad.number
            ),
        };
    }
    let guessed: Option<Vec<(String, &str)>> = groups
        .iter()
        .map(|g| {
            let unit = likely_unit(g.unit)?;
            Some((format!("{}{unit}", g.number), unit))
        })
        .collect();
    let mut msg = format!("`{s}` is not a duration: unknown unit `{}`", bad.unit);
    if let Some(guessed) = guessed {
        let text: Vec<&str> = guessed.iter().map(|(t, _)| t.as_str()).collect();
        msg.push_str(&format!(", did you mean \"{}\"", text.join(" ")));
        if let [(_, unit)] = guessed.as_slice() {
            if let Some((_, _, word)) = UNITS.iter().find(|(u, _, _)| u == unit) {
                msg.push_str(&format!(" ({word})"));
            }
        }
        msg.push('?');
    }
    msg.push_str(&format!(" (units: {units})"));
    msg
}

/// A duration as log lines show it, in the units the parser reads: `"1m 30s"`, `"1s 500ms"`,
/// `"0s"`; below a millisecond, `us` and `ns`.
pub fn format_duration(d: Duration) -> String {
    let secs = d.as_secs();
    let nanos = d.subsec_nanos();
    let parts = [
        (secs / 3600, "h"),
        (secs / 60 % 60, "m"),
        (secs % 60, "s"),
        (u64::from(nanos / 1_000_000), "ms"),
        (u64::from(nanos / 1_000 % 1_000), "us"),
        (u64::from(nanos % 1_000), "ns"),
    ];
    let shown: Vec<String> = parts
        .iter()
        .filter(|(n, _)| *n > 0)
        .map(|(n, unit)| format!("{n}{unit}"))
        .collect();
    if shown.is_empty() {
        "0s".to_string()
    } else {
        shown.join(" ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations() {
        let ok = [
            ("500ms", 500),
            ("10s", 10_000),
            ("1m", 60_000),
            ("2h", 7_200_000),
            (" 2s ", 2000),
            ("1s 500ms", 1500),
            ("1m30s", 90_000),
            ("10 s", 10_000),
            ("0s", 0),
            ("24h", 86_400_000),
            ("23h 59m 60s", 86_400_000),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
    }

    /// Each case: (text, the exact error).
    #[test]
    fn duration_errors() {
        let example = "write it like \"500ms\", \"10s\", \"1m 30s\" or \"2h\"";
        let cases = [
            ("", format!("`` is not a duration; {example}")),
            ("ten seconds", format!("`ten seconds` is not a duration; {example}")),
            ("-1s", format!("`-1s` is not a duration; {example}")),
            ("1.5s", format!("`1.5s` is not a duration; {example}")),
            (
                "10",
                "`10` is not a duration: `10` needs a unit, such as \"10s\" (units: ms, s, m, h)".into(),
            ),
            (
                "1M",
                "`1M` is not a duration: unknown unit `M`, did you mean \"1m\" (a minute)? (units: ms, s, m, h)".into(),
            ),
            (
                "5 minutes",
                "`5 minutes` is not a duration: unknown unit `minutes`, did you mean \"5m\" (a minute)? (units: ms, s, m, h)".into(),
            ),
            (
                "1 hour 30 min",
                "`1 hour 30 min` is not a duration: unknown unit `hour`, did you mean \"1h 30m\"? (units: ms, s, m, h)".into(),
            ),
            (
                "5 parsecs",
                "`5 parsecs` is not a duration: unknown unit `parsecs` (units: ms, s, m, h)".into(),
            ),
            (
                "1y",
                "`1y` is not a duration: unknown unit `y` (units: ms, s, m, h)".into(),
            ),
            (
                "25h",
                "`25h` is longer than 24h, the longest duration boxinit takes".into(),
            ),
            (
                "24h 1ms",
                "`24h 1ms` is longer than 24h, the longest duration boxinit takes".into(),
            ),
            (
                "99999999999999999999s",
                "`99999999999999999999s` is longer than 24h, the longest duration boxinit takes".into(),
            ),
            (
                "4294967296ms",
                "`4294967296ms` is longer than 24h, the longest duration boxinit takes".into(),
            ),
        ];
        for (s, want) in cases {
            assert_eq!(parse_duration(s), Err(want), "{s}");
        }
    }

    #[test]
    fn formats_as_the_parser_reads() {
        let cases = [
            (Duration::ZERO, "0s"),
            (Duration::from_millis(100), "100ms"),
            (Duration::from_millis(1600), "1s 600ms"),
            (Duration::from_secs(90), "1m 30s"),
            (Duration::from_secs(7200), "2h"),
            (MAX_DURATION, "24h"),
            (Duration::from_micros(1500), "1ms 500us"),
            (Duration::new(3661, 7), "1h 1m 1s 7ns"),
        ];
        for (d, want) in cases {
            assert_eq!(format_duration(d), want);
            if d.subsec_nanos() % 1_000_000 == 0 {
                assert_eq!(parse_duration(want), Ok(d), "{want}");
            }
        }
    }
}
