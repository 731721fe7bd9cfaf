//! [`Network`]: a validated plan with its parameters and all execution buffers.
//!
//! Execution (CPU backend): the batch is split into one contiguous slice per worker
//! (worker w gets `n/W` samples, the first `n mod W` workers one more). Each worker has
//! its own activations and a thread-local gradient accumulator; accumulators are summed
//! in worker order, so results depend only on (plan, seed, thread count).
//! * Without training-mode batch norm, each worker runs forward + backward over
//!   micro-batches of `micro_batch` samples (activations stay cache-resident).
//! * With batch norm in training mode, workers hold their whole slice and advance layer
//!   by layer in lock step; at a batch-norm layer per-worker partial sums are reduced
//!   (fixed order) into whole-batch statistics before normalising, and likewise in backward.
//!
//! All buffers are allocated in [`Network::with_options`]; a step allocates nothing.

use rayon::prelude::*;

use super::error::EngineError;
use super::init;
use super::schedule::{schedule, Kernel, ParamInfo, Schedule};
use super::worker::{BnStats, Ctx, Worker, WorkerSizes};
use crate::kernels::{batchnorm, Float};
use crate::lower::{Plan, Producer};

/// A batch's inputs as the engine receives them.
#[derive(Clone, Copy)]
pub enum Inputs<'a> {
    /// The samples' values one after another (the network's input length each).
    Values(&'a [f32]),
    /// Written on demand: `write(first + k, out)` fills `out` (one sample's values) with sample
    /// `k` of the pass. Each worker writes the samples it computes, into its own buffer, just
    /// before computing them; `write` must give the same values whenever it is called.
    Written { first: usize, write: &'a (dyn Fn(usize, &mut [f32]) + Sync) },
}

impl<'a> Inputs<'a> {
    /// Samples `start..end` (of `in_len` values each) as inputs of their own.
    pub fn range(self, start: usize, end: usize, in_len: usize) -> Inputs<'a> {
        match self {
            Inputs::Values(x) => Inputs::Values(&x[(start * in_len).min(x.len())..(end * in_len).min(x.len())]),
            Inputs::Written { first, write } => Inputs::Written { first: first + start, write },
        }
    }

    /// Checks that values for `n` samples of `in_len` each are there (always true of written inputs).
    pub fn check_len(&self, n: usize, in_len: usize) -> Result<(), EngineError> {
        match self {
            Inputs::Values(x) if x.len() != n * in_len => Err(EngineError::Input(format!("inputs have {} values, expected {n} × {in_len}", x.len()))),
            _ => Ok(()),
        }
    }
}

impl<'a> From<&'a [f32]> for Inputs<'a> {
    fn from(x: &'a [f32]) -> Self {
        Inputs::Values(x)
    }
}

impl<'a> From<&'a Vec<f32>> for Inputs<'a> {
    fn from(x: &'a Vec<f32>) -> Self {
        Inputs::Values(x)
    }
}

impl<'a, const N: usize> From<&'a [f32; N]> for Inputs<'a> {
    fn from(x: &'a [f32; N]) -> Self {
        Inputs::Values(x)
    }
}

/// Where a network runs. CPU is the only implementation; a CUDA backend would add a
/// variant and its own executor behind the same [`Network`] API.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// Rayon thread pool with `threads` workers (≥ 1).
    Cpu { threads: usize },
}

impl Backend {
    pub fn name(&self) -> &'static str {
        match self {
            Backend::Cpu { .. } => "cpu",
        }
    }
}

/// Construction options for a [`Network`].
#[derive(Clone, Debug)]
pub struct NetOptions {
    pub backend: Backend,
    /// Largest training batch (buffers are sized for it); evaluation passes may be larger and
    /// run in chunks.
    pub max_batch: usize,
    /// Samples per micro-batch when no batch norm forces whole-slice execution;
    /// 0 = automatic: ≥ 256/(Ho·Wo) of the smallest conv output, clamped to 2..=8 and
    /// to ~1.5 MiB of per-micro-batch buffers.
    pub micro_batch: usize,
}

impl Default for NetOptions {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
        NetOptions { backend: Backend::Cpu { threads }, max_batch: 256, micro_batch: 0 }
    }
}

