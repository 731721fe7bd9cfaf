//! Run folders: `runs/<experiment>/<timestamp>/` and the record that lets `expc resume`
//! rebuild exactly the same experiment later.
//!
//! `run.json` stores the text of every source file the experiment was resolved from (the spec,
//! its bases, and the generated variant of `--set` options), so a resumed run does not depend
//! on the spec files still being unchanged on disk.

use super::error::RunError;
use crate::spec::{resolve_text, Resolved};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

pub const RECORD_VERSION: u32 = 1;

/// Largest `run.json` read back (it holds the text of every source file, each at most 16 MiB).
pub const MAX_RECORD_BYTES: u64 = 64 << 20;

#[derive(Clone, Debug, Serialize, Deserialize, PartialEq)]
pub struct RunRecord {
    pub version: u32,
    pub expc_version: String,
    pub experiment: String,
    /// Name of the root source (a path, or `<command line>` for `--set` variants).
    pub root: String,
    /// Folder `extends` paths of the root are relative to.
    pub root_dir: PathBuf,
    /// Every source file's text by the name it was read under.
    pub sources: BTreeMap<String, String>,
    /// `--set` options applied, in order.
    pub assignments: Vec<String>,
    /// Total iterations of this run (the compiled spec's; `--iterations` is part of the recorded variant).
    pub iterations: u64,
    pub threads: usize,
    pub created: String,
}

impl RunRecord {
    pub fn save(&self, dir: &Path) -> Result<(), RunError> {
        let p = dir.join("run.json");
        let text = serde_json::to_string_pretty(self).map_err(|e| RunError::new("E0500", e.to_string()))?;
        write_atomic(&p, text.as_bytes())
    }

    pub fn load(dir: &Path) -> Result<RunRecord, RunError> {
        let p = dir.join("run.json");
        let text = crate::source::read_text_file(&p, MAX_RECORD_BYTES)
            .map_err(|e| RunError::io(&p, "read", e).help("pass a folder made by `expc run` (it holds run.json, metrics.csv and checkpoints/)"))?;
        serde_json::from_str(&text).map_err(|e| RunError::new("E0503", format!("`{}` is corrupt: {e}", p.display())))
    }

    /// Compiles the experiment again from the stored sources, with `probe` saying what the data is.
    pub fn compile(&self, probe: crate::compile::DataProbe) -> crate::compile::Compilation {
        crate::compile::finish(self.resolve(), probe)
    }

    /// Resolves the experiment again from the stored sources.
    pub fn resolve(&self) -> Resolved {
        let sources = self.sources.clone();
        let read = move |p: &Path| {
            sources.get(&p.display().to_string()).cloned().ok_or_else(|| std::io::Error::new(std::io::ErrorKind::NotFound, "not recorded in run.json"))
        };
        let text = self.sources.get(&self.root).cloned().unwrap_or_default();
        resolve_text(&self.root, &text, &self.root_dir, &read)
    }
}

/// An exclusive lock on a run folder, held while `expc run` or `expc resume` trains into it.
///
/// The lock is an advisory lock (`flock`) on `DIR/expc.lock`, which also holds the owner's process
/// id for messages. The kernel releases it when the process exits in any way (`kill -9`
/// included), so a lock file left by a dead process is simply taken over; a clean exit removes the
/// file.
#[derive(Debug)]
pub struct RunLock {
    file: std::fs::File,
    path: PathBuf,
}

