//! Per-thread execution state: activation, gradient and workspace buffers for up to
//! `cap` samples, plus a thread-local parameter-gradient accumulator.
//!
//! A worker runs layer `l` forward/backward over its current `n ≤ cap` samples (global
//! indices `first .. first + n`). All buffers are allocated once in [`Worker::new`];
//! a step only moves `Vec`s in and out with `std::mem::take` (no allocation).
//! Batch norm in training mode is driven phase by phase by the network (whole-batch
//! statistics); `fwd`/`bwd` handle it only in evaluation mode.

use super::error::EngineError;
use super::network::Inputs;
use super::schedule::{Kernel, Schedule, ScheduledLayer};
use crate::kernels::matmul::{matmul, MatRef};
use crate::kernels::{activation, add, batchnorm, concat, conv, conv_implicit, dropout, linear, lstm, pool, rnn, softmax_ce, Float};
use crate::lower::Producer;
use std::mem::take;

/// Per-layer batch statistics used during one pass (mean, 1/sqrt(var + eps)).
#[derive(Clone, Debug, Default)]
pub(crate) struct BnStats {
    pub mean: Vec<f64>,
    pub invstd: Vec<f64>,
}

pub(crate) struct Ctx<'a, T> {
    pub layers: &'a [ScheduledLayer],
    pub params: &'a [T],
    pub train: bool,
    pub drop_key: u64,
    pub bn: &'a [BnStats],
    pub labels: &'a [u32],
    /// 1 / (samples in the whole batch).
    pub scale: f64,
}

pub(crate) struct Worker<T> {
    pub cap: usize,
    pub data: Vec<T>,
    pub out: Vec<Vec<T>>,
    pub dout: Vec<Vec<T>>,
    /// Per max-pool layer: the index of each window's maximum.
    pub argmax: Vec<Vec<u32>>,
    /// Per layer: what its backward needs from forward (conv columns, dropout masks, LSTM gates).
    pub saved: Vec<Vec<T>>,
    /// Per LSTM layer: the cell states of every step.
    pub saved_cells: Vec<Vec<T>>,
    pub col: Vec<T>,
    pub dcol: Vec<T>,
    /// Implicit-GEMM convolutions: padded inputs and wide outputs (or output gradients).
    pub padded: Vec<T>,
    pub wide: Vec<T>,
    /// Implicit-GEMM convolutions: the transposed, flipped kernel (input gradient) or the
    /// transposed weight gradient.
    pub flipped: Vec<T>,
    pub scratch: Vec<T>,
    /// Recurrent layers: one step's hidden state (forward), gradient workspaces (backward).
    pub recurrent_step: Vec<T>,
    pub recurrent_grad: Vec<T>,
    pub recurrent_scratch: Vec<T>,
    pub probs: Vec<f64>,
    pub grad: Vec<T>,
    /// Batch norm: this worker's per-channel moments (forward), `Σ dy` and `Σ dy·x̂` (backward).
    pub bn_moments: Vec<batchnorm::Moments>,
    pub bn_a: Vec<f64>,
    pub bn_b: Vec<f64>,
    pub loss: f64,
    /// Class scores collected by [`Worker::collect_scores`] (prediction passes only).
    pub scores: Vec<f32>,
    pub correct: usize,
    pub first: usize,
    pub n: usize,
    /// Sample offset of the current samples inside this worker's buffers (non-zero only
    /// when a whole slice is held and processed in chunks, i.e. with batch norm).
    pub off: usize,
    /// Global index of the first sample of this worker's slice (deferred linear grads).
    pub slice_start: usize,
    /// Per linear layer: inputs and output gradients of the whole slice, so the weight
    /// gradient is one long-reduction product per step instead of one per micro-batch
    /// (empty when not deferred).
    pub lin_x: Vec<Vec<T>>,
    pub lin_dy: Vec<Vec<T>>,
}

/// Largest per-layer column store (elements) kept from forward for backward reuse.
const KEEP_COLS_MAX: usize = 1 << 18;

/// A zeroed buffer; allocation failure is an error, not an abort.
fn zeros<T: Clone + Default>(n: usize) -> Result<Vec<T>, EngineError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| EngineError::InvalidPlan(format!("cannot allocate a buffer of {n} elements")))?;
    crate::memory::advise_huge_pages(v.as_mut_ptr() as usize, v.capacity() * std::mem::size_of::<T>());
    v.resize(n, T::default());
    Ok(v)
}

