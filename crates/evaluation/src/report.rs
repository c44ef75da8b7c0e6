//! `report.md`: the run's metrics, comparisons, per-label breakdown and figures, rendered from the
//! `metrics` and `scores` tables (never from numbers computed on the side), so the report and the
//! files a user opens agree.

use std::collections::BTreeMap;
use std::fmt::Write;

use gmrf_table::{Metrics, MetricsRow, Scores};

/// A figure of the run: its path relative to the run folder and the model it shows, if any.
#[derive(Clone, Debug, PartialEq)]
pub struct Figure {
    pub path: String,
    pub model: Option<String>,
}

impl Figure {
    /// `figures/model/kind.png` shows `model`; `figures/kind.png` shows the data.
    pub fn from_path(path: &str) -> Self {
        let inside = path.split_once('/').map_or(path, |(_, rest)| rest);
        Figure { path: path.to_string(), model: inside.split_once('/').map(|(m, _)| m.to_string()) }
    }
}

pub struct ReportInputs<'a> {
    pub title: &'a str,
    pub data_note: &'a str,
    pub metrics: &'a Metrics,
    pub scores: &'a Scores,
    pub figures: &'a [Figure],
    /// Each sampler's name and description.
    pub samplers: &'a [(&'a str, String)],
    pub scale: f64,
}

/// Mean test nll per label and model, from the `scores` table: label → model → (mean, count).
/// Rows without a label (photo patches) are left out.
pub fn test_nll_by_label(scores: &Scores) -> BTreeMap<u8, BTreeMap<String, (f64, usize)>> {
    let mut sums: BTreeMap<u8, BTreeMap<String, (f64, usize)>> = BTreeMap::new();
    for k in 0..scores.nll.len() {
        if let (Some(label), "test") = (scores.label[k], scores.split[k].as_str()) {
            let cell = sums.entry(label).or_default().entry(scores.model[k].clone()).or_insert((0.0, 0));
            cell.0 += scores.nll[k];
            cell.1 += 1;
        }
    }
    for models in sums.values_mut() {
        for cell in models.values_mut() {
            cell.0 /= cell.1 as f64;
        }
    }
    sums
}

fn seconds(row: &MetricsRow) -> String {
    row.fit_seconds.map_or("–".into(), |s| format!("{s:.1}"))
}

/// The masked MLE fitted on the same neighbourhood as `row`, if the run has one.
fn mle_for<'a>(metrics: &'a Metrics, row: &MetricsRow) -> Option<&'a MetricsRow> {
    metrics.rows.iter().find(|m| m.method == "mle" && m.neighbourhood == row.neighbourhood)
}

