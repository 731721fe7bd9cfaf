//! [`Trainer`]: a `Network<f32>` plus a Caffe-style solver.
//!
//! Per step (iteration `it`, starting at 0) at the learning rate `lr` the caller passes (the run
//! loop computes it from the spec's policy, `spec::LrPolicy`): gradients of the mean batch loss
//! are computed; then for every parameter with multipliers (`lr_mult`, `decay_mult`) and
//! `g = ∇ + weight_decay·decay_mult·W`, `α = lr·lr_mult`:
//! * SGD: `V ← μV + α·g; W ← W − V`
//! * Nesterov: `V' ← μV + α·g; W ← W − ((1 + μ)V' − μV)`
//! * Adam: `m ← β1 m + (1−β1) g; v ← β2 v + (1−β2) g²;
//!   W ← W − α·sqrt(1−β2^t)/(1−β1^t) · m/(sqrt(v) + ε)` with `t = it + 1`;
//!   AdamW: the same on the plain gradient, after `W ← W − α·wd·decay_mult·W` (decoupled decay);
//! * AdaGrad: `h ← h + g²; W ← W − α·g/(√h + δ)`; RMSProp: `h ← ρh + (1 − ρ)g²; W ← W − α·g/(√h + δ)`;
//! * AdaDelta: `h ← μh + (1 − μ)g²; u = g·√((h_u + δ)/(h + δ)); h_u ← μh_u + (1 − μ)u²; W ← W − α·u`.
//!
//! With `clip_gradients`, the gradient is first scaled to a global L2 norm of at most the bound.
//!
//! The solver is the spec's own type ([`crate::spec::Solver`]); its values were range-checked
//! when the spec was resolved.

use super::error::EngineError;
use super::network::{Backend, Inputs, MemoryReport, NetOptions, Network};
use crate::lower::Plan;
use crate::spec::Solver;

/// Built from the resolved spec (`run::engine_model::build`); no defaults of its own.
#[derive(Clone, Debug)]
pub struct TrainerConfig {
    pub weight_decay: f32,
    pub solver: Solver,
    /// Largest training batch a step accepts (evaluations of any size run in chunks).
    pub max_batch: usize,
    pub threads: usize,
    /// Caffe's `clip_gradients` (global L2 norm bound), `None` for no clipping.
    pub clip_gradients: Option<f64>,
    /// Micro-batch size for nets without batch norm (0 = automatic, the default).
    pub micro_batch: usize,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepStats {
    /// Mean loss of the batch (before the update).
    pub loss: f32,
    /// Correct top-1 predictions in the batch (before the update).
    pub correct: usize,
    pub batch: usize,
    /// Learning rate used for this step.
    pub lr: f32,
    /// Iteration number of this step (0-based).
    pub iter: usize,
}

pub struct Trainer {
    net: Network<f32>,
    cfg: TrainerConfig,
    iter: usize,
    first_moment: Vec<f32>,
    second_moment: Vec<f32>,
}

impl Trainer {
    pub fn new(plan: &Plan, seed: u64, cfg: TrainerConfig) -> Result<Self, EngineError> {
        if !cfg.weight_decay.is_finite() {
            return Err(EngineError::Solver("weight_decay must be finite".into()));
        }
        let net = Network::with_options(
            plan,
            seed,
            NetOptions { backend: Backend::Cpu { threads: cfg.threads }, max_batch: cfg.max_batch, micro_batch: cfg.micro_batch },
        )?;
        let np = net.params().len();
        let second_moment = if cfg.solver.state_per_param() == 2 { vec![0.0; np] } else { vec![] };
        Ok(Trainer { net, cfg, iter: 0, first_moment: vec![0.0; np], second_moment })
    }

    /// What [`Trainer::new`] would allocate (network and solver history), without allocating;
    /// equal to [`Trainer::memory_bytes`] of the built trainer.
    pub fn memory_estimate(plan: &Plan, cfg: &TrainerConfig) -> Result<MemoryReport, EngineError> {
        let opts = NetOptions { backend: Backend::Cpu { threads: cfg.threads }, max_batch: cfg.max_batch, micro_batch: cfg.micro_batch };
        let mut m = Network::<f32>::memory_estimate(plan, &opts)?;
        m.optimizer_state = m.grads / (1 + cfg.threads.max(1)) * if cfg.solver.state_per_param() == 2 { 2 } else { 1 };
        Ok(m)
    }

    pub fn network(&self) -> &Network<f32> {
        &self.net
    }
    pub fn network_mut(&mut self) -> &mut Network<f32> {
        &mut self.net
    }
    pub fn iter(&self) -> usize {
        self.iter
    }
    pub fn config(&self) -> &TrainerConfig {
        &self.cfg
    }

