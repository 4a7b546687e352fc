//! Tables of figures: one section per scenario, rows of metric, value, target and verdict, and
//! the number formatting they share.

use std::time::Duration;

use crate::Context;

/// Whether a row has a target and whether it was met.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// A figure without a target.
    Info,
    /// The target was met.
    Met,
    /// The target was missed.
    Missed,
}

impl Verdict {
    /// `Met` when `ok`, else `Missed`.
    pub(crate) fn from_ok(ok: bool) -> Self {
        if ok { Self::Met } else { Self::Missed }
    }

    fn text(self) -> &'static str {
        match self {
            Self::Info => "",
            Self::Met => "met",
            Self::Missed => "MISSED",
        }
    }
}

/// One figure.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    metric: String,
    value: String,
    target: String,
    verdict: Verdict,
}

/// The figures of one scenario.
#[derive(Debug, Clone)]
pub(crate) struct Section {
    title: String,
    rows: Vec<Row>,
    notes: Vec<String>,
}

impl Section {
    /// An empty section titled `title`.
    pub(crate) fn new(title: impl Into<String>) -> Self {
        Self {
            title: title.into(),
            rows: Vec::new(),
            notes: Vec::new(),
        }
    }

    /// Adds a figure without a target.
    pub(crate) fn info(&mut self, metric: impl Into<String>, value: impl Into<String>) {
        self.rows.push(Row {
            metric: metric.into(),
            value: value.into(),
            target: String::new(),
            verdict: Verdict::Info,
        });
    }

    /// Adds a figure with a target and whether it was met.
    pub(crate) fn target(
        &mut self,
        metric: impl Into<String>,
        value: impl Into<String>,
        target: impl Into<String>,
        ok: bool,
    ) {
        self.rows.push(Row {
            metric: metric.into(),
            value: value.into(),
            target: target.into(),
            verdict: Verdict::from_ok(ok),
        });
    }

    /// Adds a line of text printed under the table.
    pub(crate) fn note(&mut self, note: impl Into<String>) {
        self.notes.push(note.into());
    }

    /// Prints the section as a table.
    pub(crate) fn print(&self) {
        println!("\n== {} ==", self.title);
        print_rows(self.rows.iter());
        for note in &self.notes {
            println!("  note: {note}");
        }
    }
}

fn print_rows<'a>(rows: impl Iterator<Item = &'a Row> + Clone) {
    let width = |pick: fn(&Row) -> usize, header: &str| {
        rows.clone()
            .map(pick)
            .chain(std::iter::once(header.len()))
            .max()
            .unwrap_or(0)
    };
    let metric_w = width(|r| r.metric.chars().count(), "metric");
    let value_w = width(|r| r.value.chars().count(), "value");
    let target_w = width(|r| r.target.chars().count(), "target");
    println!(
        "  {:<metric_w$}  {:>value_w$}  {:<target_w$}  result",
        "metric", "value", "target"
    );
    println!(
        "  {}  {}  {}  ------",
        "-".repeat(metric_w),
        "-".repeat(value_w),
        "-".repeat(target_w)
    );
    for row in rows {
        println!(
            "  {:<metric_w$}  {:>value_w$}  {:<target_w$}  {}",
            row.metric,
            row.value,
            row.target,
            row.verdict.text()
        );
    }
}

/// Prints every row that has a target, from all sections.
pub(crate) fn print_summary(sections: &[Section]) {
    let rows: Vec<Row> = sections
        .iter()
        .flat_map(|section| {
            section
                .rows
                .iter()
                .filter(|row| row.verdict != Verdict::Info)
                .map(|row| Row {
                    metric: format!("{}: {}", section.title, row.metric.trim()),
                    ..row.clone()
                })
        })
        .collect();
    if rows.is_empty() {
        return;
    }
    println!("\n== summary of targets ==");
    print_rows(rows.iter());
    let missed = rows.iter().filter(|r| r.verdict == Verdict::Missed).count();
    println!("  {} of {} targets met", rows.len() - missed, rows.len());
}

/// One line about the run: binary, counts and machine.
pub(crate) fn machine_line(context: &Context) -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find(|line| line.starts_with("model name"))
                .and_then(|line| line.split_once(':'))
                .map(|(_, model)| model.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".to_owned());
    let cores = std::thread::available_parallelism().map_or(0, usize::from);
    format!(
        "rkron-bench: {} ({} counts); {cores} cores, {cpu}; started {}",
        context.rkron.display(),
        if context.quick { "quick" } else { "full" },
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
    )
}

/// `1234567` as `1,234,567`.
pub(crate) fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in milliseconds with one decimal (`12.3 ms`), or seconds from 10 s on.
pub(crate) fn duration(d: Duration) -> String {
    millis(d.as_secs_f64() * 1000.0)
}

/// Milliseconds as text: `0.42 ms`, `12.3 ms`, `2.41 s`.
pub(crate) fn millis(ms: f64) -> String {
    if ms.abs() >= 10_000.0 {
        format!("{:.1} s", ms / 1000.0)
    } else if ms.abs() >= 1000.0 {
        format!("{:.2} s", ms / 1000.0)
    } else if ms.abs() >= 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.2} ms")
    }
}

/// Kibibytes as megabytes (`123.4 MB`, 10^6 bytes).
pub(crate) fn kib_as_mb(kib: u64) -> String {
    bytes_as_mb(kib * 1024)
}

/// Bytes as megabytes (`123.4 MB`, 10^6 bytes).
pub(crate) fn bytes_as_mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1e6)
}

/// A rate (`12,345 /s`).
pub(crate) fn rate(per_second: f64) -> String {
    format!("{} /s", thousands(per_second.round().max(0.0) as u64))
}

/// The median of `values` (the mean of the two middle ones for an even count).
pub(crate) fn median(values: &[f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let mid = sorted.len() / 2;
    if sorted.len() % 2 == 1 {
        sorted[mid]
    } else {
        (sorted[mid - 1] + sorted[mid]) / 2.0
    }
}

/// The nearest-rank `p` quantile (0 < p <= 1) of values already sorted ascending.
pub(crate) fn quantile_sorted(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = (p * sorted.len() as f64).ceil() as usize;
    sorted[rank.clamp(1, sorted.len()) - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thousands_groups_digits() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn median_and_quantiles() {
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert_eq!(median(&[4.0, 1.0, 2.0, 3.0]), 2.5);
        let sorted: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile_sorted(&sorted, 0.5), 50.0);
        assert_eq!(quantile_sorted(&sorted, 0.99), 99.0);
        assert_eq!(quantile_sorted(&sorted, 1.0), 100.0);
    }
}
