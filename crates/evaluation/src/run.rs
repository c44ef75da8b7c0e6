//! [`evaluate`]: every model and baseline scored on the same tables, samples, figures, report.

use gmrf_model::Precision;
use gmrf_table::{
    Centred, MeanImage, Meta, Metrics, MetricsRow, Samples, Scores, Trace, Transform, stable_hash,
};
use ndarray::{Array1, Array2, ArrayView2};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rand_distr::StandardNormal;

use crate::completion::{Conditional, Mask};
use crate::denoising::{posterior_means, psnr};
use crate::figures::{ColourScale, Map, Series, image_grid, line_charts, map_figure};
use crate::report::{Figure, ReportInputs, Table, render};
use crate::samples::{Sampler, draw, to_pixel};
use crate::{EvaluationError, Gaussian, bits_per_pixel};

/// The noise levels s of the denoising section (pixel range 1).
pub const DENOISING_LEVELS: [f64; 3] = [0.1, 0.2, 0.4];
/// Test digits shown in the completion figures (and, the first 6, in the denoising figures).
pub(crate) const FIGURE_DIGITS: usize = 8;
/// Conditional samples per digit in a completion figure.
const CONDITIONAL_SAMPLES: usize = 3;

/// The folder of the figures, inside the run folder.
pub const FIGURES: &str = "figures";

/// A fitted model to evaluate: its Λθ, the metadata of its `precision` table, and its trace.
pub struct Model {
    /// Names the model in the tables and its figure folder: letters, digits, `-`, `_`, `.`.
    pub name: String,
    pub precision: Precision,
    pub meta: Meta,
    pub trace: Option<Trace>,
}

/// Evaluation settings.
#[derive(Clone, Debug)]
pub struct Options {
    /// The report's title.
    pub title: String,
    /// Samples per model and sampler (an 8 × 8 grid by default).
    pub samples: usize,
    /// τ of the Λ^{-1/2}ε sampler.
    pub tau: f64,
    pub seed: u64,
    /// The dequantisation scale of the centred data, x = (pixel + u)/scale.
    pub scale: f64,
    /// Describes the data for the report (files, noise).
    pub data_note: String,
    /// The transform of the centred tables (`gmrf.transform`): bits per pixel include its
    /// log-Jacobian, and samples and figures are mapped back through its inverse.
    pub transform: Transform,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            title: "gmrf run".into(),
            samples: 64,
            tau: 0.1,
            seed: 0,
            scale: 256.0,
            data_note: String::new(),
            transform: Transform::None,
        }
    }
}

/// Everything `gmrf evaluate` writes, in memory.
pub struct Evaluation {
    pub metrics: Metrics,
    pub scores: Scores,
    pub samples: Samples,
    /// PNG figures, each with its path relative to the run folder.
    pub figures: Vec<(String, Vec<u8>)>,
    /// `report.md`, rendered from `metrics` and `scores`.
    pub report: String,
}

/// A model or baseline reduced to what the tables need.
struct Scored {
    row: MetricsRow,
    train_nll: Vec<f64>,
    test_nll: Vec<f64>,
}

fn mean_of(values: &[f64]) -> f64 {
    values.iter().sum::<f64>() / values.len().max(1) as f64
}

/// The mean over the rows of `table` and over the pixels where `within` holds (all when `None`) of
/// log |dy/dx|, the transform's log-Jacobian at the uncentred value y = x + μ: nats per pixel to
/// subtract from a density's nll in y to get the nll of the dequantised pixels x.
pub fn mean_log_jacobian(
    table: &Centred,
    mean: &MeanImage,
    transform: Transform,
    within: Option<&[bool]>,
) -> f64 {
    if transform == Transform::None {
        return 0.0;
    }
    let pixels: Vec<usize> = (0..mean.mean.len()).filter(|&k| within.is_none_or(|w| w[k])).collect();
    let per_row: Vec<f64> = table
        .x
        .outer_iter()
        .map(|row| {
            pixels.iter().map(|&k| transform.log_jacobian(f64::from(row[k]) + mean.mean[k])).sum::<f64>()
        })
        .collect();
    per_row.iter().sum::<f64>() / (per_row.len().max(1) * pixels.len().max(1)) as f64
}

