//! `[update]` and `[report]` in `init.toml`: trial runs of a new box or config copied onto the
//! card, how a box shows it is healthy, the boot-loop brake, and the shutdown reports kept on
//! the card. Schema and bounds only; `field/` acts on it.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// The longest `[update] deadline`: a trial, and a boot's wait for a healthy box, are bounded
/// (nerves_heart caps its snooze at minutes, never for ever).
pub const MAX_DEADLINE: Duration = Duration::from_secs(60 * 60);
/// The largest `[update] boot_loop_limit`.
pub const MAX_BOOT_LOOP_LIMIT: u32 = 1000;

/// `[update]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Update {
    /// Trial runs of `box.new` / `init.toml.new` and the boot-loop brake; false: neither
    /// (the files are left alone).
    pub enabled: bool,
    /// How the box shows it is healthy (a trial is promoted, the brake's count reset).
    pub validate: Validate,
    /// `validate = "uptime"`: how long the box must run without exiting.
    #[serde(deserialize_with = "duration")]
    pub healthy_after: Duration,
    /// How long a trial (or a boot) may take to reach a healthy box: a trial is reverted
    /// then; a boot counts toward the brake.
    #[serde(deserialize_with = "duration")]
    pub deadline: Duration,
    /// Boots in a row without a healthy box before boxinit stops rebooting (safe mode);
    /// 0: never.
    pub boot_loop_limit: u32,
    /// Whole-bundle trials through the Pi firmware's `tryboot` (`field/bundle.rs`): `"auto"`
    /// asks only when the running kernel is a Raspberry Pi kernel (the only one that passes
    /// the flag on); `true` always; `false` never.
    #[serde(deserialize_with = "tryboot")]
    pub tryboot: Tryboot,
}

/// `update.tryboot`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Tryboot {
    /// When the kernel release is a Raspberry Pi kernel's.
    #[default]
    Auto,
    /// Always (a kernel known to pass the flag on).
    On,
    /// Never: a bundle in the other slot is left alone.
    Off,
}

fn tryboot<'de, D: Deserializer<'de>>(d: D) -> Result<Tryboot, D::Error> {
    // a visitor, not an untagged enum: serde's untagged buffering costs the binary ~20 kB
    struct Visit;
    impl serde::de::Visitor<'_> for Visit {
        type Value = Tryboot;
        fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
            f.write_str("\"auto\", true or false")
        }
        fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<Tryboot, E> {
            Ok(if v { Tryboot::On } else { Tryboot::Off })
        }
        fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Tryboot, E> {
            match v {
                "auto" => Ok(Tryboot::Auto),
                _ => Err(E::custom(format!(
                    "\"{v}\" is not one of \"auto\", true, false"
                ))),
            }
        }
    }
    d.deserialize_any(Visit)
}

impl Default for Update {
    fn default() -> Update {
        Update {
            enabled: true,
            validate: Validate::Uptime,
            healthy_after: Duration::from_secs(30),
            deadline: Duration::from_secs(5 * 60),
            boot_loop_limit: 5,
            tryboot: Tryboot::Auto,
        }
    }
}

impl Update {
    /// `healthy_after`, never beyond the deadline (two layers may set one each).
    pub fn healthy_after(&self) -> Duration {
        self.healthy_after.min(self.deadline)
    }
}

/// `[report]`
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Report {
    /// A shutdown report on the card before every reboot and power-off, and the previous
    /// boot's read at boot.
    pub enabled: bool,
    /// The box's output passes through PID 1 (a pty relayed to the console), so that its last
    /// lines go into the report. Not in `mode = "exec"`, nor with a `[box] console`.
    pub box_output: bool,
}

impl Default for Report {
    fn default() -> Report {
        Report {
            enabled: true,
            box_output: true,
        }
    }
}