    /// One solver iteration on a batch (`labels.len()` samples, `1..=max_batch`) at rate `lr`.
    pub fn train_step(&mut self, inputs: &[f32], labels: &[u32], lr: f32) -> Result<StepStats, EngineError> {
        self.net.set_step(self.iter as u64);
        let st = self.net.forward_backward(inputs, labels)?;
        self.clip_gradients();
        self.update(lr);
        let out = StepStats { loss: st.loss as f32, correct: st.correct, batch: st.batch, lr, iter: self.iter };
        self.iter += 1;
        Ok(out)
    }

    /// Caffe's `clip_gradients`: when the global L2 norm of the gradient exceeds the bound, scale
    /// the whole gradient by bound / norm.
    fn clip_gradients(&mut self) {
        let Some(bound) = self.cfg.clip_gradients else { return };
        let norm = self.net.grad.iter().map(|&g| g as f64 * g as f64).sum::<f64>().sqrt();
        if norm > bound {
            let scale = (bound / norm) as f32;
            self.net.grad.iter_mut().for_each(|g| *g *= scale);
        }
    }

    fn update(&mut self, lr: f32) {
        let wd = self.cfg.weight_decay;
        let t = (self.iter + 1) as i32;
        let net = &mut self.net;
        let (infos, params, grad) = (&net.schedule.params, &mut net.params, &net.grad);
        for p in infos {
            let a = lr * p.lr_mult;
            let dec = wd * p.decay_mult;
            let r = p.offset..p.offset + p.len;
            let (w, g, h) = (&mut params[r.clone()], &grad[r.clone()], &mut self.first_moment[r.clone()]);
            // The spec's f64 values, rounded to f32 once (as the kernels compute in f32).
            match self.cfg.solver {
                Solver::Sgd { momentum } => {
                    let momentum = momentum as f32;
                    for ((w, g), v) in w.iter_mut().zip(g).zip(h.iter_mut()) {
                        *v = momentum * *v + a * (*g + dec * *w);
                        *w -= *v;
                    }
                }
                Solver::Nesterov { momentum } => {
                    let momentum = momentum as f32;
                    for ((w, g), v) in w.iter_mut().zip(g).zip(h.iter_mut()) {
                        let old = *v;
                        *v = momentum * *v + a * (*g + dec * *w);
                        *w -= (1.0 + momentum) * *v - momentum * old;
                    }
                }
                Solver::Adam { beta1, beta2, eps } | Solver::AdamW { beta1, beta2, eps } => {
                    let decoupled = matches!(self.cfg.solver, Solver::AdamW { .. });
                    let (beta1, beta2, eps) = (beta1 as f32, beta2 as f32, eps as f32);
                    let corr = ((1.0 - (beta2 as f64).powi(t)).sqrt() / (1.0 - (beta1 as f64).powi(t))) as f32;
                    let h2 = &mut self.second_moment[r.clone()];
                    for (((w, g), m), v) in w.iter_mut().zip(g).zip(h.iter_mut()).zip(h2.iter_mut()) {
                        if decoupled {
                            // AdamW: W ← W − α·wd·W, then the Adam step on the plain gradient.
                            *w -= a * dec * *w;
                        }
                        let gg = if decoupled { *g } else { *g + dec * *w };
                        *m = beta1 * *m + (1.0 - beta1) * gg;
                        *v = beta2 * *v + (1.0 - beta2) * gg * gg;
                        *w -= a * corr * *m / (v.sqrt() + eps);
                    }
                }
                Solver::AdaGrad { delta } => {
                    let delta = delta as f32;
                    for ((w, g), h) in w.iter_mut().zip(g).zip(h.iter_mut()) {
                        let gg = *g + dec * *w;
                        *h += gg * gg;
                        *w -= a * gg / (h.sqrt() + delta);
                    }
                }
                Solver::RmsProp { rms_decay, delta } => {
                    let (rho, delta) = (rms_decay as f32, delta as f32);
                    for ((w, g), h) in w.iter_mut().zip(g).zip(h.iter_mut()) {
                        let gg = *g + dec * *w;
                        *h = rho * *h + (1.0 - rho) * gg * gg;
                        *w -= a * gg / (h.sqrt() + delta);
                    }
                }
                Solver::AdaDelta { momentum, delta } => {
                    let (mu, delta) = (momentum as f32, delta as f32);
                    let h2 = &mut self.second_moment[r.clone()];
                    for (((w, g), h), hu) in w.iter_mut().zip(g).zip(h.iter_mut()).zip(h2.iter_mut()) {
                        let gg = *g + dec * *w;
                        *h = mu * *h + (1.0 - mu) * gg * gg;
                        let u = gg * ((*hu + delta) / (*h + delta)).sqrt();
                        *hu = mu * *hu + (1.0 - mu) * u * u;
                        *w -= a * u;
                    }
                }
            }
        }
    }

