//! Helpers for xtask's unit tests: scratch directories. Test builds only.

use std::path::PathBuf;

/// A fresh directory under the system's temp dir (the caller removes it).
pub fn temp_dir(name: &str) -> PathBuf {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let dir = std::env::temp_dir().join(format!("xtask-{name}-{}-{nanos}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
