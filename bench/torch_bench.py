"""PyTorch counterpart of examples/bench_train.rs: same nets, batch sizes, SGD momentum
0.9 / lr 0.01, synthetic data, warm-up then median img/s over timed runs, peak RSS.
Prints one JSON line."""
import argparse, json, resource, time
import torch
import torch.nn as nn

def simple(bn):
    L = [nn.Conv2d(3, 6, 5)] + ([nn.BatchNorm2d(6)] if bn else []) + [nn.ReLU(), nn.MaxPool2d(2),
         nn.Conv2d(6, 16, 5)] + ([nn.BatchNorm2d(16)] if bn else []) + [nn.ReLU(), nn.MaxPool2d(2),
         nn.Flatten(), nn.Linear(400, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(), nn.Linear(84, 10)]
    return nn.Sequential(*L), (3, 32, 32)

def lenet(bn):
    L = [nn.Conv2d(1, 20, 5)] + ([nn.BatchNorm2d(20)] if bn else []) + [nn.MaxPool2d(2),
         nn.Conv2d(20, 50, 5)] + ([nn.BatchNorm2d(50)] if bn else []) + [nn.MaxPool2d(2),
         nn.Flatten(), nn.Linear(800, 500), nn.ReLU(), nn.Linear(500, 10)]
    return nn.Sequential(*L), (1, 28, 28)

def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--net", default="simple")
    ap.add_argument("--bn", action="store_true")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batch", type=int, default=0)
    ap.add_argument("--warmup", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--steps", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(a.threads)
    torch.manual_seed(0)
    model, shape = (lenet if a.net == "lenet" else simple)(a.bn)
    batch = a.batch or (64 if a.net == "lenet" else 256)
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    lossf = nn.CrossEntropyLoss()
    xs = [torch.rand(batch, *shape) * 2 - 1 for _ in range(4)]
    ys = [torch.randint(0, 10, (batch,)) for _ in range(4)]
    k = 0
    def step():
        nonlocal k
        opt.zero_grad(set_to_none=True)
        loss = lossf(model(xs[k % 4]), ys[k % 4])
        loss.backward()
        opt.step()
        k += 1
        return loss.item()
    for _ in range(a.warmup):
        loss = step()
    rates = []
    for _ in range(a.runs):
        t0 = time.perf_counter()
        for _ in range(a.steps):
            loss = step()
        rates.append(a.steps * batch / (time.perf_counter() - t0))
    med = sorted(rates)[len(rates) // 2]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0
    print(json.dumps({"impl": "torch", "net": a.net, "bn": a.bn, "threads": a.threads, "batch": batch,
                      "img_per_s": round(med, 1), "runs": [round(r, 1) for r in rates], "loss": loss,
                      "peak_rss_mib": round(rss, 1), "torch": torch.__version__}))

if __name__ == "__main__":
    main()
