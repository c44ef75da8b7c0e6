//! The run's figures as PNG bytes: image grids drawn straight from pixels, and plots with axes,
//! labels and colour bars drawn with plotters on a bitmap, in a font bundled with the crate.

use std::sync::Once;

use image::{ImageEncoder, codecs::png::PngEncoder};
use ndarray::ArrayView2;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

use crate::EvaluationError;

/// DejaVu Sans (free licence, see assets/README.md): bundled so that figures render the same on
/// every machine, without a system font library.
static FONT: &[u8] = include_bytes!("../assets/DejaVuSans.ttf");
const FAMILY: &str = "sans-serif";

fn register_font() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            panic!("the bundled font does not parse");
        }
    });
}

fn figure_error(e: impl std::fmt::Display) -> EvaluationError {
    EvaluationError::Figure(e.to_string())
}

/// An axis label: plain decimals for moderate magnitudes, scientific notation otherwise.
fn compact(v: f64) -> String {
    let a = v.abs();
    if a == 0.0 {
        "0".into()
    } else if (0.01..10_000.0).contains(&a) {
        let text = format!("{v:.3}");
        text.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        format!("{v:.2e}")
    }
}

/// The span of the finite `values`, widened by `pad` of its length on each side; a unit span
/// around a single value, so that an axis always has a length.
fn span(values: impl Iterator<Item = f64>, pad: f64) -> (f64, f64) {
    let finite = values.filter(|v| v.is_finite());
    let (lo, hi) = finite.fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), v| (lo.min(v), hi.max(v)));
    match (lo < hi, lo.is_finite()) {
        (true, _) => (lo - pad * (hi - lo), hi + pad * (hi - lo)),
        (false, true) => (lo - 1.0, lo + 1.0),
        (false, false) => (-1.0, 1.0),
    }
}

/// PNG bytes of an 8-bit image, `channels` = 1 (gray) or 3 (RGB).
fn encode_png(pixels: &[u8], width: u32, height: u32, channels: u8) -> Result<Vec<u8>, EvaluationError> {
    let colour = if channels == 1 { image::ExtendedColorType::L8 } else { image::ExtendedColorType::Rgb8 };
    let mut png = Vec::new();
    PngEncoder::new(&mut png).write_image(pixels, width, height, colour).map_err(figure_error)?;
    Ok(png)
}

/// A grid of `columns` images per row (each `height × width`, one per row of `images`), every pixel
/// drawn as an `upscale × upscale` block, separated by a 2-pixel mid-grey border: a gray PNG.
pub fn image_grid(
    images: ArrayView2<'_, u8>,
    height: usize,
    width: usize,
    columns: usize,
    upscale: usize,
) -> Result<Vec<u8>, EvaluationError> {
    const GAP: usize = 2;
    let rows = images.nrows().div_ceil(columns).max(1);
    let (cell_h, cell_w) = (height * upscale, width * upscale);
    let (out_h, out_w) = (rows * cell_h + (rows + 1) * GAP, columns * cell_w + (columns + 1) * GAP);
    let mut out = vec![128u8; out_h * out_w];
    for (k, image) in images.outer_iter().enumerate() {
        let (top, left) = (GAP + (k / columns) * (cell_h + GAP), GAP + (k % columns) * (cell_w + GAP));
        for y in 0..cell_h {
            for x in 0..cell_w {
                out[(top + y) * out_w + left + x] = image[(y / upscale) * width + x / upscale];
            }
        }
    }
    encode_png(&out, out_w as u32, out_h as u32, 1)
}

/// How a map's values become colours.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum ColourScale {
    /// Viridis from the smallest to the largest value.
    Sequential,
    /// Blue–white–red, symmetric about zero.
    Diverging,
}

/// One panel of a map figure: a value per pixel (NaN where there is none, drawn grey).
#[derive(Clone, Debug)]
pub struct Map {
    pub title: String,
    pub values: Vec<f64>,
    pub scale: ColourScale,
}

impl Map {
    /// The colour-bar range: the finite values' span (symmetric about 0 when diverging).
    fn range(&self) -> (f64, f64) {
        let (lo, hi) = span(self.values.iter().copied(), 0.0);
        match self.scale {
            ColourScale::Sequential => (lo, hi),
            ColourScale::Diverging => (-lo.abs().max(hi.abs()), lo.abs().max(hi.abs())),
        }
    }

    fn colour(&self, v: f64, (lo, hi): (f64, f64)) -> RGBColor {
        if !v.is_finite() {
            return RGBColor(160, 160, 160);
        }
        let t = ((v - lo) / (hi - lo)).clamp(0.0, 1.0) as f32;
        match self.scale {
            ColourScale::Sequential => ViridisRGB.get_color(t),
            ColourScale::Diverging => DerivedColorMap::new(&[
                RGBColor(33, 102, 172),
                RGBColor(247, 247, 247),
                RGBColor(178, 24, 43),
            ])
            .get_color(t),
        }
    }
}