/// Buffer lengths (elements) of one worker: what [`Worker::new`] allocates, computed without
/// allocating (the memory estimate of `compile --report` and of `run`'s fit check).
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct WorkerSizes {
    pub data: usize,
    /// Per layer: output, output gradient, max-pool argmax, saved-for-backward, LSTM cells,
    /// deferred linear inputs and output gradients.
    pub out: Vec<usize>,
    pub dout: Vec<usize>,
    pub argmax: Vec<usize>,
    pub saved: Vec<usize>,
    pub saved_cells: Vec<usize>,
    pub lin_x: Vec<usize>,
    pub lin_dy: Vec<usize>,
    pub col: usize,
    pub dcol: usize,
    pub padded: usize,
    pub wide: usize,
    pub flipped: usize,
    pub scratch: usize,
    pub recurrent_step: usize,
    pub recurrent_grad: usize,
    pub recurrent_scratch: usize,
    pub probs: usize,
    pub grad: usize,
    pub bn_moments: usize,
    pub bn_a: usize,
    pub bn_b: usize,
}

impl WorkerSizes {
    /// `cap`: samples held at once; `slice_cap`: samples per step for this worker;
    /// `chunk`: samples per pass (`slice_cap > chunk` enables deferred linear gradients).
    /// `data` holds the `cap` samples' inputs (copied from the batch, or written there by the
    /// batch's sample writer).
    pub fn of(c: &Schedule, cap: usize, slice_cap: usize, chunk: usize) -> WorkerSizes {
        let mut z = WorkerSizes { data: cap * c.in_len, probs: c.classes.max(1), grad: c.n_params, ..WorkerSizes::default() };
        for l in &c.layers {
            let (mut a, mut b) = (0, 0);
            if let Kernel::Linear { rows, fin, fout, .. } = l.kernel {
                if slice_cap > chunk.min(cap) && !l.params.is_empty() {
                    a = slice_cap * rows * fin;
                    b = slice_cap * rows * fout;
                }
            }
            z.lin_x.push(a);
            z.lin_dy.push(b);
            let last = matches!(l.kernel, Kernel::SoftmaxCe { .. } | Kernel::Fused);
            z.out.push(if last { 0 } else { cap * l.out_len });
            z.dout.push(if l.requires && !last { cap * l.out_len } else { 0 });
            for (k, i) in l.inputs.iter().enumerate() {
                if matches!(i, Producer::Layer(_)) && l.dx_needed[k] && !l.first_writer[k] {
                    z.scratch = z.scratch.max(cap * l.in_lens[k]);
                }
            }
            let (mut argmax_len, mut saved_len, mut cells_len) = (0, 0, 0);
            match &l.kernel {
                Kernel::Conv { g, implicit, implicit_dx, .. } => {
                    match implicit {
                        Some(im) => {
                            z.padded = z.padded.max(cap * im.padded_len(g));
                            z.wide = z.wide.max(cap * im.wide_len(g));
                            z.flipped = z.flipped.max(im.dwt_len(g));
                        }
                        None => {
                            z.col = z.col.max(g.col_len());
                            if cap * g.col_len() <= KEEP_COLS_MAX {
                                saved_len = cap * g.col_len();
                            }
                        }
                    }
                    if l.dx_needed[0] {
                        match implicit_dx {
                            Some(gi) => {
                                z.padded = z.padded.max(cap * gi.im.padded_len(&gi.g));
                                z.wide = z.wide.max(gi.im.wide_len(&gi.g));
                                z.flipped = z.flipped.max(gi.weights_len());
                            }
                            None => z.dcol = z.dcol.max(g.col_len()),
                        }
                    }
                }
                Kernel::MaxPool(..) => argmax_len = cap * l.out_len,
                Kernel::BatchNorm { c, .. } => {
                    z.bn_moments = z.bn_moments.max(*c);
                    z.bn_a = z.bn_a.max(*c);
                    z.bn_b = z.bn_b.max(*c);
                }
                Kernel::Dropout { .. } => saved_len = cap * l.out_len,
                Kernel::Rnn { t, h, .. } => {
                    z.recurrent_step = z.recurrent_step.max(cap * h);
                    z.recurrent_grad = z.recurrent_grad.max(cap * t * h);
                    z.recurrent_scratch = z.recurrent_scratch.max(cap * h);
                }
                Kernel::Lstm { t, h, .. } => {
                    saved_len = cap * t * 4 * h;
                    cells_len = cap * t * h;
                    z.recurrent_step = z.recurrent_step.max(cap * h);
                    z.recurrent_grad = z.recurrent_grad.max(cap * t * 4 * h);
                    z.recurrent_scratch = z.recurrent_scratch.max(cap * h);
                }
                _ => {}
            }
            z.argmax.push(argmax_len);
            z.saved.push(saved_len);
            z.saved_cells.push(cells_len);
        }
        z
    }

