//! SVG charts (plotters), returned as strings to inline into the HTML page.

use anyhow::{anyhow, Result};
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

const W: u32 = 760;
const H: u32 = 380;
/// Type sizes, px: legible at normal zoom on a 760 px chart.
const TITLE: u32 = 20;
const AXIS: u32 = 16;
const TICKS: u32 = 14;
const LEGEND: u32 = 14;
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// A named series of (x, y) points.
#[derive(Clone, Debug, Default)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, in x order for lines.
    pub points: Vec<(f64, f64)>,
    /// Whether to join the points with a line.
    pub line: bool,
    /// Each point's 95 % interval (lower, upper), drawn as a bar; empty for
    /// none, a `None` bound drawn to the chart's edge.
    pub ci: Vec<(Option<f64>, Option<f64>)>,
}

/// The legend, below the plot (never over the data): entries flow left to
/// right and wrap. Returns the height it needs for `names`.
fn legend_height(names: &[&str]) -> u32 {
    if names.is_empty() {
        return 0;
    }
    let (mut x, mut rows) = (0u32, 1u32);
    for n in names {
        let w = entry_width(n);
        if x > 0 && x + w > W - 20 {
            rows += 1;
            x = 0;
        }
        x += w;
    }
    12 + rows * 24
}

/// Estimated width of a legend entry: swatch, gap and text.
fn entry_width(name: &str) -> u32 {
    34 + (name.chars().count() as f64 * f64::from(LEGEND) * 0.56) as u32
}

fn draw_legend<DB: DrawingBackend>(
    area: &DrawingArea<DB, plotters::coord::Shift>,
    entries: &[(&str, RGBColor)],
) -> Result<()> {
    let (mut x, mut y) = (16i32, 14i32);
    for &(name, color) in entries {
        let w = entry_width(name) as i32;
        if x > 16 && x + w > W as i32 - 20 {
            x = 16;
            y += 24;
        }
        area.draw(&PathElement::new(
            vec![(x, y), (x + 22, y)],
            color.stroke_width(3),
        ))
        .map_err(err)?;
        area.draw(&Text::new(
            name.to_string(),
            (x + 28, y - 8),
            ("sans-serif", LEGEND).into_font(),
        ))
        .map_err(err)?;
        x += w;
    }
    Ok(())
}

fn err<E: std::fmt::Debug>(e: E) -> anyhow::Error {
    anyhow!("chart: {e:?}")
}

fn bounds(series: &[Series], log_x: bool) -> (f64, f64, f64, f64) {
    let pts = series.iter().flat_map(|s| s.points.iter());
    let (mut x0, mut x1, mut y0, mut y1) = (f64::MAX, f64::MIN, 0.0f64, f64::MIN);
    for &(x, y) in pts {
        x0 = x0.min(x);
        x1 = x1.max(x);
        y0 = y0.min(y);
        y1 = y1.max(y);
    }
    for (lo, hi) in series.iter().flat_map(|s| s.ci.iter()) {
        for b in [lo, hi].into_iter().flatten() {
            y0 = y0.min(*b);
            y1 = y1.max(*b);
        }
    }
    if x0 > x1 {
        return (0.0, 1.0, 0.0, 1.0);
    }
    if log_x {
        x0 = x0.max(1e-3);
    }
    if x1 <= x0 {
        x1 = x0 + 1.0;
    }
    if y1 <= y0 {
        y1 = y0 + 1.0;
    }
    (x0, x1, y0, y1 * 1.08)
}

