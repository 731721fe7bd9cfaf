//! `expc compare DIR…`: several runs side by side — one figure, one table.
//!
//! Reads each run folder's `metrics.csv` (and `summary.json` for the experiment's name when
//! present) and reports, per run, the best test accuracy and its iteration, the final test
//! accuracy and loss. The figure overlays the runs' loss and accuracy curves (the seed's
//! Figures 3–6 are exactly this).

use super::error::RunError;
use super::metrics::{self, Row};
use super::plot;
use serde::Serialize;
use std::path::{Path, PathBuf};

#[derive(Clone, Debug, Serialize)]
pub struct RunLine {
    pub label: String,
    pub dir: PathBuf,
    pub iterations: u64,
    pub best_accuracy: Option<f64>,
    pub best_iteration: Option<u64>,
    pub final_accuracy: Option<f64>,
    pub final_test_loss: Option<f64>,
}

pub struct Loaded {
    pub label: String,
    pub dir: PathBuf,
    pub rows: Vec<Row>,
}

/// The label of a run folder: the experiment name from `summary.json` or `spec.json`, else the
/// folder name.
pub fn label_of(dir: &Path) -> String {
    for f in ["summary.json", "spec.json"] {
        if let Ok(t) = crate::source::read_text_file(&dir.join(f), crate::source::MAX_SOURCE_BYTES) {
            if let Ok(v) = serde_json::from_str::<serde_json::Value>(&t) {
                if let Some(n) = v.get("experiment").or_else(|| v.get("name")).and_then(|x| x.as_str()) {
                    return n.to_string();
                }
            }
        }
    }
    dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_else(|| dir.display().to_string())
}

pub fn load(dirs: &[PathBuf]) -> Result<Vec<Loaded>, RunError> {
    let mut out = vec![];
    for d in dirs {
        let path = d.join("metrics.csv");
        if !path.exists() {
            return Err(RunError::new("E0505", format!("`{}` has no metrics.csv", d.display()))
                .help("pass run folders, as printed by `expc run` (e.g. runs/cifar10_baseline/20261126-101500)"));
        }
        out.push(Loaded { label: label_of(d), dir: d.clone(), rows: metrics::read(&path)? });
    }
    // Disambiguate equal labels with the folder name.
    let labels: Vec<String> = out.iter().map(|l| l.label.clone()).collect();
    for l in &mut out {
        if labels.iter().filter(|x| **x == l.label).count() > 1 {
            let folder = l.dir.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
            l.label = format!("{} ({folder})", l.label);
        }
    }
    Ok(out)
}

pub fn table(runs: &[Loaded]) -> Vec<RunLine> {
    runs.iter()
        .map(|r| {
            let evals: Vec<&Row> = r.rows.iter().filter(|x| x.test_accuracy.is_some()).collect();
            let best = evals.iter().copied().fold(None::<&Row>, |b, x| match b {
                Some(b) if b.test_accuracy >= x.test_accuracy => Some(b),
                _ => Some(x),
            });
            RunLine {
                label: r.label.clone(),
                dir: r.dir.clone(),
                iterations: r.rows.last().map(|x| x.iteration).unwrap_or(0),
                best_accuracy: best.and_then(|b| b.test_accuracy),
                best_iteration: best.map(|b| b.iteration),
                final_accuracy: evals.last().and_then(|x| x.test_accuracy),
                final_test_loss: evals.last().and_then(|x| x.test_loss),
            }
        })
        .collect()
}

/// Writes the overlay figure (`stem.png`, `stem.svg`).
pub fn figure(runs: &[Loaded], stem: &Path) -> Result<(), RunError> {
    let series: Vec<plot::Series> = runs.iter().map(|r| plot::Series { label: r.label.clone(), rows: &r.rows, evaluated_on: "test" }).collect();
    plot::curves(&series, "comparison", stem)
}

/// The table as aligned text.
pub fn render_table(lines: &[RunLine]) -> String {
    let pct = |x: Option<f64>| x.map(|a| format!("{:.2}%", 100.0 * a)).unwrap_or_else(|| "-".into());
    let mut rows = vec![["run".to_string(), "iterations".into(), "best acc".into(), "at iter".into(), "final acc".into(), "final test loss".into()]];
    for l in lines {
        rows.push([
            l.label.clone(),
            l.iterations.to_string(),
            pct(l.best_accuracy),
            l.best_iteration.map(|i| i.to_string()).unwrap_or_else(|| "-".into()),
            pct(l.final_accuracy),
            l.final_test_loss.map(|x| format!("{x:.4}")).unwrap_or_else(|| "-".into()),
        ]);
    }
    let widths: Vec<usize> = (0..6).map(|c| rows.iter().map(|r| r[c].chars().count()).max().unwrap_or(0)).collect();
    let mut s = String::new();
    for r in &rows {
        let cells: Vec<String> =
            r.iter().enumerate().map(|(c, x)| if c == 0 { format!("{x:<w$}", w = widths[c]) } else { format!("{x:>w$}", w = widths[c]) }).collect();
        s.push_str(cells.join("  ").trim_end());
        s.push('\n');
    }
    s
}
