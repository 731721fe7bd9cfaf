//! Stage 1: every experiment's syntax tree, snapshotted.

use crate::common::*;
use crate::with_snapshots;
use expc::source::FileId;

#[test]
fn ast_of_every_experiment() {
    let files = experiment_files();
    assert!(files.len() >= 12, "expected the shipped experiments, found {files:?}");
    for f in files {
        let text = std::fs::read_to_string(repo().join(&f)).expect("readable");
        let ast = expc::syntax::parse(FileId(0), &text).unwrap_or_else(|d| panic!("{}: {d:?}", f.display()));
        let name = format!("ast@{}", f.display().to_string().replace(['/', '\\'], "__"));
        with_snapshots!({
            insta::assert_yaml_snapshot!(name, ast);
        });
    }
}

#[test]
fn numbers_keep_their_text_and_value() {
    let ast = expc::syntax::parse(FileId(0), "train { lr 1/255 }\n").expect("parses");
    let yaml = serde_yaml::to_string(&ast).expect("serializes");
    assert!(yaml.contains("text: 1/255"), "{yaml}");
    assert!(yaml.contains("value: 0.00392156862745098"), "{yaml}");
}
