//! Benchmark records and their renderings (stdout table, JSON, Markdown).
//!
//! Pure data and formatting, outside the `bench` feature gate so the record
//! shape is unit-tested by a plain `cargo test --workspace`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use crate::stats::{Threshold, Verdict};

/// Scenario ids starting with this prefix are A/A controls: they are never
/// downgraded by the control gate themselves.
pub const CONTROL_PREFIX: &str = "control/";

/// Scenario id of the run's A/A control (plain reqwest vs itself).
pub const CONTROL_ID: &str = "control/reqwest/c64";

/// One line of the report.
///
/// A *comparison* record has `baseline`, `baseline_name`, `ratio` and
/// `ratio_ci` set (`ratio = metric(A) / metric(B)`, median of paired
/// ratios). An *absolute* record (e.g. `peak_rss_mib`) leaves them `None`,
/// which serialises as JSON `null`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Record {
    /// Scenario id, `area/what/variant`, e.g. `driver/reqwest/c64`.
    pub scenario: String,
    /// Metric name, e.g. `rps`, `cpu_per_req`, `peak_rss_mib`.
    pub metric: String,
    /// Unit of `value` and `baseline`, e.g. `req/s`, `us/req`.
    pub unit: String,
    /// The candidate's value (aggregated over all its slices).
    pub value: f64,
    /// The baseline's value (aggregated over all its slices), if any.
    pub baseline: Option<f64>,
    /// What the baseline is, e.g. `plain reqwest`.
    pub baseline_name: Option<String>,
    /// Median of the paired ratios `metric(A) / metric(B)`.
    pub ratio: Option<f64>,
    /// Bootstrap 95 % interval of `ratio`.
    pub ratio_ci: Option<[f64; 2]>,
    /// Number of ABBA pairs (comparisons) or slices/samples (absolute).
    pub runs: u32,
    /// Verdict against the scenario's threshold; `None` when there is no
    /// threshold and nothing forced one.
    pub verdict: Option<Verdict>,
    /// Free text: threshold, runtime details, caveats.
    pub notes: String,
}

impl Record {
    /// An absolute (non-ratio) record, without a verdict.
    pub fn absolute(
        scenario: impl Into<String>,
        metric: impl Into<String>,
        unit: impl Into<String>,
        value: f64,
        runs: u32,
    ) -> Self {
        Record {
            scenario: scenario.into(),
            metric: metric.into(),
            unit: unit.into(),
            value,
            baseline: None,
            baseline_name: None,
            ratio: None,
            ratio_ci: None,
            runs,
            verdict: None,
            notes: String::new(),
        }
    }

    /// Judges `value` (a point) against `threshold`, sets the verdict and
    /// appends the threshold to the notes. For absolute records such as
    /// `peak_rss_mib <= 64` or `achieved_ratio in [0.99, 1.01]`.
    pub fn with_value_threshold(mut self, threshold: Threshold) -> Self {
        self.verdict = Some(threshold.judge(self.value, self.value));
        self.add_note(format!("threshold: value {}", threshold.describe()));
        self
    }

    /// Appends `note` to the notes, separated by `; `.
    pub fn add_note(&mut self, note: impl AsRef<str>) {
        let note = note.as_ref();
        if note.is_empty() {
            return;
        }
        if !self.notes.is_empty() {
            self.notes.push_str("; ");
        }
        self.notes.push_str(note);
    }

    /// Builder form of [`Record::add_note`].
    pub fn note(mut self, note: impl AsRef<str>) -> Self {
        self.add_note(note);
        self
    }

    /// Whether this record compares a candidate against a baseline.
    pub fn is_comparison(&self) -> bool {
        self.ratio.is_some()
    }

    /// Whether this record belongs to an A/A control scenario.
    pub fn is_control(&self) -> bool {
        self.scenario.starts_with(CONTROL_PREFIX)
    }
}

/// Marks every non-control comparison `inconclusive` when the run's control
/// was not tight (or missing). Absolute records are left alone.
pub fn apply_control_gate(records: &mut [Record], control_tight: bool, why: &str) {
    if control_tight {
        return;
    }
    for r in records
        .iter_mut()
        .filter(|r| r.is_comparison() && !r.is_control())
    {
        r.verdict = Some(Verdict::Inconclusive);
        r.add_note(format!("inconclusive: {why}"));
    }
}

