//! Atomic file writes: a temporary file in the same directory, then a rename, so an interrupted
//! run never leaves a truncated file. A leaf (plain `std::io` errors), so every layer that writes
//! files, the report writers included, can use it; [`crate::run::write_atomic`] names the file
//! in the crate's error.

use std::path::Path;

/// Writes `bytes` to `path` through `path.tmp` and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".tmp");
    std::fs::write(&tmp, bytes)?;
    std::fs::rename(&tmp, path)
}