/// Result of a forward (and possibly backward) pass over one batch.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PassStats {
    /// Mean loss over the batch.
    pub loss: f64,
    /// Number of samples whose top-1 prediction equals the label.
    pub correct: usize,
    pub batch: usize,
}

/// Memory held by a network (and, via the trainer, its optimizer), in bytes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryReport {
    pub params: usize,
    /// Reduced gradient plus one accumulator per worker.
    pub grads: usize,
    pub optimizer_state: usize,
    /// Per-worker activations, their gradients, and saved tensors (argmax, masks, x̂, gates).
    pub activations: usize,
    /// im2col columns, scratch and recurrent workspaces.
    pub workspace: usize,
}

impl MemoryReport {
    pub fn total(&self) -> usize {
        self.params + self.grads + self.optimizer_state + self.activations + self.workspace
    }
}

/// Multiply-accumulate counts of the work the engine performs for one layer at a given
/// batch size (`backward_data` is 0 when the engine skips the input gradient, e.g. for a
/// layer fed by the data).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LayerMacs {
    pub layer: String,
    pub forward: u64,
    pub backward_data: u64,
    pub backward_weight: u64,
}

pub struct Network<T: Float = f32> {
    pub(crate) schedule: Schedule,
    pub(crate) params: Vec<T>,
    pub(crate) grad: Vec<T>,
    pub(crate) workers: Vec<Worker<T>>,
    pool: Option<rayon::ThreadPool>,
    /// Running (mean, var) per layer (empty for non-BN layers).
    running: Vec<(Vec<f64>, Vec<f64>)>,
    bn: Vec<BnStats>,
    /// Scratch for whole-batch BN reductions (max channels), reused every step.
    bn_tmp: (Vec<f64>, Vec<f64>),
    opts: NetOptions,
    lockstep: bool,
    /// Samples per chunk when a worker walks a whole slice (batch-norm nets).
    chunk: usize,
    drop_key: u64,
    seed: u64,
    /// Set by [`Network::predict`] for one evaluation pass.
    collect_scores: bool,
}

/// Automatic micro-batch size: long enough that every convolution's batched weight-gradient
/// reduction covers ≥ 256 output positions (`mb ≥ 256 / (Ho·Wo)`), at least 2 and at most
/// 8, and reduced while one micro-batch's activations, gradients and kept columns exceed
/// 1.5 MiB (half a typical L2).
pub(crate) fn auto_micro_batch(c: &Schedule) -> usize {
    let mut mb = 2usize;
    let mut per_sample = 0usize;
    for l in &c.layers {
        per_sample += 2 * l.out_len * 4;
        if let Kernel::Conv { g, implicit, .. } = &l.kernel {
            let hw = g.ho * g.wo;
            mb = mb.max(256usize.div_ceil(hw.max(1)));
            per_sample += implicit.as_ref().map_or(g.col_len(), |im| im.padded_len(g) + im.wide_len(g)) * 4;
        }
    }
    let mut mb = mb.min(8);
    while mb > 2 && mb * per_sample > 3 << 19 {
        mb -= 1;
    }
    mb
}

/// Samples a worker holds at once (`cap`), its share of the largest training batch, and the
/// micro-batch. Batch-norm nets hold their whole share (whole-batch statistics, lock-step).
pub(super) fn worker_caps(schedule: &Schedule, opts: &NetOptions, threads: usize) -> (usize, usize, usize) {
    let per_worker = opts.max_batch.div_ceil(threads);
    let mb = if opts.micro_batch == 0 { auto_micro_batch(schedule) } else { opts.micro_batch };
    let cap = if schedule.has_bn { per_worker } else { mb.min(per_worker) };
    (cap, per_worker, mb)
}

fn par_workers<T: Float, F>(pool: &Option<rayon::ThreadPool>, workers: &mut [Worker<T>], f: F)
where
    F: Fn(usize, &mut Worker<T>) + Sync + Send,
{
    match pool {
        Some(p) if workers.len() > 1 => p.install(|| workers.par_iter_mut().enumerate().for_each(|(i, w)| f(i, w))),
        _ => workers.iter_mut().enumerate().for_each(|(i, w)| f(i, w)),
    }
}

impl<T: Float> Network<T> {
    /// Validates `plan` and allocates everything with default options.
    pub fn new(plan: &Plan, seed: u64) -> Result<Self, EngineError> {
        Self::with_options(plan, seed, NetOptions::default())
    }