/// Series with axis labels: each drawn as a line if it says so, and as points
/// too with `scatter`.
pub fn lines(
    title: &str,
    x_label: &str,
    y_label: &str,
    series: &[Series],
    scatter: bool,
) -> Result<String> {
    let mut svg = String::new();
    {
        let labelled = series.len() > 1 || series.first().is_some_and(|s| !s.name.is_empty());
        let names: Vec<&str> = series.iter().map(|s| s.name.as_str()).collect();
        let legend_h = if labelled { legend_height(&names) } else { 0 };
        let root = SVGBackend::with_string(&mut svg, (W, H + legend_h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (plot, legend) = root.split_vertically(H);
        let (x0, x1, y0, y1) = bounds(series, false);
        // Room at the ends, so that end points, their bars and the last tick
        // label are not cut by the frame.
        let pad = (x1 - x0) * 0.04;
        let (x0, x1) = (x0 - pad, x1 + pad);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", TITLE))
            .margin(14)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .label_style(("sans-serif", TICKS))
            .axis_desc_style(("sans-serif", AXIS))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            // Interval bars first, so that the points sit on them.
            for (&(x, y), &(lo, hi)) in s.points.iter().zip(&s.ci) {
                // A missing bound: a short faint stub without a cap, not a
                // bar across the whole chart.
                let stub = (y1 - y0) * 0.08;
                let cap = (x1 - x0) * 0.006;
                let strong = color.mix(0.6).stroke_width(2);
                let faint = color.mix(0.3).stroke_width(2);
                for (bound, open_end) in [(lo, y - stub), (hi, y + stub)] {
                    let bar = match bound {
                        Some(b) => vec![
                            PathElement::new(vec![(x, y), (x, b)], strong),
                            PathElement::new(vec![(x - cap, b), (x + cap, b)], strong),
                        ],
                        None => vec![PathElement::new(
                            vec![(x, y), (x, open_end.clamp(y0, y1))],
                            faint,
                        )],
                    };
                    chart.draw_series(bar).map_err(err)?;
                }
            }
            if s.line && scatter {
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
            if !scatter {
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
            let radius = if scatter { 4 } else { 3 };
            chart
                .draw_series(
                    s.points
                        .iter()
                        .map(|&p| Circle::new(p, radius, color.filled())),
                )
                .map_err(err)?;
        }
        if labelled {
            let entries: Vec<(&str, RGBColor)> = names
                .iter()
                .enumerate()
                .map(|(i, n)| (*n, PALETTE[i % PALETTE.len()]))
                .collect();
            draw_legend(&legend, &entries)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Every trial's dissemination latencies (ms) by item kind, with the number
/// of items of each kind: the curves of a latency CDF.
pub fn latency_by_kind(trials: &[crate::observe::Trial]) -> Vec<CdfSamples> {
    let mut by_kind: std::collections::BTreeMap<String, (Vec<f64>, usize)> = Default::default();
    for i in trials.iter().flat_map(|t| &t.items) {
        let e = by_kind.entry(i.kind.clone()).or_default();
        e.0.extend(i.latencies_us.iter().map(|&us| us as f64 / 1e3));
        e.1 += usize::from(!i.latencies_us.is_empty());
    }
    by_kind
        .into_iter()
        .map(|(k, (v, items))| (k, v, items))
        .collect()
}

/// A CDF band wider than this (fewer than 8 items) is not drawn.
const WIDEST_BAND: f64 = 0.5;

/// One curve of a CDF: its name, its samples, and the independent units
/// they come from (items: an item's nodes are correlated).
pub type CdfSamples = (String, Vec<f64>, usize);

/// Empirical CDF of each series' values (x: value on a log axis, y: fraction
/// <= x): dissemination latencies span microseconds to seconds. A shaded
/// band around each curve holds the whole true CDF at 95 % (the
/// Dvoretzky-Kiefer-Wolfowitz bound, ±sqrt(ln(2/0.05) / 2n), over its
/// `units`, not its correlated samples).
pub fn cdf(title: &str, x_label: &str, samples: &[CdfSamples]) -> Result<String> {
    let bands: Vec<f64> = samples
        .iter()
        .filter(|(_, v, _)| !v.is_empty())
        .map(|(_, _, units)| ((2.0f64 / 0.05).ln() / (2.0 * (*units).max(1) as f64)).sqrt())
        .collect();
    let series: Vec<Series> = samples
        .iter()
        .filter(|(_, v, _)| !v.is_empty())
        .map(|(name, v, _)| {
            let mut v = v.clone();
            v.sort_by(f64::total_cmp);
            let n = v.len() as f64;
            // Thin to at most ~400 steps: a CDF of 100,000 points draws the same.
            let stride = (v.len() / 400).max(1);
            let mut points: Vec<(f64, f64)> = v
                .iter()
                .enumerate()
                .step_by(stride)
                .map(|(i, &x)| (x, (i + 1) as f64 / n))
                .collect();
            points.push((v[v.len() - 1], 1.0));
            Series {
                name: name.clone(),
                points,
                line: true,
                ..Series::default()
            }
        })
        .collect();
    let (mut x0, mut x1, _, _) = bounds(&series, true);
    x0 = x0.max(1e-3) / 1.2;
    x1 = x1.max(x0 * 10.0) * 1.2;
    let mut svg = String::new();
    {
        let units: Vec<usize> = samples
            .iter()
            .filter(|(_, v, _)| !v.is_empty())
            .map(|(_, _, u)| *u)
            .collect();
        let names: Vec<String> = series
            .iter()
            .zip(&bands)
            .zip(&units)
            .map(|((s, e), u)| match *e < WIDEST_BAND {
                true => format!("{} ({u} items, band ±{e:.2})", s.name),
                false => format!(
                    "{} ({u} item{}: too few for a band)",
                    s.name,
                    if *u == 1 { "" } else { "s" }
                ),
            })
            .collect();
        let name_refs: Vec<&str> = names.iter().map(String::as_str).collect();
        let legend_h = legend_height(&name_refs);
        let root = SVGBackend::with_string(&mut svg, (W, H + legend_h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (plot, legend) = root.split_vertically(H);
        let mut chart = ChartBuilder::on(&plot)
            .caption(title, ("sans-serif", TITLE))
            .margin(14)
            .x_label_area_size(50)
            .y_label_area_size(80)
            .build_cartesian_2d((x0..x1).log_scale(), 0.0..1.02)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("fraction of nodes reached")
            .label_style(("sans-serif", TICKS))
            .axis_desc_style(("sans-serif", AXIS))
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        for (i, (s, &eps)) in series.iter().zip(&bands).enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            // A step function: each point holds until the next.
            let mut steps = Vec::with_capacity(s.points.len() * 2);
            let mut prev = 0.0;
            for &(x, y) in &s.points {
                steps.push((x.max(x0), prev));
                steps.push((x.max(x0), y));
                prev = y;
            }
            // The band: the steps shifted up and down by eps, as one polygon;
            // none where it would cover most of the chart.
            if eps >= WIDEST_BAND {
                chart
                    .draw_series(LineSeries::new(steps, color.stroke_width(2)))
                    .map_err(err)?;
                continue;
            }
            // The band: the steps shifted up and down by eps, as one polygon.
            let upper = steps.iter().map(|&(x, y)| (x, (y + eps).min(1.0)));
            let lower = steps.iter().rev().map(|&(x, y)| (x, (y - eps).max(0.0)));
            chart
                .draw_series(std::iter::once(Polygon::new(
                    upper.chain(lower).collect::<Vec<_>>(),
                    color.mix(0.15).filled(),
                )))
                .map_err(err)?;
            chart
                .draw_series(LineSeries::new(steps, color.stroke_width(2)))
                .map_err(err)?;
        }
        let entries: Vec<(&str, RGBColor)> = name_refs
            .iter()
            .enumerate()
            .map(|(i, n)| (*n, PALETTE[i % PALETTE.len()]))
            .collect();
        draw_legend(&legend, &entries)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A timeline: one row per trial (up to 8), a dot per mark and its label
/// below it. Labels are laid out in lanes so that none overlaps another:
/// a label goes into the first lane where it clears the previous label by
/// a few pixels, and a row is as tall as its lanes need; labels near the
/// right edge extend leftwards.
pub fn timeline(title: &str, rows: &[(String, Vec<(f64, String)>)]) -> Result<String> {
    const LANE: f64 = 19.0;
    const FONT: u32 = 13;
    let (mut t0, mut t1) = (0.0f64, 1.0f64);
    for (_, marks) in rows {
        for (t, _) in marks {
            t0 = t0.min(*t);
            t1 = t1.max(*t);
        }
    }
    let pad = (t1 - t0) * 0.02 + 0.1;
    let (x0, x1) = (t0 - pad, t1 + pad);
    // The plot's width: the chart less its margins and row-label area.
    let plot_px = f64::from(W) - 2.0 * 14.0 - 90.0;
    let px = |t: f64| (t - x0) / (x1 - x0) * plot_px;
    let text_px = |s: &str| s.chars().count() as f64 * f64::from(FONT) * 0.56 + 6.0;
    // Per row, per mark (in input order): its lane and whether it is
    // anchored on the right.
    let layout: Vec<Vec<(usize, bool)>> = rows
        .iter()
        .map(|(_, marks)| {
            let mut order: Vec<usize> = (0..marks.len()).collect();
            order.sort_by(|&a, &b| marks[a].0.total_cmp(&marks[b].0));
            let mut lanes_end: Vec<f64> = Vec::new();
            let mut out = vec![(0, false); marks.len()];
            for i in order {
                let (t, what) = &marks[i];
                let (x, w) = (px(*t), text_px(what));
                let right = x + w > plot_px;
                let start = if right { x - w } else { x };
                let lane = match lanes_end.iter().position(|&end| end + 8.0 < start) {
                    Some(l) => l,
                    None => {
                        lanes_end.push(f64::MIN);
                        lanes_end.len() - 1
                    }
                };
                lanes_end[lane] = start + w;
                out[i] = (lane, right);
            }
            out
        })
        .collect();
    let lanes = layout
        .iter()
        .flat_map(|r| r.iter().map(|&(l, _)| l + 1))
        .max()
        .unwrap_or(1);
    let row_px = 24.0 + LANE * lanes as f64;
    let n = rows.len().max(1);
    let mut svg = String::new();
    {
        let h = 100 + (row_px * n as f64) as u32;
        let root = SVGBackend::with_string(&mut svg, (W, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        // Row r (trial order, top down) spans y in [k - 0.5, k + 0.5], k = n - 1 - r.
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", TITLE))
            .margin(14)
            .x_label_area_size(50)
            .y_label_area_size(90)
            .build_cartesian_2d(x0..x1, -0.5..n as f64 - 0.5)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds after warm-up")
            .disable_y_mesh()
            .y_labels(n)
            .y_label_formatter(&|y| {
                let k = y.round();
                if (y - k).abs() > 0.01 || k < 0.0 {
                    return String::new();
                }
                rows.get(n - 1 - k as usize)
                    .map_or(String::new(), |r| r.0.clone())
            })
            .label_style(("sans-serif", TICKS))
            .axis_desc_style(("sans-serif", AXIS))
            .draw()
            .map_err(err)?;
        let unit = 1.0 / row_px; // one pixel, in row units
        for (r, (_, marks)) in rows.iter().enumerate() {
            let top = (n - 1 - r) as f64 + 0.5;
            let dot_y = top - 9.0 * unit;
            for (i, (t, what)) in marks.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                let (lane, right) = layout[r][i];
                let label_y = top - (18.0 + LANE * lane as f64) * unit;
                chart
                    .draw_series([
                        PathElement::new(
                            vec![(*t, dot_y), (*t, label_y - 14.0 * unit)],
                            color.mix(0.35).stroke_width(1),
                        ),
                        PathElement::new(vec![(*t, dot_y), (*t, dot_y)], color.stroke_width(1)),
                    ])
                    .map_err(err)?;
                chart
                    .draw_series(std::iter::once(Circle::new((*t, dot_y), 5, color.filled())))
                    .map_err(err)?;
                let anchor = if right { HPos::Right } else { HPos::Left };
                let style = ("sans-serif", FONT)
                    .into_font()
                    .color(&color)
                    .pos(Pos::new(anchor, VPos::Top));
                chart
                    .draw_series(std::iter::once(Text::new(
                        what.clone(),
                        (*t, label_y),
                        style,
                    )))
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timeline_labels_close_in_time_get_lanes_of_their_own() {
        let marks: Vec<(f64, String)> = (0..6)
            .map(|i| (10.0 + f64::from(i) * 0.01, format!("event number {i}")))
            .collect();
        let svg = timeline("t", &[("trial 0".into(), marks)]).unwrap();
        // Six labels at one moment: six different heights.
        let ys: std::collections::BTreeSet<String> = svg
            .split("<text")
            .filter(|t| t.contains("event number"))
            .filter_map(|t| t.split("y=\"").nth(1)?.split('"').next().map(String::from))
            .collect();
        assert_eq!(ys.len(), 6, "{svg}");
    }
}