    /// Bytes of (activations, workspace) with elements of `elem` bytes (the parameter-gradient
    /// accumulator `grad` is counted by the network, with the gradients).
    pub fn bytes(&self, elem: usize) -> (usize, usize) {
        let sum = |v: &[usize]| v.iter().sum::<usize>();
        let act = (self.data + sum(&self.out) + sum(&self.dout) + sum(&self.saved) + sum(&self.saved_cells)) * elem + sum(&self.argmax) * 4;
        let ws = (self.col
            + self.dcol
            + self.padded
            + self.wide
            + self.flipped
            + self.scratch
            + self.recurrent_step
            + self.recurrent_grad
            + self.recurrent_scratch
            + sum(&self.lin_x)
            + sum(&self.lin_dy))
            * elem
            + (self.probs + self.bn_a + self.bn_b) * 8
            + self.bn_moments * std::mem::size_of::<batchnorm::Moments>();
        (act, ws)
    }
}

impl<T: Float> Worker<T> {
    /// Allocates the buffers [`WorkerSizes::of`] describes.
    pub fn new(c: &Schedule, cap: usize, slice_cap: usize, chunk: usize) -> Result<Self, EngineError> {
        let z = WorkerSizes::of(c, cap, slice_cap, chunk);
        let many = |v: &[usize]| v.iter().map(|&n| zeros(n)).collect::<Result<Vec<Vec<T>>, _>>();
        Ok(Worker {
            cap,
            data: zeros(z.data)?,
            out: many(&z.out)?,
            dout: many(&z.dout)?,
            argmax: z.argmax.iter().map(|&n| zeros(n)).collect::<Result<_, _>>()?,
            saved: many(&z.saved)?,
            saved_cells: many(&z.saved_cells)?,
            col: zeros(z.col)?,
            dcol: zeros(z.dcol)?,
            padded: zeros(z.padded)?,
            wide: zeros(z.wide)?,
            flipped: zeros(z.flipped)?,
            scratch: zeros(z.scratch)?,
            recurrent_step: zeros(z.recurrent_step)?,
            recurrent_grad: zeros(z.recurrent_grad)?,
            recurrent_scratch: zeros(z.recurrent_scratch)?,
            probs: vec![0.0; z.probs],
            grad: zeros(z.grad)?,
            bn_moments: vec![batchnorm::Moments::default(); z.bn_moments],
            bn_a: vec![0.0; z.bn_a],
            bn_b: vec![0.0; z.bn_b],
            loss: 0.0,
            scores: vec![],
            correct: 0,
            first: 0,
            n: 0,
            off: 0,
            slice_start: 0,
            lin_x: many(&z.lin_x)?,
            lin_dy: many(&z.lin_dy)?,
        })
    }

    /// The lengths of the buffers this worker holds, in [`WorkerSizes::of`]'s terms. The pattern
    /// names every field, so a buffer added to `Worker` does not compile until it is accounted
    /// for here (and so in the memory model).
    pub fn sizes(&self) -> WorkerSizes {
        let Worker {
            cap: _,
            data,
            out,
            dout,
            argmax,
            saved,
            saved_cells,
            col,
            dcol,
            padded,
            wide,
            flipped,
            scratch,
            recurrent_step,
            recurrent_grad,
            recurrent_scratch,
            probs,
            grad,
            bn_moments,
            bn_a,
            bn_b,
            loss: _,
            // filled only by prediction passes, and handed to the caller
            scores: _,
            correct: _,
            first: _,
            n: _,
            off: _,
            slice_start: _,
            lin_x,
            lin_dy,
        } = self;
        let lens = |v: &[Vec<T>]| v.iter().map(Vec::len).collect::<Vec<_>>();
        WorkerSizes {
            data: data.len(),
            out: lens(out),
            dout: lens(dout),
            argmax: argmax.iter().map(Vec::len).collect(),
            saved: lens(saved),
            saved_cells: lens(saved_cells),
            lin_x: lens(lin_x),
            lin_dy: lens(lin_dy),
            col: col.len(),
            dcol: dcol.len(),
            padded: padded.len(),
            wide: wide.len(),
            flipped: flipped.len(),
            scratch: scratch.len(),
            recurrent_step: recurrent_step.len(),
            recurrent_grad: recurrent_grad.len(),
            recurrent_scratch: recurrent_scratch.len(),
            probs: probs.len(),
            grad: grad.len(),
            bn_moments: bn_moments.len(),
            bn_a: bn_a.len(),
            bn_b: bn_b.len(),
        }
    }

