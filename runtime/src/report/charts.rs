//! The report's charts, drawn by plotters' SVG backend into strings that the page embeds.
//!
//! plotters places every vertex on an integer pixel. Each chart is drawn at [`SCALE`] times its
//! display size and shown scaled down through the SVG's `viewBox`, so a vertex sits within
//! 1/(3 × 300) of the plot's height of its value (the drawn ROC's area matches the AUC to well
//! under 1e-3) and lines stay sharp when zoomed. Each chart records where its data corners
//! landed (`frame`), so a reader (the tests) can map the drawn vertices back to values.

use plotters::chart::MeshStyle;
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use serde::Serialize;

use crate::error::{Error, Result};

pub use plotters::style::RGBColor;

/// Drawing units per displayed pixel.
pub const SCALE: u32 = 3;
/// Displayed size of a chart, in CSS pixels.
const SIZE: (u32, u32) = (560, 380);
/// Text size, displayed pixels.
const FONT: u32 = 13;

/// The first run's colour (its test curves).
pub const BLUE: RGBColor = RGBColor(0x1F, 0x5F, 0xBF);
/// The second series or run.
pub const ORANGE: RGBColor = RGBColor(0xE0, 0x6C, 0x00);
/// Reference lines and fallbacks.
pub const GREY: RGBColor = RGBColor(0x88, 0x88, 0x88);
const AXIS: RGBColor = RGBColor(0x44, 0x44, 0x44);
/// Grid lines and frames.
const GRID_LINE: ShapeStyle =
    ShapeStyle { color: RGBAColor(0xE6, 0xE6, 0xE6, 1.0), filled: false, stroke_width: SCALE };

/// A chart ready for the page.
#[derive(Debug, Clone, Serialize)]
pub struct Chart {
    /// The element id (`roc`, `pr`, ...), unique on the page.
    pub id: String,
    /// Title shown above it.
    pub title: String,
    /// One line on how to read it.
    pub caption: String,
    /// The `<svg>` element.
    pub svg: String,
    /// Drawing coordinates of the data corners (x_lo, y_lo) and (x_hi, y_hi), for reading the
    /// drawn vertices back; empty for charts without a continuous x and y.
    pub frame: String,
    /// The data range the frame maps: `x_lo x_hi y_lo y_hi`.
    pub range: String,
}

/// A line to draw: label, colour, dashed or solid, the vertices, and whether they are steps.
pub struct Line<'a> {
    /// Legend label.
    pub label: String,
    /// Colour.
    pub color: RGBColor,
    /// Dashed (train curves, references).
    pub dashed: bool,
    /// (x, y) vertices.
    pub points: &'a [[f64; 2]],
    /// Hold each vertex's y back to the previous vertex's x (precision-recall curves).
    pub steps: bool,
}

fn drawing<E: std::fmt::Display>(e: E) -> Error {
    Error::Internal(format!("drawing a report chart: {e}"))
}

/// The mesh style every chart shares: label and axis-title font sizes, light grid lines.
trait HouseStyle {
    fn house_style(&mut self, labels: u32, titles: u32) -> &mut Self;
}

impl<X: Ranged, Y: Ranged, DB: DrawingBackend> HouseStyle for MeshStyle<'_, '_, X, Y, DB> {
    fn house_style(&mut self, labels: u32, titles: u32) -> &mut Self {
        self.label_style(font(labels))
            .axis_desc_style(font(titles))
            .light_line_style(GRID_LINE)
            .bold_line_style(GRID_LINE)
    }
}

fn font(size: u32) -> TextStyle<'static> {
    ("sans-serif", size * SCALE).into_font().color(&AXIS)
}

fn stroke(color: RGBColor, width: u32) -> ShapeStyle {
    color.stroke_width(width * SCALE)
}

