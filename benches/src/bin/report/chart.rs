//! The throughput chart: operations per second by concurrency, one panel per operation and
//! value size, for cache-core, raw redis, the `cached` crate and the redis-benchmark ceiling.

use std::error::Error;
use std::path::Path;

use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::FontStyle;

use crate::inputs::{Run, Stat};
use crate::markdown::{MODES, OPS, SIZES};

/// Where a TrueType font may be: `BENCH_FONT`, then Debian's fonts-dejavu-core.
const FONTS: [&str; 2] = [
    "/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf",
    "/usr/share/fonts/TTF/DejaVuSans.ttf",
];

/// Registers a font as "sans-serif" from a file: plotters' ab_glyph backend draws text
/// without fontconfig, from bytes it is handed.
fn register_font() -> Result<(), Box<dyn Error>> {
    let candidates = std::env::var("BENCH_FONT")
        .ok()
        .into_iter()
        .chain(FONTS.iter().map(|s| (*s).to_owned()));
    for path in candidates {
        if let Ok(bytes) = std::fs::read(&path) {
            let bytes: &'static [u8] = Box::leak(bytes.into_boxed_slice());
            return plotters::style::register_font("sans-serif", FontStyle::Normal, bytes)
                .map_err(|_| format!("{path} is not a usable TrueType font").into());
        }
    }
    Err("no TrueType font found: install fonts-dejavu-core (run.sh does) or set BENCH_FONT".into())
}

/// (series id, label, colour, dashed). The pipelined ceiling (`-c 1 -P N`) is 3-7x above every
/// client here, so it is written into each panel as numbers rather than drawn: drawn, it would
/// flatten the lines the chart is for.
const SERIES: [(&str, &str, RGBColor, bool); 4] = [
    ("cache-core", "cache-core", RGBColor(31, 119, 180), false),
    (
        "raw-multiplexed",
        "raw redis (multiplexed)",
        RGBColor(44, 160, 44),
        false,
    ),
    ("cached-crate", "cached crate", RGBColor(214, 39, 40), false),
    (
        CONNECTIONS,
        "redis-benchmark -c N (N connections)",
        RGBColor(150, 150, 150),
        true,
    ),
];
const PIPELINED: &str = "redis-benchmark pipelined";
const CONNECTIONS: &str = "redis-benchmark connections";

/// One series' points: (mode index, median, min, max) in thousands of ops/s.
fn points(run: &Run, op: &str, size: &str, bytes: u32, series: &str) -> Vec<(usize, Stat)> {
    MODES
        .iter()
        .enumerate()
        .filter_map(|(i, (mode, tasks))| {
            let stat = if series == PIPELINED {
                run.ceiling(op, bytes, *tasks, true)
            } else if series == CONNECTIONS {
                run.ceiling(op, bytes, *tasks, false)
            } else {
                run.bench(&format!("redis_{op}_{size}_{mode}"), series)
                    .and_then(|b| b.rate())
            }?;
            Some((
                i,
                Stat {
                    median: stat.median / 1e3,
                    min: stat.min / 1e3,
                    max: stat.max / 1e3,
                },
            ))
        })
        .collect()
}

fn panel(
    area: &DrawingArea<BitMapBackend<'_>, Shift>,
    run: &Run,
    op: &str,
    (size, label, bytes): (&str, &str, u32),
) -> Result<(), Box<dyn Error>> {
    let all: Vec<_> = SERIES
        .iter()
        .map(|(id, ..)| points(run, op, size, bytes, id))
        .collect();
    let top = all
        .iter()
        .flatten()
        .map(|(_, s)| s.max)
        .fold(1.0_f64, f64::max)
        * 1.55;
    let ceiling: Vec<String> = points(run, op, size, bytes, PIPELINED)
        .iter()
        .filter(|(i, _)| *i > 0)
        .map(|(i, s)| format!("{}: {:.0}k", MODES[*i].1, s.median))
        .collect();
    let mut chart = ChartBuilder::on(area)
        .caption(
            format!("{} of the {label} ({bytes} B stored)", op.to_uppercase()),
            ("sans-serif", 24),
        )
        .margin(16)
        .x_label_area_size(48)
        .y_label_area_size(72)
        .build_cartesian_2d(-0.4_f64..3.4_f64, 0.0_f64..top)?;
    chart
        .configure_mesh()
        .disable_x_mesh()
        .x_labels(MODES.len())
        .x_label_formatter(&|x| {
            let i = x.round();
            if (x - i).abs() < 0.05 && (0.0..4.0).contains(&i) {
                MODES[i as usize].1.to_string()
            } else {
                String::new()
            }
        })
        .x_desc("concurrent tasks (redis-benchmark: requests in flight)")
        .y_desc("thousand operations / s")
        .y_label_formatter(&|y| format!("{y:.0}"))
        .label_style(("sans-serif", 16))
        .axis_desc_style(("sans-serif", 17))
        .draw()?;
    for ((_, name, colour, dashed), pts) in SERIES.iter().zip(&all) {
        let colour = *colour;
        let line: Vec<(f64, f64)> = pts.iter().map(|(i, s)| (*i as f64, s.median)).collect();
        let style = colour.stroke_width(if *dashed { 2 } else { 3 });
        if *dashed {
            chart
                .draw_series(DashedLineSeries::new(line.clone(), 8, 6, style))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        } else {
            chart
                .draw_series(LineSeries::new(line.clone(), style))?
                .label(*name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
        }
        chart.draw_series(line.iter().map(|p| Circle::new(*p, 4, colour.filled())))?;
        // The range of the samples, as a vertical bar.
        chart.draw_series(pts.iter().map(|(i, s)| {
            PathElement::new(
                vec![(*i as f64, s.min), (*i as f64, s.max)],
                colour.stroke_width(2),
            )
        }))?;
    }
    if !ceiling.is_empty() {
        // Right of the legend, which holds the upper left corner.
        chart.draw_series(
            [
                "off the scale, redis-benchmark -c 1 -P N".to_owned(),
                "(N in flight on one connection), ops/s:".to_owned(),
                ceiling.join(", "),
            ]
            .into_iter()
            .enumerate()
            .map(|(line, text)| {
                Text::new(
                    text,
                    (1.45, top * (0.985 - 0.06 * line as f64)),
                    ("sans-serif", 14),
                )
            }),
        )?;
    }
    chart
        .configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .background_style(WHITE.mix(0.85))
        .border_style(BLACK)
        .label_font(("sans-serif", 15))
        .draw()?;
    Ok(())
}

pub(crate) fn draw(run: &Run, path: &Path) -> Result<(), Box<dyn Error>> {
    register_font()?;
    let root = BitMapBackend::new(path, (1600, 1150)).into_drawing_area();
    root.fill(&WHITE)?;
    let (title, body) = root.split_vertically(70);
    title.draw(&Text::new(
        format!(
            "Redis throughput by concurrency, one run of benches/run.sh{} on {} ({}); bars: sample range; 1 task = 1 / latency",
            if run.machine("mode").starts_with("quick") { " --quick" } else { "" },
            run.machine("cpu"),
            run.machine("cores")
        ),
        (20, 22),
        ("sans-serif", 22),
    ))?;
    let panels = body.split_evenly((2, 2));
    let specs = OPS
        .iter()
        .flat_map(|op| SIZES.iter().map(move |s| (*op, *s)));
    for (area, (op, size)) in panels.iter().zip(specs) {
        panel(area, run, op, size)?;
    }
    root.present()?;
    Ok(())
}