    /// Bytes held in (activations, workspace): [`WorkerSizes::bytes`] of [`Worker::sizes`].
    pub fn bytes(&self) -> (usize, usize) {
        self.sizes().bytes(std::mem::size_of::<T>())
    }

    /// Makes samples `first .. first + n` of the batch the current ones: copies them into the
    /// worker's `data`, or has the batch's writer write them there (preprocessing runs on the
    /// worker that computes the samples, and leaves them in its cache).
    pub fn load(&mut self, inputs: &Inputs, in_len: usize, first: usize, n: usize) {
        self.first = first;
        self.n = n;
        self.off = 0;
        match *inputs {
            Inputs::Values(x) => {
                for (d, s) in self.data[..n * in_len].iter_mut().zip(&x[first * in_len..(first + n) * in_len]) {
                    *d = T::from_f32(*s);
                }
            }
            Inputs::Written { first: base, write } => {
                let any: &mut dyn std::any::Any = &mut self.data;
                if let Some(data) = any.downcast_mut::<Vec<f32>>() {
                    for (k, out) in data[..n * in_len].chunks_exact_mut(in_len).enumerate() {
                        write(base + first + k, out);
                    }
                } else {
                    let mut sample = vec![0f32; in_len];
                    for (k, out) in self.data[..n * in_len].chunks_exact_mut(in_len).enumerate() {
                        write(base + first + k, &mut sample);
                        out.iter_mut().zip(&sample).for_each(|(d, s)| *d = T::from_f32(*s));
                    }
                }
            }
        }
    }

    fn input<'b>(data: &'b [T], out: &'b [Vec<T>], i: Producer) -> &'b [T] {
        match i {
            Producer::Data => data,
            Producer::Layer(j) => &out[j],
        }
    }

    /// Appends, for each current sample, its class scores (the loss's logits summed over the
    /// steps of a sequence, as the accuracy ranks them) to `self.scores`.
    pub fn collect_scores(&mut self, ctx: &Ctx<'_, T>) {
        let loss = &ctx.layers[ctx.layers.len() - 1];
        let Kernel::SoftmaxCe { t, c, .. } = loss.kernel else { return };
        let z = Self::input(&self.data, &self.out, loss.inputs[0]);
        for s in 0..self.n {
            for k in 0..c {
                let sum: f64 = (0..t).map(|step| z[(s * t + step) * c + k].to_f64()).sum();
                self.scores.push(sum as f32);
            }
        }
    }