/// Draws into an SVG of the display size times [`SCALE`], then shows it at the display size.
fn svg(
    size: (u32, u32),
    draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<String>,
) -> Result<(String, String)> {
    let mut out = String::new();
    let frame = {
        let root = SVGBackend::with_string(&mut out, (size.0 * SCALE, size.1 * SCALE)).into_drawing_area();
        root.fill(&WHITE).map_err(drawing)?;
        let frame = draw(&root)?;
        root.present().map_err(drawing)?;
        frame
    };
    // plotters writes width and height equal to the viewBox; show it at the display size (the
    // page's CSS lets it shrink to the column).
    let (w, h) = (size.0 * SCALE, size.1 * SCALE);
    let out = out.replacen(
        &format!("<svg width=\"{w}\" height=\"{h}\""),
        &format!("<svg width=\"{}\" height=\"{}\" role=\"img\"", size.0, size.1),
        1,
    );
    Ok((out, frame))
}

/// The chart record for `svg`; `range` is the data range its frame maps, for charts with one.
fn chart(
    id: &str,
    title: &str,
    caption: &str,
    (svg, frame): (String, String),
    range: Option<[f64; 4]>,
) -> Chart {
    Chart {
        id: id.into(),
        title: title.into(),
        caption: caption.into(),
        svg,
        frame,
        range: range.map(|r| r.map(|v| v.to_string()).join(" ")).unwrap_or_default(),
    }
}

/// `text` without control characters, which XML cannot hold and plotters does not escape
/// (column and class names come from the data).
fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { '\u{FFFD}' } else { c }).collect()
}

/// A chart's frame: margins, and room for the axis labels (`y_labels` wide on the left).
fn builder<'a, 'b>(
    root: &'a DrawingArea<SVGBackend<'b>, Shift>,
    y_labels: u32,
) -> ChartBuilder<'a, 'b, SVGBackend<'b>> {
    let mut b = ChartBuilder::on(root);
    b.margin(12 * SCALE).x_label_area_size(42 * SCALE).y_label_area_size(y_labels * SCALE);
    b
}

/// Draws the legend of the series labelled so far at `position`.
fn legend<'a, CT: plotters::coord::CoordTranslate>(
    c: &mut ChartContext<'a, SVGBackend<'a>, CT>,
    position: SeriesLabelPosition,
) -> Result<()> {
    c.configure_series_labels()
        .position(position)
        .legend_area_size(26 * SCALE)
        .margin(6 * SCALE)
        .background_style(WHITE.mix(0.85))
        .border_style(GRID_LINE)
        .label_font(font(FONT - 1))
        .draw()
        .map_err(drawing)
}

/// Axis labels without a trailing `.0` (epochs read 1, 2, 3) and without float noise.
fn tidy(v: &f64) -> String {
    format!("{}", (v * 1e6).round() / 1e6)
}

/// Vertices of a line as drawn: steps expanded to their corners.
fn drawn(line: &Line<'_>) -> Vec<(f64, f64)> {
    if !line.steps {
        return line.points.iter().map(|p| (p[0], p[1])).collect();
    }
    let mut out = Vec::with_capacity(2 * line.points.len());
    let mut prev_x = 0.0;
    for &[x, y] in line.points {
        out.push((prev_x, y));
        out.push((x, y));
        prev_x = x;
    }
    out
}

