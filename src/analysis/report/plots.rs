//! The report's figures, drawn with `plotters`: line charts (one or a grid of small
//! multiples, optionally with a min–max band), grouped bar charts (vertical or horizontal) and
//! histograms. Every figure is a [`Figure`], drawn once for any backend: [`svg`] gives the
//! inline `<svg>` of the HTML report, [`png`] writes the PNG of the Markdown report.
//!
//! Text is laid out (and, for PNG, rasterised: see `raster`) with the vendored DejaVu Sans (`assets/fonts/`, Bitstream
//! Vera licence), registered with plotters' `ab_glyph` font table under the family
//! `sans-serif`, so no system font library is needed. The SVG names the family only; the
//! browser draws it with its own sans-serif font.

use std::path::Path;
use std::sync::Once;

use std::ops::Range;

use plotters::coord::ranged1d::{DefaultFormatting, KeyPointHint};
use plotters::coord::types::RangedCoordf64;
use plotters::coord::Shift;
use plotters::prelude::*;

/// DejaVu Sans 2.37 (see `assets/fonts/LICENSE-DejaVu.txt`).
pub(crate) static FONT: &[u8] = include_bytes!("../../../assets/fonts/DejaVuSans.ttf");

const FAMILY: &str = "sans-serif";
// Font sizes as plotters takes them: it draws text at size / 1.24 px per em.
const TITLE_PX: u32 = 21;
const LABEL_PX: u32 = 18;
const TICK_PX: u32 = 16;

/// Series colours (Tableau 10): distinct in print and for the common colour blindnesses.
pub(crate) const PALETTE: [RGBColor; 10] = [
    RGBColor(78, 121, 167),
    RGBColor(242, 142, 43),
    RGBColor(225, 87, 89),
    RGBColor(118, 183, 178),
    RGBColor(89, 161, 79),
    RGBColor(237, 201, 72),
    RGBColor(176, 122, 161),
    RGBColor(255, 157, 167),
    RGBColor(156, 117, 95),
    RGBColor(186, 176, 172),
];

/// Reference/guide lines (the Lorenz diagonal, a reference histogram's outline).
pub(crate) const GREY: RGBColor = RGBColor(120, 120, 120);

pub(crate) fn ensure_font() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        // The bytes are a font file compiled into the binary: failing to parse them is a
        // build defect, caught by every plot test.
        if plotters::style::register_font(FAMILY, FontStyle::Normal, FONT).is_err() {
            tracing::error!("the vendored DejaVu Sans font does not parse");
        }
    });
}

type DrawResult<DB> = Result<(), DrawingAreaErrorKind<<DB as DrawingBackend>::ErrorType>>;

/// A figure of a fixed pixel size, drawable on any plotters backend.
pub(crate) trait Figure {
    /// Width and height in pixels (SVG user units).
    fn size(&self) -> (u32, u32);
    /// Draws on `root` (already filled white).
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB>;
}

/// The figure as an `<svg>` element (plotters' SVG, `xmlns` only, no external reference).
///
/// # Errors
/// The drawing error, as text.
pub(crate) fn svg(fig: &impl Figure) -> Result<String, String> {
    ensure_font();
    let mut out = String::new();
    {
        let root = SVGBackend::with_string(&mut out, fig.size()).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        fig.draw(&root).map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())?;
    }
    Ok(out)
}

/// Writes the figure as a PNG file.
///
/// # Errors
/// The drawing, encoding or I/O error, as text.
pub(crate) fn png(fig: &impl Figure, path: &Path) -> Result<(), String> {
    let bytes = super::raster::png_bytes(fig)?;
    std::fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

fn font(px: u32) -> TextStyle<'static> {
    (FAMILY, px).into_font().color(&BLACK)
}

/// `lo..hi` of the values, padded by 8 % (a flat series by ±10 % of its value, or ±0.5),
/// clamped to `bounds` when given.
fn padded_range(values: impl Iterator<Item = f64>, bounds: Option<(f64, f64)>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in values.filter(|v| v.is_finite()) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if !lo.is_finite() {
        return bounds.unwrap_or((0.0, 1.0));
    }
    let (lo, hi) = if hi - lo < 1e-12 {
        let pad = if lo.abs() > 1e-9 { lo.abs() * 0.1 } else { 0.5 };
        (lo - pad, hi + pad)
    } else {
        let pad = (hi - lo) * 0.08;
        (lo - pad, hi + pad)
    };
    match bounds {
        Some((b0, b1)) => {
            let (l, h) = (lo.max(b0), hi.min(b1));
            if h > l {
                (l, h)
            } else {
                (b0, b1)
            }
        }
        None => (lo, hi),
    }
}

