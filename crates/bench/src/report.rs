//! The one table the harness prints: per figure, the value, the reference measured
//! in the same run, their ratio and the target, in Markdown so it pastes into
//! BENCHMARKS.md as it is.

/// Whether a figure meets its target.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// No target: context for the other figures.
    NoTarget,
}

#[derive(Debug, Clone)]
pub struct Row {
    pub scenario: &'static str,
    pub figure: String,
    pub value: String,
    pub reference: String,
    pub ratio: Option<f64>,
    pub target: String,
    pub verdict: Verdict,
}

impl Row {
    /// A figure with a reference and no target.
    pub fn info(
        scenario: &'static str,
        figure: impl Into<String>,
        value: impl Into<String>,
        reference: impl Into<String>,
        ratio: Option<f64>,
    ) -> Self {
        Self {
            scenario,
            figure: figure.into(),
            value: value.into(),
            reference: reference.into(),
            ratio,
            target: "—".into(),
            verdict: Verdict::NoTarget,
        }
    }

    /// A figure whose ratio to its reference must be at least `min`.
    pub fn ratio_at_least(
        scenario: &'static str,
        figure: impl Into<String>,
        value: impl Into<String>,
        reference: impl Into<String>,
        ratio: f64,
        min: f64,
    ) -> Self {
        Self {
            target: format!("≥ {min}×"),
            verdict: verdict(ratio.is_finite() && ratio >= min),
            ..Self::info(scenario, figure, value, reference, Some(ratio))
        }
    }

    /// A figure whose ratio to its reference must be at most `max`.
    pub fn ratio_at_most(
        scenario: &'static str,
        figure: impl Into<String>,
        value: impl Into<String>,
        reference: impl Into<String>,
        ratio: f64,
        max: f64,
    ) -> Self {
        Self {
            target: format!("≤ {max}×"),
            verdict: verdict(ratio.is_finite() && ratio <= max),
            ..Self::info(scenario, figure, value, reference, Some(ratio))
        }
    }

    /// A figure judged on its own: `met` says whether `target` holds.
    pub fn checked(
        scenario: &'static str,
        figure: impl Into<String>,
        value: impl Into<String>,
        reference: impl Into<String>,
        target: impl Into<String>,
        met: bool,
    ) -> Self {
        Self {
            target: target.into(),
            verdict: verdict(met),
            ..Self::info(scenario, figure, value, reference, None)
        }
    }

    /// A scenario that could not run.
    pub fn failed(scenario: &'static str, why: String) -> Self {
        Self {
            verdict: Verdict::Missed,
            ..Self::info(scenario, "did not run", why, "—", None)
        }
    }
}

fn verdict(met: bool) -> Verdict {
    if met {
        Verdict::Met
    } else {
        Verdict::Missed
    }
}

/// The table, Markdown. `quick` marks verdicts as indicative only.
pub fn render(rows: &[Row], quick: bool) -> String {
    let header = [
        "scenario",
        "figure",
        "measured",
        "reference (same run)",
        "ratio",
        "target",
        "met",
    ];
    let cells: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            let met = match (row.verdict, quick) {
                (Verdict::NoTarget, _) => "—",
                (Verdict::Met, false) => "yes",
                (Verdict::Missed, false) => "**no**",
                (Verdict::Met, true) => "(yes)",
                (Verdict::Missed, true) => "(no)",
            };
            [
                row.scenario.to_owned(),
                row.figure.clone(),
                row.value.clone(),
                row.reference.clone(),
                row.ratio
                    .map_or_else(|| "—".to_owned(), |r| format!("{r:.2}×")),
                row.target.clone(),
                met.to_owned(),
            ]
        })
        .collect();
    // A cell holds one line (error messages may carry several).
    let cells: Vec<[String; 7]> = cells
        .into_iter()
        .map(|row| row.map(|cell| cell.split_whitespace().collect::<Vec<_>>().join(" ")))
        .collect();
    let mut widths = header.map(|h| h.chars().count());
    for row in &cells {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: &[String]| {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, width)| {
                let pad = width - cell.chars().count();
                format!("{cell}{}", " ".repeat(pad))
            })
            .collect();
        format!("| {} |\n", padded.join(" | "))
    };
    let mut out = line(&header.map(str::to_owned));
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&format!("|-{}-|\n", rule.join("-|-")));
    for row in &cells {
        out.push_str(&line(row));
    }
    out
}

/// `1234.5` → "1,234"; small numbers keep one or two decimals.
pub fn num(value: f64) -> String {
    if !value.is_finite() {
        return "n/a".to_owned();
    }
    if value.abs() >= 100.0 {
        let whole = value.round() as i64;
        let digits = whole.unsigned_abs().to_string().into_bytes();
        let groups: Vec<&str> = digits
            .rchunks(3)
            .rev()
            .map(|chunk| std::str::from_utf8(chunk).unwrap_or_default())
            .collect();
        let sign = if whole < 0 { "-" } else { "" };
        format!("{sign}{}", groups.join(","))
    } else if value.abs() >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_are_grouped_and_rounded() {
        assert_eq!(num(1234.5), "1,235");
        assert_eq!(num(1_280_000.0), "1,280,000");
        assert_eq!(num(27.04), "27.0");
        assert_eq!(num(0.456), "0.46");
    }

    #[test]
    fn verdicts_follow_the_target() {
        assert_eq!(
            Row::ratio_at_least("s", "f", "1", "1", 0.95, 0.9).verdict,
            Verdict::Met
        );
        assert_eq!(
            Row::ratio_at_most("s", "f", "1", "1", 0.3, 0.25).verdict,
            Verdict::Missed
        );
        let table = render(&[Row::info("s", "f", "1", "2", Some(0.5))], false);
        assert!(table.contains("| s "), "{table}");
        assert!(table.contains("0.50×"), "{table}");
    }
}