    /// Forward of layer `l` over the current samples (not batch norm in training mode).
    pub fn fwd(&mut self, l: usize, ctx: &Ctx<'_, T>) {
        let layer = &ctx.layers[l];
        if matches!(layer.kernel, Kernel::Fused) {
            return;
        }
        let (n, o) = (self.n, self.off);
        let mut yfull = take(&mut self.out[l]);
        let ybase = (o * layer.out_len).min(yfull.len());
        let y = &mut yfull[ybase..];
        let ol = n * layer.out_len;
        let x = &Self::input(&self.data, &self.out, layer.inputs[0])[o * layer.in_lens[0]..];
        match &layer.kernel {
            Kernel::Conv { g, bias, implicit: Some(im), .. } => {
                let (w, b) = params2(ctx, layer, *bias);
                conv_implicit::forward(g, im, n, x, w, b, &mut y[..ol], &mut self.padded, &mut self.wide);
            }
            Kernel::Conv { g, bias, implicit: None, .. } => {
                let (w, b) = params2(ctx, layer, *bias);
                let cl = g.col_len();
                let col = if self.saved[l].len() >= (o + n) * cl && cl > 0 { &mut self.saved[l][o * cl..] } else { &mut self.col[..] };
                conv::forward(g, n, x, w, b, &mut y[..ol], col);
            }
            Kernel::MaxPool(g, relu) => {
                pool::max_forward(g, n, x, &mut y[..ol], &mut self.argmax[l][o * layer.out_len..][..ol]);
                if *relu {
                    y[..ol].iter_mut().for_each(|v| *v = v.maxf(T::ZERO));
                }
            }
            Kernel::Fused => {}
            Kernel::AvgPool(g) => pool::avg_forward(g, n, x, &mut y[..ol]),
            Kernel::Linear { rows, fin, fout, bias } => {
                let (w, b) = params2(ctx, layer, *bias);
                linear::forward(n * rows, *fin, *fout, x, w, b, &mut y[..ol]);
            }
            Kernel::Act(a) => activation::forward(a, &x[..ol], &mut y[..ol]),
            Kernel::BatchNorm { c, sp, affine, relu, .. } => batchnorm::normalize(n, *c, *sp, x, &bn_normalization(ctx, l, *affine, *relu), &mut y[..ol]),
            Kernel::Dropout { p } => {
                if ctx.train && *p > 0.0 {
                    let key = ctx.drop_key ^ dropout::splitmix64(l as u64 + 0x5eed);
                    dropout::forward_train(*p, key, self.first, n, layer.out_len, x, &mut y[..ol], &mut self.saved[l][o * layer.out_len..]);
                } else {
                    y[..ol].copy_from_slice(&x[..ol]);
                }
            }
            Kernel::Flatten => y[..ol].copy_from_slice(&x[..ol]),
            Kernel::Add => {
                y[..ol].copy_from_slice(&x[..ol]);
                for i in &layer.inputs[1..] {
                    add::accumulate(&Self::input(&self.data, &self.out, *i)[o * layer.out_len..][..ol], &mut y[..ol]);
                }
            }
            Kernel::Concat { lens } => {
                let mut start = 0;
                for (i, len) in layer.inputs.iter().zip(lens) {
                    let xi = &Self::input(&self.data, &self.out, *i)[o * len..];
                    concat::forward_part(n, xi, *len, start, layer.out_len, y);
                    start += len;
                }
            }
            Kernel::Rnn { t, f, h } => {
                let (wih, whh, b) = params3(ctx, layer);
                rnn::forward(n, *t, *f, *h, x, wih, whh, b, &mut y[..ol], &mut self.recurrent_step);
            }
            Kernel::Lstm { t, f, h } => {
                let (wih, whh, b) = params3(ctx, layer);
                let (ga, ce) = (&mut self.saved[l][o * t * 4 * h..], &mut self.saved_cells[l][o * t * h..]);
                lstm::forward(n, *t, *f, *h, x, wih, whh, b, &mut y[..ol], ga, ce, &mut self.recurrent_step);
            }
            Kernel::LastStep { t, h } => {
                for s in 0..n {
                    y[s * h..(s + 1) * h].copy_from_slice(&x[(s * t + t - 1) * h..(s * t + t) * h]);
                }
            }
            Kernel::SoftmaxCe { t, c, top, smoothing } => {
                let labels = &ctx.labels[self.first..self.first + n];
                let (loss, correct) = softmax_ce::forward_backward(n, *t, *c, x, labels, ctx.scale, *top, *smoothing, None, &mut self.probs);
                self.loss += loss;
                self.correct += correct;
            }
        }
        self.out[l] = yfull;
    }

    /// Takes the buffer that receives the gradient of input `k` of layer `l`.
    fn dx_take(&mut self, layer: &ScheduledLayer, k: usize) -> Option<Vec<T>> {
        if !layer.dx_needed[k] {
            return None;
        }
        match layer.inputs[k] {
            Producer::Layer(j) if layer.first_writer[k] => Some(take(&mut self.dout[j])),
            Producer::Layer(_) => Some(take(&mut self.scratch)),
            Producer::Data => None,
        }
    }

    /// Returns a buffer taken by [`dx_take`], accumulating it if it was scratch.
    fn dx_put(&mut self, layer: &ScheduledLayer, k: usize, buf: Option<Vec<T>>) {
        if let (Some(buf), Producer::Layer(j)) = (buf, layer.inputs[k]) {
            if layer.first_writer[k] {
                self.dout[j] = buf;
            } else {
                let (len, b) = (self.n * layer.in_lens[k], self.off * layer.in_lens[k]);
                add::accumulate(&buf[b..b + len], &mut self.dout[j][b..b + len]);
                self.scratch = buf;
            }
        }
    }

