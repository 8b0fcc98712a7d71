//! Durations as `init.toml` and the kernel command line write them (`"500ms"`, `"10s"`).

use std::time::Duration;

/// Parse a human duration such as `"500ms"`, `"10s"`, `"1m 30s"`.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s.trim()).map_err(|e| {
        format!("`{s}` is not a duration ({e}); write it like \"500ms\", \"10s\" or \"1m\"")
    })
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
            (" 2s ", 2000),
            ("1s 500ms", 1500),
            ("0s", 0),
        ];
        for (s, ms) in ok {
            assert_eq!(parse_duration(s), Ok(Duration::from_millis(ms)), "{s}");
        }
        for s in ["", "10", "ten seconds", "-1s"] {
            let e = parse_duration(s).unwrap_err();
            assert!(e.starts_with(&format!("`{s}` is not a duration")), "{e}");
        }
    }
}
