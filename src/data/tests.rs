//! Tests of the data layer. They use synthetic data, small files generated in temporary folders and the
//! committed `data/mnist-small`; the checks against the real MNIST in `/work/shared/data/mnist` (or
//! `$EXPC_MNIST`) skip silently when it is absent.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::*;

// ---------------------------------------------------------------------------------------------------------
// helpers

/// A temporary folder removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_nanos()).unwrap_or(0);
        let p = std::env::temp_dir().join(format!("expc-data-{tag}-{}-{}-{nanos}", std::process::id(), N.fetch_add(1, Ordering::Relaxed)));
        std::fs::create_dir_all(&p).unwrap();
        TempDir(p)
    }
    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A configuration for the data layer's own tests (the data layer has no defaults: `expc` builds
/// its configuration from the resolved spec).
fn test_config(source: Source) -> DataConfig {
    DataConfig {
        source,
        train_batch: 64,
        test_batch: 256,
        scale: 1.0 / 255.0,
        mean: None,
        std: None,
        mean_image: false,
        pad: 0,
        crop: None,
        mirror: false,
        cutout: None,
        jitter: [0.0; 3],
        resized_crop: None,
        sequence_rows: false,
        shuffle: true,
        validation: 0,
        seed: 0,
        prefetch: 3,
        workers: 1,
        drop_last: false,
        limit_train: None,
        limit_test: None,
    }
}

fn gz(bytes: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(bytes).unwrap();
    e.finish().unwrap()
}

fn idx_images(n: usize, rows: usize, cols: usize, f: impl Fn(usize, usize) -> u8) -> Vec<u8> {
    let mut v = Vec::new();
    for x in [2051u32, n as u32, rows as u32, cols as u32] {
        v.extend_from_slice(&x.to_be_bytes());
    }
    for i in 0..n {
        for j in 0..rows * cols {
            v.push(f(i, j));
        }
    }
    v
}

fn idx_labels(labels: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    v.extend_from_slice(&2049u32.to_be_bytes());
    v.extend_from_slice(&(labels.len() as u32).to_be_bytes());
    v.extend_from_slice(labels);
    v
}

/// Writes a small MNIST-like folder: train raw (`n_train` images), test gzipped (`n_test`), 4x5 images.
fn write_mnist(dir: &Path, n_train: usize, n_test: usize) {
    let img = |i: usize, j: usize| ((i * 31 + j * 7) % 256) as u8;
    std::fs::write(dir.join("train-images-idx3-ubyte"), idx_images(n_train, 4, 5, img)).unwrap();
    let tl: Vec<u8> = (0..n_train).map(|i| (i % 10) as u8).collect();
    std::fs::write(dir.join("train-labels-idx1-ubyte"), idx_labels(&tl)).unwrap();
    std::fs::write(dir.join("t10k-images-idx3-ubyte.gz"), gz(&idx_images(n_test, 4, 5, |i, j| img(i + 100, j)))).unwrap();
    let vl: Vec<u8> = (0..n_test).map(|i| ((i + 3) % 10) as u8).collect();
    std::fs::write(dir.join("t10k-labels-idx1-ubyte.gz"), gz(&idx_labels(&vl))).unwrap();
}

/// A CIFAR record: label, then R, G, B planes with recognisable values.
fn cifar_record(label: u8, k: usize) -> Vec<u8> {
    let mut r = vec![label];
    for ch in 0..3 {
        for p in 0..1024 {
            r.push(((k * 13 + ch * 50 + p) % 256) as u8);
        }
    }
    r
}

/// Writes a CIFAR-10 binary folder with `per_file` records in each of the 6 files.
fn write_cifar(dir: &Path, per_file: usize) {
    let mut k = 0;
    let mut names: Vec<String> = (1..=5).map(|i| format!("data_batch_{i}.bin")).collect();
    names.push("test_batch.bin".into());
    for name in names {
        let mut bytes = Vec::new();
        for _ in 0..per_file {
            bytes.extend(cifar_record((k % 10) as u8, k));
            k += 1;
        }
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}

fn synth_config(train: usize, test: usize) -> DataConfig {
    let mut c = test_config(Source::Synthetic(SyntheticSpec::new([3, 8, 8], 4, train, test, 7)));
    c.train_batch = 16;
    c.test_batch = 10;
    c.seed = 11;
    c
}

fn msg(e: &DataError) -> String {
    e.to_string()
}

// ---------------------------------------------------------------------------------------------------------
// CIFAR-10

#[test]
fn cifar_loads_records_in_order_with_chw_planes() {
    let d = TempDir::new("cifar");
    write_cifar(d.path(), 3);
    let s = load_cifar10_with(d.path(), 3).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (15, 3));
    assert_eq!(s.train.shape, [3, 32, 32]);
    assert_eq!(s.train.classes, 10);
    assert_eq!(s.train.class_names[0], "airplane");
    assert_eq!(s.train.labels[..4], [0, 1, 2, 3]);
    assert_eq!(s.test.labels, vec![5, 6, 7]);
    // Record 4 (file 2, record 1): bytes 1.. of the record are the image as is.
    assert_eq!(s.train.image(4), &cifar_record(4, 4)[1..]);
    assert_eq!(s.test.image(2), &cifar_record(7, 17)[1..]);
}

#[test]
fn cifar_accepts_the_official_subfolder_and_meta_names() {
    let d = TempDir::new("cifar-sub");
    let sub = d.path().join("cifar-10-batches-bin");
    std::fs::create_dir_all(&sub).unwrap();
    write_cifar(&sub, 1);
    let names: String = (0..10).map(|i| format!("c{i}\n")).collect();
    std::fs::write(sub.join("batches.meta.txt"), names).unwrap();
    let s = load_cifar10_with(d.path(), 1).unwrap();
    assert_eq!(s.train.len(), 5);
    assert_eq!(s.train.class_names[9], "c9");
}

#[test]
fn cifar_truncated_file_names_file_record_and_offset() {
    let d = TempDir::new("cifar-trunc");
    write_cifar(d.path(), 2);
    let p = d.path().join("data_batch_3.bin");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.truncate(CIFAR_RECORD + 100);
    std::fs::write(&p, &bytes).unwrap();
    let e = load_cifar10_with(d.path(), 2).unwrap_err();
    assert!(matches!(e, DataError::Truncated { record: 1, offset: 3073, found_bytes: 3173, .. }), "{e:?}");
    let m = msg(&e);
    assert!(m.contains("data_batch_3.bin"), "{m}");
    assert!(m.contains("record 1") && m.contains("byte offset 3073") && m.contains("3073-byte records"), "{m}");
    assert!(m.contains("cifar-10-binary.tar.gz") && m.contains("data.cifar10"), "{m}");
}

#[test]
fn cifar_label_out_of_range_and_missing_and_empty() {
    let d = TempDir::new("cifar-bad");
    write_cifar(d.path(), 2);
    let p = d.path().join("test_batch.bin");
    let mut bytes = std::fs::read(&p).unwrap();
    bytes[CIFAR_RECORD] = 12;
    std::fs::write(&p, &bytes).unwrap();
    let m = msg(&load_cifar10_with(d.path(), 2).unwrap_err());
    assert!(m.contains("test_batch.bin") && m.contains("record 1") && m.contains("byte offset 3073"), "{m}");
    assert!(m.contains("found 12") && m.contains("0..9"), "{m}");

    std::fs::remove_file(d.path().join("data_batch_4.bin")).unwrap();
    let e = load_cifar10_with(d.path(), 2).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }));
    let m = msg(&e);
    assert!(m.contains("data_batch_4.bin") && m.contains("not found") && m.contains("cifar-10-binary.tar.gz"), "{m}");

    let e = load_cifar10_with(&d.path().join("nowhere"), 2).unwrap_err();
    assert!(msg(&e).contains("nowhere") && msg(&e).contains("cifar-10-binary.tar.gz"), "{e}");

    let mut imgs = Vec::new();
    let mut labs = Vec::new();
    let e = parse_cifar_records(&[], Path::new("x.bin"), &mut imgs, &mut labs).unwrap_err();
    assert!(msg(&e).contains("x.bin") && msg(&e).contains("empty"));
}

#[test]
fn cifar_file_cut_at_a_record_boundary_is_refused() {
    let d = TempDir::new("cifar-boundary");
    write_cifar(d.path(), 3);
    let p = d.path().join("data_batch_2.bin");
    let bytes = std::fs::read(&p).unwrap();
    std::fs::write(&p, &bytes[..2 * CIFAR_RECORD]).unwrap();
    let e = load_cifar10_with(d.path(), 3).unwrap_err();
    assert!(matches!(e, DataError::Truncated { record: 2, .. }), "{e:?}");
    let m = msg(&e);
    assert!(m.contains("data_batch_2.bin") && m.contains("3 records of 3073 bytes"), "{m}");
    // The official layout: 10,000 records per file, so a small copy is refused by name.
    let m = msg(&load_cifar10(d.path()).unwrap_err());
    assert!(m.contains("data_batch_1.bin") && m.contains("10000 records"), "{m}");
    // One record too many.
    std::fs::write(&p, [bytes.clone(), bytes[..CIFAR_RECORD].to_vec()].concat()).unwrap();
    let e = load_cifar10_with(d.path(), 3).unwrap_err();
    assert!(matches!(e, DataError::TrailingBytes { .. }), "{e:?}");
}

