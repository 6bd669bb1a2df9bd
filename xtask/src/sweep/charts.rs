//! SVG charts (plotters, SVG backend only): per workload and durability, median ops/s against
//! threads (`ops_<workload>_<durability>.svg`) and median syscalls per commit against threads
//! on a log scale (`syscalls_<workload>_<durability>.svg`; engines that report no syscall total,
//! the peers, appear with their write calls, labelled so), one line per engine/policy.

use std::path::{Path, PathBuf};

use anyhow::Context;
use plotters::coord::ranged1d::SegmentValue;
use plotters::prelude::*;

use super::config::{variant, Matrix};
use super::run::{BenchResult, RunRecord};
use super::summary::{short, Samples};

/// Chart size in pixels: the plot, then the legend column to its right.
const WIDTH: u32 = 1040;
const HEIGHT: u32 = 560;
const PLOT_WIDTH: u32 = 760;

/// One line of a chart: its label and its (thread index, value) points.
#[derive(Debug, Clone, PartialEq)]
pub struct Line {
    /// `engine/policy`.
    pub label: String,
    /// Points, by index into the matrix's thread counts.
    pub points: Vec<(usize, f64)>,
}

/// The lines of one chart: per variant, the median of `metric` at each thread count that has
/// one (variants with no point are left out).
pub fn lines(
    matrix: &Matrix,
    samples: &Samples<'_>,
    workload: &str,
    durability: &str,
    metric: fn(&BenchResult) -> Option<f64>,
) -> Vec<Line> {
    matrix
        .variants()
        .iter()
        .map(|(e, p)| variant(e, p.as_deref()))
        .filter_map(|label| {
            let points: Vec<(usize, f64)> = matrix
                .threads
                .iter()
                .enumerate()
                .filter_map(|(i, &t)| {
                    samples
                        .spread(workload, durability, &label, t, metric)
                        .map(|s| (i, s.median))
                })
                .collect();
            (!points.is_empty()).then_some(Line { label, points })
        })
        .collect()
}

/// Writes both charts for every workload and durability into `out`; returns their paths.
pub fn write_all(matrix: &Matrix, records: &[RunRecord], out: &Path) -> anyhow::Result<Vec<PathBuf>> {
    let samples = Samples::new(records);
    let mut written = Vec::new();
    for workload in &matrix.workloads {
        for durability in &matrix.durability {
            let name = &workload.name;
            let ops = lines(matrix, &samples, name, durability, |r| Some(r.ops_per_sec));
            let path = out.join(format!("ops_{name}_{durability}.svg"));
            let title = format!("{name}, durability {durability}: ops/s (median over rounds)");
            draw(&path, &title, "ops/s", &matrix.threads, &ops, Scale::Linear)
                .with_context(|| format!("drawing {}", path.display()))?;
            written.push(path);

            // Engines that count no syncs (peers) report write calls only: shown, and labelled so.
            let mut calls = lines(matrix, &samples, name, durability, |r| r.syscalls_per_commit);
            for mut line in lines(matrix, &samples, name, durability, |r| r.write_calls_per_commit) {
                if !calls.iter().any(|l| l.label == line.label) {
                    line.label.push_str(" (write calls only)");
                    calls.push(line);
                }
            }
            let path = out.join(format!("syscalls_{name}_{durability}.svg"));
            let title =
                format!("{name}, durability {durability}: I/O syscalls per commit (median, log scale)");
            draw(
                &path,
                &title,
                "syscalls per commit",
                &matrix.threads,
                &calls,
                Scale::Log,
            )
            .with_context(|| format!("drawing {}", path.display()))?;
            written.push(path);
        }
    }
    Ok(written)
}

/// The y axis of a chart.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scale {
    /// From 0 to a little over the largest value.
    Linear,
    /// Logarithmic, around the positive values (others are left out).
    Log,
}

