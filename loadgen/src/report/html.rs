//! `report.html`: one self-contained page, the summary tables and SVG charts.

use std::collections::BTreeMap;
use std::fmt::Write;

use anyhow::Result;

use super::charts::{self, Series};
use super::Report;
use crate::stats::Ci;
use crate::sweep::{short, SweepResult};

/// Renders the page.
pub fn render(r: &Report) -> Result<String> {
    let mut figures: Vec<(String, String)> = Vec::new();
    latency_cdf(r, &mut figures)?;
    epidemic(r, &mut figures)?;
    if let Some(sw) = &r.sweep {
        sweep(sw, &mut figures)?;
    }
    timeline(r, &mut figures)?;
    if let Some(c) = &r.compare {
        figures.extend(c.figures()?);
    }
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>gossip-loadgen: {name}</title>\
         <style>body{{font-family:system-ui,sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px}}\
         th{{background:#f4f4f4}}td:not(:first-child){{text-align:right}}figure{{margin:1.5em 0}}\
         figcaption{{color:#555;font-size:90%}}code{{background:#f4f4f4;padding:1px 4px}}</style>\
         </head><body>\n",
        name = esc(&r.scenario.name)
    );
    o.push_str(&markdown_to_html(&r.markdown()));
    for (caption, svg) in &figures {
        let _ = writeln!(
            o,
            "<figure>{svg}<figcaption>{}</figcaption></figure>",
            esc(caption)
        );
    }
    o.push_str("</body></html>\n");
    Ok(o)
}

fn latency_cdf(r: &Report, figures: &mut Vec<(String, String)>) -> Result<()> {
    let samples = charts::latency_by_kind(&r.trials);
    if samples.iter().all(|(_, v, _)| v.is_empty()) {
        return Ok(());
    }
    figures.push((
        "CDF of dissemination latency: time from injection to first reception at each live node, per item kind. The shaded band holds the whole true CDF at 95 % over the items (an item's nodes are correlated).".into(),
        charts::cdf("Dissemination latency", "ms after injection (log scale)", &samples)?,
    ));
    Ok(())
}

fn epidemic(r: &Report, figures: &mut Vec<(String, String)>) -> Result<()> {
    let pts: Vec<(f64, f64)> = r
        .trials
        .iter()
        .filter_map(|t| t.epidemic.map(|e| (e.traffic, e.residue)))
        .collect();
    if pts.is_empty() {
        return Ok(());
    }
    figures.push((
        "Each trial's traffic (update-carrying messages per node) against its residue (fraction never reached).".into(),
        charts::lines(
            "Residue against traffic, per trial",
            "traffic m",
            "residue s",
            &[Series {
                name: String::new(),
                points: pts,
                line: false,
                ..Series::default()
            }],
            true,
        )?,
    ));
    Ok(())
}

fn sweep(sw: &SweepResult, figures: &mut Vec<(String, String)>) -> Result<()> {
    // Cost against what it buys, the front highlighted.
    let mut all = Vec::new();
    let mut all_ci = Vec::new();
    let mut front = Vec::new();
    let mut benefit_name = String::from("benefit");
    for (i, p) in sw.points.iter().enumerate() {
        if let (Some(c), Some((name, b))) = (p.cost(), p.benefit()) {
            let ci = crate::sweep::Target {
                path: name.clone(),
                max: 0.0,
            }
            .ci(&p.summary);
            all_ci.push(ci.map_or((None, None), |c| (c.lo, c.hi)));
            benefit_name = name;
            all.push((c, b));
            if sw.pareto.contains(&i) {
                front.push((c, b));
            }
        }
    }
    front.sort_by(|a, b| a.0.total_cmp(&b.0));
    if !all.is_empty() {
        figures.push((
            format!("Pareto chart: cost (wire bytes per node per second) against {benefit_name}; the line joins the settings no other beats on both. {}", sw.statement),
            charts::lines(
                "Cost against benefit",
                "wire bytes / node / s",
                &benefit_name,
                &[
                    Series {
                        name: "settings (bars: 95 % intervals)".into(),
                        points: all,
                        line: false,
                        ci: all_ci,
                    },
                    Series {
                        name: "Pareto front".into(),
                        points: front,
                        line: true,
                        ..Series::default()
                    },
                ],
                true,
            )?,
        ));
    }
    // Each figure against each numeric axis, one line per value of the
    // other axes, with its 95 % interval as a bar.
    let metrics: [(&str, Figure); 5] = [
        ("wire bytes / node / s", |s| {
            s.wire_bytes_per_node_s.map(|w| (w.mean, w.mean_ci))
        }),
        ("FAIL everywhere, p50 s", |s| {
            s.detect_all_fail_s.map(|d| (d.p50, d.p50_ci))
        }),
        ("latency p99 ms", |s| {
            s.latency_ms.map(|l| (l.p99, l.p99_ci))
        }),
        ("redundancy", |s| s.redundancy.map(|r| (r.mean, r.mean_ci))),
        ("false FAILs", |s| s.false_fails.map(|f| (f as f64, None))),
    ];
    for axis in &sw.axes {
        if axis.values.iter().any(|v| v.parse::<f64>().is_err()) {
            continue;
        }
        for (name, f) in metrics {
            type Pt = (f64, f64, Option<Ci>);
            let mut series: BTreeMap<String, Vec<Pt>> = BTreeMap::new();
            for p in &sw.points {
                let (Some(x), Some((y, ci))) = (
                    p.params.get(&axis.key).and_then(|v| v.parse::<f64>().ok()),
                    f(&p.summary),
                ) else {
                    continue;
                };
                let rest: Vec<String> = p
                    .params
                    .iter()
                    .filter(|(k, _)| **k != axis.key)
                    .map(|(k, v)| format!("{}={v}", short(k)))
                    .collect();
                series.entry(rest.join(" ")).or_default().push((x, y, ci));
            }
            if series.values().all(|v| v.len() < 2) {
                continue;
            }
            let series: Vec<Series> = series
                .into_iter()
                .map(|(name, mut points)| {
                    points.sort_by(|a, b| a.0.total_cmp(&b.0));
                    Series {
                        name,
                        ci: points
                            .iter()
                            .map(|(_, _, c)| c.map_or((None, None), |c| (c.lo, c.hi)))
                            .collect(),
                        points: points.iter().map(|&(x, y, _)| (x, y)).collect(),
                        line: true,
                    }
                })
                .collect();
            figures.push((
                format!("{name} against {}; bars: 95 % intervals (a short faint stub without a cap: no bound on that side, too few samples).", axis.key),
                charts::lines(
                    &format!("{name} vs {}", short(&axis.key)),
                    short(&axis.key),
                    name,
                    &series,
                    false,
                )?,
            ));
        }
    }
    Ok(())
}

/// Reads one figure and its interval out of a summary.
type Figure = fn(&crate::metrics::Summary) -> Option<(f64, Option<Ci>)>;

fn timeline(r: &Report, figures: &mut Vec<(String, String)>) -> Result<()> {
    let rows: Vec<(String, Vec<(f64, String)>)> = r
        .trials
        .iter()
        .filter(|t| !t.timeline.is_empty())
        .take(8)
        .map(|t| {
            (
                format!("trial {}", t.index),
                t.timeline.iter().map(|m| (m.t_s, m.what.clone())).collect(),
            )
        })
        .collect();
    if rows.is_empty() {
        return Ok(());
    }
    figures.push((
        "Timeline of each trial's events (first 8 trials).".into(),
        charts::timeline("Timeline", &rows)?,
    ));
    Ok(())
}

/// Just enough Markdown for our own tables, headings and paragraphs.
fn markdown_to_html(md: &str) -> String {
    let mut o = String::new();
    let mut in_table = false;
    for line in md.lines() {
        if line.starts_with('|') {
            let cells: Vec<&str> = line.trim_matches('|').split('|').map(str::trim).collect();
            if cells
                .iter()
                .all(|c| c.chars().all(|ch| matches!(ch, '-' | ':')))
            {
                continue;
            }
            if !in_table {
                o.push_str("<table>");
                in_table = true;
                o.push_str("<tr>");
                for c in &cells {
                    let _ = write!(o, "<th>{}</th>", inline(c));
                }
                o.push_str("</tr>\n");
                continue;
            }
            o.push_str("<tr>");
            for c in &cells {
                let _ = write!(o, "<td>{}</td>", inline(c));
            }
            o.push_str("</tr>\n");
            continue;
        }
        if in_table {
            o.push_str("</table>\n");
            in_table = false;
        }
        if let Some(h) = line.strip_prefix("### ") {
            let _ = writeln!(o, "<h3>{}</h3>", inline(h));
        } else if let Some(h) = line.strip_prefix("## ") {
            let _ = writeln!(o, "<h2>{}</h2>", inline(h));
        } else if let Some(h) = line.strip_prefix("# ") {
            let _ = writeln!(o, "<h1>{}</h1>", inline(h));
        } else if !line.trim().is_empty() {
            let _ = writeln!(o, "<p>{}</p>", inline(line));
        }
    }
    if in_table {
        o.push_str("</table>\n");
    }
    o
}

fn inline(s: &str) -> String {
    let e = esc(s);
    let mut o = String::new();
    for (i, part) in e.split('`').enumerate() {
        if i % 2 == 1 {
            let _ = write!(o, "<code>{part}</code>");
        } else {
            // **bold** (the busy-host warning).
            for (j, bit) in part.split("**").enumerate() {
                match j % 2 {
                    1 => {
                        let _ = write!(o, "<strong>{bit}</strong>");
                    }
                    _ => o.push_str(bit),
                }
            }
        }
    }
    o
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