    pub fn with_options(plan: &Plan, seed: u64, opts: NetOptions) -> Result<Self, EngineError> {
        let schedule = schedule(plan)?;
        let Backend::Cpu { threads } = opts.backend;
        if threads == 0 || opts.max_batch == 0 || threads > 1024 || opts.max_batch > 1 << 24 {
            return Err(EngineError::InvalidPlan("threads must be in 1..=1024 and max_batch in 1..=2^24".into()));
        }
        let lockstep = schedule.has_bn;
        let (cap, per_worker, mb) = worker_caps(&schedule, &opts, threads);
        let mut params = Vec::new();
        params.try_reserve_exact(schedule.n_params).map_err(|_| EngineError::InvalidPlan("cannot allocate parameters".into()))?;
        params.resize(schedule.n_params, T::ZERO);
        let mut tmp = vec![];
        for (i, p) in schedule.params.iter().enumerate() {
            tmp.resize(p.len, 0.0f32);
            init::fill(&p.init, &p.shape, seed, i as u64, &mut tmp);
            for (d, s) in params[p.offset..p.offset + p.len].iter_mut().zip(&tmp) {
                *d = T::from_f32(*s);
            }
        }
        let workers = (0..threads).map(|_| Worker::new(&schedule, cap, per_worker, mb)).collect::<Result<Vec<_>, _>>()?;
        let pool = if threads > 1 {
            Some(rayon::ThreadPoolBuilder::new().num_threads(threads).build().map_err(|e| EngineError::InvalidPlan(format!("cannot start thread pool: {e}")))?)
        } else {
            None
        };
        let running = schedule
            .layers
            .iter()
            .map(|l| match l.kernel {
                Kernel::BatchNorm { c, .. } => (vec![0.0; c], vec![1.0; c]),
                _ => (vec![], vec![]),
            })
            .collect();
        let bn = schedule
            .layers
            .iter()
            .map(|l| match l.kernel {
                Kernel::BatchNorm { c, .. } => BnStats { mean: vec![0.0; c], invstd: vec![1.0; c] },
                _ => BnStats::default(),
            })
            .collect();
        let max_c = schedule.layers.iter().map(|l| if let Kernel::BatchNorm { c, .. } = l.kernel { c } else { 0 }).max().unwrap_or(0);
        Ok(Network {
            bn_tmp: (vec![0.0; max_c], vec![0.0; max_c]),
            grad: vec![T::ZERO; schedule.n_params],
            schedule,
            params,
            workers,
            pool,
            running,
            bn,
            opts,
            lockstep,
            chunk: mb,
            drop_key: 0,
            seed,
            collect_scores: false,
        })
    }

    pub fn options(&self) -> &NetOptions {
        &self.opts
    }
    /// Samples each worker processes per pass (micro-batch, or whole slice with batch norm).
    pub fn micro_batch(&self) -> usize {
        self.workers.first().map_or(0, |w| w.cap)
    }
    pub fn threads(&self) -> usize {
        self.workers.len()
    }
    /// Per-sample input length.
    pub fn input_len(&self) -> usize {
        self.schedule.in_len
    }
    /// Number of classes of the loss layer.
    pub fn classes(&self) -> usize {
        self.schedule.classes
    }
    /// Parameter tensors in flat-vector order.
    pub fn param_info(&self) -> &[ParamInfo] {
        &self.schedule.params
    }
    /// All parameters, flat (see [`Network::param_info`] for offsets).
    pub fn params(&self) -> &[T] {
        &self.params
    }
    pub fn params_mut(&mut self) -> &mut [T] {
        &mut self.params
    }
    /// Gradient of the mean batch loss from the last training pass.
    pub fn grads(&self) -> &[T] {
        &self.grad
    }
    /// Running (mean, var) of batch-norm layer `layer`, `None` for other layers.
    pub fn running_stats(&self, layer: usize) -> Option<(&[f64], &[f64])> {
        self.running.get(layer).filter(|r| !r.0.is_empty()).map(|r| (&r.0[..], &r.1[..]))
    }
    /// Sets the step number that seeds dropout masks (the trainer calls this per step).
    pub fn set_step(&mut self, step: u64) {
        self.drop_key = crate::kernels::dropout::splitmix64(self.seed ^ crate::kernels::dropout::splitmix64(step));
    }