impl RunLock {
    pub fn acquire(dir: &Path) -> Result<RunLock, RunError> {
        let path = dir.join("expc.lock");
        for _ in 0..16 {
            let mut file =
                std::fs::OpenOptions::new().read(true).write(true).create(true).truncate(false).open(&path).map_err(|e| RunError::io(&path, "create", e))?;
            match file.try_lock() {
                Ok(()) => {}
                Err(std::fs::TryLockError::WouldBlock) => {
                    let mut owner = String::new();
                    let _ = std::io::Read::read_to_string(&mut file, &mut owner);
                    let owner = owner.trim();
                    let who = if owner.is_empty() { "another expc process".to_string() } else { format!("expc process {owner}") };
                    return Err(RunError::new("E0506", format!("the run folder `{}` is in use by {who}", dir.display()))
                        .help("wait for that run to finish (or stop it) before resuming; two processes must not train into one folder"));
                }
                Err(std::fs::TryLockError::Error(e)) => return Err(RunError::io(&path, "lock", e)),
            }
            // The previous owner may have removed the file between our open and our lock: then
            // we hold a lock on a file nobody else can see, and must start over.
            if !same_file(&file, &path) {
                continue;
            }
            use std::io::Write;
            let pid = std::process::id().to_string();
            file.set_len(0).and_then(|_| file.write_all(pid.as_bytes())).and_then(|_| file.flush()).map_err(|e| RunError::io(&path, "write", e))?;
            return Ok(RunLock { file, path });
        }
        Err(RunError::new("E0506", format!("cannot lock the run folder `{}`: its lock file keeps changing", dir.display())))
    }
}

#[cfg(unix)]
fn same_file(file: &std::fs::File, path: &Path) -> bool {
    use std::os::unix::fs::MetadataExt;
    match (file.metadata(), std::fs::metadata(path)) {
        (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
        _ => false,
    }
}

#[cfg(not(unix))]
fn same_file(_: &std::fs::File, path: &Path) -> bool {
    path.exists()
}

impl Drop for RunLock {
    fn drop(&mut self) {
        // Removed while still held, so no one can lock the old file after we let go.
        let _ = std::fs::remove_file(&self.path);
        let _ = self.file.unlock();
    }
}

/// Writes through a temporary file and a rename.
///
/// Only a regular file (or a path that does not exist yet) is replaced by a rename: a device, a
/// FIFO or a socket (`-o /dev/null`, `-o /dev/stdout`) is written directly, so it stays what it
/// was. The temporary file is `.NAME.expc-tmp` beside the target, a name no user file has.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), RunError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let e = std::io::Error::new(std::io::ErrorKind::IsADirectory, "it is a folder");
            return Err(RunError::io(path, "write", e).help("give a file name, not a folder"));
        }
        Ok(m) if !m.is_file() => {
            return std::fs::OpenOptions::new()
                .write(true)
                .open(path)
                .and_then(|mut f| std::io::Write::write_all(&mut f, bytes))
                .map_err(|e| RunError::io(path, "write", e));
        }
        _ => {}
    }
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| "output".into());
    let tmp = path.with_file_name(format!(".{name}.expc-tmp"));
    std::fs::write(&tmp, bytes).map_err(|e| RunError::io(&tmp, "write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        RunError::io(path, "rename into", e)
    })
}

/// `YYYYMMDD-HHMMSS` in UTC.
pub fn timestamp_now() -> String {
    let secs = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0);
    let (days, rem) = (secs / 86_400, secs % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}{m:02}{d:02}-{:02}{:02}{:02}", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Creates `out/<experiment>/<timestamp>` (with `-2`, `-3`, … if taken).
pub fn create_run_dir(out: &Path, experiment: &str) -> Result<PathBuf, RunError> {
    let base = out.join(experiment);
    std::fs::create_dir_all(&base).map_err(|e| RunError::io(&base, "create", e).help("choose another folder with --out"))?;
    let stamp = timestamp_now();
    for k in 1.. {
        let name = if k == 1 { stamp.clone() } else { format!("{stamp}-{k}") };
        let dir = base.join(name);
        match std::fs::create_dir(&dir) {
            Ok(()) => return Ok(dir),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(RunError::io(&dir, "create", e)),
        }
    }
    unreachable!("some suffix is free")
}

/// Peak resident memory of this process (VmHWM), where the OS reports it.
pub fn peak_rss_bytes() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    #[test]
    fn timestamp_has_its_shape() {
        let t = super::timestamp_now();
        assert_eq!(t.len(), 15, "{t}");
        assert!(t.starts_with("20"), "{t}");
        assert_eq!(&t[8..9], "-");
    }
}
