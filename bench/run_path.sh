#!/usr/bin/env bash
# The path users run: `expc run` (the native engine) beside `expc run --backend torch` (the same
# checked graph and recipe lowered to PyTorch: same net, initialisers, solver, schedule, data
# pipeline, evaluations), on real data, one configuration after the other in one invocation.
#
# Usage: bench/run_path.sh [--quick]      (THREADS=1 for one thread, ONLY=NAME for one net,
#        EXPC_SIMD=avx2 to run the engine's AVX2 kernels on an AVX-512 machine, with PyTorch capped
#        to AVX2 too: ONEDNN_MAX_CPU_ISA=AVX2, ATEN_CPU_CAPABILITY=avx2)
# Writes bench/out/run_path.jsonl and prints a table; the README's speed table is this output.
# Data: MNIST from ../shared/data/mnist (else the 5,000 digits in data/mnist-small); CIFAR-10 from
# ../shared/data/cifar10-jpg.tar.gz, converted once into bench/out/cifar10 (skipped when absent).
set -euo pipefail
cd "$(dirname "$0")/.."
THREADS=${THREADS:-2}
SCALE=1
if [[ "${1:-}" == "--quick" ]]; then SCALE=4; fi
PY=${EXPC_PYTHON:-/root/.cache/expc/venv/bin/python}
if ! "$PY" -c 'import torch, numpy, PIL' >/dev/null 2>&1; then
  echo "needs a Python with torch, numpy and pillow: run .ci/run once, or set EXPC_PYTHON" >&2
  exit 1
fi
cargo build --release --quiet
BIN=target/release/expc
OUT=bench/out
mkdir -p "$OUT"
MNIST=data/mnist-small
[[ -d ../shared/data/mnist ]] && MNIST=../shared/data/mnist
CIFAR=""
if [[ -f ../shared/data/cifar10-jpg.tar.gz ]]; then
  if [[ ! -f $OUT/cifar10/test_batch.bin ]]; then
    echo "converting CIFAR-10 once into $OUT/cifar10 ..."
    PATH="$(dirname "$PY"):$PATH" ../shared/data/cifar10-to-bin "$OUT/cifar10" >/dev/null
  fi
  CIFAR=$OUT/cifar10
fi
# EXPC_SIMD=avx2 emulates an AVX2-only machine for both sides: PyTorch's oneDNN and ATen
# kernels are capped the same way, so the ratio compares like with like.
if [[ ${EXPC_SIMD:-} == avx2 ]]; then
  export ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2
fi
isa=$(grep -m1 -o -w 'avx512f' /proc/cpuinfo || true)
[[ -z $isa ]] && isa=$(grep -m1 -o -w 'avx2' /proc/cpuinfo || echo "none")
echo "machine: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs), $(nproc) cores; widest SIMD: $isa; threads: $THREADS; EXPC_SIMD=${EXPC_SIMD:-unset}"
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  (timings are only comparable on an idle machine)"
RESULTS=$OUT/run_path.jsonl
: > "$RESULTS"
# name | spec | iterations (full protocol) | dataset | --set for the shortened run
CONFIGS=(
  "simple|experiments/cifar10/baseline.exp|200|cifar10|"
  "simple+bn|experiments/cifar10/batchnorm.exp|200|cifar10|"
  "lenet|experiments/mnist/lenet.exp|400|mnist|"
  "cifar10_quick|experiments/cifar10/quick.exp|100|cifar10|"
  "resnet_small|experiments/resnet/resnet_small.exp|40|cifar10|"
  "vgg|experiments/cifar10/vgg.exp|40|cifar10|train.policy=cosine warmup=4"
)
for c in "${CONFIGS[@]}"; do
  IFS='|' read -r name spec iters data set <<<"$c"
  if [[ -n ${ONLY:-} && $name != "$ONLY" ]]; then continue; fi
  iters=$((iters / SCALE))
  if [[ $data == cifar10 && -z $CIFAR ]]; then
    echo "$name: skipped (no CIFAR-10 in ../shared/data)"
    continue
  fi
  root=$MNIST
  [[ $data == cifar10 ]] && root=$CIFAR
  for backend in native torch; do
    extra=()
    [[ $backend == torch ]] && extra=(--backend torch)
    # A warm-up longer than the shortened run is refused: the run keeps the policy, shorter.
    [[ -n $set ]] && extra+=(--set "$set")
    log=$OUT/run_path-$name-$backend.log
    start=$(date +%s.%N)
    # The whole command, as a user runs it: checks, data loading, training, the final evaluation.
    EXPC_PYTHON=$PY "$BIN" run "$spec" --iterations "$iters" --threads "$THREADS" --quiet --data "$data=$root" \
      --out "$OUT/runs" "${extra[@]}" >"$log" 2>&1 || { echo "$name ($backend) failed: see $log"; continue; }
    end=$(date +%s.%N)
    dir=$(sed -n 's/^run folder: //p' "$log" | head -1)
    "$PY" - "$dir/summary.json" "$name" "$backend" "$iters" "$start" "$end" "$THREADS" "$isa" >>"$RESULTS" <<'PY'
import json, sys
s = json.load(open(sys.argv[1]))
spec = json.load(open(sys.argv[1].replace("summary.json", "spec.json")))
name, backend, iters, start, end, threads, isa = sys.argv[2:]
# The kernels that ran, as the engine reports it (PyTorch's own dispatch is not reported).
isa = s.get("simd", isa)
batch = spec["data"]["batch"]
print(json.dumps({
    "net": name, "backend": backend, "iterations": int(iters), "batch": batch, "threads": int(threads), "isa": isa,
    "train_img_per_s": s["img_per_s"], "end_to_end_s": float(end) - float(start),
    "end_to_end_img_per_s": int(iters) * batch / (float(end) - float(start)),
    "peak_rss_mib": (s.get("peak_rss_bytes") or 0) / 2**20,
}))
PY
  done
done
"$PY" - "$RESULTS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["net"], {})[r["backend"]] = r
print()
print("| net | iterations × batch | expc kernels | expc img/s (training) | PyTorch img/s (training) | ratio | expc end to end | PyTorch end to end | ratio | expc peak RSS |")
print("|---|---|---|---|---|---|---|---|---|---|")
for net, v in by.items():
    e, t = v.get("native"), v.get("torch")
    if not (e and t):
        continue
    print(f"| {net} | {e['iterations']} × {e['batch']} | {e['isa']} | {e['train_img_per_s']:.0f} | {t['train_img_per_s']:.0f} | {e['train_img_per_s'] / t['train_img_per_s']:.2f} "
          f"| {e['end_to_end_s']:.1f} s | {t['end_to_end_s']:.1f} s | {t['end_to_end_s'] / e['end_to_end_s']:.2f} | {e['peak_rss_mib']:.0f} MiB |")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
