//! SVG charts for the bench report, written by hand.
//!
//! Why by hand: a grouped bar chart is a few dozen lines of SVG, while a
//! plotting crate would pull in font and image stacks this tool does not
//! need. The output uses only `<svg>`, `<rect>`, `<line>`, `<text>` and
//! `<g>`, with the generic `sans-serif` font family, so every browser and
//! the GitHub viewer render it without system libraries here.
//!
//! Two charts come from a run's [`Record`]s ([`report_charts`]):
//! * `throughput.svg` — requests/s by concurrency (c16/c64/c256) for plain
//!   reqwest, `ReqwestDriver`, `BatchExecutor` and the full chain; a series
//!   or concurrency that the run did not measure is left out.
//! * `ratelimit.svg` — the `achieved_ratio` of each `ratelimit/*` scenario,
//!   ours vs governor. The ratelimit scenarios report aggregates, not
//!   per-interval release counts, so a send-rate-over-time chart cannot be
//!   drawn from the records; this chart is the honest substitute.

use std::fmt::Write as _;

use crate::report::Record;

/// Canvas width of every chart, in SVG user units.
pub const WIDTH: f64 = 720.0;
/// Canvas height of every chart.
pub const HEIGHT: f64 = 400.0;
const LEFT: f64 = 80.0;
const RIGHT: f64 = 170.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 60.0;
const COLORS: [&str; 6] = [
    "#4e79a7", "#f28e2b", "#59a14f", "#e15759", "#76b7b2", "#b07aa1",
];

/// A grouped bar chart: one group per category, one bar per series.
#[derive(Debug, Clone, Default)]
pub struct BarChart {
    /// Title above the plot.
    pub title: String,
    /// Label of the value axis.
    pub y_label: String,
    /// Group labels along the x axis.
    pub categories: Vec<String>,
    /// `(name, one value per category)`; `None` draws no bar.
    pub series: Vec<(String, Vec<Option<f64>>)>,
}

/// Escapes text for SVG content and attributes.
fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// A "nice" upper bound (1, 2 or 5 × 10^k) at or above `max`.
fn nice_max(max: f64) -> f64 {
    if !(max.is_finite() && max > 0.0) {
        return 1.0;
    }
    let mag = 10f64.powf(max.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .iter()
        .map(|m| m * mag)
        .find(|v| *v >= max)
        .unwrap_or(10.0 * mag)
}

fn fmt_tick(v: f64) -> String {
    if v >= 10_000.0 {
        format!("{:.0}k", v / 1000.0)
    } else if v >= 10.0 || v == 0.0 {
        format!("{v:.0}")
    } else {
        format!("{v:.2}")
    }
}

impl BarChart {
    /// Whether the chart has at least one finite value to draw.
    pub fn has_data(&self) -> bool {
        self.series
            .iter()
            .any(|(_, v)| v.iter().flatten().any(|x| x.is_finite()))
    }

    /// Renders the chart as a standalone SVG document.
    pub fn to_svg(&self) -> String {
        let (pw, ph) = (WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM);
        let max = self
            .series
            .iter()
            .flat_map(|(_, v)| v.iter().flatten())
            .copied()
            .filter(|x| x.is_finite() && *x > 0.0)
            .fold(0.0, f64::max);
        let top = nice_max(max);
        let y = |v: f64| TOP + ph - (v.clamp(0.0, top) / top) * ph;
        let mut s = String::new();
        let _ = writeln!(
            s,
            r#"<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}" font-family="sans-serif" font-size="12">"#
        );
        let _ = writeln!(
            s,
            r#"<rect x="0" y="0" width="{WIDTH}" height="{HEIGHT}" fill="white"/>"#
        );
        let _ = writeln!(
            s,
            r#"<text x="{}" y="24" text-anchor="middle" font-size="15">{}</text>"#,
            LEFT + pw / 2.0,
            esc(&self.title)
        );
        // Axes and y ticks.
        let _ = writeln!(s, r#"<g stroke="black">"#);
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{}"/>"#,
            TOP + ph
        );
        let _ = writeln!(
            s,
            r#"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}"/>"#,
            TOP + ph,
            LEFT + pw
        );
        let _ = writeln!(s, "</g>");
        for i in 0..=5 {
            let v = top * f64::from(i) / 5.0;
            let yy = y(v);
            let _ = writeln!(
                s,
                r##"<line x1="{}" y1="{yy:.1}" x2="{}" y2="{yy:.1}" stroke="#ddd"/><text x="{}" y="{:.1}" text-anchor="end">{}</text>"##,
                LEFT,
                LEFT + pw,
                LEFT - 6.0,
                yy + 4.0,
                fmt_tick(v)
            );
        }
        let _ = writeln!(
            s,
            r#"<text x="18" y="{0}" text-anchor="middle" transform="rotate(-90 18 {0})">{1}</text>"#,
            TOP + ph / 2.0,
            esc(&self.y_label)
        );
        // Bars.
        let groups = self.categories.len().max(1) as f64;
        let gw = pw / groups;
        let nser = self.series.len().max(1) as f64;
        let bw = gw * 0.8 / nser;
        for (ci, cat) in self.categories.iter().enumerate() {
            let gx = LEFT + gw * ci as f64;
            let _ = writeln!(
                s,
                r#"<text x="{:.1}" y="{}" text-anchor="middle">{}</text>"#,
                gx + gw / 2.0,
                TOP + ph + 18.0,
                esc(cat)
            );
            for (si, (name, values)) in self.series.iter().enumerate() {
                let Some(v) = values.get(ci).copied().flatten().filter(|v| v.is_finite()) else {
                    continue;
                };
                let x = gx + gw * 0.1 + bw * si as f64;
                let yy = y(v);
                let _ = writeln!(
                    s,
                    r#"<rect x="{x:.1}" y="{yy:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{}: {}</title></rect>"#,
                    bw * 0.9,
                    TOP + ph - yy,
                    COLORS[si % COLORS.len()],
                    esc(name),
                    fmt_tick(v)
                );
            }
        }
        // Legend.
        for (si, (name, _)) in self.series.iter().enumerate() {
            let ly = TOP + 10.0 + 20.0 * si as f64;
            let lx = LEFT + pw + 16.0;
            let _ = writeln!(
                s,
                r#"<rect x="{lx}" y="{ly}" width="12" height="12" fill="{}"/><text x="{}" y="{}">{}</text>"#,
                COLORS[si % COLORS.len()],
                lx + 18.0,
                ly + 10.0,
                esc(name)
            );
        }
        s.push_str("</svg>\n");
        s
    }
}

fn rps<'a>(records: &'a [Record], scenario: &str) -> Option<&'a Record> {
    records
        .iter()
        .find(|r| r.scenario == scenario && r.metric == "rps")
}

