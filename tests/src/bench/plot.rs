//! Latency distributions (CDF of TCP request/response per row) as SVG.

use std::path::Path;

use plotters::prelude::*;

use super::pod_latency::Report;
use crate::LabError;

pub fn cdf(path: &Path, report: &Report) -> Result<(), LabError> {
    let err = |e: &dyn std::fmt::Display| LabError::Other(format!("plot {}: {e}", path.display()));
    let max_x = report
        .rows
        .iter()
        .filter_map(|r| r.tcp_rr_quantiles_us.get(99).copied())
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
    for (i, row) in report.rows.iter().enumerate() {
        let color = Palette99::pick(i).to_rgba();
        let n = row.tcp_rr_quantiles_us.len().min(100);
        let points: Vec<(f64, f64)> = (0..n)
            .map(|q| (row.tcp_rr_quantiles_us[q], q as f64 / 100.0))
            .collect();
        chart
            .draw_series(LineSeries::new(points, color.stroke_width(2)))
            .map_err(|e| err(&e))?
            .label(format!("{} {}", row.dataplane, row.path))
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
