//! Options and pipeline files through the real binary: every invalid option value exits 1 with one
//! line naming the option (negative numbers reach the checks as values), before any input is read
//! and without leaving output; pipeline files with unknown sections or keys, keys outside any
//! section, a key of another method or another method are refused naming the file and the key;
//! flags layer over the file.

mod common;

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use common::{MnistFiles, fails, files_in, gmrf, ok};

/// `gmrf estimate METHOD --train TRAIN --out OUT FLAGS…`.
fn estimate(method: &str, train: &Path, out: &Path, flags: &[&str]) -> std::process::Output {
    let mut args: Vec<OsString> =
        vec!["estimate".into(), method.into(), "--train".into(), train.into(), "--out".into(), out.into()];
    args.extend(flags.iter().map(Into::into));
    gmrf(args)
}

/// Runs a refused estimate and returns its one-line message, having checked that the output
/// folder was not created.
fn refused(method: &str, train: &Path, flags: &[&str]) -> String {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let stderr = fails(estimate(method, train, &out, flags));
    assert!(!out.exists(), "{method} {flags:?} left {:?}", files_in(&out));
    assert!(files_in(dir.path()).is_empty(), "{:?}", files_in(dir.path()));
    stderr
}

/// A training table that does not exist: an option refused with it was checked before any input
/// was read.
fn nowhere() -> PathBuf {
    PathBuf::from("/nonexistent/train-centred.parquet")
}

#[test]
fn invalid_option_values_exit_1_naming_the_option_before_reading_any_input() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("sm-gd", &["--learning-rate", "NaN"], "--learning-rate NaN: must be a finite number > 0"),
        ("sm-gd", &["--learning-rate", "inf"], "--learning-rate inf: must be a finite number > 0"),
        ("sm-gd", &["--learning-rate", "0"], "--learning-rate 0.0: must be a finite number > 0"),
        ("sm-gd", &["--learning-rate", "-0.1"], "--learning-rate -0.1: must be a finite number > 0"),
        ("sm-gd", &["--steps", "0"], "--steps 0: must be at least 1"),
        ("nce", &["--learning-rate", "-0.1"], "--learning-rate -0.1: must be a finite number > 0"),
        ("cnce", &["--learning-rate", "-1e-3"], "--learning-rate -0.001: must be a finite number > 0"),
        ("mle", &["--tolerance", "NaN"], "--tolerance NaN: must be a finite number > 0"),
        ("mle", &["--tolerance", "-1e-6"], "--tolerance -1e-6: must be a finite number > 0"),
        ("nce", &["--tolerance", "-1"], "--tolerance -1.0: must be a finite number ≥ 0"),
        ("cnce", &["--tolerance", "NaN"], "--tolerance NaN: must be a finite number ≥ 0"),
        (
            "sm",
            &["--t-min", "1e300"],
            "--t-min 1e300: must not exceed the barrier path's first weight, 1000000.0",
        ),
        ("sm", &["--t-min", "-1"], "--t-min -1.0: must be a finite number > 0"),
        ("sm", &["--patience", "0"], "--patience 0: must be at least 1"),
        ("sm", &["--barrier-t", "-1e-3"], "--barrier-t -0.001: must be a finite number > 0"),
        ("sm", &["--validation-fraction", "1.5"], "--validation-fraction 1.5: must lie in [0, 1)"),
        ("sm", &["--validation-fraction", "-0.1"], "--validation-fraction -0.1: must lie in [0, 1)"),
        ("nce", &["--nu", "0"], "--nu 0.0: must be a finite number > 0"),
        ("nce", &["--nu", "-1"], "--nu -1.0: must be a finite number > 0"),
        ("nce", &["--nu", "NaN"], "--nu NaN: must be a finite number > 0"),
        ("cnce", &["--kappa", "0"], "--kappa 0: must be at least 1"),
        ("cnce", &["--sigma", "-1"], "--sigma -1.0: must be a finite number > 0"),
        ("cnce", &["--sigma", "0"], "--sigma 0.0: must be a finite number > 0"),
        ("cnce", &["--barrier-t", "-1"], "--barrier-t -1.0: must be a finite number ≥ 0"),
    ];
    for (method, flags, expected) in cases {
        let stderr = refused(method, &nowhere(), flags);
        assert!(stderr.starts_with(&format!("error: {expected}")), "{method} {flags:?}: {stderr}");
    }
}

