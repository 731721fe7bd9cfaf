//! Run artefacts: checkpoints, metrics, figures.

use expc::run::{checkpoint, metrics, plot};

fn tmp(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("expc-run-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&d).expect("mkdir");
    d
}

#[test]
fn checkpoint_round_trip_and_corruption() {
    let d = tmp("ckpt");
    let mut t = checkpoint::Tensors::default();
    t.insert("conv1.weight", vec![2, 1, 2, 2], (0..8).map(|i| i as f32 * 0.5 - 1.0).collect());
    t.insert("conv1.bias", vec![2], vec![0.25, -0.75]);
    t.metadata.insert("iteration".into(), "42".into());
    let p = d.join("ckpt.safetensors");
    checkpoint::save(&p, &t).expect("saves");
    assert_eq!(checkpoint::load(&p).expect("loads"), t);
    // Truncated file: a clear error, not a panic.
    let bytes = std::fs::read(&p).expect("read");
    std::fs::write(&p, &bytes[..bytes.len() / 2]).expect("write");
    let e = checkpoint::load(&p).expect_err("corrupt");
    assert_eq!(e.code, "E0503");
    assert!(e.message.contains("ckpt.safetensors") && e.message.contains("corrupt"), "{e}");
    std::fs::remove_dir_all(&d).ok();
}

fn rows() -> Vec<metrics::Row> {
    (0..5)
        .map(|i| metrics::Row {
            iteration: i * 10,
            epoch: i as f64 * 0.5,
            lr: 0.01,
            train_loss: Some(2.3 - i as f64 * 0.3),
            test_loss: (i % 2 == 0).then_some(2.4 - i as f64 * 0.3),
            test_accuracy: (i % 2 == 0).then_some(0.1 + i as f64 * 0.15),
            elapsed_s: i as f64,
            img_per_s: Some(1000.0),
        })
        .collect()
}

#[test]
fn metrics_round_trip_and_resume_truncates() {
    let d = tmp("metrics");
    let p = d.join("metrics.csv");
    let mut w = metrics::Writer::create(&p).expect("create");
    for r in rows() {
        w.write(&r).expect("write");
    }
    drop(w);
    let back = metrics::read(&p).expect("read");
    assert_eq!(back.len(), 5);
    assert_eq!(back[2].test_accuracy, Some(0.4));
    assert_eq!(back[1].test_loss, None);
    let mut w = metrics::Writer::resume(&p, 20).expect("resume");
    w.write(&rows()[3]).expect("write");
    drop(w);
    let back = metrics::read(&p).expect("read");
    assert_eq!(back.iter().map(|r| r.iteration).collect::<Vec<_>>(), [0, 10, 20, 30]);
    std::fs::write(&p, "not,a,metrics,file\n").expect("write");
    assert_eq!(metrics::read(&p).expect_err("bad header").code, "E0501");
    std::fs::remove_dir_all(&d).ok();
}

#[test]
fn figures_are_written() {
    let d = tmp("plots");
    let r = rows();
    let series =
        [plot::Series { label: "a".into(), rows: &r, evaluated_on: "test" }, plot::Series { label: "b".into(), rows: &r[..3], evaluated_on: "validation" }];
    plot::curves(&series, "test", &d.join("curves")).expect("curves");
    for f in ["curves.png", "curves.svg"] {
        let len = std::fs::metadata(d.join(f)).expect("exists").len();
        assert!(len > 1000, "{f} is {len} bytes");
    }
    let w: Vec<f32> = (0..6 * 3 * 5 * 5).map(|i| ((i * 37) % 11) as f32).collect();
    plot::filters(&w, &[6, 3, 5, 5], &d.join("filters.png")).expect("filters");
    let img = image::open(d.join("filters.png")).expect("png").to_rgb8();
    assert!(img.width() > 100 && img.height() > 50);
    assert!(plot::filters(&w, &[6, 3, 5], &d.join("x.png")).is_err());
    std::fs::remove_dir_all(&d).ok();
}