    /// `train`: a training pass, at most `max_batch` samples; evaluation passes of any size run
    /// in chunks of the samples a worker holds.
    fn check(&self, inputs: &Inputs, labels: &[u32], train: bool) -> Result<usize, EngineError> {
        let n = labels.len();
        let limit = if train { self.opts.max_batch } else { 1 << 24 };
        if n == 0 || n > limit {
            return Err(EngineError::Input(format!("batch size {n} not in 1..={limit}")));
        }
        inputs.check_len(n, self.schedule.in_len)?;
        if let Some(l) = labels.iter().find(|&&l| l as usize >= self.schedule.classes) {
            return Err(EngineError::Input(format!("label {l} out of range for {} classes", self.schedule.classes)));
        }
        Ok(n)
    }

    /// Training pass: forward in training mode (batch statistics, dropout), backward, and
    /// gradient reduction into [`Network::grads`]. Updates batch-norm running statistics.
    pub fn forward_backward(&mut self, inputs: &[f32], labels: &[u32]) -> Result<PassStats, EngineError> {
        self.pass(Inputs::Values(inputs), labels, true, true)
    }

    /// Forward only. `train` selects batch statistics / dropout (and updates running
    /// statistics) versus running statistics / identity dropout.
    pub fn forward(&mut self, inputs: &[f32], labels: &[u32], train: bool) -> Result<PassStats, EngineError> {
        self.pass(Inputs::Values(inputs), labels, train, false)
    }

    /// Evaluation-mode class scores of each sample, `[n, classes]` (the loss's logits, summed over
    /// the steps of a sequence); `labels` only feed the loss of the same pass.
    pub fn predict(&mut self, inputs: &[f32], labels: &[u32]) -> Result<(PassStats, Vec<f32>), EngineError> {
        self.predict_inputs(Inputs::Values(inputs), labels)
    }

    pub(super) fn predict_inputs(&mut self, inputs: Inputs, labels: &[u32]) -> Result<(PassStats, Vec<f32>), EngineError> {
        self.collect_scores = true;
        let stats = self.pass(inputs, labels, false, false);
        self.collect_scores = false;
        let stats = stats?;
        let scores = self.workers.iter_mut().flat_map(|w| std::mem::take(&mut w.scores)).collect();
        Ok((stats, scores))
    }

    /// One pass over a batch: training (`train`: batch statistics, dropout) or evaluation mode,
    /// with or without backward; the public passes and the trainer's steps call it.
    pub(super) fn pass(&mut self, inputs: Inputs, labels: &[u32], train: bool, backward: bool) -> Result<PassStats, EngineError> {
        let n = self.check(&inputs, labels, train)?;
        let nw = self.workers.len();
        let (base, rem) = (n / nw, n % nw);
        let slice = |w: usize| (w * base + w.min(rem), base + usize::from(w < rem));
        let scale = 1.0 / n as f64;
        let in_len = self.schedule.in_len;
        if !train {
            for (l, layer) in self.schedule.layers.iter().enumerate() {
                if let Kernel::BatchNorm { eps, .. } = layer.kernel {
                    let (rm, rv) = &self.running[l];
                    self.bn[l].mean.copy_from_slice(rm);
                    for (o, v) in self.bn[l].invstd.iter_mut().zip(rv) {
                        *o = 1.0 / (v + eps).sqrt();
                    }
                }
            }
        }
        if self.lockstep && train {
            self.run_lockstep(&inputs, labels, n, scale, backward, &slice);
        } else {
            let ctx = Ctx { layers: &self.schedule.layers, params: &self.params, train, drop_key: self.drop_key, bn: &self.bn, labels, scale };
            let nl = self.schedule.layers.len();
            let collect = self.collect_scores;
            // Batch-norm nets hold a whole training slice (`cap`), but outside lock-step a pass
            // needs no whole-slice statistics: it walks the slice in cache-sized chunks.
            let chunk = self.chunk;
            par_workers(&self.pool, &mut self.workers, |w, wk| {
                let (start, cnt) = slice(w);
                wk.loss = 0.0;
                wk.correct = 0;
                if backward {
                    wk.grad.iter_mut().for_each(|g| *g = T::ZERO);
                }
                wk.slice_start = start;
                let mut done = 0;
                while done < cnt {
                    let m = wk.cap.min(chunk).min(cnt - done);
                    wk.load(&inputs, in_len, start + done, m);
                    for l in 0..nl {
                        wk.fwd(l, &ctx);
                    }
                    if collect {
                        wk.collect_scores(&ctx);
                    }
                    if backward {
                        for l in (0..nl).rev() {
                            if ctx.layers[l].requires || l == nl - 1 {
                                wk.bwd(l, &ctx);
                            }
                        }
                    }
                    done += m;
                }
                if backward {
                    wk.flush_linear(&ctx, cnt);
                }
            });
        }
        if backward {
            self.reduce_grads();
        }
        let loss: f64 = self.workers.iter().map(|w| w.loss).sum::<f64>() / n as f64;
        let correct = self.workers.iter().map(|w| w.correct).sum();
        Ok(PassStats { loss, correct, batch: n })
    }

