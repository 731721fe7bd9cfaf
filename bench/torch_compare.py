"""Trains the net of examples/compare_export.rs in PyTorch from expc's initial weights and
data, and checks that the first 20 losses agree within float tolerance.
Run `cargo run --release --example compare_export` first (bench/engine.sh does)."""
import json, os, subprocess, sys
import torch
import torch.nn as nn

path = "bench/out/compare.json"
if not os.path.exists(path):
    subprocess.run(["cargo", "run", "--release", "--example", "compare_export"], check=True)
else:
    subprocess.run(["target/release/examples/compare_export"], check=True)
d = json.load(open(path))
torch.set_num_threads(2)
model = nn.Sequential(
    nn.Conv2d(3, 4, 3, padding=1), nn.BatchNorm2d(4, eps=1e-5, momentum=0.1), nn.ReLU(), nn.MaxPool2d(2),
    nn.Conv2d(4, 6, 3, padding=1), nn.ReLU(), nn.AvgPool2d(2), nn.Flatten(), nn.Linear(24, 10))
tparams = list(model.parameters())
assert len(tparams) == len(d["params"]), (len(tparams), len(d["params"]))
groups = []
with torch.no_grad():
    for tp, ep in zip(tparams, d["params"]):
        assert list(tp.shape) == ep["shape"], (tp.shape, ep["shape"], ep["layer"], ep["name"])
        tp.copy_(torch.tensor(ep["data"], dtype=torch.float32).reshape(tp.shape))
        groups.append({"params": [tp], "weight_decay": d["weight_decay"] * ep["decay_mult"], "lr": d["lr"] * ep["lr_mult"]})
# Caffe's V = μV + lr(g + wd·w); W -= V equals torch's SGD with constant lr.
opt = torch.optim.SGD(groups, lr=d["lr"], momentum=d["momentum"])
lossf = nn.CrossEntropyLoss()
worst = 0.0
print(f"{'step':>4} {'expc':>12} {'torch':>12} {'rel diff':>10}")
for s, (x, y, le) in enumerate(zip(d["inputs"], d["labels"], d["losses"])):
    x = torch.tensor(x, dtype=torch.float32).reshape(d["batch"], 3, 8, 8)
    y = torch.tensor(y, dtype=torch.long)
    opt.zero_grad()
    loss = lossf(model(x), y)
    loss.backward()
    opt.step()
    lt = loss.item()
    rel = abs(lt - le) / max(abs(lt), 1e-6)
    worst = max(worst, rel)
    print(f"{s:>4} {le:>12.7f} {lt:>12.7f} {rel:>10.2e}")
ok = worst < 1e-4
print(f"max relative loss difference over {len(d['losses'])} steps: {worst:.2e} -> {'OK' if ok else 'MISMATCH'}")
sys.exit(0 if ok else 1)
