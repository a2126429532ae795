//! Inline SVG charts: line/step charts with axes, ticks, labels, legend and event markers, and a
//! stacked horizontal bar. Pure string building; every text goes through [`escape`].

use std::fmt::Write as _;

/// Escapes text for HTML/SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

/// `text` escaped for HTML so that a browser wraps it only at spaces, after a `/`, and after a
/// `.` that starts a name (`configured.request_resources`, not `0.75`): each piece between is a
/// `<span class="nw">` (`white-space: nowrap`), so names like `gpt-4o-mini-2024-07-18` are never
/// broken at their hyphens.
pub fn unbroken(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    let mut piece = String::new();
    let flush = |out: &mut String, piece: &mut String| {
        if !piece.is_empty() {
            out.push_str(r#"<span class="nw">"#);
            out.push_str(&escape(piece));
            out.push_str("</span>");
            piece.clear();
        }
    };
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {
                flush(&mut out, &mut piece);
                out.push(' ');
            }
            '/' => {
                piece.push(c);
                flush(&mut out, &mut piece);
                out.push_str("<wbr>");
            }
            '.' if chars.peek().is_some_and(|n| n.is_alphabetic() || *n == '_') => {
                piece.push(c);
                flush(&mut out, &mut piece);
                out.push_str("<wbr>");
            }
            _ => piece.push(c),
        }
    }
    flush(&mut out, &mut piece);
    out
}

/// Average advance of a character of the 14 px bold title font (measured in Chromium: a
/// 86-character title filled the 698 px row), with a little slack.
const TITLE_CHAR_PX: f64 = 8.3;

/// The chart's title line, its font shrunk (down to 9 px) when it would run past the chart's
/// right edge — SVG text does not wrap, and a clipped title cut a word in half.
fn chart_title(title: &str) -> String {
    let room = W - LEFT - RIGHT;
    let need = title.chars().count() as f64 * TITLE_CHAR_PX;
    let style = if need > room {
        format!(
            r#" style="font-size:{:.1}px""#,
            (14.0 * room / need).max(9.0)
        )
    } else {
        String::new()
    };
    format!(
        r#"<text class="chart-title" x="{LEFT}" y="20"{style}>{}</text>"#,
        escape(title)
    )
}

/// One line of a chart.
#[derive(Debug, Clone)]
pub struct Line {
    /// Legend label.
    pub label: String,
    /// CSS color.
    pub color: &'static str,
    /// `(x, y)` points in x order.
    pub points: Vec<(f64, f64)>,
    /// Dashed stroke.
    pub dashed: bool,
    /// Draw as a step function held to the chart's right edge (gauges and counters).
    pub step: bool,
}

/// Point events drawn as markers on the x axis, e.g. 429s: `(x, count)`.
#[derive(Debug, Clone)]
pub struct Markers {
    /// Legend label.
    pub label: String,
    /// CSS color.
    pub color: &'static str,
    /// `(x, count)`.
    pub points: Vec<(f64, f64)>,
}

/// A line chart.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Title drawn above the plot.
    pub title: String,
    /// X axis label.
    pub x_label: String,
    /// Y axis label.
    pub y_label: String,
    /// Lines.
    pub lines: Vec<Line>,
    /// Optional markers.
    pub markers: Option<Markers>,
    /// Right end of the x axis (at least the last point).
    pub x_max: f64,
}

const W: f64 = 760.0;
const H: f64 = 280.0;
const LEFT: f64 = 62.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 52.0;
const BOTTOM: f64 = 48.0;

/// "Nice" tick values covering `[0, max]` (steps of 1, 2 or 5 × 10^k).
pub fn nice_ticks(max: f64, target: usize) -> Vec<f64> {
    let max = if max.is_finite() && max > 0.0 {
        max
    } else {
        1.0
    };
    let raw = max / target.max(1) as f64;
    let mag = 10f64.powf(raw.log10().floor());
    let step = [1.0, 2.0, 2.5, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|s| *s >= raw)
        .unwrap_or(10.0 * mag);
    let n = (max / step).ceil() as usize;
    (0..=n).map(|i| i as f64 * step).collect()
}

fn fmt_tick(v: f64) -> String {
    if v == 0.0 {
        "0".to_string()
    } else if v.abs() >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if (v - v.round()).abs() < 1e-9 {
        format!("{v:.0}")
    } else {
        // As few decimals as the tick needs (0.5, 1.5, 0.25), alike on one axis.
        let text = if v.abs() >= 1.0 {
            format!("{v:.1}")
        } else {
            format!("{v:.2}")
        };
        text.trim_end_matches('0').to_string()
    }
}

