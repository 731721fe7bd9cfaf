#@ imports
import argparse
import json
import math
import os
import sys
import time

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F

from model import Net
from safetensors_io import load_tensors, save_tensors

#@ data_cifar10


def load_data(root):
    """CIFAR-10, binary version: data_batch_1..5.bin (train) and test_batch.bin (test)."""
    if os.path.isdir(os.path.join(root, "cifar-10-batches-bin")):
        root = os.path.join(root, "cifar-10-batches-bin")

    def read(names):
        raw = np.concatenate([np.fromfile(os.path.join(root, n), dtype=np.uint8) for n in names])
        records = raw.reshape(-1, 3073)
        return records[:, 1:].reshape(-1, 3, 32, 32), records[:, 0].astype(np.int64)

    train = read([f"data_batch_{i}.bin" for i in range(1, 6)])
    return train, read(["test_batch.bin"])

#@ data_mnist


def load_data(root):
    """MNIST idx files, raw or gzipped, under their standard names."""
    import gzip

    def read(stem, offset):
        for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
            path = os.path.join(root, name)
            if os.path.exists(path):
                opener = gzip.open if name.endswith(".gz") else open
                with opener(path, "rb") as f:
                    return np.frombuffer(f.read(), dtype=np.uint8)[offset:]
        raise FileNotFoundError(f"{stem} in {root}")

    def part(prefix):
        images = read(f"{prefix}-images-idx3-ubyte", 16).reshape(-1, 1, 28, 28)
        return images, read(f"{prefix}-labels-idx1-ubyte", 8).astype(np.int64)

    return part("train"), part("t10k")

#@ data_folder


def load_data(root):
    """One sub-folder per class of PNG/JPEG images ({{SHAPE}} each); root/train and root/test if present.

    Without them a seeded tenth of each class is the test set (expc's native split draws another tenth).
    """
    from PIL import Image

    c, h, w = {{SHAPE}}

    def read(folder, classes):
        images, labels = [], []
        for label, name in enumerate(classes):
            for file in sorted(os.listdir(os.path.join(folder, name))):
                if file.lower().endswith((".png", ".jpg", ".jpeg")):
                    image = Image.open(os.path.join(folder, name, file)).convert("L" if c == 1 else "RGB")
                    array = np.asarray(image, dtype=np.uint8).reshape(h, w, c)
                    images.append(array.transpose(2, 0, 1))
                    labels.append(label)
        return np.stack(images), np.array(labels, dtype=np.int64)

    if os.path.isdir(os.path.join(root, "train")) and os.path.isdir(os.path.join(root, "test")):
        classes = sorted(os.listdir(os.path.join(root, "train")))
        return read(os.path.join(root, "train"), classes), read(os.path.join(root, "test"), classes)
    classes = sorted(d for d in os.listdir(root) if os.path.isdir(os.path.join(root, d)))
    images, labels = read(root, classes)
    test = np.zeros(len(labels), dtype=bool)
    rng = np.random.default_rng(SEED)
    for k in range(len(classes)):
        members = np.flatnonzero(labels == k)
        test[rng.permutation(members)[: round(0.1 * len(members))]] = True
    return (images[~test], labels[~test]), (images[test], labels[test])

#@ data_synthetic


def load_data(root):
    """expc's synthetic data set, written by expc next to this file (its generator is expc's own)."""
    t = load_tensors(os.path.join(root, "synthetic.safetensors"))
    return (t["train_images"].numpy(), t["train_labels"].numpy().astype(np.int64)), (
        t["test_images"].numpy(),
        t["test_labels"].numpy().astype(np.int64),
    )

#@ preprocess_channels


def preprocess(images):
    """u8 pixels [N, C, H, W] -> float32: x * scale, then (x - mean[c]) / std[c]."""
    x = images.astype(np.float32) * np.float32(SCALE)
    return (x - MEAN[None, :, None, None]) / STD[None, :, None, None]

#@ preprocess_image


def preprocess(images):
    """u8 pixels [N, C, H, W] -> float32: x * scale minus the training set's mean image."""
    return images.astype(np.float32) * np.float32(SCALE) - MEAN_IMAGE

