#!/usr/bin/env bash
# Reproduces docs/results.md: trains every experiment of the homework and the Caffe references
# on the real data in ../shared/data (or $EXPC_SHARED_DATA), then regenerates the table and figures.
#
#   bench/reproduce.sh            # everything (about 45 minutes on 2 cores)
#   bench/reproduce.sh cifar      # only the five CIFAR-10 variants of the homework
#   ONLY="mnist/lenet" bench/reproduce.sh
#
# Needs: python3 with numpy and pillow for the one-time CIFAR conversion (pip install numpy pillow).
set -euo pipefail
cd "$(dirname "$0")/.."
DATA=${EXPC_SHARED_DATA:-../shared/data}
WORK=${EXPC_WORK:-bench/out}
mkdir -p "$WORK"
CIFAR="$WORK/cifar-10-batches-bin"
if [ ! -f "$CIFAR/test_batch.bin" ]; then
  echo "converting CIFAR-10 JPEGs to the binary layout in $CIFAR"
  "$DATA/cifar10-to-bin" "$CIFAR"
fi
cargo build --release --quiet
EXPC=target/release/expc
RUNS="$WORK/runs"
THREADS=${EXPC_THREADS:-$(nproc)}
set_all=(--quiet --threads "$THREADS" --out "$RUNS" --data cifar10="$CIFAR" --data mnist="$DATA/mnist")

# `bench/reproduce.sh torch`: the five homework variants with the native engine over 3 seeds
# beside the torch backend (1 seed, EXPC_PYTHON or python3 with torch), into
# docs/results-torch.md (included in docs/results.md). Long: ten more full CIFAR-10 trainings.
if [ "${1:-}" = torch ]; then
  : > "$WORK/runs-torch.txt"
  for e in cifar10/baseline cifar10/no_weight_decay cifar10/msra_fc cifar10/batchnorm cifar10/augment; do
    for seed in 1 2 3; do
      echo "== $e native seed $seed ($(date -u +%H:%M:%S))"
      out=$("$EXPC" run "experiments/$e.exp" "${set_all[@]}" --set "train.seed=$seed" | tee /dev/stderr | sed -n 's/^run folder: //p' | head -1)
      echo "$e native $out" >> "$WORK/runs-torch.txt"
    done
    echo "== $e torch ($(date -u +%H:%M:%S))"
    out=$("$EXPC" run "experiments/$e.exp" "${set_all[@]}" --backend torch --device "${TORCH_DEVICE:-cpu}" | tee /dev/stderr | sed -n 's/^run folder: //p' | head -1)
    echo "$e torch $out" >> "$WORK/runs-torch.txt"
  done
  python3 bench/torch_table.py "$WORK/runs-torch.txt" > docs/results-torch.md
  cat docs/results.head.md docs/results-table.md docs/results-torch.md docs/results.tail.md > docs/results.md
  echo "table: docs/results-torch.md, in docs/results.md"
  exit 0
fi

case "${1:-all}" in
  cifar) LIST="cifar10/baseline cifar10/no_weight_decay cifar10/msra_fc cifar10/batchnorm cifar10/augment" ;;
  *) LIST=${ONLY:-"cifar10/baseline cifar10/no_weight_decay cifar10/msra_fc cifar10/batchnorm cifar10/augment mnist/lenet cifar10/quick rnn/elman_mnist resnet/resnet_small"} ;;
esac

# runs.txt lists "<experiment> <run folder>"; a partial rerun (ONLY=…, or `cifar`) replaces
# only its own lines, so the table and figures always cover the newest run of everything.
touch "$WORK/runs.txt"
# The residual net's 5,000 iterations take about 19 minutes on 2 cores (5.1 GMAC per step at
# batch 128, measured 559 images/s): by default it runs 1,000 (RESNET_ITERS=5000 for all).
RESNET_ITERS=${RESNET_ITERS:-1000}
for e in $LIST; do
  echo "== $e ($(date -u +%H:%M:%S))"
  extra=()
  [ "$e" = resnet/resnet_small ] && extra=(--iterations "$RESNET_ITERS")
  out=$("$EXPC" run "experiments/$e.exp" "${set_all[@]}" "${extra[@]}" | tee /dev/stderr | sed -n 's/^run folder: //p' | head -1)
  grep -v "^$e " "$WORK/runs.txt" > "$WORK/runs.tmp" || true
  echo "$e $out" >> "$WORK/runs.tmp"
  mv "$WORK/runs.tmp" "$WORK/runs.txt"
done

# Figures 3–6 of the homework: each variant against the baseline.
mkdir -p docs/figures
dir_of() { awk -v e="$1" '$1 == e {print $2}' "$WORK/runs.txt"; }
base=$(dir_of cifar10/baseline)
if [ -n "$base" ]; then
  for v in no_weight_decay msra_fc batchnorm augment; do
    d=$(dir_of "cifar10/$v")
    [ -n "$d" ] && "$EXPC" compare "$base" "$d" --out "docs/figures/cifar10_baseline_vs_$v.png"
  done
  cp "$base/curves.png" docs/figures/cifar10_baseline_curves.png
  cp "$base/filters.png" docs/figures/cifar10_baseline_filters.png
fi
for e in mnist/lenet cifar10/quick rnn/elman_mnist resnet/resnet_small; do
  d=$(dir_of "$e")
  [ -n "$d" ] && cp "$d/curves.png" "docs/figures/$(echo "$e" | tr / _)_curves.png"
done
python3 bench/results_table.py "$WORK/runs.txt" > docs/results-table.md
# docs/results.md = the written analysis around the generated table.
torch_part=()
[ -f docs/results-torch.md ] && torch_part=(docs/results-torch.md)
cat docs/results.head.md docs/results-table.md "${torch_part[@]}" docs/results.tail.md > docs/results.md
echo "table: docs/results-table.md, in docs/results.md; figures: docs/figures/"