/// The plot area of a chart with axes: ticks, the data extent they cover, and the plot size.
struct Frame {
    x_ticks: Vec<f64>,
    y_ticks: Vec<f64>,
    pw: f64,
    ph: f64,
    x_hi: f64,
    y_hi: f64,
}

impl Frame {
    /// Ticks for data reaching `x_end` and `y_top` (5 % headroom above).
    fn new(x_end: f64, y_top: f64) -> Self {
        let x_ticks = nice_ticks(x_end, 8);
        let y_ticks = nice_ticks(y_top * 1.05, 5);
        Self {
            x_hi: x_ticks.last().copied().unwrap_or(1.0).max(1e-9),
            y_hi: y_ticks.last().copied().unwrap_or(1.0).max(1e-9),
            x_ticks,
            y_ticks,
            pw: W - LEFT - RIGHT,
            ph: H - TOP - BOTTOM,
        }
    }
}

impl LineChart {
    /// Renders the chart as an `<svg>` element.
    pub fn render(&self) -> String {
        let x_end = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.0))
            .chain(
                self.markers
                    .iter()
                    .flat_map(|m| m.points.iter().map(|p| p.0)),
            )
            .fold(self.x_max, f64::max);
        let y_top = self
            .lines
            .iter()
            .flat_map(|l| l.points.iter().map(|p| p.1))
            .fold(0.0, f64::max);
        let Frame {
            x_ticks,
            y_ticks,
            pw,
            ph,
            x_hi,
            y_hi,
        } = Frame::new(x_end, y_top);
        let sx = |x: f64| LEFT + (x / x_hi).clamp(0.0, 1.0) * pw;
        let sy = |y: f64| TOP + ph - (y / y_hi).clamp(0.0, 1.0) * ph;
        let mut s = String::new();
        let _ = write!(
            s,
            r#"<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" xmlns="http://www.w3.org/2000/svg"><title>{}</title>"#,
            escape(&self.title)
        );
        s.push_str(&chart_title(&self.title));
        // Legend row under the title.
        let mut lx = LEFT;
        for l in &self.lines {
            let dash = if l.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<line x1="{lx}" y1="36" x2="{}" y2="36" stroke="{}" stroke-width="2.5"{dash}/><text class="legend" x="{}" y="40">{}</text>"#,
                lx + 18.0,
                l.color,
                lx + 23.0,
                escape(&l.label)
            );
            lx += 32.0 + 7.0 * l.label.chars().count() as f64;
        }
        if let Some(m) = &self.markers {
            let _ = write!(
                s,
                r#"<path d="M{} 40 l5 -9 l5 9 z" fill="{}"/><text class="legend" x="{}" y="40">{}</text>"#,
                lx,
                m.color,
                lx + 14.0,
                escape(&m.label)
            );
        }
        // Grid, ticks and tick labels.
        y_grid(&mut s, &y_ticks, &sy, pw);
        for x in &x_ticks {
            let px = sx(*x);
            let _ = write!(
                s,
                r#"<line class="axis" x1="{px:.1}" y1="{:.1}" x2="{px:.1}" y2="{:.1}"/><text class="tick" x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
                TOP + ph,
                TOP + ph + 5.0,
                TOP + ph + 18.0,
                fmt_tick(*x)
            );
        }
        let _ = write!(
            s,
            r#"<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}"/><line class="axis" x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/>"#,
            TOP + ph,
            TOP + ph,
            LEFT + pw,
            TOP + ph
        );
        let _ = write!(
            s,
            r#"<text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">{}</text><text class="axis-label" transform="translate(16 {:.1}) rotate(-90)" text-anchor="middle">{}</text>"#,
            LEFT + pw / 2.0,
            H - 8.0,
            escape(&self.x_label),
            TOP + ph / 2.0,
            escape(&self.y_label)
        );
        for l in &self.lines {
            if l.points.is_empty() {
                continue;
            }
            let mut pts: Vec<(f64, f64)> = Vec::with_capacity(l.points.len() * 2 + 1);
            for (i, (x, y)) in l.points.iter().enumerate() {
                if l.step && i > 0 {
                    pts.push((*x, l.points[i - 1].1));
                }
                pts.push((*x, *y));
            }
            if l.step {
                if let Some(&(_, y)) = l.points.last() {
                    pts.push((x_end, y));
                }
            }
            let coords: Vec<String> = pts
                .iter()
                .map(|(x, y)| format!("{:.1},{:.1}", sx(*x), sy(*y)))
                .collect();
            let dash = if l.dashed {
                r#" stroke-dasharray="6 4""#
            } else {
                ""
            };
            let _ = write!(
                s,
                r#"<polyline class="series" fill="none" stroke="{}" stroke-width="2"{dash} points="{}"><title>{}</title></polyline>"#,
                l.color,
                coords.join(" "),
                escape(&l.label)
            );
        }
        if let Some(m) = &self.markers {
            for (x, n) in &m.points {
                let px = sx(*x);
                let _ = write!(
                    s,
                    r#"<path class="marker" d="M{:.1} {:.1} l4 -8 l4 8 z" fill="{}"><title>{} × {} at {:.2} s</title></path>"#,
                    px - 4.0,
                    TOP + ph - 1.0,
                    m.color,
                    fmt_tick(*n),
                    escape(&m.label),
                    x
                );
            }
        }
        s.push_str("</svg>");
        s
    }
}

