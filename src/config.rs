//! Config layers (a file's text, or the kernel command line's table) validated one by one
//! against the schema and merged into a [`Config`], with errors that name file, line, column
//! and key; no I/O (callers read the files and `/proc/cmdline`, see `cmdline.rs`) and no
//! policy about what to do with the result. The schema is in `config/schema.rs`, the error
//! type in `config/error.rs`, positions in `config/locate.rs`, durations in
//! `config/duration.rs`.

pub mod board;
mod boot_device;
pub mod cmdline;
mod duration;
mod error;
pub mod files;
mod floor;
mod layer;
mod locate;
mod lock;
pub mod network;
mod schema;
pub mod tmpfs;
pub mod update;
mod validate;
pub mod wait_for;
pub mod wifi;

pub use boot_device::DeviceSpec;
pub use duration::{format_duration, parse_duration, MAX_DURATION};
pub use error::{edit_distance, suggest, ConfigError};
pub use floor::{below_floor, MIN_RESTART_DELAY};
pub use layer::{Layer, Place, MAX_FILE_BYTES};
pub use schema::*;
pub use validate::{MAX_CRASH_LOOP, MAX_GROUPS, MAX_HOSTNAME, MAX_NOFILE};
pub use wait_for::Need;

use board::{UsbSerial, USB_SERIAL_TTY, USB_SHELL_SERVICE};
use locate::{problem_error, to_config_error};

/// Check one layer against the schema and the values that can never work; its table when
/// valid. The first problem is the error.
fn validate(layer: &Layer) -> Result<toml::Table, Vec<ConfigError>> {
    match layer {
        Layer::Text { name, text } => validate_text(name, text, Place::Early),
        Layer::File { name, bytes, place } => {
            if bytes.len() > MAX_FILE_BYTES {
                return Err(vec![too_big(name)]);
            }
            validate_text(
                name,
                locate::utf8(name, bytes).map_err(|e| vec![e])?,
                *place,
            )
        }
        Layer::Table { name, table } => {
            let config = table
                .clone()
                .try_into::<Config>()
                .map_err(|e| vec![to_config_error(name, None, &e)])?;
            match validate::problems(&config).first() {
                Some(problem) => Err(vec![problem_error(name, None, problem)]),
                None => Ok(table.clone()),
            }
        }
    }
}

/// How many schema errors of one file are looked for before giving up (each costs a
/// deserialization of the whole table).
const MAX_ERRORS: usize = 32;

/// A text layer: text to table (syntax errors carry their span), table to schema (errors
/// carry the key's path; `to_config_error` finds its line and column in the text), then the
/// keys its place forbids and the values that cannot work. Every error of the file, in the
/// order of its lines: a schema error's key is taken out and the rest deserialized again, so
/// that one run of `boxinit check` shows them all. Syntax errors too, as far as toml's parser
/// recovers ([`syntax_errors`]); the schema is then not checked (the text is not a table).
///
/// The schema is deserialized from tables only, never straight from text: each serde
/// deserializer instantiates all of the schema's code again, and the second one cost the
/// static binary 130 KiB.
fn validate_text(name: &str, text: &str, place: Place) -> Result<toml::Table, Vec<ConfigError>> {
    let table = text
        .parse::<toml::Table>()
        .map_err(|e| syntax_errors(name, text, &e))?;
    let mut errors = Vec::new();
    let mut rest = table.clone();
    let config = loop {
        match rest.clone().try_into::<Config>() {
            Ok(config) => break Some(config),
            Err(e) => {
                let error = to_config_error(name, Some(text), &e);
                let removed = errors.len() < MAX_ERRORS
                    && error
                        .key
                        .as_deref()
                        .is_some_and(|key| locate::remove_key(&mut rest, key));
                errors.push(error);
                if !removed {
                    break None;
                }
            }
        }
    };
    if place == Place::BootPartition {
        if let Some(problem) = too_late(&table) {
            errors.push(problem_error(name, Some(text), &problem));
        }
    }
    if let Some(config) = config {
        for problem in validate::problems(&config) {
            errors.push(problem_error(name, Some(text), &problem));
        }
    }
    if errors.is_empty() {
        return Ok(table);
    }
    // one error a key: the first said (a key the boot partition cannot set, not its value too)
    let mut keys = Vec::new();
    errors.retain(|e| match &e.key {
        Some(key) if keys.contains(key) => false,
        Some(key) => {
            keys.push(key.clone());
            true
        }
        None => true,
    });
    // in the order of the file's lines; an error without a place last
    in_file_order(&mut errors);
    Err(errors)
}

