#!/usr/bin/env bash
# Wall time of the homework's five CIFAR-10 variants at full length (what `bench/reproduce.sh cifar`
# trains), one after the other, without touching docs/: prints seconds per variant and the total.
# Usage: bench/homework_time.sh   (THREADS=2 by default; CIFAR-10 in bench/out/cifar10, which
# bench/run_path.sh converts once from ../shared/data)
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
DATA=bench/out/cifar10
[[ -f $DATA/test_batch.bin ]] || { echo "no CIFAR-10 in $DATA: run bench/run_path.sh once (it converts ../shared/data)" >&2; exit 1; }
cargo build --release --quiet
OUT=$(mktemp -d)
trap 'rm -rf "$OUT"' EXIT
start=$(date +%s)
for v in baseline no_weight_decay msra_fc batchnorm augment; do
  s=$(date +%s)
  target/release/expc run "experiments/cifar10/$v.exp" --quiet --threads "$THREADS" --out "$OUT" --data cifar10="$DATA" >"$OUT/$v.log" 2>&1 \
    || { echo "$v failed:" >&2; tail -5 "$OUT/$v.log" >&2; exit 1; }
  echo "$v $(($(date +%s) - s)) s"
done
echo "total $(($(date +%s) - start)) s"
