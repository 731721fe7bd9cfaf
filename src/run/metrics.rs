//! `metrics.csv`: one row per logged or evaluated iteration.
//!
//! Columns: iteration, epoch, lr, train_loss, test_loss, test_accuracy, elapsed_s, img_per_s.
//! Empty cells where a value was not measured at that iteration. Every row is flushed as it is
//! written, so a killed run keeps everything up to its last row; a resumed run truncates rows
//! past its checkpoint before appending.

use super::error::RunError;
use serde::Serialize;
use std::fs::{File, OpenOptions};
use std::io::{BufReader, Read, Write};
use std::path::{Path, PathBuf};

pub const HEADER: &str = "iteration,epoch,lr,train_loss,test_loss,test_accuracy,elapsed_s,img_per_s";

#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Row {
    pub iteration: u64,
    pub epoch: f64,
    pub lr: f64,
    pub train_loss: Option<f64>,
    pub test_loss: Option<f64>,
    pub test_accuracy: Option<f64>,
    pub elapsed_s: f64,
    pub img_per_s: Option<f64>,
}

fn cell(v: Option<f64>) -> String {
    v.map(|x| format!("{x}")).unwrap_or_default()
}

impl Row {
    pub fn to_csv(&self) -> String {
        format!(
            "{},{:.6},{},{},{},{},{:.3},{}",
            self.iteration,
            self.epoch,
            self.lr,
            cell(self.train_loss),
            cell(self.test_loss),
            cell(self.test_accuracy),
            self.elapsed_s,
            cell(self.img_per_s.map(|x| x.round()))
        )
    }
}

pub struct Writer {
    file: File,
    path: PathBuf,
}

impl Writer {
    /// Creates the file with its header.
    pub fn create(path: &Path) -> Result<Writer, RunError> {
        let mut file = File::create(path).map_err(|e| RunError::io(path, "create", e))?;
        writeln!(file, "{HEADER}").map_err(|e| RunError::io(path, "write", e))?;
        Ok(Writer { file, path: path.to_path_buf() })
    }

    /// Reopens an existing file for a resumed run, dropping rows after `iteration` and a torn
    /// last line (half a row, as a crash or a full disk leaves).
    pub fn resume(path: &Path, iteration: u64) -> Result<Writer, RunError> {
        let rows = read_inner(path, true)?;
        // Rewritten through a temporary file and a rename: a crash here loses nothing.
        let tmp = path.with_extension("csv.tmp");
        let mut w = Writer::create(&tmp)?;
        for r in rows.iter().filter(|r| r.iteration <= iteration) {
            w.write(r)?;
        }
        w.file.sync_all().map_err(|e| RunError::io(&tmp, "write", e))?;
        drop(w);
        std::fs::rename(&tmp, path).map_err(|e| RunError::io(path, "rename into", e))?;
        let file = OpenOptions::new().append(true).open(path).map_err(|e| RunError::io(path, "open", e))?;
        Ok(Writer { file, path: path.to_path_buf() })
    }

    pub fn write(&mut self, row: &Row) -> Result<(), RunError> {
        writeln!(self.file, "{}", row.to_csv()).and_then(|_| self.file.flush()).map_err(|e| RunError::io(&self.path, "write", e))
    }
}

/// Reads a metrics file (for `expc compare`, resume and tests).
pub fn read(path: &Path) -> Result<Vec<Row>, RunError> {
    read_inner(path, false)
}

fn read_inner(path: &Path, drop_torn_tail: bool) -> Result<Vec<Row>, RunError> {
    let help = "a run folder holds metrics.csv; pass the folder that `expc run` printed";
    if let Ok(m) = std::fs::metadata(path) {
        if !m.is_file() {
            return Err(RunError::new("E0501", format!("`{}` is not a regular file", path.display())).help(help));
        }
    }
    let file = File::open(path).map_err(|e| RunError::io(path, "read", e).help(help))?;
    let mut bytes = vec![];
    BufReader::new(file).read_to_end(&mut bytes).map_err(|e| RunError::io(path, "read", e))?;
    let text = String::from_utf8_lossy(&bytes);
    let mut lines: Vec<&str> = text.split('\n').collect();
    let complete = text.ends_with('\n');
    if complete {
        lines.pop();
    }
    let mut rows = vec![];
    let n = lines.len();
    for (i, line) in lines.into_iter().enumerate() {
        let torn_tail_allowed = drop_torn_tail && i + 1 == n && i > 0;
        // Every row is written with its newline: a last line without one was cut short.
        if torn_tail_allowed && !complete {
            break;
        }
        if i == 0 {
            if line.trim() != HEADER {
                return Err(RunError::new("E0501", format!("`{}` is not an expc metrics file (unexpected header)", path.display())));
            }
            continue;
        }
        if line.trim().is_empty() {
            continue;
        }
        let c: Vec<&str> = line.split(',').collect();
        let bad = || RunError::new("E0501", format!("`{}` line {}: malformed row `{line}`", path.display(), i + 1));
        if c.len() != 8 {
            if torn_tail_allowed {
                break;
            }
            return Err(bad());
        }
        let opt = |s: &str| -> Result<Option<f64>, RunError> {
            if s.is_empty() {
                Ok(None)
            } else {
                s.parse().map(Some).map_err(|_| bad())
            }
        };
        let parsed = (|| -> Result<Row, RunError> {
            Ok(Row {
                iteration: c[0].parse().map_err(|_| bad())?,
                epoch: c[1].parse().map_err(|_| bad())?,
                lr: c[2].parse().map_err(|_| bad())?,
                train_loss: opt(c[3])?,
                test_loss: opt(c[4])?,
                test_accuracy: opt(c[5])?,
                elapsed_s: c[6].parse().map_err(|_| bad())?,
                img_per_s: opt(c[7])?,
            })
        })();
        match parsed {
            Ok(r) => rows.push(r),
            Err(_) if torn_tail_allowed => break,
            Err(e) => return Err(e),
        }
    }
    Ok(rows)
}