/// Sorts `errors` in the order of the file's lines, an error without a place last; errors
/// at one place keep their order (a stable sort, in one instance for both callers).
fn in_file_order(errors: &mut [ConfigError]) {
    errors.sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(0)));
}

/// Every syntax error of `text`: toml's parser goes on after an error (it skips to the next
/// line, key or table it can read) and reports each, one a line here, in line order, at most
/// [`MAX_ERRORS`]; `first` when it reports none.
fn syntax_errors(name: &str, text: &str, first: &toml::de::Error) -> Vec<ConfigError> {
    let (_, found) = toml::de::DeTable::parse_recoverable(text);
    let mut errors: Vec<ConfigError> = found
        .iter()
        .map(|e| to_config_error(name, Some(text), e))
        .collect();
    in_file_order(&mut errors);
    // what one mistake makes the parser say again further along its line is left out
    errors.dedup_by_key(|e| e.line);
    errors.truncate(MAX_ERRORS);
    if errors.is_empty() {
        errors.push(to_config_error(name, Some(text), first));
    }
    errors
}

/// A file over [`MAX_FILE_BYTES`] (readers stop one byte past it, so its size is unknown).
fn too_big(name: &str) -> ConfigError {
    ConfigError {
        source: name.to_string(),
        line: None,
        column: None,
        key: None,
        message: format!(
            "larger than {} KiB, the most a config file may be; the file is ignored (an init.toml is a few KiB: is this the right file?)",
            MAX_FILE_BYTES / 1024
        ),
    }
}

/// `[boot] device` or `timeout` in the boot partition's own file: the partition is already
/// found when that file is read, so they would silently do nothing.
fn too_late(table: &toml::Table) -> Option<validate::Problem> {
    let boot = table.get("boot")?.as_table()?;
    let (key, option) = [
        ("device", "boxinit.boot="),
        ("timeout", "boxinit.boot.timeout="),
    ]
    .into_iter()
    .find(|(key, _)| boot.contains_key(*key))?;
    Some(validate::Problem {
        path: format!("boot.{key}"),
        field: None,
        message: format!(
            "cannot be set in the boot partition's init.toml, which is read once that partition is found; set it in the built-in config (`cargo xtask initramfs --config`) or on the kernel command line (`{option}`)"
        ),
    })
}

/// Merge `top` over `base`: tables key by key, anything else (arrays too) replaced.
pub fn merge(base: &mut toml::Table, top: toml::Table) {
    for (key, value) in top {
        match (base.get_mut(&key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(t)) => merge(b, t),
            (_, value) => {
                base.insert(key, value);
            }
        }
    }
}

