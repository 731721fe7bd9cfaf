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
    if let Some(c) = value.chars().find(|c| c.is_control()) {
        return Err(RunError::new("E0510", format!("`{}`: the value holds the control character U+{:04X}", s.escape_debug(), c as u32))
            .help("a --set value is one line of text: remove line breaks, tabs and other control characters"));
    }
    let mut quoted = false;
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => {
                return Err(RunError::new("E0510", format!("`{s}`: a --set value cannot hold a comment (`#`)"))
                    .help("remove the `# …` part; comments belong in the spec file"));
            }
            _ => {}
        }
    }
    if value.trim().is_empty() || value.contains([';', '{', '}']) {
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
    // One block per section (a file may not repeat a section), in order of first appearance.
    let mut sections: Vec<(&str, Vec<String>)> = vec![];
    for a in assignments {
        let mut parts = a.key.splitn(2, '.');
        let section = parts.next().unwrap_or("");
        let rest = parts.next().unwrap_or("");
        match section {
            "model" => {
                let (layer, arg) = rest.rsplit_once('.').unwrap_or((rest, ""));
                s.push_str(&format!("set {layer} {arg}={}\n", a.value));
            }
            _ => {
                let line = format!("{rest} {}", a.value);
                match sections.iter_mut().find(|(k, _)| *k == section) {
                    Some((_, lines)) => lines.push(line),
                    None => sections.push((section, vec![line])),
                }
            }
        }
    }
    for (section, lines) in sections {
        s.push_str(&format!("{section} {{ {} }}\n", lines.join("; ")));
    }
    s
}

/// Quotes `s` for a POSIX shell: one single-quoted word, nothing in it is expanded.
pub fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "_-./=,+:@%".contains(c)) {
        return s.to_string();
    }
    format!("'{}'", s.replace('\'', "'\\''"))
}

/// A path or value that cannot go into a job script: control characters (a newline would end
/// the line it is written on).
fn check_scriptable(what: &str, s: &str) -> Result<(), RunError> {
    match s.chars().find(|c| c.is_control()) {
        Some(c) => Err(RunError::new(
            "E0541",
            format!("{what} `{}` holds the control character U+{:04X}; it cannot be written into a job script", s.escape_debug(), c as u32),
        )
        .help("rename the file or folder (or choose another value) without control characters")),
        None => Ok(()),
    }
}

/// A SLURM job-array script running every combination of a sweep with `expc run`.
///
/// No value is ever evaluated by the shell: every path and value is a single-quoted word, each
/// task's arguments are one bash array selected by `case`, and `srun` is run without `eval`.
/// `extra` holds the arguments every task gets (`--set` options, `--iterations`, `--data`).
pub fn slurm_script(spec: &Path, name: &str, out: &Path, combos: &[Vec<Assignment>], threads: usize, extra: &[String]) -> Result<String, RunError> {
    let spec_s = spec.display().to_string();
    let out_s = out.display().to_string();
    check_scriptable("the spec path", &spec_s)?;
    check_scriptable("the output folder", &out_s)?;
    for a in extra.iter().chain(combos.iter().flatten().map(|a| &a.value)) {
        check_scriptable("the value", a)?;
    }
    let mut s = String::new();
    s.push_str("#!/bin/bash\n");
    s.push_str(&format!("# Sweep of {} ({} runs), written by `expc run --sweep … --emit slurm`.\n", spec_s.escape_debug(), combos.len()));
    s.push_str("# Submit with: sbatch THIS_FILE  (expc must be on PATH on the compute nodes)\n");
    let plain = |c: char| c.is_ascii_alphanumeric() || "_-.".contains(c);
    let job: String = name.chars().map(|c| if plain(c) { c } else { '_' }).collect();
    s.push_str(&format!("#SBATCH --job-name=expc-{job}\n"));
    s.push_str(&format!("#SBATCH --array=0-{}\n", combos.len().saturating_sub(1)));
    s.push_str(&format!("#SBATCH --cpus-per-task={threads}\n"));
    if out_s.chars().all(|c| plain(c) || c == '/') {
        s.push_str(&format!("#SBATCH --output={out_s}/slurm-%A_%a.out\n"));
    } else {
        s.push_str("# (no --output directive: the output folder's name is not a plain path; SLURM writes slurm-%A_%a.out here)\n");
    }
    s.push_str("set -euo pipefail\n");
    s.push_str(&format!("SPEC={}\n", shell_quote(&spec_s)));
    s.push_str(&format!("OUT={}\n", shell_quote(&out_s)));
    s.push_str("case \"${SLURM_ARRAY_TASK_ID:-}\" in\n");
    for (i, c) in combos.iter().enumerate() {
        let mut words: Vec<String> = extra.iter().map(|w| shell_quote(w)).collect();
        for a in c {
            words.push("--set".into());
            words.push(shell_quote(&format!("{}={}", a.key, a.value)));
        }
        s.push_str(&format!("  {i}) ARGS=({}) ;;\n", words.join(" ")));
    }
    s.push_str("  *) echo \"SLURM_ARRAY_TASK_ID must be 0..");
    s.push_str(&format!("{}\" >&2; exit 1 ;;\n", combos.len().saturating_sub(1)));
    s.push_str("esac\n");
    s.push_str(&format!("exec srun expc run \"$SPEC\" --quiet --threads {threads} --out \"$OUT\" \"${{ARGS[@]}}\"\n"));
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_become_variant_lines() {
        let a = [parse_assignment("train.lr=0.1").unwrap(), parse_assignment("model.fc*.init=msra").unwrap()];
        let t = variant_text(Path::new("/x/base.exp"), "v", &a);
        assert_eq!(t, "experiment v\nextends \"/x/base.exp\"\nset fc* init=msra\ntrain { lr 0.1 }\n");
        // Two settings of one section: one block (a file may not repeat a section).
        let a = [parse_assignment("train.lr=0.1").unwrap(), parse_assignment("train.weight_decay=0").unwrap()];
        let t = variant_text(Path::new("/x/base.exp"), "v", &a);
        assert!(t.ends_with("train { lr 0.1; weight_decay 0 }\n"), "{t}");
    }

    #[test]
    fn bad_keys_are_rejected() {
        for s in [
            "lr=0.1",
            "train.lr",
            "train.=1",
            "model.fc1=3",
            "train.lr=",
            "train.lr=1; iterations 3",
            "foo.bar=1",
            "train.lr=0.1 # c",
            "train.lr=0.1\riterations 3",
            "train.lr=0.1\niterations 3",
            "train.lr=0.1\u{0}",
        ] {
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