/// The log-Jacobians of the training and test tables, and the scale: what turns nats per pixel
/// of the centred values into bits per pixel of the 8-bit data.
struct Units {
    scale: f64,
    train_jacobian: f64,
    test_jacobian: f64,
}

fn score(
    gaussian: &Gaussian,
    train: &Centred,
    test: &Centred,
    units: &Units,
    row: MetricsRow,
) -> Result<Scored, EvaluationError> {
    let (train_nll, test_nll) =
        (gaussian.nll_per_pixel(train.x.view()), gaussian.nll_per_pixel(test.x.view()));
    let eigenvalues = gaussian.precision_eigenvalues()?;
    let (min, max) = (eigenvalues[0], eigenvalues[eigenvalues.len() - 1]);
    let (train_mean, test_mean) = (mean_of(&train_nll), mean_of(&test_nll));
    let row = MetricsRow {
        n_train: train.len() as u32,
        n_test: test.len() as u32,
        train_nll: train_mean,
        test_nll: test_mean,
        train_bpd: bits_per_pixel(train_mean - units.train_jacobian, units.scale),
        test_bpd: bits_per_pixel(test_mean - units.test_jacobian, units.scale),
        min_eigenvalue: min,
        condition_number: max / min,
        ..row
    };
    Ok(Scored { row, train_nll, test_nll })
}

/// The metadata keys that describe a fit's settings (the others are provenance or results).
fn parameters(meta: &Meta) -> String {
    const NOT_SETTINGS: [&str; 12] = [
        "method",
        "neighbourhood",
        "train",
        "n_train",
        "nnz",
        "positive_definite",
        "min_eigenvalue",
        "steps_taken",
        "n_fit",
        "n_validation",
        "sm_objective",
        "relative_optimality_gap",
    ];
    let settings = meta.params.iter().filter(|(k, _)| !NOT_SETTINGS.contains(&k.as_str()));
    settings.map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(", ")
}

fn check_name(name: &str) -> Result<(), EvaluationError> {
    let ok = !name.is_empty()
        && !name.starts_with('.')
        && name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c));
    if ok {
        Ok(())
    } else {
        Err(EvaluationError::Inputs(format!(
            "model name {name:?}: use letters, digits, `-`, `_` and `.` (it names a folder of figures)"
        )))
    }
}

fn check_inputs(
    train: &Centred,
    test: &Centred,
    mean: &MeanImage,
    models: &[Model],
) -> Result<(), EvaluationError> {
    let shape = (train.height, train.width);
    let mismatch = |what: &str, h: usize, w: usize| {
        EvaluationError::Inputs(format!(
            "{what} is for {h}x{w} images but the training table holds {}x{} images",
            shape.0, shape.1
        ))
    };
    if (test.height, test.width) != shape {
        return Err(mismatch("the test table", test.height, test.width));
    }
    if (mean.height, mean.width) != shape {
        return Err(mismatch("the mean image", mean.height, mean.width));
    }
    if train.is_empty() || test.is_empty() {
        return Err(EvaluationError::Inputs("the training and test tables must both have rows".into()));
    }
    for (k, model) in models.iter().enumerate() {
        check_name(&model.name)?;
        if ["diagonal", "full"].contains(&model.name.as_str())
            || models[..k].iter().any(|m| m.name == model.name)
        {
            return Err(EvaluationError::Inputs(format!(
                "model name {:?} is used twice (`diagonal` and `full` name the baselines)",
                model.name
            )));
        }
        let p = model.precision.pattern();
        if (p.height(), p.width()) != shape {
            return Err(mismatch(&format!("model {}", model.name), p.height(), p.width()));
        }
    }
    Ok(())
}

