//! No input makes the parser, the resolver or `fmt` panic: bounded property tests that
//! CI runs (token soup, mutated real files, arbitrary bytes).

use crate::common::*;
use expc::source::FileId;
use proptest::prelude::*;
use std::path::Path;

fn check_text(text: &str) {
    let _ = expc::syntax::parse(FileId(0), text).map(|ast| expc::syntax::format(text, &ast));
    // Resolution with extends pointing back at the same text exercises cycles and merging.
    let read = |_: &Path| Ok::<String, std::io::Error>(text.to_string());
    // The whole front half: resolve, graph, shapes, and the report when it checks.
    let c = expc::compile::compile_text("fuzz.exp", text, Path::new("."), &read);
    if c.ok() {
        let (e, g, a) = (c.experiment.as_ref().unwrap(), c.graph.as_ref().unwrap(), c.analysis.as_ref().unwrap());
        let _ = expc::report::report(e, g, a, 3).text();
    }
}

fn corpus() -> Vec<String> {
    experiment_files().iter().map(|f| std::fs::read_to_string(repo().join(f)).expect("readable")).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, ..ProptestConfig::default() })]

    #[test]
    fn token_soup_never_panics(tokens in proptest::collection::vec(0..SPEC_TOKENS.len(), 0..60)) {
        let text: String = tokens.iter().map(|&i| SPEC_TOKENS[i]).collect::<Vec<_>>().join(" ");
        check_text(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check_text(&text);
    }

    #[test]
    fn mutated_experiments_never_panic(file in 0usize..64, cuts in proptest::collection::vec((0usize..4000, 0usize..20, 0..SPEC_TOKENS.len()), 1..6)) {
        let files = corpus();
        let mut text = files[file % files.len()].clone();
        for (at, len, tok) in cuts {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + len).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(at..end, SPEC_TOKENS[tok]);
        }
        check_text(&text);
    }
}

/// The loaders: metrics files, checkpoints, run records, expc.toml, `--set` values, CIFAR and
/// idx data. Returns normally for every input (errors are fine, panics are not).
fn check_loaders(bytes: &[u8], dir: &Path) {
    use expc::run::{checkpoint, metrics, run_folder, sweep};
    let text = String::from_utf8_lossy(bytes);
    let _ = sweep::parse_assignment(&text);
    let _ = sweep::parse_sweep(&text);
    let mut i = vec![];
    let mut l = vec![];
    let _ = expc::data::parse_cifar_records(bytes, Path::new("f.bin"), &mut i, &mut l);
    let _ = expc::data::parse_idx(bytes, Path::new("f.idx"), expc::data::IDX_IMAGES_MAGIC, "");
    let _ = expc::data::parse_idx(bytes, Path::new("f.idx"), expc::data::IDX_LABELS_MAGIC, "");
    for (name, content) in [("metrics.csv", [metrics::HEADER.as_bytes(), b"\n", bytes].concat()), ("metrics.csv", bytes.to_vec())] {
        std::fs::write(dir.join(name), &content).expect("write");
        let _ = metrics::read(&dir.join(name));
        let _ = metrics::Writer::resume(&dir.join(name), 20);
    }
    std::fs::write(dir.join("c.safetensors"), bytes).expect("write");
    let _ = checkpoint::load(&dir.join("c.safetensors"));
    std::fs::write(dir.join("run.json"), bytes).expect("write");
    if let Ok(r) = run_folder::RunRecord::load(dir) {
        let _ = r.resolve();
    }
    std::fs::write(dir.join("expc.toml"), bytes).expect("write");
    let mut sources = expc::source::SourceMap::new();
    let _ = expc::config::Settings::load(None, dir, &|_| None, &expc::config::Overrides::default(), &mut sources);
}

