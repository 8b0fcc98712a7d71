//! Fuzz target `config`: init.toml text through `config::load`, as the init reads its layers
//! (a NUL byte, which no TOML text holds, separates layers: built-in file, card file, ...).
//! Never a panic; every error is one line naming its layer; the layers valid alone merge
//! into a valid whole; and what load returns can run (`boxinit_fuzz::assert_runnable`).
#![no_main]

use boxinit::config::{self, Layer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let layers: Vec<Layer> = data
        .split(|b| *b == 0)
        .enumerate()
        .map(|(i, part)| Layer::Text {
            name: format!("layer{i}.toml"),
            text: String::from_utf8_lossy(part).into_owned(),
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
    boxinit_fuzz::assert_runnable(&cfg, "these layers");
});
