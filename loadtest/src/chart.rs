//! `latency.svg`: per-second p50/p99/max latency (log scale) over time, errors per second
//! below it, and a labelled vertical marker for every event. Plain SVG written by hand.

use std::fmt::Write as _;

use crate::report::Report;

const W: f64 = 960.0;
const H: f64 = 540.0;
/// Plot area of the latency panel.
const LEFT: f64 = 80.0;
const RIGHT: f64 = 930.0;
const TOP: f64 = 50.0;
const BOTTOM: f64 = 370.0;
/// Error panel.
const ERR_TOP: f64 = 410.0;
const ERR_BOTTOM: f64 = 490.0;

/// Drawn in this order, so max does not hide p99 where they meet.
const SERIES: [(&str, &str); 3] = [("max", "#9a9a9a"), ("p99", "#ff7f0e"), ("p50", "#1f77b4")];

/// The chart for `report` as an SVG document.
pub fn svg(report: &Report) -> String {
    let rows = &report.timeline;
    let span =
        rows.len().max(report.events.iter().map(|e| e.t_s.ceil() as usize + 1).max().unwrap_or(0)).max(1)
            as f64;
    let x = |t: f64| LEFT + (RIGHT - LEFT) * (t / span).clamp(0.0, 1.0);
    // Log scale from 0.1 ms up to the decade above the slowest answer.
    let top_us = rows.iter().map(|r| r.max_us).max().unwrap_or(0).max(1000);
    let decades = ((top_us as f64).log10().ceil() as i32).max(3);
    let (lo, hi) = (2.0_f64, f64::from(decades));
    let y = |us: u64| BOTTOM - (BOTTOM - TOP) * (((us.max(100)) as f64).log10() - lo) / (hi - lo);

    let mut s = String::new();
    let _ = writeln!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">"#
    );
    let _ = writeln!(s, r#"<rect x="0" y="0" width="{W}" height="{H}" fill="white"/>"#);
    let title = match &report.scenario {
        Some(name) => format!("scenario {name}: latency over time ({})", report.load),
        None => format!("latency over time ({})", report.load),
    };
    let _ =
        writeln!(s, r#"<text x="{LEFT}" y="22" font-size="15" font-weight="bold">{}</text>"#, esc(&title));
    let _ = writeln!(s, r##"<text x="{LEFT}" y="38" fill="#555">{}</text>"##, esc(&report.target));

    // Axes and grid.
    for d in 2..=decades {
        let us = 10u64.pow(d as u32);
        let yy = y(us);
        let _ =
            writeln!(s, r##"<line x1="{LEFT}" y1="{yy:.1}" x2="{RIGHT}" y2="{yy:.1}" stroke="#e5e5e5"/>"##);
        let _ = writeln!(
            s,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT - 6.0,
            yy + 4.0,
            esc(&label_ms(us))
        );
    }
    let step = tick_step(span);
    let mut t = 0.0;
    while t <= span + 1e-9 {
        let xx = x(t);
        let _ = writeln!(
            s,
            r##"<line x1="{xx:.1}" y1="{BOTTOM}" x2="{xx:.1}" y2="{:.1}" stroke="#999"/>"##,
            BOTTOM + 4.0
        );
        let _ = writeln!(s, r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{t}</text>"#, BOTTOM + 17.0);
        let _ =
            writeln!(s, r#"<text x="{xx:.1}" y="{:.1}" text-anchor="middle">{t}</text>"#, ERR_BOTTOM + 15.0);
        t += step;
    }
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{TOP}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        RIGHT - LEFT,
        BOTTOM - TOP
    );
    let _ = writeln!(
        s,
        r#"<text transform="translate(20 {:.1}) rotate(-90)" text-anchor="middle">latency (log scale)</text>"#,
        (TOP + BOTTOM) / 2.0
    );
    let _ = writeln!(
        s,
        r#"<text x="{:.1}" y="{:.1}" text-anchor="middle">seconds</text>"#,
        (LEFT + RIGHT) / 2.0,
        H - 15.0
    );

    // Latency series; a second without successful answers breaks the line.
    for (i, (name, colour)) in SERIES.iter().enumerate() {
        let value = |r: &crate::report::SecondRow| match *name {
            "p50" => r.p50_us,
            "p99" => r.p99_us,
            _ => r.max_us,
        };
        let mut segment: Vec<String> = Vec::new();
        let flush = |segment: &mut Vec<String>, s: &mut String| {
            if !segment.is_empty() {
                let _ = writeln!(
                    s,
                    r#"<polyline class="{name}" fill="none" stroke="{colour}" stroke-width="1.5" points="{}"/>"#,
                    segment.join(" ")
                );
                segment.clear();
            }
        };
        for r in rows {
            if r.max_us == 0 {
                flush(&mut segment, &mut s);
            } else {
                segment.push(format!("{:.1},{:.1}", x(r.t_s as f64 + 0.5), y(value(r))));
            }
        }
        flush(&mut segment, &mut s);
        let lx = RIGHT - 190.0 + 65.0 * i as f64;
        let _ = writeln!(
            s,
            r#"<line x1="{lx}" y1="30" x2="{}" y2="30" stroke="{colour}" stroke-width="3"/>"#,
            lx + 18.0
        );
        let _ = writeln!(s, r#"<text x="{}" y="34">{name}</text>"#, lx + 22.0);
    }

    // Errors per second.
    let max_err = rows.iter().map(|r| r.errors).max().unwrap_or(0);
    let _ = writeln!(
        s,
        r##"<rect x="{LEFT}" y="{ERR_TOP}" width="{}" height="{}" fill="none" stroke="#333"/>"##,
        RIGHT - LEFT,
        ERR_BOTTOM - ERR_TOP
    );
    let _ =
        writeln!(s, r#"<text x="{LEFT}" y="{:.1}">errors per second (max {max_err})</text>"#, ERR_TOP - 6.0);
    let bar_w = ((RIGHT - LEFT) / span - 1.0).max(0.5);
    for r in rows.iter().filter(|r| r.errors > 0) {
        let h = (ERR_BOTTOM - ERR_TOP) * r.errors as f64 / max_err.max(1) as f64;
        let _ = writeln!(
            s,
            r##"<rect class="errors" x="{:.1}" y="{:.1}" width="{bar_w:.1}" height="{h:.1}" fill="#d62728"/>"##,
            x(r.t_s as f64),
            ERR_BOTTOM - h
        );
    }

    // Events: a dashed line through both panels, the label reading down beside it.
    for e in &report.events {
        let xx = x(e.t_s);
        let _ = writeln!(
            s,
            r##"<line class="event" x1="{xx:.1}" y1="{TOP}" x2="{xx:.1}" y2="{ERR_BOTTOM}" stroke="#2ca02c" stroke-width="1.5" stroke-dasharray="5,4"/>"##
        );
        let _ = writeln!(
            s,
            r##"<text transform="translate({:.1} {:.1}) rotate(90)" fill="#2ca02c">{}</text>"##,
            xx + 4.0,
            TOP + 6.0,
            esc(&format!("{:.1} s {}", e.t_s, e.label))
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Roughly ten ticks, on 1/2/5 steps.
fn tick_step(span: f64) -> f64 {
    let raw = span / 10.0;
    let mag = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0].iter().map(|m| m * mag).find(|s| *s >= raw).unwrap_or(10.0 * mag).max(1.0)
}

fn label_ms(us: u64) -> String {
    if us < 1000 {
        format!("{} ms", us as f64 / 1000.0)
    } else if us < 1_000_000 {
        format!("{} ms", us / 1000)
    } else {
        format!("{} s", us / 1_000_000)
    }
}

/// Escape text for XML content and attribute values.
pub fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&apos;"),
            c => out.push(c),
        }
    }
    out
}