    /// Backward of layer `l` (not batch norm): consumes `dout[l]`, writes input gradients,
    /// accumulates parameter gradients into `self.grad`.
    pub fn bwd(&mut self, l: usize, ctx: &Ctx<'_, T>) {
        let layer = &ctx.layers[l];
        if matches!(layer.kernel, Kernel::Fused) {
            return;
        }
        let (n, o) = (self.n, self.off);
        let ol = n * layer.out_len;
        let il = n * layer.in_lens[0];
        let ob = o * layer.out_len;
        let dyfull = take(&mut self.dout[l]);
        let dy = &dyfull[ob.min(dyfull.len())..];
        let mut dx = self.dx_take(layer, 0);
        {
            let x = &Self::input(&self.data, &self.out, layer.inputs[0])[o * layer.in_lens[0]..];
            let dxs = dx.as_deref_mut().map(|d| &mut d[o * layer.in_lens[0]..][..il]);
            match &layer.kernel {
                Kernel::Conv { g, bias, implicit, implicit_dx } => {
                    let (w, _) = params2(ctx, layer, *bias);
                    let (dw, db) = grads2(&mut self.grad, ctx, layer, *bias);
                    let mut dxs = dxs;
                    match implicit {
                        Some(im) => conv_implicit::backward_params(g, im, n, x, &dy[..ol], dw, db, &mut self.padded, &mut self.wide, &mut self.flipped),
                        None => {
                            let cl = g.col_len();
                            let kept = self.saved[l].len() >= (o + n) * cl && cl > 0;
                            let col = if kept { &mut self.saved[l][o * cl..] } else { &mut self.col[..] };
                            let d = if implicit_dx.is_some() { None } else { dxs.take() };
                            conv::backward(g, n, x, w, &dy[..ol], d, dw, db, col, &mut self.dcol, kept);
                        }
                    }
                    if let Some(d) = dxs {
                        match implicit_dx {
                            Some(gi) => conv_implicit::backward_input(gi, n, w, &dy[..ol], d, &mut self.flipped, &mut self.padded, &mut self.wide),
                            None => conv::backward_input(g, n, w, &dy[..ol], d, &mut self.dcol),
                        }
                    }
                }
                Kernel::MaxPool(g, relu) => {
                    if let Some(d) = dxs {
                        let y = if *relu { Some(&self.out[l][ob..ob + ol]) } else { None };
                        pool::max_backward(g, n, &dy[..ol], y, &self.argmax[l][ob..ob + ol], d);
                    }
                }
                Kernel::Fused => {}
                Kernel::AvgPool(g) => {
                    if let Some(d) = dxs {
                        pool::avg_backward(g, n, &dy[..ol], d);
                    }
                }
                Kernel::Linear { rows, fin, fout, bias } => {
                    let (w, _) = params2(ctx, layer, *bias);
                    if !self.lin_x[l].is_empty() {
                        // deferred weight gradient: stash x and dy, compute dx now
                        let so = self.first - self.slice_start;
                        let (xi, yo) = (rows * fin, rows * fout);
                        self.lin_x[l][so * xi..(so + n) * xi].copy_from_slice(&x[..n * xi]);
                        self.lin_dy[l][so * yo..(so + n) * yo].copy_from_slice(&dy[..ol]);
                        if let Some(d) = dxs {
                            matmul(n * rows, *fin, *fout, MatRef::rm(&dy[..ol], *fout), MatRef::rm(w, *fin), d, *fin, false);
                        }
                    } else {
                        let (dw, db) = grads2(&mut self.grad, ctx, layer, *bias);
                        linear::backward(n * rows, *fin, *fout, x, w, &dy[..ol], dxs, dw, db);
                    }
                }
                Kernel::Act(a) => {
                    if let Some(d) = dxs {
                        activation::backward(a, &x[..ol], &self.out[l][ob..ob + ol], &dy[..ol], d);
                    }
                }
                Kernel::BatchNorm { .. } => unreachable!("batch norm backward is driven by the network"),
                Kernel::Dropout { p } => {
                    if let Some(d) = dxs {
                        if ctx.train && *p > 0.0 {
                            dropout::backward(&dy[..ol], &self.saved[l][ob..ob + ol], d);
                        } else {
                            d.copy_from_slice(&dy[..ol]);
                        }
                    }
                }
                Kernel::Flatten => {
                    if let Some(d) = dxs {
                        d.copy_from_slice(&dy[..ol]);
                    }
                }
                Kernel::Add => {
                    if let Some(d) = dxs {
                        d.copy_from_slice(&dy[..ol]);
                    }
                }
                Kernel::Concat { lens } => {
                    if let Some(d) = dxs {
                        concat::backward_part(n, dy, lens[0], 0, layer.out_len, d);
                    }
                }
                Kernel::Rnn { t, f, h } => {
                    let (wih, whh, _) = params3(ctx, layer);
                    let (dwih, dwhh, db) = grads3(&mut self.grad, ctx, layer);
                    let y = &self.out[l][ob..];
                    rnn::backward(n, *t, *f, *h, x, wih, whh, &y[..ol], &dy[..ol], dxs, dwih, dwhh, db, &mut self.recurrent_grad, &mut self.recurrent_scratch);
                }
                Kernel::Lstm { t, f, h } => {
                    let (wih, whh, _) = params3(ctx, layer);
                    let (dwih, dwhh, db) = grads3(&mut self.grad, ctx, layer);
                    let y = &self.out[l][ob..];
                    let (ga, ce) = (&self.saved[l][o * t * 4 * h..], &self.saved_cells[l][o * t * h..]);
                    lstm::backward(
                        n,
                        *t,
                        *f,
                        *h,
                        x,
                        wih,
                        whh,
                        &y[..ol],
                        ga,
                        ce,
                        &dy[..ol],
                        dxs,
                        dwih,
                        dwhh,
                        db,
                        &mut self.recurrent_grad,
                        &mut self.recurrent_scratch,
                        &mut self.recurrent_step,
                    );
                }
                Kernel::LastStep { t, h } => {
                    if let Some(d) = dxs {
                        d.iter_mut().for_each(|v| *v = T::ZERO);
                        for s in 0..n {
                            d[(s * t + t - 1) * h..(s * t + t) * h].copy_from_slice(&dy[s * h..(s + 1) * h]);
                        }
                    }
                }
                Kernel::SoftmaxCe { t, c, top, smoothing } => {
                    if let Some(d) = dxs {
                        let labels = &ctx.labels[self.first..self.first + n];
                        softmax_ce::forward_backward(n, *t, *c, x, labels, ctx.scale, *top, *smoothing, Some(d), &mut self.probs);
                    }
                }
            }
        }
        self.dx_put(layer, 0, dx);
        // further inputs (Add, Concat)
        for k in 1..layer.inputs.len() {
            let mut dx = self.dx_take(layer, k);
            if let Some(d) = dx.as_deref_mut() {
                let len = n * layer.in_lens[k];
                let d = &mut d[o * layer.in_lens[k]..][..len];
                match &layer.kernel {
                    Kernel::Add => d.copy_from_slice(&dy[..ol]),
                    Kernel::Concat { lens } => {
                        let start: usize = lens[..k].iter().sum();
                        concat::backward_part(n, dy, lens[k], start, layer.out_len, d);
                    }
                    _ => {}
                }
            }
            self.dx_put(layer, k, dx);
        }
        self.dout[l] = dyfull;
    }

