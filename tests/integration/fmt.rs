//! `expc fmt`: round-trips every experiment and is idempotent.

use crate::common::*;
use expc::source::FileId;

/// The syntax tree of `text` as JSON with every span removed.
fn without_spans(text: &str) -> serde_json::Value {
    expc::syntax::without_spans(&expc::syntax::parse(FileId(0), text).expect("parses"))
}

fn format(text: &str) -> String {
    let ast = expc::syntax::parse(FileId(0), text).expect("parses");
    expc::syntax::format(text, &ast)
}

#[test]
fn every_experiment_round_trips_and_is_canonical() {
    for f in experiment_files() {
        let text = std::fs::read_to_string(repo().join(&f)).expect("readable");
        let once = format(&text);
        assert_eq!(without_spans(&once), without_spans(&text), "{}: fmt changed the meaning", f.display());
        assert_eq!(format(&once), once, "{}: fmt is not idempotent", f.display());
        assert_eq!(once, text, "{}: the shipped file is not formatted (run `expc fmt`)", f.display());
    }
}

#[test]
fn messy_input_is_laid_out_and_keeps_its_comments() {
    let messy = "# top comment\nexperiment   x   # trailing\n\n\n\ndata{dataset cifar10;batch 64}\nmodel {\n      input 3x32x32 # the input\n\n\n  # a block\n  repeat 2 { fc 10\n relu }\n}\ntrain { lr 0.1 ; iterations 5 }\n# end\n";
    let once = format(messy);
    insta::assert_snapshot!(once, @r"
    # top comment
    experiment x  # trailing

    data {
      dataset cifar10
      batch 64
    }

    model {
      input 3x32x32  # the input

      # a block
      repeat 2 {
        fc 10
        relu
      }
    }

    train {
      lr 0.1
      iterations 5
    }
    # end
    ");
    assert_eq!(format(&once), once);
    assert_eq!(without_spans(&once), without_spans(messy));
}