#[test]
fn a_data_file_that_is_a_folder_or_fifo_is_not_reported_as_missing() {
    let d = TempDir::new("cifar-dir");
    write_cifar(d.path(), 1);
    let p = d.path().join("data_batch_3.bin");
    std::fs::remove_file(&p).unwrap();
    std::fs::create_dir(&p).unwrap();
    let m = msg(&load_cifar10_with(d.path(), 1).unwrap_err());
    assert!(m.contains("data_batch_3.bin") && m.contains("is a folder") && !m.contains("not found"), "{m}");
    #[cfg(unix)]
    {
        let m_dir = TempDir::new("mnist-fifo");
        let fifo = m_dir.path().join("train-images-idx3-ubyte");
        let ok = std::process::Command::new("mkfifo").arg(&fifo).status().is_ok_and(|s| s.success());
        if ok {
            let m = msg(&load_mnist(m_dir.path()).unwrap_err());
            assert!(m.contains("train-images-idx3-ubyte") && m.contains("not a regular file"), "{m}");
        }
    }
}

// ---------------------------------------------------------------------------------------------------------
// MNIST / idx

#[test]
fn mnist_loads_raw_and_gz() {
    let d = TempDir::new("mnist");
    write_mnist(d.path(), 7, 3);
    let s = load_mnist(d.path()).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (7, 3));
    assert_eq!(s.train.shape, [1, 4, 5]);
    assert_eq!(s.train.labels, vec![0, 1, 2, 3, 4, 5, 6]);
    assert_eq!(s.test.labels, vec![3, 4, 5]);
    assert_eq!(s.train.image(2)[3], (2 * 31 + 3 * 7) as u8);
    assert_eq!(s.test.image(1)[19], ((101 * 31 + 19 * 7) % 256) as u8);
}

#[test]
fn mnist_alternative_spelling_is_found() {
    let d = TempDir::new("mnist-alt");
    write_mnist(d.path(), 2, 2);
    std::fs::rename(d.path().join("train-images-idx3-ubyte"), d.path().join("train-images.idx3-ubyte")).unwrap();
    assert_eq!(load_mnist(d.path()).unwrap().train.len(), 2);
}

#[test]
fn mnist_missing_file_names_it_and_says_how_to_get_it() {
    let d = TempDir::new("mnist-missing");
    write_mnist(d.path(), 2, 2);
    std::fs::remove_file(d.path().join("t10k-labels-idx1-ubyte.gz")).unwrap();
    let e = load_mnist(d.path()).unwrap_err();
    let m = msg(&e);
    assert!(m.contains("t10k-labels-idx1-ubyte") && m.contains("not found"), "{m}");
    assert!(m.contains("mnist-small") && m.contains("data.mnist"), "{m}");
}

#[test]
fn idx_bad_magic_truncated_trailing() {
    let p = Path::new("train-images-idx3-ubyte");
    // Labels file where images are expected.
    let e = parse_idx(&idx_labels(&[1, 2]), p, 2051, "").unwrap_err();
    assert!(matches!(e, DataError::BadMagic { expected: 2051, found: 2049, .. }));
    let m = msg(&e);
    assert!(m.contains("train-images-idx3-ubyte") && m.contains("byte offset 0") && m.contains("labels file"), "{m}");

    // Header says 5 images of 4x5, only 3.5 present.
    let mut bytes = idx_images(5, 4, 5, |_, _| 1);
    bytes.truncate(16 + 3 * 20 + 10);
    let e = parse_idx(&bytes, p, 2051, "").unwrap_err();
    assert!(matches!(e, DataError::Truncated { expected_bytes: 116, found_bytes: 86, record: 3, offset: 76, .. }), "{e:?}");
    let m = msg(&e);
    assert!(m.contains("record 3") && m.contains("byte offset 76") && m.contains("5 records of 4x5"), "{m}");

    // Same through gzip: the message says the sizes are after decompression.
    let e = parse_idx(&gz(&bytes), Path::new("a.gz"), 2051, "").unwrap_err();
    assert!(msg(&e).contains("after decompression") && msg(&e).contains("record 3"), "{e}");

    let mut bytes = idx_images(2, 4, 5, |_, _| 1);
    bytes.extend([9, 9, 9]);
    let e = parse_idx(&bytes, p, 2051, "").unwrap_err();
    assert!(matches!(e, DataError::TrailingBytes { expected_bytes: 56, found_bytes: 59, .. }), "{e:?}");

    // Zero rows.
    let bytes = idx_images(2, 0, 5, |_, _| 1);
    let e = parse_idx(&bytes, p, 2051, "").unwrap_err();
    assert!(matches!(e, DataError::BadHeader { offset: 8, .. }), "{e:?}");

    // gzip is recognised by content, whatever the name.
    let ok = parse_idx(&gz(&idx_labels(&[4, 2])), Path::new("plain-name"), 2049, "").unwrap();
    assert_eq!((ok.dims, ok.data), (vec![2], vec![4, 2]));

    // Short header.
    let e = parse_idx(&[0, 0, 8], p, 2051, "").unwrap_err();
    assert!(matches!(e, DataError::Truncated { found_bytes: 3, .. }), "{e:?}");
}

#[test]
fn idx_bad_gzip() {
    let raw = idx_labels(&[1, 2, 3]);
    // Named .gz but not gzip.
    let e = parse_idx(&raw, Path::new("train-labels-idx1-ubyte.gz"), 2049, MNIST_HINT).unwrap_err();
    assert!(matches!(e, DataError::BadGzip { .. }), "{e:?}");
    let m = msg(&e);
    assert!(m.contains("train-labels-idx1-ubyte.gz") && m.contains("1f 8b") && m.contains("00 00 08 01"), "{m}");
    // Cut-off gzip stream.
    let z = gz(&idx_images(20, 4, 5, |i, j| (i * j) as u8));
    let e = parse_idx(&z[..z.len() / 2], Path::new("x.gz"), 2051, "").unwrap_err();
    assert!(matches!(e, DataError::BadGzip { .. }), "{e:?}");
    assert!(msg(&e).contains("x.gz") && msg(&e).contains("decompressed bytes"), "{e}");
    // Corrupted deflate data / checksum.
    let mut z2 = z.clone();
    let mid = z2.len() / 2;
    z2[mid] ^= 0xff;
    z2[mid + 1] ^= 0x55;
    assert!(parse_idx(&z2, Path::new("x.gz"), 2051, "").is_err());
}

#[test]
fn mnist_count_mismatch_and_label_range() {
    let d = TempDir::new("mnist-count");
    write_mnist(d.path(), 4, 2);
    std::fs::write(d.path().join("train-labels-idx1-ubyte"), idx_labels(&[1, 2, 3])).unwrap();
    let e = load_mnist(d.path()).unwrap_err();
    assert!(matches!(e, DataError::CountMismatch { n_images: 4, n_labels: 3, .. }), "{e:?}");
    let m = msg(&e);
    assert!(m.contains("train-images-idx3-ubyte") && m.contains("train-labels-idx1-ubyte"), "{m}");

    std::fs::write(d.path().join("train-labels-idx1-ubyte"), idx_labels(&[1, 2, 10, 3])).unwrap();
    let m = msg(&load_mnist(d.path()).unwrap_err());
    assert!(m.contains("train-labels-idx1-ubyte") && m.contains("record 2") && m.contains("byte offset 10"), "{m}");
}

// ---------------------------------------------------------------------------------------------------------
// never panic on file content

mod no_panic {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

