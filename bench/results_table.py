#!/usr/bin/env python3
"""Renders the results table of docs/results.md from run folders listed in runs.txt
(lines: `<experiment path> <run folder>`). Every number comes from the run's summary.json,
metrics.csv and run.json."""
import csv, json, os, platform, subprocess, sys

def cpu():
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"

rows = []
for line in open(sys.argv[1]):
    parts = line.split()
    if len(parts) != 2:
        continue
    name, d = parts
    s = json.load(open(os.path.join(d, "summary.json")))
    r = json.load(open(os.path.join(d, "run.json")))
    pct = lambda x: "-" if x is None else f"{100 * x:.2f}%"
    mib = lambda b: "-" if b is None else f"{b / 1048576:.1f} MiB"
    rows.append([
        f"`{name}`", str(s["iterations"]), pct(s["best_accuracy"]), str(s["best_iteration"]),
        pct(s["final_accuracy"]), f"{s['wall_s'] / 60:.1f} min", f"{s['img_per_s']:.0f}",
        mib(s.get("estimated_bytes")), mib(s.get("engine_bytes")), mib(s.get("peak_rss_bytes")),
        f"{100 * s.get('data_wait_fraction', 0):.1f}%", r["created"],
    ])

print(f"Machine: {os.cpu_count()} cores, {cpu()}; threads per run: {rows and json.load(open(os.path.join(open(sys.argv[1]).readline().split()[1], 'summary.json')))['threads']}.")
print()
head = ["experiment", "iterations", "best test acc", "at iter", "final test acc", "wall time", "img/s",
        "static estimate", "engine memory", "peak RSS", "waiting for data", "run started (UTC)"]
print("| " + " | ".join(head) + " |")
print("|" + "---|" * len(head))
for r in rows:
    print("| " + " | ".join(r) + " |")