/// Lines over x in `x` and y in `y` (ROC, precision-recall, training curves), with an optional
/// dashed reference segment and vertical marker.
#[allow(clippy::too_many_arguments)]
pub fn lines(
    id: &str,
    title: &str,
    caption: &str,
    (x_desc, y_desc): (&str, &str),
    x: (f64, f64),
    y: (f64, f64),
    lines: &[Line<'_>],
    marker: Option<(f64, &str)>,
) -> Result<Chart> {
    let drawn_svg = svg(SIZE, |root| {
        let mut c = builder(root, 56).build_cartesian_2d(x.0..x.1, y.0..y.1).map_err(drawing)?;
        c.configure_mesh()
            .x_desc(x_desc)
            .y_desc(y_desc)
            .x_label_formatter(&tidy)
            .y_label_formatter(&tidy)
            .house_style(FONT, FONT)
            .axis_style(stroke(AXIS, 1))
            .draw()
            .map_err(drawing)?;
        if let Some((at, label)) = marker {
            let style = stroke(GREY, 1);
            c.draw_series(DashedLineSeries::new([(at, y.0), (at, y.1)], 5 * SCALE, 4 * SCALE, style))
                .map_err(drawing)?
                .label(label)
                .legend(move |(px, py)| {
                    PathElement::new(vec![(px, py), (px + 20 * SCALE as i32, py)], style)
                });
        }
        for line in lines {
            let style = stroke(line.color, if line.dashed { 1 } else { 2 });
            let points = drawn(line);
            let series = if line.dashed {
                c.draw_series(DashedLineSeries::new(points, 6 * SCALE, 4 * SCALE, style)).map_err(drawing)?
            } else {
                c.draw_series(LineSeries::new(points, style)).map_err(drawing)?
            };
            series.label(printable(&line.label)).legend(move |(px, py)| {
                PathElement::new(vec![(px, py), (px + 20 * SCALE as i32, py)], style)
            });
        }
        // Curves that end high (ROC, AUC) leave the lower right free; those that end low (losses,
        // precision at full recall) the upper right.
        let ends: Vec<f64> =
            lines.iter().filter_map(|l| l.points.last()).map(|p| (p[1] - y.0) / (y.1 - y.0)).collect();
        let high = ends.iter().sum::<f64>() > 0.5 * ends.len() as f64;
        legend(&mut c, if high { SeriesLabelPosition::LowerRight } else { SeriesLabelPosition::UpperRight })?;
        let (lo, hi) = (c.backend_coord(&(x.0, y.0)), c.backend_coord(&(x.1, y.1)));
        Ok(format!("{} {} {} {}", lo.0, lo.1, hi.0, hi.1))
    })?;
    Ok(chart(id, title, caption, drawn_svg, Some([x.0, x.1, y.0, y.1])))
}

/// The reliability diagram: observed positive rate against mean score per bin (the diagonal is
/// perfect calibration), with each bin's row count below on a log scale.
pub fn calibration(
    id: &str,
    title: &str,
    runs: &[(&str, RGBColor, &[super::CalibrationBin])],
) -> Result<Chart> {
    let drawn_svg = svg((SIZE.0, SIZE.1 + 120), |root| {
        let (top, bottom) = root.split_vertically((SIZE.1 * SCALE) as i32);
        let mut c = builder(&top, 56).build_cartesian_2d(0f64..1f64, 0f64..1f64).map_err(drawing)?;
        c.configure_mesh()
            .x_desc("mean score in the bin")
            .y_desc("share positive")
            .house_style(FONT, FONT)
            .draw()
            .map_err(drawing)?;
        reliability_points(&mut c, runs, 0.0)?;
        let max_rows = runs.iter().flat_map(|r| r.2.iter().map(|b| b.rows)).max().unwrap_or(1).max(1);
        let frame = {
            let (lo, hi) = (c.backend_coord(&(0.0, 0.0)), c.backend_coord(&(1.0, 1.0)));
            format!("{} {} {} {}", lo.0, lo.1, hi.0, hi.1)
        };
        let mut counts = ChartBuilder::on(&bottom)
            .margin_left(12 * SCALE)
            .margin_right(12 * SCALE)
            .x_label_area_size(30 * SCALE)
            .y_label_area_size(56 * SCALE)
            .build_cartesian_2d(0f64..1f64, (0.5f64..max_rows as f64 * 2.0).log_scale())
            .map_err(drawing)?;
        counts
            .configure_mesh()
            .x_desc("score bin")
            .y_desc("rows")
            .y_labels(3)
            .y_label_formatter(&|v| format!("{v:.0}"))
            .house_style(FONT - 2, FONT - 2)
            .draw()
            .map_err(drawing)?;
        let n = runs.len().max(1) as f64;
        for (r, &(_, color, bins)) in runs.iter().enumerate() {
            counts
                .draw_series(bins.iter().filter(|b| b.rows > 0).map(|b| {
                    let w = (b.upper - b.lower) / n;
                    let x0 = b.lower + r as f64 * w;
                    Rectangle::new(
                        [(x0 + 0.1 * w, 0.5), (x0 + 0.9 * w, b.rows as f64)],
                        color.mix(0.7).filled(),
                    )
                }))
                .map_err(drawing)?;
        }
        Ok(frame)
    })?;
    Ok(chart(
        id,
        title,
        "Each point is one of the ten equal-width score bins of the expected calibration error; \
         points above the diagonal mean the model under-predicts.",
        drawn_svg,
        Some([0.0, 1.0, 0.0, 1.0]),
    ))
}

/// The reliability lines of `runs` (observed positive rate against mean score, one point per
/// bin with rows), the diagonal of perfect calibration from (`floor`, `floor`) to (1, 1), and
/// the legend. Values below `floor` (zero, on a log axis) are drawn on it.
fn reliability_points<'a, X, Y>(
    c: &mut ChartContext<'a, SVGBackend<'a>, Cartesian2d<X, Y>>,
    runs: &[(&str, RGBColor, &[super::CalibrationBin])],
    floor: f64,
) -> Result<()>
where
    X: Ranged<ValueType = f64>,
    Y: Ranged<ValueType = f64>,
{
    let diagonal = stroke(GREY, 1);
    c.draw_series(DashedLineSeries::new([(floor, floor), (1.0, 1.0)], 5 * SCALE, 4 * SCALE, diagonal))
        .map_err(drawing)?
        .label("perfectly calibrated")
        .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 20 * SCALE as i32, py)], diagonal));
    for &(label, color, bins) in runs {
        let points: Vec<(f64, f64)> = bins
            .iter()
            .filter(|b| b.rows > 0)
            .map(|b| (b.mean_score.max(floor), b.positive_rate.max(floor)))
            .collect();
        let style = stroke(color, 2);
        c.draw_series(LineSeries::new(points.clone(), style))
            .map_err(drawing)?
            .label(label)
            .legend(move |(px, py)| PathElement::new(vec![(px, py), (px + 20 * SCALE as i32, py)], style));
        c.draw_series(points.iter().map(|&p| Circle::new(p, 4 * SCALE, color.filled()))).map_err(drawing)?;
    }
    legend(c, SeriesLabelPosition::UpperLeft)
}

