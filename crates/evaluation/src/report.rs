//! `report.md`: the run's metrics, comparisons, per-label breakdown and figures, rendered from the
//! `metrics` and `scores` tables (never from numbers computed on the side), so the report and the
//! files a user opens agree.

use std::collections::BTreeMap;
use std::fmt::Write;

use gmrf_table::{Metrics, MetricsRow, Scores, Transform};

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

/// A table of one number per model and column (a completion mask, a noise level).
#[derive(Clone, Debug, PartialEq)]
pub struct Table {
    pub columns: Vec<String>,
    /// (model, one value per column).
    pub rows: Vec<(String, Vec<f64>)>,
}

impl Table {
    pub fn new(columns: Vec<String>) -> Self {
        Table { columns, rows: Vec::new() }
    }

    fn render(&self, w: &mut String, first: &str, digits: usize) {
        let _ = writeln!(w, "| {first} | {} |", self.columns.join(" | "));
        let _ = writeln!(w, "|---|{}", "---:|".repeat(self.columns.len()));
        for (model, values) in &self.rows {
            let cells: Vec<String> = values.iter().map(|v| format!("{v:.digits$}")).collect();
            let _ = writeln!(w, "| {model} | {} |", cells.join(" | "));
        }
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
    /// The centred tables' transform.
    pub transform: Transform,
    /// Completion: mean conditional nll of the hidden pixels (nats per hidden pixel) and bits per
    /// hidden pixel, per model and mask.
    pub completion: (&'a Table, &'a Table),
    /// Denoising PSNR (dB) per model (and the noisy input) and noise level; `None` in logit space.
    pub denoising: Option<&'a Table>,
    /// Pixels per image d.
    pub n_pixels: usize,
}

/// Mean and two standard errors of the test log-likelihood per image, −d·nll, by model, from the
/// `scores` table.
fn test_log_likelihood_per_image(scores: &Scores, model: &str, d: usize) -> (f64, f64) {
    let values: Vec<f64> = (0..scores.nll.len())
        .filter(|&k| scores.model[k] == model && scores.split[k] == "test")
        .map(|k| -(d as f64) * scores.nll[k])
        .collect();
    let n = values.len().max(1) as f64;
    let mean = values.iter().sum::<f64>() / n;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0).max(1.0);
    (mean, 2.0 * (variance / n).sqrt())
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

/// The mask of a completion figure `figures/<model>/completion-<mask>.png`.
fn mask_of(path: &str) -> &str {
    path.rsplit("completion-").next().unwrap_or("").trim_end_matches(".png")
}

fn seconds(row: &MetricsRow) -> String {
    row.fit_seconds.map_or("–".into(), |s| format!("{s:.1}"))
}

/// The masked MLE fitted on the same neighbourhood as `row`, if the run has one.
fn mle_for<'a>(metrics: &'a Metrics, row: &MetricsRow) -> Option<&'a MetricsRow> {
    metrics.rows.iter().find(|m| m.method == "mle" && m.neighbourhood == row.neighbourhood)
}

