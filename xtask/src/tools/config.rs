//! The config files xtask packs (`initramfs --config`, `image --config`), checked with the
//! init's own code, `boxinit::config`: the same errors, in the same words, as `boxinit check`,
//! and a file with one is not packed.

use std::path::Path;

use anyhow::{bail, Context, Result};
use boxinit::config::{Config, Layer, Place};

/// Reads `path` and checks it as the init will where it goes (`place`): on an error the
/// command fails with each error on its own line as `boxinit check` prints it. The config
/// it gives when valid.
pub fn check(path: &Path, place: Place) -> Result<Config> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the config {}", path.display()))?;
    let name = path.display().to_string();
    let (config, errors) = boxinit::config::load(&[Layer::File {
        name: name.clone(),
        bytes,
        place,
    }]);
    if !errors.is_empty() {
        let lines: Vec<String> = errors.iter().map(|e| e.to_string()).collect();
        bail!(
            "{name}: {} error(s), as `boxinit check{}` reports them; fix the file:\n{}",
            errors.len(),
            if place == Place::Early {
                " --builtin"
            } else {
                ""
            },
            lines.join("\n")
        );
    }
    Ok(config)
}

/// `cargo xtask check FILE`: `boxinit check` on this machine, through the init's own
/// [`boxinit::config::check_file`]: each error on stderr as the init logs it (file:line:column),
/// or `FILE: ok` on stdout. Whether the file is valid.
pub fn report(path: &Path, place: Place) -> Result<bool> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the config {}", path.display()))?;
    let name = path.display().to_string();
    let errors = boxinit::config::check_file(&name, bytes, place);
    for e in &errors {
        eprintln!("{e}");
    }
    if errors.is_empty() {
        println!("{name}: ok");
    }
    Ok(errors.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn xtask_check_reports_as_boxinit_check() {
        let dir = std::env::temp_dir().join(format!("xtask-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("init.toml");
        std::fs::write(&file, "[network]\ndhcp = [\"eth0\"]\n").unwrap();
        assert!(report(&file, Place::BootPartition).unwrap());
        std::fs::write(&file, "[network]\ndhcp = \"eth0\"\n").unwrap();
        assert!(!report(&file, Place::BootPartition).unwrap());
        assert!(report(&dir.join("missing.toml"), Place::BootPartition).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn errors_fail_the_command_valid_files_pass() {
        let dir = std::env::temp_dir().join(format!("xtask-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("init.toml");
        std::fs::write(
            &file,
            "[modules]\nload = [\"vfat\"]\n[boot]\ndevice = \"LABEL=X\"\n",
        )
        .unwrap();
        let config = check(&file, Place::Early).unwrap();
        assert_eq!(config.modules.load, ["vfat"]);
        // the card's own file cannot choose the card
        let err = check(&file, Place::BootPartition).unwrap_err().to_string();
        let name = file.display();
        assert_eq!(
            err,
            format!(
                "{name}: 1 error(s), as `boxinit check` reports them; fix the file:\n\
                 {name}:4:10: `boot.device`: cannot be set in the boot partition's init.toml, \
                 which is read once that partition is found; set it in the built-in config \
                 (`cargo xtask initramfs --config`) or on the kernel command line (`boxinit.boot=`)"
            )
        );
        std::fs::write(&file, b"[box]\npath = \"caf\xe9\"\n").unwrap();
        assert!(check(&file, Place::Early).is_err());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
