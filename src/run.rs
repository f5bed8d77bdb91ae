//! Run directories: atomic file writes, so an interrupted run never leaves a truncated file, and
//! the guard that refuses to write a run over another one.

use std::path::Path;

use crate::error::{file_err, Error, Result};
use crate::gpu::Device;

/// Writes `bytes` to `path` atomically ([`crate::fs::write_atomic`]).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    crate::fs::write_atomic(path, bytes).map_err(file_err("write", path))
}

/// Serialises `value` as pretty JSON and writes it atomically.
pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let text = serde_json::to_string_pretty(value).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })?;
    write_atomic(path, text.as_bytes())
}

/// Reads the JSON file at `path` into `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path).map_err(file_err("read", path))?;
    serde_json::from_str(&text).map_err(|source| Error::Json {
        path: path.to_path_buf(),
        source,
    })
}

/// Creates `dir` (and its parents) if needed.
pub fn create_dir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(file_err("create directory", dir))
}

/// The files whose presence marks a directory as holding a run.
pub const RUN_FILES: [&str; 4] = [
    "config.toml",
    "summary.json",
    "checkpoint.safetensors",
    "metrics.jsonl",
];

/// Whether `dir` holds (part of) a run: any of [`RUN_FILES`].
pub fn holds_run(dir: &Path) -> bool {
    RUN_FILES.iter().any(|f| dir.join(f).exists())
}

/// Refuses to start a new run in `dir` when it already holds one, unless `overwrite`: a second
/// `hypermod train … --out DIR` must not replace the first run's files silently.
pub fn check_fresh_run_dir(dir: &Path, overwrite: bool) -> Result<()> {
    if overwrite || !holds_run(dir) {
        return Ok(());
    }
    Err(Error::RunExists {
        dir: dir.to_path_buf(),
        what: "a run".into(),
        hint: format!(
            "continue it with `hypermod train --resume {}`, choose another --out, or pass \
             --overwrite to replace it",
            dir.display()
        ),
    })
}

/// Sets up a new run directory: refuses one that holds a run (unless `overwrite`), creates it,
/// stores the resolved config (`config.toml`) and `run.json`.
pub fn start_run_dir(gpu: &Device, dir: &Path, resolved: &str, overwrite: bool) -> Result<()> {
    check_fresh_run_dir(dir, overwrite)?;
    create_dir(dir)?;
    write_atomic(&dir.join("config.toml"), resolved.as_bytes())?;
    write_run_info(gpu, dir)
}

/// `run.json`: hypermod version, the adapter, when the run started and its command line, so a
/// run can be compared with others weeks later.
fn write_run_info(gpu: &Device, out: &Path) -> Result<()> {
    let started = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    let info = serde_json::json!({
        "hypermod_version": env!("CARGO_PKG_VERSION"),
        "adapter": gpu.report(),
        "started_unix": started,
        "command": std::env::args().collect::<Vec<_>>(),
    });
    write_json(&out.join("run.json"), &info)
}

/// The file a process holds locked while it writes a run or sweep directory.
pub const LOCK_FILE: &str = ".hypermod.lock";

/// A run or sweep directory this process writes, and no other: an exclusive OS lock on
/// [`LOCK_FILE`], released when this value drops or the process ends. The kernel drops the lock
/// with the process, so a crashed or SIGKILLed holder leaves no stale lock behind.
#[derive(Debug)]
pub struct DirLock {
    _file: std::fs::File,
}

/// Locks the existing directory `dir` for this process. Another live process holding it is
/// refused at once with [`Error::DirInUse`], naming it (pid, host, command), so two writers
/// (a requeued job whose first instance still runs, a resubmission typed twice) never
/// interleave their files.
pub fn lock_dir(dir: &Path) -> Result<DirLock> {
    use std::io::Write;
    let path = dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .open(&path)
        .map_err(file_err("open", &path))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let holder = std::fs::read_to_string(&path).unwrap_or_default();
            let holder = holder.trim();
            return Err(Error::DirInUse {
                dir: dir.to_path_buf(),
                holder: if holder.is_empty() {
                    "a process that has not written its name yet".into()
                } else {
                    holder.to_string()
                },
            });
        }
        Err(std::fs::TryLockError::Error(source)) => {
            return Err(Error::File {
                action: "lock",
                path,
                source,
            })
        }
    }
    let holder = format!(
        "pid {} on {}: {}",
        std::process::id(),
        host_name(),
        std::env::args().collect::<Vec<_>>().join(" ")
    );
    file.set_len(0)
        .and_then(|()| file.write_all(holder.as_bytes()))
        .map_err(file_err("write", &path))?;
    Ok(DirLock { _file: file })
}

/// This machine's name, for naming a lock's holder (best effort).
fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty())
        .or_else(|| std::env::var("HOSTNAME").ok())
        .unwrap_or_else(|| "this host".into())
}