        #[test]
        fn idx_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_idx(&bytes, Path::new("f"), 2051, "");
            let _ = parse_idx(&bytes, Path::new("f.gz"), 2049, "");
        }

        #[test]
        fn idx_random_header_then_bytes(dims in proptest::collection::vec(any::<u32>(), 3), tail in proptest::collection::vec(any::<u8>(), 0..200), gzip in any::<bool>()) {
            let mut b = 2051u32.to_be_bytes().to_vec();
            for d in dims { b.extend(d.to_be_bytes()); }
            b.extend(tail);
            let b = if gzip { gz(&b) } else { b };
            let _ = parse_idx(&b, Path::new("f"), 2051, "");
        }

        #[test]
        fn gzip_random_flips(flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..6)) {
            let mut z = gz(&idx_images(3, 4, 5, |i, j| (i + j) as u8));
            let n = z.len();
            for (at, x) in flips { z[at % n] ^= x; }
            let _ = parse_idx(&z, Path::new("f.gz"), 2051, "");
        }

        #[test]
        fn cifar_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..7000)) {
            let (mut i, mut l) = (Vec::new(), Vec::new());
            let r = parse_cifar_records(&bytes, Path::new("f"), &mut i, &mut l);
            if r.is_ok() { prop_assert_eq!(i.len(), l.len() * 3072); }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 60, ..ProptestConfig::default() })]

        /// Any configuration either is refused with a `Config` error or streams batches of the promised size.
        #[test]
        fn random_configs_error_or_stream(
            c in 1usize..4, h in 1usize..7, w in 1usize..7, pad in 0usize..4,
            crop in proptest::option::of((0usize..12, 0usize..12)), mirror in any::<bool>(), seq in any::<bool>(),
            batch in 0usize..9, n in 1usize..12, drop_last in any::<bool>(), start in 0u64..50,
            mean_image in any::<bool>(), workers in 0usize..4,
            cutout in proptest::option::of((0usize..12, 0usize..12)),
            jitter in proptest::array::uniform3(prop_oneof![Just(0.0f32), 0.0f32..1.0, Just(1.0f32), Just(1.5f32), Just(-0.1f32), Just(f32::NAN)]),
            resized_crop in proptest::option::of(prop_oneof![Just(1.0f32), 0.01f32..1.0, Just(0.0f32), Just(2.0f32), Just(f32::NAN)]),
        ) {
            let spec = SyntheticSpec::new([c, h, w], 3, n, 5, 1);
            let mut cfg = test_config(Source::Synthetic(spec));
            cfg.pad = pad;
            cfg.crop = crop.map(|(a, b)| [a, b]);
            cfg.mirror = mirror;
            cfg.sequence_rows = seq;
            cfg.train_batch = batch;
            cfg.drop_last = drop_last;
            cfg.mean_image = mean_image;
            cfg.workers = workers;
            cfg.cutout = cutout.map(|(a, b)| [a, b]);
            cfg.jitter = jitter;
            cfg.resized_crop = resized_crop;
            match Pipeline::load(&cfg) {
                Err(e) => prop_assert!(matches!(e, DataError::Config { .. }), "{:?}", e),
                Ok(p) => {
                    for b in p.train_stream(start).take(3) {
                        prop_assert!(b.n >= 1 && b.n <= batch);
                        prop_assert_eq!(b.inputs.len(), b.n * p.sample_len());
                        prop_assert!(b.inputs.iter().all(|v| v.is_finite()));
                    }
                    let total: usize = p.test_stream().map(|b| b.n).sum();
                    prop_assert_eq!(total, 5);
                }
            }
        }
    }

    #[test]
    fn every_truncation_of_valid_files_is_an_error_not_a_panic() {
        let img = idx_images(3, 4, 5, |i, j| (i * j) as u8);
        let z = gz(&img);
        for cut in 0..img.len() {
            assert!(parse_idx(&img[..cut], Path::new("f"), 2051, "").is_err());
        }
        for cut in 0..z.len() {
            assert!(parse_idx(&z[..cut], Path::new("f"), 2051, "").is_err(), "cut {cut}");
        }
        let rec: Vec<u8> = (0..2).flat_map(|k| cifar_record(k as u8, k)).collect();
        for cut in 0..rec.len() {
            let (mut i, mut l) = (Vec::new(), Vec::new());
            let r = parse_cifar_records(&rec[..cut], Path::new("f"), &mut i, &mut l);
            assert_eq!(r.is_ok(), cut == CIFAR_RECORD, "cut {cut}");
        }
    }

    #[test]
    fn garbage_files_in_folders() {
        let d = TempDir::new("garbage");
        for name in MNIST_FILES {
            std::fs::write(d.path().join(name), b"\x00\x00\x08\x03garbage").unwrap();
        }
        assert!(load_mnist(d.path()).is_err());
        std::fs::write(d.path().join("data_batch_1.bin"), vec![0u8; 5]).unwrap();
        assert!(load_cifar10(d.path()).is_err());
        let cls = d.path().join("img/a");
        std::fs::create_dir_all(&cls).unwrap();
        std::fs::write(cls.join("broken.png"), b"\x89PNG\r\n\x1a\nnot really").unwrap();
        let e = load_folder(&d.path().join("img"), [1, 2, 2], 0.0, false, 0).unwrap_err();
        assert!(matches!(e, DataError::ImageDecode { .. }) && msg(&e).contains("broken.png"), "{e:?}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// image folders

fn write_png_rgb(path: &Path, w: u32, h: u32, f: impl Fn(u32, u32) -> [u8; 3]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb(f(x, y)));
    img.save(path).unwrap();
}

#[test]
fn folder_train_test_layout_sorted_classes_chw() {
    let d = TempDir::new("folder");
    let r = d.path();
    // Classes deliberately created out of order; "zebra" sorts last.
    write_png_rgb(&r.join("train/zebra/b.png"), 3, 2, |x, y| [x as u8, y as u8, 200]);
    write_png_rgb(&r.join("train/zebra/a.png"), 3, 2, |_, _| [1, 2, 3]);
    write_png_rgb(&r.join("train/ant/x.png"), 3, 2, |_, _| [9, 9, 9]);
    write_png_rgb(&r.join("test/zebra/c.png"), 3, 2, |_, _| [5, 6, 7]);
    std::fs::write(r.join("train/ant/notes.txt"), "ignored").unwrap();
    let s = load_folder(r, [3, 2, 3], 0.0, false, 0).unwrap();
    assert_eq!(s.train.class_names, vec!["ant", "zebra"]);
    assert_eq!(s.train.labels, vec![0, 1, 1]);
    assert_eq!(s.test.labels, vec![1]);
    assert_eq!(s.train.image(1), &[1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3]);
    // b.png: R plane = x, G plane = y, B = 200.
    assert_eq!(s.train.image(2), &[0, 1, 2, 0, 1, 2, 0, 0, 0, 1, 1, 1, 200, 200, 200, 200, 200, 200]);
    // Grey view of the same files.
    let g = load_folder(r, [1, 2, 3], 0.0, false, 0).unwrap();
    assert_eq!(g.train.shape, [1, 2, 3]);
    assert_eq!(g.train.image(0), &[9; 6]);
}

#[test]
fn folder_wrong_size_names_file_unless_resizing() {
    let d = TempDir::new("folder-size");
    let r = d.path();
    write_png_rgb(&r.join("cat/ok.png"), 4, 4, |_, _| [10, 20, 30]);
    write_png_rgb(&r.join("dog/big.png"), 6, 5, |_, _| [10, 20, 30]);
    let e = load_folder(r, [3, 4, 4], 0.0, false, 0).unwrap_err();
    assert!(matches!(e, DataError::ImageSize { found_w: 6, found_h: 5, .. }), "{e:?}");
    let m = msg(&e);
    assert!(m.contains("big.png") && m.contains("expected 4x4") && m.contains("found 6x5"), "{m}");
    let s = load_folder(r, [3, 4, 4], 0.0, true, 0).unwrap();
    assert_eq!(s.train.len(), 2);
    assert!(s.train.image(1)[..16].iter().all(|&p| p == 10));
}

#[test]
fn folder_fraction_split_is_stratified_and_seeded() {
    let d = TempDir::new("folder-frac");
    let r = d.path();
    for c in ["a", "b"] {
        for i in 0..10 {
            write_png_rgb(&r.join(format!("{c}/{i:02}.png")), 2, 2, |_, _| [i as u8, 0, 0]);
        }
    }
    let s = load_folder(r, [3, 2, 2], 0.3, false, 5).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (14, 6));
    assert_eq!(s.test.label_histogram(), vec![3, 3]);
    let again = load_folder(r, [3, 2, 2], 0.3, false, 5).unwrap();
    assert_eq!(s, again);
    let e = load_folder(&r.join("missing"), [3, 2, 2], 0.3, false, 5).unwrap_err();
    assert!(matches!(e, DataError::Missing { .. }) && msg(&e).contains("missing"));
    let e = load_folder(r, [2, 2, 2], 0.3, false, 5).unwrap_err();
    assert!(matches!(e, DataError::Config { .. }));
}

#[test]
fn folder_test_class_unknown_to_train_is_an_error() {
    let d = TempDir::new("folder-unknown");
    let r = d.path();
    write_png_rgb(&r.join("train/a/1.png"), 2, 2, |_, _| [0, 0, 0]);
    write_png_rgb(&r.join("test/b/1.png"), 2, 2, |_, _| [0, 0, 0]);
    let m = msg(&load_folder(r, [3, 2, 2], 0.0, false, 0).unwrap_err());
    assert!(m.contains("\"b\"") && m.contains("training classes"), "{m}");
}

// ---------------------------------------------------------------------------------------------------------
// synthetic

#[test]
fn synthetic_is_seeded_balanced_and_learnable() {
    let spec = SyntheticSpec::new([3, 8, 8], 5, 500, 200, 3);
    let a = synthetic_split(&spec).unwrap();
    assert_eq!(a, synthetic_split(&spec).unwrap());
    assert_ne!(a.train, synthetic(&SyntheticSpec { seed: 4, ..spec.clone() }).unwrap());
    assert_eq!(a.train.label_histogram(), vec![100; 5]);
    assert_ne!(a.train.images[..192], a.test.images[..192]);
    // Nearest class mean (fitted on train) classifies the test set well: the classes are learnable.
    let n = a.train.sample_len();
    let mut means = vec![0f32; 5 * n];
    for i in 0..a.train.len() {
        let l = a.train.labels[i] as usize;
        for (m, &p) in means[l * n..(l + 1) * n].iter_mut().zip(a.train.image(i)) {
            *m += p as f32 / 100.0;
        }
    }
    let correct = (0..a.test.len())
        .filter(|&i| {
            let x = a.test.image(i);
            let dist = |c: usize| -> f32 { means[c * n..(c + 1) * n].iter().zip(x).map(|(m, &p)| (m - p as f32).powi(2)).sum() };
            let best = (0..5).min_by(|&p, &q| dist(p).total_cmp(&dist(q))).unwrap();
            best == a.test.labels[i] as usize
        })
        .count();
    assert!(correct >= 190, "nearest-mean accuracy {correct}/200");
    // Not trivially constant: pixels vary within a class.
    assert_ne!(a.train.image(0), a.train.image(5));
    assert!(synthetic(&SyntheticSpec::new([0, 8, 8], 5, 10, 10, 0)).is_err());
    assert!(synthetic(&SyntheticSpec::new([1, 8, 8], 0, 10, 10, 0)).is_err());
}