/// Integer key points for an x axis of rounds: all of them up to 12, else about 10.
fn round_ticks(lo: f64, hi: f64) -> Vec<f64> {
    let (a, b) = (lo.ceil() as i64, hi.floor() as i64);
    if b < a {
        return Vec::new();
    }
    let n = (b - a + 1) as usize;
    let step = if n <= 12 { 1 } else { n.div_ceil(10) as i64 };
    (a..=b).step_by(step as usize).map(|x| x as f64).collect()
}

/// About `max_n` evenly spaced "nice" ticks (steps 1, 2, 2.5 or 5 times a power of ten; at
/// least 1 when `integer`) covering `lo..=hi`, and the decimals their labels need.
fn nice_ticks(lo: f64, hi: f64, max_n: usize, integer: bool) -> (Vec<f64>, usize) {
    let span = hi - lo;
    if span.is_nan() || span <= 0.0 || !span.is_finite() {
        return (vec![lo], 0);
    }
    let raw = span / max_n.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let mut step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * mag);
    if integer {
        step = step.max(1.0).round();
    }
    let decimals = if step >= 1.0 {
        0
    } else {
        // 0.25 needs two decimals, 0.2 one.
        let d = (-step.log10()).ceil() as usize;
        if ((step * 10f64.powi(d as i32)).round() - step * 10f64.powi(d as i32)).abs() > 1e-6 {
            d + 1
        } else {
            d
        }
    };
    let first = (lo / step - 1e-9).ceil() as i64;
    let last = (hi / step + 1e-9).floor() as i64;
    let ticks = (first..=last).map(|k| k as f64 * step).collect();
    (ticks, decimals)
}

/// A tick label with `decimals` decimals (no "-0").
fn fmt_fixed(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    if s.starts_with('-') && s.trim_start_matches(['-', '0', '.']).is_empty() {
        s[1..].to_string()
    } else {
        s
    }
}

/// A linear f64 axis with chosen tick positions (plotters' own `with_key_points` wrapper
/// cannot format its labels in 0.3.7). No light grid lines.
#[derive(Clone)]
struct Ticked {
    inner: RangedCoordf64,
    ticks: Vec<f64>,
}

fn ticked(lo: f64, hi: f64, ticks: Vec<f64>) -> Ticked {
    Ticked {
        inner: (lo..hi).into(),
        ticks,
    }
}

impl Ranged for Ticked {
    type FormatOption = DefaultFormatting;
    type ValueType = f64;
    fn map(&self, value: &f64, limit: (i32, i32)) -> i32 {
        self.inner.map(value, limit)
    }
    fn key_points<H: KeyPointHint>(&self, hint: H) -> Vec<f64> {
        if hint.weight().allow_light_points() {
            Vec::new()
        } else {
            self.ticks.clone()
        }
    }
    fn range(&self) -> Range<f64> {
        self.inner.range()
    }
}

/// One legend entry: a colour, a dashed flag and a name.
pub(crate) type LegendEntry = (RGBColor, bool, String);

/// Draws legend entries left to right, wrapping lines, in `area`.
fn draw_legend_row<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> DrawResult<DB> {
    let style = font(TICK_PX + 1);
    let (w, _) = area.dim_in_pixel();
    let (mut x, mut y) = (8i32, 6i32);
    for (color, dashed, name) in entries {
        let (tw, _) = area.estimate_text_size(name, &style)?;
        let need = 30 + tw as i32 + 18;
        if x + need > w as i32 && x > 8 {
            x = 8;
            y += 18;
        }
        draw_swatch(area, (x, y + 7), *color, *dashed)?;
        area.draw(&Text::new(name.clone(), (x + 28, y), style.clone()))?;
        x += need;
    }
    Ok(())
}

/// Draws legend entries top to bottom in `area`.
fn draw_legend_column<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> DrawResult<DB> {
    let style = font(TICK_PX + 1);
    for (i, (color, dashed, name)) in entries.iter().enumerate() {
        let y = 40 + 20 * i as i32;
        draw_swatch(area, (6, y + 7), *color, *dashed)?;
        area.draw(&Text::new(name.clone(), (32, y), style.clone()))?;
    }
    Ok(())
}