/// Scores every model and the two baselines (diagonal and full-covariance Gaussians fitted to the
/// training table) on the training and test tables, draws samples, renders figures and the report.
/// `progress` hears what is being done.
pub fn evaluate(
    train: &Centred,
    test: &Centred,
    mean: &MeanImage,
    models: &[Model],
    options: &Options,
    progress: &dyn Fn(&str),
) -> Result<Evaluation, EvaluationError> {
    check_inputs(train, test, mean, models)?;
    let (height, width, d) = (train.height, train.width, train.height * train.width);
    let row = |model: &str, method: &str, neighbourhood: &str, parameters: String, nnz: usize| MetricsRow {
        model: model.into(),
        method: method.into(),
        neighbourhood: neighbourhood.into(),
        parameters,
        nnz: nnz as u32,
        n_train: 0,
        n_test: 0,
        train_nll: f64::NAN,
        test_nll: f64::NAN,
        train_bpd: f64::NAN,
        test_bpd: f64::NAN,
        min_eigenvalue: f64::NAN,
        condition_number: f64::NAN,
        fit_seconds: None,
    };

    let transform = options.transform;
    let units = Units {
        scale: options.scale,
        train_jacobian: mean_log_jacobian(train, mean, transform, None),
        test_jacobian: mean_log_jacobian(test, mean, transform, None),
    };
    progress("baselines: the training data's covariance");
    let s = gmrf_model::second_moments(train.x.view());
    let diagonal = Gaussian::diagonal(s.diag().to_vec()).map_err(|_| EvaluationError::NotPositiveDefinite)?;
    let mut scored = vec![score(
        &diagonal,
        train,
        test,
        &units,
        row("diagonal", "baseline", "none", "Λ = diag(S)⁻¹".into(), d),
    )?];
    let full = Gaussian::from_covariance(s).map_err(|_| EvaluationError::NotPositiveDefinite)?;
    scored.push(score(
        &full,
        train,
        test,
        &units,
        row("full", "baseline", "all", "Λ = S⁻¹".into(), d * (d + 1) / 2),
    )?);
    let mut gaussians = vec![("diagonal".to_string(), diagonal), ("full".to_string(), full)];

    let display = |v: f64, k: usize| to_pixel(transform.inverse(v + mean.mean[k]), options.scale);
    let mut figures = vec![(
        format!("{FIGURES}/mean.png"),
        image_grid(mean_pixels(mean, options.scale, transform).view(), height, width, 1, 8)?,
    )];
    let mut samples =
        Samples { height, width, model: vec![], id: vec![], sampler: vec![], pixels: Array2::zeros((0, d)) };
    let mut sample_rows = Vec::new();
    let mean_vector = Array1::from(mean.mean.clone());
    for model in models {
        progress(&format!("{}: likelihood", model.name));
        let meta = &model.meta;
        let gaussian = Gaussian::from_precision(model.precision.clone())
            .map_err(|e| EvaluationError::Inputs(format!("model `{}`: {e}", model.name)))?;
        let mut r = row(
            &model.name,
            meta.param("method").unwrap_or("unknown"),
            meta.param("neighbourhood").unwrap_or("unknown"),
            parameters(meta),
            model.precision.pattern().len(),
        );
        r.fit_seconds = model.trace.as_ref().and_then(|t| t.rows.last()).map(|last| last.elapsed_s);
        scored.push(score(&gaussian, train, test, &units, r)?);

        progress(&format!("{}: samples and figures", model.name));
        // Seeded by the model's name too, so its samples do not depend on the other models.
        let seed = options.seed ^ stable_hash(model.name.as_bytes());
        for sampler in Sampler::ALL {
            let pixels = draw(
                &model.precision,
                sampler,
                options.samples,
                options.tau,
                mean_vector.view(),
                &|v| to_pixel(transform.inverse(v), options.scale),
                seed,
            )?;
            figures.push((
                format!("{FIGURES}/{}/samples-{}.png", model.name, sampler.name()),
                image_grid(pixels.view(), height, width, 8, 3)?,
            ));
            for k in 0..pixels.nrows() {
                samples.model.push(model.name.clone());
                samples.id.push(k as u32);
                samples.sampler.push(sampler.name().into());
            }
            sample_rows.push(pixels);
        }
        figures.push((
            format!("{FIGURES}/{}/precision-maps.png", model.name),
            precision_maps(&model.name, &model.precision)?,
        ));
        figures.push((
            format!("{FIGURES}/{}/covariance-row.png", model.name),
            covariance_row(&model.name, &gaussian)?,
        ));
        if let Some(chart) = loss_curve(model)? {
            figures.push((format!("{FIGURES}/{}/loss.png", model.name), chart));
        }
        gaussians.push((model.name.clone(), gaussian));
    }

    let (completion_nll, completion_bpd) =
        completion(&gaussians, test, mean, options, &display, &mut figures, progress)?;
    // Denoising in pixel space only: Gaussian pixel noise is not Gaussian in logit space.
    let denoising = match transform {
        Transform::None => Some(denoising(&gaussians, test, options, &display, &mut figures, progress)?),
        Transform::Logit { .. } => None,
    };
    drop(gaussians);
    if !sample_rows.is_empty() {
        let views: Vec<ArrayView2<'_, u8>> = sample_rows.iter().map(|p| p.view()).collect();
        samples.pixels = ndarray::concatenate(ndarray::Axis(0), &views).expect("samples share their width");
    }

    let mut scores = Scores { height, width, ..Scores::default() };
    for s in &scored {
        for (split, table, nll) in [("train", train, &s.train_nll), ("test", test, &s.test_nll)] {
            scores.model.extend(std::iter::repeat_n(s.row.model.clone(), nll.len()));
            scores.split.extend(std::iter::repeat_n(split.to_string(), nll.len()));
            scores.id.extend_from_slice(&table.id);
            scores.label.extend_from_slice(&table.label);
            scores.source.extend_from_slice(&table.source);
            scores.nll.extend_from_slice(nll);
        }
    }
    let metrics = Metrics { rows: scored.into_iter().map(|s| s.row).collect() };
    let report = render(&ReportInputs {
        title: &options.title,
        data_note: &options.data_note,
        metrics: &metrics,
        scores: &scores,
        figures: &figures.iter().map(|(path, _)| Figure::from_path(path)).collect::<Vec<_>>(),
        samplers: &Sampler::ALL.map(|s| (s.name(), s.describe(options.tau))),
        scale: options.scale,
        transform,
        completion: (&completion_nll, &completion_bpd),
        denoising: denoising.as_ref(),
        n_pixels: d,
    });
    Ok(Evaluation { metrics, scores, samples, figures, report })
}

