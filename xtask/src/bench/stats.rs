//! The benchmark's numbers: median, quartiles and extremes of a set of boots, and how the
//! report writes a figure (KiB, a target's verdict, a median or a dash).

/// Median, quartiles and extremes of a set of numbers.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Stats {
    pub n: usize,
    pub median: f64,
    pub q1: f64,
    pub q3: f64,
    pub min: f64,
    pub max: f64,
}

impl Stats {
    /// `None` for an empty set. Quantiles interpolate linearly between the sorted values.
    pub fn of(values: &[f64]) -> Option<Stats> {
        if values.is_empty() {
            return None;
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let quantile = |q: f64| {
            let pos = q * (sorted.len() - 1) as f64;
            let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
            sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
        };
        Some(Stats {
            n: sorted.len(),
            median: quantile(0.5),
            q1: quantile(0.25),
            q3: quantile(0.75),
            min: sorted[0],
            max: sorted[sorted.len() - 1],
        })
    }
}

/// A size as the report writes it: `793.3 KiB`.
pub fn kib(bytes: u64) -> String {
    format!("{:.1} KiB", bytes as f64 / 1024.0)
}

/// One targets-table verdict.
pub fn verdict(ok: bool) -> &'static str {
    if ok {
        "met"
    } else {
        "**not met**"
    }
}

/// The median of `values` rounded to a whole number, or `–` when there are none.
pub fn median(values: &[f64]) -> String {
    Stats::of(values).map_or("–".to_string(), |s| format!("{:.0}", s.median))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics() {
        assert_eq!(Stats::of(&[]), None);
        let s = Stats::of(&[5.0, 1.0, 3.0, 2.0, 4.0]).unwrap();
        assert_eq!(
            (s.n, s.median, s.q1, s.q3, s.min, s.max),
            (5, 3.0, 2.0, 4.0, 1.0, 5.0)
        );
        let s = Stats::of(&[4.0, 1.0]).unwrap();
        assert_eq!((s.median, s.q1, s.q3), (2.5, 1.75, 3.25));
        assert_eq!(Stats::of(&[7.0]).unwrap().median, 7.0);
    }
}