fn draw_swatch<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    (x, y): (i32, i32),
    color: RGBColor,
    dashed: bool,
) -> DrawResult<DB> {
    let style = color.stroke_width(3);
    if dashed {
        area.draw(&PathElement::new(vec![(x, y), (x + 8, y)], style))?;
        area.draw(&PathElement::new(vec![(x + 14, y), (x + 22, y)], style))?;
    } else {
        area.draw(&PathElement::new(vec![(x, y), (x + 22, y)], style))?;
    }
    Ok(())
}

fn draw_no_data<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    title: &str,
    why: &str,
) -> DrawResult<DB> {
    let (w, h) = area.dim_in_pixel();
    area.draw(&Text::new(
        title.to_string(),
        (12, 8),
        font(TITLE_PX).color(&BLACK),
    ))?;
    let style = font(LABEL_PX).color(&GREY);
    let (tw, _) = area.estimate_text_size(why, &style)?;
    area.draw(&Text::new(
        why.to_string(),
        ((w as i32 - tw as i32) / 2, h as i32 / 2),
        style,
    ))?;
    Ok(())
}

/// One line of a [`LineChart`]: `(x, y)` points, `None` for an undefined y (a gap), and an
/// optional `(x, (lo, hi))` band drawn under it.
#[derive(Clone, Debug)]
pub(crate) struct Series {
    /// Legend name.
    pub name: String,
    /// Points in x order.
    pub points: Vec<(f64, Option<f64>)>,
    /// Min–max band, in x order.
    pub band: Vec<(f64, Option<(f64, f64)>)>,
    /// Colour.
    pub color: RGBColor,
    /// Dashed line (a guide, e.g. the diagonal of a Lorenz curve).
    pub dashed: bool,
}

impl Series {
    /// A solid line.
    pub(crate) fn new(name: &str, points: Vec<(f64, Option<f64>)>, color: RGBColor) -> Self {
        Self {
            name: name.to_string(),
            points,
            band: Vec::new(),
            color,
            dashed: false,
        }
    }
}

/// Where a line chart puts its legend.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum LegendAt {
    /// A row under the chart.
    Below,
    /// A column right of the chart (many series).
    Right,
}

/// A line chart.
#[derive(Clone, Debug)]
pub(crate) struct LineChart {
    /// Caption.
    pub title: String,
    /// X axis description.
    pub x_desc: String,
    /// Y axis description.
    pub y_desc: String,
    /// The lines.
    pub series: Vec<Series>,
    /// X values are rounds: integer ticks.
    pub x_rounds: bool,
    /// Fixed x range (else the data's).
    pub x_range: Option<(f64, f64)>,
    /// Fixed y range (else the data's, padded).
    pub y_range: Option<(f64, f64)>,
    /// Limits for the padded data range (e.g. `(0, 1)` for a share).
    pub y_bounds: Option<(f64, f64)>,
    /// Legend placement.
    pub legend: LegendAt,
    /// Pixel size when drawn alone.
    pub size: (u32, u32),
}

impl LineChart {
    fn has_data(&self) -> bool {
        self.series
            .iter()
            .any(|s| s.points.iter().any(|(_, y)| y.is_some()))
    }

