//! The benchmark's chart, `bench-timeline.svg`: per init a bar from `/init`'s start to the
//! box's, the init's setup dark and the box's start pale, the spread as a whisker.

use std::fmt::Write as _;

use crate::bench::markers::Variant;
use crate::bench::stats::Stats;

/// One bar of the chart: when `/init` started, when it started the box (exec), when the box
/// started, in ms of `CLOCK_BOOTTIME`.
pub struct Row {
    pub variant: Variant,
    /// when `/init` started
    pub init: Stats,
    /// `/init` start to exec of the box
    pub setup: Option<Stats>,
    /// exec of the box to its first words
    pub start: Option<Stats>,
    /// `/init` start to the box's start
    pub overhead: Stats,
}

/// The chart's SVG: one bar per variant from `/init`'s start (0) to the box's: the init's
/// setup, then exec until the box's first words; the whisker spans the fastest and the
/// slowest run. The kernel's part (when `/init` started) is in the label: it is the same
/// kernel in all three and only adds noise to the picture.
pub fn timeline_svg(rows: &[Row]) -> String {
    const LEFT: f64 = 190.0;
    const WIDTH: f64 = 900.0;
    const ROW: f64 = 50.0;
    const TOP: f64 = 48.0;
    let end = rows
        .iter()
        .map(|r| r.overhead.max)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    // a round scale: the next 100 ms above the slowest box start
    let scale_end = (end.min(5000.0) / 100.0).ceil() * 100.0;
    let x = |ms: f64| LEFT + ms.clamp(0.0, scale_end) / scale_end * (WIDTH - LEFT - 250.0);
    let height = TOP + ROW * rows.len() as f64 + 96.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="12" y="22" font-size="15" font-weight="bold">From /init's start to the box's start (CLOCK_BOOTTIME, medians of interleaved runs)</text>"#
    );
    let axis_y = TOP + ROW * rows.len() as f64 + 4.0;
    let step = match scale_end {
        e if e > 1500.0 => 500.0,
        e if e > 600.0 => 200.0,
        e if e > 300.0 => 100.0,
        _ => 50.0,
    };
    let mut tick = 0.0;
    while tick <= scale_end + 0.1 {
        let tx = x(tick);
        let _ = writeln!(
            s,
            r##"<line x1="{tx:.1}" y1="{TOP}" x2="{tx:.1}" y2="{axis_y}" stroke="#ddd"/><text x="{tx:.1}" y="{:.1}" text-anchor="middle" fill="#444">{tick:.0}</text>"##,
            axis_y + 16.0
        );
        tick += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" text-anchor="middle" fill="#444">ms after /init started</text>"##,
        x(scale_end / 2.0),
        axis_y + 34.0
    );
    let _ = writeln!(
        s,
        r##"<text x="12" y="{:.1}" fill="#444">dark: the init's setup (mounts, modules, boot partition, config) until it execs the box</text><text x="12" y="{:.1}" fill="#444">pale: from exec to the box's first words; whisker: the fastest and the slowest run</text>"##,
        axis_y + 58.0,
        axis_y + 76.0
    );
    for (i, row) in rows.iter().enumerate() {
        let y = TOP + ROW * i as f64 + 8.0;
        let colour = match row.variant {
            Variant::Boxinit => "#2b7bb9",
            Variant::Busybox => "#d9822b",
            Variant::Floor => "#4a9e5c",
        };
        let total = row.overhead.median;
        let setup = row.setup.map_or(total, |s| s.median.clamp(0.0, total));
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" text-anchor="end" font-weight="bold">{}</text><text x="{:.1}" y="{:.1}" text-anchor="end" fill="#666" font-size="11">/init at {:.2} s</text>"##,
            LEFT - 10.0,
            y + 12.0,
            row.variant.name(),
            LEFT - 10.0,
            y + 26.0,
            row.init.median / 1e3
        );
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="28" fill="{colour}"/>"##,
            x(0.0),
            x(setup) - x(0.0)
        );
        let _ = writeln!(
            s,
            r##"<rect x="{:.1}" y="{y:.1}" width="{:.1}" height="28" fill="{colour}" fill-opacity="0.45"/>"##,
            x(setup),
            (x(total) - x(setup)).max(0.0)
        );
        let (w0, w1) = (x(row.overhead.min), x(row.overhead.max));
        let wy = y + 14.0;
        let _ = writeln!(
            s,
            r##"<line x1="{w0:.1}" y1="{wy:.1}" x2="{w1:.1}" y2="{wy:.1}" stroke="#222"/><line x1="{w0:.1}" y1="{:.1}" x2="{w0:.1}" y2="{:.1}" stroke="#222"/><line x1="{w1:.1}" y1="{:.1}" x2="{w1:.1}" y2="{:.1}" stroke="#222"/>"##,
            wy - 6.0,
            wy + 6.0,
            wy - 6.0,
            wy + 6.0
        );
        let parts = match (&row.setup, &row.start) {
            (Some(setup), Some(start)) => {
                format!(": setup {:.0} + start {:.0}", setup.median, start.median)
            }
            _ => String::new(),
        };
        let _ = writeln!(
            s,
            r##"<text x="{:.1}" y="{:.1}" fill="#222">{total:.0} ms{parts}</text>"##,
            w1.max(x(total)) + 8.0,
            y + 19.0
        );
    }
    s.push_str("</svg>\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_has_a_row_per_variant() {
        let st = |m: f64| Stats::of(&[m - 10.0, m, m + 10.0]).unwrap();
        let svg = timeline_svg(&[
            Row {
                variant: Variant::Boxinit,
                init: st(2800.0),
                setup: Some(st(650.0)),
                start: Some(st(50.0)),
                overhead: st(700.0),
            },
            Row {
                variant: Variant::Floor,
                init: st(2790.0),
                setup: None,
                start: None,
                overhead: st(610.0),
            },
        ]);
        if let Some(out) = std::env::var_os("BENCH_SVG_OUT") {
            std::fs::write(out, &svg).unwrap();
        }
        assert!(svg.starts_with("<svg") && svg.ends_with("</svg>\n"));
        assert!(svg.contains(">boxinit</text>") && svg.contains(">floor</text>"));
        assert!(svg.contains(">700 ms: setup 650 + start 50<"), "{svg}");
        assert!(svg.contains(">610 ms<"), "{svg}");
    }
}