pub fn render(inputs: &ReportInputs<'_>) -> String {
    let ReportInputs { title, data_note, metrics, scores, figures, samplers, scale } = inputs;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# {title}\n");
    if !data_note.is_empty() {
        let _ = writeln!(w, "{data_note}\n");
    }
    let _ = writeln!(
        w,
        "Negative log-likelihood (nll) in nats per pixel of the dequantised data, lower is better; bits per \
         pixel of the discrete 8-bit data = nll/ln 2 + log₂ {scale}. Baselines: `diagonal` (independent \
         pixels, Λ = diag(S)⁻¹) and `full` (Λ = S⁻¹, every pixel pair), S the training data's second \
         moments. Every number below is read from `metrics.parquet`; per-image values are in \
         `scores.parquet`.\n"
    );

    let _ = writeln!(w, "## Held-out fit\n");
    let _ = writeln!(
        w,
        "| model | method | neighbourhood | free entries | train nll | test nll | test bits/pixel | smallest eigenvalue of Λ | condition number | fit seconds |"
    );
    let _ = writeln!(w, "|---|---|---|---:|---:|---:|---:|---:|---:|---:|");
    for r in &metrics.rows {
        let _ = writeln!(
            w,
            "| {} | {} | {} | {} | {:.4} | {:.4} | {:.4} | {:.4e} | {:.3e} | {} |",
            r.model,
            r.method,
            r.neighbourhood,
            r.nnz,
            r.train_nll,
            r.test_nll,
            r.test_bpd,
            r.min_eigenvalue,
            r.condition_number,
            seconds(r)
        );
    }

    let baseline = |name: &str| metrics.rows.iter().find(|r| r.model == name);
    let fitted: Vec<&MetricsRow> = metrics.rows.iter().filter(|r| r.method != "baseline").collect();
    if !fitted.is_empty() {
        let _ = writeln!(w, "\n## Comparison\n");
        let _ =
            writeln!(w, "Differences in test nll (nats per pixel; negative = better than the reference).\n");
        let _ =
            writeln!(w, "| model | test nll | vs diagonal | vs masked MLE, same neighbourhood | vs full |");
        let _ = writeln!(w, "|---|---:|---:|---:|---:|");
        let delta = |r: &MetricsRow, reference: Option<&MetricsRow>| {
            reference.map_or("–".into(), |b| format!("{:+.4}", r.test_nll - b.test_nll))
        };
        for r in &fitted {
            let mle = mle_for(metrics, r).filter(|m| m.model != r.model);
            let _ = writeln!(
                w,
                "| {} | {:.4} | {} | {} | {} |",
                r.model,
                r.test_nll,
                delta(r, baseline("diagonal")),
                delta(r, mle),
                delta(r, baseline("full"))
            );
        }
        let mut ranked: Vec<&MetricsRow> = metrics.rows.iter().collect();
        ranked.sort_by(|a, b| b.test_nll.total_cmp(&a.test_nll));
        let order: Vec<String> = ranked.iter().map(|r| format!("`{}` {:.4}", r.model, r.test_nll)).collect();
        let _ = writeln!(w, "\nFrom worst to best test nll: {}.", order.join(" → "));
        for r in &fitted {
            for (key, value) in [("parameters", &r.parameters)] {
                if !value.is_empty() {
                    let _ = writeln!(w, "\n`{}` {key}: {value}", r.model);
                }
            }
        }
    }

    let by_label = test_nll_by_label(scores);
    if !by_label.is_empty() {
        let models: Vec<&str> = metrics.rows.iter().map(|r| r.model.as_str()).collect();
        let _ = writeln!(w, "\n## Test nll by label\n");
        let _ =
            writeln!(w, "Mean over the test images of each label (nats per pixel), from `scores.parquet`.\n");
        let _ = writeln!(w, "| label | images | {} |", models.join(" | "));
        let _ = writeln!(w, "|---:|---:|{}", "---:|".repeat(models.len()));
        for (label, cells) in &by_label {
            let count = cells.values().next().map_or(0, |c| c.1);
            let values: Vec<String> =
                models.iter().map(|m| cells.get(*m).map_or("–".into(), |c| format!("{:.4}", c.0))).collect();
            let _ = writeln!(w, "| {label} | {count} | {} |", values.join(" | "));
        }
    }

    let _ = writeln!(w, "\n## Figures\n");
    for f in figures.iter().filter(|f| f.model.is_none()) {
        let _ = writeln!(w, "The mean image μ:\n\n![{}]({})\n", f.path, f.path);
    }
    for r in &fitted {
        let _ = writeln!(w, "### {}\n", r.model);
        for f in figures.iter().filter(|f| f.model.as_deref() == Some(&r.model)) {
            let caption = match f.path.rsplit('/').next().unwrap_or(&f.path) {
                "precision-maps.png" => {
                    "Λθ: log₁₀ of the diagonal and the partial correlation of each neighbour offset."
                        .to_string()
                }
                "covariance-row.png" => {
                    "One row of Σθ = Λθ⁻¹: the central pixel's covariance and correlation with every pixel."
                        .to_string()
                }
                "loss.png" => "The objective by optimiser step.".to_string(),
                other => samplers
                    .iter()
                    .find(|(name, _)| other == format!("samples-{name}.png"))
                    .map_or(other.to_string(), |(_, describe)| {
                        format!("Samples, {describe}, clipped to [0, 255].")
                    }),
            };
            let _ = writeln!(w, "{caption}\n\n![{}]({})\n", f.path, f.path);
        }
    }
    out
}