    fn draw_on<DB: DrawingBackend>(&self, area: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        if !self.has_data() {
            return draw_no_data(area, &self.title, "no values (every cell empty)");
        }
        let entries: Vec<LegendEntry> = self
            .series
            .iter()
            .map(|s| (s.color, s.dashed, s.name.clone()))
            .collect();
        let (w, h) = area.dim_in_pixel();
        let (plot, legend) = match self.legend {
            LegendAt::Below => {
                let rows = legend_rows(area, &entries, w)?;
                area.split_vertically(h.saturating_sub(12 + 18 * rows))
            }
            LegendAt::Right => {
                area.split_horizontally(w.saturating_sub(legend_width(area, &entries)?))
            }
        };
        let xs = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().map(|p| p.0));
        let (x0, x1) = self.x_range.unwrap_or_else(|| {
            let (lo, hi) = xs.fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                (a.min(x), b.max(x))
            });
            if !lo.is_finite() {
                (0.0, 1.0)
            } else if hi - lo < 1e-9 {
                (lo - 0.5, hi + 0.5)
            } else if self.x_rounds {
                (lo - 0.25, hi + 0.25)
            } else {
                (lo, hi)
            }
        });
        let (y0, y1) = self.y_range.unwrap_or_else(|| {
            let ys = self.series.iter().flat_map(|s| {
                s.points
                    .iter()
                    .filter_map(|p| p.1)
                    .chain(s.band.iter().filter_map(|b| b.1).flat_map(|(l, h)| [l, h]))
            });
            padded_range(ys, self.y_bounds)
        });
        let mut builder = ChartBuilder::on(&plot);
        builder
            .caption(&self.title, font(TITLE_PX))
            .margin(8)
            .margin_right(16)
            .x_label_area_size(50)
            .y_label_area_size(62);
        let (x_ticks, x_dec) = if self.x_rounds {
            (round_ticks(x0, x1), 0)
        } else {
            nice_ticks(x0, x1, 5, false)
        };
        let x_axis = ticked(x0, x1, x_ticks);
        let (y_ticks, y_dec) = nice_ticks(y0, y1, 6, false);
        let mut chart = builder.build_cartesian_2d(x_axis, ticked(y0, y1, y_ticks))?;
        chart
            .configure_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .axis_desc_style(font(LABEL_PX))
            .label_style(font(TICK_PX))
            .x_label_formatter(&|x| fmt_fixed(*x, x_dec))
            .y_label_formatter(&|y| fmt_fixed(*y, y_dec))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        let markers = self.series.iter().all(|s| s.points.len() <= 40);
        for s in &self.series {
            for seg in segments(&s.band, |b| b) {
                let mut poly: Vec<(f64, f64)> = seg.iter().map(|(x, (_, hi))| (*x, *hi)).collect();
                poly.extend(seg.iter().rev().map(|(x, (lo, _))| (*x, *lo)));
                chart.draw_series(std::iter::once(Polygon::new(
                    poly,
                    s.color.mix(0.18).filled(),
                )))?;
            }
        }
        for s in &self.series {
            let style = s.color.stroke_width(2);
            for seg in segments(&s.points, |y| y) {
                if s.dashed {
                    chart.draw_series(DashedLineSeries::new(seg.clone(), 6, 5, style))?;
                } else {
                    chart.draw_series(LineSeries::new(seg.clone(), style))?;
                }
                if markers {
                    chart.draw_series(
                        seg.iter()
                            .map(|&(x, y)| Circle::new((x, y), 3, s.color.filled())),
                    )?;
                }
            }
        }
        match self.legend {
            LegendAt::Below => draw_legend_row(&legend, &entries)?,
            LegendAt::Right => draw_legend_column(&legend, &entries)?,
        }
        Ok(())
    }
}

fn legend_rows<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
    w: u32,
) -> Result<u32, DrawingAreaErrorKind<DB::ErrorType>> {
    let style = font(TICK_PX + 1);
    let (mut x, mut rows) = (8i32, 1u32);
    for (_, _, name) in entries {
        let (tw, _) = area.estimate_text_size(name, &style)?;
        let need = 30 + tw as i32 + 18;
        if x + need > w as i32 && x > 8 {
            x = 8;
            rows += 1;
        }
        x += need;
    }
    Ok(rows)
}

fn legend_width<DB: DrawingBackend>(
    area: &DrawingArea<DB, Shift>,
    entries: &[LegendEntry],
) -> Result<u32, DrawingAreaErrorKind<DB::ErrorType>> {
    let style = font(TICK_PX + 1);
    let mut w = 0;
    for (_, _, name) in entries {
        w = w.max(area.estimate_text_size(name, &style)?.0);
    }
    Ok(w + 48)
}

/// Runs of consecutive defined values.
fn segments<T: Copy, U: Copy>(
    points: &[(f64, Option<T>)],
    f: impl Fn(T) -> U,
) -> Vec<Vec<(f64, U)>> {
    let mut out = Vec::new();
    let mut cur = Vec::new();
    for (x, v) in points {
        match v {
            Some(v) => cur.push((*x, f(*v))),
            None if !cur.is_empty() => out.push(std::mem::take(&mut cur)),
            None => {}
        }
    }
    if !cur.is_empty() {
        out.push(cur);
    }
    out
}

impl Figure for LineChart {
    fn size(&self) -> (u32, u32) {
        self.size
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        self.draw_on(root)
    }
}