    /// Weight/bias gradients of deferred linear layers over the `n` samples of the slice.
    pub fn flush_linear(&mut self, ctx: &Ctx<'_, T>, n: usize) {
        for (l, layer) in ctx.layers.iter().enumerate() {
            if self.lin_x[l].is_empty() || n == 0 {
                continue;
            }
            if let Kernel::Linear { rows, fin, fout, bias } = layer.kernel {
                let r = n * rows;
                let (dw, db) = grads2(&mut self.grad, ctx, layer, bias);
                // dW[out, in] += dyᵀ[out, r] · x[r, in]
                matmul(fout, fin, r, MatRef::tr(&self.lin_dy[l][..r * fout], fout), MatRef::rm(&self.lin_x[l][..r * fin], fin), dw, fin, true);
                if let Some(db) = db {
                    for row in self.lin_dy[l][..r * fout].chunks_exact(fout) {
                        add::accumulate(row, db);
                    }
                }
            }
        }
    }

    // ---- batch norm phases (training mode) ----

    /// This worker's per-channel moments of the batch norm's input (into `bn_moments`).
    /// Clears the moments and gradient sums batch-norm passes accumulate over this worker's samples.
    pub fn bn_reset(&mut self) {
        self.bn_moments.iter_mut().for_each(|m| *m = batchnorm::Moments::default());
        self.bn_a.iter_mut().for_each(|v| *v = 0.0);
        self.bn_b.iter_mut().for_each(|v| *v = 0.0);
    }

    /// Merges the per-channel moments of batch norm `l`'s input over the current samples
    /// (`off .. off + n` of the slice) into `bn_moments`.
    pub fn bn_moments(&mut self, l: usize, ctx: &Ctx<'_, T>) {
        let layer = &ctx.layers[l];
        if let Kernel::BatchNorm { c, sp, .. } = layer.kernel {
            let x = Self::input(&self.data, &self.out, layer.inputs[0]);
            batchnorm::partial_moments(self.n, c, sp, &x[self.off * layer.out_len..], &mut self.bn_moments);
        }
    }

    /// Normalises the current samples of batch norm `l` with the pass's statistics.
    pub fn bn_normalize(&mut self, l: usize, ctx: &Ctx<'_, T>) {
        let layer = &ctx.layers[l];
        if let Kernel::BatchNorm { c, sp, affine, relu, .. } = layer.kernel {
            let (b, len) = (self.off * layer.out_len, self.n * layer.out_len);
            let mut y = take(&mut self.out[l]);
            let x = Self::input(&self.data, &self.out, layer.inputs[0]);
            batchnorm::normalize(self.n, c, sp, &x[b..b + len], &bn_normalization(ctx, l, affine, relu), &mut y[b..b + len]);
            self.out[l] = y;
        }
    }