/// One segment of a stacked bar.
#[derive(Debug, Clone)]
pub struct Segment {
    /// Legend label.
    pub label: String,
    /// CSS color.
    pub color: &'static str,
    /// Value (≥ 0).
    pub value: f64,
}

/// A single stacked horizontal bar with a legend (label, value, share) below it.
pub fn stacked_bar(title: &str, unit: &str, segments: &[Segment]) -> String {
    let total: f64 = segments.iter().map(|s| s.value.max(0.0)).sum();
    let rows = segments.len();
    let height = 70.0 + 20.0 * rows as f64;
    let bar_w = W - LEFT - RIGHT;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {height}" width="{W}" height="{height}" role="img" xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}"#,
        escape(title),
        chart_title(title)
    );
    let mut x = LEFT;
    if total > 0.0 {
        for seg in segments {
            let w = seg.value.max(0.0) / total * bar_w;
            if w <= 0.0 {
                continue;
            }
            let _ = write!(
                s,
                r#"<rect x="{x:.1}" y="30" width="{w:.1}" height="26" fill="{}"><title>{}: {:.2} {} ({:.1}%)</title></rect>"#,
                seg.color,
                escape(&seg.label),
                seg.value,
                escape(unit),
                seg.value / total * 100.0
            );
            x += w;
        }
    } else {
        let _ = write!(
            s,
            r##"<rect x="{LEFT}" y="30" width="{bar_w}" height="26" fill="#eeeeee"/><text class="tick" x="{:.1}" y="47" text-anchor="middle">no task time recorded</text>"##,
            LEFT + bar_w / 2.0
        );
    }
    for (i, seg) in segments.iter().enumerate() {
        let y = 78.0 + 20.0 * i as f64;
        let share = if total > 0.0 {
            seg.value / total * 100.0
        } else {
            0.0
        };
        let _ = write!(
            s,
            r#"<rect x="{LEFT}" y="{:.1}" width="12" height="12" fill="{}"/><text class="legend" x="{:.1}" y="{y:.1}">{}</text><text class="legend" x="{:.1}" y="{y:.1}" text-anchor="end">{:.2} {}</text><text class="legend" x="{:.1}" y="{y:.1}" text-anchor="end">{share:.1}%</text>"#,
            y - 10.0,
            seg.color,
            LEFT + 18.0,
            escape(&seg.label),
            LEFT + 420.0,
            seg.value,
            escape(unit),
            LEFT + 500.0
        );
    }
    s.push_str("</svg>");
    s
}

/// Horizontal grid lines with their y tick labels (shared by every chart with a y axis).
fn y_grid(s: &mut String, y_ticks: &[f64], sy: &impl Fn(f64) -> f64, pw: f64) {
    for y in y_ticks {
        let py = sy(*y);
        let _ = write!(
            s,
            r#"<line class="grid" x1="{LEFT}" y1="{py:.1}" x2="{:.1}" y2="{py:.1}"/><text class="tick" x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0,
            fmt_tick(*y)
        );
    }
}