super::schema::choice! {
    /// `update.validate`: how a box shows it is healthy.
    Validate default Uptime {
        /// It runs `healthy_after` without exiting (or touches `$BOXINIT_VALIDATE` first).
        Uptime = "uptime",
        /// It touches the file `$BOXINIT_VALIDATE` names.
        File = "file",
        /// Its first heartbeat (with `[watchdog] heartbeat`), or the file.
        Heartbeat = "heartbeat",
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    super::parse_duration(&text).map_err(serde::de::Error::custom)
}

/// The problems of `[update]` alone: its bounds.
pub fn problems(update: &Update) -> Vec<(String, String)> {
    let mut found = Vec::new();
    if update.deadline > MAX_DEADLINE || update.deadline.is_zero() {
        found.push((
            "update.deadline".to_string(),
            format!(
                "must be more than 0s and at most {} (a trial or a boot waits at most this long for a healthy box)",
                super::format_duration(MAX_DEADLINE)
            ),
        ));
    }
    if update.healthy_after > update.deadline {
        found.push((
            "update.healthy_after".to_string(),
            format!(
                "{} is longer than update.deadline ({}): the box could never pass",
                super::format_duration(update.healthy_after),
                super::format_duration(update.deadline)
            ),
        ));
    }
    if update.boot_loop_limit > MAX_BOOT_LOOP_LIMIT {
        found.push((
            "update.boot_loop_limit".to_string(),
            format!("at most {MAX_BOOT_LOOP_LIMIT} (0 turns the brake off)"),
        ));
    }
    found
}

#[cfg(test)]
mod tests {
    use crate::config::{load, Layer};

    fn errors(text: &str) -> Vec<String> {
        let layer = Layer::Text {
            name: "t.toml".into(),
            text: text.into(),
        };
        load(&[layer]).1.iter().map(|e| e.to_string()).collect()
    }

    #[test]
    fn update_and_report_keys() {
        let layer = Layer::Text {
            name: "t.toml".into(),
            text: "[update]\nvalidate = \"file\"\nhealthy_after = \"5s\"\ndeadline = \"1m\"\nboot_loop_limit = 3\n[report]\nbox_output = false\n".into(),
        };
        let (c, errors_seen) = load(&[layer]);
        assert!(errors_seen.is_empty(), "{errors_seen:?}");
        assert_eq!(c.update.validate, super::Validate::File);
        assert_eq!(c.update.boot_loop_limit, 3);
        assert!(c.report.enabled && !c.report.box_output);
        let d = crate::config::Config::default();
        assert!(d.update.enabled && d.update.validate == super::Validate::Uptime);
        assert_eq!(d.update.boot_loop_limit, 5);
        let table = [
            ("[update]\ndeadline = \"2h\"\n", "update.deadline"),
            ("[update]\ndeadline = \"0s\"\n", "update.deadline"),
            (
                "[update]\nhealthy_after = \"10m\"\ndeadline = \"1m\"\n",
                "update.healthy_after",
            ),
            (
                "[update]\nboot_loop_limit = 5000\n",
                "update.boot_loop_limit",
            ),
            ("[update]\nvalidate = \"maybe\"\n", "update.validate"),
            ("[report]\nbox_outptu = true\n", "box_output"),
        ];
        // the first error names the key (`check` reports every error of a file: a zero
        // deadline is also shorter than the default healthy_after)
        for (text, key) in table {
            let e = errors(text);
            assert!(e.first().is_some_and(|e| e.contains(key)), "{text}: {e:?}");
        }
        assert!(errors("[update]\nvalidate = \"heartbeat\"\n").is_empty());
    }

    #[test]
    fn tryboot_is_auto_or_a_flag() {
        let tryboot = |text: &str| {
            let layer = Layer::Text {
                name: "t.toml".into(),
                text: format!("[update]\ntryboot = {text}\n"),
            };
            let (c, errors) = load(&[layer]);
            errors.is_empty().then_some(c.update.tryboot)
        };
        use super::Tryboot;
        assert_eq!(tryboot("\"auto\""), Some(Tryboot::Auto));
        assert_eq!(tryboot("true"), Some(Tryboot::On));
        assert_eq!(tryboot("false"), Some(Tryboot::Off));
        assert_eq!(tryboot("\"yes\""), None);
        assert_eq!(tryboot("1"), None);
        let e = errors("[update]\ntryboot = \"always\"\n");
        assert!(
            e.first()
                .is_some_and(|e| e.contains("update.tryboot") || e.contains("tryboot")),
            "{e:?}"
        );
        assert_eq!(
            crate::config::Config::default().update.tryboot,
            Tryboot::Auto
        );
    }
}