#[test]
fn values_of_the_wrong_type_or_name_exit_1_with_one_line_naming_the_flag() {
    let cases: &[(&str, &[&str], &str)] = &[
        ("cnce", &["--kappa", "4e9"], "'--kappa <K>'"),
        ("cnce", &["--kappa", "-1"], "'--kappa <K>'"),
        ("nce", &["--batch-size", "-1"], "'--batch-size <B>'"),
        ("nce", &["--noise", "bogus"], "possible values: full, diagonal, isotropic, original"),
        ("nce", &["--optimiser", "sgd"], "possible values: gd, rmsprop, adam"),
        ("sm-gd", &["--gradient", "upper"], "possible values: symmetrised, original"),
        ("sm", &["--neighbourhood", "5"], "'--neighbourhood <4|8|rR>'"),
        ("sm", &["--seed", "-1"], "'--seed <SEED>'"),
        // A flag of another method is not one of this method's.
        ("sm", &["--nu", "2"], "unexpected argument '--nu'"),
        ("mle", &["--learning-rate", "0.1"], "unexpected argument '--learning-rate'"),
        // Only nce and cnce read a held-out table.
        ("sm", &["--test", "test-centred.parquet"], "unexpected argument '--test'"),
    ];
    for (method, flags, expected) in cases {
        let stderr = refused(method, &nowhere(), flags);
        assert!(stderr.contains(expected), "{method} {flags:?}: {stderr}");
    }
}

#[test]
fn a_method_is_required_and_its_help_shows_only_its_options_with_library_defaults() {
    // Without a method the flags belong to no subcommand.
    let stderr = fails(gmrf(["estimate", "--train", "t.parquet", "--out", "o"]));
    assert!(stderr.contains("unexpected argument '--train'"), "{stderr}");

    // The help text with its line wrapping undone.
    let help_of = |method: &str| {
        let help = String::from_utf8(ok(gmrf(["estimate", method, "--help"])).stdout).unwrap();
        help.split_whitespace().collect::<Vec<_>>().join(" ")
    };
    let help = help_of("sm-gd");
    assert!(help.contains("--learning-rate") && help.contains("--gradient"), "{help}");
    assert!(!help.contains("--nu") && !help.contains("--t-min") && !help.contains("--kappa"), "{help}");
    // SmGdOptions::default(): η = 1e-3, 500 steps, the symmetrised gradient.
    assert!(help.contains("[default: 0.001]") && help.contains("[default: 500]"), "{help}");
    assert!(help.contains("[default: symmetrised]") && help.contains("[default: 4]"), "{help}");

    let help = help_of("nce");
    // ContrastiveOptions::default(): η = 0.1, 1000 steps.
    assert!(
        help.contains("--nu") && help.contains("[default: 0.1]") && help.contains("[default: 1000]"),
        "{help}"
    );
    assert!(!help.contains("--kappa") && !help.contains("--gradient"), "{help}");
}

/// Writes a pipeline file holding `text` into `dir`.
fn pipeline(dir: &Path, text: &str) -> PathBuf {
    let path = dir.join("pipeline.toml");
    std::fs::write(&path, text).unwrap();
    path
}

#[test]
fn pipeline_files_with_unknown_sections_or_keys_are_refused_naming_the_file_and_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cases: &[(&str, &str, &str)] = &[
        ("sm", "[estimat]\nmethod = \"sm\"\n", "unknown section [estimat]"),
        ("sm", "[bogus]\nx = 1\n", "unknown section [bogus]"),
        ("sm", "seed = 1\n[estimate]\nmethod = \"sm\"\n", "`seed` is outside any section"),
        (
            "sm",
            "[estimate]\nmethod = \"sm\"\nnu = 2.0\n",
            "[estimate]: `nu` is an option of `nce`, not of `sm`",
        ),
        ("mle", "[estimate]\nsteps = 10\n", "[estimate]: `steps` is an option of `sm-gd`, not of `mle`"),
        ("sm", "[estimate]\nmethod = \"sm\"\nt_mim = 1e-3\n", "[estimate]: unknown key `t_mim`"),
        (
            "sm",
            "[estimate]\nmethod = \"nce\"\n",
            "[estimate]: method = \"nce\", but the command is `gmrf estimate sm`",
        ),
        (
            "sm",
            "[estimate]\nneighbourhood = \"5\"\n",
            "[estimate]: neighbourhood = \"5\": `5`: unknown neighbourhood",
        ),
        (
            "sm-gd",
            "[estimate]\nsteps = \"x\"\n",
            "[estimate]: steps = \"x\": invalid type: string \"x\", expected u32",
        ),
        (
            "sm-gd",
            "[estimate]\nlearning_rate = -0.5\n",
            "error: --learning-rate -0.5: must be a finite number > 0",
        ),
        ("sm", "[estimate\n", "not valid TOML at line 1, column"),
    ];
    for (method, text, expected) in cases {
        let path = pipeline(dir.path(), text);
        let stderr = refused(method, &nowhere(), &["--config", path.to_str().unwrap()]);
        if !expected.starts_with("error: ") {
            assert!(stderr.starts_with(&format!("error: {}", path.display())), "{text:?}: {stderr}");
        }
        assert!(stderr.contains(expected), "{text:?}: {stderr}");
    }
    // The same checks for every stage's section: here `centre`'s.
    let path = pipeline(dir.path(), "[centre]\nsed = 1\n");
    let stderr = fails(gmrf([
        "centre",
        "--config",
        path.to_str().unwrap(),
        "--fit",
        "/nonexistent/train.parquet",
        "--mean",
        "m.parquet",
        "--out",
        "o.parquet",
    ]));
    assert!(stderr.contains("[centre]: unknown field `sed`"), "{stderr}");
}