// ---------------------------------------------------------------------------------------------------------
// preprocessing and augmentation

#[test]
fn preprocess_scale_mean_std_and_mean_image() {
    let mut c = synth_config(40, 10);
    c.mean = Some(vec![0.5, 0.25, 0.0]);
    c.std = Some(vec![0.5]);
    let p = Pipeline::load(&c).unwrap();
    let mut out = vec![0f32; p.sample_len()];
    let px = p.test.image(0).to_vec();
    let mut t = p.test_stream();
    let b = t.next().unwrap();
    out.copy_from_slice(&b.inputs[..p.sample_len()]);
    for (i, (&o, &x)) in out.iter().zip(&px).enumerate() {
        let ch = i / 64;
        let want = (x as f32 / 255.0 - [0.5, 0.25, 0.0][ch]) / 0.5;
        assert!((o - want).abs() < 1e-6, "{i}: {o} vs {want}");
    }

    let mut c = synth_config(40, 10);
    c.mean_image = true;
    let p = Pipeline::load(&c).unwrap();
    let mi = p.prep.mean_image.as_ref().unwrap();
    assert_eq!(mi.len(), 3 * 64);
    // Over the training set the preprocessed values average to zero at every position.
    let mut sum = vec![0f64; 192];
    for i in 0..p.train.len() {
        for (j, &x) in p.train.image(i).iter().enumerate() {
            sum[j] += p.prep.value(j / 64, j, x) as f64;
        }
    }
    assert!(sum.iter().all(|s| (s / 40.0).abs() < 1e-5));

    // Channel statistics helper agrees with a direct computation.
    let (m, s) = p.train.channel_mean_std(1.0);
    let ch0: Vec<f64> = (0..40).flat_map(|i| p.train.image(i)[..64].to_vec()).map(|v| v as f64).collect();
    let mean0 = ch0.iter().sum::<f64>() / ch0.len() as f64;
    let std0 = (ch0.iter().map(|v| (v - mean0).powi(2)).sum::<f64>() / ch0.len() as f64).sqrt();
    assert!((m[0] as f64 - mean0).abs() < 1e-3 && (s[0] as f64 - std0).abs() < 1e-3);

    for bad in [
        DataConfig { mean_image: true, mean: Some(vec![0.1]), ..synth_config(40, 10) },
        DataConfig { std: Some(vec![0.0]), ..synth_config(40, 10) },
        DataConfig { mean: Some(vec![0.1, 0.2]), ..synth_config(40, 10) },
        DataConfig { scale: f32::NAN, ..synth_config(40, 10) },
        DataConfig { crop: Some([13, 8]), pad: 2, ..synth_config(40, 10) },
        DataConfig { train_batch: 0, ..synth_config(40, 10) },
        DataConfig { drop_last: true, train_batch: 64, ..synth_config(40, 10) },
        DataConfig { pad: usize::MAX / 2, ..synth_config(40, 10) },
        DataConfig { crop: Some([usize::MAX, 1]), ..synth_config(40, 10) },
        DataConfig { cutout: Some([0, 4]), ..synth_config(40, 10) },
        DataConfig { cutout: Some([usize::MAX, 4]), ..synth_config(40, 10) },
        DataConfig { jitter: [f32::NAN, 0.0, 0.0], ..synth_config(40, 10) },
        DataConfig { jitter: [0.0, -0.1, 0.0], ..synth_config(40, 10) },
        DataConfig { jitter: [0.0, 0.0, 1.5], ..synth_config(40, 10) },
        DataConfig { resized_crop: Some(0.0), ..synth_config(40, 10) },
        DataConfig { resized_crop: Some(f32::NAN), ..synth_config(40, 10) },
        DataConfig { resized_crop: Some(1.5), ..synth_config(40, 10) },
        DataConfig { jitter: [0.0, 0.0, 0.2], ..test_config(Source::Synthetic(SyntheticSpec::new([1, 8, 8], 4, 40, 10, 7))) },
    ] {
        let e = Pipeline::load(&bad).unwrap_err();
        assert!(matches!(e, DataError::Config { .. }), "{e:?}");
        assert!(msg(&e).starts_with("data configuration:"));
    }
}

/// A 1x4x4 data set whose pixel (y, x) of image i is 10*y + x + 100*i, with identity preprocessing.
fn tiny_pipeline(pad: usize, crop: Option<[usize; 2]>, mirror: bool, seq: bool) -> Pipeline {
    let images: Vec<u8> = (0..6).flat_map(|i| (0..16).map(move |j| (10 * (j / 4) + j % 4 + 40 * i) as u8)).collect();
    let ds = Dataset::new(images, vec![0, 1, 0, 1, 0, 1], [1, 4, 4], 2, vec![], "tiny".into()).unwrap();
    let mut c = test_config(Source::Synthetic(SyntheticSpec::new([1, 4, 4], 2, 0, 0, 0)));
    c.scale = 1.0;
    c.pad = pad;
    c.crop = crop;
    c.mirror = mirror;
    c.sequence_rows = seq;
    c.train_batch = 2;
    c.test_batch = 4;
    c.seed = 99;
    Pipeline::from_split(&c, Split { train: ds.clone(), test: ds }).unwrap()
}

#[test]
fn augmentation_pad_crop_mirror_is_a_shifted_copy_and_deterministic() {
    let p = tiny_pipeline(2, None, true, false);
    let mut seen_shift = std::collections::HashSet::new();
    let mut seen_flip = std::collections::HashSet::new();
    for epoch in 0..40 {
        for idx in 0..6 {
            let mut a = vec![0f32; 16];
            let mut b = vec![0f32; 16];
            p.train_sample(epoch, idx, &mut a);
            p.train_sample(epoch, idx, &mut b);
            assert_eq!(a, b, "same seed, epoch, index => same sample");
            let SampleParams { window: [oy, ox, wh, ww], flip, jitter, cutout } = p.augment.train_params(99, epoch, idx as u64);
            assert_eq!(([wh, ww], jitter, cutout), ([4, 4], [1.0; 3], None), "no resized crop, jitter or cutout");
            assert!((-2..=2).contains(&oy) && (-2..=2).contains(&ox));
            seen_shift.insert((oy, ox));
            seen_flip.insert(flip);
            for y in 0..4isize {
                for x in 0..4isize {
                    let sx = ox + if flip { 3 - x } else { x };
                    let sy = oy + y;
                    let want = if (0..4).contains(&sy) && (0..4).contains(&sx) { (10 * sy + sx + 40 * idx as isize) as f32 } else { 0.0 };
                    assert_eq!(a[(y * 4 + x) as usize], want);
                }
            }
        }
    }
    assert!(seen_shift.len() > 15, "crops vary: {}", seen_shift.len());
    assert_eq!(seen_flip.len(), 2);
    // Without mirror, never flipped; a different seed gives different crops.
    let q = tiny_pipeline(2, None, false, false);
    assert!((0..50).all(|e| !q.augment.train_params(99, e, 0).flip));
    assert!((0..50).any(|e| q.augment.train_params(99, e, 0) != q.augment.train_params(98, e, 0)));
}

/// Seven 3×8×8 images whose pixels all differ, configured by `set`.
fn distinct_pixel_pipeline(set: impl FnOnce(&mut DataConfig)) -> Pipeline {
    pixel_pipeline([3, 8, 8], 7, |i, j| (7 * i + 3 * j + 1) as u8, set).unwrap()
}

/// A pipeline over `n` images of `shape` whose pixels are `pixel(image, CHW index)`, identity preprocessing,
/// configured by `set`.
fn pixel_pipeline(shape: [usize; 3], n: usize, pixel: impl Fn(usize, usize) -> u8, set: impl FnOnce(&mut DataConfig)) -> Result<Pipeline, DataError> {
    let len = shape.iter().product::<usize>();
    let images: Vec<u8> = (0..n).flat_map(|i| (0..len).map(move |j| (i, j))).map(|(i, j)| pixel(i, j)).collect();
    let ds = Dataset::new(images, (0..n as u32).map(|i| i % 2).collect(), shape, 2, vec![], "pixels".into()).unwrap();
    let mut c = test_config(Source::Synthetic(SyntheticSpec::new(shape, 2, 0, 0, 0)));
    c.scale = 1.0;
    c.train_batch = 2;
    c.test_batch = 4;
    c.seed = 5;
    set(&mut c);
    Pipeline::from_split(&c, Split { train: ds.clone(), test: ds })
}

