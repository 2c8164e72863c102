//! Bar charts drawn as inline SVG by the server (no script, no library).

use maud::{Markup, html};

/// One bar: its label, its value and an optional mark (a quota line).
#[derive(Debug, Clone)]
pub struct Bar {
    /// Label beside or under the bar.
    pub label: String,
    pub value: f64,
    /// Drawn in the warning colour (quota not met, 零战果…).
    pub warn: bool,
}

impl Bar {
    /// A bar for a count of things (visits, petitions).
    pub fn count(label: &str, count: i64, warn: bool) -> Bar {
        Bar {
            label: label.to_owned(),
            value: count as f64,
            warn,
        }
    }
}

fn fmt(v: f64) -> String {
    if (v - v.round()).abs() < 1e-9 {
        format!("{}", v.round() as i64)
    } else {
        format!("{v:.1}")
    }
}

/// Horizontal bars, one per row (units, cadres), scaled to the largest.
pub fn horizontal(title: &str, bars: &[Bar]) -> Markup {
    let row = 26.0;
    let label_w = 120.0;
    let width = 560.0;
    let plot = width - label_w - 60.0;
    let height = row * bars.len() as f64 + 30.0;
    let max = bars
        .iter()
        .map(|b| b.value)
        .fold(0.0_f64, f64::max)
        .max(1.0);
    html! {
        figure.chart {
            figcaption { (title) }
            @if bars.is_empty() { p.empty { "暂无数据。" } } @else {
                svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {width} {height}")) role="img" aria-label=(title) {
                    @for (i, b) in bars.iter().enumerate() {
                        @let y = 10.0 + row * i as f64;
                        @let w = (b.value / max * plot).max(if b.value > 0.0 { 2.0 } else { 0.0 });
                        text x=(label_w - 6.0) y=(y + 15.0) text-anchor="end" class="lbl" { (b.label) }
                        rect x=(label_w) y=(y + 3.0) width=(format!("{w:.1}")) height="16" class=(if b.warn { "bar warn" } else { "bar" }) {}
                        text x=(label_w + w + 4.0) y=(y + 15.0) class="val" { (fmt(b.value)) }
                    }
                }
            }
        }
    }
}

/// Vertical bars in time order (a trend by month), two series side by side.
pub fn trend(title: &str, months: &[(String, f64, f64)], first: &str, second: &str) -> Markup {
    let width = 560.0;
    let height = 220.0;
    let base = 180.0;
    let plot_h = 150.0;
    let n = months.len().max(1) as f64;
    let slot = (width - 40.0) / n;
    let bar_w = (slot / 2.0 - 4.0).clamp(4.0, 28.0);
    let max = months
        .iter()
        .map(|(_, a, b)| a.max(*b))
        .fold(0.0_f64, f64::max)
        .max(1.0);
    html! {
        figure.chart {
            figcaption { (title) " " span.legend { span.key.a {} (first) " " span.key.b {} (second) } }
            @if months.is_empty() { p.empty { "暂无数据。" } } @else {
                svg xmlns="http://www.w3.org/2000/svg" viewBox=(format!("0 0 {width} {height}")) role="img" aria-label=(title) {
                    line x1="20" x2=(width - 10.0) y1=(base) y2=(base) class="axis" {}
                    @for (i, (label, a, b)) in months.iter().enumerate() {
                        @let x = 30.0 + slot * i as f64;
                        @let ha = a / max * plot_h;
                        @let hb = b / max * plot_h;
                        rect x=(format!("{x:.1}")) y=(format!("{:.1}", base - ha)) width=(format!("{bar_w:.1}")) height=(format!("{ha:.1}")) class="bar" {}
                        text x=(format!("{:.1}", x + bar_w / 2.0)) y=(format!("{:.1}", base - ha - 3.0)) text-anchor="middle" class="val" { (fmt(*a)) }
                        rect x=(format!("{:.1}", x + bar_w + 2.0)) y=(format!("{:.1}", base - hb)) width=(format!("{bar_w:.1}")) height=(format!("{hb:.1}")) class="bar second" {}
                        text x=(format!("{:.1}", x + bar_w * 1.5 + 2.0)) y=(format!("{:.1}", base - hb - 3.0)) text-anchor="middle" class="val" { (fmt(*b)) }
                        text x=(format!("{:.1}", x + bar_w)) y=(base + 16.0) text-anchor="middle" class="lbl" { (label) }
                    }
                }
            }
        }
    }
}