/// The reliability diagram on log scales, one point per equal-count bin: for scores of a rare
/// class, which crowd near 0 where a linear axis cannot tell them apart. A bin without positive
/// rows sits on the bottom edge.
pub fn reliability_by_rank(
    id: &str,
    title: &str,
    runs: &[(&str, RGBColor, &[super::CalibrationBin])],
) -> Result<Chart> {
    let values = runs.iter().flat_map(|r| r.2.iter().flat_map(|b| [b.mean_score, b.positive_rate]));
    let smallest = values.filter(|v| *v > 0.0).fold(1.0f64, f64::min);
    // Whole decades around the data, at least 1e-6 and at most 1.
    let lo = 10f64.powf(smallest.log10().floor()).clamp(1e-6, 0.1);
    let drawn_svg = svg(SIZE, |root| {
        let mut c = builder(root, 56)
            .build_cartesian_2d((lo..1.0).log_scale(), (lo..1.0).log_scale())
            .map_err(drawing)?;
        c.configure_mesh()
            .x_desc("mean score in the bin (log scale)")
            .y_desc("share positive (log scale)")
            .house_style(FONT, FONT)
            .draw()
            .map_err(drawing)?;
        reliability_points(&mut c, runs, lo)?;
        Ok(String::new())
    })?;
    Ok(chart(
        id,
        title,
        &format!(
            "Each point is one of {} bins of equal row counts, by score; the diagonal is perfect \
             calibration.",
            super::curves::RANK_BINS
        ),
        drawn_svg,
        None,
    ))
}