fn all_augmentations(c: &mut DataConfig) {
    c.pad = 1;
    c.crop = Some([6, 6]);
    c.mirror = true;
    c.cutout = Some([3, 2]);
    c.jitter = [0.4, 0.3, 0.5];
    c.resized_crop = Some(0.2);
}

#[test]
fn new_augmentations_are_deterministic_per_seed_epoch_and_index() {
    let p = pixel_pipeline([3, 8, 8], 6, |i, j| (7 * i + 3 * j + 1) as u8, all_augmentations).unwrap();
    let len = p.sample_len();
    let mut seen = std::collections::HashSet::new();
    for epoch in 0..4 {
        for idx in 0..6 {
            let (mut a, mut b) = (vec![0f32; len], vec![0f32; len]);
            p.train_sample(epoch, idx, &mut a);
            p.train_sample(epoch, idx, &mut b);
            assert_eq!(a, b, "same seed, epoch, index => same sample");
            let params = p.augment.train_params(5, epoch, idx as u64);
            assert_eq!(params, p.augment.train_params(5, epoch, idx as u64));
            assert!(seen.insert(format!("{params:?}")), "epoch {epoch} index {idx} repeats another sample's choices: {params:?}");
            assert!(a.iter().all(|v| v.is_finite() && (0.0..=255.001).contains(v)), "{a:?} {params:?}");
        }
    }
    // Different indices differ, in their choices and in their values.
    let (mut a, mut b) = (vec![0f32; len], vec![0f32; len]);
    p.train_sample(0, 0, &mut a);
    p.train_sample(0, 1, &mut b);
    assert_ne!(a, b);
    // The batch stream produces exactly these samples, whatever the number of workers.
    let mut c = p.config.clone();
    let one = collect(p.train_stream(0), 6);
    c.workers = 3;
    let many = collect(Pipeline::from_split(&c, Split { train: (*p.train).clone(), test: (*p.test).clone() }).unwrap().train_stream(0), 6);
    for (x, y) in one.iter().zip(&many) {
        assert_eq!(x.inputs, y.inputs);
        for (k, &i) in x.indices.iter().enumerate() {
            p.train_sample(x.epoch, i as usize, &mut a);
            assert_eq!(&x.inputs[k * len..(k + 1) * len], &a[..]);
        }
    }
    // Test samples are never randomised: the centre crop of the unjittered image.
    let t = p.test_stream().next().unwrap();
    let img = p.test.image(0);
    for ch in 0..3 {
        for y in 0..6 {
            for x in 0..6 {
                assert_eq!(t.inputs[(ch * 6 + y) * 6 + x], img[(ch * 8 + y + 1) * 8 + x + 1] as f32);
            }
        }
    }
    // Adding a setting leaves the earlier draws as they were: the crop and mirror of pad/crop/mirror alone.
    let plain = pixel_pipeline(
        [3, 8, 8],
        6,
        |i, j| (i + j) as u8,
        |c| {
            c.pad = 1;
            c.crop = Some([6, 6]);
            c.mirror = true;
        },
    )
    .unwrap();
    let more = pixel_pipeline(
        [3, 8, 8],
        6,
        |i, j| (i + j) as u8,
        |c| {
            c.pad = 1;
            c.crop = Some([6, 6]);
            c.mirror = true;
            c.cutout = Some([2, 2]);
            c.jitter = [0.2, 0.0, 0.2];
        },
    )
    .unwrap();
    for e in 0..10 {
        let (x, y) = (plain.augment.train_params(5, e, 3), more.augment.train_params(5, e, 3));
        assert_eq!((x.window, x.flip), (y.window, y.flip));
        assert_eq!(y.jitter[1], 1.0, "contrast is off");
        assert!(y.jitter[0] != 1.0 && y.jitter[2] != 1.0 && y.cutout.is_some());
    }
}

#[test]
fn cutout_zeroes_exactly_a_rectangle_clipped_at_the_borders() {
    for k in [[1, 1], [3, 3], [4, 4], [2, 5], [9, 9], [20, 3]] {
        // Every pixel is non-zero, so the zeros are the cutout's.
        let p = pixel_pipeline([2, 6, 7], 1, |_, j| (j % 250 + 1) as u8, |c| c.cutout = Some(k)).unwrap();
        assert_eq!(p.augment.out_hw, [6, 7]);
        let whole = p.test_stream().next().unwrap().inputs;
        for cy in 0..6 {
            for cx in 0..7 {
                let params = SampleParams { window: [0, 0, 6, 7], flip: false, jitter: [1.0; 3], cutout: Some([cy, cx]) };
                let mut out = vec![f32::NAN; 2 * 42];
                write_sample_with(&p.train, 0, &p.prep, &p.augment, &params, false, &mut out);
                let (y0, x0) = (cy as isize - k[0] as isize / 2, cx as isize - k[1] as isize / 2);
                for ch in 0..2 {
                    for y in 0..6isize {
                        for x in 0..7isize {
                            let i = (ch * 6 + y as usize) * 7 + x as usize;
                            let inside = (y0..y0 + k[0] as isize).contains(&y) && (x0..x0 + k[1] as isize).contains(&x);
                            assert_eq!(out[i], if inside { 0.0 } else { whole[i] }, "cutout {k:?} at ({cy}, {cx}): channel {ch} ({y}, {x})");
                        }
                    }
                }
            }
        }
        // Drawn centres lie on the output.
        for e in 0..50 {
            let [cy, cx] = p.augment.train_params(1, e, 0).cutout.unwrap();
            assert!(cy < 6 && cx < 7);
        }
    }
    // A centred odd square away from the borders zeroes exactly k×k values per channel.
    let p = pixel_pipeline([1, 9, 9], 1, |_, _| 200, |c| c.cutout = Some([3, 3])).unwrap();
    let params = SampleParams { window: [0, 0, 9, 9], flip: false, jitter: [1.0; 3], cutout: Some([4, 4]) };
    let mut out = vec![0f32; 81];
    write_sample_with(&p.train, 0, &p.prep, &p.augment, &params, false, &mut out);
    assert_eq!(out.iter().filter(|&&v| v == 0.0).count(), 9);
    assert!((3..6).all(|y| (3..6).all(|x| out[y * 9 + x] == 0.0)));
}

#[test]
fn colour_jitter_values() {
    let shape = [3, 4, 5];
    let img: Vec<u8> = (0..60).map(|j| (j * 37 % 256) as u8).collect();
    let px = |f: [f32; 3]| augment::jitter_pixels(&img, shape, f);
    let orig: Vec<f32> = img.iter().map(|&p| p as f32).collect();
    // Factor 1 is the identity; brightness scales and clamps; 0 is black.
    assert_eq!(px([1.0, 1.0, 1.0]), orig);
    assert_eq!(px([2.0, 1.0, 1.0]), orig.iter().map(|v| (v * 2.0).min(255.0)).collect::<Vec<_>>());
    assert!(px([0.0, 1.0, 1.0]).iter().all(|&v| v == 0.0));
    // Contrast 0: every value is the image's mean grey level.
    let grey: f64 = (0..20).map(|i| 0.299 * orig[i] as f64 + 0.587 * orig[20 + i] as f64 + 0.114 * orig[40 + i] as f64).sum::<f64>() / 20.0;
    assert!(px([1.0, 0.0, 1.0]).iter().all(|&v| (v as f64 - grey).abs() < 1e-3), "{grey}");
    // Saturation 0: each pixel's channels are its grey; saturation 2 moves them away from it, clamped.
    let s0 = px([1.0, 1.0, 0.0]);
    for i in 0..20 {
        let g = 0.299 * orig[i] + 0.587 * orig[20 + i] + 0.114 * orig[40 + i];
        assert!((0..3).all(|c| (s0[c * 20 + i] - g).abs() < 1e-3));
        let s2 = px([1.0, 1.0, 2.0]);
        assert!((0..3).all(|c| (s2[c * 20 + i] - (2.0 * orig[c * 20 + i] - g).clamp(0.0, 255.0)).abs() < 1e-3));
    }
    // One channel: contrast blends with the plain mean.
    let grey1: Vec<u8> = (0..16).map(|j| (j * 16) as u8).collect();
    let c0 = augment::jitter_pixels(&grey1, [1, 4, 4], [1.0, 0.0, 1.0]);
    assert!(c0.iter().all(|&v| (v - 120.0).abs() < 1e-4), "{c0:?}");
    // Fractional levels normalise with the same formula as whole ones (a factor of 1 changes nothing).
    for mean_image in [false, true] {
        let p = pixel_pipeline(
            shape,
            3,
            |i, j| (i * 50 + j) as u8,
            |c| {
                c.scale = 1.0 / 255.0;
                if mean_image {
                    c.mean_image = true;
                } else {
                    c.mean = Some(vec![0.4, 0.5, 0.6]);
                    c.std = Some(vec![0.2, 0.25, 0.3]);
                }
            },
        )
        .unwrap();
        for i in 0..60 {
            for level in 0..=255u8 {
                assert_eq!(p.prep.value(i / 20, i, level), p.prep.value_of(i / 20, i, level as f32));
            }
        }
    }
}