    /// Evaluation-mode loss and number correct over any number of samples (processed in
    /// chunks of `max_batch`). Returns (mean loss, correct).
    pub fn evaluate<'a>(&mut self, inputs: impl Into<Inputs<'a>>, labels: &[u32]) -> Result<(f32, usize), EngineError> {
        let inputs = inputs.into();
        let n = labels.len();
        let il = self.net.input_len();
        if n == 0 {
            return Err(EngineError::Input("evaluate: no samples".into()));
        }
        inputs.check_len(n, il)?;
        let (mut loss, mut correct) = (0.0f64, 0usize);
        let mb = self.cfg.max_batch;
        let mut s = 0;
        while s < n {
            let e = (s + mb).min(n);
            let st = self.net.pass(inputs.range(s, e, il), &labels[s..e], false, false)?;
            loss += st.loss * (e - s) as f64;
            correct += st.correct;
            s = e;
        }
        Ok(((loss / n as f64) as f32, correct))
    }

    /// Evaluation-mode class scores `[n, classes]` and (mean loss, correct) over any number of
    /// samples (processed in chunks of `max_batch`).
    pub fn predict<'a>(&mut self, inputs: impl Into<Inputs<'a>>, labels: &[u32]) -> Result<(f32, usize, Vec<f32>), EngineError> {
        let inputs = inputs.into();
        let n = labels.len();
        let il = self.net.input_len();
        if n == 0 {
            return Err(EngineError::Input("predict: no samples".into()));
        }
        inputs.check_len(n, il)?;
        let (mut loss, mut correct, mut scores) = (0.0f64, 0usize, Vec::with_capacity(n * self.net.classes()));
        let mb = self.cfg.max_batch;
        let mut s = 0;
        while s < n {
            let e = (s + mb).min(n);
            let (st, sc) = self.net.predict_inputs(inputs.range(s, e, il), &labels[s..e])?;
            loss += st.loss * (e - s) as f64;
            correct += st.correct;
            scores.extend(sc);
            s = e;
        }
        Ok(((loss / n as f64) as f32, correct, scores))
    }

    /// Network memory plus solver history.
    pub fn memory_bytes(&self) -> MemoryReport {
        let mut m = self.net.memory_bytes();
        m.optimizer_state = (self.first_moment.len() + self.second_moment.len()) * 4;
        m
    }
}

/// Explicit control for training runs: the run loop owns the schedule and the checkpoints.
impl Trainer {
    /// One solver iteration as iteration `iter` at learning rate `lr` (the run loop computes the
    /// rate from the spec's policy). Dropout masks and Adam's bias correction follow `iter`, so a
    /// resumed run repeats an uninterrupted one exactly.
    pub fn train_step_at<'a>(&mut self, inputs: impl Into<Inputs<'a>>, labels: &[u32], iter: usize, lr: f32) -> Result<StepStats, EngineError> {
        self.iter = iter;
        self.net.set_step(iter as u64);
        let st = self.net.pass(inputs.into(), labels, true, true)?;
        if st.loss.is_finite() && self.net.grads_finite() {
            self.clip_gradients();
            self.update(lr);
        }
        let out = StepStats { loss: st.loss as f32, correct: st.correct, batch: st.batch, lr, iter };
        self.iter = iter + 1;
        Ok(out)
    }

    /// The solver's history: momentum (SGD, Nesterov) or first moments (Adam), and Adam's second moments.
    pub fn solver_state(&self) -> (&[f32], &[f32]) {
        (&self.first_moment, &self.second_moment)
    }

    /// Restores the solver history saved by [`Trainer::solver_state`].
    pub fn set_solver_state(&mut self, first: &[f32], second: &[f32]) -> Result<(), EngineError> {
        if first.len() != self.first_moment.len() || second.len() != self.second_moment.len() {
            return Err(EngineError::Input(format!(
                "solver state has {}+{} values, expected {}+{}",
                first.len(),
                second.len(),
                self.first_moment.len(),
                self.second_moment.len()
            )));
        }
        self.first_moment.copy_from_slice(first);
        self.second_moment.copy_from_slice(second);
        Ok(())
    }
}