pub fn render(inputs: &ReportInputs<'_>) -> String {
    let ReportInputs {
        title,
        data_note,
        metrics,
        scores,
        figures,
        samplers,
        scale,
        transform,
        completion,
        denoising,
        n_pixels,
    } = inputs;
    let mut out = String::new();
    let w = &mut out;
    let _ = writeln!(w, "# {title}\n");
    if !data_note.is_empty() {
        let _ = writeln!(w, "{data_note}\n");
    }
    let units = match transform {
        Transform::None => format!(
            "Negative log-likelihood (nll) in nats per pixel of the dequantised data, lower is better; bits \
             per pixel of the discrete 8-bit data = nll/ln 2 + log₂ {scale}."
        ),
        Transform::Logit { alpha } => format!(
            "The tables are in logit space, y = logit(α + (1 − 2α)x) with x = (pixel + u)/{scale} and \
             α = {alpha}. Negative log-likelihood (nll) in nats per pixel of y, lower is better; bits per \
             pixel of the discrete 8-bit data = (nll − J)/ln 2 + log₂ {scale}, J the mean log-Jacobian \
             log|dy/dx| per pixel of the table's images."
        ),
    };
    let _ = writeln!(
        w,
        "{units} Baselines: `diagonal` (independent pixels, Λ = diag(S)⁻¹) and `full` (Λ = S⁻¹, every \
         pixel pair), S the training data's second moments. Every number in the first sections is read \
         from `metrics.parquet`; per-image values are in `scores.parquet`.\n"
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

    if let Transform::Logit { .. } = transform {
        let _ = writeln!(w, "\n## Test log-likelihood per image in logit space\n");
        let _ = writeln!(
            w,
            "Mean over the test images of log p(y) = −{n_pixels}·nll (nats per image, higher is better) \
             ± two standard errors, as density models of MNIST are reported (MAF, Papamakarios et al. \
             2017, Table 2: a full-covariance Gaussian −1366.9 ± 1.4), and bits per pixel with the \
             log-Jacobian.\n"
        );
        let _ = writeln!(w, "| model | free entries | test log-likelihood per image | test bits/pixel |");
        let _ = writeln!(w, "|---|---:|---:|---:|");
        for r in &metrics.rows {
            let (mean, error) = test_log_likelihood_per_image(scores, &r.model, *n_pixels);
            let _ = writeln!(w, "| {} | {} | {mean:.1} ± {error:.1} | {:.4} |", r.model, r.nnz, r.test_bpd);
        }
    }

    let (completion_nll, completion_bpd) = completion;
    if !completion_nll.rows.is_empty() {
        let _ = writeln!(w, "\n## Completion\n");
        let _ = writeln!(
            w,
            "Each test image with some pixels hidden (the bottom half, the right half, the centred square \
             of half the side, or a seeded random half of the pixels, the same in every image): the mean \
             over the test images of the conditional negative log-likelihood −log p(x_h | x_o) of the \
             hidden pixels h given the observed ones o, in nats per hidden pixel (lower is better). The \
             hidden pixels are Gaussian with precision Λ_hh and mean −Λ_hh⁻¹Λ_ho x_o; sparse models use \
             the banded factor of Λ_hh.\n"
        );
        completion_nll.render(w, "nats per hidden pixel", 4);
        let _ = writeln!(w, "\nThe same in bits per hidden pixel of the 8-bit data.\n");
        completion_bpd.render(w, "bits per hidden pixel", 4);
        let _ = writeln!(
            w,
            "\nFor the first {} test digits, each row: the original, the observed part (hidden pixels \
             grey), the conditional mean, and three conditional samples.\n",
            crate::run::FIGURE_DIGITS
        );
        for f in figures.iter().filter(|f| f.path.contains("/completion-")) {
            let _ = writeln!(
                w,
                "`{}`, hidden: {}\n\n![{}]({})\n",
                f.model.as_deref().unwrap_or(""),
                mask_of(&f.path),
                f.path,
                f.path
            );
        }
    }

    match denoising {
        Some(table) => {
            let _ = writeln!(w, "\n## Denoising\n");
            let _ = writeln!(
                w,
                "Gaussian noise of standard deviation s (pixel range 1) added to every test image; each \
                 model's estimate is its posterior mean μ + (Λ + I/s²)⁻¹(x_noisy − μ)/s², not clipped. PSNR \
                 = 10·log₁₀(1/MSE) in dB against the clean (dequantised) images, the MSE over all test \
                 pixels; higher is better.\n"
            );
            table.render(w, "PSNR (dB)", 2);
            for f in figures.iter().filter(|f| f.path.contains("/denoising-")) {
                let level = f.path.rsplit("denoising-s").next().unwrap_or("").trim_end_matches(".png");
                let _ = writeln!(
                    w,
                    "\ns = {level}: each row a test digit: clean, noisy, then {}.\n\n![{}]({})",
                    table.rows.iter().skip(1).map(|(m, _)| format!("`{m}`")).collect::<Vec<_>>().join(", "),
                    f.path,
                    f.path
                );
            }
        }
        None if !completion_nll.rows.is_empty() => {
            let _ = writeln!(
                w,
                "\nNo denoising section: Gaussian noise on the pixels is not Gaussian in logit space."
            );
        }
        None => {}
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
    for f in figures.iter().filter(|f| f.path.ends_with("/mean.png")) {
        let _ = writeln!(w, "The mean image μ:\n\n![{}]({})\n", f.path, f.path);
    }
    for r in &fitted {
        let _ = writeln!(w, "### {}\n", r.model);
        let own = |f: &&Figure| f.model.as_deref() == Some(&r.model) && !f.path.contains("/completion-");
        for f in figures.iter().filter(own) {
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
