//! The config files as PID 1 reads them: the early layers (built-in, `BOXINIT_CONFIG`), the
//! boot partition's file, what a SIGHUP reload reads again and what it reuses, and the merge
//! with the command line, each error logged once. The I/O that `config.rs` leaves to its
//! callers, in one place for the boot, the reload, a trial and `boxinit check`.

use std::path::Path;

use super::{Config, ConfigError, Layer, Place, MAX_FILE_BYTES};

/// The built-in config, written into the initramfs by `cargo xtask initramfs`.
pub const BUILTIN_CONFIG: &str = "/etc/init.toml";
/// Where the boot partition is mounted.
pub const BOOT_DIR: &str = "/boot";
/// An env var naming one more config file, read after the built-in one: for boxinit as PID 1
/// outside an initramfs (a PID namespace, a container). Env words without a dot reach init
/// from the kernel command line too.
pub const CONFIG_ENV: &str = "BOXINIT_CONFIG";

/// The early config files, lowest precedence first: built-in, `BOXINIT_CONFIG`.
pub fn early_config_layers() -> Vec<Layer> {
    let mut layers = vec![read_layer(Path::new(BUILTIN_CONFIG), Place::Early)];
    if let Some(path) = std::env::var_os(CONFIG_ENV) {
        layers.push(read_layer(Path::new(&path), Place::Early));
    }
    layers
}

/// The early layers a reload uses: each file read again (a container's config edited in
/// place), except one that was missing (or empty) at boot or lies under the boot partition, whose
/// bytes from boot are reused. `BOXINIT_CONFIG` may come from the kernel command line, on a
/// Pi `cmdline.txt` on the card: read again on SIGHUP, a path on `/boot` (not mounted at
/// boot) would become an early layer that may clear the built-in locks.
pub fn reload_early_layers(at_boot: &[Layer]) -> Vec<Layer> {
    at_boot
        .iter()
        .map(|layer| match layer {
            Layer::File { name, bytes, place }
                if !bytes.is_empty() && !Path::new(name).starts_with(BOOT_DIR) =>
            {
                read_layer(Path::new(name), *place)
            }
            _ => layer.clone(),
        })
        .collect()
}

/// The early layers as read at boot, then the boot partition's config file `name` read now
/// (`init.toml`, or `init.toml.new` during its trial).
pub fn with_boot_layer(early: &[Layer], boot_dir: Option<&Path>, name: &str) -> Vec<Layer> {
    let mut layers = early.to_vec();
    if let Some(dir) = boot_dir {
        layers.push(boot_layer(dir, name));
    }
    layers
}

/// The boot partition's config file `name` (`init.toml`).
fn boot_layer(dir: &Path, name: &str) -> Layer {
    read_layer(&dir.join(name), Place::BootPartition)
}

/// A config file as a layer, its bytes as read (`config::load` says when they are not
/// UTF-8); a missing or unreadable file is an empty layer.
pub fn read_layer(path: &Path, place: Place) -> Layer {
    let name = path.display().to_string();
    let bytes = match read_capped(path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            log::info!("{name}: not found, using the defaults");
            Vec::new()
        }
        Err(e) => {
            log::error!("{name}: cannot read it: {e}; using the defaults");
            Vec::new()
        }
    };
    Layer::File { name, bytes, place }
}

/// A config file's bytes, at most one past [`MAX_FILE_BYTES`]: `config::load` says
/// the file is too big without a 50 MB file ever being held whole.
pub fn read_capped(path: &Path) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?
        .take(MAX_FILE_BYTES as u64 + 1)
        .read_to_end(&mut bytes)?;
    Ok(bytes)
}

/// Merges the layers with the command line on top. Every error is logged with where it is,
/// except those in `already_reported` (the same layers loaded earlier in the boot); all are
/// returned.
pub fn load_config(
    layers: &[Layer],
    cmdline: &str,
    already_reported: &[ConfigError],
) -> (Config, Vec<ConfigError>) {
    let (cfg, errors) = super::load_with_cmdline(layers, cmdline);
    for e in unreported(&errors, already_reported) {
        log::error!("{e}; that file or setting is ignored, boot goes on without it");
    }
    (cfg, errors)
}

/// The errors not in `already_reported`.
fn unreported<'a>(
    errors: &'a [ConfigError],
    already_reported: &'a [ConfigError],
) -> impl Iterator<Item = &'a ConfigError> {
    errors.iter().filter(move |e| !already_reported.contains(e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_config_error_is_reported_once_per_boot() {
        let builtin = Layer::Text {
            name: "/etc/init.toml".into(),
            text: "[box]\nrestat = \"always\"\n".into(),
        };
        let cmdline = "boxinit.box.pth=x";
        let (_, early) = load_config(std::slice::from_ref(&builtin), cmdline, &[]);
        assert_eq!(early.len(), 2, "{early:?}");
        let boot = Layer::Text {
            name: "/boot/init.toml".into(),
            text: "[box]\nargz = []\n".into(),
        };
        let (_, all) = load_config(&[builtin, boot], cmdline, &early);
        let new: Vec<String> = unreported(&all, &early).map(|e| e.to_string()).collect();
        assert_eq!(
            new,
            ["/boot/init.toml:2:1: unknown key `argz` in [box], did you mean `args`?"]
        );
    }

    #[test]
    fn a_reload_reuses_the_early_layers_read_at_boot() {
        let dir = std::env::temp_dir().join(format!("boxinit-reload-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let evil = dir.join("evil.toml");
        std::fs::write(
            dir.join("builtin.toml"),
            "[system]\nlocked = [\"box\"]\n[box]\nuser = 65534\n",
        )
        .unwrap();
        // At boot BOXINIT_CONFIG names a file on the card, not mounted yet: not found.
        let early = vec![
            read_layer(&dir.join("builtin.toml"), Place::Early),
            read_layer(&evil, Place::Early),
        ];
        // Once the card is mounted, the file is there and the card's init.toml too.
        std::fs::write(&evil, "[system]\nlocked = []\n[box]\nuser = 0\n").unwrap();
        std::fs::write(dir.join(crate::field::card::CONFIG), "[watchdog]\n").unwrap();
        let layers = with_boot_layer(
            &reload_early_layers(&early),
            Some(&dir),
            crate::field::card::CONFIG,
        );
        let names: Vec<&str> = layers.iter().map(Layer::name).collect();
        assert_eq!(names.len(), 3);
        let (cfg, _) = load_config(&layers, "", &[]);
        assert_eq!(cfg.box_.user, Some(65534), "the lock must hold on reload");
        assert_eq!(cfg.system.locked, ["box"]);
        // A file that was there at boot (a container's config) is read again.
        std::fs::write(
            dir.join("builtin.toml"),
            "[system]\nlocked = [\"box\"]\n[box]\nuser = 1000\n",
        )
        .unwrap();
        let (cfg, _) = load_config(&reload_early_layers(&early), "", &[]);
        assert_eq!(cfg.box_.user, Some(1000));
        // Under the boot partition's mount point: never read again.
        let on_card = Layer::File {
            name: format!("{BOOT_DIR}/evil.toml"),
            bytes: b"# was there\n".to_vec(),
            place: Place::Early,
        };
        assert_eq!(
            reload_early_layers(std::slice::from_ref(&on_card)),
            [on_card]
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