    /// Adds the current samples' `Σ dy` and `Σ dy·x̂` per channel to `bn_a`, `bn_b`.
    pub fn bn_grad_sums(&mut self, l: usize, ctx: &Ctx<'_, T>) {
        let layer = &ctx.layers[l];
        if let Kernel::BatchNorm { c, sp, affine, relu, .. } = layer.kernel {
            let (b, len) = (self.off * layer.out_len, self.n * layer.out_len);
            let x = Self::input(&self.data, &self.out, layer.inputs[0]);
            let dy = &self.dout[l][b..b + len];
            batchnorm::partial_grad_sums(self.n, c, sp, dy, &x[b..b + len], &bn_normalization(ctx, l, affine, relu), &mut self.bn_a, &mut self.bn_b);
        }
    }

    /// The current samples' input gradient of batch norm `l`; `mdy`, `mdyx` are the whole-batch
    /// means of dy and dy·x̂.
    pub fn bn_dx(&mut self, l: usize, ctx: &Ctx<'_, T>, mdy: &[f64], mdyx: &[f64]) {
        let layer = &ctx.layers[l];
        if let Kernel::BatchNorm { c, sp, affine, relu, .. } = layer.kernel {
            let mut dx = self.dx_take(layer, 0);
            if let Some(d) = dx.as_deref_mut() {
                let (b, len) = (self.off * layer.out_len, self.n * layer.out_len);
                let x = Self::input(&self.data, &self.out, layer.inputs[0]);
                let nz = bn_normalization(ctx, l, affine, relu);
                batchnorm::backward_dx(self.n, c, sp, &self.dout[l][b..b + len], &x[b..b + len], &nz, mdy, mdyx, &mut d[b..b + len]);
            }
            self.dx_put(layer, 0, dx);
        }
    }
}

/// What batch-norm layer `l` applies in this pass: the pass's statistics, its (γ, β) when
/// `affine`, and whether a ReLU was fused in.
fn bn_normalization<'a, T>(ctx: &Ctx<'a, T>, l: usize, affine: bool, relu: bool) -> batchnorm::Normalization<'a, T> {
    let (gamma, beta) = if affine {
        let (g, b) = params2(ctx, &ctx.layers[l], true);
        (Some(g), b)
    } else {
        (None, None)
    };
    batchnorm::Normalization { mean: &ctx.bn[l].mean, invstd: &ctx.bn[l].invstd, gamma, beta, relu }
}

fn params2<'a, T>(ctx: &Ctx<'a, T>, layer: &ScheduledLayer, bias: bool) -> (&'a [T], Option<&'a [T]>) {
    let w = param_slice(ctx, layer, 0);
    let b = if bias && layer.params.len() > 1 { Some(param_slice(ctx, layer, 1)) } else { None };
    (w, b)
}

fn params3<'a, T>(ctx: &Ctx<'a, T>, layer: &ScheduledLayer) -> (&'a [T], &'a [T], &'a [T]) {
    (param_slice(ctx, layer, 0), param_slice(ctx, layer, 1), param_slice(ctx, layer, 2))
}

fn param_slice<'a, T>(ctx: &Ctx<'a, T>, layer: &ScheduledLayer, k: usize) -> &'a [T] {
    let (o, l) = layer.param_ranges[k];
    &ctx.params[o..o + l]
}

fn grads2<'g, T>(g: &'g mut [T], _ctx: &Ctx<'_, T>, layer: &ScheduledLayer, bias: bool) -> (&'g mut [T], Option<&'g mut [T]>) {
    let (o0, l0) = layer.param_ranges[0];
    if bias && layer.param_ranges.len() > 1 {
        let (o1, l1) = layer.param_ranges[1];
        // parameters of a layer are contiguous and in canonical order: bias follows weight
        let (a, b) = g[o0..o1 + l1].split_at_mut(o1 - o0);
        (&mut a[..l0], Some(b))
    } else {
        (&mut g[o0..o0 + l0], None)
    }
}

fn grads3<'g, T>(g: &'g mut [T], _ctx: &Ctx<'_, T>, layer: &ScheduledLayer) -> (&'g mut [T], &'g mut [T], &'g mut [T]) {
    let (o0, l0) = layer.param_ranges[0];
    let (o1, l1) = layer.param_ranges[1];
    let (o2, l2) = layer.param_ranges[2];
    let s = &mut g[o0..o2 + l2];
    let (a, rest) = s.split_at_mut(o1 - o0);
    let (b, c) = rest.split_at_mut(o2 - o1);
    (&mut a[..l0], &mut b[..l1], c)
}
