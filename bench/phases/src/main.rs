//! The init's phases that need no kernel, run on the host so that valgrind's callgrind can
//! count their instructions (`xtask/src/bench/callgrind.rs`): the same binary on the same input
//! executes the same instructions, which a QEMU boot's milliseconds never repeat. One phase
//! per run, named by the first argument; inputs are files xtask prepares; the output is a
//! one-line summary (so that a phase that silently did nothing shows).
//!
//! `phases config FILE` — the config layers as at boot: FILE as the built-in layer, a kernel
//! command line's overrides, then FILE again as the boot partition's;
//! `phases modules ALIASES PACKED DEVICES` — `modules.alias` parsed with the alias index
//! xtask packed for it (`modules.alias.boxinit`), as the init loads them, then every modalias
//! of DEVICES (one a line) resolved;
//! `phases partitions ROOT` — the block device scan under ROOT (`sys/class/block`, `dev/`) and
//! the choice of `LABEL=BOOT`;
//! `phases uevents FILE` — netlink uevent messages (each a 4-byte little-endian length, then
//! the message) parsed.

use std::path::Path;
use std::process::ExitCode;

use boxinit::config::DeviceSpec;
use boxinit::config::{self, cmdline, Layer};
use boxinit::devices::modindex::{AliasIndexOrigin, ModuleIndex};
use boxinit::devices::uevent;
use boxinit::storage::scan;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let words: Vec<&str> = args.iter().map(String::as_str).collect();
    let result = match words.as_slice() {
        ["config", file] => config_layers(Path::new(file)),
        ["modules", aliases, packed, devices] => {
            modules(Path::new(aliases), Path::new(packed), Path::new(devices))
        }
        ["partitions", root] => partitions(Path::new(root)),
        ["uevents", file] => uevents(Path::new(file)),
        _ => Err(
            "usage: phases config FILE | modules ALIASES PACKED DEVICES | partitions ROOT | \
             uevents FILE"
                .into(),
        ),
    };
    match result {
        Ok(summary) => {
            println!("{summary}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("phases: {e}");
            ExitCode::FAILURE
        }
    }
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn config_layers(file: &Path) -> Result<String, String> {
    let text = read(file)?;
    let (overrides, mut errors) =
        cmdline::overrides("quiet boxinit.loglevel=debug boxinit.boot.timeout=10s");
    let layers = [
        Layer::Text {
            name: "/etc/init.toml".into(),
            text: text.clone(),
        },
        Layer::Table {
            name: "kernel command line".into(),
            table: overrides,
        },
        Layer::File {
            name: "/boot/init.toml".into(),
            bytes: text.into_bytes(),
            place: config::Place::BootPartition,
        },
    ];
    errors.extend(config::load(&layers).1);
    Ok(format!(
        "config: {} layers, {} errors",
        layers.len(),
        errors.len()
    ))
}

fn modules(aliases: &Path, packed: &Path, devices: &Path) -> Result<String, String> {
    let packed =
        std::fs::read(packed).map_err(|e| format!("cannot read {}: {e}", packed.display()))?;
    let (index, origin) = ModuleIndex::parse_with_packed("", "", &read(aliases)?, Some(&packed));
    if origin != AliasIndexOrigin::Packed {
        // counting the build instead would pass unnoticed within the tolerance of a slow day
        return Err(format!("the packed alias index was not used: {origin:?}"));
    }
    let devices = read(devices)?;
    let mut matched = 0;
    for device in devices.lines().filter(|l| !l.is_empty()) {
        matched += usize::from(!index.lookup_alias(device).is_empty());
    }
    Ok(format!(
        "modules: {} aliases, {} devices, {matched} claimed",
        index.alias_count(),
        devices.lines().count()
    ))
}

fn partitions(root: &Path) -> Result<String, String> {
    let scan = scan::scan(root);
    let spec = "LABEL=BOOT"
        .parse::<DeviceSpec>()
        .map_err(|e| e.to_string())?;
    let found = scan::select(&scan.found, &spec).map(|c| c.dev.display().to_string());
    Ok(format!(
        "partitions: {} found, {} errors, LABEL=BOOT is {}",
        scan.found.len(),
        scan.errors.len(),
        found.as_deref().unwrap_or("missing")
    ))
}

fn uevents(file: &Path) -> Result<String, String> {
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let (mut rest, mut parsed, mut total) = (bytes.as_slice(), 0, 0);
    while let Some((len, tail)) = rest.split_first_chunk::<4>() {
        let len = u32::from_le_bytes(*len) as usize;
        let Some((message, tail)) = tail.split_at_checked(len) else {
            return Err("a message is cut short".into());
        };
        total += 1;
        parsed += usize::from(uevent::parse(message).is_some());
        rest = tail;
    }
    Ok(format!("uevents: {parsed} of {total} parsed"))
}