#@ augment


def augment(x, indices, epoch):
    """Training only: {{WHAT}}.

    Each sample's choice depends on (seed, epoch, sample index) only (expc's rule; its generator differs).
    """
    n, c, h, w = x.shape
    oh, ow = CROP
    padded = np.pad(x, ((0, 0), (0, 0), (PAD, PAD), (PAD, PAD)))
    out = np.empty((n, c, oh, ow), dtype=np.float32)
    for k, index in enumerate(indices):
        rng = np.random.default_rng([SEED, epoch, int(index)])
{{WINDOW}}        out[k] = sample[:, :, ::-1] if MIRROR and rng.random() < 0.5 else sample
{{CUTOUT}}    return out


def centre(x):
    """Test samples: the centre crop."""
    h, w = x.shape[2:]
    top, left = (h - CROP[0]) // 2, (w - CROP[1]) // 2
    return x[:, :, top : top + CROP[0], left : left + CROP[1]]

#@ resized_crop


def resized_window(rng, ph, pw):
    """torchvision's RandomResizedCrop on a ph x pw image: an area share in [RESIZED_CROP, 1] and a log-uniform
    aspect ratio in [3/4, 4/3] until the window fits (10 attempts), else the whole image, its ratio clamped."""
    for _ in range(10):
        target = ph * pw * rng.uniform(RESIZED_CROP, 1.0)
        ratio = math.exp(rng.uniform(math.log(3 / 4), math.log(4 / 3)))
        ww, wh = math.floor(math.sqrt(target * ratio) + 0.5), math.floor(math.sqrt(target / ratio) + 0.5)
        if 0 < ww <= pw and 0 < wh <= ph:
            return int(rng.integers(0, ph - wh + 1)), int(rng.integers(0, pw - ww + 1)), wh, ww
    wh, ww = ph, pw
    if pw / ph < 3 / 4:
        wh = min(max(math.floor(pw / (3 / 4) + 0.5), 1), ph)
    elif pw / ph > 4 / 3:
        ww = min(max(math.floor(ph * (4 / 3) + 0.5), 1), pw)
    return (ph - wh) // 2, (pw - ww) // 2, wh, ww


def resize(x, oh, ow):
    """Bilinear resampling of [C, H, W] to [C, oh, ow], half-pixel centres (align_corners=False)."""

    def taps(n_in, n_out):
        s = np.maximum((np.arange(n_out) + 0.5) * (n_in / n_out) - 0.5, 0.0)
        i0 = np.minimum(np.floor(s).astype(np.int64), n_in - 1)
        return i0, np.minimum(i0 + 1, n_in - 1), (s - i0).astype(np.float32)

    y0, y1, fy = taps(x.shape[1], oh)
    x0, x1, fx = taps(x.shape[2], ow)
    upper = (1 - fx) * x[:, y0][:, :, x0] + fx * x[:, y0][:, :, x1]
    lower = (1 - fx) * x[:, y1][:, :, x0] + fx * x[:, y1][:, :, x1]
    return ((1 - fy)[:, None] * upper + fy[:, None] * lower).astype(np.float32)

#@ cutout


