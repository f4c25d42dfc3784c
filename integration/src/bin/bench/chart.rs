//! The SVG chart (docs/benchmarks.svg): box plots of the crash failovers and handovers.

use super::crash::{CrashResult, failovers};
use super::handover::{Handover, HandoverTrial, handover_values};
use super::results::Results;
use super::stats::summarize;
use std::fmt::Write as _;

pub(super) struct Row {
    pub(super) label: String,
    pub(super) values: Vec<f64>,
    pub(super) colour: &'static str,
}

pub(super) fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A step for axis ticks: 1, 2 or 5 times a power of ten, about `max / 6`.
pub(super) fn tick_step(max: f64) -> f64 {
    let raw = (max / 6.0).max(1e-6);
    let power = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * power)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * power)
}

/// One panel: a box plot per row (quartiles, median, min–max whiskers) and every trial as a
/// dot, on a shared linear axis. Returns the SVG and its height.
pub(super) fn panel(title: &str, unit: &str, scale: f64, rows: &[Row], top: f64) -> (String, f64) {
    const WIDTH: f64 = 900.0;
    const LEFT: f64 = 300.0;
    const RIGHT: f64 = 40.0;
    const ROW: f64 = 46.0;
    /// Room for a median label.
    const LABEL: f64 = 150.0;
    let mut s = String::new();
    let max = rows
        .iter()
        .flat_map(|r| r.values.iter())
        .fold(0.0f64, |a, b| a.max(*b))
        * scale;
    let step = tick_step(max.max(1e-3));
    let axis_max = (max / step).ceil().max(1.0) * step;
    let x = |v: f64| LEFT + (v * scale) / axis_max * (WIDTH - LEFT - RIGHT);
    let _ = writeln!(
        s,
        r#"<text x="20" y="{:.0}" font-size="16" font-weight="bold">{}</text>"#,
        top + 20.0,
        escape(title)
    );
    let plot_top = top + 34.0;
    let plot_bottom = plot_top + ROW * rows.len() as f64;
    // Grid and ticks.
    let mut t = 0.0;
    while t <= axis_max + step / 2.0 {
        let px = LEFT + t / axis_max * (WIDTH - LEFT - RIGHT);
        let _ = writeln!(
            s,
            r##"<line x1="{px:.1}" y1="{plot_top:.1}" x2="{px:.1}" y2="{plot_bottom:.1}" stroke="#ddd"/>"##
        );
        let label = if step < 1.0 {
            format!("{t:.1}")
        } else {
            format!("{t:.0}")
        };
        let _ = writeln!(
            s,
            r##"<text x="{px:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#555">{label}</text>"##,
            plot_bottom + 14.0
        );
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<text x="{:.1}" y="{:.1}" font-size="11" text-anchor="middle" fill="#555">{}</text>"##,
        LEFT + (WIDTH - LEFT - RIGHT) / 2.0,
        plot_bottom + 30.0,
        escape(unit)
    );
    for (i, row) in rows.iter().enumerate() {
        let cy = plot_top + ROW * i as f64 + ROW / 2.0;
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" font-size="12" text-anchor="end">{}</text>"#,
            LEFT - 10.0,
            cy + 4.0,
            escape(&row.label)
        );
        let Some(sum) = summarize(&row.values) else {
            let _ = writeln!(
                s,
                r##"<text x="{:.1}" y="{:.1}" font-size="12" fill="#999">not run</text>"##,
                LEFT + 6.0,
                cy + 4.0
            );
            continue;
        };
        let h = 16.0;
        let _ = writeln!(
            s,
            r#"<line x1="{:.1}" y1="{cy:.1}" x2="{:.1}" y2="{cy:.1}" stroke="{}" stroke-width="1.5"/>"#,
            x(sum.min),
            x(sum.max),
            row.colour
        );
        for v in [sum.min, sum.max] {
            let _ = writeln!(
                s,
                r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{3}" stroke-width="1.5"/>"#,
                x(v),
                cy - h / 3.0,
                cy + h / 3.0,
                row.colour
            );
        }
        let _ = writeln!(
            s,
            r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{h:.1}" fill="{}" fill-opacity="0.25" stroke="{}"/>"#,
            x(sum.q1),
            cy - h / 2.0,
            (x(sum.q3) - x(sum.q1)).max(1.0),
            row.colour,
            row.colour
        );
        let _ = writeln!(
            s,
            r#"<line x1="{0:.1}" y1="{1:.1}" x2="{0:.1}" y2="{2:.1}" stroke="{3}" stroke-width="3"/>"#,
            x(sum.median),
            cy - h / 2.0 - 2.0,
            cy + h / 2.0 + 2.0,
            row.colour
        );
        for (k, v) in row.values.iter().enumerate() {
            // Spread the dots vertically a little so equal values stay visible.
            let dy = ((k * 7) % 5) as f64 * 2.0 - 4.0;
            let _ = writeln!(
                s,
                r##"<circle cx="{:.1}" cy="{:.1}" r="2.2" fill="#222" fill-opacity="0.55"/>"##,
                x(*v),
                cy + h / 2.0 + 6.0 + dy / 2.0
            );
        }
        let median_text = if scale == 1.0 {
            format!("median {:.2} s (n={})", sum.median, sum.n)
        } else {
            format!("median {:.0} ms (n={})", sum.median * scale, sum.n)
        };
        // Right of the whiskers if it fits, else left of them.
        let (label_x, anchor) = if x(sum.max) + 8.0 + LABEL <= WIDTH {
            (x(sum.max) + 8.0, "start")
        } else {
            (x(sum.min) - 8.0, "end")
        };
        let _ = writeln!(
            s,
            r##"<text x="{label_x:.1}" y="{:.1}" font-size="11" fill="#333" text-anchor="{anchor}">{}</text>"##,
            cy + 4.0,
            escape(&median_text)
        );
    }
    (s, plot_bottom + 40.0 - top)
}