#[test]
fn resized_crop_of_the_whole_image_is_the_identity_and_resamples_bilinearly() {
    // Area share 1 on a square image: the window is always the whole image (an aspect ratio away from 1
    // overflows a side), so the training view equals the test view.
    for shape in [[1, 8, 8], [3, 5, 5], [1, 5, 9]] {
        let p = pixel_pipeline(shape, 2, |i, j| (i * 90 + j * 3) as u8, |c| c.resized_crop = Some(1.0)).unwrap();
        let test = p.test_stream().next().unwrap().inputs;
        let len = p.sample_len();
        for e in 0..20 {
            let w = p.augment.train_params(5, e, 1).window;
            let mut a = vec![0f32; len];
            p.train_sample(e, 1, &mut a);
            if shape[1] == shape[2] {
                assert_eq!(w, [0, 0, shape[1] as isize, shape[2] as isize]);
                assert_eq!(a, test[len..2 * len], "{shape:?}");
            } else {
                // 5x9 is wider than 4/3: the fallback keeps the height and centres a 4/3 window.
                assert_eq!(w, [0, 1, 5, 7]);
            }
        }
    }
    // Bilinear resampling is exact on a ramp (10 y + x), with neighbours clamped to the window.
    let ramp = |_: usize, j: usize| (10 * (j / 4) + j % 4) as u8;
    for (out, window) in [([8usize, 8usize], [0isize, 0, 4, 4]), ([2, 2], [0, 0, 4, 4]), ([3, 5], [1, 1, 2, 3])] {
        let p = pixel_pipeline([1, 4, 4], 1, ramp, |c| {
            c.pad = 2;
            c.crop = Some(out);
            c.resized_crop = Some(0.5);
        })
        .unwrap();
        let mut o = vec![f32::NAN; out[0] * out[1]];
        let params = SampleParams { window, flip: false, jitter: [1.0; 3], cutout: None };
        write_sample_with(&p.train, 0, &p.prep, &p.augment, &params, false, &mut o);
        let src = |start: isize, len: isize, n: usize, o: usize| -> f32 {
            let s = ((o as f32 + 0.5) * len as f32 / n as f32 - 0.5).clamp(0.0, (len - 1) as f32);
            start as f32 + s
        };
        for y in 0..out[0] {
            for x in 0..out[1] {
                let want = 10.0 * src(window[0], window[2], out[0], y) + src(window[1], window[3], out[1], x);
                assert!((o[y * out[1] + x] - want).abs() < 1e-4, "{out:?} {window:?} ({y}, {x}): {} vs {want}", o[y * out[1] + x]);
            }
        }
        // Mirrored: the same rows, columns reversed.
        let mut m = vec![0f32; o.len()];
        write_sample_with(&p.train, 0, &p.prep, &p.augment, &SampleParams { flip: true, ..params }, false, &mut m);
        for y in 0..out[0] {
            assert!((0..out[1]).all(|x| m[y * out[1] + x] == o[y * out[1] + out[1] - 1 - x]));
        }
    }
    // Drawn windows lie in the padded image, cover at least the smallest share and have a ratio in [3/4, 4/3]
    // (up to rounding to whole pixels).
    let p = pixel_pipeline(
        [3, 12, 16],
        1,
        |_, j| j as u8,
        |c| {
            c.pad = 2;
            c.resized_crop = Some(0.25);
        },
    )
    .unwrap();
    let mut sizes = std::collections::HashSet::new();
    for e in 0..200 {
        let [top, left, h, w] = p.augment.train_params(9, e, 0).window;
        assert!(top >= -2 && left >= -2 && top + h <= 14 && left + w <= 18, "{:?}", [top, left, h, w]);
        assert!((h * w) as f64 >= 0.25 * 16.0 * 20.0 * 0.8 && h * w <= 16 * 20);
        let r = w as f64 / h as f64;
        assert!(r > 0.75 * 0.8 && r < 4.0 / 3.0 * 1.25, "{r}");
        sizes.insert((h, w));
    }
    assert!(sizes.len() > 20, "{}", sizes.len());
}

#[test]
fn test_view_is_centre_crop_without_randomness() {
    let p = tiny_pipeline(0, Some([2, 2]), true, false);
    assert_eq!(p.sample_shape(), vec![1, 2, 2]);
    let b = p.test_stream().next().unwrap();
    // Image 0 centre 2x2: rows 1..3, cols 1..3.
    assert_eq!(b.inputs[..4], [11.0, 12.0, 21.0, 22.0]);
    assert_eq!(b.inputs[4..8], [51.0, 52.0, 61.0, 62.0]);
    // Crop larger than the image at test time: centred with zero border.
    let p = tiny_pipeline(1, Some([6, 6]), false, false);
    let b = p.test_stream().next().unwrap();
    assert_eq!(b.inputs[..6], [0.0; 6]);
    assert_eq!(b.inputs[6..12], [0.0, 0.0, 1.0, 2.0, 3.0, 0.0]);
}

#[test]
fn sequence_rows_layout() {
    // One channel: [T=4, F=4] is the CHW memory.
    let p = tiny_pipeline(0, None, false, true);
    assert_eq!(p.sample_shape(), vec![4, 4]);
    let b = p.test_stream().next().unwrap();
    assert_eq!(b.inputs[..16], [0., 1., 2., 3., 10., 11., 12., 13., 20., 21., 22., 23., 30., 31., 32., 33.]);
    // Three channels: step t = row t of R, then G, then B.
    let mut c = synth_config(20, 4);
    c.scale = 1.0;
    c.sequence_rows = true;
    let p = Pipeline::load(&c).unwrap();
    assert_eq!(p.sample_shape(), vec![8, 24]);
    let b = p.test_stream().next().unwrap();
    let img = p.test.image(0);
    for t in 0..8 {
        for ch in 0..3 {
            for x in 0..8 {
                assert_eq!(b.inputs[t * 24 + ch * 8 + x], img[ch * 64 + t * 8 + x] as f32);
            }
        }
    }
    // MNIST-shaped: 28 steps of 28 features.
    let mut c = test_config(Source::Synthetic(SyntheticSpec::new([1, 28, 28], 10, 30, 10, 1)));
    c.sequence_rows = true;
    assert_eq!(Pipeline::load(&c).unwrap().sample_shape(), vec![28, 28]);
}

// ---------------------------------------------------------------------------------------------------------
// batch streams

fn collect(s: BatchStream, n: usize) -> Vec<Batch> {
    s.take(n).collect()
}

#[test]
fn train_stream_epochs_are_seeded_permutations() {
    let c = synth_config(50, 10);
    let p = Pipeline::load(&c).unwrap();
    assert_eq!(p.steps_per_epoch(), 4);
    let batches = collect(p.train_stream(0), 12);
    for (k, b) in batches.iter().enumerate() {
        assert_eq!(b.iteration, k as u64);
        assert_eq!((b.epoch, b.step), (k as u64 / 4, k as u64 % 4));
        assert_eq!(b.n, if k % 4 == 3 { 2 } else { 16 });
        assert_eq!(b.inputs.len(), b.n * 192);
        assert_eq!(b.labels, b.indices.iter().map(|&i| p.train.labels[i as usize]).collect::<Vec<_>>());
    }
    let epochs: Vec<Vec<u32>> = batches.chunks(4).map(|e| e.iter().flat_map(|b| b.indices.clone()).collect()).collect();
    for e in &epochs {
        let mut s = e.clone();
        s.sort();
        assert_eq!(s, (0..50).collect::<Vec<u32>>());
    }
    assert_ne!(epochs[0], epochs[1]);
    assert_ne!(epochs[0], (0..50).collect::<Vec<u32>>());
    // Another seed shuffles differently.
    let p2 = Pipeline::load(&DataConfig { seed: 12, ..c.clone() }).unwrap();
    assert_ne!(collect(p2.train_stream(0), 1)[0].indices, batches[0].indices);
    // drop_last drops the partial batch.
    let p3 = Pipeline::load(&DataConfig { drop_last: true, ..c }).unwrap();
    assert_eq!(p3.steps_per_epoch(), 3);
    assert!(collect(p3.train_stream(0), 7).iter().all(|b| b.n == 16));
}

#[test]
fn prefetch_depth_and_workers_do_not_change_batches() {
    let mut c = synth_config(70, 10);
    c.pad = 2;
    c.crop = Some([8, 8]);
    c.mirror = true;
    c.mean = Some(vec![0.5]);
    c.prefetch = 1;
    c.workers = 1;
    let a = collect(Pipeline::load(&c).unwrap().train_stream(0), 15);
    c.prefetch = 4;
    c.workers = 3;
    let b = collect(Pipeline::load(&c).unwrap().train_stream(0), 15);
    assert_eq!(a, b);
    // Batches equal the direct per-sample computation.
    let p = Pipeline::load(&c).unwrap();
    let mut one = vec![0f32; 192];
    let bt = &a[7];
    for (j, &i) in bt.indices.iter().enumerate() {
        p.train_sample(bt.epoch, i as usize, &mut one);
        assert_eq!(&bt.inputs[j * 192..(j + 1) * 192], &one[..]);
    }
}