#[test]
fn flags_layer_over_the_pipeline_file_and_sizes_beyond_memory_are_refused_with_their_size() {
    let dir = tempfile::tempdir().unwrap();
    MnistFiles::fixture().prepare(dir.path(), None, &[]);
    let train = dir.path().join("train-centred.parquet");
    let steps_taken = |out: &Path| {
        let (trace, meta) = gmrf_table::read::<gmrf_table::Trace>(&out.join("trace.parquet")).unwrap();
        (
            trace.rows.len(),
            meta.param("gradient").unwrap().to_string(),
            meta.param("learning_rate").unwrap().to_string(),
        )
    };
    let config = pipeline(
        dir.path(),
        "[estimate]\nmethod = \"sm-gd\"\nsteps = 7\nlearning_rate = 5e-4\ngradient = \"original\"\n",
    );
    let config = config.to_str().unwrap();
    let from_file = dir.path().join("from-file");
    ok(estimate("sm-gd", &train, &from_file, &["--config", config]));
    // The metadata spells the gradient as the flag does.
    assert_eq!(steps_taken(&from_file), (7, "original".into(), "0.0005".into()));
    let overridden = dir.path().join("overridden");
    ok(estimate(
        "sm-gd",
        &train,
        &overridden,
        &["--config", config, "--steps", "3", "--gradient", "symmetrised"],
    ));
    assert_eq!(steps_taken(&overridden), (3, "symmetrised".into(), "0.0005".into()));

    // ν = 1e6 noise images per training image, κ = 4e9 copies: refused with what they would take.
    let stderr = refused("nce", &train, &["--nu", "1e6"]);
    assert!(
        stderr.contains("--nu 1000000.0: ") && stderr.contains("noise images of 784 pixels would take "),
        "{stderr}"
    );
    assert!(stderr.contains("TiB, more than the "), "{stderr}");
    let stderr = refused("cnce", &train, &["--kappa", "4000000000"]);
    assert!(
        stderr.contains(
            "--kappa 4000000000: 2000 images of 784 pixels with 4000000000 noisy copies each would take 22.3 PiB"
        ),
        "{stderr}"
    );
}

#[test]
fn data_errors_name_the_training_table_and_option_errors_the_option() {
    let dir = tempfile::tempdir().unwrap();
    // Without dequantisation MNIST's border pixels never vary: every method refuses, naming the
    // table rather than leaving the user to guess which input "pixel 0" is in.
    MnistFiles::fixture().prepare(dir.path(), None, &["--noise", "none"]);
    let train = dir.path().join("train-centred.parquet");
    for method in ["sm", "mle", "nce"] {
        let message = refused(method, &train, &[]);
        assert!(
            message.contains(&format!("{}: pixel 0 has variance 0", train.display())),
            "{method}: {message}"
        );
    }
    // A bad --noise-std names the option, not the training images.
    let images = dir.path().join("train.parquet");
    let message = fails(gmrf([
        "centre".as_ref(),
        "--fit".as_ref(),
        images.as_os_str(),
        "--mean".as_ref(),
        dir.path().join("m.parquet").as_os_str(),
        "--out".as_ref(),
        dir.path().join("c.parquet").as_os_str(),
        "--noise".as_ref(),
        "gaussian".as_ref(),
        "--noise-std".as_ref(),
        "-1".as_ref(),
    ] as [&std::ffi::OsStr; 11]));
    assert!(message.contains("--noise-std -1.0: must be a finite number ≥ 0"), "{message}");
}