/// Small multiples: line charts in a grid of `columns`, each panel `panel` pixels.
#[derive(Clone, Debug)]
pub(crate) struct Grid {
    /// The panels, row by row.
    pub panels: Vec<LineChart>,
    /// Panels per row.
    pub columns: usize,
    /// Pixel size of one panel.
    pub panel: (u32, u32),
}

impl Figure for Grid {
    fn size(&self) -> (u32, u32) {
        let rows = self.panels.len().div_ceil(self.columns.max(1)).max(1);
        (
            self.panel.0 * self.columns as u32,
            self.panel.1 * rows as u32,
        )
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let rows = self.panels.len().div_ceil(self.columns.max(1)).max(1);
        let areas = root.split_evenly((rows, self.columns.max(1)));
        for (p, a) in self.panels.iter().zip(areas.iter()) {
            p.draw_on(a)?;
        }
        Ok(())
    }
}

/// Orientation of a [`BarChart`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Orientation {
    /// Categories along x, values up.
    Vertical,
    /// Categories down the y axis (first at the top), values to the right.
    Horizontal,
}

/// Grouped bars: one group of bars per category, one bar per series.
#[derive(Clone, Debug)]
pub(crate) struct BarChart {
    /// Caption.
    pub title: String,
    /// Category axis description.
    pub cat_desc: String,
    /// Value axis description.
    pub value_desc: String,
    /// Category labels.
    pub categories: Vec<String>,
    /// `(name, colour, one value per category)`.
    pub groups: Vec<(String, RGBColor, Vec<f64>)>,
    /// Label each bar with its value, formatted by this many decimals and this suffix.
    pub value_labels: Option<(usize, &'static str)>,
    /// Values are counts: integer ticks.
    pub integer_values: bool,
    /// Orientation.
    pub orientation: Orientation,
    /// Pixel size.
    pub size: (u32, u32),
}

impl Figure for BarChart {
    fn size(&self) -> (u32, u32) {
        self.size
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let n = self.categories.len();
        let vmax = self
            .groups
            .iter()
            .flat_map(|g| g.2.iter().copied())
            .fold(0.0f64, f64::max);
        if n == 0 || vmax <= 0.0 {
            return draw_no_data(root, &self.title, "no values");
        }
        let entries: Vec<LegendEntry> = self
            .groups
            .iter()
            .map(|(name, c, _)| (*c, false, name.clone()))
            .collect();
        let (w, h) = root.dim_in_pixel();
        let rows = if entries.len() > 1 {
            legend_rows(root, &entries, w)?
        } else {
            0
        };
        let (plot, legend) =
            root.split_vertically(h.saturating_sub(if rows > 0 { 8 + 18 * rows } else { 0 }));
        // Room for the value labels past the longest bar.
        let vtop = vmax
            * if self.value_labels.is_some() {
                1.15
            } else {
                1.05
            };
        let centres: Vec<f64> = (0..n).map(|i| i as f64 + 0.5).collect();
        let k = self.groups.len().max(1) as f64;
        let bw = 0.8 / k;
        // Zero bars carry no label: a row of "0.0%" reads as clutter.
        let label = |v: f64| match self.value_labels {
            Some((d, suffix)) if v != 0.0 => format!("{v:.d$}{suffix}"),
            _ => String::new(),
        };
        let cat_label = |c: &f64| {
            let i = c.floor() as usize;
            self.categories.get(i).cloned().unwrap_or_default()
        };
        let (v_ticks, v_dec) = nice_ticks(0.0, vtop, 6, self.integer_values);
        let mut builder = ChartBuilder::on(&plot);
        builder
            .caption(&self.title, font(TITLE_PX))
            .margin(8)
            .margin_right(20);
        match self.orientation {
            Orientation::Vertical => {
                let mut chart = builder
                    .x_label_area_size(50)
                    .y_label_area_size(62)
                    .build_cartesian_2d(
                        ticked(0.0, n as f64, centres),
                        ticked(0.0, vtop, v_ticks.clone()),
                    )?;
                chart
                    .configure_mesh()
                    .disable_x_mesh()
                    .x_desc(&self.cat_desc)
                    .y_desc(&self.value_desc)
                    .axis_desc_style(font(LABEL_PX))
                    .label_style(font(TICK_PX))
                    .x_label_formatter(&cat_label)
                    .y_label_formatter(&|y| fmt_fixed(*y, v_dec))
                    .light_line_style(TRANSPARENT)
                    .bold_line_style(RGBColor(215, 215, 215))
                    .draw()?;
                for (g, (_, color, values)) in self.groups.iter().enumerate() {
                    let bars = values.iter().enumerate().map(|(i, &v)| {
                        let x = i as f64 + 0.1 + g as f64 * bw;
                        Rectangle::new([(x, 0.0), (x + bw * 0.92, v)], color.filled())
                    });
                    chart.draw_series(bars)?;
                    if self.value_labels.is_some() {
                        let style = font(TICK_PX - 1).pos(plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Center,
                            plotters::style::text_anchor::VPos::Bottom,
                        ));
                        chart.draw_series(values.iter().enumerate().map(|(i, &v)| {
                            let x = i as f64 + 0.1 + (g as f64 + 0.46) * bw;
                            Text::new(label(v), (x, v + vtop * 0.01), style.clone())
                        }))?;
                    }
                }
            }
            Orientation::Horizontal => {
                let longest = self
                    .categories
                    .iter()
                    .map(|c| plot.estimate_text_size(c, &font(TICK_PX)).map(|s| s.0))
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .max()
                    .unwrap_or(40);
                let mut chart = builder
                    .x_label_area_size(50)
                    .y_label_area_size(longest + 16)
                    .build_cartesian_2d(
                        ticked(0.0, vtop, v_ticks.clone()),
                        ticked(0.0, n as f64, centres),
                    )?;
                // Category i is drawn at y = n - 1 - i, so the first is at the top.
                let top_down = |y: &f64| {
                    let i = n - 1 - (y.floor() as usize).min(n - 1);
                    self.categories[i].clone()
                };
                chart
                    .configure_mesh()
                    .disable_y_mesh()
                    .x_desc(&self.value_desc)
                    .axis_desc_style(font(LABEL_PX))
                    .label_style(font(TICK_PX))
                    .y_label_formatter(&top_down)
                    .x_label_formatter(&|x| fmt_fixed(*x, v_dec))
                    .light_line_style(TRANSPARENT)
                    .bold_line_style(RGBColor(215, 215, 215))
                    .draw()?;
                for (g, (_, color, values)) in self.groups.iter().enumerate() {
                    let bars = values.iter().enumerate().map(|(i, &v)| {
                        // Series 0 above series 1 within a category.
                        let y = (n - 1 - i) as f64 + 0.9 - (g as f64 + 1.0) * bw;
                        Rectangle::new([(0.0, y), (v, y + bw * 0.92)], color.filled())
                    });
                    chart.draw_series(bars)?;
                    if self.value_labels.is_some() {
                        let style = font(TICK_PX - 1).pos(plotters::style::text_anchor::Pos::new(
                            plotters::style::text_anchor::HPos::Left,
                            plotters::style::text_anchor::VPos::Center,
                        ));
                        chart.draw_series(values.iter().enumerate().map(|(i, &v)| {
                            let y = (n - 1 - i) as f64 + 0.9 - (g as f64 + 0.54) * bw;
                            Text::new(label(v), (v + vtop * 0.005, y), style.clone())
                        }))?;
                    }
                }
            }
        }
        if rows > 0 {
            draw_legend_row(&legend, &entries)?;
        }
        Ok(())
    }
}

