//! Figures: training curves, comparisons of runs, first-layer filters.
//!
//! Curves are drawn with plotters into PNG and SVG (the font is embedded, so figures look the same
//! on every machine); filters are written pixel by pixel as a PNG grid, in RGB when the layer reads
//! 3 channels (the seed's Figure 2), in grey otherwise.

use super::error::RunError;
use super::metrics::Row;
use plotters::prelude::*;
use std::path::Path;
use std::sync::Once;

static FONT: &[u8] = include_bytes!("../../assets/fonts/DejaVuSans.ttf");
static REGISTER: Once = Once::new();

fn font() {
    REGISTER.call_once(|| {
        let _ = plotters::style::register_font("sans-serif", FontStyle::Normal, FONT);
    });
}

/// One labelled series of metrics (a run).
pub struct Series<'a> {
    pub label: String,
    pub rows: &'a [Row],
    /// What the evaluations read: `"test"`, or `"validation"` for a run with `validation N`.
    pub evaluated_on: &'static str,
}

fn err(path: &Path, e: impl std::fmt::Display) -> RunError {
    RunError::new("E0504", format!("cannot draw `{}`: {e}", path.display()))
}

const COLORS: [RGBColor; 8] = [
    RGBColor(31, 119, 180),
    RGBColor(255, 127, 14),
    RGBColor(44, 160, 44),
    RGBColor(214, 39, 40),
    RGBColor(148, 103, 189),
    RGBColor(140, 86, 75),
    RGBColor(227, 119, 194),
    RGBColor(127, 127, 127),
];

/// Loss (train solid, test dashed-as-points) and test accuracy against iterations, one colour
/// per series. Writes `stem.png` and `stem.svg`.
pub fn curves(series: &[Series], title: &str, stem: &Path) -> Result<(), RunError> {
    font();
    let png = stem.with_extension("png");
    let svg = stem.with_extension("svg");
    draw(BitMapBackend::new(&png, (1280, 480)).into_drawing_area(), series, title).map_err(|e| err(&png, e))?;
    draw(SVGBackend::new(&svg, (1280, 480)).into_drawing_area(), series, title).map_err(|e| err(&svg, e))?;
    Ok(())
}

fn draw<DB: DrawingBackend>(root: DrawingArea<DB, plotters::coord::Shift>, series: &[Series], title: &str) -> Result<(), String>
where
    DB::ErrorType: 'static,
{
    let e = |x: DrawingAreaErrorKind<DB::ErrorType>| x.to_string();
    root.fill(&WHITE).map_err(e)?;
    let root = root.titled(title, ("sans-serif", 22)).map_err(e)?;
    let (left, right) = root.split_horizontally(640);
    let max_it = series.iter().flat_map(|s| s.rows.iter().map(|r| r.iteration)).max().unwrap_or(1).max(1) as f64;
    let losses = series.iter().flat_map(|s| s.rows.iter().flat_map(|r| [r.train_loss, r.test_loss])).flatten();
    let max_loss = losses.filter(|x| x.is_finite()).fold(0.0f64, f64::max).max(1e-3) * 1.05;

    let mut chart = ChartBuilder::on(&left)
        .caption("loss", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..max_it, 0f64..max_loss)
        .map_err(e)?;
    chart.configure_mesh().x_desc("iteration").y_desc("loss").x_label_formatter(&|x| format!("{x:.0}")).draw().map_err(e)?;
    for (i, s) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let train: Vec<(f64, f64)> = s.rows.iter().filter_map(|r| r.train_loss.map(|l| (r.iteration as f64, l))).collect();
        let test: Vec<(f64, f64)> = s.rows.iter().filter_map(|r| r.test_loss.map(|l| (r.iteration as f64, l))).collect();
        chart
            .draw_series(LineSeries::new(train, c.stroke_width(1)))
            .map_err(e)?
            .label(format!("{} train", s.label))
            // The legend draws each series as it is drawn: train thin, test thick with points.
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(1)));
        chart
            .draw_series(LineSeries::new(test.clone(), c.stroke_width(3)).point_size(3))
            .map_err(e)?
            .label(format!("{} {}", s.label, s.evaluated_on))
            .legend(move |(x, y)| EmptyElement::at((x, y)) + PathElement::new(vec![(0, 0), (18, 0)], c.stroke_width(3)) + Circle::new((9, 0), 3, c.filled()));
    }
    chart.configure_series_labels().background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(e)?;

    // Zoom the accuracy axis to the measured range (in steps of 10 points).
    let lowest = series.iter().flat_map(|s| s.rows.iter().filter_map(|r| r.test_accuracy)).fold(1.0f64, f64::min);
    let floor = ((100.0 * lowest - 5.0) / 10.0).floor().clamp(0.0, 9.0) * 10.0;
    let mut acc = ChartBuilder::on(&right)
        .caption(if series.iter().all(|s| s.evaluated_on == "validation") { "validation accuracy" } else { "test accuracy" }, ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(56)
        .build_cartesian_2d(0f64..max_it, floor..100f64)
        .map_err(e)?;
    acc.configure_mesh().x_desc("iteration").y_desc("accuracy (%)").x_label_formatter(&|x| format!("{x:.0}")).draw().map_err(e)?;
    for (i, s) in series.iter().enumerate() {
        let c = COLORS[i % COLORS.len()];
        let pts: Vec<(f64, f64)> = s.rows.iter().filter_map(|r| r.test_accuracy.map(|a| (r.iteration as f64, 100.0 * a))).collect();
        let best = pts.iter().map(|p| p.1).fold(f64::NAN, f64::max);
        acc.draw_series(LineSeries::new(pts, c.stroke_width(2)).point_size(2))
            .map_err(e)?
            .label(if best.is_finite() { format!("{} (best {best:.2}%)", s.label) } else { s.label.clone() })
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 18, y)], c.stroke_width(2)));
    }
    acc.configure_series_labels().position(SeriesLabelPosition::LowerRight).background_style(WHITE.mix(0.8)).border_style(BLACK).draw().map_err(e)?;
    root.present().map_err(e)?;
    Ok(())
}

