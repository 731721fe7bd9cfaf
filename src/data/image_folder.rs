//! Image folders: `ROOT/<class>/*.{png,jpg,jpeg}`, or `ROOT/train/<class>/...` plus `ROOT/test/<class>/...`.
//!
//! Invariants: class names are the sub-folder names sorted bytewise (labels 0, 1, ... in that order; with a
//! train/test layout the training folder defines the classes and the test folder may only use those); files
//! are read in sorted name order; hidden entries and files with other extensions are ignored. Every image is
//! converted to the requested channel count (1 = grey, 3 = RGB) and must have exactly the requested size
//! (otherwise an error names the file) unless resizing is asked for. Pixels are stored CHW.

use std::path::{Path, PathBuf};

use image::imageops::FilterType;

use super::error::FOLDER_HINT;
use super::{DataError, Dataset, Split};

fn sorted_entries(dir: &Path, want_dirs: bool) -> Result<Vec<PathBuf>, DataError> {
    let rd = std::fs::read_dir(dir).map_err(|e| DataError::io(dir, &e, FOLDER_HINT))?;
    let mut out = Vec::new();
    for entry in rd {
        let entry = entry.map_err(|e| DataError::io(dir, &e, FOLDER_HINT))?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        if want_dirs {
            if path.is_dir() {
                out.push(path);
            }
        } else if path.is_file() && is_image_name(&path) {
            out.push(path);
        }
    }
    out.sort();
    Ok(out)
}

fn is_image_name(p: &Path) -> bool {
    p.extension().and_then(|e| e.to_str()).is_some_and(|e| ["png", "jpg", "jpeg"].iter().any(|x| e.eq_ignore_ascii_case(x)))
}

fn class_name(p: &Path) -> String {
    p.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()
}

/// Reads one image, converted to `shape` ([C, H, W], C in {1, 3}), appending CHW bytes to `out`.
pub fn read_image(path: &Path, shape: [usize; 3], resize: bool, out: &mut Vec<u8>) -> Result<(), DataError> {
    let [c, h, w] = shape;
    let decode_err = |m: String| DataError::ImageDecode { path: path.to_path_buf(), message: m };
    let bytes = std::fs::read(path).map_err(|e| DataError::io(path, &e, FOLDER_HINT))?;
    // The JPEG decoder skips damaged scan data with a warning and fills in grey blocks; a
    // damaged training image must stop the run instead, so JPEGs are first walked strictly.
    if bytes.starts_with(&[0xFF, 0xD8]) {
        super::jpeg_check::check(&bytes).map_err(|why| decode_err(format!("damaged JPEG: {why}")))?;
    }
    let img = image::ImageReader::new(std::io::Cursor::new(&bytes))
        .with_guessed_format()
        .map_err(|e| DataError::io(path, &e, FOLDER_HINT))?
        .decode()
        .map_err(|e| decode_err(e.to_string()))?;
    let (iw, ih) = (img.width(), img.height());
    let size_ok = iw as usize == w && ih as usize == h;
    if !size_ok && !resize {
        return Err(DataError::ImageSize {
            path: path.to_path_buf(),
            expected: shape,
            found_w: iw,
            found_h: ih,
            hint: "set resize in the data source to resize images, or convert them beforehand".into(),
        });
    }
    let (tw, th) = (w as u32, h as u32);
    match c {
        1 => {
            let mut g = img.to_luma8();
            if !size_ok {
                g = image::imageops::resize(&g, tw, th, FilterType::Triangle);
            }
            out.extend_from_slice(g.as_raw());
        }
        3 => {
            let mut rgb = img.to_rgb8();
            if !size_ok {
                rgb = image::imageops::resize(&rgb, tw, th, FilterType::Triangle);
            }
            let raw = rgb.as_raw();
            for ch in 0..3 {
                out.extend(raw.iter().skip(ch).step_by(3));
            }
        }
        _ => return Err(DataError::config(format!("image folders give 1 (grey) or 3 (RGB) channels, found {c}"))),
    }
    Ok(())
}

