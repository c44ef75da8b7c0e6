//! `gmrf centre`: fit μ on the training table, centre it and every --apply table.

use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use gmrf_centring::{Centring, PixelNoise};
use gmrf_table::{Images, Meta, PendingFile, Stage, Transform};

use super::file_name;
use crate::args::{CentreArgs, CentreParams, NoiseKind, TransformKind};
use crate::config::resolve;
use crate::progress::{Stopwatch, bar, spinner};

pub fn run(args: CentreArgs) -> anyhow::Result<()> {
    let clock = Stopwatch::start("centre");
    let params = resolve(args.params, args.config.as_deref(), "centre")?;
    let centring = centring_from(&params)?;
    if args.apply.len() != args.apply_out.len() {
        bail!(
            "{} --apply table(s) but {} --apply-out file(s): give one output per table",
            args.apply.len(),
            args.apply_out.len()
        );
    }

    let mut outputs = vec![("--mean", args.mean.as_path()), ("--out", args.out.as_path())];
    outputs.extend(args.apply_out.iter().map(|p| ("--apply-out", p.as_path())));
    let mut inputs = vec![("--fit", args.fit.as_path())];
    inputs.extend(args.apply.iter().map(|p| ("--apply", p.as_path())));
    inputs.extend(args.config.iter().map(|p| ("--config", p.as_path())));
    gmrf_table::check_outputs(&outputs, &inputs)?;

    // Read and check every input before anything is written.
    let spin = spinner("reading tables");
    let (train, train_meta) = read_images(&args.fit)?;
    let all_rows = train.len();
    let train = match &params.fit_rows {
        None => train,
        Some(spec) => {
            let range = parse_range(spec)?;
            gmrf_centring::rows(&train, range.clone()).with_context(|| {
                format!(
                    "--fit-rows {spec}: {} holds {all_rows} rows, fewer than the range asks for",
                    args.fit.display()
                )
            })?
        }
    };
    let mut others = Vec::new();
    for (input, output) in args.apply.iter().zip(&args.apply_out) {
        let (images, _) = read_images(input)?;
        if (images.height, images.width) != (train.height, train.width) {
            bail!(
                "{}: images are {}x{}, but the training table {} has {}x{}",
                input.display(),
                images.height,
                images.width,
                args.fit.display(),
                train.height,
                train.width
            );
        }
        others.push((input.clone(), output.clone(), images));
    }
    spin.finish_and_clear();

    let mean = centring.fit_mean(&train).with_context(|| format!("{}", args.fit.display()))?;
    // Ties every centred table to this mean by content (`gmrf_table::check_centred_with_mean`).
    let mean_hash = mean.content_hash();
    let run_meta = |stage| {
        let meta = Meta::new(stage, train.height, train.width)
            .with("noise", centring.noise.describe())
            .with("seed", centring.seed)
            .with("scale", centring.scale)
            .with("fit", file_name(&args.fit))
            .with("n_fit", train.len())
            .with("ingest", train_meta.param("ingest").unwrap_or("unknown"))
            .with("mean_hash", &mean_hash);
        let meta = centring.transform.record(meta);
        match &params.fit_rows {
            Some(spec) => meta.with("fit_rows", spec).with("fit_rows_of", all_rows),
            None => meta,
        }
    };
    let mut pending: Vec<PendingFile> = vec![gmrf_table::write(&args.mean, &mean, &run_meta(Stage::Mean))?];

    let rows = train.len() + others.iter().map(|(_, _, t)| t.len()).sum::<usize>();
    let progress = bar(rows as u64, "centring");
    let mut centre_one = |input: &Path, output: &PathBuf, images: &Images| -> anyhow::Result<()> {
        let centred = centring
            .centre(images, &mean, &|n| progress.inc(n as u64))
            .with_context(|| format!("{}", input.display()))?;
        let meta =
            run_meta(Stage::Centred).with("input", file_name(input)).with("mean", file_name(&args.mean));
        pending.push(gmrf_table::write(output, &centred, &meta)?);
        Ok(())
    };
    centre_one(&args.fit, &args.out, &train)?;
    for (input, output, images) in &others {
        centre_one(input, output, images)?;
    }
    progress.finish_and_clear();

    let written = gmrf_table::commit_all(pending)?;
    let names: Vec<String> = written.iter().map(|p| p.display().to_string()).collect();
    clock.summary(&format!(
        "wrote {} ({rows} rows centred, noise {})",
        names.join(", "),
        centring.noise.describe()
    ));
    Ok(())
}

fn read_images(path: &Path) -> anyhow::Result<(Images, Meta)> {
    Ok(gmrf_table::read::<Images>(path)?)
}

fn centring_from(params: &CentreParams) -> anyhow::Result<Centring> {
    if let Some(std) = params.noise_std
        && !(std.is_finite() && std >= 0.0)
    {
        bail!("--noise-std {std:?}: must be a finite number ≥ 0");
    }
    let noise = match params.noise.unwrap_or(NoiseKind::Uniform) {
        NoiseKind::Uniform => PixelNoise::Uniform,
        NoiseKind::None => PixelNoise::None,
        NoiseKind::Gaussian => PixelNoise::Gaussian { std: params.noise_std.unwrap_or(0.01) },
    };
    if params.noise_std.is_some() && !matches!(noise, PixelNoise::Gaussian { .. }) {
        bail!("--noise-std only applies to --noise gaussian");
    }
    let transform = match params.transform.unwrap_or(TransformKind::None) {
        TransformKind::None => Transform::None,
        TransformKind::Logit => {
            Transform::logit(params.alpha.unwrap_or(1e-6)).map_err(|e| anyhow::anyhow!("--alpha: {e}"))?
        }
    };
    if params.alpha.is_some() && transform == Transform::None {
        bail!("--alpha only applies to --transform logit");
    }
    if transform != Transform::None && matches!(noise, PixelNoise::Gaussian { .. }) {
        bail!("--transform logit needs --noise uniform or none: Gaussian pixel noise can leave (0, 1)");
    }
    Ok(Centring { noise, seed: params.seed.unwrap_or(0), transform, ..Centring::default() })
}

/// `START..END` as a range of row indices.
fn parse_range(spec: &str) -> anyhow::Result<std::ops::Range<usize>> {
    let parsed =
        spec.split_once("..").and_then(|(a, b)| Some((a.trim().parse().ok()?, b.trim().parse().ok()?)));
    match parsed {
        Some((start, end)) if start < end => Ok(start..end),
        _ => bail!("--fit-rows {spec:?}: expected START..END with START < END, e.g. 0..50000"),
    }
}