/// Draws one line chart with a legend column.
fn draw(
    path: &Path,
    title: &str,
    y_desc: &str,
    threads: &[u32],
    lines: &[Line],
    scale: Scale,
) -> anyhow::Result<()> {
    let root = SVGBackend::new(path, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let (plot, legend) = root.split_horizontally(PLOT_WIDTH);

    let lines: Vec<Line> = lines
        .iter()
        .map(|l| Line {
            label: l.label.clone(),
            points: l
                .points
                .iter()
                .copied()
                .filter(|&(_, v)| v.is_finite() && (scale == Scale::Linear || v > 0.0))
                .collect(),
        })
        .filter(|l| !l.points.is_empty())
        .collect();
    let values: Vec<f64> = lines.iter().flat_map(|l| l.points.iter().map(|p| p.1)).collect();
    let hi = values.iter().copied().fold(f64::MIN, f64::max);
    let lo = values.iter().copied().fold(f64::MAX, f64::min);

    // One segment per thread count, labelled with it (a single count still gets two segments).
    let segments = threads.len().max(2) - 1;
    let x_label = |v: &SegmentValue<usize>| match v {
        SegmentValue::CenterOf(i) => threads.get(*i).map(ToString::to_string).unwrap_or_default(),
        _ => String::new(),
    };
    let x_of = |i: usize| SegmentValue::CenterOf(i);
    let mut builder = ChartBuilder::on(&plot);
    builder
        .caption(title, ("sans-serif", 16))
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(64);

    if values.is_empty() {
        plot.draw(&Text::new(
            format!("{title}: no values reported"),
            (40, (HEIGHT / 2) as i32),
            ("sans-serif", 16),
        ))?;
    } else if scale == Scale::Linear {
        let mut chart = builder.build_cartesian_2d((0..segments).into_segmented(), 0f64..hi * 1.1)?;
        chart
            .configure_mesh()
            .x_desc("writer threads")
            .y_desc(y_desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&|v| short(*v))
            .draw()?;
        for (i, line) in lines.iter().enumerate() {
            let color = Palette99::pick(i);
            chart.draw_series(
                LineSeries::new(
                    line.points.iter().map(|&(x, y)| (x_of(x), y)),
                    color.stroke_width(2),
                )
                .point_size(3),
            )?;
        }
    } else {
        let mut chart =
            builder.build_cartesian_2d((0..segments).into_segmented(), (lo / 2.0..hi * 2.0).log_scale())?;
        chart
            .configure_mesh()
            .x_desc("writer threads")
            .y_desc(y_desc)
            .x_label_formatter(&x_label)
            .y_label_formatter(&|v| short(*v))
            .draw()?;
        for (i, line) in lines.iter().enumerate() {
            let color = Palette99::pick(i);
            chart.draw_series(
                LineSeries::new(
                    line.points.iter().map(|&(x, y)| (x_of(x), y)),
                    color.stroke_width(2),
                )
                .point_size(3),
            )?;
        }
    }

    // The legend, in the column right of the plot.
    for (i, line) in lines.iter().enumerate() {
        let y = 40 + 20 * i as i32;
        let color = Palette99::pick(i);
        legend.draw(&PathElement::new(vec![(8, y), (36, y)], color.stroke_width(3)))?;
        legend.draw(&Text::new(line.label.clone(), (44, y - 7), ("sans-serif", 13)))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sweep::run::scratch_dir;
    use crate::sweep::run::tests::{records, tiny_matrix};

    #[test]
    fn lines_hold_medians_per_thread_count() {
        let m = tiny_matrix();
        let recs = records(&m);
        let samples = Samples::new(&recs);
        let ops = lines(&m, &samples, "W1", "none", |r| Some(r.ops_per_sec));
        let labels: Vec<&str> = ops.iter().map(|l| l.label.as_str()).collect();
        assert_eq!(labels, ["cf-store/per-page", "cf-store/vectored", "raw"]);
        assert_eq!(ops[0].points, [(0, 1000.0), (1, 2000.0)]);
        assert!(lines(&m, &samples, "W1", "immediate", |r| Some(r.ops_per_sec)).is_empty());
    }

    #[test]
    fn charts_are_svg_files() {
        let mut m = tiny_matrix();
        let recs = records(&m);
        m.durability.push("immediate".into());
        let dir = scratch_dir("charts");
        let written = write_all(&m, &recs, &dir).unwrap();
        let names: Vec<String> = written
            .iter()
            .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            [
                "ops_W1_none.svg",
                "syscalls_W1_none.svg",
                "ops_W1_immediate.svg",
                "syscalls_W1_immediate.svg"
            ]
        );
        for path in &written {
            let text = std::fs::read_to_string(path).unwrap();
            assert!(text.trim_start().starts_with("<svg"), "{}", path.display());
            assert!(text.trim_end().ends_with("</svg>"));
        }
        let ops = std::fs::read_to_string(&written[0]).unwrap();
        assert!(ops.contains("cf-store/vectored") && ops.contains("writer threads"));
        // raw reports no syscall total here: its write calls are drawn, and labelled so.
        let calls = std::fs::read_to_string(&written[1]).unwrap();
        assert!(calls.contains("raw (write calls only)"), "{calls}");
        // No runs in `immediate`: the chart says so instead of failing.
        let empty = std::fs::read_to_string(&written[2]).unwrap();
        assert!(empty.contains("no values reported"));
        std::fs::remove_dir_all(dir).unwrap();
    }
}
