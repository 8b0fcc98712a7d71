//! What a benchmark boot prints and how it is read: the box's arguments and last line, the
//! inits compared (`Variant`), and the markers on the console (the init's and the box's start
//! on `CLOCK_BOOTTIME`, PID 1's memory, the reaping time, boxinit's phases). Pure text work.

use anyhow::{Context, Result};

/// What the box does in every boot: report PID 1's memory, then ask for power-off (the
/// benchmark stops QEMU as soon as it has seen that line).
pub const BOX_ARGS: &[&str] = &["rss", "poweroff"];
/// Zombies handed to boxinit at once to time its reaping.
pub const REAP_COUNT: u32 = 200;
/// The line that ends a benchmark boot: every marker has been printed by then.
pub const LAST_LINE: &str = "demo: asking init to poweroff";

/// The `/init`s compared.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Variant {
    /// boxinit as shipped.
    Boxinit,
    /// The seed's busybox shell script doing the same job.
    Busybox,
    /// The fewest syscalls that do the job (`bench/floor`).
    Floor,
}

impl Variant {
    pub const ALL: [Variant; 3] = [Variant::Boxinit, Variant::Busybox, Variant::Floor];

    pub fn name(self) -> &'static str {
        match self {
            Variant::Boxinit => "boxinit",
            Variant::Busybox => "busybox script",
            Variant::Floor => "floor",
        }
    }

    /// The prefix of the init's start marker: `<prefix>: started at 1.234s (CLOCK_BOOTTIME)`.
    pub fn marker(self) -> &'static str {
        match self {
            Variant::Boxinit => "boxinit",
            Variant::Busybox => "script",
            Variant::Floor => "floor",
        }
    }

    pub fn dir(self) -> &'static str {
        match self {
            Variant::Boxinit => "boxinit",
            Variant::Busybox => "busybox",
            Variant::Floor => "floor",
        }
    }
}

/// One boot's markers, in seconds of `CLOCK_BOOTTIME`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    pub init_start: f64,
    /// When the init was done with its setup and started the box (boxinit: `setup done in`,
    /// the others: `exec at`), if it said.
    pub exec: Option<f64>,
    pub box_start: f64,
}

impl Sample {
    /// Box start minus init start, in milliseconds.
    pub fn overhead_ms(&self) -> f64 {
        (self.box_start - self.init_start) * 1e3
    }
}

/// Reads the init's and the box's start markers from a console.
pub fn parse_sample(variant: Variant, console: &str) -> Result<Sample> {
    let init = format!("{}: started at ", variant.marker());
    let init_start = console
        .lines()
        .find_map(|l| seconds_after(l, &init))
        .with_context(|| format!("no `{init}X.XXXs` line"))?;
    let box_start = console
        .lines()
        .find_map(|l| seconds_after(l, "demo: uptime "))
        .context("no `demo: uptime X.XXXs` line")?;
    let exec = match variant {
        Variant::Boxinit => {
            number_after(console, "boxinit: setup done in ").map(|ms| init_start + ms / 1e3)
        }
        _ => {
            let exec = format!("{}: exec at ", variant.marker());
            console.lines().find_map(|l| seconds_after(l, &exec))
        }
    };
    Ok(Sample {
        init_start,
        exec,
        box_start,
    })
}

/// The number of seconds that follows `prefix` in `line` (`1.234s`), anywhere in the line
/// (the kernel's timestamp may come first, and a kernel line may follow with no newline
/// between: the box and the kernel share the console).
pub fn seconds_after(line: &str, prefix: &str) -> Option<f64> {
    let (_, rest) = line.split_once(prefix)?;
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    if !rest[end..].starts_with('s') {
        return None;
    }
    rest[..end].parse().ok()
}

/// The first `demo: <prefix>N...` number, e.g. `init rss ` → the kB.
pub fn number_after(console: &str, prefix: &str) -> Option<f64> {
    console.lines().find_map(|l| {
        let (_, rest) = l.split_once(prefix)?;
        rest.split(|c: char| !(c.is_ascii_digit() || c == '.'))
            .next()?
            .parse()
            .ok()
    })
}

/// The kernel's first timestamp on the console (`[    0.000000] Booting Linux ...`): where
/// its clock starts.
pub fn kernel_start(console: &str) -> Option<f64> {
    console.lines().find_map(stamp)
}

/// The kernel's timestamp of the first line containing `text` (`Run /init as init process`).
/// On QEMU's `raspi3b` the kernel's clock and `CLOCK_BOOTTIME` drift apart during the boot
/// (about 1.2 s by `/init`), so a span from the kernel's start is measured on the kernel's
/// clock up to such a line, and on `CLOCK_BOOTTIME` after it.
pub fn stamp_of(console: &str, text: &str) -> Option<f64> {
    console.lines().filter(|l| l.contains(text)).find_map(stamp)
}

/// `[    1.234567] ...` → 1.234567.
fn stamp(line: &str) -> Option<f64> {
    let (_, rest) = line.split_once('[')?;
    let (stamp, _) = rest.split_once(']')?;
    stamp.trim().parse().ok()
}

