//! A config layer: one source of settings (a file's bytes and where it was found, TOML text,
//! or an already built table such as the command line's), and the [`Place`] a file was found
//! in, which decides what it may set. `config::load` validates and merges them.

/// The largest config file read: 1 MiB, a hundred times the largest real one. The TOML parse
/// takes about 40 times a file's size in memory, so a 50 MB file took 2 GB and the kernel
/// panicked at every boot. A larger file is an error naming it, and the layer is ignored.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Where a config file was found, which decides what it may set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Read before the boot partition is looked for: the initramfs's `/etc/init.toml`,
    /// `BOXINIT_CONFIG`. Any key.
    Early,
    /// `init.toml` on the boot partition: read once that partition is found and mounted, so
    /// `[boot] device` and `timeout` can no longer take effect there and are errors.
    BootPartition,
}

/// One source of configuration.
#[derive(Debug, Clone, PartialEq)]
pub enum Layer {
    /// TOML text read early (as [`Place::Early`]); `name` is what errors call it (its path).
    Text {
        /// Name for error messages.
        name: String,
        /// The TOML text.
        text: String,
    },
    /// A file's bytes as read, which may not be UTF-8 (an error then), and where it was found.
    File {
        /// Name for error messages (its path).
        name: String,
        /// The file's contents.
        bytes: Vec<u8>,
        /// Where it was found.
        place: Place,
    },
    /// An already built table, e.g. from the kernel command line.
    Table {
        /// Name for error messages.
        name: String,
        /// The keys it sets.
        table: toml::Table,
    },
}

impl Layer {
    /// What errors call this layer.
    pub fn name(&self) -> &str {
        match self {
            Layer::Text { name, .. } | Layer::File { name, .. } | Layer::Table { name, .. } => name,
        }
    }

    /// The layer's text, when it has one, to find positions in.
    pub fn text(&self) -> Option<&str> {
        match self {
            Layer::Text { text, .. } => Some(text),
            Layer::File { bytes, .. } => std::str::from_utf8(bytes).ok(),
            Layer::Table { .. } => None,
        }
    }
}