/// A checkpoint with a few bytes changed: the checksum (or the format) must catch it.
fn mutated_checkpoint(cuts: &[(usize, u8)]) -> Vec<u8> {
    let mut t = expc::run::checkpoint::Tensors::default();
    t.insert("fc1.weight", vec![2, 3], (0..6).map(|i| i as f32 * 0.25).collect());
    t.insert("fc1.bias", vec![2], vec![0.5, -0.5]);
    t.metadata.insert("iteration".into(), "10".into());
    let dir = std::env::temp_dir().join(format!("expc-fuzz-ckpt-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let p = dir.join("c.safetensors");
    expc::run::checkpoint::save(&p, &t).expect("save");
    let mut b = std::fs::read(&p).expect("read");
    for &(at, x) in cuts {
        let n = b.len();
        b[at % n] ^= x;
    }
    let _ = std::fs::remove_dir_all(&dir);
    b
}

/// The long fuzz run, off by default: `EXPC_FUZZ_SECS=600 cargo test --test integration
/// long_fuzz -- --nocapture` generates inputs for the parser, `fmt`, the resolver, the checker
/// and the loaders until the time is up, then prints the number of executions.
#[test]
fn long_fuzz() {
    use proptest::test_runner::{Config, TestRunner};
    let Some(secs) = std::env::var("EXPC_FUZZ_SECS").ok().and_then(|s| s.parse::<u64>().ok()) else {
        return;
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(secs);
    let dir = std::env::temp_dir().join(format!("expc-fuzz-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("mkdir");
    let files = corpus();
    let counts = std::cell::Cell::new([0u64; 5]);
    let bump = |k: usize| {
        let mut c = counts.get();
        c[k] += 1;
        counts.set(c);
    };
    use proptest::strategy::{Strategy, ValueTree};
    let mut runner = TestRunner::new_with_rng(Config::default(), proptest::test_runner::TestRng::deterministic_rng(Default::default()));
    let soup = proptest::collection::vec(0..SPEC_TOKENS.len(), 0..80);
    let mutations = (0usize..64, proptest::collection::vec((0usize..8000, 0usize..30, 0..SPEC_TOKENS.len()), 1..8));
    let arbitrary = "\\PC{0,300}";
    let bytes = proptest::collection::vec(proptest::num::u8::ANY, 0..4000);
    let ckpt_cuts = proptest::collection::vec((0usize..4096, 1u8..=255), 1..6);
    while std::time::Instant::now() < deadline {
        for _ in 0..64 {
            let tokens = soup.new_tree(&mut runner).expect("value").current();
            let text: String = tokens.iter().map(|&i| SPEC_TOKENS[i]).collect::<Vec<_>>().join(" ");
            check_text(&text);
            bump(0);
        }
        for _ in 0..16 {
            let (file, cuts) = mutations.new_tree(&mut runner).expect("value").current();
            let mut text = files[file % files.len()].clone();
            for (at, len, tok) in cuts {
                let mut at = at % (text.len() + 1);
                while !text.is_char_boundary(at) {
                    at -= 1;
                }
                let mut end = (at + len).min(text.len());
                while !text.is_char_boundary(end) {
                    end -= 1;
                }
                text.replace_range(at..end, SPEC_TOKENS[tok]);
            }
            check_text(&text);
            bump(1);
        }
        for _ in 0..32 {
            let text = arbitrary.new_tree(&mut runner).expect("value").current();
            check_text(&text);
            bump(2);
        }
        for _ in 0..8 {
            let b = bytes.new_tree(&mut runner).expect("value").current();
            check_loaders(&b, &dir);
            bump(3);
        }
        for _ in 0..8 {
            let cuts = ckpt_cuts.new_tree(&mut runner).expect("value").current();
            let b = mutated_checkpoint(&cuts);
            std::fs::write(dir.join("m.safetensors"), &b).expect("write");
            // `load` (for foreign files too) may fail or succeed, but never panics.
            let _ = expc::run::checkpoint::load(&dir.join("m.safetensors"));
            if let Ok(t) = expc::run::checkpoint::load_verified(&dir.join("m.safetensors")) {
                // Anything that loads must be what was saved: the checksum caught every change.
                assert_eq!(t.get("fc1.bias").map(|x| x.1.clone()), Some(vec![0.5, -0.5]));
            }
            bump(4);
        }
    }
    let c = counts.get();
    let total: u64 = c.iter().sum();
    println!(
        "long_fuzz: {total} executions in {secs} s (token soup {}, mutated experiments {}, arbitrary text {}, loaders {}, mutated checkpoints {})",
        c[0], c[1], c[2], c[3], c[4]
    );
    let _ = std::fs::remove_dir_all(&dir);
}