#[test]
fn resume_at_iteration_equals_uninterrupted_run() {
    let mut c = synth_config(45, 10);
    c.pad = 1;
    c.mirror = true;
    let p = Pipeline::load(&c).unwrap();
    let full = collect(p.train_stream(0), 20);
    for start in [0u64, 1, 2, 3, 5, 9, 13] {
        let resumed = collect(p.train_stream(start), 20 - start as usize);
        assert_eq!(resumed, full[start as usize..], "resume at {start}");
    }
    // A freshly loaded pipeline (new process after a restart) gives the same.
    let again = Pipeline::load(&c).unwrap();
    assert_eq!(collect(again.train_stream(11), 3), full[11..14]);
}

#[test]
fn test_stream_fixed_order_covers_all_once() {
    let c = synth_config(20, 23);
    let p = Pipeline::load(&c).unwrap();
    let bs: Vec<Batch> = p.test_stream().collect();
    assert_eq!(bs.iter().map(|b| b.n).collect::<Vec<_>>(), vec![10, 10, 3]);
    let idx: Vec<u32> = bs.iter().flat_map(|b| b.indices.clone()).collect();
    assert_eq!(idx, (0..23).collect::<Vec<u32>>());
    assert_eq!(bs, p.test_stream().collect::<Vec<_>>());
    let labels: Vec<u32> = bs.iter().flat_map(|b| b.labels.clone()).collect();
    assert_eq!(labels, p.test.labels);
    let tr: Vec<Batch> = p.train_eval_stream().collect();
    assert_eq!(tr.iter().map(|b| b.n).collect::<Vec<_>>(), vec![10, 10]);
    assert_eq!(tr.iter().flat_map(|b| b.labels.clone()).collect::<Vec<_>>(), p.train.labels);
    assert!(tr.iter().all(|b| b.epoch == 0));
}

#[test]
fn stream_counters_and_early_drop() {
    let mut c = synth_config(200, 10);
    c.prefetch = 2;
    let p = Pipeline::load(&c).unwrap();
    let mut s = p.train_stream(0);
    let first = s.next().unwrap();
    assert_eq!(first.iteration, 0);
    std::thread::sleep(std::time::Duration::from_millis(300));
    // Prefetched: the next batches are ready without waiting.
    let before = s.stats();
    s.next().unwrap();
    s.next().unwrap();
    let after = s.stats();
    assert_eq!(after.batches, 3);
    assert_eq!(after.stalls, before.stalls);
    assert_eq!(after.wait_ns, before.wait_ns);
    assert!(after.produce_ns > 0);
    drop(s); // joins the producer blocked on a full channel
}

#[test]
fn extreme_but_valid_settings_do_not_panic() {
    let mut c = synth_config(10, 3);
    c.train_batch = usize::MAX;
    c.test_batch = usize::MAX;
    c.prefetch = usize::MAX;
    c.workers = usize::MAX;
    let p = Pipeline::load(&c).unwrap();
    let b = collect(p.train_stream(u64::MAX / 2), 2);
    assert_eq!((b[0].n, b[1].n), (10, 10));
    assert_eq!(p.test_stream().map(|b| b.n).collect::<Vec<_>>(), vec![3]);
}

// ---------------------------------------------------------------------------------------------------------
// committed and real data

fn repo_path(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
}

#[test]
fn committed_mnist_small_loads() {
    let s = load_mnist(&repo_path("data/mnist-small")).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (5000, 1000));
    assert_eq!(s.train.shape, [1, 28, 28]);
    assert_eq!(s.train.label_histogram(), vec![479, 563, 488, 493, 535, 434, 501, 550, 462, 495]);
    assert_eq!(s.test.label_histogram(), vec![85, 126, 116, 107, 110, 87, 87, 99, 89, 94]);
    // The well-known first training labels 5, 0, 4, 1, 9 and first test labels 7, 2, 1, 0, 4.
    assert_eq!(s.train.labels[..5], [5, 0, 4, 1, 9]);
    assert_eq!(s.test.labels[..5], [7, 2, 1, 0, 4]);
    // Through the whole pipeline as sequences.
    let mut c = test_config(Source::Mnist { root: repo_path("data/mnist-small") });
    c.sequence_rows = true;
    c.train_batch = 100;
    let p = Pipeline::from_split(&c, s).unwrap();
    let b = p.train_stream(0).next().unwrap();
    assert_eq!(p.sample_shape(), vec![28, 28]);
    assert_eq!(b.inputs.len(), 100 * 784);
    assert!(b.inputs.iter().all(|&v| (0.0..=1.0).contains(&v)));
}

#[test]
#[ignore = "needs the official MNIST files: EXPC_MNIST=DIR (default ../shared/data/mnist) cargo test -- --ignored"]
fn real_mnist() {
    let root = std::env::var_os("EXPC_MNIST").map(PathBuf::from).unwrap_or_else(|| repo_path("../shared/data/mnist"));
    assert!(root.is_dir(), "no MNIST at {} (set EXPC_MNIST)", root.display());
    let s = load_mnist(&root).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (60_000, 10_000));
    assert_eq!(s.train.label_histogram().iter().sum::<usize>(), 60_000);
    assert_eq!(s.test.label_histogram().iter().sum::<usize>(), 10_000);
    assert_eq!(s.train.label_histogram()[1], 6742);
    assert_eq!(s.test.label_histogram()[1], 1135);
    // The bundled subset is exactly the head of the official files.
    let small = load_mnist(&repo_path("data/mnist-small")).unwrap();
    assert_eq!(small.train.images, s.train.images[..5000 * 784]);
    assert_eq!(small.test.labels, s.test.labels[..1000]);
}

#[test]
#[ignore = "needs CIFAR-10 in the binary layout: EXPC_CIFAR10=DIR cargo test -- --ignored"]
fn real_cifar() {
    let root = std::env::var_os("EXPC_CIFAR10").map(PathBuf::from).expect("set EXPC_CIFAR10 to the folder of data_batch_1.bin");
    let s = load_cifar10(&root).unwrap();
    assert_eq!((s.train.len(), s.test.len()), (50_000, 10_000));
    assert_eq!(s.train.label_histogram(), vec![5000; 10]);
    assert_eq!(s.test.label_histogram(), vec![1000; 10]);
}

/// Throughput of the augmented CIFAR-10 training stream (run by hand:
/// `EXPC_CIFAR10=DIR cargo test --release --lib data::tests::bench_cifar_stream -- --ignored --nocapture`).
#[test]
#[ignore = "a benchmark on the real CIFAR-10: EXPC_CIFAR10=DIR, run in release"]
fn bench_cifar_stream() {
    let root = std::env::var_os("EXPC_CIFAR10").map(PathBuf::from).expect("set EXPC_CIFAR10 to the folder of data_batch_1.bin");
    let t0 = std::time::Instant::now();
    let split = load_cifar10(&root).unwrap();
    eprintln!("load: {:?}", t0.elapsed());
    for workers in [1, 2] {
        let mut c = test_config(Source::Cifar10 { root: root.clone() });
        c.train_batch = 128;
        c.pad = 4;
        c.mirror = true;
        c.mean = Some(vec![0.49, 0.48, 0.45]);
        c.std = Some(vec![0.25, 0.24, 0.26]);
        c.workers = workers;
        let p = Pipeline::from_split(&c, split.clone()).unwrap();
        let t0 = std::time::Instant::now();
        let mut s = p.train_stream(0);
        let n = 200;
        for _ in 0..n {
            std::hint::black_box(s.next().unwrap());
        }
        let dt = t0.elapsed().as_secs_f64();
        let st = s.stats();
        eprintln!(
            "workers {workers}: {:.0} samples/s, {:.2} ms/batch, consumer waited {:.0} ms, {} stalls",
            n as f64 * 128.0 / dt,
            dt * 1e3 / n as f64,
            st.wait_ns as f64 / 1e6,
            st.stalls
        );
    }
}

#[test]
fn config_has_no_defaults_and_round_trips() {
    // No field has a default of its own: a partial configuration is an error, not a guess.
    let partial = serde_json::from_str::<DataConfig>(r#"{"source": {"mnist": {"root": "data/mnist-small"}}, "pad": 2}"#);
    assert!(partial.is_err());
    let mut s = synth_config(10, 10);
    s.crop = Some([6, 6]);
    s.mean = Some(vec![0.5]);
    let back: DataConfig = serde_json::from_str(&serde_json::to_string(&s).unwrap()).unwrap();
    assert_eq!(back, s);
}

#[test]
fn a_jpeg_cut_inside_its_scan_data_is_an_error_naming_the_file() {
    let d = TempDir::new("jpeg");
    let cls = d.path().join("a");
    std::fs::create_dir_all(&cls).unwrap();
    let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 7 + y * 3) as u8, (x * y) as u8, (255 - x * 5) as u8]));
    let mut good = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut good, 90).encode_image(&img).unwrap();
    std::fs::write(cls.join("good.jpg"), &good).unwrap();
    assert!(load_folder(d.path(), [3, 32, 32], 0.0, false, 0).is_ok(), "a sound JPEG loads");
    // A file cut inside the entropy-coded scan: the decoder would fill the rest with grey.
    let sos = good.windows(2).position(|w| w == [0xFF, 0xDA]).expect("a scan");
    let bad = good[..sos + (good.len() - sos) / 2].to_vec();
    std::fs::write(cls.join("bad.jpg"), &bad).unwrap();
    let e = load_folder(d.path(), [3, 32, 32], 0.0, false, 0).unwrap_err();
    assert!(matches!(e, DataError::ImageDecode { .. }) && msg(&e).contains("bad.jpg"), "{e:?}");
}