/// Completion of the test table under every Gaussian (the two baselines first) and mask: the mean
/// conditional nll of the hidden pixels (nats, and bits per pixel) per model and mask, and a figure
/// per fitted model and mask.
fn completion(
    gaussians: &[(String, Gaussian)],
    test: &Centred,
    mean: &MeanImage,
    options: &Options,
    display: &dyn Fn(f64, usize) -> u8,
    figures: &mut Vec<(String, Vec<u8>)>,
    progress: &dyn Fn(&str),
) -> Result<(Table, Table), EvaluationError> {
    let (height, width, transform) = (test.height, test.width, options.transform);
    let d = height * width;
    let masks: Vec<(Mask, Vec<bool>)> =
        Mask::ALL.iter().map(|&m| (m, m.hidden(height, width, options.seed))).collect();
    let shown = test.x.slice(ndarray::s![..FIGURE_DIGITS.min(test.len()), ..]);
    let mut completion_nll = Table::new(masks.iter().map(|(m, _)| m.name().to_string()).collect());
    let mut completion_bpd = completion_nll.clone();
    for (g, (name, gaussian)) in gaussians.iter().enumerate() {
        progress(&format!("{name}: completion"));
        let (mut nll, mut bpd) = (Vec::new(), Vec::new());
        for (m, (mask, hidden)) in masks.iter().enumerate() {
            let conditional = Conditional::new(gaussian, hidden)?;
            let value = mean_of(&conditional.nll_per_hidden_pixel(test.x.view()));
            nll.push(value);
            bpd.push(bits_per_pixel(
                value - mean_log_jacobian(test, mean, transform, Some(hidden)),
                options.scale,
            ));
            // Figures for the fitted models, not the two baselines.
            if g < 2 {
                continue;
            }
            let completed = conditional.complete(shown);
            let mut rng = ChaCha8Rng::seed_from_u64(options.seed ^ stable_hash(name.as_bytes()));
            rng.set_stream(16 + m as u64);
            let mut rows: Vec<Vec<u8>> = Vec::new();
            for (n, row) in shown.outer_iter().enumerate() {
                let pixels = |values: &mut dyn Iterator<Item = f64>| {
                    values.enumerate().map(|(k, v)| display(v, k)).collect::<Vec<u8>>()
                };
                rows.push(pixels(&mut row.iter().map(|&v| f64::from(v))));
                rows.push(
                    row.iter()
                        .enumerate()
                        .map(|(k, &v)| if hidden[k] { 128 } else { display(f64::from(v), k) })
                        .collect(),
                );
                rows.push(pixels(&mut completed.row(n).iter().copied()));
                for draw in conditional.sample(row, CONDITIONAL_SAMPLES, &mut rng)?.outer_iter() {
                    rows.push(pixels(&mut draw.iter().copied()));
                }
            }
            figures.push((
                format!("{FIGURES}/{name}/completion-{}.png", mask.name()),
                image_grid(stack(&rows, d).view(), height, width, 3 + CONDITIONAL_SAMPLES, 3)?,
            ));
        }
        completion_nll.rows.push((name.clone(), nll));
        completion_bpd.rows.push((name.clone(), bpd));
    }

    Ok((completion_nll, completion_bpd))
}

