//! The commands around training runs: `compare` (and, below, `run`, `resume`).

use expc::run::compare as cmp;
use std::path::PathBuf;

pub fn compare(dirs: &[PathBuf], figure: Option<PathBuf>, json: bool) -> i32 {
    let runs = match cmp::load(dirs) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return 1;
        }
    };
    let lines = cmp::table(&runs);
    let stem = figure.unwrap_or_else(|| PathBuf::from("compare.png")).with_extension("");
    if let Err(e) = cmp::figure(&runs, &stem) {
        eprintln!("{e}");
        return 1;
    }
    if json {
        println!("{}", serde_json::to_string_pretty(&lines).unwrap_or_default());
    } else {
        print!("{}", cmp::render_table(&lines));
        println!("figure: {} and {}", stem.with_extension("png").display(), stem.with_extension("svg").display());
    }
    0
}
