//! Fuzz target `cmdline`: a kernel command line (`/proc/cmdline`'s text) through the word
//! splitter, the `boxinit.*` overrides with `config::load`, and the module parameters. Never
//! a panic; what load accepts from it can run (`boxinit_fuzz::assert_runnable`).
#![no_main]

use boxinit::config::{self, cmdline};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let _ = cmdline::parse_words(&text);
    // As the init loads it (`config::load_with_cmdline`), over no file.
    let (cfg, errors) = config::load_with_cmdline(&[], &text);
    for e in &errors {
        let shown = e.to_string();
        assert!(
            !shown.contains('\n'),
            "an error of more than one line: {shown:?}"
        );
    }
    boxinit_fuzz::assert_runnable(&cfg, "this command line");
    for (module, params) in cmdline::module_params(&text) {
        assert!(
            !module.is_empty() && !module.contains('-'),
            "{module:?} {params:?}"
        );
    }
});