fn load_classes(dir: &Path, classes: &[String], shape: [usize; 3], resize: bool) -> Result<Dataset, DataError> {
    let mut images = Vec::new();
    let mut labels = Vec::new();
    for class_dir in sorted_entries(dir, true)? {
        let name = class_name(&class_dir);
        let Some(label) = classes.iter().position(|c| *c == name) else {
            return Err(DataError::Inconsistent { path: class_dir, message: format!("class folder {name:?} is not among the training classes {classes:?}") });
        };
        for file in sorted_entries(&class_dir, false)? {
            read_image(&file, shape, resize, &mut images)?;
            labels.push(label as u32);
        }
    }
    Dataset::new(images, labels, shape, classes.len(), classes.to_vec(), dir.to_path_buf())
}

fn classes_of(dir: &Path) -> Result<Vec<String>, DataError> {
    let classes: Vec<String> = sorted_entries(dir, true)?.iter().map(|p| class_name(p)).collect();
    if classes.is_empty() {
        return Err(DataError::Empty { path: dir.to_path_buf(), what: "no class sub-folders".into(), hint: FOLDER_HINT.into() });
    }
    Ok(classes)
}

/// The class names of an image folder (the training folder's with a train/test layout), as
/// [`load_folder`] labels them, without reading any image.
pub fn folder_class_names(root: &Path) -> Result<Vec<String>, DataError> {
    let (train_dir, test_dir) = (root.join("train"), root.join("test"));
    if train_dir.is_dir() && test_dir.is_dir() {
        classes_of(&train_dir)
    } else {
        classes_of(root)
    }
}

/// The number of training and test images an image folder yields with [`load_folder`] (the same
/// layout rules and, without a train/test layout, the same per-class rounding of
/// `test_fraction`), counted from file names without reading any image.
pub fn folder_image_counts(root: &Path, test_fraction: f32) -> Result<(u64, u64), DataError> {
    let count =
        |dir: &Path| -> Result<Vec<u64>, DataError> { sorted_entries(dir, true)?.iter().map(|c| sorted_entries(c, false).map(|f| f.len() as u64)).collect() };
    let (train_dir, test_dir) = (root.join("train"), root.join("test"));
    if train_dir.is_dir() && test_dir.is_dir() {
        return Ok((count(&train_dir)?.iter().sum(), count(&test_dir)?.iter().sum()));
    }
    let per_class = count(root)?;
    let test: u64 = per_class.iter().map(|&n| (test_fraction as f64 * n as f64).round() as u64).sum();
    Ok((per_class.iter().sum::<u64>() - test, test))
}

/// Loads an image folder. With `ROOT/train` and `ROOT/test` present those are the split; otherwise a seeded,
/// stratified `test_fraction` of `ROOT/<class>/...` becomes the test set.
pub fn load_folder(root: &Path, shape: [usize; 3], test_fraction: f32, resize: bool, seed: u64) -> Result<Split, DataError> {
    if shape[0] != 1 && shape[0] != 3 || shape[1] == 0 || shape[2] == 0 || shape[1] > 1 << 15 || shape[2] > 1 << 15 {
        return Err(DataError::config(format!("image folder shape must be [1 or 3, H, W] with 0 < H, W <= 32768, found {shape:?}")));
    }
    if !root.is_dir() {
        return Err(DataError::Missing { path: root.to_path_buf(), what: "image folder".into(), hint: FOLDER_HINT.into() });
    }
    let (train_dir, test_dir) = (root.join("train"), root.join("test"));
    if train_dir.is_dir() && test_dir.is_dir() {
        let classes = classes_of(&train_dir)?;
        let train = load_classes(&train_dir, &classes, shape, resize)?;
        let test = load_classes(&test_dir, &classes, shape, resize)?;
        return Ok(Split { train, test });
    }
    let classes = classes_of(root)?;
    let all = load_classes(root, &classes, shape, resize)?;
    if all.is_empty() {
        return Err(DataError::Empty { path: root.to_path_buf(), what: "no .png/.jpg images".into(), hint: FOLDER_HINT.into() });
    }
    let (train, test) = all.split_fraction(test_fraction, seed)?;
    Ok(Split { train, test })
}