/// Score distributions per class: the share of each class's rows in each logit-scale bin.
pub fn histogram(
    id: &str,
    title: &str,
    logit_edges: &[f64],
    classes: &[(&str, RGBColor, &[u64])],
) -> Result<Chart> {
    let (lo, hi) = (logit_edges.first().copied().unwrap_or(-1.0), logit_edges.last().copied().unwrap_or(1.0));
    let shares: Vec<Vec<f64>> = classes
        .iter()
        .map(|(_, _, counts)| {
            let total = counts.iter().sum::<u64>().max(1) as f64;
            counts.iter().map(|&c| c as f64 / total).collect()
        })
        .collect();
    let top = shares.iter().flatten().copied().fold(0.0f64, f64::max).max(1e-3) * 1.1;
    let probability = |v: &f64| {
        let p = 1.0 / (1.0 + (-v).exp());
        if p < 0.01 {
            format!("{p:.0e}")
        } else if p > 0.99 {
            // As many nines as it takes to tell 0.999 from 0.99999.
            let digits = (-(1.0 - p).log10()).ceil().clamp(2.0, 8.0) as usize;
            format!("{p:.digits$}")
        } else {
            format!("{p:.2}")
        }
    };
    let drawn_svg = svg(SIZE, |root| {
        let mut c = builder(root, 56).build_cartesian_2d(lo..hi, 0f64..top).map_err(drawing)?;
        c.configure_mesh()
            .x_desc("score (logit scale)")
            .y_desc("share of the class's rows")
            .x_label_formatter(&probability)
            .house_style(FONT, FONT)
            .draw()
            .map_err(drawing)?;
        for ((label, color, _), share) in classes.iter().zip(&shares) {
            let mut points = Vec::with_capacity(2 * share.len());
            for (i, &s) in share.iter().enumerate() {
                points.push((logit_edges[i], s));
                points.push((logit_edges[i + 1], s));
            }
            let color = *color;
            c.draw_series(AreaSeries::new(points, 0.0, color.mix(0.25)).border_style(stroke(color, 2)))
                .map_err(drawing)?
                .label(printable(label))
                .legend(move |(px, py)| {
                    Rectangle::new(
                        [(px, py - 5 * SCALE as i32), (px + 20 * SCALE as i32, py + 5 * SCALE as i32)],
                        color.mix(0.5).filled(),
                    )
                });
        }
        legend(&mut c, SeriesLabelPosition::UpperRight)?;
        Ok(String::new())
    })?;
    Ok(chart(
        id,
        title,
        "Each class normalized to 1, so a rare class is as visible as a common one; the further \
         apart the two, the better the scores separate them.",
        drawn_svg,
        None,
    ))
}

/// Horizontal bars, largest magnitude at the top (logistic coefficients).
pub fn bars(id: &str, title: &str, caption: &str, x_desc: &str, bars: &[(String, f64)]) -> Result<Chart> {
    let n = bars.len().max(1);
    let m = bars.iter().map(|b| b.1.abs()).fold(0.0f64, f64::max).max(1e-9) * 1.08;
    let height = (60 + 22 * n as u32).max(200);
    let names: Vec<String> = bars.iter().map(|b| printable(&b.0)).collect();
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) if *i < n => names.get(n - 1 - i).cloned().unwrap_or_default(),
        _ => String::new(),
    };
    let drawn_svg = svg((SIZE.0 + 160, height), |root| {
        let mut c =
            builder(root, 230).build_cartesian_2d(-m..m, (0..n - 1).into_segmented()).map_err(drawing)?;
        c.configure_mesh()
            .x_desc(x_desc)
            .y_labels(n)
            .y_label_formatter(&label)
            .disable_y_mesh()
            .house_style(FONT - 1, FONT)
            .draw()
            .map_err(drawing)?;
        c.draw_series(bars.iter().enumerate().map(|(i, (_, v))| {
            let row = n - 1 - i;
            let color = if *v >= 0.0 { ORANGE } else { BLUE };
            Rectangle::new(
                [(0.0, SegmentValue::Exact(row)), (*v, SegmentValue::Exact(row + 1))],
                color.mix(0.8).filled(),
            )
        }))
        .map_err(drawing)?;
        Ok(String::new())
    })?;
    Ok(chart(id, title, caption, drawn_svg, None))
}

