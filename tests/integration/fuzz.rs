//! No input makes the parser, the resolver or `fmt` panic: bounded property tests that
//! CI runs (token soup, mutated real files, arbitrary bytes).

use crate::common::*;
use expc::source::FileId;
use proptest::prelude::*;
use std::path::Path;

const TOKENS: &[&str] = &[
    "experiment", "extends", "data", "model", "train", "set", "insert", "after", "remove", "repeat", "{", "}", ":", "=",
    "(", ")", "[", "]", ",", ";", "\n", " ", "#c\n", "\"s\"", "\"a.exp\"", "conv", "fc", "relu", "add", "in", "input",
    "3x32x32", "5x5", "0", "1", "-1", "1e-4", "1/0", "0/0", "99999999999999999999", "true", "x", "conv*", "from",
    "init", "gaussian", "msra", "lr", "iterations", "dataset", "cifar10", "batch", "policy", "multistep", "é", "\\",
];

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
    fn token_soup_never_panics(tokens in proptest::collection::vec(0..TOKENS.len(), 0..60)) {
        let text: String = tokens.iter().map(|&i| TOKENS[i]).collect::<Vec<_>>().join(" ");
        check_text(&text);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,200}") {
        check_text(&text);
    }

    #[test]
    fn mutated_experiments_never_panic(file in 0usize..64, cuts in proptest::collection::vec((0usize..4000, 0usize..20, 0..TOKENS.len()), 1..6)) {
        let files = corpus();
        let mut text = files[file % files.len()].clone();
        for (at, len, tok) in cuts {
            let mut at = at % (text.len() + 1);
            while !text.is_char_boundary(at) { at -= 1; }
            let mut end = (at + len).min(text.len());
            while !text.is_char_boundary(end) { end -= 1; }
            text.replace_range(at..end, TOKENS[tok]);
        }
        check_text(&text);
    }
}