    fn run_lockstep(&mut self, inputs: &Inputs, labels: &[u32], n: usize, scale: f64, backward: bool, slice: &(dyn Fn(usize) -> (usize, usize) + Sync)) {
        let in_len = self.schedule.in_len;
        let nl = self.schedule.layers.len();
        par_workers(&self.pool, &mut self.workers, |w, wk| {
            let (start, cnt) = slice(w);
            wk.load(inputs, in_len, start, cnt);
            wk.slice_start = start;
            wk.loss = 0.0;
            wk.correct = 0;
            if backward {
                wk.grad.iter_mut().for_each(|g| *g = T::ZERO);
            }
        });
        macro_rules! ctx {
            () => {
                Ctx { layers: &self.schedule.layers, params: &self.params, train: true, drop_key: self.drop_key, bn: &self.bn, labels, scale }
            };
        }
        let chunk = self.chunk;
        let is_bn = |l: usize| matches!(self.schedule.layers[l].kernel, Kernel::BatchNorm { .. });
        let segment_end = |l: usize| (l..nl).find(|&e| is_bn(e)).unwrap_or(nl);
        // Each run of non-BN layers goes chunk by chunk; the batch norms on either side of it do
        // their per-sample work in the same chunk loop while the chunk is in cache: the one
        // before normalises the chunk first, the one after merges the chunk's moments into its
        // statistics (backward: the one after writes the chunk's input gradient first, the one
        // before adds up the chunk's gradient sums). Only the reduction over workers and the
        // statistics stay between the loops. Runs of samples in order give the bits of whole slices.
        let mut normalize_in_chunks: Option<usize> = None;
        let mut moments_done = false;
        let mut l = 0;
        while l < nl {
            if !is_bn(l) {
                let e = segment_end(l);
                let moments_of = (e < nl).then_some(e);
                let before = normalize_in_chunks.take();
                let ctx = ctx!();
                par_workers(&self.pool, &mut self.workers, |w, wk| {
                    let (start, cnt) = slice(w);
                    wk.bn_reset();
                    let mut o = 0;
                    while o < cnt {
                        let m = chunk.min(cnt - o);
                        (wk.off, wk.n, wk.first) = (o, m, start + o);
                        if let Some(b) = before {
                            wk.bn_normalize(b, &ctx);
                        }
                        for k in l..e {
                            wk.fwd(k, &ctx);
                        }
                        if let Some(b) = moments_of {
                            wk.bn_moments(b, &ctx);
                        }
                        o += m;
                    }
                    (wk.off, wk.n, wk.first) = (0, cnt, start);
                });
                moments_done = moments_of.is_some();
                l = e;
                continue;
            }
            if let Kernel::BatchNorm { c, sp, eps, momentum, .. } = self.schedule.layers[l].kernel {
                let m = (n * sp) as f64;
                if !std::mem::take(&mut moments_done) {
                    let ctx = ctx!();
                    par_workers(&self.pool, &mut self.workers, |_, wk| {
                        wk.bn_reset();
                        wk.bn_moments(l, &ctx)
                    });
                }
                let (rm, rv) = &mut self.running[l];
                let unbias = if m > 1.0 { m / (m - 1.0) } else { 1.0 };
                for ch in 0..c {
                    let mut all = batchnorm::Moments::default();
                    for wk in &self.workers {
                        all.merge(wk.bn_moments[ch]);
                    }
                    let var = all.variance();
                    rm[ch] = (1.0 - momentum) * rm[ch] + momentum * all.mean;
                    rv[ch] = (1.0 - momentum) * rv[ch] + momentum * var * unbias;
                    self.bn[l].mean[ch] = all.mean;
                    self.bn[l].invstd[ch] = 1.0 / (var + eps).sqrt();
                }
                if l + 1 < nl && !is_bn(l + 1) {
                    normalize_in_chunks = Some(l);
                } else {
                    let ctx = ctx!();
                    par_workers(&self.pool, &mut self.workers, |_, wk| wk.bn_normalize(l, &ctx));
                }
            }
            l += 1;
        }
        if !backward {
            return;
        }
        let bn_needs_backward = |l: usize| is_bn(l) && self.schedule.layers[l].requires;
        // a batch norm whose input gradient the next run of non-BN layers writes chunk by chunk
        // (with the whole-batch means of dy and dy·x̂ in `bn_tmp`)
        let mut dx_in_chunks: Option<usize> = None;
        let mut sums_done = false;
        let mut e = nl;
        while e > 0 {
            if !is_bn(e - 1) {
                // run of non-BN layers [s, e), backward chunk by chunk
                let s = (0..e).rev().find(|&k| is_bn(k)).map_or(0, |k| k + 1);
                let sums_of = (s > 0 && bn_needs_backward(s - 1)).then(|| s - 1);
                let after = dx_in_chunks.take();
                let (mdy, mdyx) = (&self.bn_tmp.0, &self.bn_tmp.1);
                let ctx = ctx!();
                par_workers(&self.pool, &mut self.workers, |w, wk| {
                    let (start, cnt) = slice(w);
                    wk.bn_reset();
                    let mut o = 0;
                    while o < cnt {
                        let m = chunk.min(cnt - o);
                        (wk.off, wk.n, wk.first) = (o, m, start + o);
                        if let Some(b) = after {
                            wk.bn_dx(b, &ctx, mdy, mdyx);
                        }
                        for k in (s..e).rev() {
                            if ctx.layers[k].requires || k == nl - 1 {
                                wk.bwd(k, &ctx);
                            }
                        }
                        if let Some(b) = sums_of {
                            wk.bn_grad_sums(b, &ctx);
                        }
                        o += m;
                    }
                    (wk.off, wk.n, wk.first) = (0, cnt, start);
                });
                sums_done = sums_of.is_some();
                e = s;
                continue;
            }
            let l = e - 1;
            e -= 1;
            let layer = &self.schedule.layers[l];
            if !layer.requires {
                sums_done = false;
                continue;
            }
            if let Kernel::BatchNorm { c, sp, affine, .. } = layer.kernel {
                let m = (n * sp) as f64;
                if !std::mem::take(&mut sums_done) {
                    let ctx = ctx!();
                    par_workers(&self.pool, &mut self.workers, |_, wk| {
                        wk.bn_reset();
                        wk.bn_grad_sums(l, &ctx)
                    });
                }
                let (mut sdy, mut sdyx) = std::mem::take(&mut self.bn_tmp);
                sdy[..c].iter_mut().for_each(|v| *v = 0.0);
                sdyx[..c].iter_mut().for_each(|v| *v = 0.0);
                for wk in &self.workers {
                    for ch in 0..c {
                        sdy[ch] += wk.bn_a[ch];
                        sdyx[ch] += wk.bn_b[ch];
                    }
                }
                if affine {
                    let (go, _) = layer.param_ranges[0];
                    let (bo, _) = layer.param_ranges[1];
                    let g0 = &mut self.workers[0].grad;
                    for ch in 0..c {
                        g0[go + ch] += T::from_f64(sdyx[ch]);
                        g0[bo + ch] += T::from_f64(sdy[ch]);
                    }
                }
                sdy.iter_mut().for_each(|v| *v /= m);
                sdyx.iter_mut().for_each(|v| *v /= m);
                self.bn_tmp = (sdy, sdyx);
                if l > 0 && !is_bn(l - 1) {
                    dx_in_chunks = Some(l);
                } else {
                    let ctx = ctx!();
                    let (a, b) = (&self.bn_tmp.0, &self.bn_tmp.1);
                    par_workers(&self.pool, &mut self.workers, |_, wk| wk.bn_dx(l, &ctx, a, b));
                }
            }
        }
        let ctx = ctx!();
        par_workers(&self.pool, &mut self.workers, |w, wk| wk.flush_linear(&ctx, slice(w).1));
    }

