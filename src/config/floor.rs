//! The floor under restart delays (`backoff`): its value, and the settings below it named for
//! `boxinit check` and the boot log. Raising a delay to the floor is the supervisor's
//! (`supervision::backoff`); this file only says which settings it raises.

use std::time::Duration;

use crate::config::{format_duration, Config};

/// The shortest wait before a restart, whatever `backoff` says: a box that exits at once is
/// restarted at most ten times a second (each restart is a fork, an exec and three log lines;
/// at 0 s a crash-looping box took a core and flooded the console). The default `initial`.
pub const MIN_RESTART_DELAY: Duration = Duration::from_millis(100);

/// Each `backoff` setting below [`MIN_RESTART_DELAY`], as `(key, value)`: `box.backoff.initial`,
/// `service.NAME.backoff.max`. Not an error: the init raises them and runs (an error would drop
/// the whole file at boot); `boxinit check` and the boot log say so.
pub fn below_floor(cfg: &Config) -> Vec<(String, String)> {
    let mut found = Vec::new();
    let box_name = std::iter::once(("box".to_string(), cfg.box_.clone()));
    let services = cfg.named_services().into_iter().map(|s| {
        let name = format!("service.{}", s.name.clone().unwrap_or_default());
        (name, s)
    });
    for (prefix, program) in box_name.chain(services) {
        for (key, value) in [
            ("initial", program.backoff.initial),
            ("max", program.backoff.max),
        ] {
            if value < MIN_RESTART_DELAY {
                found.push((format!("{prefix}.backoff.{key}"), format_duration(value)));
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_below_the_floor_are_named() {
        let cfg: Config = toml::from_str(
            "[box]\nbackoff = { initial = \"0s\" }\n\
             [[service]]\nname = \"logger\"\nbackoff = { initial = \"10ms\", max = \"50ms\" }\n\
             [[service]]\nbackoff = { initial = \"100ms\", max = \"100ms\" }\n",
        )
        .unwrap();
        let found: Vec<String> = below_floor(&cfg)
            .into_iter()
            .map(|(k, v)| format!("{k} = {v}"))
            .collect();
        assert_eq!(
            found,
            [
                "box.backoff.initial = 0s",
                "service.logger.backoff.initial = 10ms",
                "service.logger.backoff.max = 50ms"
            ]
        );
        assert_eq!(below_floor(&Config::default()), vec![]);
    }
}