/// Denoising of the test table at every level of [`DENOISING_LEVELS`] under every Gaussian: PSNR of
/// each posterior mean (and of the noisy input), and a figure per level.
fn denoising(
    gaussians: &[(String, Gaussian)],
    test: &Centred,
    options: &Options,
    display: &dyn Fn(f64, usize) -> u8,
    figures: &mut Vec<(String, Vec<u8>)>,
    progress: &dyn Fn(&str),
) -> Result<Table, EvaluationError> {
    let (height, width) = (test.height, test.width);
    let d = height * width;
    let mut rng = ChaCha8Rng::seed_from_u64(options.seed);
    rng.set_stream(32);
    let eps: Array2<f64> = Array2::from_shape_simple_fn(test.x.dim(), || rng.sample(StandardNormal));
    let mut table = Table::new(DENOISING_LEVELS.iter().map(|s| format!("s = {s}")).collect());
    let few = 6.min(test.len());
    let mut noisy_row = Vec::new();
    let mut estimates: Vec<Vec<f64>> = vec![Vec::new(); gaussians.len()];
    for &level in &DENOISING_LEVELS {
        progress(&format!("denoising at s = {level}"));
        let noisy = test.x.mapv(f64::from) + &(&eps * level);
        noisy_row.push(psnr(noisy.view(), test.x.view()));
        let mut grid: Vec<Vec<u8>> = Vec::new();
        let mut shown_estimates = Vec::new();
        for (g, (_, gaussian)) in gaussians.iter().enumerate() {
            let estimate = posterior_means(gaussian, noisy.view(), level)?;
            estimates[g].push(psnr(estimate.view(), test.x.view()));
            shown_estimates.push(estimate.slice(ndarray::s![..few, ..]).to_owned());
        }
        for n in 0..few {
            let row = |values: ndarray::ArrayView1<'_, f64>| {
                values.iter().enumerate().map(|(k, &v)| display(v, k)).collect::<Vec<u8>>()
            };
            grid.push(row(test.x.row(n).mapv(f64::from).view()));
            grid.push(row(noisy.row(n)));
            for estimate in &shown_estimates {
                grid.push(row(estimate.row(n)));
            }
        }
        figures.push((
            format!("{FIGURES}/denoising-s{level}.png"),
            image_grid(stack(&grid, d).view(), height, width, 2 + gaussians.len(), 3)?,
        ));
    }
    table.rows.push(("noisy input".into(), noisy_row));
    for ((name, _), psnrs) in gaussians.iter().zip(estimates) {
        table.rows.push((name.clone(), psnrs));
    }
    Ok(table)
}

/// The mean image as 8-bit pixels (1 × d), mapped back through the transform's inverse.
fn mean_pixels(mean: &MeanImage, scale: f64, transform: Transform) -> Array2<u8> {
    Array2::from_shape_fn((1, mean.mean.len()), |(_, k)| to_pixel(transform.inverse(mean.mean[k]), scale))
}