    /// `grad = Σ_w worker_w.grad`, summed in worker order (deterministic).
    fn reduce_grads(&mut self) {
        let workers = &self.workers;
        let chunk = 4096;
        let body = |(ci, g): (usize, &mut [T])| {
            let o = ci * chunk;
            let len = g.len();
            g.copy_from_slice(&workers[0].grad[o..o + len]);
            for wk in &workers[1..] {
                for (a, b) in g.iter_mut().zip(&wk.grad[o..o + len]) {
                    *a += *b;
                }
            }
        };
        match &self.pool {
            Some(p) if self.grad.len() > 4 * chunk => p.install(|| self.grad.par_chunks_mut(chunk).enumerate().for_each(body)),
            _ => self.grad.chunks_mut(chunk).enumerate().for_each(body),
        }
    }

    /// What [`Network::with_options`] would allocate for `plan`, computed without allocating:
    /// equal to [`Network::memory_bytes`] of the built network (tested).
    pub fn memory_estimate(plan: &Plan, opts: &NetOptions) -> Result<MemoryReport, EngineError> {
        let schedule = schedule(plan)?;
        let Backend::Cpu { threads } = opts.backend;
        let threads = threads.max(1);
        let (cap, per_worker, mb) = worker_caps(&schedule, opts, threads);
        let s = std::mem::size_of::<T>();
        let (a, w) = WorkerSizes::of(&schedule, cap, per_worker, mb).bytes(s);
        let bn: usize = schedule.layers.iter().map(|l| if let Kernel::BatchNorm { c, .. } = l.kernel { 4 * c * 8 } else { 0 }).sum();
        Ok(MemoryReport {
            params: schedule.n_params * s + bn,
            grads: schedule.n_params * s * (1 + threads),
            optimizer_state: 0,
            activations: a * threads,
            workspace: w * threads,
        })
    }