/// The filters of a conv weight `[O, C, kh, kw]` as a grid image: each filter normalised to its
/// own min..max, drawn `scale` pixels per weight, RGB when C = 3, else channel 0 in grey.
pub fn filters(weight: &[f32], shape: &[usize], path: &Path) -> Result<(), RunError> {
    let [o, c, kh, kw] = match shape {
        [o, c, kh, kw] => [*o, *c, *kh, *kw],
        _ => return Err(RunError::new("E0504", format!("filters: expected a 4-D conv weight, got shape {shape:?}"))),
    };
    if o == 0 || weight.len() != o * c * kh * kw {
        return Err(RunError::new("E0504", "filters: weight length does not match its shape"));
    }
    let scale = (96 / kh.max(kw)).clamp(4, 32);
    let pad = 4;
    let cols = (o as f64).sqrt().ceil() as usize;
    let rows = o.div_ceil(cols);
    let (cw, ch) = (kw * scale + pad, kh * scale + pad);
    let (w, h) = (cols * cw + pad, rows * ch + pad);
    let mut img = image::RgbImage::from_pixel(w as u32, h as u32, image::Rgb([255, 255, 255]));
    let per = c * kh * kw;
    for f in 0..o {
        let vals = &weight[f * per..(f + 1) * per];
        let (lo, hi) = vals.iter().fold((f32::INFINITY, f32::NEG_INFINITY), |(a, b), &x| (a.min(x), b.max(x)));
        let norm = |x: f32| if hi > lo { ((x - lo) / (hi - lo) * 255.0).round() as u8 } else { 128 };
        let (ox, oy) = (pad + (f % cols) * cw, pad + (f / cols) * ch);
        for y in 0..kh * scale {
            for x in 0..kw * scale {
                let (u, v) = (y / scale, x / scale);
                let at = |ch: usize| vals[ch * kh * kw + u * kw + v];
                let px = if c == 3 { [norm(at(0)), norm(at(1)), norm(at(2))] } else { [norm(at(0)); 3] };
                img.put_pixel((ox + x) as u32, (oy + y) as u32, image::Rgb(px));
            }
        }
    }
    img.save(path).map_err(|e| err(path, e))
}

/// A confusion matrix as a PNG heat map: rows are the true classes, columns the predicted ones,
/// each cell shaded by its share of the row and labelled with its count.
pub fn confusion(counts: &[Vec<u64>], names: &[String], title: &str, path: &Path) -> Result<(), RunError> {
    font();
    let n = counts.len();
    if n == 0 || names.len() != n || counts.iter().any(|r| r.len() != n) {
        return Err(RunError::new("E0504", "confusion: the matrix is not square or its class names do not match"));
    }
    let cell = (600 / n as u32).clamp(14, 60);
    let label_w = 12 + 8 * names.iter().map(|s| s.chars().count()).max().unwrap_or(1).min(24) as u32;
    let (w, h) = (label_w + cell * n as u32 + 20, 70 + label_w + cell * n as u32);
    let root = BitMapBackend::new(path, (w, h)).into_drawing_area();
    let e = |x: &dyn std::fmt::Display| err(path, x);
    root.fill(&WHITE).map_err(|x| e(&x))?;
    let text = |s: &str, size: u32| (s.to_string(), ("sans-serif", size).into_font());
    root.draw(&Text::new(text(title, 16).0, (10, 10), text(title, 16).1)).map_err(|x| e(&x))?;
    let (x0, y0) = (label_w as i32, 40i32);
    for (r, row) in counts.iter().enumerate() {
        let total = row.iter().sum::<u64>().max(1) as f64;
        for (c, &v) in row.iter().enumerate() {
            let share = v as f64 / total;
            let shade = (255.0 * (1.0 - share)) as u8;
            let colour = if r == c { RGBColor(shade, 255 - (255 - shade) / 3, shade) } else { RGBColor(255, shade, shade) };
            let (x, y) = (x0 + c as i32 * cell as i32, y0 + r as i32 * cell as i32);
            root.draw(&Rectangle::new([(x, y), (x + cell as i32, y + cell as i32)], colour.filled())).map_err(|x| e(&x))?;
            root.draw(&Rectangle::new([(x, y), (x + cell as i32, y + cell as i32)], BLACK.mix(0.2))).map_err(|x| e(&x))?;
            if cell >= 24 {
                let size = (cell / 3).clamp(8, 14);
                root.draw(&Text::new(v.to_string(), (x + 3, y + (cell as i32 - size as i32) / 2), ("sans-serif", size).into_font())).map_err(|x| e(&x))?;
            }
        }
        let name: String = names[r].chars().take(24).collect();
        root.draw(&Text::new(name, (6, y0 + r as i32 * cell as i32 + cell as i32 / 3), ("sans-serif", 12).into_font())).map_err(|x| e(&x))?;
    }
    for (c, name) in names.iter().enumerate() {
        let name: String = name.chars().take(24).collect();
        let style = ("sans-serif", 12).into_font().transform(FontTransform::Rotate90);
        root.draw(&Text::new(name, (x0 + c as i32 * cell as i32 + cell as i32 / 2 + 6, y0 + n as i32 * cell as i32 + 6), style)).map_err(|x| e(&x))?;
    }
    root.present().map_err(|x| e(&x))
}