/// Throughput by concurrency: plain reqwest, `ReqwestDriver`, batch and the
/// full chain, from whichever of their records the run produced.
pub fn throughput_chart(records: &[Record]) -> BarChart {
    let cs = [16usize, 64, 256];
    let plain: Vec<Option<f64>> = cs
        .iter()
        .map(|c| {
            [
                format!("driver/reqwest/c{c}"),
                format!("chain/reqwest/c{c}"),
            ]
            .iter()
            .find_map(|id| rps(records, id).and_then(|r| r.baseline))
        })
        .collect();
    let of = |prefix: &str| -> Vec<Option<f64>> {
        cs.iter()
            .map(|c| rps(records, &format!("{prefix}/c{c}")).map(|r| r.value))
            .collect()
    };
    let candidates = [
        ("plain reqwest", plain),
        ("ReqwestDriver", of("driver/reqwest")),
        ("BatchExecutor", of("batch/reqwest")),
        ("full chain", of("chain/reqwest")),
    ];
    let series: Vec<(String, Vec<Option<f64>>)> = candidates
        .into_iter()
        .filter(|(_, v)| v.iter().any(Option::is_some))
        .map(|(n, v)| (n.to_string(), v))
        .collect();
    // Keep only concurrencies at least one series measured.
    let keep: Vec<usize> = (0..cs.len())
        .filter(|i| series.iter().any(|(_, v)| v[*i].is_some()))
        .collect();
    BarChart {
        title: "Throughput by concurrency (GET / on loopback)".into(),
        y_label: "requests/s".into(),
        categories: keep.iter().map(|i| format!("c{}", cs[*i])).collect(),
        series: series
            .into_iter()
            .map(|(n, v)| (n, keep.iter().map(|i| v[*i]).collect()))
            .collect(),
    }
}

/// `achieved_ratio` per `ratelimit/*` scenario: ours (the value) vs
/// governor (the record's baseline, where the scenario measured it).
pub fn ratelimit_chart(records: &[Record]) -> BarChart {
    let recs: Vec<&Record> = records
        .iter()
        .filter(|r| r.scenario.starts_with("ratelimit/") && r.metric == "achieved_ratio")
        .collect();
    let mut series = vec![(
        "ours".to_string(),
        recs.iter().map(|r| Some(r.value)).collect::<Vec<_>>(),
    )];
    if recs.iter().any(|r| r.baseline.is_some()) {
        series.push((
            "governor".to_string(),
            recs.iter().map(|r| r.baseline).collect(),
        ));
    }
    BarChart {
        title: "Achieved rate / quota per ratelimit scenario".into(),
        y_label: "achieved ratio".into(),
        categories: recs
            .iter()
            .map(|r| r.scenario.trim_start_matches("ratelimit/").to_string())
            .collect(),
        series,
    }
}