    /// Memory held by this network (optimizer state is 0 here; see the trainer).
    pub fn memory_bytes(&self) -> MemoryReport {
        let s = std::mem::size_of::<T>();
        let (mut act, mut ws) = (0, 0);
        for w in &self.workers {
            let (a, b) = w.bytes();
            act += a;
            ws += b;
        }
        let bn: usize = self.running.iter().map(|r| (r.0.len() + r.1.len()) * 8).sum::<usize>()
            + self.bn.iter().map(|b| (b.mean.len() + b.invstd.len()) * 8).sum::<usize>();
        MemoryReport {
            params: self.params.len() * s + bn,
            grads: self.grad.len() * s * (1 + self.workers.len()),
            optimizer_state: 0,
            activations: act,
            workspace: ws,
        }
    }

    /// Per-layer MAC counts of the engine's GEMM-class work at batch size `batch`.
    pub fn macs(&self, batch: usize) -> Vec<LayerMacs> {
        let n = batch as u64;
        self.schedule
            .layers
            .iter()
            .map(|l| {
                let (f, w) = match &l.kernel {
                    Kernel::Conv { g, .. } => (n * g.macs_per_sample(), n * g.macs_per_sample()),
                    Kernel::Linear { rows, fin, fout, .. } => {
                        let m = n * (*rows * *fin * *fout) as u64;
                        (m, m)
                    }
                    // step 0 has no recurrent product (h₋₁ = 0)
                    Kernel::Rnn { t, f, h } => {
                        let m = n * (*t * *f * *h + (*t - 1) * *h * *h) as u64;
                        (m, m)
                    }
                    Kernel::Lstm { t, f, h } => {
                        let m = n * (*t * 4 * *f * *h + (*t - 1) * 4 * *h * *h) as u64;
                        (m, m)
                    }
                    _ => (0, 0),
                };
                // recurrent layers always back-propagate through time (h → h) even when
                // the input gradient is skipped; that part is counted in backward_data.
                let d = if l.dx_needed.first().copied().unwrap_or(false) {
                    match &l.kernel {
                        Kernel::Conv { .. } | Kernel::Linear { .. } => f,
                        Kernel::Rnn { t, f: ff, h } => n * (*t * *ff * *h + (*t - 1) * *h * *h) as u64,
                        Kernel::Lstm { t, f: ff, h } => n * (*t * 4 * *ff * *h + (*t - 1) * 4 * *h * *h) as u64,
                        _ => 0,
                    }
                } else {
                    match &l.kernel {
                        Kernel::Rnn { t, h, .. } => n * ((*t - 1) * *h * *h) as u64,
                        Kernel::Lstm { t, h, .. } => n * ((*t - 1) * 4 * *h * *h) as u64,
                        _ => 0,
                    }
                };
                let has_params = !l.params.is_empty();
                LayerMacs { layer: l.name.clone(), forward: f, backward_data: d, backward_weight: if has_params { w } else { 0 } }
            })
            .collect()
    }

