//! Config layers (a file's text, or the kernel command line's table) validated one by one
//! against the schema and merged into a [`Config`], with errors that name file, line, column
//! and key; no I/O (callers read the files and `/proc/cmdline`, see `cmdline.rs`) and no
//! policy about what to do with the result. The schema is in `config/schema.rs`, the error
//! type in `config/error.rs`, positions in `config/locate.rs`, durations in
//! `config/duration.rs`.

pub mod board;
pub mod cmdline;
mod duration;
mod error;
mod locate;
mod schema;
pub mod wifi;

pub use duration::parse_duration;
pub use error::{edit_distance, suggest, ConfigError};
pub use schema::*;

use locate::to_config_error;

// ---------------------------------------------------------------------------------------------
// Layers

/// One source of configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// TOML text, e.g. a file's contents; `name` is what errors call it (its path).
    Text {
        /// Name for error messages.
        name: String,
        /// The TOML text.
        text: String,
    },
    /// An already built table, e.g. from the kernel command line.
    Table {
        /// Name for error messages.
        name: String,
        /// The keys it sets.
        table: toml::Table,
    },
}

/// Check one layer against the schema; its table when valid.
fn validate(layer: &Layer) -> Result<toml::Table, ConfigError> {
    match layer {
        Layer::Text { name, text } => {
            // One parse of the text when it is valid (boot time): text to table, table to
            // schema. Only a layer with an error is read again the slow way, for the error's
            // line and column, so errors are exactly what `validate_text` reports.
            let table = text.parse::<toml::Table>().ok();
            match table {
                Some(table) if table.clone().try_into::<Config>().is_ok() => Ok(table),
                _ => validate_text(name, text),
            }
        }
        Layer::Table { name, table } => {
            table
                .clone()
                .try_into::<Config>()
                .map_err(|e| to_config_error(name, None, &e))?;
            Ok(table.clone())
        }
    }
}

/// A text layer: text to table (syntax errors carry their span), table to schema (errors
/// carry the key's path; `to_config_error` finds its line and column in the text).
///
/// The schema is deserialized from tables only, never straight from text: each serde
/// deserializer instantiates all of the schema's code again, and the second one cost the
/// static binary 130 KiB.
fn validate_text(name: &str, text: &str) -> Result<toml::Table, ConfigError> {
    let table = text
        .parse::<toml::Table>()
        .map_err(|e| to_config_error(name, Some(text), &e))?;
    table
        .clone()
        .try_into::<Config>()
        .map_err(|e| to_config_error(name, Some(text), &e))?;
    Ok(table)
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
/// with the others) and the error returned. Only the first error of a layer is reported.
pub fn load(layers: &[Layer]) -> (Config, Vec<ConfigError>) {
    let mut merged = toml::Table::new();
    let mut errors = Vec::new();
    for layer in layers {
        match validate(layer) {
            Ok(table) => merge(&mut merged, table),
            Err(e) => errors.push(e),
        }
    }
    // Layers valid alone merge into a valid whole; this fallback is a safety net only.
    match merged.try_into::<Config>() {
        Ok(mut config) => {
            config.board.clone().apply(&mut config);
            (config, errors)
        }
        Err(e) => {
            errors.push(to_config_error("merged configuration", None, &e));
            (Config::default(), errors)
        }
    }
}

#[cfg(test)]
mod tests;