def cut(sample, cy, cx):
    """Zeroes the CUTOUT rectangle of [C, H, W] around (cy, cx), clipped at the borders (in place)."""
    kh, kw = CUTOUT
    top, left = max(cy - kh // 2, 0), max(cx - kw // 2, 0)
    sample[:, top : cy - kh // 2 + kh, left : cx - kw // 2 + kw] = 0.0

#@ jitter


def jitter(images, indices, epoch):
    """Training only: colour jitter of the u8 pixels before normalisation (fractional levels, not rounded).

    Factors drawn from [1 - v, 1 + v] for (brightness, contrast, saturation) = JITTER (0: off), applied in that
    order; each sample's factors depend on (seed, epoch, sample index) only (expc's rule; its generator differs).
    """
    x = images.astype(np.float32)
    for k, index in enumerate(indices):
        rng = np.random.default_rng([SEED, epoch, int(index), 1])
        x[k] = jitter_sample(x[k], *[rng.uniform(1 - v, 1 + v) if v > 0 else 1.0 for v in JITTER])
    return x


def jitter_sample(x, brightness, contrast, saturation):
    """One [C, H, W] image of pixel levels: x * brightness, then a blend with its mean grey level (contrast),
    then with each pixel's grey 0.299 R + 0.587 G + 0.114 B (saturation), clamped to [0, 255] after each."""

    def blend(a, b, f):
        return np.clip(np.float32(f) * a + (np.float32(1) - np.float32(f)) * b, 0, 255).astype(np.float32)

    if brightness != 1:
        x = blend(x, np.float32(0), brightness)
    if contrast != 1:
        y = x.astype(np.float64)
        grey = (0.299 * y[0] + 0.587 * y[1] + 0.114 * y[2]) if len(x) == 3 else y
        x = blend(x, np.float32(grey.mean()), contrast)
    if saturation != 1 and len(x) == 3:
        grey = np.float32(0.299) * x[0] + np.float32(0.587) * x[1] + np.float32(0.114) * x[2]
        x = blend(x, grey[None], saturation)
    return x

#@ batches


def as_input(x):
    """[N, C, H, W] -> the model's input {{INPUT_SHAPE}}."""
{{SEQUENCE}}    return torch.from_numpy(np.ascontiguousarray(x)).reshape(len(x), *INPUT_SHAPE)


class Data:
    """Preprocessed batches; iteration k is batch k % steps of epoch k // steps."""

    def __init__(self, root):
        (self.train_images, self.train_labels), (self.test_images, self.test_labels) = load_data(root)
{{FIT_MEAN_IMAGE}}        self.steps_per_epoch = math.ceil(len(self.train_labels) / BATCH)

    def order(self, epoch):
{{ORDER}}
    def train_batch(self, iteration):
        """The global batch of an iteration: (inputs, labels, epoch)."""
        epoch, step = divmod(iteration, self.steps_per_epoch)
        if getattr(self, "_epoch", None) != epoch:
            self._epoch, self._order = epoch, self.order(epoch)
        indices = self._order[step * BATCH : (step + 1) * BATCH]
        x = preprocess({{JITTER_TRAIN}})
{{AUGMENT_TRAIN}}        return as_input(x), torch.from_numpy(self.train_labels[indices]), epoch

    def test_batches(self, limit):
        for k in range(math.ceil(len(self.test_labels) / TEST_BATCH)):
            if limit is not None and k >= limit:
                return
            s = slice(k * TEST_BATCH, (k + 1) * TEST_BATCH)
            x = preprocess(self.test_images[s])
{{AUGMENT_TEST}}            yield as_input(x), torch.from_numpy(self.test_labels[s])

#@ fillers


def fans(shape):
    """Caffe's fans: fan_in = count / shape[0], fan_out = count / shape[1] (count for 1-D)."""
    count = math.prod(shape)
    fan_in = count / shape[0]
    fan_out = count / shape[1] if len(shape) > 1 else count
    return {"fan_in": fan_in, "fan_out": fan_out, "average": (fan_in + fan_out) / 2}

#@ fill_constant


def constant(value):
    return lambda t, g: t.fill_(value)

#@ fill_uniform


def uniform(low, high):
    return lambda t, g: t.uniform_(low, high, generator=g)

#@ fill_gaussian


def gaussian(mean, std):
    return lambda t, g: t.normal_(mean, std, generator=g)

#@ fill_xavier


def xavier(norm):
    """Caffe's XavierFiller: uniform in ±sqrt(3 / n)."""

    def fill(t, g):
        scale = math.sqrt(3.0 / fans(t.shape)[norm])
        return t.uniform_(-scale, scale, generator=g)

    return fill

#@ fill_msra


def msra(norm):
    """Caffe's MSRAFiller: normal with std sqrt(2 / n)."""
    return lambda t, g: t.normal_(0.0, math.sqrt(2.0 / fans(t.shape)[norm]), generator=g)

#@ params_head


# name: (initialiser, lr_mult, decay_mult)
PARAMS = {
{{PARAMS}}}


@torch.no_grad()
def initialise(model, seed):
    g = torch.Generator().manual_seed(seed)
    state = dict(model.named_parameters())
    for name, (fill, _, _) in PARAMS.items():
        value = fill(torch.empty(state[name].shape), g)
        state[name].copy_(value)

#@ solver_base


class SolverBase:
    """The parameters with their lr and decay multipliers (PARAMS), and one history tensor per
    parameter (a second one for solvers with MOMENTS = 2)."""

    MOMENTS = 1

    def __init__(self, model):
        state = dict(model.named_parameters())
        self.params = [(name, state[name], lr_mult, decay_mult) for name, (_, lr_mult, decay_mult) in PARAMS.items()]
        self.history = {name: torch.zeros_like(p) for name, p, _, _ in self.params}
        if self.MOMENTS == 2:
            self.history2 = {name: torch.zeros_like(p) for name, p, _, _ in self.params}

#@ solver_sgd


class Solver(SolverBase):
    """Caffe's SGD: V <- momentum V + a (g + wd decay_mult W); W <- W - V, a = lr lr_mult."""

    @torch.no_grad()
    def step(self, lr, iteration):
        for name, w, lr_mult, decay_mult in self.params:
            g = w.grad + (WEIGHT_DECAY * decay_mult) * w
            v = self.history[name]
            v.mul_(MOMENTUM).add_(g, alpha=lr * lr_mult)
            w.sub_(v)

#@ solver_nesterov


class Solver(SolverBase):
    """Caffe's Nesterov: V' <- momentum V + a g; W <- W - ((1 + momentum) V' - momentum V)."""

    @torch.no_grad()
    def step(self, lr, iteration):
        for name, w, lr_mult, decay_mult in self.params:
            g = w.grad + (WEIGHT_DECAY * decay_mult) * w
            v = self.history[name]
            old = v.clone()
            v.mul_(MOMENTUM).add_(g, alpha=lr * lr_mult)
            w.sub_((1 + MOMENTUM) * v - MOMENTUM * old)

#@ solver_adam


class Solver(SolverBase):
    """Caffe's Adam: m, v moments; W <- W - a sqrt(1 - b2^t) / (1 - b1^t) m / (sqrt(v) + eps)."""

    MOMENTS = 2

    @torch.no_grad()
    def step(self, lr, iteration):
        t = iteration + 1
        correction = math.sqrt(1 - BETA2**t) / (1 - BETA1**t)
        for name, w, lr_mult, decay_mult in self.params:
            if DECOUPLED_DECAY:
                # AdamW: the decay shrinks the weights directly and stays out of the moments.
                w.sub_((lr * lr_mult * WEIGHT_DECAY * decay_mult) * w)
                g = w.grad
            else:
                g = w.grad + (WEIGHT_DECAY * decay_mult) * w
            m, v = self.history[name], self.history2[name]
            m.mul_(BETA1).add_(g, alpha=1 - BETA1)
            v.mul_(BETA2).addcmul_(g, g, value=1 - BETA2)
            w.sub_(lr * lr_mult * correction * m / (v.sqrt() + EPS))

#@ solver_adagrad


class Solver(SolverBase):
    """Caffe's AdaGrad: h <- h + g^2; W <- W - a g / (sqrt(h) + delta)."""

    @torch.no_grad()
    def step(self, lr, iteration):
        for name, w, lr_mult, decay_mult in self.params:
            g = w.grad + (WEIGHT_DECAY * decay_mult) * w
            h = self.history[name]
            h.addcmul_(g, g)
            w.sub_(lr * lr_mult * g / (h.sqrt() + DELTA))

#@ solver_rmsprop


class Solver(SolverBase):
    """Caffe's RMSProp: h <- r h + (1 - r) g^2; W <- W - a g / (sqrt(h) + delta)."""

    @torch.no_grad()
    def step(self, lr, iteration):
        for name, w, lr_mult, decay_mult in self.params:
            g = w.grad + (WEIGHT_DECAY * decay_mult) * w
            h = self.history[name]
            h.mul_(RMS_DECAY).addcmul_(g, g, value=1 - RMS_DECAY)
            w.sub_(lr * lr_mult * g / (h.sqrt() + DELTA))

#@ solver_adadelta


class Solver(SolverBase):
    """Caffe's AdaDelta: h <- m h + (1 - m) g^2; u = g sqrt((hu + d) / (h + d)); hu <- m hu + (1 - m) u^2; W <- W - a u."""

    MOMENTS = 2

    @torch.no_grad()
    def step(self, lr, iteration):
        for name, w, lr_mult, decay_mult in self.params:
            g = w.grad + (WEIGHT_DECAY * decay_mult) * w
            h, hu = self.history[name], self.history2[name]
            h.mul_(MOMENTUM).addcmul_(g, g, value=1 - MOMENTUM)
            u = g * ((hu + DELTA) / (h + DELTA)).sqrt()
            hu.mul_(MOMENTUM).addcmul_(u, u, value=1 - MOMENTUM)
            w.sub_(lr * lr_mult * u)

#@ policy_cosine


def cosine_rate(t, total, low, cycle, cycle_mult):
    """SGDR: low + (BASE_LR - low) (1 + cos(pi t / T)) / 2 within the current cycle of length T."""
    length, t = float(cycle if cycle is not None else max(total, 1)), float(t)
    while cycle is not None and cycle_mult >= 1 and t >= length:
        t, length = t - length, length * cycle_mult
    return low + (BASE_LR - low) * 0.5 * (1 + math.cos(math.pi * min(t, length) / length))

#@ policy_one_cycle


def one_cycle_rate(t, total, pct, div, final_div):
    """Cosine up from BASE_LR / div to BASE_LR over the first pct, then down to BASE_LR / (div final_div)."""
    total = float(max(total, 1))
    up = max(pct * total, 1.0)

    def cos(start, end, f):
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * min(max(f, 0.0), 1.0)))

    start = BASE_LR / div
    return cos(start, BASE_LR, t / up) if t < up else cos(BASE_LR, start / final_div, (t - up) / max(total - up, 1.0))

