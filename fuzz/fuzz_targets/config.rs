//! Fuzz target `config`: init.toml files through `config::load` as the init reads them, bytes
//! and all (a NUL byte, which no TOML text holds, separates files: the first is the built-in
//! `/etc/init.toml`, the others the boot partition's). Never a panic; every error is one line
//! naming its file; the files valid alone merge into a valid whole; what load returns can run
//! (`boxinit_fuzz::assert_runnable`); and `boxinit check` (`config::check_file`) reports for
//! the last file exactly what the init reports for it.
#![no_main]

use boxinit::config::{self, Layer, Place};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let layers: Vec<Layer> = data
        .split(|b| *b == 0)
        .enumerate()
        .map(|(i, bytes)| Layer::File {
            name: format!("layer{i}.toml"),
            bytes: bytes.to_vec(),
            place: if i == 0 {
                Place::Early
            } else {
                Place::BootPartition
            },
        })
        .collect();
    let (cfg, errors) = config::load(&layers);
    for e in &errors {
        let shown = e.to_string();
        assert!(
            !shown.contains('\n'),
            "an error of more than one line: {shown:?}"
        );
        assert!(
            e.source.starts_with("layer"),
            "layers valid alone did not merge: {shown}"
        );
    }
    boxinit_fuzz::assert_runnable(&cfg, "these files");

    // `boxinit check` on the card's file says what the init says about it at boot.
    if let Some(Layer::File { name, bytes, place }) = layers.last() {
        let checked = config::check_file(name, bytes.clone(), *place);
        let init: Vec<_> = config::load_with_cmdline(
            &[
                Layer::File {
                    name: "/etc/init.toml".into(),
                    bytes: Vec::new(),
                    place: Place::Early,
                },
                Layer::File {
                    name: name.clone(),
                    bytes: bytes.clone(),
                    place: *place,
                },
            ],
            "",
        )
        .1;
        assert_eq!(checked, init, "boxinit check and the init disagree");
    }
});
