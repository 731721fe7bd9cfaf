//! Stage: the engine as the user drives it — `expc gradcheck` on specs covering every op.

use crate::common::repo;
use std::process::Command;

fn gradcheck(file: &str) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_expc")).arg("gradcheck").arg(repo().join(file)).output().expect("expc runs");
    (out.status.success(), String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_image_op_passes_gradcheck() {
    let (ok, text) = gradcheck("tests/fixtures/every_op_image.exp");
    assert!(ok, "{text}");
    for t in ["c1.weight", "b1.weight", "b1.bias", "g.weight", "d.weight", "up.bias", "fc1.weight", "out.bias"] {
        assert!(text.contains(t), "{t} not checked:\n{text}");
    }
}

#[test]
fn every_sequence_op_passes_gradcheck() {
    let (ok, text) = gradcheck("tests/fixtures/every_op_sequence.exp");
    assert!(ok, "{text}");
    for t in ["r.weight_ih", "r.weight_hh", "l.weight_ih", "l.weight_hh", "l.bias", "step.weight"] {
        assert!(text.contains(t), "{t} not checked:\n{text}");
    }
}

#[test]
fn gradcheck_fails_above_its_tolerance() {
    let out = Command::new(env!("CARGO_BIN_EXE_expc"))
        .args(["gradcheck", "--tolerance", "1e-30"])
        .arg(repo().join("tests/fixtures/every_op_sequence.exp"))
        .output()
        .expect("expc runs");
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stdout).contains("FAIL"));
}