/// Build the configuration from `layers`, lowest precedence first.
///
/// Each layer is validated alone; a layer with an error is skipped entirely (boot goes on
/// with the others) and its errors returned, every one of a file in the order of its lines.
pub fn load(layers: &[Layer]) -> (Config, Vec<ConfigError>) {
    let mut merged = toml::Table::new();
    // What the accepted layers make; the layer that does not fit them is the one left out,
    // so a merge that fails can never drop the layers below it (the built-in locks).
    let mut config = Config::default();
    let mut errors = Vec::new();
    for layer in layers {
        let table = match validate(layer) {
            Ok(table) => table,
            Err(e) => {
                errors.extend(e);
                continue;
            }
        };
        // Keys the built-in config locked are not for the card or the command line to set.
        if let Some(problem) = lock::problem(&merged, layer, &table) {
            errors.push(problem_error(layer.name(), layer.text(), &problem));
            continue;
        }
        // A layer valid alone may still not fit the ones below it (`[boot] device = "none"`
        // under a relative box path): then it is the one ignored.
        let mut with_layer = merged.clone();
        merge(&mut with_layer, table);
        match fit(&with_layer) {
            Err(problem) if problem.path.is_empty() => errors.push(ConfigError {
                source: layer.name().to_string(),
                line: None,
                column: None,
                key: None,
                message: problem.message,
            }),
            Err(problem) => errors.push(problem_error(layer.name(), layer.text(), &problem)),
            Ok(fitted) => {
                merged = with_layer;
                config = fitted;
            }
        }
    }
    add_board_features(&mut config);
    (config, errors)
}

/// Adds what `[board]`'s features need to `config`: their modules to `modules.load`, and for the
/// USB serial console a shell service on it, or the box's console (when the box has none).
fn add_board_features(config: &mut Config) {
    let board = config.board.clone();
    for module in board.modules() {
        if !config
            .modules
            .load
            .iter()
            .any(|m| m.replace('-', "_") == module)
        {
            config.modules.load.push(module.to_string());
        }
    }
    match board.usb_serial {
        UsbSerial::Off => {}
        UsbSerial::Shell => {
            let named = |s: &BoxConfig| s.name.as_deref() == Some(USB_SHELL_SERVICE);
            if !config.service.iter().any(named) {
                config.service.push(BoxConfig {
                    name: Some(USB_SHELL_SERVICE.to_string()),
                    path: "/bin/sh".to_string(),
                    console: Some(USB_SERIAL_TTY.to_string()),
                    ..BoxConfig::default()
                });
            }
        }
        UsbSerial::Box => {
            if config.box_.console.is_none() {
                config.box_.console = Some(USB_SERIAL_TTY.to_string());
            }
        }
    }
}

/// What the init loads at each step of the boot: `layers` (lowest precedence first) with the
/// kernel command line's `boxinit.*` words on top, as the layer [`cmdline::SOURCE`]. The errors
/// in the order the init logs them: the words that cannot be keys, then each layer's.
pub fn load_with_cmdline(layers: &[Layer], cmdline_text: &str) -> (Config, Vec<ConfigError>) {
    let (overrides, mut errors) = cmdline::overrides(cmdline_text);
    let mut all = layers.to_vec();
    all.push(Layer::Table {
        name: cmdline::SOURCE.to_string(),
        table: overrides,
    });
    let (config, layer_errors) = load(&all);
    errors.extend(layer_errors);
    (config, errors)
}

/// The merged layers as a configuration, or their first problem as a whole. A table that
/// does not deserialize is a problem too (it was once taken for "no problem", and `load` then
/// fell back to the defaults, dropping the built-in locks).
fn fit(merged: &toml::Table) -> Result<Config, validate::Problem> {
    let config = merged
        .clone()
        .try_into::<Config>()
        .map_err(|e| validate::Problem {
            path: String::new(),
            field: None,
            message: format!("does not fit the layers below it: {e}"),
        })?;
    // as the init will run it: `[board] usb_serial = "shell"` adds a service to wait for
    // (idempotent: `load` adds them again to what the last layer left)
    let mut config = config;
    add_board_features(&mut config);
    match validate::merged_problems(&config).into_iter().next() {
        Some(problem) => Err(problem),
        None => Ok(config),
    }
}

/// `boxinit check`, and xtask's `--config`: every error of one config file as the init
/// reports it, through the same code; `place` says where the file goes.
pub fn check_file(name: &str, bytes: Vec<u8>, place: Place) -> Vec<ConfigError> {
    let layer = Layer::File {
        name: name.to_string(),
        bytes,
        place,
    };
    load(std::slice::from_ref(&layer)).1
}

#[cfg(test)]
mod tests;
