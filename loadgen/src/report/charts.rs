//! SVG charts (plotters), returned as strings to inline into the HTML page.

use anyhow::{anyhow, Result};
use plotters::prelude::*;

const W: u32 = 720;
const H: u32 = 360;
const PALETTE: [RGBColor; 6] = [
    RGBColor(31, 119, 180),
    RGBColor(214, 39, 40),
    RGBColor(44, 160, 44),
    RGBColor(148, 103, 189),
    RGBColor(255, 127, 14),
    RGBColor(23, 190, 207),
];

/// A named series of (x, y) points.
#[derive(Clone, Debug)]
pub struct Series {
    /// Legend text.
    pub name: String,
    /// Points, in x order for lines.
    pub points: Vec<(f64, f64)>,
    /// Whether to join the points with a line.
    pub line: bool,
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
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (x0, x1, y0, y1) = bounds(series, false);
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(x0..x1, y0..y1)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc(y_label)
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            if s.line && scatter {
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?;
            }
            let drawn = if scatter {
                chart
                    .draw_series(s.points.iter().map(|&p| Circle::new(p, 4, color.filled())))
                    .map_err(err)?
            } else {
                chart
                    .draw_series(LineSeries::new(
                        s.points.iter().copied(),
                        color.stroke_width(2),
                    ))
                    .map_err(err)?
            };
            drawn.label(s.name.clone()).legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
            });
        }
        if series.len() > 1 || series.first().is_some_and(|s| !s.name.is_empty()) {
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK.mix(0.3))
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(err)?;
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// Empirical CDF of each series' values (x: value on a log axis, y: fraction
/// <= x): dissemination latencies span microseconds to seconds.
pub fn cdf(title: &str, x_label: &str, samples: &[(String, Vec<f64>)]) -> Result<String> {
    let series: Vec<Series> = samples
        .iter()
        .filter(|(_, v)| !v.is_empty())
        .map(|(name, v)| {
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
            }
        })
        .collect();
    let (mut x0, mut x1, _, _) = bounds(&series, true);
    x0 = x0.max(1e-3) / 1.2;
    x1 = x1.max(x0 * 10.0) * 1.2;
    let mut svg = String::new();
    {
        let root = SVGBackend::with_string(&mut svg, (W, H)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d((x0..x1).log_scale(), 0.0..1.02)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc(x_label)
            .y_desc("fraction of nodes reached")
            .light_line_style(RGBColor(235, 235, 235))
            .draw()
            .map_err(err)?;
        for (i, s) in series.iter().enumerate() {
            let color = PALETTE[i % PALETTE.len()];
            // A step function: each point holds until the next.
            let mut steps = Vec::with_capacity(s.points.len() * 2);
            let mut prev = 0.0;
            for &(x, y) in &s.points {
                steps.push((x.max(x0), prev));
                steps.push((x.max(x0), y));
                prev = y;
            }
            chart
                .draw_series(LineSeries::new(steps, color.stroke_width(2)))
                .map_err(err)?
                .label(s.name.clone())
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK.mix(0.3))
            .position(SeriesLabelPosition::LowerRight)
            .draw()
            .map_err(err)?;
        root.present().map_err(err)?;
    }
    Ok(svg)
}

/// A timeline: one row per trial (up to 8), a dot and label per mark.
pub fn timeline(title: &str, rows: &[(String, Vec<(f64, String)>)]) -> Result<String> {
    let mut svg = String::new();
    {
        let h = 110 + 70 * rows.len().max(1) as u32;
        let root = SVGBackend::with_string(&mut svg, (W, h)).into_drawing_area();
        root.fill(&WHITE).map_err(err)?;
        let (mut t0, mut t1) = (0.0f64, 1.0f64);
        for (_, marks) in rows {
            for (t, _) in marks {
                t0 = t0.min(*t);
                t1 = t1.max(*t);
            }
        }
        let mut chart = ChartBuilder::on(&root)
            .caption(title, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(36)
            .y_label_area_size(70)
            .build_cartesian_2d(t0 - 0.5..t1 * 1.2 + 0.5, 0.0..rows.len().max(1) as f64)
            .map_err(err)?;
        chart
            .configure_mesh()
            .x_desc("seconds after warm-up")
            .disable_y_mesh()
            .y_labels(rows.len().max(1))
            .y_label_formatter(&|y| rows.get(*y as usize).map_or(String::new(), |r| r.0.clone()))
            .label_style(("sans-serif", 12))
            .draw()
            .map_err(err)?;
        for (row, (_, marks)) in rows.iter().enumerate() {
            let y = row as f64 + 0.5;
            for (i, (t, what)) in marks.iter().enumerate() {
                let color = PALETTE[i % PALETTE.len()];
                chart
                    .draw_series(std::iter::once(Circle::new((*t, y), 5, color.filled())))
                    .map_err(err)?;
                // Alternate labels above and below, three heights, so that
                // marks close in time do not print over each other.
                let dy = [0.38, -0.12, 0.25, -0.25, 0.12, -0.38][i % 6];
                chart
                    .draw_series(std::iter::once(Text::new(
                        what.clone(),
                        (*t, y + dy),
                        ("sans-serif", 12).into_font().color(&color),
                    )))
                    .map_err(err)?;
            }
        }
        root.present().map_err(err)?;
    }
    Ok(svg)
}