pub(super) fn render_svg(r: &Results) -> String {
    const TOP: f64 = 50.0;
    let values = |c: &Option<CrashResult>| c.as_ref().map(failovers).unwrap_or_default();
    let crash = vec![
        Row {
            label: "elector, fast profile".into(),
            values: values(&r.crash_fast),
            colour: "#1b7837",
        },
        Row {
            label: "elector, defaults (TTL 10 s)".into(),
            values: values(&r.crash_default),
            colour: "#2166ac",
        },
        Row {
            label: "etcdctl elect (Go election, 60 s)".into(),
            values: values(&r.baseline),
            colour: "#b2182b",
        },
    ];
    let handover_rows = |f: fn(&HandoverTrial) -> f64| -> Vec<Row> {
        [
            (Handover::Sigterm, "SIGTERM", "#5e3c99"),
            (Handover::Command, "elector handover", "#e66101"),
            (Handover::Unready, "unready leader", "#4d9221"),
        ]
        .into_iter()
        .map(|(kind, label, colour)| Row {
            label: label.into(),
            values: r
                .handover
                .as_ref()
                .map(|h| handover_values(h, kind, f))
                .unwrap_or_default(),
            colour,
        })
        .collect()
    };
    let gaps = handover_rows(|t| t.gap);
    let takeovers = handover_rows(|t| t.takeover);
    let m = &r.machine;
    let (p1, h1) = panel(
        "Crash failover: kill -9 of the active replica's elector and node → other node active",
        "seconds",
        1.0,
        &crash,
        TOP,
    );
    let (p2, h2) = panel(
        "Clean handover: time with no active node (old node inactive → new node active)",
        "milliseconds",
        1000.0,
        &gaps,
        TOP + h1,
    );
    let (p3, h3) = panel(
        "Clean handover: trigger → new node active (includes the old node's last 2.5 s slot)",
        "seconds",
        1.0,
        &takeovers,
        TOP + h1 + h2,
    );
    let height = TOP + h1 + h2 + h3 + 30.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="900" height="{height:.0}" viewBox="0 0 900 {height:.0}" font-family="DejaVu Sans, Arial, sans-serif">"#
    );
    let _ = writeln!(s, r##"<rect width="100%" height="100%" fill="#fff"/>"##);
    let _ = writeln!(
        s,
        r##"<text x="20" y="22" font-size="13" fill="#333">{}</text>"##,
        escape(&format!(
            "elector benchmarks, {}: {} cores ({}), {} memory, etcd {}, loopback.",
            r.started_utc, m.cores, m.cpu, m.memory, m.etcd
        ))
    );
    let _ = writeln!(
        s,
        r##"<text x="20" y="40" font-size="12" fill="#555">Box: quartiles; thick bar: median; whiskers: min–max; dots: single trials.</text>"##
    );
    s.push_str(&p1);
    s.push_str(&p2);
    s.push_str(&p3);
    let _ = writeln!(
        s,
        r##"<text x="20" y="{:.0}" font-size="11" fill="#777">Generated by make bench; numbers in docs/benchmarks.md.</text>"##,
        height - 10.0
    );
    s.push_str("</svg>\n");
    s
}