/// Formats a number compactly: integers for large values, 3–4 significant
/// decimals otherwise, `-` for missing.
pub fn fmt_num(v: Option<f64>) -> String {
    match v {
        None => "-".to_string(),
        Some(v) if !v.is_finite() => format!("{v}"),
        Some(v) if v.abs() >= 1000.0 => format!("{v:.0}"),
        Some(v) if v.abs() >= 10.0 => format!("{v:.1}"),
        Some(v) => format!("{v:.3}"),
    }
}

fn fmt_ratio(v: Option<f64>) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.3}"))
}

fn fmt_ci(ci: Option<[f64; 2]>) -> String {
    ci.map_or_else(|| "-".to_string(), |[lo, hi]| format!("[{lo:.3}, {hi:.3}]"))
}

const HEADERS: [&str; 9] = [
    "scenario", "metric", "unit", "value", "baseline", "ratio", "95% CI", "runs", "verdict",
];

fn rows(records: &[Record]) -> Vec<[String; 9]> {
    records
        .iter()
        .map(|r| {
            [
                r.scenario.clone(),
                r.metric.clone(),
                r.unit.clone(),
                fmt_num(Some(r.value)),
                fmt_num(r.baseline),
                fmt_ratio(r.ratio),
                fmt_ci(r.ratio_ci),
                r.runs.to_string(),
                r.verdict.map_or("-", Verdict::as_str).to_string(),
            ]
        })
        .collect()
}