/// Rows of d pixels as an n × d array.
fn stack(rows: &[Vec<u8>], d: usize) -> Array2<u8> {
    Array2::from_shape_fn((rows.len(), d), |(n, k)| rows[n][k])
}

/// Λθ as maps: log₁₀ of the diagonal, and for each neighbour offset the partial correlation
/// −Λᵢⱼ/√(ΛᵢᵢΛⱼⱼ) of pixel i with its neighbour j = i + offset (drawn at pixel i). Partial
/// correlations rather than raw entries, because the raw entries span six decades (the constant
/// border pixels of MNIST have precisions near 1e5–1e6) and would show only the border.
fn precision_maps(name: &str, precision: &Precision) -> Result<Vec<u8>, EvaluationError> {
    let pattern = precision.pattern();
    let (h, w, d) = (pattern.height(), pattern.width(), pattern.dim());
    let diagonal = precision.diagonal_values();
    let mut maps = vec![Map {
        title: "log10 Λii (precision of each pixel)".into(),
        values: diagonal.iter().map(|v| v.log10()).collect(),
        scale: ColourScale::Sequential,
    }];
    for (di, dj) in pattern.neighbourhood().forward_offsets() {
        let mut values = vec![f64::NAN; d];
        for (e, &v) in pattern.entries().iter().zip(precision.values()) {
            if (e.di as i32, e.dj as i32) == (di, dj) {
                values[e.i as usize] = -v / (diagonal[e.i as usize] * diagonal[e.j as usize]).sqrt();
            }
        }
        maps.push(Map {
            title: format!("partial correlation, offset ({di:+}, {dj:+})"),
            values,
            scale: ColourScale::Diverging,
        });
    }
    map_figure(&format!("{name}: Λθ on the {h}x{w} grid"), &maps, h, w, 3)
}

/// Row c of Σθ = Λθ⁻¹ for the central pixel c: its covariance and correlation with every pixel.
fn covariance_row(name: &str, gaussian: &Gaussian) -> Result<Vec<u8>, EvaluationError> {
    let Gaussian::Sparse { precision, factor } = gaussian else {
        return Err(EvaluationError::Inputs("a covariance row is drawn for fitted models".into()));
    };
    let pattern = precision.pattern();
    let (h, w) = (pattern.height(), pattern.width());
    let c = (h / 2) * w + w / 2;
    let mut row = vec![0.0; pattern.dim()];
    row[c] = 1.0;
    factor.solve_in_place(&mut row);
    let variances = factor.inverse_band();
    let correlation = (0..row.len()).map(|i| row[i] / (row[c] * variances.get(i, i)).sqrt()).collect();
    let maps = [
        Map { title: "covariance Σci".into(), values: row, scale: ColourScale::Diverging },
        Map {
            title: "correlation Σci/√(ΣccΣii)".into(), values: correlation, scale: ColourScale::Diverging
        },
    ];
    map_figure(&format!("{name}: row of Σθ = Λθ⁻¹ for pixel ({}, {})", h / 2, w / 2), &maps, h, w, 2)
}

/// The training loss (and the held-out loss where traced) against the optimiser step.
fn loss_curve(model: &Model) -> Result<Option<Vec<u8>>, EvaluationError> {
    let Some(trace) = model.trace.as_ref().filter(|t| t.rows.len() >= 2) else { return Ok(None) };
    let mut series = vec![Series {
        label: "training loss".into(),
        points: trace.rows.iter().map(|r| (r.step as f64, r.loss)).collect(),
    }];
    let heldout: Vec<(f64, f64)> =
        trace.rows.iter().filter_map(|r| r.heldout_loss.map(|l| (r.step as f64, l))).collect();
    if !heldout.is_empty() {
        series.push(Series { label: "held-out loss".into(), points: heldout });
    }
    let method = model.meta.param("method").unwrap_or("fit");
    line_charts(&format!("{}: {method} objective by step", model.name), "optimiser step", &series).map(Some)
}