/// A histogram over a continuous x axis: `(lo, hi, count)` bins.
#[derive(Clone, Debug)]
pub(crate) struct Histogram {
    /// Caption.
    pub title: String,
    /// X axis description.
    pub x_desc: String,
    /// Y axis description.
    pub y_desc: String,
    /// Bins, ascending and adjacent.
    pub bins: Vec<(f64, f64, u64)>,
    /// A vertical marker line (e.g. the mean) with its legend name.
    pub marker: Option<(f64, String)>,
    /// Pixel size.
    pub size: (u32, u32),
}

impl Figure for Histogram {
    fn size(&self) -> (u32, u32) {
        self.size
    }
    fn draw<DB: DrawingBackend>(&self, root: &DrawingArea<DB, Shift>) -> DrawResult<DB> {
        let cmax = self.bins.iter().map(|b| b.2).max().unwrap_or(0);
        if self.bins.is_empty() || cmax == 0 {
            return draw_no_data(root, &self.title, "no values");
        }
        let (x0, x1) = (self.bins[0].0, self.bins[self.bins.len() - 1].1);
        let ytop = cmax as f64 * 1.08;
        let (w, h) = root.dim_in_pixel();
        let entries: Vec<LegendEntry> = self
            .marker
            .iter()
            .map(|(_, name)| (PALETTE[2], true, name.clone()))
            .collect();
        let rows = if entries.is_empty() {
            0
        } else {
            legend_rows(root, &entries, w)?
        };
        let (plot, legend) =
            root.split_vertically(h.saturating_sub(if rows > 0 { 8 + 18 * rows } else { 0 }));
        let (y_ticks, y_dec) = nice_ticks(0.0, ytop, 6, true);
        let (x_ticks, x_dec) = nice_ticks(x0, x1, 8, false);
        let mut chart = ChartBuilder::on(&plot)
            .caption(&self.title, font(TITLE_PX))
            .margin(8)
            .margin_right(20)
            .x_label_area_size(50)
            .y_label_area_size(62)
            .build_cartesian_2d(ticked(x0, x1, x_ticks), ticked(0.0, ytop, y_ticks))?;
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_desc(&self.x_desc)
            .y_desc(&self.y_desc)
            .axis_desc_style(font(LABEL_PX))
            .label_style(font(TICK_PX))
            .x_label_formatter(&|x| fmt_fixed(*x, x_dec))
            .y_label_formatter(&|y| fmt_fixed(*y, y_dec))
            .light_line_style(TRANSPARENT)
            .bold_line_style(RGBColor(215, 215, 215))
            .draw()?;
        chart.draw_series(self.bins.iter().map(|&(lo, hi, c)| {
            Rectangle::new([(lo, 0.0), (hi, c as f64)], PALETTE[0].filled())
        }))?;
        chart.draw_series(self.bins.iter().map(|&(lo, hi, c)| {
            Rectangle::new([(lo, 0.0), (hi, c as f64)], WHITE.stroke_width(1))
        }))?;
        if let Some((x, _)) = &self.marker {
            chart.draw_series(DashedLineSeries::new(
                vec![(*x, 0.0), (*x, ytop)],
                6,
                5,
                PALETTE[2].stroke_width(2),
            ))?;
        }
        if rows > 0 {
            draw_legend_row(&legend, &entries)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_and_ranges() {
        assert_eq!(round_ticks(0.75, 5.25), vec![1.0, 2.0, 3.0, 4.0, 5.0]);
        // 30 rounds: every 3rd (ceil(30 / 10)).
        assert_eq!(round_ticks(1.0, 30.0).len(), 10);
        // [0.2, 0.6] padded by 8 % of 0.4 = 0.032 each side.
        let (lo, hi) = padded_range([0.2, 0.6].into_iter(), None);
        assert!((lo - 0.168).abs() < 1e-12 && (hi - 0.632).abs() < 1e-12);
        // Clamped to a share's bounds.
        assert_eq!(
            padded_range([0.0, 1.0].into_iter(), Some((0.0, 1.0))),
            (0.0, 1.0)
        );
        assert_eq!(fmt_fixed(-0.000_1, 2), "0.00");
        // 0..8.64 in about 6 steps: raw 1.44 -> step 2, integers.
        assert_eq!(
            nice_ticks(0.0, 8.64, 6, true),
            (vec![0.0, 2.0, 4.0, 6.0, 8.0], 0)
        );
        // 0.168..0.632: raw 0.0773 -> step 0.1, one decimal.
        let (t, d) = nice_ticks(0.168, 0.632, 6, false);
        assert_eq!(d, 1);
        assert_eq!(t.len(), 5);
        assert!((t[0] - 0.2).abs() < 1e-12 && (t[4] - 0.6).abs() < 1e-12);
        // 0..1 in 4 steps of 0.25: two decimals.
        assert_eq!(
            nice_ticks(0.0, 1.0, 4, false),
            (vec![0.0, 0.25, 0.5, 0.75, 1.0], 2)
        );
        // Counts 0..2.2: integer steps of 1, never 0.5.
        assert_eq!(nice_ticks(0.0, 2.2, 6, true).0, vec![0.0, 1.0, 2.0]);
    }

    #[test]
    fn segments_split_at_gaps() {
        let s = segments(
            &[
                (1.0, Some(1.0)),
                (2.0, None),
                (3.0, Some(3.0)),
                (4.0, Some(4.0)),
            ],
            |v| v,
        );
        assert_eq!(s, vec![vec![(1.0, 1.0)], vec![(3.0, 3.0), (4.0, 4.0)]]);
    }
}