/// The charts a run can draw, as `(file name, caption, svg)`; charts
/// without data are left out.
pub fn report_charts(records: &[Record]) -> Vec<(&'static str, &'static str, String)> {
    let mut out = Vec::new();
    let t = throughput_chart(records);
    if t.has_data() {
        out.push((
            "throughput.svg",
            "Throughput by concurrency: plain reqwest vs each layer vs the full chain",
            t.to_svg(),
        ));
    }
    let r = ratelimit_chart(records);
    if r.has_data() {
        out.push((
            "ratelimit.svg",
            "Rate limiter achieved ratio, ours vs governor (the ratelimit scenarios report aggregates, not per-interval release counts, so no rate-over-time chart)",
            r.to_svg(),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(scenario: &str, metric: &str, value: f64, baseline: Option<f64>) -> Record {
        let mut r = Record::absolute(scenario, metric, "x", value, 1);
        r.baseline = baseline;
        r
    }

    fn attr(tag: &str, name: &str) -> f64 {
        let start = tag.find(&format!(" {name}=\"")).expect(name) + name.len() + 3;
        let end = tag[start..].find('"').unwrap() + start;
        tag[start..end].parse().unwrap()
    }

    /// Tags balance and every bar lies inside the viewBox.
    fn check_well_formed(svg: &str) {
        assert!(svg.starts_with("<svg ") && svg.trim_end().ends_with("</svg>"));
        for tag in ["svg", "g", "text", "title"] {
            let open =
                svg.matches(&format!("<{tag} ")).count() + svg.matches(&format!("<{tag}>")).count();
            assert_eq!(
                open,
                svg.matches(&format!("</{tag}>")).count(),
                "<{tag}> unbalanced"
            );
        }
        for part in svg.split("<rect ").skip(1) {
            let tag = &format!(" {}", &part[..part.find('>').unwrap()]);
            let (x, y, w, h) = (
                attr(tag, "x"),
                attr(tag, "y"),
                attr(tag, "width"),
                attr(tag, "height"),
            );
            assert!(x >= 0.0 && y >= 0.0 && w >= 0.0 && h >= 0.0, "{tag}");
            assert!(x + w <= WIDTH + 0.01 && y + h <= HEIGHT + 0.01, "{tag}");
        }
    }

    #[test]
    fn bar_chart_draws_one_rect_per_value_and_names_series() {
        let chart = BarChart {
            title: "T <&>".into(),
            y_label: "rps".into(),
            categories: vec!["c16".into(), "c64".into()],
            series: vec![
                ("alpha".into(), vec![Some(100.0), Some(250.0)]),
                ("beta".into(), vec![None, Some(40.0)]),
            ],
        };
        let svg = chart.to_svg();
        check_well_formed(&svg);
        assert!(svg.contains("alpha") && svg.contains("beta") && svg.contains("T &lt;&amp;&gt;"));
        // background + 3 bars + 2 legend swatches
        assert_eq!(svg.matches("<rect ").count(), 1 + 3 + 2);
        // The tallest bar (250 of a 500 axis) reaches halfway up the plot.
        let ph = HEIGHT - TOP - BOTTOM;
        assert!(
            svg.contains(&format!("height=\"{:.1}\"", ph * 0.5)),
            "{svg}"
        );
    }

    #[test]
    fn throughput_chart_uses_present_records_only() {
        let records = vec![
            rec("driver/reqwest/c64", "rps", 9000.0, Some(9500.0)),
            rec("chain/reqwest/c64", "rps", 8800.0, Some(9400.0)),
            rec("batch/reqwest/c16", "rps", 7000.0, Some(7100.0)),
            rec("chain/reqwest/c64", "cpu_per_req", 50.0, Some(40.0)),
        ];
        let c = throughput_chart(&records);
        assert_eq!(c.categories, ["c16", "c64"]);
        let names: Vec<&str> = c.series.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            [
                "plain reqwest",
                "ReqwestDriver",
                "BatchExecutor",
                "full chain"
            ]
        );
        assert_eq!(c.series[0].1, [None, Some(9500.0)]);
        assert_eq!(c.series[3].1, [None, Some(8800.0)]);
        check_well_formed(&c.to_svg());
    }

    #[test]
    fn ratelimit_chart_pairs_ours_with_governor() {
        let records = vec![
            rec("ratelimit/r1000", "achieved_ratio", 0.999, Some(0.97)),
            rec("ratelimit/r1000", "max_100ms", 100.0, None),
            rec("ratelimit/paced", "achieved_ratio", 1.0, None),
        ];
        let c = ratelimit_chart(&records);
        assert_eq!(c.categories, ["r1000", "paced"]);
        assert_eq!(
            c.series[1],
            ("governor".to_string(), vec![Some(0.97), None])
        );
        let charts = report_charts(&records);
        assert_eq!(charts.len(), 1);
        assert_eq!(charts[0].0, "ratelimit.svg");
        assert!(report_charts(&[]).is_empty());
    }

    #[test]
    fn nice_max_rounds_up() {
        assert_eq!(nice_max(0.0), 1.0);
        assert_eq!(nice_max(1.0), 1.0);
        assert_eq!(nice_max(1.2), 2.0);
        assert_eq!(nice_max(3_400.0), 5_000.0);
        assert_eq!(nice_max(9_999.0), 10_000.0);
    }
}