/// PID 1's anonymous memory (heap, stack, data) in kB, from the box's `rss` line:
/// `demo: init rss 804 kB (anon 80 kB, file 4 kB, shmem 720 kB)`. The rest of VmRSS is the
/// binary's mapped pages (shmem: initramfs files are tmpfs pages), in RAM whether mapped or not.
pub fn anon_rss_after(console: &str) -> Option<f64> {
    let line = console.lines().find(|l| l.contains("demo: init rss "))?;
    number_after(line, "(anon ")
}

/// `demo: reaped 200 zombies in 41.5ms: 4819 per second` → (41.5, 4819).
pub fn parse_reaping(console: &str) -> (Option<f64>, Option<f64>) {
    let Some(line) = console.lines().find(|l| l.contains("demo: reaped ")) else {
        return (None, None);
    };
    (
        number_after(line, " zombies in "),
        number_after(line, "ms: "),
    )
}

/// boxinit's `phase NAME: Nus` debug lines as (name, ms), in order.
pub fn parse_phases(lines: &[String]) -> Vec<(String, f64)> {
    lines
        .iter()
        .filter_map(|l| {
            let (_, rest) = l.split_once("boxinit: phase ")?;
            let (name, rest) = rest.split_once(": ")?;
            let us: f64 = rest.split("us").next()?.parse().ok()?;
            Some((name.to_string(), us / 1e3))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const BOXINIT_CONSOLE: &str = "[    2.717904] Run /init as init process\r\n\
        [    2.779341] boxinit: started at 2.808s (CLOCK_BOOTTIME)\r\n\
        [    3.358710] boxinit: modules: 10 loaded, 0 already there, 0 failed in 520ms\r\n\
        [    3.438870] boxinit: setup done in 650ms\r\n\
        demo: hello from the box\r\n\
        demo: pid 78\r\n\
        demo: uptime 3.530s\r\n\
        demo: init rss 796 kB (anon 80 kB, file 4 kB, shmem 712 kB)\r\n\
        demo: asking init to poweroff\r\n";

    #[test]
    fn markers_parse() {
        let s = parse_sample(Variant::Boxinit, BOXINIT_CONSOLE).unwrap();
        assert_eq!((s.init_start, s.box_start), (2.808, 3.53));
        assert!((s.exec.unwrap() - 3.458).abs() < 1e-9);
        assert!((s.overhead_ms() - 722.0).abs() < 1e-6);
        assert_eq!(
            number_after(BOXINIT_CONSOLE, "demo: init rss "),
            Some(796.0)
        );
        assert_eq!(anon_rss_after(BOXINIT_CONSOLE), Some(80.0));
        assert_eq!(anon_rss_after("demo: init rss 796 kB\n"), None);
        // the kernel's line may follow the box's on the same line
        let console = "floor: started at 2.7s (x)\ndemo: uptime 1.994s[    1.97] boxinit: x\n";
        let s = parse_sample(Variant::Floor, console).unwrap();
        assert_eq!((s.init_start, s.box_start), (2.7, 1.994));
        assert_eq!(seconds_after("demo: uptime 1.99", "demo: uptime "), None);
        assert_eq!(seconds_after("demo: uptime unknown", "demo: uptime "), None);
        assert_eq!(s.exec, None);
        let script = "script: started at 2.91s (CLOCK_BOOTTIME)\n\
                      script: exec at 3.95s (CLOCK_BOOTTIME)\ndemo: uptime 4.102s\n";
        let s = parse_sample(Variant::Busybox, script).unwrap();
        assert_eq!(
            (s.init_start, s.exec, s.box_start),
            (2.91, Some(3.95), 4.102)
        );
        let floor = "floor: started at 2.700s (CLOCK_BOOTTIME)\n";
        let err = parse_sample(Variant::Floor, floor).unwrap_err();
        assert!(format!("{err:#}").contains("demo: uptime"), "{err:#}");
        let err = parse_sample(Variant::Floor, BOXINIT_CONSOLE).unwrap_err();
        assert!(format!("{err:#}").contains("floor: started at"), "{err:#}");
        let reap = "boxinit: in 3ms: x\ndemo: reaped 200 zombies in 41.5ms: 4819 per second\n";
        assert_eq!(parse_reaping(reap), (Some(41.5), Some(4819.0)));
        assert_eq!(parse_reaping("demo: hello\n"), (None, None));
        let pi = "\r\n[    0.000000] Booting Linux on physical CPU 0x0\n[    0.1] x\n";
        assert_eq!(kernel_start(pi), Some(0.0));
        assert_eq!(kernel_start(BOXINIT_CONSOLE), Some(2.717904));
        assert_eq!(kernel_start("demo: [x] y\n"), None);
        assert_eq!(
            stamp_of(BOXINIT_CONSOLE, "Run /init as init process"),
            Some(2.717904)
        );
        assert_eq!(stamp_of(BOXINIT_CONSOLE, "no such line"), None);
    }

    #[test]
    fn phases_parse() {
        let lines = [
            "[    1.645688] boxinit: phase start and early mounts: 8441us".to_string(),
            "[    1.646383] boxinit: phase built-in config: 12782us (done at 1.629246s)".into(),
            "[    1.871540] boxinit: modules: 10 loaded in 222ms".into(),
        ];
        assert_eq!(
            parse_phases(&lines),
            [
                ("start and early mounts".to_string(), 8.441),
                ("built-in config".to_string(), 12.782)
            ]
        );
    }
}