/// A stacked area chart: `points` are `(x, values)` with one value per `layers` entry, drawn
/// bottom-up as steps (each point holds until the next one).
pub fn stacked_area(
    title: &str,
    y_label: &str,
    layers: &[(String, &'static str)],
    points: &[(f64, Vec<f64>)],
    x_max: f64,
) -> String {
    let x_end = points.last().map_or(0.0, |p| p.0).max(x_max);
    let y_top = points
        .iter()
        .map(|(_, v)| v.iter().map(|x| x.max(0.0)).sum::<f64>())
        .fold(0.0, f64::max);
    let Frame {
        x_ticks,
        y_ticks,
        pw,
        ph,
        x_hi,
        y_hi,
    } = Frame::new(x_end, y_top);
    let sx = |x: f64| LEFT + (x / x_hi).clamp(0.0, 1.0) * pw;
    let sy = |y: f64| TOP + ph - (y / y_hi).clamp(0.0, 1.0) * ph;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" width="{W}" height="{H}" role="img" xmlns="http://www.w3.org/2000/svg"><title>{}</title>{}"#,
        escape(title),
        chart_title(title)
    );
    // The legend wraps onto a second row rather than running off the chart.
    // 7 px per character of the 12 px legend font (6.5 let labels run into the next swatch),
    // rows 12 px apart so the second ends above the top tick label.
    let (mut lx, mut ly) = (LEFT, 32.0);
    for (label, color) in layers {
        let w = 24.0 + 7.0 * label.chars().count() as f64;
        if lx + w > W - RIGHT && lx > LEFT {
            (lx, ly) = (LEFT, ly + 12.0);
        }
        let _ = write!(
            s,
            r#"<rect x="{lx:.1}" y="{:.1}" width="9" height="9" fill="{color}"/><text class="legend" x="{:.1}" y="{ly:.1}">{}</text>"#,
            ly - 8.5,
            lx + 13.0,
            escape(label)
        );
        lx += w;
    }
    y_grid(&mut s, &y_ticks, &sy, pw);
    for x in &x_ticks {
        let px = sx(*x);
        let _ = write!(
            s,
            r#"<text class="tick" x="{px:.1}" y="{:.1}" text-anchor="middle">{}</text>"#,
            TOP + ph + 18.0,
            fmt_tick(*x)
        );
    }
    // Each layer is the band between the running sum below it and the sum including it.
    let mut below: Vec<f64> = vec![0.0; points.len()];
    for (k, (label, color)) in layers.iter().enumerate() {
        let above: Vec<f64> = points
            .iter()
            .zip(&below)
            .map(|((_, v), b)| b + v.get(k).copied().unwrap_or(0.0).max(0.0))
            .collect();
        if above.iter().zip(&below).all(|(a, b)| a <= b) {
            below = above;
            continue;
        }
        let mut d = String::new();
        for (i, (x, _)) in points.iter().enumerate() {
            let x_next = points.get(i + 1).map_or(x_end, |p| p.0);
            let cmd = if i == 0 { 'M' } else { 'L' };
            let _ = write!(
                d,
                "{cmd}{:.1} {:.1} L{:.1} {:.1} ",
                sx(*x),
                sy(above[i]),
                sx(x_next),
                sy(above[i])
            );
        }
        for (i, (x, _)) in points.iter().enumerate().rev() {
            let x_next = points.get(i + 1).map_or(x_end, |p| p.0);
            let _ = write!(
                d,
                "L{:.1} {:.1} L{:.1} {:.1} ",
                sx(x_next),
                sy(below[i]),
                sx(*x),
                sy(below[i])
            );
        }
        let _ = write!(
            s,
            r#"<path d="{}Z" fill="{color}" stroke="none"><title>{}</title></path>"#,
            d.trim_end(),
            escape(label)
        );
        below = above;
    }
    let _ = write!(
        s,
        r#"<line class="axis" x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{:.1}"/><line class="axis" x1="{LEFT}" y1="{:.1}" x2="{:.1}" y2="{:.1}"/><text class="axis-label" x="{:.1}" y="{:.1}" text-anchor="middle">seconds since start</text><text class="axis-label" x="14" y="{:.1}" transform="rotate(-90 14 {:.1})" text-anchor="middle">{}</text></svg>"#,
        TOP + ph,
        TOP + ph,
        LEFT + pw,
        TOP + ph,
        LEFT + pw / 2.0,
        H - 8.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0,
        escape(y_label)
    );
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ticks_are_nice_and_cover_the_range() {
        assert_eq!(nice_ticks(10.0, 5), vec![0.0, 2.0, 4.0, 6.0, 8.0, 10.0]);
        let t = nice_ticks(37.0, 5);
        assert!(*t.last().unwrap() >= 37.0);
        let z = nice_ticks(0.0, 5);
        assert_eq!(z.len(), 6);
        assert!((z[5] - 1.0).abs() < 1e-9);
    }

    #[test]
    fn unbroken_wraps_only_between_names() {
        assert_eq!(
            unbroken("p/gpt-4o=0.75, a.b"),
            r#"<span class="nw">p/</span><wbr><span class="nw">gpt-4o=0.75,</span> <span class="nw">a.</span><wbr><span class="nw">b</span>"#
        );
        assert_eq!(unbroken("<x>"), r#"<span class="nw">&lt;x&gt;</span>"#);
    }

    #[test]
    fn escapes_markup() {
        assert_eq!(
            escape(r#"<a href="x">&'"#),
            "&lt;a href=&quot;x&quot;&gt;&amp;&#39;"
        );
    }
}