#@ loss


def loss_and_correct(logits, labels):
    """Softmax cross-entropy summed over samples (mean over steps of a sequence) and top-K hits."""
    if logits.dim() == 3:
        steps = logits.shape[1]
        per_step = F.cross_entropy(logits.flatten(0, 1), labels.repeat_interleave(steps), reduction="sum", label_smoothing=LABEL_SMOOTHING)
        loss, scores = per_step / steps, logits.sum(1)
    else:
        loss, scores = F.cross_entropy(logits, labels, reduction="sum", label_smoothing=LABEL_SMOOTHING), logits
    mine = scores.gather(1, labels[:, None])
    classes = torch.arange(scores.shape[1], device=scores.device)[None, :]
    above = (scores > mine) | ((scores == mine) & (classes < labels[:, None]))
    return loss, int((above.sum(1) < ACCURACY_TOP).sum())

#@ main


class Run:
    """The run folder: metrics.csv, checkpoints/ (expc's names), outcome.json. Rank 0 writes."""

    HEADER = "iteration,epoch,lr,train_loss,test_loss,test_accuracy,elapsed_s,img_per_s"

    def __init__(self, folder, rank):
        self.folder, self.writer = folder, rank == 0
        self.checkpoints = os.path.join(folder, "checkpoints")
        os.makedirs(self.checkpoints, exist_ok=True)

    def latest(self):
        """The newest complete checkpoint: (iteration, model path, state path) or None."""
        found = []
        for name in os.listdir(self.checkpoints):
            if name.startswith("ckpt-") and name.endswith(".state.safetensors"):
                it = int(name[5:-18])
                if os.path.exists(os.path.join(self.checkpoints, f"ckpt-{it:07d}.safetensors")):
                    found.append(it)
        if not found:
            return None
        it = max(found)
        stem = os.path.join(self.checkpoints, f"ckpt-{it:07d}")
        return it, stem + ".safetensors", stem + ".state.safetensors"

    def open_metrics(self, resume_at):
        path = os.path.join(self.folder, "metrics.csv")
        rows = []
        if resume_at is not None and os.path.exists(path):
            with open(path) as f:
                rows = [r for r in f.read().splitlines()[1:] if r and int(r.split(",")[0]) <= resume_at]
        if self.writer:
            self.metrics = open(path, "w")
            self.metrics.write("\n".join([self.HEADER] + rows) + "\n")
            self.metrics.flush()

    def row(self, it, epoch, lr, train_loss, test_loss, test_accuracy, elapsed, img_per_s):
        cell = lambda v: "" if v is None else repr(float(v))
        if self.writer:
            line = f"{it},{epoch:.6f},{float(lr)!r},{cell(train_loss)},{cell(test_loss)},{cell(test_accuracy)},{elapsed:.3f},{round(img_per_s)}"
            self.metrics.write(line + "\n")
            self.metrics.flush()

    def save(self, model, solver, progress):
        if not self.writer:
            return None
        stem = os.path.join(self.checkpoints, f"ckpt-{progress['iteration']:07d}")
        params = model_state(model)
        save_tensors(stem + ".safetensors", params, {"iteration": progress["iteration"]})
        state = {f"solver.history.{k}": v for k, v in solver.history.items()}
        state.update({f"solver.history2.{k}": v for k, v in getattr(solver, "history2", {}).items()})
        # Written last: its presence marks a complete checkpoint.
        save_tensors(stem + ".state.safetensors", state, {"progress": json.dumps(progress), "backend": "torch"})
        if progress["best_iteration"] == progress["iteration"]:
            save_tensors(os.path.join(self.checkpoints, "best.safetensors"), params)
        done = sorted(int(n[5:-18]) for n in os.listdir(self.checkpoints) if n.endswith(".state.safetensors"))
        for it in done[: max(0, len(done) - CHECKPOINT_KEEP)]:
            for suffix in (".state.safetensors", ".safetensors"):
                os.remove(os.path.join(self.checkpoints, f"ckpt-{it:07d}{suffix}"))
        return stem + ".safetensors"


