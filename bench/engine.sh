#!/usr/bin/env bash
# Side-by-side training throughput: expc engine vs PyTorch (CPU), see bench/README.md.
# Usage: bench/engine.sh [--quick]   (writes bench/out/results.jsonl and prints a table)
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=5; STEPS=10; WARM=5
if [[ "${1:-}" == "--quick" ]]; then RUNS=3; STEPS=4; WARM=2; fi
PY=bench/.venv/bin/python
if [[ ! -x $PY ]]; then
  python3 -m venv bench/.venv
  bench/.venv/bin/pip install -q torch numpy
fi
cargo build --release --example bench_train --example compare_export >/dev/null
BIN=target/release/examples/bench_train
mkdir -p bench/out
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg)  (timings are only comparable on an idle machine)"
OUT=bench/out/results.jsonl; : > "$OUT"
for net in simple lenet; do
  for bn in "" "--bn"; do
    for t in 1 2; do
      $BIN --net $net $bn --threads $t --runs $RUNS --steps $STEPS --warmup $WARM | tee -a "$OUT"
      $PY bench/torch_bench.py --net $net $bn --threads $t --runs $RUNS --steps $STEPS --warmup $WARM | tee -a "$OUT"
    done
  done
done
$PY - "$OUT" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
key = lambda r: (r["net"], r["bn"], r["threads"])
by = {}
for r in rows: by.setdefault(key(r), {})[r["impl"]] = r
print(f"{'net':8}{'bn':>4}{'thr':>5}{'expc img/s':>12}{'torch img/s':>13}{'ratio':>7}{'expc RSS':>10}{'torch RSS':>10}")
for k, v in by.items():
    e, t = v.get("expc"), v.get("torch")
    if e and t:
        print(f"{k[0]:8}{'y' if k[1] else 'n':>4}{k[2]:>5}{e['img_per_s']:>12.0f}{t['img_per_s']:>13.0f}{e['img_per_s']/t['img_per_s']:>7.2f}{e['peak_rss_mib']:>9.0f}M{t['peak_rss_mib']:>9.0f}M")
PY
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "--- loss agreement (bench/torch_compare.py) ---"
$PY bench/torch_compare.py