/// A heat map of counts, `counts[row][column]`, each row shaded by its share of the row's total
/// (confusion matrices: true class by row, predicted class by column).
pub fn heatmap(
    id: &str,
    title: &str,
    caption: &str,
    names: &[String],
    counts: &[Vec<usize>],
) -> Result<Chart> {
    let names: Vec<String> = names.iter().map(|n| printable(n)).collect();
    if names.is_empty() || counts.len() != names.len() {
        return Err(Error::Internal(format!("a {}-class heat map of {} rows", names.len(), counts.len())));
    }
    let k = names.len();
    let side = (120 + 44 * k as u32).clamp(300, 900);
    let label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) if *i < k => names[*i].clone(),
        _ => String::new(),
    };
    let row_label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) if *i < k => names[k - 1 - i].clone(),
        _ => String::new(),
    };
    let drawn_svg = svg((side + 60, side), |root| {
        let mut c = builder(root, 80)
            .build_cartesian_2d((0..k - 1).into_segmented(), (0..k - 1).into_segmented())
            .map_err(drawing)?;
        c.configure_mesh()
            .x_desc("predicted class")
            .y_desc("true class")
            .x_labels(k)
            .y_labels(k)
            .x_label_formatter(&label)
            .y_label_formatter(&row_label)
            .disable_mesh()
            .label_style(font(FONT - 1))
            .axis_desc_style(font(FONT))
            .draw()
            .map_err(drawing)?;
        let cells = counts.iter().enumerate().flat_map(|(t, row)| {
            let total = row.iter().sum::<usize>().max(1) as f64;
            row.iter().enumerate().map(move |(p, &n)| (t, p, n, n as f64 / total))
        });
        let text_size = if k <= 12 { FONT - 1 } else { FONT - 4 };
        for (t, p, count, share) in cells {
            let y = k - 1 - t;
            // Lighter for small shares; the diagonal reads as a dark band when the model is good.
            let shade = (255.0 - 200.0 * share) as u8;
            let fill = RGBColor(shade, (255.0 - 140.0 * share) as u8, 255);
            c.draw_series(std::iter::once(Rectangle::new(
                [
                    (SegmentValue::Exact(p), SegmentValue::Exact(y)),
                    (SegmentValue::Exact(p + 1), SegmentValue::Exact(y + 1)),
                ],
                fill.filled(),
            )))
            .map_err(drawing)?;
            let color = if share > 0.55 { WHITE } else { AXIS };
            let style = ("sans-serif", text_size * SCALE)
                .into_font()
                .color(&color)
                .pos(Pos::new(HPos::Center, VPos::Center));
            c.draw_series(std::iter::once(Text::new(
                count.to_string(),
                (SegmentValue::CenterOf(p), SegmentValue::CenterOf(y)),
                style,
            )))
            .map_err(drawing)?;
        }
        Ok(String::new())
    })?;
    Ok(chart(id, title, caption, drawn_svg, None))
}

/// One point per group: x its test rows (log scale), y its gain; kept groups in `color`, groups
/// scored by the generic model in grey.
pub fn groups(
    id: &str,
    title: &str,
    caption: &str,
    y_desc: &str,
    points: &[(f64, f64, bool)],
) -> Result<Chart> {
    let x_hi = points.iter().map(|p| p.0).fold(1.0f64, f64::max) * 1.5;
    let y_abs = points.iter().map(|p| p.1.abs()).fold(0.0f64, f64::max).max(0.01) * 1.1;
    let drawn_svg = svg(SIZE, |root| {
        let mut c = builder(root, 56)
            .build_cartesian_2d((0.8f64..x_hi).log_scale(), -y_abs..y_abs)
            .map_err(drawing)?;
        c.configure_mesh()
            .x_desc("test rows of the group (log scale)")
            .y_desc(y_desc)
            .house_style(FONT, FONT)
            .draw()
            .map_err(drawing)?;
        c.draw_series(LineSeries::new([(0.8, 0.0), (x_hi, 0.0)], stroke(GREY, 1))).map_err(drawing)?;
        for (kept, color, label) in [(false, GREY, "generic model"), (true, BLUE, "own model")] {
            c.draw_series(
                points
                    .iter()
                    .filter(|p| p.2 == kept)
                    .map(|&(x, y, _)| Circle::new((x, y), 3 * SCALE, color.mix(0.6).filled())),
            )
            .map_err(drawing)?
            .label(label)
            .legend(move |(px, py)| Circle::new((px + 10 * SCALE as i32, py), 4 * SCALE, color.filled()));
        }
        legend(&mut c, SeriesLabelPosition::UpperRight)?;
        Ok(String::new())
    })?;
    Ok(chart(id, title, caption, drawn_svg, None))
}