def model_state(model):
    """The model's tensors under expc's checkpoint names (tensors of `share=` layers once, under
    the owner's name)."""
    shared = getattr(model, "SHARED", {})
    return {k: v for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked") and k not in shared}


def peak_rss_bytes():
    """Peak resident memory of this process (rank 0), or None where it cannot be read."""
    try:
        import resource

        kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return kib if sys.platform == "darwin" else kib * 1024
    except (ImportError, OSError):
        return None


def report(kind, **values):
    """A progress line for expc (which draws its progress bar from them)."""
    print("@expc " + json.dumps({"event": kind, **values}), flush=True)


def evaluate(model, data, device):
    model.eval()
    loss, correct, n = 0.0, 0, 0
    with torch.no_grad():
        for x, y in data.test_batches(EVAL_BATCHES):
            logits = model(x.to(device))
            l, c = loss_and_correct(logits, y.to(logits.device))
            loss, correct, n = loss + float(l), correct + c, n + len(y)
    model.train()
    return loss / n, correct / n


def train_step(net, model, solver, x, y, lr, it, world, global_n, args):
    """One Caffe step on this process's share of the global batch; returns the global mean loss."""
    for p in model.parameters():
        p.grad = None
    with torch.autocast(device_type=x.device.type, dtype=args.amp_dtype, enabled=args.amp_dtype is not None):
        logits = net(x)
    loss_sum, _ = loss_and_correct(logits.float(), y.to(logits.device))
    # Each process's loss is weighted so that the average DDP takes is the global batch mean.
    (loss_sum * (world / global_n)).backward()
    loss = loss_sum.detach() / global_n
    if world > 1:
        dist.all_reduce(loss)
    finite = bool(torch.isfinite(loss)) and all(bool(torch.isfinite(p.grad).all()) for p in model.parameters() if p.grad is not None)
    if finite and CLIP_GRADIENTS is not None:
        # Caffe's clip_gradients: scale the whole gradient to a global L2 norm of at most the bound.
        grads = [p.grad for p in model.parameters() if p.grad is not None]
        norm = math.sqrt(sum(float((g.double() ** 2).sum()) for g in grads))
        if norm > CLIP_GRADIENTS:
            for g in grads:
                g.mul_(CLIP_GRADIENTS / norm)
    if finite:
        solver.step(lr, it)
    return float(loss) if finite else float("nan")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--run-dir", help="the run folder (metrics.csv, checkpoints/, outcome.json)")
    parser.add_argument("--data-root", default=DATA_ROOT, help="where the data set is")
    parser.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    parser.add_argument("--placement", help="devices of the model's placements, comma-separated (model parallel)")
    parser.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --run-dir")
    parser.add_argument("--iterations", type=int, default=ITERATIONS)
    parser.add_argument("--threads", type=int, help="CPU threads per process")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model")
    parser.add_argument("--amp", choices=["bf16", "fp16"], help="autocast (CUDA only)")
    test = parser.add_argument_group("equivalence tests")
    test.add_argument("--init-from", help="start from these weights (an expc checkpoint)")
    test.add_argument("--batches-from", help="train on these batches (tensors inputs [S, B, ...], labels [S, B])")
    test.add_argument("--losses-out", help="with --batches-from: write the losses as JSON here")
    test.add_argument("--same-masks-as-expc", action="store_true", help="dropout masks of the native engine")
    args = parser.parse_args()

    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local_rank = int(os.environ.get("LOCAL_RANK", "0"))
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("error: cuda asked for, not available (torch.cuda.is_available() is False)")
    if args.amp and args.device != "cuda":
        sys.exit("error: --amp autocasts on CUDA only; use --device cuda")
    args.amp_dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}.get(args.amp)
    if BATCH % world:
        sys.exit(f"error: the batch ({BATCH}) does not divide over {world} processes")
    if args.placement:
        devices = args.placement.split(",")
    elif args.device == "cuda":
        devices = [f"cuda:{(local_rank * PLACEMENTS + k) % torch.cuda.device_count()}" for k in range(PLACEMENTS)]
    else:
        devices = ["cpu"] * PLACEMENTS
    if len(devices) != PLACEMENTS:
        sys.exit(f"error: --placement names {len(devices)} devices; the model has {PLACEMENTS} placements")
    if world > 1:
        dist.init_process_group("nccl" if args.device == "cuda" else "gloo")
    torch.manual_seed(SEED)
    model = {{NEW_MODEL}}
    if args.same_masks_as_expc and hasattr(model, "same_masks_as_expc"):
        model.same_masks_as_expc = (SEED, 0, 0)
    initialise(model, SEED)
    if args.init_from:
        from model import load_expc_checkpoint

        load_expc_checkpoint(model, args.init_from)
    solver = Solver(model)
    input_device = torch.device(devices[INPUT_DEVICE])
    net = model
    if world > 1:
        if args.device == "cuda":
            net = torch.nn.SyncBatchNorm.convert_sync_batchnorm(net)
        net = torch.nn.parallel.DistributedDataParallel(net, device_ids=[input_device] if PLACEMENTS == 1 and args.device == "cuda" else None)
    if args.compile:
        net = torch.compile(net)

    def local_share(x, y):
        """This process's slice of a global batch."""
        share = len(y) // world if len(y) % world == 0 else math.ceil(len(y) / world)
        s = slice(rank * share, (rank + 1) * share)
        return x[s].to(input_device), y[s], len(y), rank * share

    def policy(it):
        return {{LR_POLICY}}

    if args.batches_from:
        batches = load_tensors(args.batches_from)
        losses = []
        for it in range(batches["labels"].shape[0]):
            x, y, n, first = local_share(batches["inputs"][it], batches["labels"][it].long())
            if hasattr(model, "same_masks_as_expc") and args.same_masks_as_expc:
                model.same_masks_as_expc = (SEED, it, first)
            losses.append(train_step(net, model, solver, x, y, policy(it), it, world, n, args))
        if rank == 0 and args.losses_out:
            with open(args.losses_out, "w") as f:
                json.dump(losses, f)
        if world > 1:
            # every rank reaches the teardown before any closes its connections (gloo aborts a
            # process whose peer disconnects first)
            dist.barrier()
            dist.destroy_process_group()
        return

    if args.data_root is None:
        sys.exit("error: no data set folder: pass --data-root DIR (expc fills it in from expc.toml when it knows it)")
    data = Data(args.data_root)
    run = Run(args.run_dir, rank)
    progress = {"iteration": 0, "elapsed_s": 0.0, "best_accuracy": None, "best_iteration": None, "images": 0}
    latest = run.latest() if args.resume else None
    if latest:
        from model import load_expc_checkpoint

        load_expc_checkpoint(model, latest[1])
        state, metadata = load_tensors(latest[2], with_metadata=True)
        for name in solver.history:
            solver.history[name].copy_(state[f"solver.history.{name}"])
            if hasattr(solver, "history2"):
                solver.history2[name].copy_(state[f"solver.history2.{name}"])
        progress = json.loads(metadata["progress"])
    run.open_metrics(progress["iteration"] if latest else None)
    total = args.iterations
    abort_after = int(os.environ.get("EXPC_TEST_ABORT_AFTER", "0")) or None
    if rank == 0:
        report("started", total=total, start=progress["iteration"])
    t0, elapsed0 = time.time(), progress["elapsed_s"]
    loss_sum, loss_n, images_since, since, images_session = 0.0, 0, 0, time.time(), 0
    last_eval, final_train = None, None
    for it in range(progress["iteration"], total):
        x, y, epoch = data.train_batch(it)
        lr = policy(it)
        x, y, n, first = local_share(x, y)
{{STEP_SEED}}        loss = train_step(net, model, solver, x, y, lr, it, world, n, args)
        if not math.isfinite(loss):
            if rank == 0:
                report("diverged", iteration=it + 1, loss=loss)
            sys.exit(3)
        loss_sum, loss_n = loss_sum + loss, loss_n + 1
        images_since, images_session = images_since + n, images_session + n
        progress["images"] += n
        done = it + 1
        last = done == total
        log_now = done % LOG_EVERY == 0 or last
        eval_now = done % EVAL_EVERY == 0 or last
        if log_now or eval_now:
            rate = images_since / max(time.time() - since, 1e-9)
            train_loss = loss_sum / loss_n
            final_train = train_loss
            test_loss = accuracy = None
            if rank == 0:
                report("step", iteration=done, loss=train_loss, lr=lr, img_per_s=rate)
            if eval_now and rank == 0:
                test_loss, accuracy = evaluate(model, data, input_device)
                last_eval = (test_loss, accuracy)
                if progress["best_accuracy"] is None or accuracy > progress["best_accuracy"]:
                    progress["best_accuracy"], progress["best_iteration"] = accuracy, done
                report("evaluated", iteration=done, loss=test_loss, accuracy=accuracy)
            elapsed = elapsed0 + time.time() - t0
            run.row(done, done / data.steps_per_epoch, lr, train_loss, test_loss, accuracy, elapsed, rate)
            loss_sum, loss_n, images_since, since = 0.0, 0, 0, time.time()
        if done % CHECKPOINT_EVERY == 0 or last:
            progress["iteration"], progress["elapsed_s"] = done, elapsed0 + time.time() - t0
            path = run.save(model, solver, progress)
            if path:
                report("checkpoint", iteration=done, path=path)
        if abort_after == done and rank == 0:
            os.abort()
    wall = time.time() - t0
    if rank == 0:
        outcome = {
            "iterations": total,
            "best_accuracy": progress["best_accuracy"],
            "best_iteration": progress["best_iteration"],
            "final_accuracy": last_eval[1] if last_eval else None,
            "final_test_loss": last_eval[0] if last_eval else None,
            "final_train_loss": final_train,
            "wall_s": elapsed0 + wall,
            "img_per_s": images_session / max(wall, 1e-9),
            "data_wait_fraction": 0.0,
            "peak_rss_bytes": peak_rss_bytes(),
        }
        with open(os.path.join(args.run_dir, "outcome.json"), "w") as f:
            json.dump(outcome, f, indent=2)
    if world > 1:
        dist.barrier()
        dist.destroy_process_group()


if __name__ == "__main__":
    main()
