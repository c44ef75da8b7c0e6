//! `gmrf evaluate`: score fitted models and baselines, draw samples and figures, write the report.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use gmrf_estimation::{MleOptions, fit_mle};
use gmrf_evaluation::{Model, Options, evaluate};
use gmrf_model::{Neighbourhood, Pattern, Precision};
use gmrf_table::{Centred, MeanImage, Meta, PrecisionEntries, Stage, Trace, Transform};

use super::{file_name, memory_budget};
use crate::args::EvaluateArgs;
use crate::config::resolve;
use crate::progress::{Stopwatch, spinner};

pub fn run(args: EvaluateArgs) -> anyhow::Result<()> {
    let clock = Stopwatch::start("evaluate");
    let p = resolve(args.params, args.config.as_deref(), "evaluate")?;

    // Refuse an output that cannot be written before any work (the figures land beside these).
    let outputs: Vec<PathBuf> = ["metrics.parquet", "scores.parquet", "samples.parquet", "report.md"]
        .map(|f| args.out.join(f))
        .into();
    let outputs: Vec<(&str, &Path)> = outputs.iter().map(|p| ("--out", p.as_path())).collect();
    let mut inputs = vec![
        ("--train", args.train.as_path()),
        ("--test", args.test.as_path()),
        ("--mean", args.mean.as_path()),
    ];
    inputs.extend(args.config.iter().map(|p| ("--config", p.as_path())));
    gmrf_table::check_outputs(&outputs, &inputs)?;

    // Read and check every input before anything is written.
    let spin = spinner("reading tables");
    let (train, train_meta) = gmrf_table::read::<Centred>(&args.train)?;
    let (test, test_meta) = gmrf_table::read::<Centred>(&args.test)?;
    let (mean, _) = gmrf_table::read::<MeanImage>(&args.mean)?;
    // Tied by content, not by file name: a mean from another pipeline is refused.
    for (path, meta) in [(&args.train, &train_meta), (&args.test, &test_meta)] {
        gmrf_table::check_centred_with_mean(path, meta, &args.mean, &mean)?;
    }
    let transform =
        Transform::from_meta(&train_meta).map_err(|e| anyhow::anyhow!("{}: {e}", args.train.display()))?;
    let test_transform =
        Transform::from_meta(&test_meta).map_err(|e| anyhow::anyhow!("{}: {e}", args.test.display()))?;
    if test_transform != transform {
        bail!(
            "{}: its values are in transform `{}`, but the training table {} is in `{}`",
            args.test.display(),
            test_transform.name(),
            args.train.display(),
            transform.name()
        );
    }
    let scale: f64 = match train_meta.param("scale") {
        Some(s) => s
            .parse()
            .with_context(|| format!("{}: gmrf.scale {s:?} is not a number", args.train.display()))?,
        None => 256.0,
    };
    let mut models = args.models.iter().map(|spec| read_model(spec)).collect::<anyhow::Result<Vec<_>>>()?;
    spin.finish_and_clear();
    let (samples, tau) = (p.samples.unwrap_or(64), p.tau.unwrap_or(0.1));
    if !(tau > 0.0 && tau.is_finite()) {
        bail!("--tau {tau:?}: must be a finite number > 0");
    }
    // Each sampler draws `samples` images of f64 pixels per model (and the two baselines).
    let sample_bytes = samples as f64 * (train.height * train.width) as f64 * 8.0 * 2.0;
    if sample_bytes * (models.len() + 3) as f64 > memory_budget() as f64 {
        bail!(
            "--samples {samples}: the samples would take {:.1} GiB, more than this machine's memory",
            sample_bytes * (models.len() + 3) as f64 / f64::from(1u32 << 30)
        );
    }

    let spin = spinner("fitting the masked MLE references");
    add_mle_references(&mut models, &train, &file_name(&args.train), &|what| spin.set_message(what))?;
    spin.finish_and_clear();

    let title = p.title.unwrap_or_else(|| format!("gmrf run `{}`", file_name(&args.out)));
    let noise = train_meta.param("noise").unwrap_or("unknown");
    let space = match transform {
        Transform::None => String::new(),
        Transform::Logit { alpha } => format!(" Logit space, α = {alpha}."),
    };
    let rows = train_meta
        .param("fit_rows")
        .map_or(String::new(), |r| format!(" Training rows {r} of the ingested table."));
    let options = Options {
        title: title.clone(),
        samples,
        tau,
        seed: p.seed.unwrap_or(0),
        scale,
        transform,
        data_note: format!(
            "Training table `{}` ({} images), test table `{}` ({} images), {}x{} pixels, pixel noise: {noise}.{space}{rows}",
            file_name(&args.train),
            train.len(),
            file_name(&args.test),
            test.len(),
            train.height,
            train.width
        ),
    };
    let spin = spinner("evaluating");
    let result =
        evaluate(&train, &test, &mean, &models, &options, &|what| spin.set_message(what.to_string()))
            // Name the inputs: the evaluation's own messages say "the test table", "the training
            // data", "model `name`".
            .map_err(|e| {
                anyhow::anyhow!(
                    "evaluate {} (test {}, mean {}): {e}",
                    args.train.display(),
                    args.test.display(),
                    args.mean.display()
                )
            })?;
    spin.set_message("writing");

    let meta = |stage| {
        Meta::new(stage, train.height, train.width)
            .with("train", file_name(&args.train))
            .with("test", file_name(&args.test))
            .with("mean", file_name(&args.mean))
            .with("models", models.iter().map(|m| m.name.as_str()).collect::<Vec<_>>().join(","))
            .with("seed", options.seed)
            .with("tau", options.tau)
            .with("scale", scale)
    };
    let meta = |stage| transform.record(meta(stage));
    let out = &args.out;
    let mut pending = vec![
        gmrf_table::write(&out.join("metrics.parquet"), &result.metrics, &meta(Stage::Metrics))?,
        gmrf_table::write(&out.join("scores.parquet"), &result.scores, &meta(Stage::Scores))?,
        gmrf_table::write(&out.join("samples.parquet"), &result.samples, &meta(Stage::Samples))?,
        gmrf_table::write_bytes(&out.join("report.md"), result.report.as_bytes())?,
    ];
    for (path, png) in &result.figures {
        pending.push(gmrf_table::write_bytes(&out.join(path), png)?);
    }
    gmrf_table::commit_all(pending)?;
    spin.finish_and_clear();

    let best = result.metrics.rows.iter().min_by(|a, b| a.test_nll.total_cmp(&b.test_nll));
    clock.summary(&format!(
        "wrote {}/report.md ({} models and 2 baselines; best test nll {}; {} figures)",
        out.display(),
        models.len(),
        best.map_or("–".into(), |b| format!("{:.4} nats/pixel ({})", b.test_nll, b.model)),
        result.figures.len()
    ));
    Ok(())
}

