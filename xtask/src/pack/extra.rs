//! What an initramfs packs besides its own (`pack/initramfs.rs`): a file, a link, or a path
//! left out. Debian's programs and firmware, the benchmark's other inits and the test
//! switches (`--no-console`, no `/boxinit-net`) are given as these.

/// A file or link packed besides what `initramfs::make` packs (the benchmark's other inits
/// use them); it replaces an entry at the same path.
#[derive(Clone, Debug)]
pub enum Extra {
    File {
        path: String,
        mode: u32,
        data: Vec<u8>,
    },
    Symlink {
        path: String,
        target: String,
    },
    /// Leave this path out (e.g. `dev/console`, to test an initramfs without it).
    Omit {
        path: String,
    },
}

/// The entry that leaves `/dev/console` out of an initramfs (`initramfs --no-console`): the
/// kernel then opens no console for init unless its own built-in initramfs has one.
pub fn no_console() -> Extra {
    Extra::Omit {
        path: "dev/console".to_string(),
    }
}

/// The entry that leaves the network programs' binary (`/boxinit-net`) out of an initramfs.
pub fn no_net() -> Extra {
    Extra::Omit {
        path: boxinit::net::PROGRAM.to_string(),
    }
}
