//! Latency distributions as SVG: one CDF line per labelled series of
//! percentiles (index q = the q-th percentile). Knows no benchmark.

use std::path::Path;

use plotters::prelude::*;

use crate::LabError;

/// `series`: (label, percentiles 0..=99 in µs).
pub fn cdf(path: &Path, series: &[(String, Vec<f64>)]) -> Result<(), LabError> {
    let err = |e: &dyn std::fmt::Display| LabError::Other(format!("plot {}: {e}", path.display()));
    let max_x = series
        .iter()
        .filter_map(|(_, q)| q.get(99).copied())
        .fold(1.0_f64, f64::max)
        * 1.1;
    let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
    root.fill(&WHITE).map_err(|e| err(&e))?;
    let mut chart = ChartBuilder::on(&root)
        .caption(
            "TCP 1-byte request/response latency (CDF)",
            ("sans-serif", 20),
        )
        .margin(12)
        .x_label_area_size(40)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..max_x, 0.0..1.0)
        .map_err(|e| err(&e))?;
    chart
        .configure_mesh()
        .x_desc("round trip, µs")
        .y_desc("fraction of requests")
        .draw()
        .map_err(|e| err(&e))?;
    for (i, (label, quantiles)) in series.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let points: Vec<(f64, f64)> = quantiles
            .iter()
            .take(100)
            .enumerate()
            .map(|(q, v)| (*v, q as f64 / 100.0))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(label.clone())
            .legend(move |(x, y)| {
                PathElement::new(vec![(x, y), (x + 20, y)], color.stroke_width(2))
            });
    }
    chart
        .configure_series_labels()
        .border_style(BLACK)
        .background_style(WHITE.mix(0.8))
        .position(SeriesLabelPosition::LowerRight)
        .draw()
        .map_err(|e| err(&e))?;
    root.present().map_err(|e| err(&e))
}