/// A `--model [NAME=]DIR` argument: the precision table in DIR (a `precision.parquet` path works
/// too), its trace beside it if there is one, and the model's name.
fn read_model(spec: &str) -> anyhow::Result<Model> {
    let (name, location) = match spec.split_once('=') {
        Some((name, location)) => (Some(name.to_string()), location),
        None => (None, spec),
    };
    let location = PathBuf::from(location);
    let (precision_path, folder) = if location.is_dir() {
        (location.join("precision.parquet"), location)
    } else {
        let folder = location.parent().map(Path::to_path_buf).unwrap_or_default();
        (location, folder)
    };
    let (entries, meta) = gmrf_table::read::<PrecisionEntries>(&precision_path)?;
    let precision = Precision::from_table(&precision_path, &entries, &meta)?;
    let trace_path = folder.join("trace.parquet");
    let trace = if trace_path.exists() { Some(gmrf_table::read::<Trace>(&trace_path)?.0) } else { None };
    let name = name.unwrap_or_else(|| {
        format!("{}-{}", meta.param("method").unwrap_or("model"), meta.param("neighbourhood").unwrap_or("x"))
    });
    Ok(Model { name, precision, meta, trace })
}

/// Adds the masked MLE on the pattern of every model whose neighbourhood has no `mle` model in the
/// run, fitted on the training table by `gmrf estimate mle`'s code with its default options, so the
/// report's "vs masked MLE" column is always filled. It is named `mle-<neighbourhood>` (or
/// `mle-<neighbourhood>-reference` if a model of another method took that name).
fn add_mle_references(
    models: &mut Vec<Model>,
    train: &Centred,
    train_name: &str,
    progress: &dyn Fn(String),
) -> anyhow::Result<()> {
    let mut missing: Vec<Neighbourhood> = Vec::new();
    for model in models.iter() {
        let neighbourhood = model.precision.pattern().neighbourhood();
        let has_mle = models.iter().any(|m| {
            m.meta.param("method") == Some("mle") && m.precision.pattern().neighbourhood() == neighbourhood
        });
        if !has_mle && !missing.contains(&neighbourhood) {
            missing.push(neighbourhood);
        }
    }
    for neighbourhood in missing {
        progress(format!("masked MLE, {neighbourhood} neighbours"));
        let pattern = Pattern::new(train.height, train.width, neighbourhood)?;
        let options = MleOptions::default();
        let fit = fit_mle(train.x.view(), &pattern, &options, None).with_context(|| {
            format!("the masked MLE reference ({neighbourhood} neighbours) on {train_name}")
        })?;
        let mut name = format!("mle-{neighbourhood}");
        if models.iter().any(|m| m.name == name) {
            name.push_str("-reference");
        }
        let meta = Meta::new(Stage::Precision, train.height, train.width)
            .with("method", "mle")
            .with("neighbourhood", neighbourhood)
            .with("train", train_name)
            .with("n_train", train.len())
            .with("nnz", pattern.len())
            .with("tolerance", options.tolerance)
            .with("converged", fit.diagnostics.converged)
            .with("fitted_by", "gmrf evaluate (the reference of the comparison)");
        models.push(Model { name, precision: fit.precision, meta, trace: Some(Trace { rows: fit.trace }) });
    }
    Ok(())
}
