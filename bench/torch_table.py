"""The native engine (3 seeds) beside the torch backend (1 seed): a Markdown section for docs/results.md.

Input: lines "<experiment> <native|torch> <run folder>" (bench/reproduce.sh torch).
"""

import json
import os
import statistics
import sys

runs = {}
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) == 3:
        experiment, backend, folder = parts
        with open(os.path.join(folder, "summary.json")) as f:
            summary = json.load(f)
        runs.setdefault(experiment, {}).setdefault(backend, []).append(summary)

pct = lambda x: f"{100 * x:.2f}%"
print("\n## The torch backend beside the native engine\n")
print("`bench/reproduce.sh torch`: best test accuracy of the native engine over seeds 1–3 (mean ± standard")
print("deviation) and of the torch backend (seed 1; its data order, crops and initial weights come from other")
print("random streams, see docs/backends.md).\n")
print("| experiment | native best acc (3 seeds) | torch best acc (1 seed) | native img/s | torch img/s |")
print("|---|---|---|---|---|")
for experiment, by in runs.items():
    native = [s["best_accuracy"] for s in by.get("native", []) if s.get("best_accuracy") is not None]
    torch = [s["best_accuracy"] for s in by.get("torch", []) if s.get("best_accuracy") is not None]
    spread = f" ± {100 * statistics.stdev(native):.2f}" if len(native) > 1 else ""
    cell_native = f"{pct(statistics.mean(native))}{spread}" if native else "-"
    cell_torch = pct(torch[0]) if torch else "-"
    ips = lambda b: f"{statistics.mean(s['img_per_s'] for s in by[b]):.0f}" if by.get(b) else "-"
    print(f"| `{experiment}` | {cell_native} | {cell_torch} | {ips('native')} | {ips('torch')} |")
