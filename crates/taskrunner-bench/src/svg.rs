//! A hand-written SVG plot of median throughput against writer count, log y axis.

use std::fmt::Write as _;

use crate::report::{stats, Throughput};

const WIDTH: f64 = 760.0;
const HEIGHT: f64 = 440.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 230.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;
const COLORS: [&str; 8] =
    ["#d62728", "#1f77b4", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"];

/// Renders the plot; writer counts are spaced evenly on the x axis (1, 2, 4, 8, 16 is a log
/// scale), M ops/s on a log10 y axis with 1–2–5 grid lines; each median has a faint whisker
/// spanning the min–max of its repetitions.
pub(crate) fn render(t: &Throughput) -> String {
    let medians: Vec<Vec<Option<f64>>> = (0..t.variants.len())
        .map(|v| (0..t.writers.len()).map(|w| t.median(v, w).filter(|m| *m > 0.0)).collect())
        .collect();
    let all: Vec<f64> =
        t.samples.iter().flatten().flatten().copied().filter(|m| *m > 0.0).collect();
    let lo = all.iter().copied().fold(f64::MAX, f64::min);
    let hi = all.iter().copied().fold(f64::MIN, f64::max);
    let (lo, hi) = if all.is_empty() { (0.1, 10.0) } else { (lo, hi) };
    let y_min = 10f64.powf(lo.log10().floor());
    let y_max = 10f64.powf(hi.log10().ceil()).max(y_min * 10.0);
    let plot_w = WIDTH - LEFT - RIGHT;
    let plot_h = HEIGHT - TOP - BOTTOM;
    let x = |i: usize| {
        if t.writers.len() <= 1 {
            LEFT + plot_w / 2.0
        } else {
            LEFT + plot_w * i as f64 / (t.writers.len() - 1) as f64
        }
    };
    let y = |v: f64| TOP + plot_h * (1.0 - (v / y_min).log10() / (y_max / y_min).log10());

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" viewBox="0 0 {WIDTH} {HEIGHT}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect width="100%" height="100%" fill="white"/>"#);
    let _ = writeln!(
        s,
        r#"<text x="{}" y="22" font-size="15" text-anchor="middle">Throughput against writer threads (median, M ops/s, log scale)</text>"#,
        WIDTH / 2.0
    );
    // Horizontal grid: 1, 2, 5 per decade.
    let mut decade = y_min;
    while decade < y_max * 1.001 {
        for m in [1.0, 2.0, 5.0] {
            let v = decade * m;
            if v > y_max * 1.001 {
                break;
            }
            let yy = y(v);
            let stroke = if m == 1.0 { "#bbb" } else { "#e5e5e5" };
            let _ = writeln!(
                s,
                r#"<line x1="{LEFT}" y1="{yy:.1}" x2="{:.1}" y2="{yy:.1}" stroke="{stroke}"/>"#,
                LEFT + plot_w
            );
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
                LEFT - 6.0,
                yy + 4.0,
                trim(v)
            );
        }
        decade *= 10.0;
    }
    // Axes and x ticks.
    let _ = writeln!(
        s,
        r#"<polyline points="{LEFT},{TOP} {LEFT},{:.1} {:.1},{:.1}" fill="none" stroke="black"/>"#,
        TOP + plot_h,
        LEFT + plot_w,
        TOP + plot_h
    );
    for (i, w) in t.writers.iter().enumerate() {
        let xx = x(i);
        let _ = writeln!(
            s,
            r#"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="black"/><text x="{xx:.1}" y="{:.1}" text-anchor="middle">{w}</text>"#,
            TOP + plot_h,
            TOP + plot_h + 5.0,
            TOP + plot_h + 20.0
        );
    }
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">writer threads</text>"#,
        LEFT + plot_w / 2.0,
        HEIGHT - 10.0
    );
    let _ = writeln!(
        s,
        r#"<text x="16" y="{:.1}" text-anchor="middle" transform="rotate(-90 16 {:.1})">M ops/s</text>"#,
        TOP + plot_h / 2.0,
        TOP + plot_h / 2.0
    );
    // One polyline, its points and a legend entry per variant.
    for (v, variant) in t.variants.iter().enumerate() {
        let color = COLORS[v % COLORS.len()];
        let points: Vec<(f64, f64)> =
            medians[v].iter().enumerate().filter_map(|(i, m)| m.map(|m| (x(i), y(m)))).collect();
        let list: Vec<String> = points.iter().map(|(a, b)| format!("{a:.1},{b:.1}")).collect();
        let _ = writeln!(
            s,
            r#"<polyline points="{}" fill="none" stroke="{color}" stroke-width="2"/>"#,
            list.join(" ")
        );
        for (a, b) in &points {
            let _ = writeln!(s, r#"<circle cx="{a:.1}" cy="{b:.1}" r="3" fill="{color}"/>"#);
        }
        // Whiskers: the min–max range of the repetitions at each writer count.
        for (i, samples) in t.samples[v].iter().enumerate() {
            if let Some((_, min, max)) = stats(samples).filter(|s| s.1 > 0.0) {
                let xx = x(i) + 3.0 * (v as f64 - (t.variants.len() as f64 - 1.0) / 2.0);
                let _ = writeln!(
                    s,
                    r#"<line x1="{xx:.1}" y1="{:.1}" x2="{xx:.1}" y2="{:.1}" stroke="{color}" stroke-opacity="0.5"/>"#,
                    y(min.max(y_min)),
                    y(max.min(y_max))
                );
            }
        }
        let ly = TOP + 10.0 + 20.0 * v as f64;
        let lx = LEFT + plot_w + 15.0;
        let _ = writeln!(
            s,
            r#"<line x1="{lx:.1}" y1="{ly:.1}" x2="{:.1}" y2="{ly:.1}" stroke="{color}" stroke-width="2"/><text x="{:.1}" y="{:.1}">{}</text>"#,
            lx + 20.0,
            lx + 26.0,
            ly + 4.0,
            escape(variant.name())
        );
    }
    let _ = writeln!(s, "</svg>");
    s
}

fn trim(v: f64) -> String {
    if v >= 1.0 {
        format!("{v:.0}")
    } else {
        let s = format!("{v:.3}");
        s.trim_end_matches('0').to_string()
    }
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::variants::Variant;

    #[test]
    fn plot_has_a_line_per_variant() {
        let t = Throughput {
            writers: vec![1, 2],
            variants: vec![Variant::Sequence, Variant::ParkingLot],
            samples: vec![vec![vec![1.0], vec![2.0]], vec![vec![30.0], vec![]]],
        };
        let svg = render(&t);
        assert!(svg.starts_with("<svg") && svg.trim_end().ends_with("</svg>"));
        assert_eq!(svg.matches("<polyline").count(), 1 + 2);
        assert!(svg.contains("parking_lot::Mutex"));
    }
}
