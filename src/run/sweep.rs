//! `--set key=value` and `--sweep key=v1,v2`: command-line variants.
//!
//! An assignment is turned into the text of a variant file that `extends` the spec, so a
//! command-line override is checked by exactly the same resolver as a variant written by hand,
//! and its errors point at the generated line. Keys: `data.KEY`, `train.KEY` (merged into that
//! section, e.g. `train.lr=0.1`, `data.augment=pad=4 crop=32x32`) and `model.LAYER.ARG`
//! (`set LAYER ARG=VALUE`, LAYER may be a pattern like `fc*`).

use super::error::RunError;
use crate::syntax::escape;
use std::path::Path;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Assignment {
    pub key: String,
    pub value: String,
}

fn bad_key(s: &str) -> RunError {
    RunError::new("E0510", format!("cannot read `{s}` as KEY=VALUE"))
        .help("write e.g. `--set train.lr=0.1`, `--set data.batch=128` or `--set model.fc*.init=msra`")
}

fn check_key(key: &str, whole: &str) -> Result<(), RunError> {
    let parts: Vec<&str> = key.split('.').collect();
    let ok = match parts.first() {
        Some(&"data") | Some(&"train") => parts.len() == 2 && !parts[1].is_empty(),
        Some(&"model") => parts.len() >= 3 && parts.iter().all(|p| !p.is_empty()),
        _ => false,
    };
    let valid_chars = key.chars().all(|c| c.is_ascii_alphanumeric() || "_.*?".contains(c));
    if ok && valid_chars {
        Ok(())
    } else {
        Err(bad_key(whole))
    }
}

/// `train.lr=0.1` → an assignment.
pub fn parse_assignment(s: &str) -> Result<Assignment, RunError> {
    let (key, value) = s.split_once('=').ok_or_else(|| bad_key(s))?;
    check_key(key, s)?;
    if value.trim().is_empty() || value.contains(['\n', ';', '{', '}']) {
        return Err(bad_key(s));
    }
    Ok(Assignment { key: key.to_string(), value: value.trim().to_string() })
}

/// `train.lr=0.1,0.01` → the key and its values.
pub fn parse_sweep(s: &str) -> Result<(String, Vec<String>), RunError> {
    let a = parse_assignment(s)?;
    let values: Vec<String> = a.value.split(',').map(|v| v.trim().to_string()).collect();
    if values.iter().any(String::is_empty) {
        return Err(bad_key(s));
    }
    Ok((a.key, values))
}

/// Every combination of the swept values, in order (the last key varies fastest).
pub fn combinations(sweeps: &[(String, Vec<String>)]) -> Vec<Vec<Assignment>> {
    let mut out: Vec<Vec<Assignment>> = vec![vec![]];
    for (key, values) in sweeps {
        out = out
            .into_iter()
            .flat_map(|prefix| {
                values.iter().map(move |v| {
                    let mut p = prefix.clone();
                    p.push(Assignment { key: key.clone(), value: v.clone() });
                    p
                })
            })
            .collect();
    }
    out
}

/// A short suffix naming a combination: `lr-0.1_batch-128`.
pub fn suffix(assignments: &[Assignment]) -> String {
    assignments
        .iter()
        .map(|a| {
            let leaf = a.key.rsplit('.').next().unwrap_or(&a.key);
            // A name the grammar accepts as part of an identifier: `lr0.1`, `wdm1` for -1.
            let v: String = a
                .value
                .chars()
                .map(|c| match c {
                    c if c.is_ascii_alphanumeric() || c == '.' => c,
                    '-' => 'm',
                    _ => '_',
                })
                .collect();
            format!("{leaf}{v}")
        })
        .collect::<Vec<_>>()
        .join("_")
}

/// The text of a variant of `base` (an absolute or working-directory path) named `name`
/// applying the assignments.
pub fn variant_text(base: &Path, name: &str, assignments: &[Assignment]) -> String {
    let mut s = format!("experiment {name}\nextends \"{}\"\n", escape(&base.display().to_string()));
    for a in assignments {
        let mut parts = a.key.splitn(2, '.');
        let section = parts.next().unwrap_or("");
        let rest = parts.next().unwrap_or("");
        match section {
            "model" => {
                let (layer, arg) = rest.rsplit_once('.').unwrap_or((rest, ""));
                s.push_str(&format!("set {layer} {arg}={}\n", a.value));
            }
            _ => s.push_str(&format!("{section} {{ {rest} {} }}\n", a.value)),
        }
    }
    s
}

/// A SLURM job-array script running every combination of a sweep with `expc run`.
pub fn slurm_script(spec: &Path, name: &str, out: &Path, combos: &[Vec<Assignment>], threads: usize) -> String {
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!("# Sweep of {} ({} runs), written by `expc run --sweep … --emit slurm`.\n", spec.display(), combos.len()));
    s.push_str("# Submit with: sbatch THIS_FILE  (expc must be on PATH on the compute nodes)\n");
    s.push_str(&format!("#SBATCH --job-name=expc-{name}\n"));
    s.push_str(&format!("#SBATCH --array=0-{}\n", combos.len().saturating_sub(1)));
    s.push_str(&format!("#SBATCH --cpus-per-task={threads}\n"));
    s.push_str(&format!("#SBATCH --output={}/slurm-%A_%a.out\n", out.display()));
    s.push_str("set -euo pipefail\n");
    s.push_str("ARGS=(\n");
    for c in combos {
        let sets: Vec<String> = c.iter().map(|a| format!("--set '{}={}'", a.key, a.value.replace('\'', "'\\''"))).collect();
        s.push_str(&format!("  \"{}\"\n", sets.join(" ").replace('"', "\\\"")));
    }
    s.push_str(")\n");
    s.push_str(&format!(
        "eval \"srun expc run '{}' --quiet --threads {threads} --out '{}' ${{ARGS[$SLURM_ARRAY_TASK_ID]}}\"\n",
        spec.display(),
        out.display()
    ));
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_become_variant_lines() {
        let a = [parse_assignment("train.lr=0.1").unwrap(), parse_assignment("model.fc*.init=msra").unwrap()];
        let t = variant_text(Path::new("/x/base.exp"), "v", &a);
        assert_eq!(t, "experiment v\nextends \"/x/base.exp\"\ntrain { lr 0.1 }\nset fc* init=msra\n");
    }

    #[test]
    fn bad_keys_are_rejected() {
        for s in ["lr=0.1", "train.lr", "train.=1", "model.fc1=3", "train.lr=", "train.lr=1; iterations 3", "foo.bar=1"] {
            assert!(parse_assignment(s).is_err(), "{s}");
        }
    }

    #[test]
    fn combinations_are_the_cartesian_product() {
        let c = combinations(&[parse_sweep("train.lr=0.1,0.01").unwrap(), parse_sweep("data.batch=64,128,256").unwrap()]);
        assert_eq!(c.len(), 6);
        assert_eq!(suffix(&c[0]), "lr0.1_batch64");
        assert_eq!(suffix(&c[5]), "lr0.01_batch256");
    }
}