/// The plain-text table printed on stdout.
pub fn render_table(records: &[Record]) -> String {
    let rows = rows(records);
    let mut widths = HEADERS.map(str::len);
    for row in &rows {
        for (w, cell) in widths.iter_mut().zip(row) {
            *w = (*w).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: &[String]| {
        let mut l = String::new();
        for (i, (cell, w)) in cells.iter().zip(widths).enumerate() {
            // Text columns left-aligned, numbers right-aligned.
            if i < 3 || i == 8 {
                let _ = write!(l, "{cell:<w$}  ");
            } else {
                let _ = write!(l, "{cell:>w$}  ");
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(&HEADERS.map(String::from));
    line(&widths.map(|w| "-".repeat(w)));
    for row in &rows {
        line(row);
    }
    out
}

/// The Markdown report: `header_lines` (runtime shape, date, …) as a list,
/// then the table, then the notes of every record that has some.
pub fn render_markdown(title: &str, header_lines: &[String], records: &[Record]) -> String {
    let mut out = format!("# {title}\n\n");
    for h in header_lines {
        let _ = writeln!(out, "- {h}");
    }
    out.push('\n');
    let _ = writeln!(out, "| {} |", HEADERS.join(" | "));
    let _ = writeln!(out, "|{}", "---|".repeat(HEADERS.len()));
    for row in rows(records) {
        let cells: Vec<String> = row.iter().map(|c| c.replace('|', "\\|")).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    let noted: Vec<&Record> = records.iter().filter(|r| !r.notes.is_empty()).collect();
    if !noted.is_empty() {
        out.push_str("\n## Notes\n\n");
        for r in noted {
            let _ = writeln!(out, "- `{}` {}: {}", r.scenario, r.metric, r.notes);
        }
    }
    out
}

/// UTC calendar date and time `YYYY-MM-DD HH:MM:SSZ` for seconds since the
/// Unix epoch (proleptic Gregorian; Howard Hinnant's `civil_from_days`).
pub fn utc_datetime(unix_secs: u64) -> String {
    let days = (unix_secs / 86_400) as i64;
    let secs = unix_secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1_460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02}Z",
        secs / 3600,
        (secs / 60) % 60,
        secs % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comparison() -> Record {
        Record {
            scenario: "driver/reqwest/c64".into(),
            metric: "rps".into(),
            unit: "req/s".into(),
            value: 20_000.0,
            baseline: Some(20_500.0),
            baseline_name: Some("plain reqwest".into()),
            ratio: Some(0.976),
            ratio_ci: Some([0.96, 0.99]),
            runs: 50,
            verdict: Some(Verdict::Inconclusive),
            notes: String::new(),
        }
    }

    #[test]
    fn json_record_has_exactly_the_documented_fields() {
        let v = serde_json::to_value(comparison()).unwrap();
        let obj = v.as_object().unwrap();
        let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
        keys.sort_unstable();
        assert_eq!(
            keys,
            [
                "baseline",
                "baseline_name",
                "metric",
                "notes",
                "ratio",
                "ratio_ci",
                "runs",
                "scenario",
                "unit",
                "value",
                "verdict"
            ]
        );
        assert_eq!(obj["verdict"], "inconclusive");
        assert_eq!(obj["ratio_ci"], serde_json::json!([0.96, 0.99]));
        assert_eq!(obj["runs"], 50);

        let abs = Record::absolute("pool/warmup", "peak_rss_mib", "MiB", 12.5, 1);
        let v = serde_json::to_value(&abs).unwrap();
        assert!(v["ratio"].is_null() && v["baseline"].is_null() && v["ratio_ci"].is_null());
        assert!(v["verdict"].is_null() && v["baseline_name"].is_null());

        // A list round-trips.
        let list = vec![comparison(), abs];
        let text = serde_json::to_string_pretty(&list).unwrap();
        let back: Vec<Record> = serde_json::from_str(&text).unwrap();
        assert_eq!(back, list);
    }

    #[test]
    fn value_threshold_sets_verdict_and_note() {
        let r = Record::absolute("x", "peak_rss_mib", "MiB", 70.0, 1)
            .with_value_threshold(Threshold::AtMost(64.0));
        assert_eq!(r.verdict, Some(Verdict::Fail));
        assert_eq!(r.notes, "threshold: value <= 64");
        let r = Record::absolute("x", "achieved_ratio", "", 1.0, 1)
            .with_value_threshold(Threshold::Within(0.99, 1.01))
            .note("extra");
        assert_eq!(r.verdict, Some(Verdict::Pass));
        assert_eq!(r.notes, "threshold: value in [0.99, 1.01]; extra");
    }

    #[test]
    fn control_gate_downgrades_comparisons_only() {
        let mut control = comparison();
        control.scenario = CONTROL_ID.into();
        control.verdict = Some(Verdict::Fail);
        let mut pass = comparison();
        pass.verdict = Some(Verdict::Pass);
        let mut no_threshold = comparison();
        no_threshold.verdict = None;
        let abs =
            Record::absolute("a", "ns", "ns", 1.0, 3).with_value_threshold(Threshold::AtMost(2.0));
        let mut recs = vec![control, pass, no_threshold, abs];

        apply_control_gate(&mut recs.clone(), true, "n/a");
        let mut tight = recs.clone();
        apply_control_gate(&mut tight, true, "n/a");
        assert_eq!(tight, recs);

        apply_control_gate(&mut recs, false, "control too wide");
        assert_eq!(recs[0].verdict, Some(Verdict::Fail));
        assert_eq!(recs[1].verdict, Some(Verdict::Inconclusive));
        assert_eq!(recs[2].verdict, Some(Verdict::Inconclusive));
        assert!(recs[2].notes.contains("control too wide"));
        assert_eq!(recs[3].verdict, Some(Verdict::Pass));
    }

    #[test]
    fn table_and_markdown_render_all_columns() {
        let recs = vec![
            comparison(),
            Record::absolute("a/b", "ns", "ns", 3.5, 7).note("x|y"),
        ];
        let t = render_table(&recs);
        let lines: Vec<&str> = t.lines().collect();
        assert_eq!(lines.len(), 4);
        assert!(lines[0].starts_with("scenario"));
        assert!(lines[0].contains("95% CI") && lines[0].ends_with("verdict"));
        assert!(lines[2].contains("[0.960, 0.990]") && lines[2].ends_with("inconclusive"));
        assert!(lines[3].contains("3.500") && lines[3].ends_with('-'));

        let md = render_markdown("Bench", &["runtime: x".into()], &recs);
        assert!(md.starts_with("# Bench\n\n- runtime: x\n"));
        assert!(md.contains("| scenario | metric |"));
        assert!(md.contains("x\\|y") || md.contains("x|y"));
    }

    #[test]
    fn utc_dates() {
        assert_eq!(utc_datetime(0), "1970-01-01 00:00:00Z");
        assert_eq!(utc_datetime(951_782_400), "2000-02-29 00:00:00Z");
        assert_eq!(utc_datetime(1_700_000_000), "2023-11-14 22:13:20Z");
    }
}