/// Maps on a `height × width` grid, `columns` panels per row, each with its title and a labelled
/// colour bar, under a figure title: an RGB PNG.
pub fn map_figure(
    title: &str,
    maps: &[Map],
    height: usize,
    width: usize,
    columns: usize,
) -> Result<Vec<u8>, EvaluationError> {
    register_font();
    let columns = columns.clamp(1, maps.len().max(1));
    let rows = maps.len().div_ceil(columns).max(1);
    let (panel_w, panel_h) = (370u32, 300u32);
    let (w, h) = (panel_w * columns as u32, panel_h * rows as u32 + 40);
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        let root = root.titled(title, (FAMILY, 20)).map_err(figure_error)?;
        for (panel, map) in root.split_evenly((rows, columns)).iter().zip(maps) {
            let (image_area, bar_area) = panel.split_horizontally(panel_w - 80);
            let range = map.range();
            let mut chart = ChartBuilder::on(&image_area)
                .caption(&map.title, (FAMILY, 14))
                .margin(6)
                .build_cartesian_2d(0..width as i32, height as i32..0)
                .map_err(figure_error)?;
            chart
                .draw_series(map.values.iter().enumerate().map(|(k, &v)| {
                    let (r, c) = ((k / width) as i32, (k % width) as i32);
                    Rectangle::new([(c, r), (c + 1, r + 1)], map.colour(v, range).filled())
                }))
                .map_err(figure_error)?;
            colour_bar(&bar_area, map, range)?;
        }
        root.present().map_err(figure_error)?;
    }
    encode_png(&rgb, w, h, 3)
}

/// A vertical colour bar for `map` over `range` with five labelled ticks, drawn in pixels: the
/// labels sit right of the bar, left-aligned, so no estimate of their width can clip them.
fn colour_bar<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    map: &Map,
    (lo, hi): (f64, f64),
) -> Result<(), EvaluationError> {
    let (_, height) = area.dim_in_pixel();
    let (left, right, top, bottom) = (4i32, 20i32, 32i32, height as i32 - 12);
    let rows = (bottom - top).max(1);
    for y in top..bottom {
        // Row y shows the value at its centre; the top row is the largest value.
        let v = hi - (hi - lo) * (f64::from(y - top) + 0.5) / f64::from(rows);
        area.draw(&Rectangle::new([(left, y), (right, y + 1)], map.colour(v, (lo, hi)).filled()))
            .map_err(figure_error)?;
    }
    area.draw(&Rectangle::new([(left, top), (right, bottom)], BLACK.stroke_width(1)))
        .map_err(figure_error)?;
    let style = TextStyle::from((FAMILY, 11).into_font()).pos(Pos::new(HPos::Left, VPos::Center));
    for k in 0..5 {
        let t = f64::from(k) / 4.0;
        let v = hi - t * (hi - lo);
        // A tick within a rounding error of zero reads 0.
        let v = if v.abs() < 1e-9 * (hi - lo) { 0.0 } else { v };
        let y = top + (t * f64::from(rows)).round() as i32;
        area.draw(&PathElement::new([(right, y), (right + 4, y)], BLACK)).map_err(figure_error)?;
        area.draw(&Text::new(compact(v), (right + 7, y), style.clone())).map_err(figure_error)?;
    }
    Ok(())
}

/// One line of a line chart.
#[derive(Clone, Debug)]
pub struct Series {
    pub label: String,
    pub points: Vec<(f64, f64)>,
}

/// Line charts under one title, one panel per series stacked vertically, each with its own y axis
/// (a training objective and a held-out likelihood live on unrelated scales) labelled with the
/// series' label, sharing the x axis label: an RGB PNG.
pub fn line_charts(title: &str, x_label: &str, series: &[Series]) -> Result<Vec<u8>, EvaluationError> {
    register_font();
    let finite = |s: &Series| {
        s.points.iter().copied().filter(|(x, y)| x.is_finite() && y.is_finite()).collect::<Vec<_>>()
    };
    if series.is_empty() || series.iter().any(|s| finite(s).is_empty()) {
        return Err(EvaluationError::Figure(format!("`{title}`: a series has no finite point to draw")));
    }
    let all_x = || series.iter().flat_map(finite).map(|p| p.0);
    let (x0, x1) = span(all_x(), 0.03);
    let (w, h) = (720u32, 40 + 380 * series.len() as u32);
    let mut rgb = vec![255u8; (w * h * 3) as usize];
    {
        let root = BitMapBackend::with_buffer(&mut rgb, (w, h)).into_drawing_area();
        let root = root.titled(title, (FAMILY, 18)).map_err(figure_error)?;
        let palette = [RGBColor(31, 119, 180), RGBColor(214, 39, 40), RGBColor(44, 160, 44)];
        for (k, (panel, s)) in root.split_evenly((series.len(), 1)).iter().zip(series).enumerate() {
            let points = finite(s);
            let (y0, y1) = span(points.iter().map(|p| p.1), 0.03);
            let mut chart = ChartBuilder::on(panel)
                .margin(12)
                .x_label_area_size(40)
                .y_label_area_size(90)
                .build_cartesian_2d(x0..x1, y0..y1)
                .map_err(figure_error)?;
            chart
                .configure_mesh()
                .x_desc(x_label)
                .y_desc(s.label.as_str())
                .x_label_formatter(&|v| compact(*v))
                .y_label_formatter(&|v| compact(*v))
                .label_style((FAMILY, 12))
                .axis_desc_style((FAMILY, 14))
                .draw()
                .map_err(figure_error)?;
            let colour = palette[k % palette.len()];
            chart.draw_series(LineSeries::new(points, colour.stroke_width(2))).map_err(figure_error)?;
        }
        root.present().map_err(figure_error)?;
    }
    encode_png(&rgb, w, h, 3)
}