    /// Copies parameter tensor `id` (see [`Network::param_info`]) out as f32.
    pub fn param_f32(&self, id: usize) -> Option<Vec<f32>> {
        let p = self.schedule.params.get(id)?;
        Some(self.params[p.offset..p.offset + p.len].iter().map(|v| v.to_f32()).collect())
    }

    /// Overwrites parameter tensor `id` from f32 values.
    pub fn set_param_f32(&mut self, id: usize, values: &[f32]) -> Result<(), EngineError> {
        let p = self.schedule.params.get(id).ok_or_else(|| EngineError::Input(format!("no parameter #{id}")))?;
        if values.len() != p.len {
            return Err(EngineError::Input(format!("parameter #{id} has {} values, got {}", p.len, values.len())));
        }
        for (d, s) in self.params[p.offset..p.offset + p.len].iter_mut().zip(values) {
            *d = T::from_f32(*s);
        }
        Ok(())
    }

    /// Layers that take the data directly (useful to callers checking routing).
    pub fn data_consumers(&self) -> Vec<String> {
        self.schedule.layers.iter().filter(|l| l.inputs.contains(&Producer::Data)).map(|l| l.name.clone()).collect()
    }
}

/// Inspection and restoration used by training runs (checkpoints, divergence reports).
impl<T: Float> Network<T> {
    /// The first layer, in forward order, whose parameters, running statistics or last computed
    /// outputs hold a NaN or an infinity.
    pub fn first_nonfinite(&self) -> Option<String> {
        let bad = |v: &[T]| v.iter().any(|x| !x.to_f64().is_finite());
        for (l, layer) in self.schedule.layers.iter().enumerate() {
            let bad_param = layer.param_ranges.iter().any(|&(o, n)| bad(&self.params[o..o + n]));
            let bad_out = self.workers.iter().any(|w| w.out.get(l).is_some_and(|o| bad(&o[..(w.n * layer.out_len).min(o.len())])));
            let bad_running = self.running.get(l).is_some_and(|(m, v)| m.iter().chain(v).any(|x| !x.is_finite()));
            if bad_param || bad_out || bad_running {
                return Some(layer.name.clone());
            }
        }
        None
    }

    /// Whether every reduced parameter gradient is finite.
    pub fn grads_finite(&self) -> bool {
        crate::kernels::all_finite(&self.grad)
    }

    /// The first layer whose parameter gradient holds a NaN or an infinity.
    pub fn first_nonfinite_grad(&self) -> Option<String> {
        self.schedule.params.iter().find(|p| self.grad[p.offset..p.offset + p.len].iter().any(|x| !x.to_f64().is_finite())).map(|p| p.layer.clone())
    }

    /// Restores the running statistics of batch-norm layer `layer` (from a checkpoint).
    pub fn set_running_stats(&mut self, layer: usize, mean: &[f64], var: &[f64]) -> Result<(), EngineError> {
        let r =
            self.running.get_mut(layer).filter(|r| !r.0.is_empty()).ok_or_else(|| EngineError::Input(format!("layer #{layer} has no running statistics")))?;
        if mean.len() != r.0.len() || var.len() != r.1.len() {
            return Err(EngineError::Input(format!("layer #{layer}: running statistics have {} channels, got {}", r.0.len(), mean.len())));
        }
        r.0.copy_from_slice(mean);
        r.1.copy_from_slice(var);
        Ok(())
    }
}