#[test]
fn a_jpeg_with_flipped_scan_bytes_is_an_error_naming_the_file() {
    // Sound JPEGs of several sizes and both colour types pass the scan walk.
    for (w, h) in [(1, 1), (7, 13), (32, 32), (64, 48), (17, 9)] {
        let rgb = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 37 + y * 11) as u8, (x * y * 7) as u8, (x * 5 + y) as u8]));
        let grey = image::GrayImage::from_fn(w, h, |x, y| image::Luma([(x * 13 + y * 29) as u8]));
        for q in [50, 90, 100] {
            let mut a = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut a, q).encode_image(&rgb).unwrap();
            assert_eq!(jpeg_check::check(&a), Ok(()), "rgb {w}x{h} q{q}");
            let mut b = Vec::new();
            image::codecs::jpeg::JpegEncoder::new_with_quality(&mut b, q).encode_image(&grey).unwrap();
            assert_eq!(jpeg_check::check(&b), Ok(()), "grey {w}x{h} q{q}");
        }
    }
    let d = TempDir::new("jpeg-flip");
    let cls = d.path().join("a");
    std::fs::create_dir_all(&cls).unwrap();
    let img = image::RgbImage::from_fn(32, 32, |x, y| image::Rgb([(x * 7 + y * 3) as u8, (x * y) as u8, (255 - x * 5) as u8]));
    let mut good = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(&mut good, 90).encode_image(&img).unwrap();
    let sos = good.windows(2).position(|w| w == [0xFF, 0xDA]).expect("a scan");
    let start = sos + 2 + u16::from_be_bytes([good[sos + 2], good[sos + 3]]) as usize;
    let end = good.len() - 2;
    // Many different damages: each must be caught (64 bytes flipped, never producing 0xFF).
    let mut caught = 0;
    for seed in 0..40usize {
        let mut bad = good.clone();
        let at = start + (seed * 97) % (end - start - 70);
        for (i, b) in bad[at..at + 64].iter_mut().enumerate() {
            *b = (*b ^ (0x5A + (i + seed) as u8)).min(0xFE);
        }
        if jpeg_check::check(&bad).is_err() {
            caught += 1;
        }
    }
    assert_eq!(caught, 40, "every damaged scan is found");
    let mut bad = good.clone();
    for (i, b) in bad[start..start + 64].iter_mut().enumerate() {
        *b = (*b ^ (0x5A + i as u8)).min(0xFE);
    }
    std::fs::write(cls.join("good.jpg"), &good).unwrap();
    std::fs::write(cls.join("bad.jpg"), &bad).unwrap();
    let e = load_folder(d.path(), [3, 32, 32], 0.0, false, 0).unwrap_err();
    assert!(matches!(e, DataError::ImageDecode { .. }) && msg(&e).contains("bad.jpg") && msg(&e).contains("damaged JPEG"), "{e:?}");
    // Random bytes after a JPEG start marker never panic.
    for n in 0..200usize {
        let mut junk = vec![0xFF, 0xD8];
        junk.extend((0..n * 7).map(|i| ((i * 131 + n * 17) % 256) as u8));
        let _ = jpeg_check::check(&junk);
        let mut cut = good[..(n * 37) % good.len()].to_vec();
        cut.extend_from_slice(&junk[2..]);
        let _ = jpeg_check::check(&cut);
    }
}

/// The vectorised row writer gives, bit for bit, the value [`Preprocess::value`] gives each pixel (its table
/// for mean/std, the formula for a mean image), at every crop offset, mirrored or not, padding zero.
#[test]
fn rows_written_in_runs_equal_the_per_pixel_values() {
    let (shape, n) = ([3, 5, 7], 4);
    let pixel = |i: usize, j: usize| ((i * 37 + j * 11) % 256) as u8;
    for mean_image in [false, true] {
        let p = pixel_pipeline(shape, n, pixel, |c| {
            c.scale = 1.0 / 255.0;
            if mean_image {
                c.mean_image = true;
            } else {
                c.mean = Some(vec![0.4914, 0.4822, 0.4465]);
                c.std = Some(vec![0.2470, 0.2435, 0.2616]);
            }
            c.pad = 3;
            c.crop = Some([5, 7]);
            c.mirror = true;
        })
        .unwrap();
        let mut flips = std::collections::HashSet::new();
        for epoch in 0..30 {
            for idx in 0..n {
                let mut out = vec![f32::NAN; p.sample_len()];
                p.train_sample(epoch, idx, &mut out);
                let SampleParams { window: [oy, ox, ..], flip, .. } = p.augment.train_params(5, epoch, idx as u64);
                flips.insert(flip);
                for (k, v) in out.iter().enumerate() {
                    let (c, y, x) = (k / 35, k / 7 % 5, k % 7);
                    let (sy, sx) = (oy + y as isize, ox + if flip { 6 - x as isize } else { x as isize });
                    let want = if (0..5).contains(&sy) && (0..7).contains(&sx) {
                        let i = (c * 5 + sy as usize) * 7 + sx as usize;
                        p.prep.value(c, i, pixel(idx, i))
                    } else {
                        0.0
                    };
                    assert_eq!(v.to_bits(), want.to_bits(), "mean_image {mean_image}, epoch {epoch}, sample {idx}, value {k}: {v} vs {want}");
                }
            }
        }
        assert_eq!(flips.len(), 2);
    }
}

/// Batches assembled into recycled buffers (here poisoned with NaN) equal batches assembled fresh: every value
/// of every sample is written, with every augmentation on, with padding and crops (no resizing), and with the
/// smaller last batch of an epoch.
#[test]
fn batches_in_recycled_buffers_equal_fresh_ones() {
    let padded_crops = |c: &mut DataConfig| {
        c.pad = 2;
        c.crop = Some([8, 8]);
        c.mirror = true;
        c.cutout = Some([3, 2]);
    };
    for set in [all_augmentations as fn(&mut DataConfig), padded_crops] {
        let p = distinct_pixel_pipeline(|c| {
            set(c);
            c.train_batch = 3;
            c.prefetch = 1;
        });
        let fresh = collect(p.train_stream(0), 12);
        let mut s = p.train_stream(0);
        let poisoned =
            |n: usize| Batch { inputs: vec![f32::NAN; n * p.sample_len()], labels: vec![], n, epoch: 0, iteration: 0, step: 0, indices: vec![], writer: None };
        for want in &fresh {
            // a buffer of every size a batch here has (3 samples, and 1 for an epoch's last)
            s.recycle(poisoned(3));
            s.recycle(poisoned(1));
            let got = s.next().unwrap();
            assert_eq!(got.n, want.n);
            assert!(got.inputs.iter().all(|v| v.is_finite()), "a value was left unwritten at iteration {}", want.iteration);
            assert_eq!(&got, want);
        }
    }
}

/// Deferred writing: batches of a deferred pipeline carry no inputs but the same labels, indices and
/// iteration numbers, and writing each sample with [`Batch::write_sample`] (in any order) gives exactly
/// the values the stream writes itself: training batches with every augmentation, over an epoch boundary
/// and the smaller last batch, test batches and training-set evaluation batches.
#[test]
fn deferred_batches_write_the_samples_the_stream_would_have_written() {
    let p = distinct_pixel_pipeline(|c| {
        all_augmentations(c);
        c.train_batch = 3;
        c.test_batch = 4;
    });
    let deferred = p.clone().deferred_writing();
    let per = p.sample_len();
    let streams: [(BatchStream, BatchStream, usize); 3] = [
        (p.train_stream(2), deferred.train_stream(2), 9),
        (p.test_stream(), deferred.test_stream(), 99),
        (p.train_eval_stream(), deferred.train_eval_stream(), 99),
    ];
    for (written, later, count) in streams {
        let (written, later) = (collect(written, count), collect(later, count));
        assert_eq!(written.len(), later.len());
        assert!(!written.is_empty());
        for (w, d) in written.iter().zip(&later) {
            assert!(d.is_deferred() && d.inputs.is_empty() && !w.is_deferred());
            assert_eq!((&d.labels, &d.indices, d.n, d.epoch, d.iteration, d.step), (&w.labels, &w.indices, w.n, w.epoch, w.iteration, w.step));
            let mut got = vec![f32::NAN; d.n * per];
            for k in (0..d.n).rev() {
                d.write_sample(k, &mut got[k * per..(k + 1) * per]);
            }
            assert_eq!(got, w.inputs, "iteration {}", w.iteration);
            // a written batch copies its own values
            let mut copied = vec![0.0; per];
            w.write_sample(d.n - 1, &mut copied);
            assert_eq!(copied, w.inputs[(d.n - 1) * per..]);
        }
    }
}
